r"""
---
title: Making it fast
summary: >
  The speed-ups of the Cora experiment, each the same function computed faster: receptive fields,
  dropout from random bits, dropout and gradients on sparse features, and the number of threads.
---

# Making it fast

The [Cora experiment](../experiments/cora.html) trains the [two-layer model](model.html) exactly
as the paper describes. This chapter is about time only: every speed-up here computes **the same
function with the same gradients**, and each has a test in `tests/test_fast.py` that would fail
if it changed anything but the time.

A Cora training step is a few hundred small operations on a graph of 2708 nodes. What costs time
is not the attention but the work around it:

* **Receptive fields.** The loss reads the outputs of the 140 training nodes only; a step computes
  just what those outputs depend on ([below](#receptive-fields)).
* **Dropout from random bits.** `nn.Dropout` draws a Bernoulli sample per entry, which on a CPU
  costs more than the arithmetic done with that entry; `FastDropout` compares random 16-bit
  integers with a threshold instead ([below](#dropout-from-15-random-bits)).
* **Sparse features.** Cora's bag-of-words features are almost all zeros. Kept as a sparse matrix,
  dropout needs random numbers only for the non-zero entries, and the first layer's gradient
  reuses one sorted transpose of the features ([below](#a-faster-gradient-for-the-sparse-input)).
* **Threads.** Work this small gains little from a second thread, and on a busy machine
  PyTorch's threads spin waiting for each other. The experiments run one thread per process and
  train several seeds side by side instead ([seeds.py](seeds.html)).

`speed_up(model)` switches on the faster dropout and the sparse features, and
`receptive_field_inputs` gives a step the receptive field of its nodes: two explicit calls, which
the experiment makes where the reader can see them; `--no-fast` runs the model literally.
"""

import warnings
from dataclasses import dataclass
from typing import List, Tuple

import torch
from torch import nn

from labml_gat.model import TwoLayerGAT


def speed_up(model: TwoLayerGAT) -> TwoLayerGAT:
    """
    ## Switching the speed-ups on

    Replaces the model's dropout modules (the input dropout, the dropout between the layers and
    the layers' dropout on the attention) with the faster ones below, and the first layer's
    linear maps with `SparseInputLinear`, which keeps their weights. No random numbers are drawn,
    so the initial weights are those of the model as built. The model then takes its features
    as a sparse CSR matrix (`to_sparse_csr`). Returns the same model.
    """
    p = model.dropout.p
    model.input_dropout = SparseInputDropout(p)
    model.dropout = FastDropout(p)
    model.layer1.dropout = FastDropout(p)
    model.output.dropout = FastDropout(p)
    # GAT's $W$, or GATv2's $W_l$ and $W_r$; with `share_weights` the two are one module,
    # and stay one
    replaced = {}
    for name in ('linear', 'linear_l', 'linear_r'):
        if hasattr(model.layer1, name):
            linear = getattr(model.layer1, name)
            sparse = replaced.setdefault(id(linear), SparseInputLinear(linear))
            setattr(model.layer1, name, sparse)
    return model


class FastDropout(nn.Module):
    r"""
    ## Dropout from 15 random bits

    Dropout keeps each entry with probability $1 - p$ and scales the kept ones by $\frac{1}{1 - p}$.
    `nn.Dropout` draws each keep/drop decision as a Bernoulli sample, which on a CPU costs more than all
    the arithmetic the layers do with that entry.
    Here each decision compares one random integer $u$, uniform on $\{0, 1, \dots, 2^{15} - 1\}$,
    with a threshold $t = \text{round}(p \cdot 2^{15})$: the entry is kept when $u \ge t$, which happens
    with probability $1 - t / 2^{15}$, within $2^{-16}$ of $1 - p$ (for $p = 0.6$: $0.399994$ instead of $0.4$).
    Drawing 16-bit integers is faster than drawing Bernoulli samples.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * 2 ** 15)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        # `random_` fills an `int16` tensor with integers uniform on $[0, 2^{15})$
        keep = (torch.empty(x.shape, dtype=torch.int16, device=x.device).random_()
                >= self.threshold)
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
    PyTorch converts $X^\top$ to a CSR matrix on every step, sorting all of $X$'s entries by column.
    But the entries of $X$ keep their places from step to step: dropout changes only their values.
    So this `nn.Linear` sorts once. It keeps $X^\top$'s sparsity pattern, and `order`, which lists the
    entries of $X$ in the order of $X^\top$'s entries; each step then only gathers `values[order]`.

    The layers' linear maps are replaced by this class after they are built (it keeps their weights);
    a dense input, or a forward pass without gradients, is the plain `nn.Linear`.
    """

    def __init__(self, linear: nn.Linear):
        # Built on the `meta` device, with no memory and no random draws, then given the layer's parameters
        super().__init__(linear.in_features, linear.out_features,
                         bias=linear.bias is not None, device='meta')
        self.weight, self.bias = linear.weight, linear.bias
        # The last sparsity pattern seen, as returned by `transposed_pattern`
        self.pattern = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.layout != torch.sparse_csr or not torch.is_grad_enabled():
            return super().forward(x)
        _, _, order, crow_t, col_t = self.transposed_pattern(x)
        x_t = torch.sparse_csr_tensor(crow_t, col_t, x.values()[order],
                                      (x.shape[1], x.shape[0]), check_invariants=False)
        out = SparseMatmul.apply(x, x_t, self.weight)
        return out if self.bias is None else out + self.bias

    def transposed_pattern(self, x: torch.Tensor) -> tuple:
        """`(crow_indices, col_indices)` of `x`, then `(order, crow_indices, col_indices)` of its transpose."""
        crow, col = x.crow_indices(), x.col_indices()
        # The same pattern as last time: the same index arrays (kept alive here, so an address is not reused)
        if self.pattern is not None and (crow.data_ptr(), col.data_ptr(), col.shape) == (
                self.pattern[0].data_ptr(), self.pattern[1].data_ptr(),
                self.pattern[1].shape):
            return self.pattern
        # The row of every entry; the entries are stored row by row
        row = torch.repeat_interleave(torch.arange(x.shape[0], device=col.device),
                                      crow.diff())
        # $X^\top$ stores them column by column of $X$, rows ascending: a stable sort by column
        order = torch.argsort(col, stable=True)
        crow_t = torch.cat([crow.new_zeros(1),
                            torch.bincount(col, minlength=x.shape[1]).cumsum(0)])
        self.pattern = (crow, col, order, crow_t, row[order])
        return self.pattern


class SparseMatmul(torch.autograd.Function):
    r"""$X W^\top$ for a sparse CSR $X$, given $X^\top$ (also CSR) for the gradient of $W$."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, x_t: torch.Tensor,
                weight: torch.Tensor) -> torch.Tensor:
        ctx.x_t = x_t
        return x @ weight.T

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # $\nabla_W = (X^\top \nabla_g)^\top$; no gradient for $X$ and $X^\top$
        return None, None, (ctx.x_t @ grad).T


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
    return torch.sparse_csr_tensor(new_crow, x.col_indices()[entry], x.values()[entry],
                                   (len(rows), x.shape[1]), check_invariants=False)


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

    ![The receptive field of two training nodes in a two-layer model: the targets, their
    neighbours one hop away, and two hops away; dark edges are the ones computed](../_static/figures/receptive_field.svg)

    Computing only the receptive field gives **the same outputs at the targets and the same gradients**
    as the full graph (`tests/test_fast.py` checks both), in a fraction of the time.
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


def receptive_field_inputs(x: torch.Tensor, edge_index: torch.Tensor, nodes: torch.Tensor
                           ) -> Tuple[torch.Tensor, List[torch.Tensor], torch.Tensor]:
    """
    The inputs of the two-layer model that produce its outputs at `nodes`: `(x, graphs, index)`,
    the features of the field's nodes (sparse CSR), the edges of each layer, and the rows of
    the model's output that are `nodes`.
    """
    field = receptive_field(edge_index, nodes, x.shape[0], n_layers=2)
    return csr_rows(x, field.nodes), field.edges, field.targets


