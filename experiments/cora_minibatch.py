r"""
---
title: Train GATv2 on Cora with neighbour-sampled mini-batches
summary: >
  The Cora experiment trained on mini-batches of target nodes, each with a sampled neighbourhood
  (GraphSAGE, PyG's NeighborLoader): the way graphs that do not fit in one machine are trained.
---

# Mini-batches with sampled neighbourhoods

The [Cora experiment](cora.html) trains **full batch**: every step computes the exact loss of all the
training nodes, from their whole two-hop neighbourhoods, with the graph and every node's features in memory.
On a large graph two hops from many nodes are most of the graph, and a graph with a hundred million nodes
does not fit in one machine that way.
Such graphs are trained with **mini-batches**, as GraphSAGE (Hamilton, Ying & Leskovec, 2017) introduced
and as PyG's `NeighborLoader` and DGL do: each step computes the outputs of a small batch of target
nodes only, from a *sampled* part of their neighbourhood.
This script trains the same two-layer model as the Cora experiment in that way,
with a sampler written here in plain PyTorch.

## Which nodes a batch needs

A layer computes $h^{(l)}_i$ from $h^{(l-1)}_i$ and the $h^{(l-1)}_j$ of the neighbours $j \in \mathcal{N}_i$,
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
Layer $l$ of $L$ runs on a **block**, a bipartite graph from the nodes of hops $0, \dots, L - l + 1$
(its sources) to those of hops $0, \dots, L - l$ (its targets), so the targets of a block are the first
`n_dst` of its sources, and the targets of one layer are the sources of the next:

* the first layer maps all the batch's nodes to the seeds and the nodes of hop 1;
* the second (last) layer maps those to the $B$ seeds, whose outputs are the class scores.

The [edge-list layer](../labml_gat/edges.html) takes a block as the pair `(h, h[:n_dst])` and an
`edge_index` in local numbers (row 0 the source $j$, row 1 the target $i$), and returns `n_dst` rows:

$$h^{(l)}_i = \sum_{j \in \tilde{\mathcal{N}}_i \cup \{i\}} \alpha_{ij} W_l h^{(l-1)}_j,
\qquad 0 \le i < n_{\text{dst}}$$

where $\tilde{\mathcal{N}}_i$ are the sampled neighbours of $i$, and every target attends to itself as
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
our $f_k$. PyG runs every layer on the whole subgraph and keeps the first `batch_size` rows, which gives
the seeds the same outputs; `trim_to_layer`, with `batch.num_sampled_nodes` and
`batch.num_sampled_edges`, cuts it to our blocks. PyG's sampler needs the `pyg-lib` or `torch-sparse`
package; the one here is a few lines of PyTorch.

## Training and evaluation

Cora has only 140 training nodes. Batches of 35 split them into 4 equal batches per epoch, about
5 nodes per class each: 4 optimiser steps per epoch instead of one, each on a gradient averaged over
enough nodes to be useful (batches of 32 or 64 would leave a last batch of 12).
On the validation set, over 5 seeds, batches of 35, 70 and 140 did equally well (82.1, 82.1 and 82.0 %);
35 was the fastest and has the smallest batches, about 500 nodes.
Validation and test use **every** neighbour (fanouts $-1$): the exact outputs, with the same code path.
The validation and test nodes go through in batches of `--eval-batch-size`; on a large graph one would
instead compute the outputs layer by layer for all nodes, which shares the work between the targets.
Everything else (model, Adam, dropout, early stopping, the labml runs) is the Cora experiment's.

## Usage

```bash
python experiments/cora_minibatch.py                         # one seed
python experiments/cora_minibatch.py --seeds 10              # mean and std over 10 seeds
python experiments/cora_minibatch.py --fanouts 5 5 --batch-size 70
```

Every flag of `experiments/cora.py` works here too. Each seed is a labml run in
`logs/cora_gatv2_minibatch/<run uuid>/`.
"""

import argparse
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from labml import monit, tracker
from torch import nn

from labml_gat.datasets import Graph

# `cora.py` sits beside this file; its folder is put on the path so that the import also works when
# this file is loaded from elsewhere (the tests, the site).
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import cora  # noqa: E402  (experiments/cora.py)

# The model has two attention layers, so a batch has two blocks and there are two fanouts.
N_LAYERS = 2
# Evaluation keeps every neighbour at every hop.
ALL_NEIGHBOURS = [-1] * N_LAYERS


@dataclass
class Config(cora.Config):
    """
    ## Settings

    Those of the [Cora experiment](cora.html), and three for the mini-batches.
    """
    # Neighbours sampled per node at hop 1, 2, ... from the seeds outwards
    # (PyG's `num_neighbors`); $-1$ keeps them all
    fanouts: List[int] = field(default_factory=lambda: [10, 10])
    # Training nodes per batch: Cora's 140 in 4 batches of 35
    batch_size: int = 35
    # Validation or test nodes per batch, evaluated with all their neighbours
    eval_batch_size: int = 500

    def experiment_name(self) -> str:
        return f'{self.dataset}_{self.model}_minibatch'

    def comment(self, seed: int) -> str:
        return f'batches of {self.batch_size}, fanouts {self.fanouts}, seed {seed}'


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
        blocks = [replace(block, edge_index=block.edge_index.to(device)) for block in self.blocks]
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
                        generator: Optional[torch.Generator]) -> Tuple[torch.Tensor, torch.Tensor]:
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


def append_nodes(n_id: torch.Tensor, nodes: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    Appends to `n_id` the `nodes` it does not hold yet, in order of first appearance.
    Returns the longer `n_id` and the position in it of every entry of `nodes`.
    The nodes of `n_id` (which are distinct) keep their positions.
    """
    distinct, inverse = torch.unique(torch.cat([n_id, nodes]), return_inverse=True)
    # Where each distinct node first appears in the concatenation
    first = torch.full_like(distinct, len(inverse)).scatter_reduce_(0, inverse, torch.arange(len(inverse)),
                                                                    'amin')
    # A node's position is the rank of its first appearance; those of `n_id` are $0, 1, \dots$
    order = torch.argsort(first)
    position = torch.empty_like(order)
    position[order] = torch.arange(len(order))
    return distinct[order], position[inverse[len(n_id):]]


class MiniBatchGAT(cora.GAT):
    """
    ## The model on blocks

    The Cora experiment's two-layer model: the same modules and parameters, so a `state_dict` moves
    between the two, and the same sparse input dropout. Only `forward` differs.
    """

    def forward(self, x: torch.Tensor, blocks: List[Block]) -> torch.Tensor:
        """
        * `x` is the features of the batch's nodes, the rows `n_id` of the features (PyG's `batch.x`),
          a sparse CSR matrix `[n_nodes, in_features]`
        * `blocks` is the batch's two blocks

        Returns the class scores of the seeds, `[batch_size, n_classes]`.
        """
        check_blocks(x, blocks)
        # `h` is `[n_src, in_features]`; the targets' rows are its first `n_dst` rows,
        # with the same dropout mask as when they are sources.
        h = self.input_dropout(x)
        h_dst = cora.csr_rows(h, torch.arange(blocks[0].n_dst, device=h.device))
        # `[n_dst of the first block, n_heads * n_hidden]`: the seeds and the nodes of hop 1
        h = self.layer1((h, h_dst), blocks[0].edge_index)
        h = self.dropout(self.activation(h))
        # `[batch_size, n_classes]`: the seeds
        return self.output((h, h[:blocks[1].n_dst]), blocks[1].edge_index)


def train_epoch(model: MiniBatchGAT, optimizer: torch.optim.Optimizer, sampler: NeighbourSampler,
                x: torch.Tensor, y: torch.Tensor, train_nodes: torch.Tensor, config: Config,
                generator: torch.Generator) -> dict:
    """
    ## Training one epoch

    The training nodes in a new random order, one optimiser step per batch.
    `x` is the features of all the nodes, a sparse CSR matrix, and `y` their labels.
    Returns the mean loss and the accuracy over the training nodes, and the mean batch size in nodes and edges.
    """
    model.train()
    # Sums over the epoch's batches
    loss_sum = correct = n_nodes = n_edges = 0
    # The training nodes shuffled and cut into batches of seeds
    batches = train_nodes[torch.randperm(len(train_nodes), generator=generator)].split(config.batch_size)
    for seeds in batches:
        batch = sampler.sample(seeds, config.fanouts, generator).to(x.device)
        # The seeds' labels: the seeds are the first `batch_size` nodes of the batch
        labels = y[batch.n_id[:batch.batch_size]]
        # One optimiser step on the seeds' loss, reading only the rows `n_id` of the features
        optimizer.zero_grad()
        logits = model(cora.csr_rows(x, batch.n_id), batch.blocks)
        loss = nn.functional.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        # Track the loss and the size of the batch
        tracker.add({'loss.train': loss, 'batch.nodes': len(batch.n_id)})
        loss_sum += loss.item() * len(seeds)
        correct += (logits.argmax(dim=-1) == labels).sum().item()
        n_nodes += len(batch.n_id)
        n_edges += batch.blocks[0].edge_index.shape[1]
    return {'loss': loss_sum / len(train_nodes), 'accuracy': correct / len(train_nodes),
            'nodes': n_nodes / len(batches), 'edges': n_edges / len(batches)}


@torch.no_grad()
def evaluate(model: MiniBatchGAT, sampler: NeighbourSampler, x: torch.Tensor, y: torch.Tensor,
             nodes: torch.Tensor, batch_size: int) -> Tuple[float, float]:
    """
    ## Evaluation

    The loss and accuracy on `nodes`, without dropout and with all their neighbours, in batches.
    """
    model.eval()
    # The class scores of `nodes`, batch by batch, in the order of `nodes`
    logits = torch.cat([model(cora.csr_rows(x, batch.n_id), batch.blocks)
                        for batch in (sampler.sample(seeds, ALL_NEIGHBOURS).to(x.device)
                                      for seeds in nodes.split(batch_size))])
    labels = y[nodes.to(x.device)]
    return nn.functional.cross_entropy(logits, labels).item(), cora.accuracy(logits, labels)


def train_one_seed(config: Config, data: Graph, seed: int, checkpoint: Path) -> Tuple[dict, MiniBatchGAT]:
    """
    ## Training one seed

    As in the Cora experiment: validation after every epoch, early stopping, and one test of the
    weights of the best epoch. One generator draws the batches and the samples, so a seed fixes both.
    """
    # The seed fixes the initial weights and dropout, and the generator the batches and samples
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    device = torch.device(config.device)
    sampler = NeighbourSampler(data.edge_index, data.num_nodes)
    # The features as a sparse CSR matrix; the sampler keeps its own lists of in-neighbours
    x, _ = cora.prepare_inputs(data, 'edges', config.n_heads, config.n_hidden, device)
    y = data.y.to(device)
    # The node ids of each split
    nodes = {split: mask.nonzero().squeeze(1) for split, mask in
             (('train', data.train_mask), ('valid', data.val_mask), ('test', data.test_mask))}

    # The model and its optimiser, as in the Cora experiment
    model = MiniBatchGAT(cora.LAYERS[config.model, 'edges'], data.num_features, data.num_classes,
                         config.n_heads, config.n_hidden, config.dropout, config.share_weights).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)

    # An epoch trains on every training node once, then validates with all neighbours
    early_stopping = cora.EarlyStopping(config.early_stopping, config.patience)
    history, batch_nodes, batch_edges = [], [], []
    start = time.perf_counter()
    for epoch in monit.loop(config.epochs):
        train = train_epoch(model, optimizer, sampler, x, y, nodes['train'], config, generator)
        val_loss, val_acc = evaluate(model, sampler, x, y, nodes['valid'], config.eval_batch_size)
        tracker.save(epoch, {'accuracy.train': train['accuracy'],
                             'loss.valid': val_loss, 'accuracy.valid': val_acc})
        history.append({'loss.train': train['loss'], 'accuracy.train': train['accuracy'],
                        'loss.valid': val_loss, 'accuracy.valid': val_acc})
        batch_nodes.append(train['nodes'])
        batch_edges.append(train['edges'])

        # Keep the weights of the best epoch so far, and stop when patience runs out
        if early_stopping.update(epoch, model, val_acc, val_loss):
            break
    seconds = time.perf_counter() - start

    # Test the best weights, as saved to and loaded back from the checkpoint
    early_stopping.restore_best(model, checkpoint)
    result = {'seed': seed, 'best_epoch': early_stopping.best_epoch, 'epochs': epoch + 1,
              'seconds': round(seconds, 2), 'checkpoint': str(checkpoint),
              'val_accuracy': evaluate(model, sampler, x, y, nodes['valid'], config.eval_batch_size)[1],
              'test_accuracy': evaluate(model, sampler, x, y, nodes['test'], config.eval_batch_size)[1],
              'nodes_per_batch': round(statistics.fmean(batch_nodes), 1),
              'edges_per_batch': round(statistics.fmean(batch_edges), 1), 'history': history}
    tracker.save(epoch + 1, {'accuracy.test': result['test_accuracy']})
    return result, model


def run(config: Config) -> dict:
    """
    ## Running the seeds

    As in the Cora experiment, with this script's `train_one_seed`:
    one labml run per seed, side by side with `--jobs`. Returns the summary of the Cora experiment's form.
    """
    validate(config)
    return cora.run(config, train_one_seed)


def report(summary: dict) -> str:
    """The size of the batches, then the Cora experiment's table."""
    config = summary['config']
    nodes = statistics.fmean(r['nodes_per_batch'] for r in summary['runs'])
    edges = statistics.fmean(r['edges_per_batch'] for r in summary['runs'])
    return '\n'.join([f"Mini-batches of {config['batch_size']} training nodes, fanouts {config['fanouts']}: "
                      f"{nodes:.0f} nodes and {edges:.0f} edges per batch on average "
                      f"(the graph: {summary['num_nodes']} nodes, {summary['num_edges'] + summary['num_nodes']} edges "
                      f"with self loops)",
                      cora.report(summary)])


def check_edge_index(edge_index: torch.Tensor, num_nodes: int) -> None:
    """## Input checks"""
    if not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f'num_nodes must be a positive integer, got {num_nodes!r}')
    if not isinstance(edge_index, torch.Tensor) or edge_index.dtype != torch.int64:
        raise TypeError(f'edge_index must be a torch.int64 tensor, got {type(edge_index).__name__} '
                        f'{getattr(edge_index, "dtype", "")}'.rstrip())
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f'edge_index must have shape [2, n_edges], got {list(edge_index.shape)}')
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
        raise ValueError(f'edge_index must hold node ids in [0, {num_nodes}), '
                         f'got ids from {edge_index.min().item()} to {edge_index.max().item()}')


def check_seeds(seeds: torch.Tensor, num_nodes: int) -> None:
    if not isinstance(seeds, torch.Tensor) or seeds.dtype != torch.int64 or seeds.dim() != 1:
        raise TypeError(f'seeds must be a 1-D torch.int64 tensor of node ids, got {type(seeds).__name__} '
                        f'{getattr(seeds, "dtype", "")} of shape {list(getattr(seeds, "shape", []))}')
    if len(seeds) == 0:
        raise ValueError('seeds must hold at least one node, got none')
    if seeds.min() < 0 or seeds.max() >= num_nodes:
        raise ValueError(f'seeds must be node ids in [0, {num_nodes}), '
                         f'got ids from {seeds.min().item()} to {seeds.max().item()}')
    if len(torch.unique(seeds)) != len(seeds):
        raise ValueError(f'seeds must be distinct, got {len(seeds) - len(torch.unique(seeds))} repeated')


def check_fanouts(fanouts: List[int]) -> None:
    if not isinstance(fanouts, (list, tuple)) or len(fanouts) == 0:
        raise ValueError(f'fanouts must be a non-empty list of integers, one per hop, got {fanouts!r}')
    for fanout in fanouts:
        if isinstance(fanout, bool) or not isinstance(fanout, int) or fanout < -1:
            raise ValueError(f'every fanout must be -1 (all neighbours) or a number of neighbours >= 0, '
                             f'got {fanout!r} in {fanouts!r}')


def check_blocks(x: torch.Tensor, blocks: List[Block]) -> None:
    if x.layout != torch.sparse_csr:
        raise TypeError(f'x must be a sparse CSR matrix (the rows n_id of the features), got layout {x.layout}')
    if len(blocks) != N_LAYERS:
        raise ValueError(f'the model takes {N_LAYERS} blocks, one per layer, got {len(blocks)}')
    if x.shape[0] != blocks[0].n_src:
        raise ValueError(f'x must have a row for each of the {blocks[0].n_src} nodes of the batch, '
                         f'got {x.shape[0]} rows')
    if blocks[0].n_dst != blocks[1].n_src:
        raise ValueError(f'the first block must have the sources of the second as targets, got '
                         f'{blocks[0].n_dst} targets and {blocks[1].n_src} sources')


def validate(config: Config) -> None:
    """Clear errors for settings that cannot run: the Cora experiment's checks, and the mini-batch ones."""
    cora.validate(config)
    if config.impl != 'edges':
        raise ValueError(f"mini-batches need the edge-list layer (a block is an edge list), --impl must be "
                         f"'edges', got {config.impl!r}")
    if len(config.fanouts) != N_LAYERS:
        raise ValueError(f'--fanouts needs one number per layer ({N_LAYERS}), got {len(config.fanouts)}: '
                         f'{config.fanouts}')
    check_fanouts(config.fanouts)
    for name in ('batch_size', 'eval_batch_size'):
        if getattr(config, name) < 1:
            raise ValueError(f'--{name.replace("_", "-")} must be at least 1, got {getattr(config, name)}')


def parse_args(argv: Optional[list] = None) -> Config:
    """The mini-batch flags; every other flag goes to the Cora experiment's parser."""
    defaults = Config()
    parser = argparse.ArgumentParser(
        description='Train a two-layer GATv2 (or GAT) on Cora or CiteSeer with neighbour-sampled mini-batches.',
        epilog='Every flag of experiments/cora.py is accepted too (--seeds, --data-dir, --summary-json, ...).',
        allow_abbrev=False)
    parser.add_argument('--fanouts', type=int, nargs='+', default=defaults.fanouts,
                        help='neighbours sampled per node at hop 1, 2 (from the seeds outwards); -1 keeps all')
    parser.add_argument('--batch-size', type=int, default=defaults.batch_size, help='training nodes per batch')
    parser.add_argument('--eval-batch-size', type=int, default=defaults.eval_batch_size,
                        help='validation or test nodes per batch (evaluated with all neighbours)')
    args, rest = parser.parse_known_args(argv)
    return Config(**{**asdict(cora.parse_args(rest)), **vars(args)})


def main(argv: Optional[list] = None) -> None:
    cora.main(argv, parse_args, run, report)


if __name__ == '__main__':
    main(sys.argv[1:])
