"""Tests of the Cora experiment: the model, its inputs, the training loop, the summary and the errors."""

import json
from pathlib import Path

import pytest
import torch

from conftest import PLANETOID, dense_adjacency, load_experiment, needs_planetoid, random_edge_index
from labml_gat.datasets import Graph

cora = load_experiment('cora')


def small_graph(generator: torch.Generator, n_nodes: int = 30, n_features: int = 20) -> Graph:
    """A random graph with sparse binary features, shaped like a tiny Planetoid dataset."""
    edge_index = random_edge_index(n_nodes, 80, generator, self_loops=False)
    x = (torch.rand(n_nodes, n_features, generator=generator) < 0.2).float()
    x[:, 0] = 1.0
    x = x / x.sum(dim=1, keepdim=True)
    masks = torch.zeros(3, n_nodes, dtype=torch.bool)
    masks[0, :10], masks[1, 10:20], masks[2, 20:] = True, True, True
    return Graph('small', x, torch.randint(0, 3, (n_nodes,), generator=generator), edge_index,
                 masks[0], masks[1], masks[2], num_classes=3)


@pytest.mark.parametrize('model', ['gat', 'gatv2'])
def test_dense_and_edges_models_agree(generator, model):
    """The same weights give the same logits with the dense and the edge-list layers."""
    data = small_graph(generator)
    cpu = torch.device('cpu')
    x, adj = cora.prepare_inputs(data, 'dense', 2, 4, cpu)
    _, edge_index = cora.prepare_inputs(data, 'edges', 2, 4, cpu)
    assert torch.equal(adj, dense_adjacency(edge_index, data.num_nodes))
    dense = cora.GAT(cora.LAYERS[model, 'dense'], 20, 3, 2, 4, 0.6).eval()
    edges = cora.GAT(cora.LAYERS[model, 'edges'], 20, 3, 2, 4, 0.6).eval()
    edges.load_state_dict(dense.state_dict())
    torch.testing.assert_close(dense(x, adj), edges(x, edge_index))


@pytest.mark.parametrize('model', ['gat', 'gatv2'])
def test_receptive_field_gives_the_full_graph_outputs_and_gradients(generator, model):
    """At the targets, the receptive field computes what the whole graph computes, gradients included."""
    data = small_graph(generator, n_nodes=60)
    x, edge_index = cora.prepare_inputs(data, 'edges', 2, 4, torch.device('cpu'))
    field_x, field_graph, index = cora.split_inputs(data, x, edge_index, data.train_mask, 'edges')
    assert field_x.shape[0] < data.num_nodes
    # Dropout off, so that both computations draw nothing random
    full = cora.GAT(cora.LAYERS[model, 'edges'], 20, 3, 2, 4, dropout=0.0)
    part = cora.GAT(cora.LAYERS[model, 'edges'], 20, 3, 2, 4, dropout=0.0)
    part.load_state_dict(full.state_dict())
    full_logits = full(x, edge_index)[data.train_mask]
    part_logits = part(field_x, field_graph)[index]
    torch.testing.assert_close(part_logits, full_logits)
    full_logits.square().sum().backward()
    part_logits.square().sum().backward()
    for (name, a), b in zip(full.named_parameters(), part.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


def test_receptive_field_layers(generator):
    """The last layer's edges end at the targets; each layer's sources are the next layer's outputs."""
    edge_index = random_edge_index(50, 120, generator)
    targets = torch.tensor([7, 3, 40])
    field = cora.receptive_field(edge_index, targets, 50, n_layers=3)
    assert torch.equal(field.nodes[field.targets], targets)
    assert torch.equal(field.nodes, field.nodes.unique())
    first, second, last = field.edges
    assert set(last[1].tolist()) <= set(field.targets.tolist())
    assert set(second[1].tolist()) == set(last[0].tolist()) | set(field.targets.tolist())
    assert set(first[1].tolist()) == set(second[0].tolist()) | set(second[1].tolist())
    # Every edge into a needed node is kept: the in-degrees match the full graph's
    in_degree = torch.bincount(edge_index[1], minlength=50)
    for edges in field.edges:
        targets_here = field.nodes[edges[1].unique()]
        assert torch.equal(torch.bincount(field.nodes[edges[1]], minlength=50)[targets_here],
                           in_degree[targets_here])


@needs_planetoid
def test_receptive_field_sizes_on_cora():
    """The sizes quoted in `ReceptiveField`'s documentation."""
    data = cora.load_planetoid('cora', PLANETOID)
    edge_index = data.edge_index_with_self_loops()
    assert edge_index.shape[1] == 13264
    sizes = {}
    for split, mask in (('train', data.train_mask), ('valid', data.val_mask)):
        field = cora.receptive_field(edge_index, mask.nonzero().squeeze(1), data.num_nodes, n_layers=2)
        sizes[split] = (len(field.nodes), field.edges[0].shape[1], field.edges[1].shape[1])
    assert sizes['train'] == (1664, 4478, 778)
    assert sizes['valid'][1:] == (8614, 2448)


def test_fast_dropout_keeps_one_minus_p():
    """The keep rate is 1 - round(p 2^15) / 2^15, kept entries are scaled by 1 / (1 - p), eval is the identity."""
    torch.manual_seed(0)
    dropout = cora.FastDropout(0.6)
    x = torch.ones(1_000_000)
    dropout.eval()
    assert dropout(x) is x
    dropout.train()
    out = dropout(x)
    assert set(out.unique().tolist()) == {0.0, 2.5}
    keep = 1 - round(0.6 * 2 ** 15) / 2 ** 15
    assert abs(keep - 0.4) < 2 ** -16
    # 1e6 draws: the standard deviation of the rate is 0.0005
    assert (out != 0).float().mean().item() == pytest.approx(keep, abs=0.002)
    assert torch.equal(cora.FastDropout(0.0).train()(x), x)
    assert (cora.FastDropout(0.1).train()(x) != 0).float().mean().item() == pytest.approx(0.9, abs=0.002)


def test_sparse_input_linear_matches_linear(generator):
    """Same output and weight gradient as `nn.Linear`, through two sparsity patterns and back."""
    linear = torch.nn.Linear(20, 6, bias=False)
    sparse = cora.SparseInputLinear(linear)
    assert sparse.weight is linear.weight
    patterns = [small_graph(generator, n_nodes=n).x.to_sparse_csr() for n in (30, 45)]
    for x in patterns + patterns[:1]:
        g = torch.randn(x.shape[0], 6, generator=generator)
        expected_out = x.to_dense() @ linear.weight.detach().T
        expected_grad = g.T @ x.to_dense()
        linear.weight.grad = None
        out = sparse(x)
        (out * g).sum().backward()
        torch.testing.assert_close(out, expected_out)
        torch.testing.assert_close(linear.weight.grad, expected_grad)
        assert sparse.pattern[1] is not None and sparse.pattern[1].data_ptr() == x.col_indices().data_ptr()
    # Dropout keeps the pattern, so the sorted transpose is reused
    pattern = sparse.pattern
    sparse(cora.SparseInputDropout(0.5).train()(patterns[0]))
    assert sparse.pattern is pattern
    with torch.no_grad():
        torch.testing.assert_close(sparse(patterns[1]), patterns[1].to_dense() @ linear.weight.T)


def test_model_replaces_only_the_first_layers_linear_maps():
    for model, share in (('gatv2', False), ('gatv2', True), ('gat', False)):
        gat = cora.GAT(cora.LAYERS[model, 'edges'], 20, 3, 2, 4, 0.6, share_weights=share)
        maps = [m for m in gat.layer1.children() if isinstance(m, torch.nn.Linear)]
        assert maps and all(isinstance(m, cora.SparseInputLinear) for m in maps)
        assert not any(isinstance(m, cora.SparseInputLinear) for m in gat.output.modules())
        if share:
            assert gat.layer1.linear_l is gat.layer1.linear_r


def test_sparse_input_dropout_is_dropout(generator):
    data = small_graph(generator, n_nodes=200, n_features=50)
    x = data.x.to_sparse_csr()
    dropout = cora.SparseInputDropout(0.5)
    dropout.eval()
    assert dropout(x) is x
    dropout.train()
    dropped = dropout(x).to_dense()
    dense = data.x
    # Zeros stay zeros; every non-zero is dropped or scaled by 1 / (1 - p).
    assert torch.all(dropped[dense == 0] == 0)
    kept = dropped[dense != 0] / dense[dense != 0]
    assert set(kept.unique().tolist()) <= {0.0, 2.0}
    assert 0.4 < (kept == 0).float().mean().item() < 0.6


def test_model_shapes(generator):
    data = small_graph(generator)
    x, edge_index = cora.prepare_inputs(data, 'edges', 2, 4, torch.device('cpu'))
    model = cora.GAT(cora.LAYERS['gatv2', 'edges'], 20, 3, n_heads=2, n_hidden=4, dropout=0.6)
    assert model.layer1.n_heads == 2 and model.layer1.out_features == 8 and model.layer1.is_concat
    assert model.output.n_heads == 1 and not model.output.is_concat
    assert model(x, edge_index).shape == (30, 3)


def test_share_weights_only_for_gatv2():
    assert cora.GAT(cora.LAYERS['gatv2', 'edges'], 5, 3, 2, 4, 0.6, share_weights=True).layer1.share_weights
    assert not hasattr(cora.GAT(cora.LAYERS['gat', 'edges'], 5, 3, 2, 4, 0.6, share_weights=True).layer1,
                       'share_weights')


@needs_planetoid
def test_short_run_writes_summary_and_checkpoint(tmp_path, labml_logs):
    summary_path = tmp_path / 'summary.json'
    cora.main(['--data-dir', str(PLANETOID), '--epochs', '3', '--seeds', '2', '--seed', '5', '--quiet',
               '--summary-json', str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert [run['seed'] for run in summary['runs']] == [5, 6]
    assert all(run['epochs'] == 3 for run in summary['runs'])
    assert summary['test_accuracy']['n'] == 2
    assert 0 <= summary['test_accuracy']['mean'] <= 100
    checkpoints = sorted(labml_logs.glob('cora_gatv2/*/checkpoints/best.pt'))
    assert sorted(Path(run['checkpoint']) for run in summary['runs']) == checkpoints
    assert (checkpoints[0].parent.parent / 'configs.yaml').is_file()
    state = torch.load(checkpoints[0], weights_only=True)
    assert state['layer1.attn'].shape == (8, 8)


@needs_planetoid
def test_parallel_seeds_match_sequential(tmp_path, labml_logs):
    """Seeds trained side by side in worker processes give the runs of one process, in seed order."""
    args = ['--data-dir', str(PLANETOID), '--epochs', '4', '--seeds', '2', '--quiet']
    sequential, parallel = tmp_path / 'sequential.json', tmp_path / 'parallel.json'
    cora.main(args + ['--jobs', '1', '--summary-json', str(sequential)])
    cora.main(args + ['--jobs', '2', '--summary-json', str(parallel)])
    sequential, parallel = json.loads(sequential.read_text()), json.loads(parallel.read_text())
    assert (sequential['jobs'], parallel['jobs']) == (1, 2)
    assert [run['seed'] for run in parallel['runs']] == [0, 1]
    for one, other in zip(sequential['runs'], parallel['runs']):
        assert [epoch['loss.train'] for epoch in one['history']] == pytest.approx(
            [epoch['loss.train'] for epoch in other['history']], rel=1e-4)
    # The workers keep their runs in the parent's labml folder
    assert len(list(labml_logs.glob('cora_gatv2/*/checkpoints/best.pt'))) == 4


def test_report_lists_seeds_and_anchors():
    summary = {'config': {'model': 'gatv2', 'impl': 'edges', 'dataset': 'cora'},
               'runs': [{'seed': 0, 'epochs': 200, 'best_epoch': 90, 'val_accuracy': 0.81,
                         'test_accuracy': 0.832, 'seconds': 3.0}],
               'test_accuracy': {'mean': 83.2, 'std': 0.0, 'n': 1}, 'seconds': 3.0, 'wall_seconds': 4.5,
               'jobs': 1}
    text = cora.report(summary)
    assert '83.2' in text and '83.0 ± 0.7' in text and '82.1' in text
    assert '3.0 s of training, 4.5 s in all (1 process)' in text


def test_summarize():
    assert cora.summarize([0.8, 0.84]) == {'mean': 82.0, 'std': 2.83, 'n': 2}


def test_dense_refused_when_too_big(monkeypatch):
    monkeypatch.setattr(cora, 'available_memory_bytes', lambda: 2 ** 30)
    with pytest.raises(MemoryError, match='--impl dense needs about 5.2 GiB for 2708 nodes.*use --impl edges'):
        cora.check_dense_fits(2708, 8, 8)
    cora.check_dense_fits(100, 8, 8)


@pytest.mark.parametrize('argv, error, message', [
    (['--dataset', 'pubmed'], SystemExit, None),
    (['--model', 'gcn'], SystemExit, None),
])
def test_bad_choices_exit(argv, error, message):
    with pytest.raises(error):
        cora.parse_args(argv)


@pytest.mark.parametrize('changes, message', [
    ({'data_dir': '/nonexistent/planetoid'}, '--data-dir /nonexistent/planetoid is not a folder'),
    ({'epochs': 0}, '--epochs must be at least 1'),
    ({'jobs': 0}, '--jobs must be at least 1'),
    ({'dropout': 1.0}, r'--dropout must be in \[0, 1\)'),
    ({'dataset': 'pubmed'}, "Unknown Planetoid dataset 'pubmed'"),
])
def test_bad_settings(changes, message):
    config = cora.Config(**changes)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        cora.run(config)


def test_corrupt_file_is_named(tmp_path):
    for path in PLANETOID.glob('ind.cora.*') if PLANETOID else []:
        (tmp_path / path.name).write_bytes(path.read_bytes())
    if not PLANETOID:
        pytest.skip('needs the Planetoid files')
    (tmp_path / 'ind.cora.graph').write_bytes(b'not a pickle')
    with pytest.raises(ValueError, match='ind.cora.graph'):
        cora.run(cora.Config(data_dir=str(tmp_path), epochs=1, writers=set()))


def test_early_stopping_gat_criterion():
    """The GAT paper's rule: improving either metric resets the patience; weights are kept only when both are best."""
    stopping = cora.EarlyStopping('gat', patience=2)
    # (accuracy, loss) -> (keep, stop)
    steps = [((0.5, 1.0), (True, False)),    # first epoch: best on both
             ((0.6, 1.1), (False, False)),   # accuracy improves, loss does not: patience reset, weights not kept
             ((0.6, 0.9), (True, False)),    # both at their best: kept
             ((0.5, 1.2), (False, False)),   # neither: 1 bad epoch
             ((0.55, 1.0), (False, True))]   # neither: 2 bad epochs, stop
    for (acc, loss), expected in steps:
        assert stopping.step(acc, loss) == expected


def test_early_stopping_accuracy_criterion():
    stopping = cora.EarlyStopping('accuracy', patience=2)
    steps = [((0.5, 1.0), (True, False)),
             ((0.5, 0.9), (True, False)),    # same accuracy, lower loss: kept
             ((0.5, 0.95), (False, False)),
             ((0.7, 2.0), (True, False)),    # higher accuracy whatever the loss
             ((0.6, 0.1), (False, False)),
             ((0.7, 2.0), (False, True))]
    for (acc, loss), expected in steps:
        assert stopping.step(acc, loss) == expected
