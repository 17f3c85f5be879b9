"""
Tests of the mini-batch Cora experiment: the sampler's blocks, the model on blocks against the full-batch
model, the errors, and a short training run.
"""

import json
import warnings
from pathlib import Path

import pytest
import torch

from conftest import PLANETOID, load_experiment, needs_planetoid, random_edge_index
from labml_gat.datasets import load_planetoid

mb = load_experiment('cora_minibatch')
# The `cora` module the experiment imports, so that its classes are the ones `cora_minibatch` uses
cora = mb.cora


def sparse(x: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in beta')
        return x.to_sparse_csr()


def edge_set(edge_index: torch.Tensor) -> set:
    return set(map(tuple, edge_index.T.tolist()))


def global_edges(batch, block) -> set:
    """The block's edges as `(j, i)` pairs of graph node ids, without the self loops."""
    src, dst = batch.n_id[block.edge_index]
    return edge_set(torch.stack([src, dst])[:, src != dst])


def in_degrees(block) -> torch.Tensor:
    """Sampled in-edges of every target of the block, without its self loop."""
    src, dst = block.edge_index
    return torch.bincount(dst[src != dst], minlength=block.n_dst)


@pytest.fixture
def graph(generator):
    """A random directed graph on 60 nodes without self loops; node 0 has no in-edge."""
    return random_edge_index(60, 400, generator, self_loops=False), 60


# ## The blocks

def test_blocks_follow_the_targets_first_convention(graph, generator):
    edge_index, n_nodes = graph
    seeds = torch.tensor([5, 0, 17, 42])
    batch = mb.NeighbourSampler(edge_index, n_nodes).sample(seeds, [3, 2], generator)
    # The seeds are the first nodes, every node once
    assert batch.batch_size == 4 and torch.equal(batch.n_id[:4], seeds)
    assert len(torch.unique(batch.n_id)) == len(batch.n_id)
    first, last = batch.blocks
    # The first layer reads every node of the batch; each layer's targets are the next layer's sources
    assert first.n_src == len(batch.n_id) and first.n_dst == last.n_src and last.n_dst == 4
    assert first.n_dst <= first.n_src
    edges = edge_set(edge_index)
    for block in batch.blocks:
        src, dst = block.edge_index
        assert block.edge_index.dtype == torch.int64
        assert src.max() < block.n_src and dst.max() < block.n_dst and src.min() >= 0 and dst.min() >= 0
        # Every target has exactly one self loop, and every other edge is an edge of the graph
        loops = dst[src == dst]
        assert torch.equal(loops.sort().values, torch.arange(block.n_dst))
        assert global_edges(batch, block) <= edges


def test_each_node_keeps_at_most_fanout_in_edges_and_the_same_in_every_layer(graph, generator):
    edge_index, n_nodes = graph
    sampler = mb.NeighbourSampler(edge_index, n_nodes)
    batch = sampler.sample(torch.arange(10, 20), [2, 3], generator)
    first, last = batch.blocks
    degree = torch.bincount(edge_index[1], minlength=n_nodes)[batch.n_id]
    # Hop 1 samples the seeds' in-edges (fanout 2), hop 2 those of the nodes hop 1 added (fanout 3):
    # without replacement, so exactly min(fanout, in-degree) of them.
    assert torch.equal(in_degrees(last), degree[:10].clamp(max=2))
    assert torch.equal(in_degrees(first)[10:], degree[10:first.n_dst].clamp(max=3))
    # A seed sees the same sampled neighbours in both layers
    assert torch.equal(in_degrees(first)[:10], in_degrees(last))
    assert global_edges(batch, last) <= global_edges(batch, first)
    # The nodes of the last hop are sources only
    assert first.n_src > first.n_dst


def test_all_neighbours_keep_every_in_edge(graph):
    edge_index, n_nodes = graph
    seeds = torch.tensor([0, 3, 9])
    batch = mb.NeighbourSampler(edge_index, n_nodes).sample(seeds, [-1, -1])
    first, last = batch.blocks
    into = {i: {j for j, t in edge_set(edge_index) if t == i} for i in range(n_nodes)}
    assert global_edges(batch, last) == {(j, i) for i in seeds.tolist() for j in into[i]}
    targets = batch.n_id[:first.n_dst].tolist()
    assert global_edges(batch, first) == {(j, i) for i in targets for j in into[i]}
    # The first layer's targets are the seeds and all their in-neighbours
    assert set(targets) == set(seeds.tolist()) | {j for i in seeds.tolist() for j in into[i]}


def forest(n_trees: int, children: int, depth: int) -> torch.Tensor:
    """Disjoint trees whose edges point to the roots `0 .. n_trees - 1`: every inner node has `children`
    in-neighbours of its own, so a sample never meets a node twice."""
    edges, level, next_id = [], list(range(n_trees)), n_trees
    for _ in range(depth):
        new_level = []
        for parent in level:
            for child in range(next_id, next_id + children):
                edges.append((child, parent))
                new_level.append(child)
            next_id += children
        level = new_level
    return torch.tensor(edges).T


def test_a_batch_is_bounded_by_the_product_of_the_fanouts():
    """The bound of the module docstring, reached on trees: B (1 + f1 + f1 f2) nodes, B (f1 + f1 f2) edges."""
    edge_index = forest(n_trees=6, children=5, depth=2)
    sampler = mb.NeighbourSampler(edge_index, int(edge_index.max()) + 1)
    batch = sampler.sample(torch.arange(4), [3, 2], torch.Generator().manual_seed(0))
    first, last = batch.blocks
    assert len(batch.n_id) == 4 * (1 + 3 + 3 * 2)
    assert first.edge_index.shape[1] == 4 * (3 + 3 * 2) + first.n_dst
    assert last.edge_index.shape[1] == 4 * 3 + 4
    # On any graph it is an upper bound
    for seed in range(5):
        edge_index = random_edge_index(80, 1200, torch.Generator().manual_seed(seed), self_loops=False)
        batch = mb.NeighbourSampler(edge_index, 80).sample(torch.arange(4), [3, 2])
        assert len(batch.n_id) <= 4 * (1 + 3 + 3 * 2)
        assert batch.blocks[0].edge_index.shape[1] - batch.blocks[0].n_dst <= 4 * (3 + 3 * 2)


def test_sampling_is_reproducible_with_a_generator(graph):
    edge_index, n_nodes = graph
    sampler = mb.NeighbourSampler(edge_index, n_nodes)
    seeds = torch.arange(20, 30)

    def draw(seed: int):
        batch = sampler.sample(seeds, [2, 2], torch.Generator().manual_seed(seed))
        return batch.n_id, [block.edge_index for block in batch.blocks]

    n_id, blocks = draw(7)
    again_n_id, again_blocks = draw(7)
    assert torch.equal(n_id, again_n_id) and all(map(torch.equal, blocks, again_blocks))
    other_n_id, other_blocks = draw(8)
    assert not (torch.equal(other_n_id, n_id) and all(map(torch.equal, other_blocks, blocks)))


def test_sampling_is_uniform():
    """2000 targets with 10 in-neighbours each, 3 sampled per target: every neighbour is drawn 30% of the time."""
    n_targets, degree, fanout = 2000, 10, 3
    targets = torch.arange(n_targets).repeat_interleave(degree)
    sources = n_targets + torch.arange(n_targets * degree)
    sampler = mb.NeighbourSampler(torch.stack([sources, targets]), n_targets * (degree + 1))
    batch = sampler.sample(torch.arange(n_targets), [fanout], torch.Generator().manual_seed(0))
    src, dst = batch.n_id[batch.blocks[0].edge_index]
    # Which of its target's 10 neighbours each sampled source is
    k = (src[src != dst] - n_targets) % degree
    counts = torch.bincount(k, minlength=degree)
    # 600 expected for each, with a standard deviation of about 20
    assert (counts - n_targets * fanout / degree).abs().max() < 100, counts


def test_the_graphs_self_loops_are_not_counted_twice(graph):
    edge_index, n_nodes = graph
    loops = torch.arange(n_nodes).expand(2, -1)
    sampler = mb.NeighbourSampler(torch.cat([edge_index, loops], dim=1), n_nodes)
    batch = sampler.sample(torch.tensor([4]), [-1, -1])
    for block in batch.blocks:
        src, dst = block.edge_index
        assert (src == dst).sum() == block.n_dst


def test_append_nodes_keeps_positions_and_order_of_first_appearance():
    n_id, local = mb.append_nodes(torch.tensor([7, 3, 9]), torch.tensor([5, 3, 8, 5, 7, 1]))
    assert n_id.tolist() == [7, 3, 9, 5, 8, 1]
    assert n_id[local].tolist() == [5, 3, 8, 5, 7, 1]


def test_csr_rows_gathers_rows(generator):
    x = (torch.rand(12, 7, generator=generator) < 0.3).float() * torch.rand(12, 7, generator=generator)
    x[4] = 0
    rows = torch.tensor([4, 0, 11, 0, 5])
    gathered = cora.csr_rows(sparse(x), rows)
    assert gathered.layout == torch.sparse_csr and gathered.shape == (5, 7)
    assert torch.equal(gathered.to_dense(), x[rows])
    assert cora.csr_rows(sparse(x), torch.arange(0)).shape == (0, 7)


# ## The model on blocks equals the full-batch model

def model_pair(model: str, in_features: int, n_classes: int):
    """A full-batch model and a mini-batch model with the same weights (random biases), in eval mode."""
    torch.manual_seed(3)
    full = cora.GAT(cora.LAYERS[model, 'edges'], in_features, n_classes, 4, 4, 0.6).eval()
    with torch.no_grad():
        for layer in (full.layer1, full.output):
            layer.bias.normal_()
    mini = mb.MiniBatchGAT(cora.LAYERS[model, 'edges'], in_features, n_classes, 4, 4, 0.6).eval()
    mini.load_state_dict(full.state_dict())
    return full, mini


@pytest.mark.parametrize('model', ['gatv2', 'gat'])
def test_all_neighbours_give_the_full_batch_outputs(graph, generator, model):
    edge_index, n_nodes = graph
    x = sparse((torch.rand(n_nodes, 9, generator=generator) < 0.4).float())
    full, mini = model_pair(model, 9, 3)
    expected = full(x, torch.cat([edge_index, torch.arange(n_nodes).expand(2, -1)], dim=1))
    seeds = torch.tensor([0, 31, 2, 57, 14])
    batch = mb.NeighbourSampler(edge_index, n_nodes).sample(seeds, mb.ALL_NEIGHBOURS)
    torch.testing.assert_close(mini(cora.csr_rows(x, batch.n_id), batch.blocks), expected[seeds],
                               atol=1e-5, rtol=1e-5)


@needs_planetoid
@pytest.mark.parametrize('model', ['gatv2', 'gat'])
def test_all_neighbours_give_the_full_batch_outputs_on_cora(model):
    data = load_planetoid('cora', PLANETOID)
    x, graph = cora.prepare_inputs(data, 'edges', 4, 4, torch.device('cpu'))
    full, mini = model_pair(model, data.num_features, data.num_classes)
    expected = full(x, graph)
    sampler = mb.NeighbourSampler(data.edge_index, data.num_nodes)
    # The node with the most neighbours, some training nodes, and random ones
    degree = torch.bincount(data.edge_index[1], minlength=data.num_nodes)
    seeds = torch.cat([degree.argmax().view(1), torch.arange(5, 25), 1000 + torch.randperm(1700)[:40]])
    batch = sampler.sample(seeds, mb.ALL_NEIGHBOURS)
    torch.testing.assert_close(mini(cora.csr_rows(x, batch.n_id), batch.blocks), expected[seeds],
                               atol=1e-5, rtol=1e-5)
    # Evaluation in batches gives the full-batch loss and accuracy
    val = data.val_mask.nonzero().squeeze(1)
    loss, accuracy = mb.evaluate(mini, sampler, x, data.y, val, batch_size=64)
    expected_loss = torch.nn.functional.cross_entropy(expected[val], data.y[val]).item()
    assert loss == pytest.approx(expected_loss, abs=1e-5)
    assert accuracy == cora.accuracy(expected[val], data.y[val])


@needs_planetoid
def test_the_numbers_quoted_for_cora():
    """The module docstring: an average degree of 3.9; a fanout of 10 leaves out 10% of the edges,
    those of the 3.5% of nodes with more than 10 neighbours; batches of 35 reach about 500 nodes."""
    data = load_planetoid('cora', PLANETOID)
    degree = torch.bincount(data.edge_index[1], minlength=data.num_nodes)
    assert round(degree.float().mean().item(), 1) == 3.9
    assert round((degree > 10).float().mean().item(), 3) == 0.035
    # Every node as a seed, one hop: the sampled edges of all nodes
    batch = mb.NeighbourSampler(data.edge_index, data.num_nodes).sample(torch.arange(data.num_nodes), [10])
    sampled = batch.blocks[0].edge_index.shape[1] - data.num_nodes
    assert sampled == degree.clamp(max=10).sum()
    assert round(1 - sampled / data.edge_index.shape[1], 2) == 0.10
    # Batches of 35 training nodes with fanouts (10, 10) reach about 500 nodes
    sampler, generator = mb.NeighbourSampler(data.edge_index, data.num_nodes), torch.Generator().manual_seed(0)
    train = data.train_mask.nonzero().squeeze(1)
    sizes = [len(sampler.sample(seeds, [10, 10], generator).n_id)
             for _ in range(10) for seeds in train[torch.randperm(140, generator=generator)].split(35)]
    assert 450 < sum(sizes) / len(sizes) < 550


def test_a_sampled_batch_is_the_full_model_on_its_subgraph(graph, generator):
    """What PyG does with `NeighborLoader`: every layer on the whole sampled subgraph, the first
    `batch_size` rows kept. It gives the seeds the outputs of the blocks."""
    edge_index, n_nodes = graph
    x = sparse((torch.rand(n_nodes, 9, generator=generator) < 0.4).float())
    full, mini = model_pair('gatv2', 9, 3)
    batch = mb.NeighbourSampler(edge_index, n_nodes).sample(torch.tensor([8, 1, 30]), [2, 2], generator)
    x_batch = cora.csr_rows(x, batch.n_id)
    # The first block holds every sampled edge, in the batch's local numbers
    subgraph = full(x_batch, batch.blocks[0].edge_index)[:batch.batch_size]
    torch.testing.assert_close(mini(x_batch, batch.blocks), subgraph, atol=1e-5, rtol=1e-5)


def test_training_mode_runs_and_has_gradients(graph, generator):
    edge_index, n_nodes = graph
    x = sparse((torch.rand(n_nodes, 9, generator=generator) < 0.4).float())
    _, mini = model_pair('gatv2', 9, 3)
    mini.train()
    batch = mb.NeighbourSampler(edge_index, n_nodes).sample(torch.arange(6), [3, 3], generator)
    logits = mini(cora.csr_rows(x, batch.n_id), batch.blocks)
    assert logits.shape == (6, 3)
    logits.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in mini.parameters())


# ## Errors

@pytest.mark.parametrize('edge_index, error, message', [
    (torch.zeros(2, 3), TypeError, 'edge_index must be a torch.int64 tensor, got Tensor torch.float32'),
    (torch.zeros(3, 4, dtype=torch.int64), ValueError, r'must have shape \[2, n_edges\], got \[3, 4\]'),
    (torch.tensor([[0, 10], [1, 2]]), ValueError, r'node ids in \[0, 10\), got ids from 0 to 10'),
    (torch.tensor([[0, -1], [1, 2]]), ValueError, r'node ids in \[0, 10\), got ids from -1 to 2'),
])
def test_bad_graph(edge_index, error, message):
    with pytest.raises(error, match=message):
        mb.NeighbourSampler(edge_index, 10)


@pytest.mark.parametrize('seeds, fanouts, error, message', [
    (torch.tensor([1, 2, 1]), [2], ValueError, 'seeds must be distinct, got 1 repeated'),
    (torch.tensor([1, 60]), [2], ValueError, r'seeds must be node ids in \[0, 60\), got ids from 1 to 60'),
    (torch.tensor([], dtype=torch.int64), [2], ValueError, 'at least one node, got none'),
    (torch.tensor([1, 2], dtype=torch.int32), [2], TypeError, 'seeds must be a 1-D torch.int64 tensor'),
    (torch.tensor([[1, 2]]), [2], TypeError, r'of shape \[1, 2\]'),
    (torch.tensor([1]), [2, -2], ValueError, r'fanout must be -1 .* or a number of neighbours >= 0, got -2'),
    (torch.tensor([1]), [2.5], ValueError, 'got 2.5'),
    (torch.tensor([1]), [], ValueError, 'fanouts must be a non-empty list of integers, one per hop, got'),
])
def test_bad_sample_arguments(graph, seeds, fanouts, error, message):
    sampler = mb.NeighbourSampler(*graph)
    with pytest.raises(error, match=message):
        sampler.sample(seeds, fanouts)


def test_bad_model_inputs(graph, generator):
    edge_index, n_nodes = graph
    x = sparse(torch.rand(n_nodes, 9, generator=generator))
    _, mini = model_pair('gatv2', 9, 3)
    sampler = mb.NeighbourSampler(edge_index, n_nodes)
    batch = sampler.sample(torch.tensor([3]), [2, 2], generator)
    x_batch = cora.csr_rows(x, batch.n_id)
    with pytest.raises(ValueError, match='the model takes 2 blocks, one per layer, got 1'):
        mini(x_batch, batch.blocks[:1])
    rows = len(batch.n_id)
    with pytest.raises(ValueError, match=f'a row for each of the {rows} nodes of the batch, got 2 rows'):
        mini(cora.csr_rows(x, batch.n_id[:2]), batch.blocks)
    with pytest.raises(TypeError, match='x must be a sparse CSR matrix .* got layout torch.strided'):
        mini(x_batch.to_dense(), batch.blocks)
    with pytest.raises(ValueError, match='the first block must have the sources of the second as targets'):
        mini(x_batch, [batch.blocks[0], batch.blocks[0]])


@pytest.mark.parametrize('changes, message', [
    ({'batch_size': 0}, '--batch-size must be at least 1, got 0'),
    ({'eval_batch_size': -3}, '--eval-batch-size must be at least 1, got -3'),
    ({'fanouts': [10]}, r'--fanouts needs one number per layer \(2\), got 1: \[10\]'),
    ({'fanouts': [10, -5]}, 'every fanout must be -1'),
    ({'impl': 'dense'}, "--impl must be 'edges', got 'dense'"),
    ({'epochs': 0}, '--epochs must be at least 1'),
])
def test_bad_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        mb.run(mb.Config(**changes))


def test_flags():
    config = mb.parse_args(['--fanouts', '5', '-1', '--batch-size', '70', '--seeds', '3', '--model', 'gat'])
    assert config.fanouts == [5, -1] and config.batch_size == 70 and config.seeds == 3 and config.model == 'gat'
    assert mb.parse_args([]).fanouts == [10, 10]
    with pytest.raises(SystemExit):
        mb.parse_args(['--fanouts', '5', 'x'])
    with pytest.raises(SystemExit):
        mb.parse_args(['--no-such-flag'])


# ## A short run

@needs_planetoid
def test_short_run_writes_summary_and_checkpoint(tmp_path, labml_logs, capsys):
    summary_path = tmp_path / 'summary.json'
    mb.main(['--data-dir', str(PLANETOID), '--epochs', '3', '--seeds', '2', '--seed', '5', '--quiet',
             '--batch-size', '64', '--fanouts', '4', '3', '--summary-json', str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert summary['config']['fanouts'] == [4, 3] and summary['config']['batch_size'] == 64
    assert [run['seed'] for run in summary['runs']] == [5, 6]
    assert all(run['epochs'] == 3 and len(run['history']) == 3 for run in summary['runs'])
    assert 0 <= summary['test_accuracy']['mean'] <= 100 and summary['test_accuracy']['n'] == 2
    # 140 training nodes in batches of 64, 64 and 12: at most 64 (1 + 4 + 4 * 3) nodes each
    assert all(0 < run['nodes_per_batch'] <= 64 * 17 for run in summary['runs'])
    checkpoints = sorted(labml_logs.glob('cora_gatv2_minibatch/*/checkpoints/best.pt'))
    assert sorted(Path(run['checkpoint']) for run in summary['runs']) == checkpoints
    state = torch.load(checkpoints[0], weights_only=True)
    assert state.keys() == cora.GAT(cora.LAYERS['gatv2', 'edges'], 1433, 7, 8, 8, 0.6).state_dict().keys()
    out = capsys.readouterr().out
    assert 'Mini-batches of 64 training nodes, fanouts [4, 3]' in out and 'GAT paper' in out
