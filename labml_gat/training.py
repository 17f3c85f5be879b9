r"""
---
title: Training node classifiers
summary: >
  What the Cora experiments share: the GAT paper's settings, its early-stopping rule,
  the accuracy, and the cost of the dense layer on a whole graph.
---

# Training node classifiers

The [Cora experiment](../experiments/cora.html) and its
[mini-batch twin](../experiments/cora_minibatch.html) share the settings of the
[GAT paper](https://arxiv.org/abs/1710.10903) and its rule for early stopping.
"""

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import torch
from torch import nn

from labml_gat.results import number_of
from labml_gat.seeds import SeedSettings, seed_processes
from labml_gat.settings import (Settings, UsageError, check_apart, check_at_least,
                                check_device, check_folder, check_logs, check_output,
                                check_positive, check_probability, check_seed,
                                check_threads, labml_folders, setting)


# The most seeds one command runs: enough for a mean and a spread, and a bound on the labml
# runs a typing mistake can start
MAX_SEEDS = 100


@dataclass
class NodeClassificationSettings(Settings):
    """
    ## Settings

    The defaults are the GAT paper's for Cora: two layers, $K = 8$ heads of $F' = 8$ features,
    dropout $0.6$ on the inputs and on the attention, Adam with learning rate $0.005$ and weight
    decay $5 \\cdot 10^{-4}$, and early stopping with a patience of 100 epochs.
    """
    layer: str = setting('gatv2', 'the attention layer', choices=('gatv2', 'gat'))
    dataset: str = setting('cora', 'the Planetoid graph', choices=('cora', 'citeseer'))
    data_dir: Optional[str] = setting(None, 'folder with the Planetoid files (default: '
                                            '$LABML_GAT_DATA, else ../shared/data/'
                                            'planetoid beside the clone, else download)',
                                      path=True)
    n_heads: int = setting(8, 'attention heads K of the first layer')
    n_hidden: int = setting(8, "features F' per head of the first layer")
    dropout: float = setting(0.6, "dropout on the layers' inputs and attention")
    learning_rate: float = setting(0.005, "Adam's learning rate")
    weight_decay: float = setting(5e-4, "Adam's weight decay")
    epochs: int = setting(1000, 'at most this many epochs; '
                                'early stopping ends runs sooner')
    early_stopping: str = setting('gat', 'gat: on validation loss or accuracy, as the '
                                         'GAT paper; accuracy: on validation '
                                         'accuracy alone',
                                  choices=('gat', 'accuracy'))
    patience: int = setting(100, 'stop after this many epochs without improvement')
    share_weights: bool = setting(False, 'GATv2 only: one matrix for both ends, '
                                         'W_l = W_r')
    seed: int = setting(0, 'the first seed')
    seeds: int = setting(1, 'how many seeds to run, from --seed on')
    jobs: Optional[int] = setting(None, 'processes training the seeds of --seeds side '
                                        'by side (default: one per core, at most one per '
                                        'seed)')
    threads: int = setting(1, 'PyTorch threads per process')
    device: str = setting('cpu', 'cpu, cuda, cuda:1 or mps')
    logs: Optional[str] = setting(None, 'folder for the labml runs '
                                        "(default: labml's logs/)", path=True)
    summary_json: Optional[str] = setting(None, 'write the final numbers to this '
                                                'JSON file', path=True)
    quiet: bool = setting(False, 'no per-epoch progress; the runs are still kept')

    def check(self) -> None:
        """Everything that can be checked before a run starts."""
        super().check()
        check_at_least(self, 1, ('n_heads', 'n_hidden', 'epochs', 'patience'))
        check_seeds(self)
        check_threads(self.threads)
        check_probability('dropout', self.dropout)
        check_positive('learning_rate', self.learning_rate)
        check_positive('weight_decay', self.weight_decay, zero=True)
        if self.share_weights and self.layer != 'gatv2':
            raise UsageError('--share-weights is an option of the GATv2 layer '
                             '(--layer gatv2)')
        check_device(self.device)
        check_folder('--data-dir', self.data_dir)
        check_output('--summary-json', self.summary_json)
        check_logs(self.logs)
        check_apart('--summary-json', self.summary_json,
                    labml_folders(self.logs, self.experiment_name()))

    def check_given(self, given: set) -> None:
        """The flags given are read: `--jobs` by runs over seeds alone."""
        check_jobs(given)

    def experiment_name(self) -> str:
        """The labml experiment: its runs are kept in `logs/<name>/`."""
        return f'{self.dataset}_{self.layer}'

    def comment(self, seed: int) -> str:
        """The comment of a seed's labml run."""
        return f'seed {seed}'


def check_seeds(settings: Settings) -> None:
    """
    The seeds of a run of many (`--seed`, `--seeds`, `--jobs`): at least one seed and one
    process, at most `MAX_SEEDS` seeds, each below $2^{32}$. Every experiment that runs
    [seeds side by side](seeds.html) checks them so.
    """
    check_at_least(settings, 1, ('seeds', 'jobs'))
    if settings.seeds > MAX_SEEDS:
        raise UsageError(f'--seeds {settings.seeds}: at most {MAX_SEEDS} in one command, '
                         f'each a labml run; go on later with '
                         f'--seed {settings.seed + MAX_SEEDS}')
    check_seed(settings.seed, settings.seeds)


def check_jobs(given: set) -> None:
    """
    `--jobs` given without `--seeds` (`given` names the settings given on the command
    line): one seed trains, in this process, and a `--jobs` would be silently ignored.
    Every experiment that runs [seeds side by side](seeds.html) refuses it so.
    """
    if 'jobs' in given and 'seeds' not in given:
        raise UsageError('a run without --seeds trains one seed and does not read '
                         '--jobs; it is for the seeds of --seeds, side by side')


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of nodes whose highest-scoring class is their label."""
    return (logits.argmax(dim=-1) == labels).float().mean().item()


class EarlyStopping:
    """
    ## Early stopping

    Two criteria on the validation set, chosen with `--early-stopping`:

    * `gat`, the GAT paper's: an epoch *improves* when the validation accuracy is at least the
      best so far **or** the validation loss at most the lowest so far, and training stops after
      `patience` epochs without improvement. The weights kept are those of the last epoch that
      matched both the best accuracy and the lowest loss so far, as in the paper's code.
    * `accuracy`, PyG's and DGL's examples': an epoch improves when the validation accuracy is
      higher than the best so far, or equal with a lower loss; its weights are kept.
    """

    def __init__(self, criterion: str, patience: int):
        self.criterion = criterion
        self.patience = patience
        self.best_acc, self.best_loss = -math.inf, math.inf
        self.bad_epochs = 0
        # The epoch and the weights kept so far (the first epoch is always kept)
        self.best_epoch = 0
        self.best_state = None

    def step(self, val_acc: float, val_loss: float) -> Tuple[bool, bool]:
        """Returns `(keep, stop)`: whether to keep this epoch's weights, and whether to stop."""
        if self.criterion == 'gat':
            improved = val_acc >= self.best_acc or val_loss <= self.best_loss
            keep = val_acc >= self.best_acc and val_loss <= self.best_loss
            if improved:
                self.best_acc = max(self.best_acc, val_acc)
                self.best_loss = min(self.best_loss, val_loss)
        else:
            improved = keep = (val_acc, -val_loss) > (self.best_acc, -self.best_loss)
            if improved:
                self.best_acc, self.best_loss = val_acc, val_loss
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return keep, self.bad_epochs >= self.patience

    def update(self, epoch: int, model: nn.Module, val_acc: float,
               val_loss: float) -> bool:
        """`step`, keeping a copy of the weights when they are the best so far;
        returns whether to stop."""
        keep, stop = self.step(val_acc, val_loss)
        # The first epoch is kept whatever it scored: a NaN loss beats nothing
        if keep or self.best_state is None:
            self.best_epoch = epoch
            self.best_state = copy.deepcopy(model.state_dict())
        return stop

    def restore_best(self, model: nn.Module, checkpoint: Optional[Path]) -> None:
        """Save the best weights to `checkpoint` and load them into `model` from the file,
        with `weights_only=True`: what is tested is what was saved. Without a `checkpoint`
        (a process other than rank 0 of a distributed job, a run that keeps no files), load
        them from memory."""
        if checkpoint is None:
            model.load_state_dict(self.best_state)
            return
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.best_state, checkpoint)
        device = next(model.parameters()).device
        state = torch.load(checkpoint, weights_only=True, map_location=device)
        model.load_state_dict(state)


def dense_training_bytes(layer: str, n_nodes: int, n_heads: int, n_hidden: int,
                         bytes_per_float: int = 4) -> int:
    r"""
    ## The cost of the dense layers on a whole graph

    The [dense GATv2 layer](gatv2.html) builds the grid of all $N^2$ node pairs with $K F'$
    features each. A training step of its first layer holds about five tensors of that size at
    once: the two repeated copies, their sum and the LeakyReLU's output in the forward pass, and
    a gradient of the same size in the backward pass. The [dense GAT layer](gat.html) splits its
    score before the pairs are formed, so its grids have $N^2 K$ numbers only: the scores, the
    masked scores, the coefficients, the dropout's mask and output, and their gradients, about
    ten such tensors.
    """
    if layer == 'gatv2':
        return 5 * n_nodes * n_nodes * n_heads * n_hidden * bytes_per_float
    return 10 * n_nodes * n_nodes * n_heads * bytes_per_float


def edges_training_bytes(n_nodes: int, n_edges: int, n_features: int, n_classes: int,
                         n_heads: int, n_hidden: int, bytes_per_float: int = 4) -> int:
    r"""
    The two-layer model with the [edge-list layers](edges.html) on a whole graph: the weights
    of both layers ($2 \cdot K F'$ per input feature and per class: $W_l$ and $W_r$) four times
    over (the weights, their gradients and Adam's two moments), and for a training step about
    five tensors of $K F'$ features per edge and four per node. An upper bound for GAT, which
    has one matrix and keeps less per edge.
    """
    features = n_heads * n_hidden
    # $W_l$ and $W_r$ of both layers, and the attention vectors
    parameters = 2 * features * (n_features + n_classes) + features + n_classes
    step = (5 * n_edges + 4 * n_nodes) * features
    return (4 * parameters + step) * bytes_per_float


def available_memory_bytes(device: str = 'cpu') -> int:
    """
    Memory that `device` can still give: a CUDA device's free memory; for the processor
    (and Apple's MPS, which shares it) `MemAvailable` on Linux, else the physical memory.
    """
    if torch.device(device).type == 'cuda':
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return free
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def check_fits(needed: int, device: str, what: str, instead: str,
               per: str = 'per training step') -> None:
    """
    Refuse a run whose estimated peak, `needed` bytes, exceeds what `device` has free.
    `per` says what needs them, when it is not a training step (a graph to build).
    """
    available = available_memory_bytes(device)
    if needed > 0.9 * available:
        # One decimal, or three digits past any memory (not the hundreds of a huge graph)
        need = needed / 2 ** 30
        shown = f'{need:.1f}' if need < 10 ** 9 else f'{need:.3g}'
        raise UsageError(f'{what}: about {shown} GiB {per}, '
                         f'but only {available / 2 ** 30:.1f} GiB is free on {device}; '
                         f'{instead}')


# What a process that trains seeds side by side holds before its first step: Python,
# PyTorch and the libraries it imports, and its copy of the data. Measured, a worker of Cora
# or of DictionaryLookup peaks at 340 to 360 MiB, its small training step included
WORKER_BYTES = 320 * 2 ** 20


def check_seeds_fit(settings: SeedSettings, needed: int, device: str, what: str,
                    instead: str, per: str = 'per training step') -> None:
    """
    `check_fits` for the processes that train the seeds side by side (`--jobs`,
    [`seed_processes`](seeds.html); one under torchrun): each needs its `needed` bytes,
    and each worker its own Python and PyTorch (`WORKER_BYTES`), in the host's memory.
    Every experiment that runs seeds checks its memory so, before any run starts: a hundred
    workers take tens of GiB before their first step, and the kernel's out-of-memory killer
    would end them midway.
    """
    from labml_gat.distributed import world_size
    # Under torchrun the ranks train each seed together, and refuse `--jobs`
    processes = 1 if world_size() > 1 else seed_processes(settings)
    if processes == 1:
        check_fits(needed, device, what, instead, per)
        return
    host = device
    # The bytes said are those of all the processes together, not of each
    together = (f'{what}, in {processes} processes at once (--jobs)',
                f'{instead}, or fewer --jobs')
    # A CUDA device holds the work alone; the processor's memory (MPS's too) the workers
    if torch.device(device).type == 'cuda':
        check_fits(processes * needed, device, *together, per)
        host, needed = 'cpu', 0
    total = processes * (needed + WORKER_BYTES)
    # The larger part names what to change: each process's work, or the processes
    if needed >= WORKER_BYTES:
        check_fits(total, host, *together, f'{per}, with their Python and PyTorch')
    else:
        check_fits(total, host, f'{processes} processes training seeds side by side '
                                f'(--jobs)', 'use fewer --jobs',
                   'with their Python, PyTorch and work')


def check_edges_fit(settings: NodeClassificationSettings, n_nodes: int, n_edges: int,
                    n_features: int, n_classes: int) -> None:
    """Refuse heads and features per head too many for the memory, before anything runs."""
    needed = edges_training_bytes(n_nodes, n_edges, n_features, n_classes,
                                  settings.n_heads, settings.n_hidden)
    check_seeds_fit(settings, needed, settings.device,
                    f'--n-heads {settings.n_heads} x --n-hidden {settings.n_hidden} '
                    f'features on {n_nodes} nodes and {n_edges} edges',
                    'use fewer heads or features')


def check_dense_fits(settings: NodeClassificationSettings, n_nodes: int) -> str:
    """
    Refuse the dense layer when its estimated peak exceeds the free memory of the device;
    otherwise return a warning to print before the run starts, since it is slow as well as
    large.
    """
    s = settings
    needed = dense_training_bytes(s.layer, n_nodes, s.n_heads, s.n_hidden)
    size = (f"{n_nodes}^2 node pairs x {number_of(s.n_heads, 'head')} x "
            f"{number_of(s.n_hidden, 'feature')}")
    check_seeds_fit(s, needed, s.device, f'--impl dense needs {size}',
                    'use --impl edges (the same function in O(edges) memory)')
    return (f'--impl dense computes all {size}: about {needed / 2 ** 30:.1f} GiB per '
            f'training step; each epoch takes seconds to minutes, so one seed can take '
            f'hours. --impl edges computes the same function in O(edges).')
