r"""
---
title: Neighbour sampling and bipartite blocks
summary: >
  A neighbour sampler in plain PyTorch, as GraphSAGE and PyG's NeighborLoader sample: mini-batches
  of target nodes with a bounded, sampled neighbourhood, as one bipartite block per layer.
---

# Neighbour sampling

Full-batch training computes every step from the whole graph, with every node's features in
memory. Graphs too large for that are trained on **mini-batches**, as GraphSAGE (Hamilton, Ying &
Leskovec, 2017) introduced and as PyG's `NeighborLoader` and DGL do: each step computes the outputs
of a small batch of target nodes only, from a *sampled* part of their neighbourhood.
The [mini-batch Cora experiment](../experiments/cora_minibatch.html) trains with this sampler.

## Which nodes a batch needs

Layer $t$ computes $h^{(t)}_i$ from $h^{(t-1)}_i$ and the $h^{(t-1)}_j$ of the neighbours $j \in \mathcal{N}_i$,
so the output of an $L$-layer model at node $i$ depends exactly on $i$'s $L$-hop neighbourhood.
The exact outputs of a batch of $B$ targets need the union of their $L$-hop neighbourhoods,
which grows like $d^L$ for an average degree $d$: on graphs with hubs, two or three hops reach a large
part of the graph, and a mini-batch costs almost as much as the full batch.

## Sampling bounds the memory of a batch

So at hop $k$ every newly reached node keeps at most $f_k$ of its in-neighbours, drawn uniformly without
replacement: $f_k$ is the **fanout** of hop $k$ ($-1$ keeps them all). Starting from the $B$ seed nodes,
hop $k$ adds at most $f_k$ nodes and $f_k$ edges for each node that hop $k - 1$ added, so a batch holds

$$n_{\text{nodes}} \le B \sum_{k=0}^{L} \prod_{m=1}^{k} f_m, \qquad
n_{\text{edges}} \le B \sum_{k=1}^{L} \prod_{m=1}^{k} f_m$$

plus one self loop per target. The receptive field grows as the product of the fanouts,
$B f_1 f_2 \cdots f_L$, whatever the size of the graph:
with $B = 35$ and fanouts $(10, 10)$ a step touches at most $35 \cdot 111 = 3885$ nodes and
$3850$ sampled edges, on Cora or on a graph of a billion nodes.
That is why the fanouts are small and the models shallow (two or three layers).
On Cora, with an average degree of 3.9, a batch of 35 reaches about 500 nodes, far fewer than the bound,
and a fanout of 10 leaves out 10% of the edges (those of the 3.5% of nodes with more than 10 neighbours).

## Beyond one machine

A step reads only the rows `x[n_id]` of the sampled nodes and the sampled edges.
The features and the graph can therefore live in a store, on disk or split across machines
(PyG's `FeatureStore` and `GraphStore`, `torch_geometric.distributed`, DistDGL),
and the model's memory depends on $B$ and the fanouts, not on $N$.
Full-batch training needs all of it in one memory.

## Blocks: one bipartite graph per layer

The sampled nodes are numbered in the order they were reached: the $B$ seeds first, then the nodes
added by hop 1, then those of hop 2. `n_id` holds their ids in the graph.
Layer $t$ of $L$ runs on a **block**, a bipartite graph from the nodes of hops $0, \dots, L - t + 1$
(its sources) to those of hops $0, \dots, L - t$ (its targets), so the targets of a block are the first
`n_dst` of its sources, and the targets of one layer are the sources of the next:

* the first layer maps all the batch's nodes to the seeds and the nodes of hop 1;
* the second (last) layer maps those to the $B$ seeds, whose outputs are the class scores.

The [edge-list layer](../labml_gat/edges.html) takes a block as the pair `(h, h[:n_dst])` and an
`edge_index` in local numbers (row 0 the source $j$, row 1 the target $i$), and returns `n_dst` rows:

$$h^{(t)}_i = \sum_{j \in \tilde{\mathcal{N}}_i \cup \{i\}} \alpha_{ij} W_l h^{(t-1)}_j,
\qquad 0 \le i < n_{\text{dst}}$$

where $W_l$ is layer $t$'s transformation of the neighbours (the *left* matrix of the
[GATv2 layer](gatv2.html)), $\tilde{\mathcal{N}}_i$ are the sampled neighbours of $i$, and every target attends to itself as
in the Cora experiment. Each node's neighbours are sampled once per batch,
so a node sees the same neighbours in every layer.
With every fanout $-1$ the blocks hold every edge and the outputs are exactly the full-batch model's,
which a test checks on Cora.

## The same with PyG

```python
loader = NeighborLoader(data, num_neighbors=[10, 10], batch_size=35,
                        input_nodes=data.train_mask, shuffle=True)
for batch in loader:
    logits = model(batch.x, batch.edge_index)[:batch.batch_size]
```

`batch.n_id` is our `n_id`, `batch.x` is `x[n_id]`, `batch.batch_size` is $B$ (the seeds are the first
nodes), `batch.edge_index` holds all the sampled edges in local numbers, and `num_neighbors[k - 1]` is
our $f_k$. It has no self loops added (PyG's `GATv2Conv` adds them itself), where our blocks have one
per target, as our layers expect: give them PyG's `edge_index` through PyG's `add_self_loops`. PyG
runs every layer on the whole subgraph and keeps the first `batch_size` rows, which gives the seeds
the same outputs; `trim_to_layer`, with `batch.num_sampled_nodes` and `batch.num_sampled_edges`, cuts
it to our blocks. PyG's sampler needs the `pyg-lib` or `torch-sparse` package; the one here is a few
lines of PyTorch.

"""

from dataclasses import dataclass, replace
from typing import List, Optional, Tuple

import torch


@dataclass
class Block:
    r"""
    ## Blocks and batches

    A block is the bipartite graph one layer runs on.
    Its sources are the first `n_src` nodes of the batch and its targets the first `n_dst` of those.
    `edge_index`, `[2, n_edges]`, is in local numbers: row 0 holds the sources $j < n_{\text{src}}$,
    row 1 the targets $i < n_{\text{dst}}$, and every target has its self loop $(i, i)$.
    """
    edge_index: torch.Tensor
    n_src: int
    n_dst: int


@dataclass
class MiniBatch:
    """
    * `n_id` is the ids in the graph of the batch's nodes, `[n_nodes]`: the seeds first, then hop by hop
    * `batch_size` is the number of seeds $B$, the targets of the last layer
    * `blocks` has one block per layer, the first layer's first
    """
    n_id: torch.Tensor
    batch_size: int
    blocks: List[Block]

    def to(self, device: torch.device) -> 'MiniBatch':
        blocks = [replace(block, edge_index=block.edge_index.to(device))
                  for block in self.blocks]
        return MiniBatch(self.n_id.to(device), self.batch_size, blocks)


class NeighbourSampler:
    """
    ## The sampler

    Holds the graph as lists of in-neighbours and samples mini-batches from it.
    `edge_index` is `[2, n_edges]`, column `[j, i]` an edge from the source $j$ to the target $i$.
    The graph's own self loops are left out: every block adds one per target.
    """

    def __init__(self, edge_index: torch.Tensor, num_nodes: int):
        check_edge_index(edge_index, num_nodes)
        self.num_nodes = num_nodes
        # The edges without the graph's self loops
        src, dst = edge_index[:, edge_index[0] != edge_index[1]]
        # The in-neighbours of node $i$ are `sources[ptr[i]:ptr[i + 1]]` (compressed sparse rows by target)
        self.sources = src[torch.argsort(dst, stable=True)]
        self.in_degree = torch.bincount(dst, minlength=num_nodes)
        self.ptr = torch.cat([self.in_degree.new_zeros(1), self.in_degree.cumsum(0)])

    @classmethod
    def from_csr(cls, ptr: torch.Tensor, sources: torch.Tensor) -> 'NeighbourSampler':
        """
        The sampler of lists of in-neighbours made before, `sources[ptr[i]:ptr[i + 1]]` for
        node $i$ and no self loops: for instance `self.ptr` and `self.sources` of a sampler,
        kept in files that [several processes share](distributed.html).
        """
        if ptr.dim() != 1 or len(ptr) < 2 or ptr[-1] != len(sources):
            raise ValueError(f'ptr must hold num_nodes + 1 offsets into sources, '
                             f'the last len(sources) = {len(sources)}')
        sampler = cls.__new__(cls)
        sampler.num_nodes, sampler.ptr, sampler.sources = len(ptr) - 1, ptr, sources
        sampler.in_degree = ptr.diff()
        return sampler

    def sample(self, seeds: torch.Tensor, fanouts: List[int],
               generator: Optional[torch.Generator] = None) -> MiniBatch:
        """
        The batch of the target nodes `seeds`, `[B]` distinct node ids, sampling `fanouts[k - 1]`
        in-neighbours per node at hop $k$. `generator` makes the draw reproducible.
        """
        check_seeds(seeds, self.num_nodes)
        check_fanouts(fanouts)
        n_id = seeds
        # The sampled edges so far, in local numbers
        src = dst = seeds.new_empty(0)
        blocks = []
        # The nodes added by the previous hop are `n_id[reached:]`; at first, the seeds
        reached = 0
        for fanout in fanouts:
            # All the nodes so far are the targets of this hop's block
            n_dst = len(n_id)
            # Sample in-edges of the nodes the previous hop added; the others have theirs already
            new_src, new_dst = self.sample_in_edges(n_id[reached:], fanout, generator)
            # Number the sources, appending the nodes not seen before
            n_id, new_src = append_nodes(n_id, new_src)
            src, dst = torch.cat([src, new_src]), torch.cat([dst, new_dst + reached])
            # This hop's block has every edge sampled so far, and a self loop for every target
            loops = torch.arange(n_dst)
            edge_index = torch.stack([torch.cat([src, loops]), torch.cat([dst, loops])])
            blocks.append(Block(edge_index, n_src=len(n_id), n_dst=n_dst))
            reached = n_dst
        # Hop 1 feeds the last layer, so the layers take the blocks in the reverse order
        return MiniBatch(n_id, len(seeds), blocks[::-1])

    def sample_in_edges(self, targets: torch.Tensor, fanout: int,
                        generator: Optional[torch.Generator]
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Up to `fanout` in-edges of every node of `targets`, uniformly without replacement (all of them for
        $-1$). Returns the source of every sampled edge (a node id) and its target (a position in `targets`).
        """
        degree = self.in_degree[targets]
        # One entry per in-edge of every target: its target `owner`, its `rank` among the target's in-edges,
        # and its position `slot` in `sources`. `owner` is sorted.
        owner = torch.repeat_interleave(torch.arange(len(targets)), degree)
        rank = torch.arange(len(owner)) - (degree.cumsum(0) - degree)[owner]
        slot = self.ptr[targets][owner] + rank
        if fanout != -1:
            # Shuffle the in-edges of every target: a random permutation, then a stable sort by target,
            # which keeps each target's edges together, in random order. Keep the first `fanout` of each.
            shuffle = torch.randperm(len(owner), generator=generator)
            shuffle = shuffle[torch.argsort(owner[shuffle], stable=True)]
            keep = rank < fanout
            slot, owner = slot[shuffle][keep], owner[keep]
        return self.sources[slot], owner


def append_nodes(n_id: torch.Tensor,
                 nodes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Appends to `n_id` the `nodes` it does not hold yet, in order of first appearance.
    Returns the longer `n_id` and the position in it of every entry of `nodes`.
    The nodes of `n_id` (which are distinct) keep their positions.
    """
    distinct, inverse = torch.unique(torch.cat([n_id, nodes]), return_inverse=True)
    # Where each distinct node first appears in the concatenation
    first = (torch.full_like(distinct, len(inverse))
             .scatter_reduce_(0, inverse, torch.arange(len(inverse)), 'amin'))
    # A node's position is the rank of its first appearance; those of `n_id` are $0, 1, \dots$
    order = torch.argsort(first)
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    return distinct[order], position[inverse[len(n_id):]]


def check_edge_index(edge_index: torch.Tensor, num_nodes: int) -> None:
    """## Input checks"""
    if not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f'num_nodes must be a positive integer, got {num_nodes!r}')
    if not isinstance(edge_index, torch.Tensor) or edge_index.dtype != torch.int64:
        raise TypeError(f'edge_index must be a torch.int64 tensor, '
                        f'got {type(edge_index).__name__} '
                        f'{getattr(edge_index, "dtype", "")}'.rstrip())
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f'edge_index must have shape [2, n_edges], '
                         f'got {list(edge_index.shape)}')
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise ValueError(f'edge_index must hold node ids in [0, {num_nodes}), '
                         f'got ids from {edge_index.min().item()} '
                         f'to {edge_index.max().item()}')


def check_seeds(seeds: torch.Tensor, num_nodes: int) -> None:
    if (not isinstance(seeds, torch.Tensor) or seeds.dtype != torch.int64
            or seeds.dim() != 1):
        raise TypeError(f'seeds must be a 1-D torch.int64 tensor of node ids, '
                        f'got {type(seeds).__name__} {getattr(seeds, "dtype", "")} '
                        f'of shape {list(getattr(seeds, "shape", []))}')
    if len(seeds) == 0:
        raise ValueError('seeds must hold at least one node, got none')
    if seeds.min() < 0 or seeds.max() >= num_nodes:
        raise ValueError(f'seeds must be node ids in [0, {num_nodes}), '
                         f'got ids from {seeds.min().item()} to {seeds.max().item()}')
    if len(torch.unique(seeds)) != len(seeds):
        raise ValueError(f'seeds must be distinct, '
                         f'got {len(seeds) - len(torch.unique(seeds))} repeated')


def check_fanouts(fanouts: List[int]) -> None:
    if not isinstance(fanouts, (list, tuple)) or len(fanouts) == 0:
        raise ValueError(f'fanouts must be a non-empty list of integers, one per hop, '
                         f'got {fanouts!r}')
    for fanout in fanouts:
        if isinstance(fanout, bool) or not isinstance(fanout, int) or fanout < -1:
            raise ValueError(f'every fanout must be -1 (all neighbours) '
                             f'or a number of neighbours >= 0, '
                             f'got {fanout!r} in {fanouts!r}')
