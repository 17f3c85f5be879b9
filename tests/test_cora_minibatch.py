"""
Tests of the mini-batch Cora experiment: the model on blocks against the full-batch model, an epoch,
the settings, and the command line end to end. The sampler has its own tests (`test_sampling.py`).
"""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import (PLANETOID, REPO, assert_same_runs, load_experiment, needs_planetoid, random_edge_index,
                      small_planetoid, the_mistake)
from labml_gat import distributed, fast
from labml_gat.datasets import load_planetoid
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.model import TwoLayerGAT
from labml_gat.sampling import NeighbourSampler
from labml_gat.settings import UsageError

mb = load_experiment('cora_minibatch')
SCRIPT = REPO / 'experiments' / 'cora_minibatch.py'


@pytest.fixture
def graph(generator):
    """A random directed graph on 60 nodes without self loops; node 0 has no in-edge."""
    return random_edge_index(60, 400, generator, self_loops=False), 60


def sparse_features(generator, n_nodes: int, n_features: int = 9) -> torch.Tensor:
    return fast.to_sparse_csr((torch.rand(n_nodes, n_features, generator=generator) < 0.4).float())


# ## The model on blocks equals the full-batch model

def model_pair(layer: str, in_features: int, n_classes: int):
    """
    The two-layer model as built (it takes dense features and the whole graph), and the mini-batch
    model with the same weights (random biases) and the speed-ups, as the experiment runs it; in eval mode.
    """
    torch.manual_seed(3)
    full = TwoLayerGAT(mb.LAYERS[layer], in_features, n_classes, 4, 4, 0.6).eval()
    with torch.no_grad():
        for module in (full.layer1, full.output):
            module.bias.normal_()
    mini = fast.speed_up(mb.MiniBatchGAT(mb.LAYERS[layer], in_features, n_classes, 4, 4, 0.6)).eval()
    mini.load_state_dict(full.state_dict())
    return full, mini


def with_self_loops(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    return torch.cat([edge_index, torch.arange(n_nodes).expand(2, -1)], dim=1)


@pytest.mark.parametrize('layer', ['gatv2', 'gat'])
def test_all_neighbours_give_the_full_batch_outputs(graph, generator, layer):
    edge_index, n_nodes = graph
    x = sparse_features(generator, n_nodes)
    full, mini = model_pair(layer, 9, 3)
    expected = full(x.to_dense(), with_self_loops(edge_index, n_nodes))
    seeds = torch.tensor([0, 31, 2, 57, 14])
    batch = NeighbourSampler(edge_index, n_nodes).sample(seeds, mb.ALL_NEIGHBOURS)
    torch.testing.assert_close(mini(fast.csr_rows(x, batch.n_id), batch.blocks), expected[seeds],
                               atol=1e-5, rtol=1e-5)


@needs_planetoid
@pytest.mark.parametrize('layer', ['gatv2', 'gat'])
def test_all_neighbours_give_the_full_batch_outputs_on_cora(layer):
    data = load_planetoid('cora', PLANETOID)
    full, mini = model_pair(layer, data.num_features, data.num_classes)
    expected = full(data.x, data.edge_index_with_self_loops())
    x = fast.to_sparse_csr(data.x)
    sampler = NeighbourSampler(data.edge_index, data.num_nodes)
    # The node with the most neighbours, some training nodes, and random ones
    degree = torch.bincount(data.edge_index[1], minlength=data.num_nodes)
    seeds = torch.cat([degree.argmax().view(1), torch.arange(5, 25),
                       1000 + torch.randperm(1700, generator=torch.Generator().manual_seed(0))[:40]])
    batch = sampler.sample(seeds, mb.ALL_NEIGHBOURS)
    torch.testing.assert_close(mini(fast.csr_rows(x, batch.n_id), batch.blocks), expected[seeds],
                               atol=1e-5, rtol=1e-5)
    # Evaluation in batches gives the full-batch loss and accuracy
    val = data.val_mask.nonzero().squeeze(1)
    loss, val_accuracy = mb.evaluate(mini, sampler, x, data.y, val, batch_size=64)
    expected_loss = torch.nn.functional.cross_entropy(expected[val], data.y[val]).item()
    assert loss == pytest.approx(expected_loss, abs=1e-5)
    # The count of correct nodes over their number, in float64
    assert val_accuracy == (expected[val].argmax(dim=-1) == data.y[val]).sum().item() / len(val)


@needs_planetoid
def test_the_numbers_quoted_for_cora():
    """The module docstring: an average degree of 3.9; a fanout of 10 leaves out 10% of the edges,
    those of the 3.5% of nodes with more than 10 neighbours; batches of 35 reach about 500 nodes."""
    data = load_planetoid('cora', PLANETOID)
    degree = torch.bincount(data.edge_index[1], minlength=data.num_nodes)
    assert round(degree.float().mean().item(), 1) == 3.9
    assert round((degree > 10).float().mean().item(), 3) == 0.035
    # Every node as a seed, one hop: the sampled edges of all nodes
    batch = NeighbourSampler(data.edge_index, data.num_nodes).sample(torch.arange(data.num_nodes), [10])
    sampled = batch.blocks[0].edge_index.shape[1] - data.num_nodes
    assert sampled == degree.clamp(max=10).sum()
    assert round(1 - sampled / data.edge_index.shape[1], 2) == 0.10
    # Batches of 35 training nodes with fanouts (10, 10) reach about 500 nodes
    sampler, generator = NeighbourSampler(data.edge_index, data.num_nodes), torch.Generator().manual_seed(0)
    train = data.train_mask.nonzero().squeeze(1)
    sizes = [len(sampler.sample(seeds, [10, 10], generator).n_id)
             for _ in range(10) for seeds in train[torch.randperm(140, generator=generator)].split(35)]
    assert 450 < sum(sizes) / len(sizes) < 550


def test_the_batch_sizes_quoted_for_cora():
    """The module docstring: batches of 35 split Cora's 140 training nodes into 4, batches of 32 or
    64 would leave a last batch of 12, and of the sizes from 32 up that split them evenly
    (35, 70, 140) 35 is the smallest (smaller ones, 28 or 20, split them evenly too)."""
    n_train = 140
    assert mb.MiniBatchSettings().batch_size == 35 and n_train // 35 == 4 and n_train % 35 == 0
    assert n_train % 32 == n_train % 64 == 12
    assert [size for size in range(32, n_train + 1) if n_train % size == 0] == [35, 70, 140]


def test_a_sampled_batch_is_the_full_model_on_its_subgraph(graph, generator):
    """What PyG does with `NeighborLoader`: every layer on the whole sampled subgraph, the first
    `batch_size` rows kept. It gives the seeds the outputs of the blocks."""
    edge_index, n_nodes = graph
    x = sparse_features(generator, n_nodes)
    full, mini = model_pair('gatv2', 9, 3)
    batch = NeighbourSampler(edge_index, n_nodes).sample(torch.tensor([8, 1, 30]), [2, 2], generator)
    x_batch = fast.csr_rows(x, batch.n_id)
    # The first block holds every sampled edge, in the batch's local numbers
    subgraph = full(x_batch.to_dense(), batch.blocks[0].edge_index)[:batch.batch_size]
    torch.testing.assert_close(mini(x_batch, batch.blocks), subgraph, atol=1e-5, rtol=1e-5)


def test_training_mode_runs_and_has_gradients(graph, generator):
    edge_index, n_nodes = graph
    x = sparse_features(generator, n_nodes)
    _, mini = model_pair('gatv2', 9, 3)
    mini.train()
    batch = NeighbourSampler(edge_index, n_nodes).sample(torch.arange(6), [3, 3], generator)
    logits = mini(fast.csr_rows(x, batch.n_id), batch.blocks)
    assert logits.shape == (6, 3)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mini.parameters())


def test_the_mini_batch_model_is_the_two_layer_model():
    full, mini = model_pair('gat', 9, 3)
    assert isinstance(mini, TwoLayerGAT) and full.state_dict().keys() == mini.state_dict().keys()
    assert mb.LAYERS == {'gatv2': EdgeGraphAttentionV2Layer, 'gat': EdgeGraphAttentionLayer}


def test_bad_model_inputs(graph, generator):
    edge_index, n_nodes = graph
    x = fast.to_sparse_csr(torch.rand(n_nodes, 9, generator=generator))
    _, mini = model_pair('gatv2', 9, 3)
    batch = NeighbourSampler(edge_index, n_nodes).sample(torch.tensor([3]), [2, 2], generator)
    x_batch = fast.csr_rows(x, batch.n_id)
    with pytest.raises(ValueError, match='the model takes 2 blocks, one per layer, got 1'):
        mini(x_batch, batch.blocks[:1])
    rows = len(batch.n_id)
    with pytest.raises(ValueError, match=f'a row for each of the {rows} nodes of the batch, got 2 rows'):
        mini(fast.csr_rows(x, batch.n_id[:2]), batch.blocks)
    with pytest.raises(TypeError, match='x must be a sparse CSR matrix .* got layout torch.strided'):
        mini(x_batch.to_dense(), batch.blocks)
    with pytest.raises(ValueError, match='the first block must have the sources of the second as targets'):
        mini(x_batch, [batch.blocks[0], batch.blocks[0]])


# ## An epoch, and one seed

def test_train_epoch_and_evaluate(generator):
    data = small_planetoid(generator, n_nodes=60)
    settings = mb.MiniBatchSettings(batch_size=7, fanouts=[3, 2], n_heads=2, n_hidden=4)
    sampler = NeighbourSampler(data.edge_index, data.num_nodes)
    x = fast.to_sparse_csr(data.x)
    train_nodes = data.train_mask.nonzero().squeeze(1)

    def epoch(seed):
        torch.manual_seed(seed)
        model = fast.speed_up(mb.MiniBatchGAT(mb.LAYERS['gatv2'], 20, 3, 2, 4, 0.6))
        optimizer = torch.optim.Adam(model.parameters(), lr=0.005)
        before = {name: p.detach().clone() for name, p in model.named_parameters()}
        result = mb.train_epoch(model, optimizer, sampler, x, data.y, train_nodes, settings,
                                torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1))
        assert any(not torch.equal(p, before[name]) for name, p in model.named_parameters())
        return result, model

    result, model = epoch(0)
    assert set(result) == {'loss', 'accuracy', 'nodes', 'edges'}
    assert result['loss'] > 0 and 0 <= result['accuracy'] <= 1
    # At most 7 (1 + 3 + 3 * 2) nodes per batch
    assert 7 <= result['nodes'] <= 7 * 10 and result['edges'] > 0
    # The seeds fix the weights, the dropout, the batches and the samples
    assert epoch(0)[0] == result
    assert epoch(1)[0] != result
    loss, val_accuracy = mb.evaluate(model, sampler, x, data.y, data.val_mask.nonzero().squeeze(1), 6)
    assert loss > 0 and 0 <= val_accuracy <= 1
    assert not model.training
    # The next epoch trains with dropout again
    mb.train_epoch(model, torch.optim.Adam(model.parameters()), sampler, x, data.y, train_nodes, settings,
                   torch.Generator(), torch.Generator())
    assert model.training


def test_each_step_is_adam_on_its_batch(generator):
    # Without dropout the epoch's loss is that of a plain loop written out here: one Adam step on
    # fresh gradients of each batch's cross-entropy, the batches drawn as the epoch draws them
    data = small_planetoid(generator, n_nodes=60)
    settings = mb.MiniBatchSettings(batch_size=4, fanouts=[3, 2], n_heads=2, n_hidden=4, dropout=0.0)
    sampler = NeighbourSampler(data.edge_index, data.num_nodes)
    x = fast.to_sparse_csr(data.x)
    train_nodes = data.train_mask.nonzero().squeeze(1)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = fast.speed_up(mb.MiniBatchGAT(mb.LAYERS['gatv2'], 20, 3, 2, 4, 0.0))
        models.append((model, torch.optim.Adam(model.parameters(), lr=0.005)))
    (model, optimizer), (reference, reference_optimizer) = models
    result = mb.train_epoch(model, optimizer, sampler, x, data.y, train_nodes, settings,
                            torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
    samples, losses = torch.Generator().manual_seed(1), []
    batches = distributed.epoch_shares(train_nodes, 4, torch.Generator().manual_seed(0))
    assert len(batches) >= 3
    for seeds, _ in batches:
        batch = sampler.sample(seeds, [3, 2], samples)
        reference_optimizer.zero_grad()
        logits = reference(fast.csr_rows(x, batch.n_id), batch.blocks)
        loss = torch.nn.functional.cross_entropy(logits, data.y[seeds], reduction='sum')
        (loss / len(seeds)).backward()
        reference_optimizer.step()
        losses.append(loss.item())
    assert result['loss'] == pytest.approx(sum(losses) / len(train_nodes), rel=1e-6)


def test_train_one_seed(generator, tmp_path):
    data = small_planetoid(generator, n_nodes=60)
    settings = mb.MiniBatchSettings(epochs=3, batch_size=8, fanouts=[3, 3], n_heads=2, n_hidden=4)
    result, model = mb.train_one_seed(settings, data, 4, tmp_path / 'best.pt')
    assert result['seed'] == 4 and result['epochs'] == 3 and len(result['history']) == 3
    assert 0 < result['nodes_per_batch'] <= 8 * 16 and result['edges_per_batch'] > 0
    state = torch.load(tmp_path / 'best.pt', weights_only=True)
    assert all(torch.equal(state[name], value) for name, value in model.state_dict().items())
    again, _ = mb.train_one_seed(settings, data, 4, tmp_path / 'again.pt')
    assert again['history'] == result['history']


def test_training_never_reads_the_test_labels(generator, tmp_path, monkeypatch):
    # As in the full-batch experiment: other test labels, the same training and the same epoch kept;
    # and the test nodes are evaluated once, after the kept weights are restored
    data = small_planetoid(generator, n_nodes=60)
    settings = mb.MiniBatchSettings(epochs=8, batch_size=8, fanouts=[3, 3], n_heads=2, n_hidden=4)
    on_test, evaluate = [], mb.evaluate

    def recorded(model, sampler, x, y, nodes, batch_size):
        on_test.append(torch.equal(nodes, data.test_mask.nonzero().squeeze(1)))
        return evaluate(model, sampler, x, y, nodes, batch_size)
    monkeypatch.setattr(mb, 'evaluate', recorded)
    result, model = mb.train_one_seed(settings, data, 4, tmp_path / 'best.pt')
    assert on_test == [False] * (len(on_test) - 1) + [True]
    y = data.y.clone()
    y[data.test_mask] = (y[data.test_mask] + 1) % data.num_classes
    again, other = mb.train_one_seed(settings, dataclasses.replace(data, y=y), 4, tmp_path / 'again.pt')
    assert again['history'] == result['history'] and again['best_epoch'] == result['best_epoch']
    assert all(torch.equal(value, other.state_dict()[name]) for name, value in model.state_dict().items())
    assert again['test_accuracy'] != result['test_accuracy']


# ## Settings

@pytest.mark.parametrize('changes, message', [
    ({'batch_size': 0}, '--batch-size must be at least 1, got 0'),
    ({'eval_batch_size': -3}, '--eval-batch-size must be at least 1, got -3'),
    ({'fanouts': [10]}, r'--fanouts needs one number per layer \(2\), got 1'),
    ({'fanouts': [10, -5]}, r'--fanouts must be -1 \(all neighbours\) or at least 1 each, got \[10, -5\]'),
    ({'fanouts': [0, 0]}, r'--fanouts must be -1 .* got \[0, 0\]; 0 would train on the nodes alone'),
    ({'epochs': 0}, '--epochs must be at least 1'),
])
def test_bad_settings(changes, message):
    with pytest.raises(UsageError, match=message):
        mb.MiniBatchSettings(**changes).check()


def test_flags():
    settings, explicit = mb.MiniBatchSettings.from_command_line(
        ['--fanouts', '5', '-1', '--batch-size', '70', '--seeds', '3', '--layer', 'gat'])
    assert settings.fanouts == [5, -1] and settings.batch_size == 70 and settings.seeds == 3
    assert settings.layer == 'gat' and explicit == {'fanouts', 'batch_size', 'seeds', 'layer'}
    default, _ = mb.MiniBatchSettings.from_command_line([])
    assert default.fanouts == [10, 10] and default.batch_size == 35 and default.eval_batch_size == 500
    assert default.experiment_name() == 'cora_gatv2_minibatch'
    assert default.comment(2) == 'batches of 35, fanouts [10, 10], seed 2'
    for argv in (['--fanouts', '5', 'x'], ['--no-such-flag'], ['--impl', 'edges']):
        with pytest.raises(SystemExit):
            mb.MiniBatchSettings.from_command_line(argv)


def test_report(generator):
    data = small_planetoid(generator)
    summary = {'settings': {'layer': 'gatv2', 'dataset': 'cora', 'batch_size': 35, 'fanouts': [10, 10]},
               'runs': [{'seed': 0, 'epochs': 20, 'best_epoch': 9, 'val_accuracy': 0.8, 'test_accuracy': 0.81,
                         'seconds': 2.0, 'nodes_per_batch': 500.4, 'edges_per_batch': 1800.0}],
               'test_accuracy': {'mean': 81.0, 'std': 0.0, 'n': 1}, 'seconds': 2.0, 'wall_seconds': 2.5,
               'jobs': 1}
    lines = mb.report(summary, data).splitlines()
    n_edges = data.edge_index.shape[1] + data.num_nodes
    assert lines[0] == ('Mini-batches of 35 training nodes, fanouts [10, 10]: 500 nodes and 1800 edges per batch '
                        f'on average (the graph: 30 nodes, {n_edges} edges with self loops)')
    assert lines[1] == 'GATv2 on cora, mini-batches'
    # Under torchrun each process samples its slice of a batch: the sizes say they are the sums
    lines = mb.report({**summary, 'jobs': 2, 'torchrun': True}, data).splitlines()
    assert "edges per batch on average, summed over the 2 processes' slices (the graph" in lines[0]


# ## End to end

@needs_planetoid
def test_short_run_writes_summary_and_checkpoints(tmp_path, labml_logs, capsys):
    summary_path, logs = tmp_path / 'summary.json', tmp_path / 'runs'
    argv = ['--data-dir', str(PLANETOID), '--epochs', '3', '--seeds', '2', '--seed', '5', '--quiet', '--jobs', '1',
            '--batch-size', '64', '--fanouts', '4', '3', '--logs', str(logs), '--summary-json', str(summary_path)]
    mb.main(argv)
    summary = json.loads(summary_path.read_text())
    # The command of the run, which a record of it must give
    assert (summary['script'], summary['argv']) == ('cora_minibatch.py', argv)
    assert summary['settings']['fanouts'] == [4, 3] and summary['settings']['batch_size'] == 64
    assert [run['seed'] for run in summary['runs']] == [5, 6]
    assert all(run['epochs'] == 3 and len(run['history']) == 3 for run in summary['runs'])
    assert 0 <= summary['test_accuracy']['mean'] <= 100 and summary['test_accuracy']['n'] == 2
    # 140 training nodes in batches of 64, 64 and 12: at most 64 (1 + 4 + 4 * 3) nodes each
    assert all(0 < run['nodes_per_batch'] <= 64 * 17 for run in summary['runs'])
    checkpoints = sorted(logs.glob('cora_gatv2_minibatch/*/checkpoints/best.pt'))
    assert sorted(Path(run['checkpoint']) for run in summary['runs']) == checkpoints
    state = torch.load(checkpoints[0], weights_only=True)
    assert state.keys() == TwoLayerGAT(EdgeGraphAttentionV2Layer, 1433, 7, 8, 8, 0.6).state_dict().keys()
    out = capsys.readouterr().out
    assert 'Mini-batches of 64 training nodes, fanouts [4, 3]' in out
    assert not labml_logs.exists()


@pytest.mark.slow
@needs_planetoid
def test_parallel_seeds_in_a_subprocess(tmp_path, labml_logs):
    logs, summary_path = tmp_path / 'runs', tmp_path / 'summary.json'
    result = subprocess.run([sys.executable, str(SCRIPT), '--data-dir', str(PLANETOID), '--epochs', '2',
                             '--seeds', '2', '--jobs', '2', '--logs', str(logs), '--summary-json', str(summary_path)],
                            capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    assert summary['jobs'] == 2 and [run['seed'] for run in summary['runs']] == [0, 1]
    assert len(list(logs.glob('cora_gatv2_minibatch/*/checkpoints/best.pt'))) == 2
    # The runs of one process, seed by seed
    sequential = mb.main(['--data-dir', str(PLANETOID), '--epochs', '2', '--seeds', '2', '--jobs', '1',
                          '--quiet', '--logs', str(tmp_path / 'one')])
    assert_same_runs(sequential['runs'], summary['runs'])
    # A line per seed as it ends, then the report
    assert result.stdout.count('seed ') >= 2 and 'Mini-batches of 35 training nodes' in result.stdout
    assert not (tmp_path / 'logs').exists()


MISTAKES = {
    'fanouts-zero': (['--fanouts', '0', '0'], '--fanouts must be -1 (all neighbours) or at least 1 each'),
    'fanouts-one': (['--fanouts', '10'], '--fanouts needs one number per layer (2), got 1'),
    'batch-size': (['--batch-size', '0'], '--batch-size must be at least 1, got 0'),
    'epochs': (['--epochs', '0'], '--epochs must be at least 1, got 0'),
    'jobs': (['--jobs', '0'], '--jobs must be at least 1, got 0'),
    'jobs-without-seeds': (['--jobs', '2'], 'a run without --seeds trains one seed and does not read --jobs'),
    'empty-data-dir': (['--data-dir', '{tmp}/empty'], "Planetoid 'cora': missing in {tmp}/empty"),
}


@pytest.fixture(scope='module')
def mistakes(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('mistakes')
    (tmp / 'empty').mkdir()
    (tmp / 'logs').mkdir()
    processes = {name: subprocess.Popen([sys.executable, str(SCRIPT), *[arg.format(tmp=tmp) for arg in args],
                                         '--logs', str(tmp / 'logs' / name)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
                 for name, (args, _) in MISTAKES.items()}
    return tmp, {name: (process.wait(timeout=600), *process.communicate()) for name, process in processes.items()}


@pytest.mark.slow
@pytest.mark.parametrize('name', MISTAKES)
def test_a_mistake_is_one_line_with_exit_status_2(mistakes, name):
    tmp, results = mistakes
    message = the_mistake(*results[name], 'cora_minibatch.py')
    assert message.startswith(MISTAKES[name][1].format(tmp=tmp)), message
    assert not (tmp / 'logs' / name).exists()
