"""Tests of the neighbour sampler: its blocks follow the targets-first convention, it samples uniformly
without replacement, and it names every mistake."""

import pytest
import torch

from conftest import random_edge_index
from labml_gat import sampling
from labml_gat.sampling import Block, MiniBatch, NeighbourSampler


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
    batch = NeighbourSampler(edge_index, n_nodes).sample(seeds, [3, 2], generator)
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
    sampler = NeighbourSampler(edge_index, n_nodes)
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
    batch = NeighbourSampler(edge_index, n_nodes).sample(seeds, [-1, -1])
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
    sampler = NeighbourSampler(edge_index, int(edge_index.max()) + 1)
    batch = sampler.sample(torch.arange(4), [3, 2], torch.Generator().manual_seed(0))
    first, last = batch.blocks
    assert len(batch.n_id) == 4 * (1 + 3 + 3 * 2)
    assert first.edge_index.shape[1] == 4 * (3 + 3 * 2) + first.n_dst
    assert last.edge_index.shape[1] == 4 * 3 + 4
    # On any graph it is an upper bound
    for seed in range(5):
        edge_index = random_edge_index(80, 1200, torch.Generator().manual_seed(seed), self_loops=False)
        batch = NeighbourSampler(edge_index, 80).sample(torch.arange(4), [3, 2])
        assert len(batch.n_id) <= 4 * (1 + 3 + 3 * 2)
        assert batch.blocks[0].edge_index.shape[1] - batch.blocks[0].n_dst <= 4 * (3 + 3 * 2)


def test_sampling_is_reproducible_with_a_generator(graph):
    edge_index, n_nodes = graph
    sampler = NeighbourSampler(edge_index, n_nodes)
    seeds = torch.arange(20, 30)

    def draw(seed: int):
        batch = sampler.sample(seeds, [2, 2], torch.Generator().manual_seed(seed))
        return batch.n_id, [block.edge_index for block in batch.blocks]

    n_id, blocks = draw(7)
    again_n_id, again_blocks = draw(7)
    assert torch.equal(n_id, again_n_id) and all(map(torch.equal, blocks, again_blocks))
    other_n_id, other_blocks = draw(8)
    assert not (torch.equal(other_n_id, n_id) and all(map(torch.equal, other_blocks, blocks)))


def sampled_neighbours(n_targets: int, degree: int, fanout: int):
    """Targets `0..n_targets - 1`, each with `degree` in-neighbours of its own, `fanout` of them sampled
    once: the sampled edges but the self loops, as `(which of its target's neighbours, target)`."""
    targets = torch.arange(n_targets).repeat_interleave(degree)
    sources = n_targets + torch.arange(n_targets * degree)
    sampler = NeighbourSampler(torch.stack([sources, targets]), n_targets * (degree + 1))
    batch = sampler.sample(torch.arange(n_targets), [fanout], torch.Generator().manual_seed(0))
    src, dst = batch.n_id[batch.blocks[0].edge_index]
    keep = src != dst
    return (src[keep] - n_targets) % degree, dst[keep]


def test_sampling_is_uniform():
    """2000 targets with 10 in-neighbours each, 3 sampled per target: every neighbour is drawn 30% of the time."""
    n_targets, degree, fanout = 2000, 10, 3
    counts = torch.bincount(sampled_neighbours(n_targets, degree, fanout)[0], minlength=degree)
    # 600 expected for each, with a standard deviation of about 20
    assert (counts - n_targets * fanout / degree).abs().max() < 100, counts


def test_every_set_of_neighbours_is_as_likely():
    """Each neighbour drawn equally often is not enough (a window of `fanout` neighbours in a row from a
    random start is): 3000 targets with 4 in-neighbours, 2 sampled, each of the 6 pairs a sixth of the time."""
    n_targets, degree, fanout = 3000, 4, 2
    k, dst = sampled_neighbours(n_targets, degree, fanout)
    # The pair of each target, as a bit mask of which of its 4 neighbours were drawn
    masks = torch.zeros(n_targets, dtype=torch.long).index_add_(0, dst, 2 ** k)
    counts = torch.bincount(masks, minlength=2 ** degree)[[3, 5, 6, 9, 10, 12]]
    assert counts.sum() == n_targets
    # 500 expected for each, with a standard deviation of about 20
    assert (counts - n_targets / 6).abs().max() < 100, counts


def test_the_graphs_self_loops_are_not_counted_twice(graph):
    edge_index, n_nodes = graph
    loops = torch.arange(n_nodes).expand(2, -1)
    sampler = NeighbourSampler(torch.cat([edge_index, loops], dim=1), n_nodes)
    batch = sampler.sample(torch.tensor([4]), [-1, -1])
    for block in batch.blocks:
        src, dst = block.edge_index
        assert (src == dst).sum() == block.n_dst


def test_append_nodes_keeps_positions_and_order_of_first_appearance():
    n_id, local = sampling.append_nodes(torch.tensor([7, 3, 9]), torch.tensor([5, 3, 8, 5, 7, 1]))
    assert n_id.tolist() == [7, 3, 9, 5, 8, 1]
    assert n_id[local].tolist() == [5, 3, 8, 5, 7, 1]


def test_a_batch_moves_to_a_device(graph, generator):
    batch = NeighbourSampler(*graph).sample(torch.tensor([1, 2]), [2, 2], generator)
    moved = batch.to(torch.device('cpu'))
    assert isinstance(moved, MiniBatch) and moved.batch_size == 2 and torch.equal(moved.n_id, batch.n_id)
    assert all(isinstance(block, Block) for block in moved.blocks)
    assert [(b.n_src, b.n_dst) for b in moved.blocks] == [(b.n_src, b.n_dst) for b in batch.blocks]
    # To another device ('meta', tensors without data, stands for a GPU) every tensor goes:
    # the ids and each block's edges
    moved = batch.to(torch.device('meta'))
    assert moved.n_id.is_meta and all(block.edge_index.is_meta for block in moved.blocks)
    assert [b.edge_index.shape for b in moved.blocks] == [b.edge_index.shape for b in batch.blocks]


def test_fanout_zero_keeps_only_the_self_loops(graph, generator):
    batch = NeighbourSampler(*graph).sample(torch.tensor([3, 9]), [0, 0], generator)
    assert batch.n_id.tolist() == [3, 9]
    for block in batch.blocks:
        assert block.edge_index.tolist() == [[0, 1], [0, 1]]


# ## Errors

@pytest.mark.parametrize('edge_index, error, message', [
    (torch.zeros(2, 3), TypeError, 'edge_index must be a torch.int64 tensor, got Tensor torch.float32'),
    (torch.zeros(3, 4, dtype=torch.int64), ValueError, r'must have shape \[2, n_edges\], got \[3, 4\]'),
    (torch.tensor([[0, 10], [1, 2]]), ValueError, r'node ids in \[0, 10\), got ids from 0 to 10'),
    (torch.tensor([[0, -1], [1, 2]]), ValueError, r'node ids in \[0, 10\), got ids from -1 to 2'),
])
def test_bad_graph(edge_index, error, message):
    with pytest.raises(error, match=message):
        NeighbourSampler(edge_index, 10)


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
    sampler = NeighbourSampler(*graph)
    with pytest.raises(error, match=message):
        sampler.sample(seeds, fanouts)


def test_the_checks_alone():
    sampling.check_edge_index(torch.zeros(2, 0, dtype=torch.int64), 1)
    sampling.check_seeds(torch.tensor([0, 2]), 3)
    sampling.check_fanouts([-1, 0, 5])
    with pytest.raises(ValueError, match='num_nodes must be a positive integer, got 0'):
        sampling.check_edge_index(torch.zeros(2, 0, dtype=torch.int64), 0)
    with pytest.raises(ValueError, match=r'got True in \[True\]'):
        sampling.check_fanouts([True])
    with pytest.raises(ValueError, match='fanouts must be a non-empty list'):
        sampling.check_fanouts(3)
