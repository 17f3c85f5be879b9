r"""
---
title: Train GATv2 on Cora with neighbour-sampled mini-batches
summary: >
  The Cora experiment trained on mini-batches of target nodes, each with a sampled neighbourhood
  (GraphSAGE, PyG's NeighborLoader): the way graphs that do not fit in one machine are trained.
---

# Mini-batches with sampled neighbourhoods

The [Cora experiment](cora.html) trains **full batch**: every step computes the exact loss of all
the training nodes from their whole two-hop neighbourhoods, with the graph and every node's
features in memory. A graph with a hundred million nodes does not fit in one machine that way.
This script trains the same [two-layer model](../labml_gat/model.html) on **mini-batches**:
each step computes the outputs of a few target nodes only, from a *sampled* part of their
neighbourhood, drawn by the [neighbour sampler](../labml_gat/sampling.html).
A step's memory then depends on the batch size and the fanouts, not on the size of the graph.

## Training and evaluation

Cora has only 140 training nodes. Batches of 35 split them into 4 equal batches per epoch, about
5 nodes per class each: 4 optimiser steps per epoch instead of one, each on a gradient averaged over
enough nodes to be useful (batches of 32 or 64 would leave a last batch of 12).
Of the sizes from 32 up that split them evenly (35, 70, 140), 35 gives the smallest batches with
their neighbourhoods, so the most steps for the same work.
Validation and test use **every** neighbour (fanouts $-1$): the exact outputs, with the same code path.
The validation and test nodes go through in batches of `--eval-batch-size`; on a large graph one
computes the outputs layer by layer for all nodes instead, which shares the work between the targets,
as the [million-node script](synthetic_minibatch.html) does.
Everything else (model, Adam, dropout, early stopping, the labml runs) is the Cora experiment's.

## One process or many

The same script runs as one process, or as several under `torchrun`, on one machine or on many:
each process (*rank*) trains its own slice of every batch and
[DistributedDataParallel](../labml_gat/distributed.html) averages the gradients, so `--batch-size`
is the size of the global batch whatever the number of processes. Evaluation is split over the
ranks too, and only rank 0 prints and writes. The [distributed chapter](../labml_gat/distributed.html)
explains what each rank holds and what they exchange.

## Usage

```bash
python experiments/cora_minibatch.py                         # one seed
python experiments/cora_minibatch.py --seeds 10              # mean and std over 10 seeds
python experiments/cora_minibatch.py --fanouts 5 5 --batch-size 70
torchrun --nproc-per-node 2 -- experiments/cora_minibatch.py --seeds 10 --logs runs
```

Under torchrun the seeds run one after another, each trained by all the processes; `--jobs` is
refused. The `--` keeps torchrun from reading the script's flags as abbreviations of its own.

Every flag of `experiments/cora.py` except `--impl` and `--fast` works here too.
Each seed is a labml run in
`logs/cora_gatv2_minibatch/<run uuid>/`.
"""

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from labml import tracker
from torch import nn

from labml_gat import distributed, fast
from labml_gat.datasets import Planetoid, load_planetoid
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.model import TwoLayerGAT
from labml_gat.results import LAYER_NAMES, write_json
from labml_gat.runs import epochs
from labml_gat.sampling import Block, NeighbourSampler
from labml_gat.seeds import format_summary
from labml_gat.settings import UsageError, command, setting
from labml_gat.training import (EarlyStopping, NodeClassificationSettings,
                                check_edges_fit)

# The edge-list layer for each `--layer`: a block is an edge list
LAYERS = {'gatv2': EdgeGraphAttentionV2Layer, 'gat': EdgeGraphAttentionLayer}
# The model has two attention layers, so a batch has two blocks and there are two fanouts
N_LAYERS = 2
# Evaluation keeps every neighbour at every hop
ALL_NEIGHBOURS = [-1] * N_LAYERS


@dataclass
class MiniBatchSettings(NodeClassificationSettings):
    """
    ## Settings

    The GAT paper's [settings](../labml_gat/training.html#settings), and three for the batches.
    """
    fanouts: List[int] = setting([10, 10], 'neighbours sampled per node at hop 1 and 2 '
                                           "(PyG's num_neighbors); -1 keeps them all")
    batch_size: int = setting(35, 'training nodes per batch: Cora\'s 140 in 4 batches')
    eval_batch_size: int = setting(500, 'validation or test nodes per batch, '
                                        'all neighbours')
    peer_timeout: int = setting(distributed.PEER_TIMEOUT, distributed.PEER_TIMEOUT_HELP)

    def check(self) -> None:
        super().check()
        if len(self.fanouts) != N_LAYERS:
            raise UsageError(f'--fanouts needs one number per layer ({N_LAYERS}), '
                             f'got {len(self.fanouts)}')
        if any(fanout == 0 or fanout < -1 for fanout in self.fanouts):
            raise UsageError(f'--fanouts must be -1 (all neighbours) or at least 1 each, '
                             f'got {self.fanouts}; '
                             f'0 would train on the nodes alone, without the graph')
        for name in ('batch_size', 'eval_batch_size', 'peer_timeout'):
            if getattr(self, name) < 1:
                raise UsageError(f'--{name.replace("_", "-")} must be at least 1, '
                                 f'got {getattr(self, name)}')
        distributed.check_settings(self)

    def experiment_name(self) -> str:
        return f'{self.dataset}_{self.layer}_minibatch'

    def comment(self, seed: int) -> str:
        return f'batches of {self.batch_size}, fanouts {self.fanouts}, seed {seed}'


class MiniBatchGAT(TwoLayerGAT):
    """
    ## The model on blocks

    The [two-layer model](../labml_gat/model.html): the same modules and parameters, so a
    `state_dict` moves between the two. Only `forward` differs: each layer runs on its block.
    It takes the features as a sparse CSR matrix, so it runs with the
    [speed-ups](../labml_gat/fast.html): `fast.speed_up(model)` gives it sparse dropout.
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
        h_dst = fast.csr_rows(h, torch.arange(blocks[0].n_dst, device=h.device))
        # `[n_dst of the first block, n_heads * n_hidden]`: the seeds and the nodes of hop 1
        h = self.layer1((h, h_dst), blocks[0].edge_index)
        h = self.dropout(self.activation(h))
        # `[batch_size, n_classes]`: the seeds
        return self.output((h, h[:blocks[1].n_dst]), blocks[1].edge_index)


def train_epoch(model: nn.Module, optimizer: torch.optim.Optimizer,
                sampler: NeighbourSampler, x: torch.Tensor, y: torch.Tensor,
                train_nodes: torch.Tensor, settings: MiniBatchSettings,
                order: torch.Generator, samples: torch.Generator) -> dict:
    """
    ## Training one epoch

    The training nodes in a new random order drawn by `order`, one optimiser step per batch,
    the neighbours drawn by `samples`. This rank trains its
    [slice](../labml_gat/distributed.html#each-rank-s-share-of-an-epoch) of every batch.
    `x` is the features of all the nodes, a sparse CSR matrix, and `y` their labels.
    Returns the mean loss and the accuracy over the training nodes, and the mean batch size in nodes
    and edges, summed over the ranks' slices. labml's tracker gets the loss of every global batch
    and its nodes, summed over the slices too.
    """
    model.train()
    n_ranks = distributed.current().world_size
    # Sums over the epoch's batches
    correct = n_seeds = n_edges = 0
    # Each step's loss summed over this rank's seeds, and the nodes of its slice
    step_losses, step_nodes = [], []
    shares = distributed.epoch_shares(train_nodes, settings.batch_size, order)
    for seeds, global_size in shares:
        batch = sampler.sample(seeds, settings.fanouts, samples).to(x.device)
        # The seeds' labels: the seeds are the first `batch_size` nodes of the batch
        labels = y[batch.n_id[:batch.batch_size]]
        # One optimiser step, reading only the rows `n_id` of the features. The loss is the sum over
        # this rank's seeds, over the global batch, times the number of ranks: DDP's average of the
        # ranks' gradients is then the gradient of the mean loss of the global batch
        optimizer.zero_grad()
        logits = model(fast.csr_rows(x, batch.n_id), batch.blocks)
        loss = nn.functional.cross_entropy(logits, labels, reduction='sum')
        (loss * n_ranks / global_size).backward()
        optimizer.step()
        step_losses.append(loss.item())
        step_nodes.append(len(batch.n_id))
        correct += (logits.argmax(dim=-1) == labels).sum().item()
        n_seeds += len(seeds)
        n_edges += batch.blocks[0].edge_index.shape[1]
    # Summed over the ranks in one exchange, each step's numbers too: the labml run, which
    # rank 0 writes, tracks the loss and the nodes of every global batch, not of its slice
    sums = distributed.sum_over_ranks(correct, n_seeds, n_edges,
                                      *step_losses, *step_nodes)
    (correct, n_seeds, n_edges), sums = sums[:3], sums[3:]
    step_losses, step_nodes = sums[:len(shares)], sums[len(shares):]
    for (_, global_size), step_loss, nodes in zip(shares, step_losses, step_nodes):
        tracker.add({'loss.train': step_loss / global_size, 'batch.nodes': int(nodes)})
    loss_sum, n_nodes = sum(step_losses), sum(step_nodes)
    return {'loss': loss_sum / n_seeds, 'accuracy': correct / n_seeds,
            'nodes': n_nodes / len(shares), 'edges': n_edges / len(shares)}


@torch.no_grad()
def evaluate(model: MiniBatchGAT, sampler: NeighbourSampler, x: torch.Tensor,
             y: torch.Tensor, nodes: torch.Tensor,
             batch_size: int) -> Tuple[float, float]:
    """
    ## Evaluation

    The loss and accuracy on `nodes`, without dropout and with all their neighbours, in batches.
    Each rank evaluates its slice of `nodes`; the sums of the losses and of the correct nodes are
    added over the ranks, so every rank gets the same numbers.
    """
    model.eval()
    loss_sum = correct = 0
    for seeds in distributed.share(nodes).split(batch_size):
        batch = sampler.sample(seeds, ALL_NEIGHBOURS).to(x.device)
        logits = model(fast.csr_rows(x, batch.n_id), batch.blocks)
        labels = y[seeds.to(x.device)]
        loss_sum += nn.functional.cross_entropy(logits, labels, reduction='sum').item()
        correct += (logits.argmax(dim=-1) == labels).sum().item()
    loss_sum, correct = distributed.sum_over_ranks(loss_sum, correct)
    return loss_sum / len(nodes), correct / len(nodes)


def train_one_seed(settings: MiniBatchSettings, data: Planetoid, seed: int,
                   checkpoint: Optional[Path]) -> Tuple[dict, MiniBatchGAT]:
    """
    ## Training one seed

    As in the Cora experiment: validation after every epoch, early stopping, and one test of the
    weights of the best epoch. The seed fixes the initial weights, the dropout, the order of the
    targets (the same on every rank) and the samples (each rank draws its own).
    Under torchrun every rank runs this; only rank 0 has a `checkpoint` to write.
    """
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    samples = distributed.sample_generator(seed)
    device = distributed.device(settings.device)
    sampler = NeighbourSampler(data.edge_index, data.num_nodes)
    # The features as a sparse CSR matrix; the sampler keeps its own lists of in-neighbours
    x = fast.to_sparse_csr(data.x).to(device)
    y = data.y.to(device)
    # The node ids of each split
    nodes = {split: mask.nonzero().squeeze(1) for split, mask in
             (('train', data.train_mask), ('valid', data.val_mask),
              ('test', data.test_mask))}

    # The model and its optimiser, as in the Cora experiment; DDP averages the gradients
    module = MiniBatchGAT(LAYERS[settings.layer], data.num_features, data.num_classes,
                          settings.n_heads, settings.n_hidden, settings.dropout,
                          settings.share_weights)
    module = fast.speed_up(module).to(device)
    model = distributed.wrap(module)
    distributed.own_dropout(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate,
                                 weight_decay=settings.weight_decay)

    # An epoch trains on every training node once, then validates with all neighbours
    early_stopping = EarlyStopping(settings.early_stopping, settings.patience)
    history, batch_nodes, batch_edges = [], [], []
    start = time.perf_counter()
    for epoch in epochs(settings.epochs):
        train = train_epoch(model, optimizer, sampler, x, y, nodes['train'], settings,
                            order, samples)
        val_loss, val_acc = evaluate(module, sampler, x, y, nodes['valid'],
                                     settings.eval_batch_size)
        tracker.save(epoch, {'accuracy.train': train['accuracy'],
                             'loss.valid': val_loss, 'accuracy.valid': val_acc})
        history.append({'loss.train': train['loss'], 'accuracy.train': train['accuracy'],
                        'loss.valid': val_loss, 'accuracy.valid': val_acc})
        batch_nodes.append(train['nodes'])
        batch_edges.append(train['edges'])

        # Keep the weights of the best epoch so far, and stop when patience runs out:
        # the numbers are the same on every rank, so every rank stops at the same epoch
        if early_stopping.update(epoch, module, val_acc, val_loss):
            break
    seconds = time.perf_counter() - start

    # Test the best weights, as saved to and loaded back from the checkpoint
    early_stopping.restore_best(module, checkpoint)
    result = {'seed': seed, 'best_epoch': early_stopping.best_epoch, 'epochs': epoch + 1,
              'seconds': round(seconds, 2), 'checkpoint': str(checkpoint),
              'val_accuracy': evaluate(module, sampler, x, y, nodes['valid'],
                                       settings.eval_batch_size)[1],
              'test_accuracy': evaluate(module, sampler, x, y, nodes['test'],
                                        settings.eval_batch_size)[1],
              'nodes_per_batch': round(statistics.fmean(batch_nodes), 1),
              'edges_per_batch': round(statistics.fmean(batch_edges), 1),
              'history': history}
    tracker.save(epoch + 1, {'accuracy.test': result['test_accuracy']})
    return result, module


def check_blocks(x: torch.Tensor, blocks: List[Block]) -> None:
    if x.layout != torch.sparse_csr:
        raise TypeError(f'x must be a sparse CSR matrix (the rows n_id of the features), '
                        f'got layout {x.layout}')
    if len(blocks) != N_LAYERS:
        raise ValueError(f'the model takes {N_LAYERS} blocks, one per layer, '
                         f'got {len(blocks)}')
    if x.shape[0] != blocks[0].n_src:
        raise ValueError(f'x must have a row for each of the {blocks[0].n_src} nodes '
                         f'of the batch, got {x.shape[0]} rows')
    if blocks[0].n_dst != blocks[1].n_src:
        raise ValueError(f'the first block must have the sources of the second as '
                         f'targets, got {blocks[0].n_dst} targets and '
                         f'{blocks[1].n_src} sources')


def report(summary: dict, data: Planetoid) -> str:
    """The size of the batches, then the table of the seeds. Under torchrun each process
    samples the neighbours of its slice of a batch: the sizes are the sums of the slices'."""
    settings = summary['settings']
    nodes = statistics.fmean(r['nodes_per_batch'] for r in summary['runs'])
    edges = statistics.fmean(r['edges_per_batch'] for r in summary['runs'])
    n_edges = data.edge_index.shape[1] + data.num_nodes
    sliced = (f", summed over the {summary['jobs']} processes' slices"
              if summary.get('torchrun') else '')
    return '\n'.join([
        f"Mini-batches of {settings['batch_size']} training nodes, fanouts "
        f"{settings['fanouts']}: "
        f"{nodes:.0f} nodes and {edges:.0f} edges per batch on average{sliced} "
        f"(the graph: {data.num_nodes} nodes, {n_edges} edges with self loops)",
        format_summary(summary, f"{LAYER_NAMES[settings['layer']]} on "
                                f"{settings['dataset']}, mini-batches")])


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """## From the command line"""
    distributed.quiet_unless_main()
    with distributed.checks_said_once():
        settings, explicit = MiniBatchSettings.from_command_line(
            argv, 'Train a two-layer GATv2 (or GAT) on Cora or CiteSeer with '
                  'neighbour-sampled mini-batches, in one process or under torchrun.')
        data = load_planetoid(settings.dataset, settings.data_dir)
        # The whole graph bounds what a batch holds
        n_edges = data.edge_index.shape[1] + data.num_nodes  # with the self loops
        check_edges_fit(settings, data.num_nodes, n_edges, data.num_features,
                        data.num_classes)
    with distributed.job(settings.device, settings.peer_timeout):
        # Every launch of the job was given the same settings
        distributed.check_same_settings(settings)
        # Rank 0 gets the summary; the other ranks `None`
        summary = distributed.run_seeds(settings, explicit, data, train_one_seed, argv)
    if summary is not None:
        print(report(summary, data))
        if settings.summary_json:
            write_json(Path(settings.summary_json), summary)
    return summary


if __name__ == '__main__':
    command(main, torchrun=True)()
