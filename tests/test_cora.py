"""Tests of the Cora experiment: the model, its inputs, the training loop, the summary and the errors."""

import json
from pathlib import Path

import pytest
import torch
from labml import lab

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


@pytest.fixture
def labml_logs(tmp_path):
    """Keep the test's labml runs in a temporary folder instead of the repository's `logs/`."""
    lab.configure({'experiments_path': str(tmp_path / 'logs')})
    yield tmp_path / 'logs'
    lab.configure({'experiments_path': 'logs'})


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


def test_report_lists_seeds_and_anchors():
    summary = {'config': {'model': 'gatv2', 'impl': 'edges', 'dataset': 'cora'},
               'runs': [{'seed': 0, 'epochs': 200, 'best_epoch': 90, 'val_accuracy': 0.81,
                         'test_accuracy': 0.832, 'seconds': 3.0}],
               'test_accuracy': {'mean': 83.2, 'std': 0.0, 'n': 1}, 'seconds': 3.0}
    text = cora.report(summary)
    assert '83.2' in text and '83.0 ± 0.7' in text and '82.1' in text


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
