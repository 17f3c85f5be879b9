r"""
---
title: Train a two-layer GATv2 on Cora
summary: >
  The node-classification experiment of the GAT paper with GATv2 layers: Cora's public split,
  early stopping on validation, labml tracking, and test accuracy over many seeds.
---

# Train a two-layer GATv2 on Cora

This script trains the model of the [GAT paper](https://arxiv.org/abs/1710.10903) on the
[Cora citation graph](../labml_gat/datasets.html), with the attention layers of
[GATv2](../labml_gat/gatv2.html) (or, with `--model gat`, of [GAT](../labml_gat/gat.html)).

Cora has 2708 papers, each a bag of 1433 words, linked by 5429 citations, and every paper has one of
7 topics. Only 140 labels are seen in training; the model must spread what they tell through the graph.

## The model

Two attention layers, as in the GAT paper:

1. $K = 8$ heads of 8 features each, concatenated to 64 features, then an ELU;
2. one head that maps the 64 features to the 7 class scores.

Dropout with $p = 0.6$ is applied to the input of both layers and to the attention coefficients,
and every node attends to itself as well as to its neighbours.
Training is full-batch with Adam (learning rate 0.005, weight decay $5 \cdot 10^{-4}$).

## Two implementations of the same layer

`--impl dense` runs the tutorial's layer literally: it builds the $N \times N$ grid of node pairs.
On Cora that is $2708^2 \approx 7.3$ million pairs per head, several gigabytes and seconds per step.
`--impl edges` (the default) runs the [edge-list layer](../labml_gat/edges.html): the same function with
the same parameters, computed on the 13264 edges only.

## Usage

```bash
python experiments/cora.py                      # GATv2, one seed
python experiments/cora.py --seeds 10           # mean and std over 10 seeds, one process per core
python experiments/cora.py --model gat          # the GAT (v1) baseline
python experiments/cora.py --impl dense         # the tutorial's dense layer, literally
```

Each seed is a labml run in `logs/cora_gatv2/<run uuid>/`: `configs.yaml` holds the settings,
`log.jsonl` the tracked metrics, and `checkpoints/best.pt` the weights of the best epoch.

## Speed

A training step computes only the [receptive field](#receptive-fields) of the training nodes,
dropout draws 15 random bits per decision instead of a Bernoulli sample ([`FastDropout`](#dropout-from-15-random-bits)),
the first layer sorts the transpose of its sparse input once instead of in every backward pass
([`SparseInputLinear`](#a-faster-gradient-for-the-sparse-input)),
and several seeds train [side by side](#seeds-side-by-side), one process per core.
Ten seeds take about 50 seconds on a 2-core laptop CPU.
"""

import argparse
import copy
import json
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
from labml import experiment, lab, monit, tracker
from torch import nn

from labml_gat.datasets import Graph, load_planetoid
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer

# The layer for each `(--model, --impl)`: dense twins take `adj_mat`, edge-list twins take `edge_index`.
LAYERS = {
    ('gatv2', 'dense'): GraphAttentionV2Layer,
    ('gatv2', 'edges'): EdgeGraphAttentionV2Layer,
    ('gat', 'dense'): GraphAttentionLayer,
    ('gat', 'edges'): EdgeGraphAttentionLayer,
}

# Published test accuracies on Cora's public split, to print next to ours.
ANCHORS = {
    'GAT paper (Veličković et al., 2018)': '83.0 ± 0.7',
    "DGL's GATv2 example": '82.1',
}


@dataclass
class Config:
    """
    ## Settings

    The defaults are the GAT paper's for Cora.
    """
    # `gatv2` or `gat`
    model: str = 'gatv2'
    # `edges` or `dense`
    impl: str = 'edges'
    # `cora` or `citeseer`
    dataset: str = 'cora'
    # A folder with the Planetoid files (else `LABML_GAT_DATA`, else the download cache)
    data_dir: Optional[str] = None
    # Heads and features per head of the first layer
    n_heads: int = 8
    n_hidden: int = 8
    # Dropout on the layers' inputs and on the attention coefficients
    dropout: float = 0.6
    # Adam
    learning_rate: float = 0.005
    weight_decay: float = 5e-4
    # At most this many epochs; early stopping ends most runs long before
    epochs: int = 1000
    # Early stopping: `gat` (validation loss and accuracy, as the GAT paper) or `accuracy`
    early_stopping: str = 'gat'
    # Stop after this many epochs without improvement
    patience: int = 100
    # GATv2 only: use one matrix for both sides of the pair, $W_l = W_r$
    share_weights: bool = False
    # First seed, and how many seeds to run (`seed`, `seed + 1`, ...)
    seed: int = 0
    seeds: int = 1
    # Processes that train seeds side by side; `None` for one per core (at most one per seed)
    jobs: Optional[int] = None
    device: str = 'cpu'
    # Write the final numbers here as JSON
    summary_json: Optional[str] = None
    # labml writers: `screen` prints, `file` keeps the run in `logs/`
    writers: set = field(default_factory=lambda: {'screen', 'file'})

    def experiment_name(self) -> str:
        """The labml experiment: runs are kept in `logs/<name>/`."""
        return f'{self.dataset}_{self.model}'

    def comment(self, seed: int) -> str:
        """The labml run's comment."""
        return f'{self.impl} layer, seed {seed}'


class FastDropout(nn.Module):
    r"""
    ## Dropout from 15 random bits

    Dropout keeps each entry with probability $1 - p$ and scales the kept ones by $\frac{1}{1 - p}$.
    `nn.Dropout` draws each keep/drop decision as a Bernoulli sample, which on a CPU costs more than all
    the arithmetic the layers do with that entry: it was the largest single cost of a Cora step.
    Here each decision compares one random integer $u$, uniform on $\{0, 1, \dots, 2^{15} - 1\}$,
    with a threshold $t = \text{round}(p \cdot 2^{15})$: the entry is kept when $u \ge t$, which happens
    with probability $1 - t / 2^{15}$, within $2^{-16}$ of $1 - p$ (for $p = 0.6$: $0.399994$ instead of $0.4$).
    Drawing 16-bit integers is several times faster than drawing Bernoulli samples.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * 2 ** 15)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        # `random_` fills an `int16` tensor with integers uniform on $[0, 2^{15})$
        keep = torch.empty(x.shape, dtype=torch.int16, device=x.device).random_() >= self.threshold
        return x * (keep * (1 / (1 - self.p)))

    def extra_repr(self) -> str:
        return f'p={self.p}'


class SparseInputDropout(FastDropout):
    r"""
    ## Dropout on sparse features

    Cora's bag-of-words features are 98.7% zeros. Dropout multiplies each entry by a random
    $0$ or $\frac{1}{1 - p}$, which leaves a zero a zero: drawing the random mask only for the
    non-zero entries is exactly the same dropout, on 1.3% of the entries.
    The input is kept as a sparse CSR matrix, and the first layer's linear maps multiply it directly.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        # Dropout on the stored values only; the sparsity pattern is shared.
        values = super().forward(x.values())
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape,
                                       check_invariants=False)


class SparseInputLinear(nn.Linear):
    r"""
    ## A faster gradient for the sparse input

    The first layer multiplies the sparse features $X$, `[n_nodes, in_features]`, by its weights:
    $g = X W^\top$. The gradient of the weights is $\nabla_W = (X^\top \nabla_g)^\top$, and for it
    PyTorch converts $X^\top$ to a CSR matrix on every step, sorting all of $X$'s entries by column:
    that sort was the largest single cost of a Cora training step.
    But the entries of $X$ keep their places from step to step: dropout changes only their values.
    So this `nn.Linear` sorts once. It keeps $X^\top$'s sparsity pattern, and `order`, which lists the
    entries of $X$ in the order of $X^\top$'s entries; each step then only gathers `values[order]`.

    The layers' linear maps are replaced by this class after they are built (it keeps their weights);
    a dense input, or a forward pass without gradients, is the plain `nn.Linear`.
    """

    def __init__(self, linear: nn.Linear):
        # Built on the `meta` device, with no memory and no random draws, then given the layer's parameters
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None,
                         device='meta')
        self.weight, self.bias = linear.weight, linear.bias
        # The last sparsity pattern seen, as returned by `transposed_pattern`
        self.pattern = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout != torch.sparse_csr or not torch.is_grad_enabled():
            return super().forward(x)
        _, _, order, crow_t, col_t = self.transposed_pattern(x)
        x_t = torch.sparse_csr_tensor(crow_t, col_t, x.values()[order], (x.shape[1], x.shape[0]),
                                      check_invariants=False)
        out = SparseMatmul.apply(x, x_t, self.weight)
        return out if self.bias is None else out + self.bias

    def transposed_pattern(self, x: torch.Tensor) -> tuple:
        """`(crow_indices, col_indices)` of `x`, then `(order, crow_indices, col_indices)` of its transpose."""
        crow, col = x.crow_indices(), x.col_indices()
        # The same pattern as last time: the same index arrays (kept alive here, so an address is not reused)
        if self.pattern is not None and (crow.data_ptr(), col.data_ptr(), col.shape) == (
                self.pattern[0].data_ptr(), self.pattern[1].data_ptr(), self.pattern[1].shape):
            return self.pattern
        # The row of every entry; the entries are stored row by row
        row = torch.repeat_interleave(torch.arange(x.shape[0], device=col.device), crow.diff())
        # $X^\top$ stores them column by column of $X$, rows ascending: a stable sort by column
        order = torch.argsort(col, stable=True)
        crow_t = torch.cat([crow.new_zeros(1), torch.bincount(col, minlength=x.shape[1]).cumsum(0)])
        self.pattern = (crow, col, order, crow_t, row[order])
        return self.pattern


class SparseMatmul(torch.autograd.Function):
    r"""$X W^\top$ for a sparse CSR $X$, given $X^\top$ (also CSR) for the gradient of $W$."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, x_t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.x_t = x_t
        return x @ weight.T

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # $\nabla_W = (X^\top \nabla_g)^\top$; no gradient for $X$ and $X^\top$
        return None, None, (ctx.x_t @ grad).T


class GAT(nn.Module):
    """
    ## The two-layer model

    `layer` is one of the four layer classes; `graph` in `forward` is what that layer takes:
    the adjacency matrix for a dense layer, the edge list for an edge-list layer.
    """

    def __init__(self, layer: type, in_features: int, n_classes: int, n_heads: int, n_hidden: int,
                 dropout: float, share_weights: bool = False):
        super().__init__()
        v2_options = {'share_weights': share_weights} if layer in (GraphAttentionV2Layer,
                                                                    EdgeGraphAttentionV2Layer) else {}
        self.input_dropout = SparseInputDropout(dropout)
        # First layer: $K$ heads of `n_hidden` features, concatenated
        self.layer1 = layer(in_features, n_heads * n_hidden, n_heads, is_concat=True, dropout=dropout,
                            bias=True, **v2_options)
        self.activation = nn.ELU()
        self.dropout = FastDropout(dropout)
        # Output layer: one head, the class scores
        self.output = layer(n_heads * n_hidden, n_classes, 1, is_concat=False, dropout=dropout,
                            bias=True, **v2_options)
        # The layers' dropout on the attention coefficients is a submodule too: the same, drawn faster
        self.layer1.dropout = FastDropout(dropout)
        self.output.dropout = FastDropout(dropout)
        # The first layer's linear maps (GAT's $W$, GATv2's $W_l$ and $W_r$) multiply the sparse features:
        # sort their transpose only once. With `share_weights`, `linear_l` and `linear_r` are one module
        # and stay one.
        replaced = {}
        for name in ('linear', 'linear_l', 'linear_r'):
            if hasattr(self.layer1, name):
                linear = getattr(self.layer1, name)
                setattr(self.layer1, name, replaced.setdefault(id(linear), SparseInputLinear(linear)))

    def forward(self, x: torch.Tensor, graph: Union[torch.Tensor, Sequence[torch.Tensor]]) -> torch.Tensor:
        """
        * `x` is the node features, a sparse CSR matrix `[n_nodes, in_features]`
        * `graph` is the adjacency `[n_nodes, n_nodes]` or the edges `[2, n_edges]`, self loops included,
          for both layers; or a pair, one graph per layer, such as the edges of a
          [receptive field](#receptive-fields)

        Returns the class scores (logits), `[n_nodes, n_classes]`.
        """
        graph1, graph2 = (graph, graph) if isinstance(graph, torch.Tensor) else graph
        h = self.layer1(self.input_dropout(x), graph1)
        h = self.dropout(self.activation(h))
        return self.output(h, graph2)


def prepare_inputs(data: Graph, impl: str, n_heads: int, n_hidden: int, device: torch.device):
    """
    ## Inputs

    The features as a sparse matrix and the graph in the form the layer takes, with self loops.
    The dense form is refused before it is allocated when it would not fit in memory.
    """
    x = to_sparse_csr(data.x).to(device)
    if impl == 'edges':
        return x, data.edge_index_with_self_loops().to(device)
    check_dense_fits(data.num_nodes, n_heads, n_hidden)
    return x, data.adjacency(self_loops=True).to(device)


def to_sparse_csr(x: torch.Tensor) -> torch.Tensor:
    """A dense matrix as sparse CSR."""
    with warnings.catch_warnings():
        # PyTorch flags sparse CSR as "beta"; the two operations used here are well covered.
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in beta')
        return x.to_sparse_csr()


def csr_rows(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """
    The rows `rows` of the sparse CSR matrix `x`, as a sparse CSR matrix `[len(rows), x.shape[1]]`.
    PyTorch cannot index the rows of a CSR matrix, so they are gathered from its arrays:
    row $r$ holds the entries `crow_indices[r]` to `crow_indices[r + 1]` of `col_indices` and `values`.
    """
    crow = x.crow_indices()
    start, count = crow[rows], crow[rows + 1] - crow[rows]
    # The rows' entries start at `new_crow[:-1]` in the result
    new_crow = torch.cat([count.new_zeros(1), count.cumsum(0)])
    # Where each entry of the result is in `x`: its row's start in `x`, plus its place in the row
    entry = (torch.repeat_interleave(start - new_crow[:-1], count)
             + torch.arange(int(new_crow[-1]), device=crow.device))
    return torch.sparse_csr_tensor(new_crow, x.col_indices()[entry], x.values()[entry], (len(rows), x.shape[1]),
                                   check_invariants=False)


@dataclass
class ReceptiveField:
    r"""
    ## Receptive fields

    The loss of a training step reads the outputs of the 140 training nodes only.
    The second layer's output at a node $i$ depends on the first layer's outputs at $i$'s neighbours
    $\mathcal{N}_i$ (itself included), and those depend on the features of *their* neighbours:
    two hops in all. Everything else the full graph computes is thrown away.
    On Cora the training nodes need 778 of the 13264 edges in the second layer, 4478 in the first,
    and the features of 1664 of the 2708 nodes; the 500 validation nodes need 2448 and 8614 edges.

    Computing only the receptive field gives **the same outputs at the targets and the same gradients**
    as the full graph (`tests/test_cora.py` checks both), in a fraction of the time.
    This is also how PyG's `NeighborLoader` builds a mini-batch when it keeps all neighbours.

    * `nodes` are the nodes involved, `[n_field]`, in increasing order; the field's *local* index of
      `nodes[k]` is `k`
    * `edges` are the edges of each layer, first layer first, in local indices, `[2, n_edges_l]`
    * `targets` are the local indices of the target nodes, in the order they were given, `[n_targets]`
    """
    nodes: torch.Tensor
    edges: List[torch.Tensor]
    targets: torch.Tensor


def receptive_field(edge_index: torch.Tensor, targets: torch.Tensor, n_nodes: int,
                    n_layers: int) -> ReceptiveField:
    """
    The receptive field of `targets`, `[n_targets]` node indices, for `n_layers` layers that all use the
    edges `edge_index`, `[2, n_edges]` (row 0 the sources $j$, row 1 the targets $i$).
    """
    # `needed[v]` is whether the layers still to be added must produce an output at node `v`.
    # Walk back from the last layer: it needs the edges that end at the targets;
    # the layer before needs outputs at those edges' sources as well.
    needed = torch.zeros(n_nodes, dtype=torch.bool, device=edge_index.device)
    needed[targets] = True
    layer_edges = []
    for _ in range(n_layers):
        edges = edge_index[:, needed[edge_index[1]]]
        layer_edges.insert(0, edges)
        needed[edges[0]] = True

    # Renumber the nodes of the field $0, 1, \dots$ in their global order
    nodes = needed.nonzero().squeeze(1)
    local = torch.full((n_nodes,), -1, dtype=torch.long, device=edge_index.device)
    local[nodes] = torch.arange(len(nodes), device=edge_index.device)
    return ReceptiveField(nodes, [local[edges] for edges in layer_edges], local[targets])


def split_inputs(data: Graph, x: torch.Tensor, graph: torch.Tensor, mask: torch.Tensor, impl: str
                 ) -> Tuple[torch.Tensor, Union[torch.Tensor, List[torch.Tensor]], torch.Tensor]:
    """
    The inputs that produce the outputs at the nodes of `mask`: `(x, graph, index)`, where the model's
    output rows `index` are those nodes. The edge-list model gets their receptive field;
    the dense model, literal by design, keeps the whole graph.
    """
    index = mask.nonzero().squeeze(1)
    if impl == 'dense':
        return x, graph, index
    field = receptive_field(graph, index, data.num_nodes, n_layers=2)
    return csr_rows(x, field.nodes), field.edges, field.targets


def dense_training_bytes(n_nodes: int, n_heads: int, n_hidden: int, bytes_per_float: int = 4) -> int:
    r"""
    ### Memory of a dense training step

    The first layer dominates. Its pair tensor `g_sum` has $N^2 K F'$ entries (here $F'$ per head);
    a training step peaks at about three tensors of that size, as measured by `experiments/benchmark.py`
    (773 bytes per node pair for 8 heads of 8 features in float32, against the 768 counted here).
    """
    return 3 * n_nodes * n_nodes * n_heads * n_hidden * bytes_per_float


def available_memory_bytes() -> int:
    """Memory the system can still give (`MemAvailable` on Linux, else the physical memory)."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def check_dense_fits(n_nodes: int, n_heads: int, n_hidden: int) -> None:
    """Refuse `--impl dense` with a clear message when its estimated peak exceeds the free memory."""
    needed = dense_training_bytes(n_nodes, n_heads, n_hidden)
    available = available_memory_bytes()
    if needed > 0.9 * available:
        raise MemoryError(f'--impl dense needs about {needed / 2 ** 30:.1f} GiB for {n_nodes} nodes '
                          f'({n_heads} heads x {n_hidden} features: {n_nodes}^2 node pairs each), but only '
                          f'{available / 2 ** 30:.1f} GiB is available; use --impl edges (the same function '
                          f'in O(edges) memory)')


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of nodes whose highest-scoring class is their label."""
    return (logits.argmax(dim=-1) == labels).float().mean().item()


class EarlyStopping:
    """
    ## Early stopping

    Two criteria on the validation set, chosen with `--early-stopping`:

    * `gat`, the GAT paper's: an epoch *improves* when the validation accuracy is at least the best so far
      **or** the validation loss at most the lowest so far, and training stops after `patience` epochs
      without improvement. The weights kept are those of the last epoch that matched both the best
      accuracy and the lowest loss so far, as in the paper's code.
    * `accuracy`, PyG's and DGL's examples': an epoch improves when the validation accuracy is higher
      than the best so far, or equal with a lower loss; its weights are kept.
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
        """Returns `(keep, stop)`: whether to keep this epoch's weights, and whether to stop now."""
        if self.criterion == 'gat':
            improved = val_acc >= self.best_acc or val_loss <= self.best_loss
            keep = val_acc >= self.best_acc and val_loss <= self.best_loss
            if improved:
                self.best_acc, self.best_loss = max(self.best_acc, val_acc), min(self.best_loss, val_loss)
        else:
            improved = keep = (val_acc, -val_loss) > (self.best_acc, -self.best_loss)
            if improved:
                self.best_acc, self.best_loss = val_acc, val_loss
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return keep, self.bad_epochs >= self.patience

    def update(self, epoch: int, model: nn.Module, val_acc: float, val_loss: float) -> bool:
        """`step`, keeping a copy of the model's weights when they are the best so far; returns whether to stop."""
        keep, stop = self.step(val_acc, val_loss)
        if keep:
            self.best_epoch = epoch
            self.best_state = copy.deepcopy(model.state_dict())
        return stop

    def restore_best(self, model: nn.Module, checkpoint: Path) -> None:
        """Save the best weights to `checkpoint` and load them into `model` from the file,
        with `weights_only=True`: what is tested is what was saved."""
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(self.best_state, checkpoint)
        device = next(model.parameters()).device
        model.load_state_dict(torch.load(checkpoint, weights_only=True, map_location=device))


def train_one_seed(config: Config, data: Graph, seed: int, checkpoint: Path) -> Tuple[dict, GAT]:
    """
    ## Training one seed

    Full-batch training (on the [receptive field](#receptive-fields) of the training nodes), validating
    after every step, with early stopping on the validation set.
    The model is tested once, with the weights of the best validation epoch.

    Returns the results (with the per-epoch `history`) and the model with the best weights loaded.
    """
    torch.manual_seed(seed)
    device = torch.device(config.device)
    x, graph = prepare_inputs(data, config.impl, config.n_heads, config.n_hidden, device)
    y = data.y.to(device)
    masks = {'train': data.train_mask.to(device), 'valid': data.val_mask.to(device),
             'test': data.test_mask.to(device)}
    # The training step and the validation read only the outputs at their own nodes
    train_x, train_graph, train_index = split_inputs(data, x, graph, masks['train'], config.impl)
    valid_x, valid_graph, valid_index = split_inputs(data, x, graph, masks['valid'], config.impl)

    model = GAT(LAYERS[config.model, config.impl], data.num_features, data.num_classes, config.n_heads,
                config.n_hidden, config.dropout, config.share_weights).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_func = nn.CrossEntropyLoss()

    early_stopping = EarlyStopping(config.early_stopping, config.patience)
    history = []
    start = time.perf_counter()
    for epoch in monit.loop(config.epochs):
        # A training step on the 140 labelled nodes
        model.train()
        optimizer.zero_grad()
        logits = model(train_x, train_graph)[train_index]
        loss = loss_func(logits, y[masks['train']])
        loss.backward()
        optimizer.step()
        train_acc = accuracy(logits, y[masks['train']])
        tracker.add({'loss.train': loss, 'accuracy.train': train_acc})

        # Validation, without dropout
        model.eval()
        with torch.no_grad():
            logits = model(valid_x, valid_graph)[valid_index]
        val_loss = loss_func(logits, y[masks['valid']]).item()
        val_acc = accuracy(logits, y[masks['valid']])
        tracker.save(epoch, {'loss.valid': val_loss, 'accuracy.valid': val_acc})
        history.append({'loss.train': loss.item(), 'accuracy.train': train_acc,
                        'loss.valid': val_loss, 'accuracy.valid': val_acc})

        # Keep the weights of the best epoch so far, and stop when patience runs out
        if early_stopping.update(epoch, model, val_acc, val_loss):
            break
    seconds = time.perf_counter() - start

    # Test the best weights, as saved to and loaded back from the checkpoint
    early_stopping.restore_best(model, checkpoint)
    model.eval()
    with torch.no_grad():
        logits = model(x, graph)
    result = {'seed': seed, 'best_epoch': early_stopping.best_epoch, 'epochs': epoch + 1,
              'seconds': round(seconds, 2), 'checkpoint': str(checkpoint),
              'val_accuracy': accuracy(logits[masks['valid']], y[masks['valid']]),
              'test_accuracy': accuracy(logits[masks['test']], y[masks['test']]), 'history': history}
    tracker.save(epoch + 1, {'accuracy.test': result['test_accuracy']})
    return result, model


# A function that trains one seed: `(config, data, seed, checkpoint path)` to `(results, model)`
TrainOneSeed = Callable[[Config, Graph, int, Path], Tuple[dict, nn.Module]]


def run(config: Config, train: TrainOneSeed = train_one_seed) -> dict:
    """
    ## Running the seeds

    Each seed is its own labml run, trained by `train` (the [mini-batch experiment](cora_minibatch.html)
    passes its own). Returns the per-seed results and their mean and standard deviation,
    the training time summed over the seeds and the wall-clock time of the whole run.
    """
    validate(config)
    data = load_planetoid(config.dataset, config.data_dir)
    seeds = range(config.seed, config.seed + config.seeds)
    jobs = min(config.jobs or available_cores(), config.seeds)
    start = time.perf_counter()
    if jobs == 1:
        results = [run_seed(config, data, seed, train) for seed in seeds]
    else:
        results = run_in_parallel(config, data, seeds, train, jobs)
    wall_seconds = time.perf_counter() - start
    return {'config': {**asdict(config), 'writers': sorted(config.writers)}, 'runs': results,
            'num_nodes': data.num_nodes, 'num_edges': data.edge_index.shape[1],
            'test_accuracy': summarize([r['test_accuracy'] for r in results]),
            'val_accuracy': summarize([r['val_accuracy'] for r in results]),
            'seconds': round(sum(r['seconds'] for r in results), 2), 'jobs': jobs,
            'wall_seconds': round(wall_seconds, 2)}


def run_seed(config: Config, data: Graph, seed: int, train: TrainOneSeed) -> dict:
    """One seed as one labml run; returns its results."""
    experiment.create(name=config.experiment_name(), writers=set(config.writers), comment=config.comment(seed))
    experiment.configs({**asdict(config), 'seed': seed, 'writers': sorted(config.writers)})
    with experiment.start():
        checkpoint = run_folder() / 'checkpoints' / 'best.pt'
        result, _ = train(config, data, seed, checkpoint)
    return result


def run_in_parallel(config: Config, data: Graph, seeds: range, train: TrainOneSeed, jobs: int) -> list:
    """
    ### Seeds side by side

    A Cora step is a few hundred small operations, too small to keep several threads busy,
    while seeds are independent. So `jobs` processes train seeds side by side, and the cores are
    divided between them. The workers keep their runs in the same `logs/` folder, without printing
    per-epoch progress; the results come back in the order of the seeds.
    """
    threads = max(1, torch.get_num_threads() // jobs)
    quiet = replace(config, writers=config.writers - {'screen'})
    context = multiprocessing.get_context('spawn')
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=start_worker,
                             initargs=(threads, str(lab.get_experiments_path()))) as pool:
        futures = [pool.submit(run_seed, quiet, data, seed, train) for seed in seeds]
        for future in monit.iterate('Seeds', as_completed(futures), total_steps=len(futures)):
            future.result()
    return [future.result() for future in futures]


def start_worker(threads: int, experiments_path: str) -> None:
    """
    Set up a worker process: its share of the threads and the parent's labml `logs/` folder.
    Workers print nothing (not even labml's banner of each run): their runs are in `logs/`,
    and their results and errors come back to the parent.
    """
    torch.set_num_threads(threads)
    lab.configure({'experiments_path': experiments_path})
    sys.stdout = open(os.devnull, 'w')


def available_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_folder() -> Path:
    """The folder of the current labml run, `logs/<name>/<uuid>`."""
    from labml.internal.experiment import experiment_singleton
    return Path(experiment_singleton().run.run_path)


def summarize(values: list) -> dict:
    """Mean and (sample) standard deviation, in percent."""
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return {'mean': round(mean, 2), 'std': round(std, 2), 'n': len(values)}


def validate(config: Config) -> None:
    """Clear errors for settings that cannot run."""
    if config.model not in ('gat', 'gatv2'):
        raise ValueError(f"--model must be 'gat' or 'gatv2', got {config.model!r}")
    if config.early_stopping not in ('gat', 'accuracy'):
        raise ValueError(f"--early-stopping must be 'gat' or 'accuracy', got {config.early_stopping!r}")
    if config.impl not in ('dense', 'edges'):
        raise ValueError(f"--impl must be 'dense' or 'edges', got {config.impl!r}")
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise FileNotFoundError(f'--data-dir {config.data_dir} is not a folder')
    for name in ('epochs', 'patience', 'seeds', 'n_heads', 'n_hidden', 'jobs'):
        if getattr(config, name) is not None and getattr(config, name) < 1:
            raise ValueError(f'--{name.replace("_", "-")} must be at least 1, got {getattr(config, name)}')
    if not 0 <= config.dropout < 1:
        raise ValueError(f'--dropout must be in [0, 1), got {config.dropout}')


def report(summary: dict) -> str:
    """The final table: every seed, the mean and std, and the published anchors."""
    config = summary['config']
    lines = [f"{config['model'].upper()} ({config['impl']} layer) on {config['dataset']}",
             f"{'seed':>6} {'epochs':>7} {'best':>5} {'val %':>7} {'test %':>7} {'time s':>7}"]
    for r in summary['runs']:
        lines.append(f"{r['seed']:>6} {r['epochs']:>7} {r['best_epoch']:>5} {100 * r['val_accuracy']:>7.1f} "
                     f"{100 * r['test_accuracy']:>7.1f} {r['seconds']:>7.1f}")
    test = summary['test_accuracy']
    lines.append(f"test accuracy: {test['mean']:.2f} ± {test['std']:.2f} % over {test['n']} seed(s); "
                 f"{summary['seconds']:.1f} s of training, {summary['wall_seconds']:.1f} s in all "
                 f"({summary['jobs']} process{'es' if summary['jobs'] > 1 else ''})")
    if config['dataset'] == 'cora':
        lines += [f'  {name}: {value} %' for name, value in ANCHORS.items()]
    return '\n'.join(lines)


def parse_args(argv: Optional[list] = None) -> Config:
    """Command-line flags for every setting of `Config`."""
    defaults = Config()
    parser = argparse.ArgumentParser(description='Train a two-layer GATv2 (or GAT) on Cora or CiteSeer.')
    parser.add_argument('--model', choices=['gatv2', 'gat'], default=defaults.model)
    parser.add_argument('--impl', choices=['edges', 'dense'], default=defaults.impl,
                        help='edges: the edge-list layer (same function, O(edges) cost); '
                             'dense: the tutorial layer, literally (O(nodes^2))')
    parser.add_argument('--dataset', choices=['cora', 'citeseer'], default=defaults.dataset)
    parser.add_argument('--data-dir', default=None, help='folder with the Planetoid files '
                                                         '(default: $LABML_GAT_DATA, else download)')
    parser.add_argument('--epochs', type=int, default=defaults.epochs)
    parser.add_argument('--early-stopping', choices=['gat', 'accuracy'], default=defaults.early_stopping,
                        help='gat: stop when neither validation loss nor accuracy improves (the GAT paper); '
                             'accuracy: on validation accuracy alone')
    parser.add_argument('--patience', type=int, default=defaults.patience)
    parser.add_argument('--learning-rate', type=float, default=defaults.learning_rate)
    parser.add_argument('--weight-decay', type=float, default=defaults.weight_decay)
    parser.add_argument('--dropout', type=float, default=defaults.dropout)
    parser.add_argument('--n-heads', type=int, default=defaults.n_heads)
    parser.add_argument('--n-hidden', type=int, default=defaults.n_hidden)
    parser.add_argument('--share-weights', action='store_true')
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--seeds', type=int, default=defaults.seeds, help='run this many seeds from --seed')
    parser.add_argument('--jobs', type=int, default=defaults.jobs,
                        help='processes training seeds side by side (default: one per core, at most one per seed)')
    parser.add_argument('--device', default=defaults.device)
    parser.add_argument('--summary-json', default=None, help='write the final numbers to this JSON file')
    parser.add_argument('--quiet', action='store_true', help='no per-epoch output (runs are still kept in logs/)')
    args = vars(parser.parse_args(argv))
    writers = {'file'} if args.pop('quiet') else {'screen', 'file'}
    return Config(**args, writers=writers)


def main(argv: Optional[list] = None, parse: Callable = parse_args, run_seeds: Callable = run,
         describe: Callable = report) -> None:
    """Parse the flags, run the seeds, print the table and write the summary; the mini-batch experiment
    passes its own three functions."""
    config = parse(argv)
    summary = run_seeds(config)
    print(describe(summary))
    if config.summary_json:
        Path(config.summary_json).write_text(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main(sys.argv[1:])
