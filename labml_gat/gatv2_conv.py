r"""
---
title: A memory-lean GATv2Conv, PyG's layer in one file
summary: >
  A drop-in replacement for torch_geometric.nn.GATv2Conv (same arguments, parameters,
  state_dict and results) that computes attention chunk by chunk over whole
  neighbourhoods and keeps only a log-denominator per node, the sorted edges and a
  one-byte dropout mask per edge for the backward pass; GATConv the same way. torch
  only.
---

# A memory-lean `GATv2Conv`

Change one import, `from gatv2_conv import GATv2Conv` instead of
`from torch_geometric.nn import GATv2Conv`, and a PyG model computes the same function
(outputs, attention, gradients; a PyG `state_dict` loads unchanged) in a fraction of
the memory ([measured](../usage.html#performance) against PyG's). This file needs only
torch, 2.5 or later. It holds [GAT's layer](#gat-s-layer), PyG's `GATConv`, the same way.

**The idea.** With $K$ heads of $F'$ features each, an edge-list GATv2 gathers $g_{l,j}$,
$g_{r,i} + g_{l,j}$ and its LeakyReLU, and the weighted message to every edge: tensors
of $|\mathcal{E}| \cdot K F'$ numbers, two of which autograd keeps for the backward pass.
Sorted by target, the in-edges of a node are one contiguous run of the edge list, so the
edges can be cut into chunks of whole neighbourhoods. Inside a chunk the softmax and the
sum $h'_i$ are complete; the chunk's per-edge tensors die with it. Like FlashAttention,
the forward pass keeps per target and head only the log of the softmax's denominator
$\ell_{ik}$, and the backward pass recomputes the scores chunk by chunk from it.

**The memory.** Kept for the backward pass, per edge: the edge sorted by target (its two
indices, 16 bytes in `int64`, and 8 more for its place if the edges came unsorted or the
layer put its self loops in among them) and $K$ bytes (the dropout mask, in training)
instead of about $2 K F' b$ bytes ($b$ bytes per number); and node-level tensors. At 10M
edges, $K = 8$, $F' = 8$ in `float32`: at most 320 MB instead of 5.1 GB. A chunk's
working set is a few $C \times K F'$ tensors, whatever $|\mathcal{E}|$. Only a small
graph (Cora: an $|\mathcal{E}| \times K F'$ tensor of a few MB) keeps its chunks'
tensors for the backward pass: there the time saved matters more.

**What PyG's layer does and this one does not**, each refused in one line: second
derivatives (`create_graph=True`); forward-mode derivatives
(`torch.autograd.forward_ad`); `torch.func`'s transforms, and a batched backward
pass (`is_grads_batched`, `jacobian(vectorize=True)`); TorchScript and
`torch.export` (`torch.compile` instead, which runs the attention eagerly: one graph
break per layer, so no `fullgraph=True`); `torch_sparse.SparseTensor` (a `torch.sparse`
adjacency instead); `MessagePassing`'s own arguments (`aggr`, `flow`) and what hooks
into its `propagate`, such as the edge masks of PyG's explainers (the layers of
`message_passing_class()` refuse them; PyG's explainers do not see the plain layers, whose
edges an explanation of a model that mixes them with PyG's layers leaves out); the
`normalize` of PyG's `GATConv` after 2.8.1. `to_hetero` takes `message_passing_class()`
(and `message_passing_class(GATConv)`). Before PyTorch 2.10, `torch.export` and
`torch.func` may stop inside PyTorch instead, with an error of its own.

**On a GPU** what is kept for the backward pass is the same arithmetic; the working set
is not: chunks there are as large as a sixteenth of the free memory allows (millions of
edges), so the Python loop launches a few dozen kernels per chunk for a handful of
chunks. Measured on one GPU (the [recorded](../usage.html#performance) `_cuda` figures):
a graph whose edge-sized tensors fit in that sixteenth is one chunk, and the peak is
near PyG's; a larger one is cut, and the peak falls well below PyG's; at ten million
nodes the [leaner two-layer model](lean.html#the-two-layer-model-leaner) of the next
page (the same chunks) fits where PyG runs out of memory. The time does not keep the
CPU's ratio: there much of the gain comes from chunks that stay in the caches and reuse
the allocator's buffers, where PyG's edge-sized tensors are fresh pages. A GPU's caching
allocator and bandwidth hide most of that, and the backward pass's second round of
gathers (the scores made again) is then a real cost: a training step takes somewhat
longer than PyG's, an evaluation about as long. The loop does not wait for the GPU (a
CUDA test counts the host synchronisations): it waits a fixed number of times per call,
never inside the chunk loop.
"""

import copy
import functools
import math
import numbers
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter

# On a CPU, the largest $C \times K F'$ tensor of a chunk: small enough to stay in the
# allocator's reuse and close to the cores
CPU_CHUNK_TENSOR_BYTES = 2 * 2 ** 20
# Tensors of $C \times K F'$ numbers alive at once in a chunk (gathers, sums, gradients)
CHUNK_BUFFERS = 8
# A graph whose $|\mathcal{E}| \times K F'$ tensor is at most this large keeps its
# chunks' per-edge tensors for the backward pass instead of computing them again
SMALL_GRAPH_TENSOR_BYTES = 4 * 2 ** 20
# On a CPU with several threads, the fewest chunks worth a thread of their own, and the
# most threads computing chunks at once (each chunk's turn waits for the chunks before it)
MIN_CHUNKS_PER_THREAD = 4
MAX_CHUNK_THREADS = 4
# Entries of a dropout mask drawn at a time on a CPU (`draw_bernoulli`)
DRAW_BLOCK = 2 ** 16
FILL_REDUCTIONS = ('add', 'sum', 'mean', 'min', 'max', 'mul')
# `MessagePassing`'s arguments that PyG's layer takes, with the only values this one has
MESSAGE_PASSING = {'aggr': 'add', 'flow': 'source_to_target', 'decomposed_layers': 1}
# `MessagePassing`'s hooks into its `propagate`, which these layers never run
PROPAGATE_HOOKS = tuple(f'register_{step}_forward{pre}_hook' for step in (
    'propagate', 'message', 'aggregate', 'message_and_aggregate', 'edge_update')
    for pre in ('_pre', ''))
# `aggr`, `flow` and `node_dim` as PyG's layers say them, for code that reads them
PYG_ATTRIBUTES = {'GATv2Conv': ('sum', 'source_to_target', 0),
                  'GATConv': ('add', 'source_to_target', 0)}
# A chunk: its targets `a` to `b` and its edges `e0` to `e1`
Chunk = Tuple[int, int, int, int]
# What is done for chunk `k`, `(k, part) -> None`
Work = Callable[[int, Chunk], None]


class GATv2Conv(nn.Module):
    r"""
    ## The layer

    The arguments, defaults, parameters and results of PyG's `GATv2Conv`:
    `in_channels` (an int, -1 to take it from the first input, or a pair for sources
    and targets), `out_channels` $F'$ per head, `heads` $K$, `concat` (else the heads
    are averaged), `negative_slope`, `dropout` on the attention coefficients,
    `add_self_loops`, `edge_dim` and `fill_value` (the self loops' edge features: a
    number, a tensor, or a reduction of the in-edges' features), `bias`,
    `share_weights` and `residual`.
    `chunk_size` (keyword only) is the number of edges per chunk, or `None` to choose it
    per device. Edges given sorted by target (`edge_index[1]` in order, as PyG's
    `sort_edge_index(edge_index, sort_by_row=False)` leaves them) are not sorted again
    at every call, with or without the self loops the layer adds.
    The maps `lin_l`, `lin_r`, `lin_edge` and `res` are made as PyG's `Linear` (not
    `nn.Linear`); one replaced, wrapped (an adapter), pruned or hooked is called as PyG
    calls it, and such a `lin_edge` then makes an $|\mathcal{E}| \times K F'$ tensor,
    as PyG's does.
    Other keyword arguments are `MessagePassing`'s, at PyG's values for this layer only.
    """

    def __init__(self, in_channels: Union[int, Tuple[int, int]], out_channels: int,
                 heads: int = 1, concat: bool = True, negative_slope: float = 0.2,
                 dropout: float = 0.0, add_self_loops: bool = True,
                 edge_dim: Optional[int] = None,
                 fill_value: Union[float, Tensor, str] = 'mean', bias: bool = True,
                 share_weights: bool = False, residual: bool = False, *,
                 chunk_size: Optional[int] = None, **kwargs):
        super().__init__()
        check_message_passing(kwargs)
        self.aggr, self.flow, self.node_dim = PYG_ATTRIBUTES['GATv2Conv']
        sizes = check_in_channels(in_channels)
        check_fill_value(fill_value)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.negative_slope, self.dropout = concat, negative_slope, dropout
        self.add_self_loops, self.edge_dim, self.fill_value = (add_self_loops, edge_dim,
                                                               fill_value)
        self.residual, self.share_weights = residual, share_weights
        self.chunk_size = check_chunk_size(chunk_size)
        # $g_l = W_l x_j + b_l$ for the sources and $g_r = W_r x_i + b_r$ for the targets,
        # each `[n, K F']`; one module under both names with shared weights, as in PyG
        self.lin_l = Linear(sizes[0], heads * out_channels, bias)
        self.lin_r = self.lin_l if share_weights else \
            Linear(sizes[1], heads * out_channels, bias)
        # $a_k$ of every head, `[1, K, F']`
        self.att = nn.Parameter(torch.empty(1, heads, out_channels))
        # $W_e$ projects the features $u_{ij}$ of the edge from $j$ to $i$ into the score's sum
        self.lin_edge = None if edge_dim is None else \
            Linear(edge_dim, heads * out_channels, bias=False)
        total = out_channels * (heads if concat else 1)
        self.res = Linear(sizes[1], total, False) if residual else None
        self.bias = nn.Parameter(torch.empty(total)) if bias else None
        # PyG's tests look at this; attention is never kept on the module
        self._alpha = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyG's initialisation: Glorot weights, PyG's uniform linear biases, zero bias;
        a lazy map's at its first call."""
        for lin in (self.lin_l, self.lin_r, self.lin_edge, self.res):
            if lin is not None:
                lin.reset_parameters()
        nn.init.xavier_uniform_(self.att.view(self.heads, self.out_channels))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Union[Tensor, Tuple[Tensor, Tensor]], edge_index: Tensor,
                edge_attr: Optional[Tensor] = None,
                return_attention_weights: Optional[bool] = None):
        r"""
        `x` is `[n, F_in]`, or a pair `(x_src, x_dst)`; `edge_index` is `[2, |E|]`
        (integers, `int64` or `int32` as a rule; row 0 the source $j$, row 1 the target
        $i$), or a `torch.sparse` adjacency (COO, CSR or CSC) with targets as rows, PyG's
        `adj_t` (PyG's `to_torch_csc_tensor(edge_index)` has sources as rows: pass its
        `.t()`); `edge_attr` is `[|E|, edge_dim]`. The result is `[n_dst, K F']` (or
        `[n_dst, F']` averaged) and, when `return_attention_weights` is true, PyG's
        `(edge_index, alpha)` with $\alpha$ `[|E|, K]` after dropout, over the edges the
        layer used (self loops included), or a sparse adjacency holding $\alpha$.
        """
        check_not_traced()
        p = check_dropout(self.dropout)
        x_src, x_dst = check_features(x)
        n_dst, n_loops = node_counts(x_src, x_dst, edge_index, None, self.add_self_loops)
        H, C = self.heads, self.out_channels
        res = None if self.res is None else self.res(x_dst)
        # $g_l$, `[n_src, K, F']`, and $g_r$, `[n_dst, K, F']`: node-level, kept
        g_l, g_r = self.project(x_src, x_dst)
        edge_features = None if self.lin_edge is None else \
            projected_per_chunk(self.lin_edge)
        out, attention = attend(
            GATv2Score(self.negative_slope), g_l, g_r, None, self.att.view(H, C), n_dst,
            edge_index, edge_attr, edge_features, p if self.training else 0.0,
            n_loops, self.fill_value, self.chunk_size, bool(return_attention_weights))
        out = heads_merged(out, self.concat, res, self.bias)
        return (out, attention) if return_attention_weights else out

    def project(self, x_src: Tensor, x_dst: Tensor) -> Tuple[Tensor, Tensor]:
        """$g_l$ and $g_r$, `[n, K, F']`. One node set's two projections of an input
        wider than both together are one product with $W_l$ and $W_r$ stacked: $x$ is
        then read once (the two are views of the result's halves). Maps that are more
        than their weights (`is_plain`) are called instead."""
        H, C = self.heads, self.out_channels
        if x_dst is x_src and self.share_weights:
            g_l = self.lin_l(x_src).view(-1, H, C)
            return g_l, g_l
        stacked = x_dst is x_src and x_src.shape[-1] > 2 * H * C and \
            is_plain(self.lin_l) and is_plain(self.lin_r)
        if not stacked:
            return self.lin_l(x_src).view(-1, H, C), self.lin_r(x_dst).view(-1, H, C)
        weight = torch.cat([self.lin_l.weight, self.lin_r.weight])
        bias = None if self.lin_l.bias is None else \
            torch.cat([self.lin_l.bias, self.lin_r.bias])
        g = nn.functional.linear(x_src, weight, bias)
        return g.view(-1, 2, H, C).unbind(1)

    def __prepare_scriptable__(self):
        raise RuntimeError('GATv2Conv computes attention in chunks with Python control '
                           'flow and cannot be scripted by torch.jit.script; use '
                           'torch.compile instead')

    def jittable(self, typing: Optional[str] = None):
        """PyG's `MessagePassing.jittable`, a no-op since PyG 2.5 that says so: code
        that calls it runs on (this layer is not scripted: `torch.compile` instead)."""
        warnings.warn(f"'{self.__class__.__name__}.jittable' is deprecated and a no-op. "
                      f"Please remove its usage.", stacklevel=2)
        return self

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, heads={self.heads})')


class GATConv(nn.Module):
    r"""
    ## GAT's layer

    PyG's `GATConv` (Veličković et al., 2018) in the same way: its arguments, defaults,
    parameters and results, with the chunks above and
    [GAT's score](#gat-s-score-for-a-chunk). Its nodes are projected once, $g = W x$
    (`lin`, or `lin_src` and `lin_dst` for a pair of input sizes), and its score
    $e_{ijk} = \text{LeakyReLU}(a_{s,k}^\top g_{k,j} + a_{d,k}^\top g_{k,i} +
    a_{e,k}^\top W_{e,k} u_{ij})$ (PyG's `att_src`, `att_dst` and `att_edge`: $a_{s,k}$
    and $a_{d,k}$ are the $a_2$ and $a_1$ of the [GAT layer](gat.html)) is a sum of
    node-level halves and, with `edge_dim`, an edge's part $u_{ij}^\top M_k$,
    $M_k = W_{e,k}^\top a_{e,k}$: no $K F'$ numbers per edge are made for it, only for
    the messages inside a chunk
    ([measured](../usage.html#performance) against PyG's `GATConv`: the `layer_N_gat`
    figures). `forward` takes PyG's `size`, `(n_src, n_dst)`, and `x` as
    `(x_src, None)`: the targets' half is then left out, as PyG leaves it.
    """

    def __init__(self, in_channels: Union[int, Tuple[int, int]], out_channels: int,
                 heads: int = 1, concat: bool = True, negative_slope: float = 0.2,
                 dropout: float = 0.0, add_self_loops: bool = True,
                 edge_dim: Optional[int] = None,
                 fill_value: Union[float, Tensor, str] = 'mean', bias: bool = True,
                 residual: bool = False, *, chunk_size: Optional[int] = None, **kwargs):
        super().__init__()
        check_message_passing(kwargs, 'GATConv')
        self.aggr, self.flow, self.node_dim = PYG_ATTRIBUTES['GATConv']
        sizes = check_in_channels(in_channels)
        check_fill_value(fill_value)
        self.in_channels, self.out_channels, self.heads = in_channels, out_channels, heads
        self.concat, self.negative_slope, self.dropout = concat, negative_slope, dropout
        self.add_self_loops, self.edge_dim, self.fill_value = (add_self_loops, edge_dim,
                                                               fill_value)
        self.residual, self.chunk_size = residual, check_chunk_size(chunk_size)
        # $W$, one map for both node sets or one for each, as PyG's
        self.lin = self.lin_src = self.lin_dst = None
        if isinstance(in_channels, (tuple, list)):
            self.lin_src = Linear(sizes[0], heads * out_channels, bias=False)
            self.lin_dst = Linear(sizes[1], heads * out_channels, bias=False)
        else:
            self.lin = Linear(sizes[0], heads * out_channels, bias=False)
        # $a_s$ and $a_d$ of every head, `[1, K, F']`, and with edge features $W_e$, $a_e$
        self.att_src = nn.Parameter(torch.empty(1, heads, out_channels))
        self.att_dst = nn.Parameter(torch.empty(1, heads, out_channels))
        self.lin_edge = None if edge_dim is None else \
            Linear(edge_dim, heads * out_channels, bias=False)
        self.att_edge = None if edge_dim is None else \
            nn.Parameter(torch.empty(1, heads, out_channels))
        total = out_channels * (heads if concat else 1)
        self.res = Linear(sizes[1], total, False) if residual else None
        self.bias = nn.Parameter(torch.empty(total)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyG's initialisation: Glorot weights and attention vectors, zero bias."""
        for lin in (self.lin, self.lin_src, self.lin_dst, self.lin_edge, self.res):
            if lin is not None:
                lin.reset_parameters()
        for att in (self.att_src, self.att_dst, self.att_edge):
            if att is not None:
                nn.init.xavier_uniform_(att.view(self.heads, self.out_channels))
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Union[Tensor, Tuple[Tensor, Optional[Tensor]]],
                edge_index: Tensor, edge_attr: Optional[Tensor] = None,
                size: Optional[Tuple[int, int]] = None,
                return_attention_weights: Optional[bool] = None):
        r"""
        As `GATv2Conv.forward`, with PyG's `size` and `(x_src, None)`: without the
        targets' features, their number is `size[1]` (a PyG `EdgeIndex`'s own, grown by
        the self loops, instead), else the adjacency's rows, else the number of
        sources, as in PyG (`node_counts`).
        """
        check_not_traced('GATConv')
        p = check_dropout(self.dropout)
        x_src, x_dst = check_features(x, targets_needed=False)
        H, C = self.heads, self.out_channels
        n_dst, n_loops = node_counts(x_src, x_dst, edge_index, size, self.add_self_loops)
        # Without `edge_dim` PyG's GATConv does not read the edge features
        edge_attr = None if self.lin_edge is None else edge_attr
        res = None if self.res is None or x_dst is None else self.res(x_dst)
        lin_src, lin_dst = (self.lin, self.lin) if self.lin is not None else \
            (self.lin_src, self.lin_dst)
        # $g_j$, `[n_src, K, F']`, and the node-level halves of the score, `[n, K]`
        g_src = lin_src(x_src).view(-1, H, C)
        dtype = torch.promote_types(g_src.dtype, self.att_src.dtype)
        acc = compute_dtype(dtype)
        key = (g_src.to(acc) * self.att_src.to(acc)).sum(-1)
        if x_dst is None:
            query = key.new_zeros(n_dst, H)
        else:
            g_dst = g_src if self.lin is not None and x_dst is x_src else \
                lin_dst(x_dst).view(-1, H, C)
            query = (g_dst.to(acc) * self.att_dst.to(acc)).sum(-1)
        edge_features = None if self.lin_edge is None else \
            scored_edges(self.lin_edge, self.att_edge)
        out, attention = attend(
            GATScore(self.negative_slope, dtype), g_src, query, key, None, n_dst,
            edge_index, edge_attr, edge_features, p if self.training else 0.0,
            n_loops, self.fill_value, self.chunk_size, bool(return_attention_weights))
        out = heads_merged(out, self.concat, res, self.bias)
        return (out, attention) if return_attention_weights else out

    jittable = GATv2Conv.jittable

    def __prepare_scriptable__(self):
        raise RuntimeError('GATConv computes attention in chunks with Python control '
                           'flow: TorchScript cannot script it; use torch.compile')

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, heads={self.heads})')


def heads_merged(out: Tensor, concat: bool, res: Optional[Tensor],
                 bias: Optional[Tensor]) -> Tensor:
    """$h'$, `[n_dst, K, F']`, with its heads concatenated or averaged, then the residual
    and the bias added, as PyG's layers do."""
    out = out.flatten(1) if concat else out.mean(dim=1)
    if res is not None:
        out = out + res
    if bias is not None:
        out = out + bias
    return out


def scored_edges(lin_edge: nn.Module, att_edge: Tensor) -> Callable:
    r"""GAT's edge features for the chunks: their part of the score,
    $c_{ijk} = u_{ij}^\top M_k$, `[|E|, K]`, with $M_k = W_{e,k}^\top a_{e,k}$ made from
    the weight; a map that is more than its weight is called, as PyG calls it."""
    def edge_features(edge_attr: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        heads, channels = att_edge.shape[1:]
        if edge_attr.shape[0] == 0:
            # Without edges PyG's GATConv leaves out the edge features: their parameters
            # get no gradient (`None`), and an optimiser leaves them as they are
            acc = compute_dtype(torch.promote_types(edge_attr.dtype, att_edge.dtype))
            return edge_attr.new_zeros(0, heads, dtype=acc), None
        if is_plain(lin_edge):
            check_edge_attr(edge_attr, lin_edge)
            # $M$, `[K, edge_dim]`: row $k$ is $W_{e,k}^\top a_{e,k}$
            weight = lin_edge.weight.view(heads, channels, -1)
            m = (weight * att_edge.view(heads, channels, 1)).sum(1)
            acc = compute_dtype(torch.promote_types(edge_attr.dtype, m.dtype))
            return edge_attr.to(acc) @ m.T.to(acc), None
        projected = lin_edge(edge_attr).view(-1, heads, channels)
        acc = compute_dtype(torch.promote_types(projected.dtype, att_edge.dtype))
        return (projected.to(acc) * att_edge.to(acc)).sum(-1), None
    return edge_features


def node_counts(x_src: Tensor, x_dst: Optional[Tensor], edge_index: Tensor,
                size: Optional[Tuple[int, int]], add_loops: bool
                ) -> Tuple[int, Optional[int]]:
    """
    The number of targets and of the self loops to add (`None` for none), by PyG's
    rules. The loops are for the nodes that are both sources and targets: `min(size)`,
    else the fewer of the sources and the targets' features. The targets are then
    counted as `MessagePassing` counts them: from the sizes a PyG `EdgeIndex` carries
    (`size` then counts only the loops), each grown to the loops' nodes as PyG's loops
    grow it, or from `size`, checked against the features; where neither says, the
    targets' features, the adjacency's rows, or else the sources.
    """
    if size is not None and len(size) != 2:
        raise ValueError(f'size must be (n_src, n_dst), got {tuple(size)!r}')
    # PyG takes any pair of numbers, a tensor `[2]` included: here as ints
    size = None if size is None else tuple(None if n is None else int(n) for n in size)
    given = (x_src.shape[0], None if x_dst is None else x_dst.shape[0])
    declared, name = size, 'size'
    if isinstance(edge_index, Tensor) and edge_index.layout != torch.strided:
        # An adjacency's shape says both (`edge_list` checks it): PyG reads no `size`
        size = declared = None
        given = (given[0], edge_index.shape[0] if given[1] is None else given[1])
    elif edge_index_size(edge_index) is not None:
        declared, name = edge_index_size(edge_index), 'the edge index\'s sparse_size'
    n_loops = None
    if add_loops:
        counts = [g if n is None else n for n, g in zip(size or given, given)]
        n_loops = min(n for n in counts if n is not None)
        # PyG appends an `EdgeIndex` of the loops, and the sizes of the two are joined
        if declared is not None and name != 'size':
            declared = tuple(None if n is None else max(n, n_loops) for n in declared)
    check_sizes(x_src, x_dst, declared, name)
    n_dst = next(n for n in ((declared or given)[1], given[1], given[0]) if n is not None)
    if n_loops is not None and n_loops > min(given[0], n_dst):
        raise ValueError(f'size {tuple(size)!r} asks for self loops of {n_loops} nodes, '
                         f'but there are {given[0]} sources and {n_dst} targets')
    return n_dst, n_loops


def edge_index_size(edge_index: Tensor) -> Optional[Tuple[int, int]]:
    """The `(n_src, n_dst)` a PyG `EdgeIndex` carries (either may be `None`), or `None`
    for a plain tensor; read without importing PyG."""
    sparse_size = getattr(edge_index, 'sparse_size', None)
    return tuple(sparse_size()) if callable(sparse_size) else None


def check_sizes(x_src: Tensor, x_dst: Optional[Tensor], size, name: str) -> None:
    """`size`, `(n_src, n_dst)` with `None` for unknown, must agree with the features."""
    if size is None:
        return
    given = (x_src.shape[0], None if x_dst is None else x_dst.shape[0])
    disagree = len(size) != 2 or \
        any(None not in (n, m) and n != m for n, m in zip(given, size))
    if disagree:
        raise ValueError(f'{name} must be (n_src, n_dst) = {given}, got {tuple(size)!r}')


def check_dropout(p) -> float:
    r"""The dropout on $\alpha$ is a probability, as PyG's `F.dropout` requires: a number,
    or a tensor of one number, which `F.dropout` takes too."""
    if isinstance(p, Tensor) and p.dim() == 0 and not p.dtype.is_complex:
        p = p.item()
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p <= 1:
        raise ValueError(f'dropout probability has to be between 0 and 1, but got {p!r}')
    return float(p)


class Linear(nn.Module):
    r"""
    PyG's `Linear` as its GAT layers make them: $x W^\top + b$ with Glorot weights and
    biases uniform in $\pm 1 / \sqrt{\text{fan-in}}$; with `in_channels` -1 the weight
    takes its size at the first call, or from a loaded `state_dict`, and is initialised
    then. Not an `nn.Linear`, as PyG's is not: code that picks out `nn.Linear` modules
    (to initialise or quantise them) treats both layers alike.
    """

    # How PyG's GAT layers ask for their maps to be initialised, in PyG's words
    weight_initializer, bias_initializer = 'glorot', None

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels)) \
            if in_channels > 0 else UninitializedParameter()
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if self.in_channels > 0:
            nn.init.xavier_uniform_(self.weight)
            if self.bias is not None:
                bound = 1 / math.sqrt(self.in_channels)
                nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if self.in_channels <= 0:
            self.materialize(x.shape[-1])
            with torch.no_grad():
                self.reset_parameters()
        return nn.functional.linear(x, self.weight, self.bias)

    def materialize(self, in_channels: int) -> None:
        self.in_channels = in_channels
        self.weight.materialize((self.out_channels, in_channels))

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        # As PyG's: the weight and bias the map uses (pruned, the masked ones), and a
        # weight not yet sized as it is (`detach` would fail on it)
        for name in ('weight', 'bias'):
            value = getattr(self, name)
            if value is not None:
                as_is = keep_vars or isinstance(value, UninitializedParameter)
                destination[prefix + name] = value if as_is else value.detach()

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A sized weight gives a lazy map its size; an unsized one makes it lazy again
        weight = state_dict.get(prefix + 'weight')
        if isinstance(weight, UninitializedParameter):
            self.in_channels, self.weight = -1, UninitializedParameter()
        elif weight is not None and self.in_channels <= 0:
            self.materialize(weight.shape[-1])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, {self.out_channels}, '
                f'bias={self.bias is not None})')


def is_plain(lin: nn.Module) -> bool:
    """Whether calling `lin` is only `x W^T + b` with its `weight` and `bias`: this file's
    `Linear`, sized, with no hooks (pruning, adapters, a replaced module are called
    instead, and a lazy map, whose call sizes its weight)."""
    hooks = ('_forward_hooks', '_forward_pre_hooks', '_backward_hooks',
             '_backward_pre_hooks')
    glob = nn.modules.module
    return type(lin) is Linear and lin.in_channels > 0 and \
        not any(getattr(lin, h, None) for h in hooks) and \
        not any(getattr(glob, '_global' + h, None) for h in hooks)


def message_passing_class(layer: Optional[type] = None) -> type:
    """
    `GATv2Conv` (or `layer`, `GATConv`) as a subclass of PyG's `MessagePassing` (PyG
    imported here, only when this is called), for `to_hetero`, which aggregates the
    results of the edge types only for `MessagePassing` modules:
    `GATv2Conv = message_passing_class()` before building the model. `HeteroConv` and
    `Sequential` take the layers themselves. The class is this module's
    `MessagePassingGATv2Conv` (`MessagePassingGATConv`), so its modules can be pickled
    and saved. It never runs `propagate`: an explainer's edge mask (`explain = True`) and
    the hooks into `propagate` are refused in one line.
    """
    return message_passing_subclass(GATv2Conv if layer is None else layer)


@functools.lru_cache(maxsize=None)
def message_passing_subclass(layer: type) -> type:
    from torch_geometric.nn import MessagePassing
    name = 'MessagePassing' + layer.__name__
    namespace = {'__module__': __name__, '__qualname__': name,
                 'explain': property(MessagePassing.explain.fget,
                                     explain_refused(layer.__name__))}
    namespace.update({hook: propagate_hook_refused(layer.__name__, hook)
                      for hook in PROPAGATE_HOOKS})
    return type(layer.__name__, (layer, MessagePassing), namespace)


def explain_refused(layer: str) -> Callable:
    """`MessagePassing.explain`'s setter for a layer that never runs `propagate`: PyG's
    explainers set it to `True` to mask the messages there, which would leave this
    layer's edges out of the explanation, so `True` is refused in one line."""
    def set_explain(self, explain: Optional[bool]) -> None:
        if explain:
            raise RuntimeError(f'{layer} does not run MessagePassing.propagate, so '
                               f'PyG\'s explainers cannot mask its edges: explain with '
                               f'PyG\'s {layer} (its state_dict loads) or '
                               f'edge_mask_type=None')
        self._explain = explain
    return set_explain


def propagate_hook_refused(layer: str, hook: str) -> Callable:
    """`MessagePassing`'s `hook` (such as `register_message_forward_hook`, which
    `to_hetero_with_bases` and PyG's `AttentionExplainer` use) refused in one line: the
    layer never runs `propagate`, so the hook would never be called."""
    def register(self, *args, **kwargs):
        raise RuntimeError(f'{layer} does not run MessagePassing.propagate: a hook '
                           f'registered by {hook} would never be called')
    return register


def __getattr__(name: str):
    """`MessagePassingGATv2Conv` and `MessagePassingGATConv` made at their first use:
    where a pickle looks for them."""
    for layer in (GATv2Conv, GATConv):
        if name == 'MessagePassing' + layer.__name__:
            return message_passing_subclass(layer)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def check_message_passing(kwargs: dict, layer: str = 'GATv2Conv') -> None:
    """PyG's layer passes other keyword arguments to `MessagePassing`: here only the
    values it has for this layer are taken, anything else refused in one line."""
    for name, value in kwargs.items():
        if name not in MESSAGE_PASSING:
            raise TypeError(f'{layer} got an unexpected keyword argument {name!r}')
        if not isinstance(value, type(MESSAGE_PASSING[name])) or \
                value != MESSAGE_PASSING[name]:
            raise ValueError(f'{layer} sums its messages chunk by chunk: it takes '
                             f'{name}={MESSAGE_PASSING[name]!r} only, got {value!r}')


def check_in_channels(in_channels) -> Tuple[int, int]:
    """The sources' and targets' input sizes: positive ints, or -1 to be found at the
    first call."""
    sizes = tuple(in_channels) if isinstance(in_channels, (tuple, list)) \
        else (in_channels, in_channels)
    # Any integer, a NumPy one included, as an `int`
    sizes = tuple(n.__index__() if hasattr(n, '__index__') else n for n in sizes)
    if len(sizes) != 2 or any(not isinstance(n, int) or (n < 1 and n != -1)
                              for n in sizes):
        raise ValueError(f'in_channels must be a positive int, -1 (found at the '
                         f'first call) or a pair of them, got {in_channels!r}')
    return sizes


def check_fill_value(fill_value) -> None:
    """The self loops' edge features: `None` (ones), a number (NumPy's too), a tensor or
    one of PyG's reductions."""
    if isinstance(fill_value, str) and fill_value not in FILL_REDUCTIONS:
        raise ValueError(f'fill_value must be a number, a tensor or one of '
                         f'{FILL_REDUCTIONS}, got {fill_value!r}')
    if not isinstance(fill_value, (type(None), numbers.Real, Tensor, str)):
        raise TypeError(f'fill_value must be None, a number, a tensor or one of '
                        f'{FILL_REDUCTIONS}, got a {type(fill_value).__name__}')


def check_not_traced(layer: str = 'GATv2Conv') -> None:
    """`torch.jit.trace` would record one graph's chunks as constants, and `torch.export`
    cannot take chunks that depend on the graph's values: refuse them."""
    if torch.jit.is_tracing():
        raise RuntimeError(f'{layer} cannot be traced by torch.jit.trace (its chunks '
                           f'depend on the graph); use torch.compile instead')
    if getattr(torch.compiler, 'is_exporting', lambda: False)():
        raise RuntimeError(f'{layer} cannot be exported by torch.export (its chunks '
                           f'depend on the graph); use torch.compile instead')


def check_features(x, targets_needed: bool = True
                   ) -> Tuple[Tensor, Optional[Tensor]]:
    """`(x_src, x_dst)` from `x` or a pair, with one clear line for what is wrong; GAT
    takes `(x_src, None)`."""
    if isinstance(x, Tensor):
        pair = (x, x)
    elif isinstance(x, (tuple, list)) and len(x) == 2:
        pair = tuple(x)
        if pair[1] is None and targets_needed:
            raise ValueError('GATv2 needs the targets\' features for its scores: pass '
                             'x or (x_src, x_dst), not (x, None)')
    else:
        raise TypeError(f'x must be a tensor or a pair (x_src, x_dst), got {type(x)}')
    for name, t in zip(('x_src', 'x_dst'), pair):
        if name == 'x_dst' and t is None:
            continue
        if not isinstance(t, Tensor) or t.dim() != 2:
            raise ValueError(f'{name} must be a 2-d tensor [n_nodes, in_channels], got '
                             f'{getattr(t, "shape", type(t))}')
    return pair


@torch.compiler.disable
def attend(score, messages: Tensor, query: Optional[Tensor], key: Optional[Tensor],
           attn: Optional[Tensor], n_dst: int, edge_index: Tensor,
           edge_attr: Optional[Tensor], edge_features: Optional[Callable], p: float,
           n_loops: Optional[int], fill_value, chunk_size: Optional[int],
           return_attention: bool):
    r"""
    ## From the edges to $h'$

    The graph's edges (self loops removed and added as PyG does), the dropout mask, and
    the chunked attention with `score` ([GATv2's](#gatv2-s-score-for-a-chunk) or
    [GAT's](#gat-s-score-for-a-chunk)) over the `n_dst` targets, with the self loops of
    the first `n_loops` nodes (`None`: the loops left as given). `edge_features` takes
    the edge features, self loops' included, to the chunks: `(rows, weight_e)`, the rows
    the chunks read and the map they project them with, if any; `None` for a layer
    without `edge_dim`. `torch.compile` runs this part eagerly (one graph break per
    layer): its chunks depend on the graph's degrees, and each chunk's kernels are
    already large, so compiling them would only recompile for every graph.
    Returns $h'$, `[n_dst, K, F']`, and, if asked for, PyG's form of the attention.
    """
    n_src = messages.shape[0]
    if edge_attr is not None and edge_features is None:
        raise ValueError('edge_attr was given but the layer has no edge_dim')
    src, dst, edge_attr, sparse = edge_list(edge_index, edge_attr, n_src, n_dst)
    if edge_attr is not None:
        if edge_features is None:
            raise ValueError('the sparse adjacency has edge features (values of more '
                             'than one dimension) but the layer has no edge_dim')
        if edge_attr.dim() > 2:
            raise ValueError(f'edge_attr must be [n_edges, edge_dim] (or [n_edges] with '
                             f'edge_dim 1), got a tensor of shape '
                             f'{list(edge_attr.shape)}')
    add_loops, n_loops = n_loops is not None, n_loops or 0
    if add_loops:
        src, dst, edge_attr = replace_self_loops(src, dst, edge_attr, n_loops, fill_value)
    # Edge features `[|E|]` are `[|E|, 1]`, once the loops' features are made from them as
    # PyG makes them: a `fill_value` of `[n]` is then one number per node's loop
    if edge_attr is not None and edge_attr.dim() == 1:
        edge_attr = edge_attr.view(-1, 1)
    chunk = chunk_size or auto_chunk_size(messages, messages.shape[1] * messages.shape[2])
    # An edge index's loops follow its edges, and `TargetChunks` puts them in among them.
    # A sparse adjacency's entries come in the order it stores them, as PyG takes them;
    # with the loops, sorted by row, then column, as PyG sorts them.
    if sparse is not None and n_loops:
        src, dst = appended_loops(src, dst, n_loops)
        order = torch.argsort(dst * n_src + src)
        src, dst = src[order], dst[order]
        edge_attr = None if edge_attr is None else edge_attr[order]
    edges = TargetChunks(src, dst, n_dst, chunk, n_loops if sparse is None else 0)
    keep, scale, draw = draw_dropout(messages, edges.src.shape[0], messages.shape[1], p,
                                     edges)
    weight_e = None
    if edge_attr is not None:
        edge_attr, weight_e = edge_features(edge_attr)
    out, alpha = lean_attention(score, messages, query, key, attn, edges, keep, scale,
                                return_attention, True, edge_attr=edge_attr,
                                weight_e=weight_e, draw=draw)
    if not return_attention:
        return out, None
    if sparse is None:
        # PyG's edge index: the given one itself (an `EdgeIndex` stays one), or with the
        # loops added
        if not add_loops:
            return out, (edge_index, alpha)
        return out, (loops_added(edge_index, src, dst, n_loops), alpha)
    return out, (sparse_like(sparse, src, dst, alpha, n_dst, n_src), alpha)


def projected_per_chunk(lin_edge: nn.Module) -> Callable:
    """GATv2's edge features for the chunks: $W_e$ goes to the chunks, which project
    their edges' rows; a map that is more than its weight (an adapter, a hook) is called
    on all the edges' features, as PyG does."""
    def edge_features(edge_attr: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        if is_plain(lin_edge):
            check_edge_attr(edge_attr, lin_edge)
            return edge_attr, lin_edge.weight
        return lin_edge(edge_attr), None
    return edge_features


def check_edge_attr(edge_attr: Tensor, lin_edge: 'Linear') -> None:
    """
    The edge features, `[|E|, edge_dim]` (self loops' included), are as wide as $W_e$
    takes and of its dtype, as PyG's `lin_edge` requires: features in `float64` for a
    `float32` layer would otherwise be rounded without a word. Under autocast, which
    casts `float32` and half-precision inputs of a product, those are taken.
    """
    if edge_attr.shape[1] != lin_edge.in_channels:
        raise ValueError(f'edge_attr has {edge_attr.shape[1]} features per edge, but the '
                         f'layer\'s edge_dim is {lin_edge.in_channels}')
    dtype, weight = edge_attr.dtype, lin_edge.weight.dtype
    autocast = torch.is_autocast_enabled(edge_attr.device.type) and \
        dtype in (torch.float32, torch.float16, torch.bfloat16)
    if dtype != weight and not autocast:
        raise ValueError(f'edge_attr is {dtype} but the layer is {weight}: cast one of '
                         f'them, as PyG\'s layer requires')


def edge_list(edge_index: Tensor, edge_attr: Optional[Tensor], n_src: int, n_dst: int):
    """
    `(src, dst, edge_attr, layout)`: `int64` sources and targets from an edge index or a
    `torch.sparse` adjacency (whose multi-dimensional values are edge features), and the
    adjacency's layout, or `None` for an edge index.
    """
    if not isinstance(edge_index, Tensor):
        raise TypeError(f'edge_index must be a tensor [2, n_edges] or a torch.sparse '
                        f'adjacency, got {type(edge_index)} (torch_sparse.SparseTensor '
                        f'is not supported: pass adj.to_torch_sparse_csr_tensor())')
    layout = edge_index.layout
    if layout == torch.strided:
        dtype = edge_index.dtype
        integer = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
        if edge_index.dim() != 2 or edge_index.shape[0] != 2 or not integer:
            raise ValueError(f'edge_index must be [2, n_edges] of an integer dtype '
                             f'(int64, int32), got {tuple(edge_index.shape)} of {dtype}')
        src, dst = edge_index.long()
        layout = None
    else:
        if tuple(edge_index.shape[:2]) != (n_dst, n_src):
            raise ValueError(f'a sparse adjacency must be [n_dst, n_src] = '
                             f'[{n_dst}, {n_src}], got {tuple(edge_index.shape[:2])}')
        dst, src, values = sparse_entries(edge_index)
        if edge_attr is None and values.dim() > 1:
            edge_attr = values
    if edge_attr is not None and edge_attr.shape[0] != src.shape[0]:
        raise ValueError(f'edge_attr has {edge_attr.shape[0]} rows for '
                         f'{src.shape[0]} edges')
    check_indices(src, dst, n_src, n_dst)
    return src, dst, edge_attr, layout


def check_indices(src: Tensor, dst: Tensor, n_src: int, n_dst: int) -> None:
    """Every source a row of `x_src` and every target one of `x_dst`, as PyG checks (one
    host synchronisation): else an edge would read or write outside them."""
    if src.numel() == 0:
        return
    (src_low, src_high), (dst_low, dst_high) = torch.aminmax(src), torch.aminmax(dst)
    outside = (src_low < 0) | (src_high >= n_src) | (dst_low < 0) | (dst_high >= n_dst)
    if not bool(outside):
        return
    for name, low, high, n in (('source', src_low, src_high, n_src),
                               ('target', dst_low, dst_high, n_dst)):
        if low < 0 or high >= n:
            raise IndexError(f'edge_index has {name} nodes from {int(low)} to '
                             f'{int(high)}, but the {name}s\' features have {n} rows')


def sparse_entries(adj: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Rows, columns and values of a COO, CSR or CSC tensor, in its storage order. A COO
    tensor is coalesced first, as a sparse matrix means: entries given twice are one edge,
    their values summed (PyG's layer refuses an uncoalesced one without self loops)."""
    if adj.layout == torch.sparse_coo:
        adj = adj.coalesce()
        rows, cols = adj.indices()
        return rows, cols, adj.values()
    if adj.layout == torch.sparse_csr:
        ptr, cols = adj.crow_indices(), adj.col_indices()
        rows = torch.repeat_interleave(torch.arange(ptr.shape[0] - 1, device=ptr.device),
                                       ptr.diff())
        return rows, cols.long(), adj.values()
    if adj.layout == torch.sparse_csc:
        ptr, rows = adj.ccol_indices(), adj.row_indices()
        cols = torch.repeat_interleave(torch.arange(ptr.shape[0] - 1, device=ptr.device),
                                       ptr.diff())
        return rows.long(), cols, adj.values()
    raise TypeError(f'unsupported sparse layout {adj.layout}')


def sparse_like(layout, src: Tensor, dst: Tensor, alpha: Tensor, n_dst: int,
                n_src: int) -> Tensor:
    r"""$\alpha$ as a sparse `[n_dst, n_src, K]` tensor, as PyG returns it for `adj_t`."""
    size = (n_dst, n_src, alpha.shape[1])
    if layout == torch.sparse_csr:
        ptr = torch.zeros(n_dst + 1, dtype=torch.long, device=dst.device)
        torch.cumsum(torch.bincount(dst, minlength=n_dst), 0, out=ptr[1:])
        return torch.sparse_csr_tensor(ptr, src, alpha, size)
    coo = torch.sparse_coo_tensor(torch.stack([dst, src]), alpha, size).coalesce()
    return coo if layout == torch.sparse_coo else coo.to_sparse_csc()


def replace_self_loops(src: Tensor, dst: Tensor, edge_attr: Optional[Tensor],
                       n_loops: int, fill_value):
    r"""
    PyG's `remove_self_loops` then `add_self_loops`, all but putting in the new loops
    themselves: every loop $(i, i)$ is dropped, and the edge features are followed by
    the features of one new loop per node $i <$ `n_loops` (`fill_value`: a number, a
    tensor, or a reduction of the features of the node's in-edges). The new loops
    follow the edges in that order; `appended_loops` or `TargetChunks` puts them in.
    """
    kept = src != dst
    if not bool(kept.all()):
        kept = kept.nonzero().squeeze(1)
        src, dst = src.index_select(0, kept), dst.index_select(0, kept)
        edge_attr = None if edge_attr is None else edge_attr.index_select(0, kept)
    if edge_attr is not None:
        loop_attr = self_loop_attr(edge_attr, dst, n_loops, fill_value)
        edge_attr = torch.cat([edge_attr, loop_attr])
    return src, dst, edge_attr


def appended_loops(src: Tensor, dst: Tensor, n_loops: int) -> Tuple[Tensor, Tensor]:
    """The edges followed by the loops $(i, i)$, $i <$ `n_loops`."""
    loops = torch.arange(n_loops, device=src.device)
    return torch.cat([src, loops]), torch.cat([dst, loops])


def loops_added(edge_index: Tensor, src: Tensor, dst: Tensor, n_loops: int) -> Tensor:
    """The edge index PyG returns with the loops added: the edges kept and the loops, in
    `int64`; for PyG's `EdgeIndex`, an `EdgeIndex` of them, made by PyG's own functions
    (its sizes and sort order as PyG sets them)."""
    if type(edge_index).__module__.startswith('torch_geometric'):
        from torch_geometric.utils import add_self_loops, remove_self_loops
        return add_self_loops(remove_self_loops(edge_index)[0], num_nodes=n_loops)[0]
    return torch.stack(appended_loops(src, dst, n_loops))


def self_loop_attr(edge_attr: Tensor, dst: Tensor, n: int, fill_value) -> Tensor:
    """The self loops' edge features, `[n, edge_dim]` (`[n]` for features `[|E|]`), as
    PyG's `compute_loop_attr`."""
    shape = (n,) + tuple(edge_attr.shape[1:])
    if fill_value is None or isinstance(fill_value, numbers.Real):
        return edge_attr.new_full(shape, 1.0 if fill_value is None else float(fill_value))
    if isinstance(fill_value, Tensor):
        value = fill_value.to(edge_attr.device, edge_attr.dtype)
        return value.expand(shape).clone()
    index = dst.view(-1, *[1] * (edge_attr.dim() - 1)).expand_as(edge_attr)
    if fill_value == 'mul':
        return edge_attr.new_ones(shape).scatter_reduce(0, index, edge_attr, 'prod')
    if fill_value in ('min', 'max'):
        return edge_attr.new_zeros(shape).scatter_reduce(
            0, index, edge_attr, 'a' + fill_value, include_self=False)
    total = edge_attr.new_zeros(shape).scatter_add(0, index, edge_attr)
    if fill_value == 'mean':
        count = torch.bincount(dst, minlength=n).clamp_(min=1).to(edge_attr.dtype)
        total = total / count.view(-1, *[1] * (edge_attr.dim() - 1))
    return total


def draw_dropout(like: Tensor, n_edges: int, n_heads: int, p: float,
                 edges: 'TargetChunks') -> Tuple[Optional[Tensor], float, Optional[Work]]:
    r"""
    The dropout on the coefficients, as `nn.Dropout` draws it: a mask of kept entries,
    `[|E|, K]`, one byte each, drawn for the edges in their given order (the random
    stream of a dropout on $\alpha$) and put in the order of the chunks; the scale
    $1 / (1 - p)$ of the kept ones; and `None`, or the function that draws a chunk's
    rows of the mask.

    The draw is serial. When the edges come in the chunks' order and the CPU's
    Bernoulli draws one uniform number after another (`uniform_is_bernoulli`), the mask
    is left empty here and drawn chunk by chunk, in order, ahead of each chunk's work:
    the same numbers, and with several threads the draw runs beside the chunks.
    """
    if like.device.type == 'cpu' and 0 < p < 1 and edges.order is None and \
            uniform_is_bernoulli():
        keep = like.new_empty((n_edges, n_heads), dtype=torch.bool)

        def draw(k: int, part: Chunk) -> None:
            draw_bernoulli(keep[part[2]:part[3]], 1 - p)

        return keep, 1 / (1 - p), draw
    keep, scale = dropout_mask(like, (n_edges, n_heads), p)
    return None if keep is None else edges.sort(keep), scale, None


@functools.lru_cache(maxsize=None)
def uniform_is_bernoulli() -> bool:
    """
    Whether a CPU's `bernoulli_(q)` draws a tensor's entries one after another from the
    generator, each a uniform double compared with $q$: PyTorch's own kernel does; MKL's,
    used on Intel CPUs, draws a new seed at every call. Then rows drawn in order give
    the mask drawn at once, and `uniform_` draws the same mask (`draw_bernoulli`).
    """
    generator = torch.Generator().manual_seed(0)
    whole = torch.empty(64, dtype=torch.bool).bernoulli_(0.5, generator=generator)
    generator.manual_seed(0)
    rows = [torch.empty(32, dtype=torch.float64).uniform_(generator=generator) < 0.5
            for _ in range(2)]
    return torch.equal(whole, torch.cat(rows))


def draw_bernoulli(keep: Tensor, q: float) -> Tensor:
    """
    `keep.bernoulli_(q)` for a contiguous `bool` tensor on a CPU. Where the two are the
    same (`uniform_is_bernoulli`), drawn as uniform doubles compared with $q$, a block of
    entries at a time: the same numbers, faster than the Bernoulli kernel.
    """
    if not uniform_is_bernoulli():
        return keep.bernoulli_(q)
    for block in keep.view(-1).split(DRAW_BLOCK):
        uniform = torch.empty(block.shape, dtype=torch.float64).uniform_()
        torch.lt(uniform, q, out=block)
    return keep


def dropout_mask(like: Tensor, shape: Tuple[int, ...], p: float
                 ) -> Tuple[Optional[Tensor], float]:
    """
    The mask `nn.Dropout` would draw for a tensor of `shape` like `like` (same device and
    dtype), and the scale of the kept entries; `None` without dropout. A CPU's dropout
    draws a Bernoulli mask; a GPU's fused kernel draws its own way, so there the mask is
    that kernel's, from a tensor of ones.
    """
    if p <= 0:
        return None, 1.0
    if p >= 1:
        return like.new_zeros(shape, dtype=torch.bool), 0.0
    if like.device.type == 'cuda':
        return torch.native_dropout(like.new_ones(shape), p, True)[1], 1 / (1 - p)
    keep = draw_bernoulli(like.new_empty(shape, dtype=torch.bool), 1 - p)
    return keep, 1 / (1 - p)


class TargetChunks:
    r"""
    ## The edges sorted by target and cut into chunks

    Sorted by target $i$, the in-edges $\mathcal{N}_i$ of every node are one contiguous
    *segment*, from `ptr[i]` to `ptr[i + 1]` (the row pointer of a CSR matrix). A chunk
    is a run of whole segments, targets `a` to `b` and edges `e0` to `e1`, about `chunk`
    edges (more where a target's in-edges run past the chunk's end: they all stay in
    it): the softmax over $\mathcal{N}_i$ and the sum $h'_i$ are complete inside one
    chunk, and no per-edge quantity has to outlive it. Edges already sorted by target
    are used as they are; otherwise they are sorted here with a stable sort, once per
    call. With `n_loops`, the edges are followed, in their given order, by the self
    loops $(i, i)$, $i <$ `n_loops`, each put last in its segment: sorted with the edges,
    or put in among edges given sorted without a sort. The chunks' bounds reach the host
    here, once per call, never inside the chunk loop.
    """

    def __init__(self, src: Tensor, dst: Tensor, n_dst: int, chunk: int,
                 n_loops: int = 0):
        self.order = None
        if dst.shape[0] > 1 and not bool((dst[1:] >= dst[:-1]).all()):
            # Unsorted edges take their loops at their end, and the stable sort puts
            # each loop last in its segment
            if n_loops:
                (src, dst), n_loops = appended_loops(src, dst, n_loops), 0
            self.order = target_order(dst, n_dst)
            src, dst = src.index_select(0, self.order), dst.index_select(0, self.order)
        # In-degrees, and the row pointer `ptr`, `[n_dst + 1]`
        self.degrees = torch.bincount(dst, minlength=n_dst)
        if n_loops:
            src, dst = self.insert_loops(src, dst, n_loops)
        self.src, self.dst = src, dst
        ptr = self.degrees.new_zeros(n_dst + 1)
        torch.cumsum(self.degrees, 0, out=ptr[1:])
        # The first target at or after every multiple of `chunk` edges starts a chunk
        # (in order, as `ptr` is)
        starts = torch.searchsorted(ptr, torch.arange(0, dst.shape[0], chunk,
                                                      device=dst.device))
        nodes = torch.unique_consecutive(torch.cat([starts.new_zeros(1), starts,
                                                    starts.new_tensor([n_dst])]))
        bounds = list(zip(nodes.tolist(), ptr.index_select(0, nodes).tolist()))
        self.parts: List[Chunk] = [
            (a, b, e0, e1) for (a, e0), (b, e1) in zip(bounds, bounds[1:]) if e1 > e0]

    def insert_loops(self, src: Tensor, dst: Tensor, n_loops: int
                     ) -> Tuple[Tensor, Tensor]:
        """The sorted edges with the loops put in: an edge moves down one place for each
        loop of a target before its own; the loop of $i$ comes after the in-edges of the
        targets $0$ to $i$ and the $i$ loops before it."""
        n_edges, device = dst.shape[0], dst.device
        loops = torch.arange(n_loops, device=device)
        at_edges = torch.arange(n_edges, device=device).add_(dst.clamp(max=n_loops))
        at_loops = torch.cumsum(self.degrees[:n_loops], 0).add_(loops)

        def merged(of_edges: Tensor, of_loops: Tensor) -> Tensor:
            both = of_edges.new_empty(n_edges + n_loops)
            return both.scatter_(0, at_edges, of_edges).scatter_(0, at_loops, of_loops)

        self.order = merged(torch.arange(n_edges, device=device), loops + n_edges)
        self.degrees[:n_loops] += 1
        return merged(src, loops), merged(dst, loops)

    def sort(self, per_edge: Tensor) -> Tensor:
        """A per-edge tensor in the given order, put in the order of the chunks."""
        return per_edge if self.order is None else per_edge.index_select(0, self.order)

    def rows(self, per_edge: Tensor, e0: int, e1: int) -> Tensor:
        """Edges `e0` to `e1` of the chunks' order from a per-edge tensor in the given
        order, without a sorted copy of all of it."""
        if self.order is None:
            return per_edge[e0:e1]
        return per_edge.index_select(0, self.order[e0:e1])

    def unsort(self, per_edge: Tensor) -> Tensor:
        """A per-edge tensor in the order of the chunks, put back in the given order."""
        if self.order is None:
            return per_edge
        return torch.zeros_like(per_edge).index_copy(0, self.order, per_edge)


def target_order(dst: Tensor, n_dst: int) -> Tensor:
    """The edges' stable order by target, sorted as 32-bit numbers where the targets fit:
    a radix sort then makes half the passes."""
    keys = dst.int() if n_dst <= torch.iinfo(torch.int32).max else dst
    return torch.argsort(keys, stable=True)


def result_dtype(*tensors: Optional[Tensor]) -> torch.dtype:
    """The dtype of the given tensors' results together, by PyTorch's promotion."""
    dtypes = [x.dtype for x in tensors if x is not None]
    return functools.reduce(torch.promote_types, dtypes)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs are scored, normalised and summed in `float32`."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


class GATv2Score:
    r"""
    ## GATv2's score for a chunk

    $$e_{ijk} = a_k^\top \text{LeakyReLU}\big(g_{r,k,i} + g_{l,k,j} + W_{e,k} u_{ij}\big)$$
    from the node-level `messages` $g_l$, `[n_src, K, F']`, the chunk's rows of `query`
    $g_r$, `[b - a, K, F']` numbered by `local`, and, with edge features, the chunk's
    rows of `edge_attr` projected here, so no $|\mathcal{E}| \times K F'$ tensor of them
    ever exists. The gathered $g_{l,j}$ is the message as well.
    """

    def __init__(self, negative_slope: float):
        self.slope = negative_slope

    def result_dtype(self, *inputs: Optional[Tensor]) -> torch.dtype:
        """The dtype of $h'$ and $\alpha$: the scores' inputs' and the messages'."""
        return result_dtype(*inputs)

    def prepare(self, attn: Tensor, dtype: torch.dtype) -> None:
        """$a$, `[K, F']`, in the compute dtype, and `blocks`, `[K, K F']`: $a_k$ in row
        $k$ at the columns of head $k$, so that $a_k$ times every head's gradient is one
        matrix product."""
        self.attn = attn.to(dtype)
        self.blocks = torch.block_diag(*self.attn.unsqueeze(1))

    def forward(self, t: 'ChunkInputs', src, local, e0, e1, for_backward=False):
        """`(e, messages_j, state)`: the scores `[C, K]`, the gathered messages
        `[C, K, F']`, and what `backward` needs; all in the compute dtype."""
        g_l_j = t.messages.index_select(0, src).to(t.dtype)
        s = t.query.index_select(0, local).to(t.dtype).add_(g_l_j)
        if t.edge_attr is not None:
            # $W_e u_{ij}$ added into `s` by the product itself (or given, without $W_e$)
            rows = t.edges.rows(t.edge_attr, e0, e1).to(t.dtype)
            if t.weight_e is None:
                s.view(s.shape[0], -1).add_(rows)
            else:
                s.view(s.shape[0], -1).addmm_(rows, t.weight_e.T)
        # With a slope $\ge 0$ LeakyReLU keeps the sign, so its backward can use its
        # output and `s` can be overwritten; otherwise `s` is kept for the backward pass
        in_place = self.slope >= 0 or not for_backward
        act = nn.functional.leaky_relu(s, self.slope, inplace=in_place)
        e = feature_sums(act * self.attn)
        return e, g_l_j, (s, act, in_place)

    def backward(self, grad_e, state, t: 'ChunkInputs', local, e0, e1, grad_messages_j,
                 grad_edge_attr: Optional[Tensor]) -> 'ChunkInputs':
        r"""
        With $\sigma'(s) \in \{1, \text{slope}\}$ the derivative of LeakyReLU at $s$:
        $\partial \mathcal{L} / \partial a_k = \sum_{(j,i)} \partial \mathcal{L} /
        \partial e_{ijk} \, \text{LeakyReLU}(s_k)$ and $\partial \mathcal{L} / \partial
        s_k = \partial \mathcal{L} / \partial e_{ijk} \, a_k \odot \sigma'(s_k)$, which
        goes to the rows of $i$ and $j$ and, through $W_e$, to the edge features.
        Returns the chunk's part of the gradients of $a$, of $W_e$ and of the query's
        rows; the messages' part is added to `grad_messages_j`, and the edge features' rows are
        written into `grad_edge_attr`.
        """
        s, act, in_place = state
        n_heads = grad_e.shape[1]
        part = ChunkInputs(t.dtype, None, None, None, None)
        # All pairs of heads as one product; the diagonal blocks are the ones wanted
        pairs = grad_e.T @ act.view(act.shape[0], -1)
        part.attn = torch.diagonal(pairs.view(n_heads, n_heads, -1), dim1=0, dim2=1).T
        # $\partial \mathcal{L} / \partial e_{ijk} \, a_k$ for every head at once, a product
        # with the blocks (on a CPU faster than broadcasting along the last dimension)
        grad_s = (grad_e @ self.blocks).view_as(act)
        grad_s *= leaky_relu_derivative(act if in_place else s, self.slope)
        part.query = torch.zeros_like(t.query, dtype=t.dtype).index_add_(0, local, grad_s)
        grad_messages_j += grad_s
        if t.edge_attr is not None:
            flat = grad_s.view(grad_s.shape[0], -1)
            if t.weight_e is not None:
                part.weight_e = flat.T @ t.edges.rows(t.edge_attr, e0, e1).to(t.dtype)
            if grad_edge_attr is not None:
                grad_rows = flat if t.weight_e is None else flat @ t.weight_e
                write_rows(grad_edge_attr, grad_rows, t.edges, e0, e1)
        return part


class GATScore:
    r"""
    ## GAT's score for a chunk

    $e_{ijk} = \text{LeakyReLU}(q_{ik} + n_{jk} + c_{ijk})$ with the node-level halves
    $q_{ik} = a_{d,k}^\top g_{k,i}$ (`query`, `[n_dst, K]`) and
    $n_{jk} = a_{s,k}^\top g_{k,j}$ (`key`, `[n_src, K]`), and, with edge features,
    their part $c_{ijk} = a_{e,k}^\top W_{e,k} u_{ij}$ (`edge_attr`, `[|E|, K]`): the
    score needs no $K F'$ numbers per edge. The messages $g_j$ are gathered for the sum.
    The halves are in `float32` for half-precision messages (their sums over $F'$ would
    overflow), so the results' dtype, the messages' and $a$'s, is given: `dtype`.
    """

    def __init__(self, negative_slope: float, dtype: torch.dtype):
        self.slope, self.dtype = negative_slope, dtype

    def result_dtype(self, *inputs: Optional[Tensor]) -> torch.dtype:
        """The dtype of $h'$ and $\alpha$, as given."""
        return self.dtype

    def prepare(self, attn, dtype) -> None:
        """Nothing to prepare: $a$ is in the node-level halves already."""

    def forward(self, t: 'ChunkInputs', src, local, e0, e1, for_backward=False):
        """The scores, the gathered messages and the scores' input, in the compute dtype."""
        pre = t.query.index_select(0, local).to(t.dtype)
        pre += t.key.index_select(0, src).to(t.dtype)
        if t.edge_attr is not None:
            pre += t.edges.rows(t.edge_attr, e0, e1).to(t.dtype)
        e = nn.functional.leaky_relu(pre, self.slope)
        return e, t.messages.index_select(0, src).to(t.dtype), pre

    def backward(self, grad_e, pre, t: 'ChunkInputs', local, e0, e1, grad_messages_j,
                 grad_edge_attr: Optional[Tensor]) -> 'ChunkInputs':
        """Through the LeakyReLU: the chunk's part of the gradients of the rows of $i$
        (`query`) and, per edge, of $j$ (`key`); the edges' part is written into
        `grad_edge_attr`."""
        grad_pre = grad_e * leaky_relu_derivative(pre, self.slope)
        grad_query = torch.zeros_like(t.query, dtype=t.dtype)
        grad_query.index_add_(0, local, grad_pre)
        if grad_edge_attr is not None:
            write_rows(grad_edge_attr, grad_pre, t.edges, e0, e1)
        return ChunkInputs(t.dtype, None, grad_query, grad_pre, None)


def write_rows(per_edge: Tensor, rows: Tensor, edges: 'TargetChunks', e0: int,
               e1: int) -> None:
    """Writes the rows of edges `e0` to `e1` of the chunks' order into a per-edge tensor
    in the given order."""
    rows = rows.to(per_edge.dtype)
    if edges.order is None:
        per_edge[e0:e1] = rows
    else:
        per_edge.index_copy_(0, edges.order[e0:e1], rows)


def leaky_relu_derivative(x: Tensor, slope: float) -> Tensor:
    r"""
    $\sigma'(s)$ from $x$, which is $s$ or $\text{LeakyReLU}(s)$ with a slope $\ge 0$
    (both positive exactly where $s$ is): 1 where $x > 0$, else `slope`, from the sign of
    $x$ (on a CPU faster than `torch.where`): with a slope in $[0, 1]$ the
    sign clamped from below at the slope; with any other, the sign clamped to $\{0, 1\}$
    and scaled.
    """
    if 0 <= slope <= 1:
        return torch.sign(x).clamp_(min=slope)
    return torch.sign(x).clamp_(min=0).mul_(1 - slope).add_(slope)


def feature_sums(x: Tensor) -> Tensor:
    """`x`, `[C, K, F']`, summed over its last dimension, `[C, K]`, as one matrix-vector
    product: on a CPU faster than `sum(-1)` over so short a dimension."""
    return x.view(-1, x.shape[-1]).mv(x.new_ones(x.shape[-1])).view(x.shape[:-1])


class ChunkInputs:
    """The inputs of the attention (or their gradients) for the chunks: node-level, and
    the edge features in the edges' given order, read chunk by chunk through `edges`.
    $a$ reaches the chunks through the score (`prepare`); `attn` holds only its gradient."""

    def __init__(self, dtype, messages, query, key, attn, edge_attr=None, weight_e=None,
                 edges=None):
        self.dtype, self.messages, self.query, self.key = dtype, messages, query, key
        self.attn, self.edge_attr, self.weight_e = attn, edge_attr, weight_e
        self.edges = edges

    def add_chunk(self, part: 'ChunkInputs', src: Tensor, a: int, b: int) -> None:
        """Adds a chunk's part of the gradients into these: the messages' and keys' per
        edge into the rows of their sources, the query's into rows `a` to `b`."""
        self.messages.index_add_(0, src, part.messages)
        if part.key is not None:
            self.key.index_add_(0, src, part.key)
        if self.query is not None:
            self.query[a:b] += part.query
        for name in ('attn', 'weight_e'):
            if getattr(part, name) is not None:
                getattr(self, name).add_(getattr(part, name))


def lean_attention(score, messages: Tensor, query: Optional[Tensor],
                   key: Optional[Tensor], attn: Tensor, edges: TargetChunks,
                   keep: Optional[Tensor], scale: float, return_attention: bool,
                   attention_dropped: bool, edge_attr: Optional[Tensor] = None,
                   weight_e: Optional[Tensor] = None, weight_r: Optional[Tensor] = None,
                   projection=None, draw: Optional[Work] = None
                   ) -> Tuple[Tensor, Optional[Tensor]]:
    r"""
    $h'$, `[n_dst, K, F']`, and, if asked for, $\alpha$ (after dropout if
    `attention_dropped`) in the edges' given order. `score` makes $e_{ijk}$ from
    `messages`, `query`, `key` and `attn`. With `projection` (any object with
    `rows(a, b)`, the rows of an input $h$) and `weight_r`, `query` is `None` and its
    rows $g_{r,i} = W_r h_i$ are projected chunk by chunk. With `draw`, each chunk's
    rows of the dropout mask `keep` are drawn ahead of the chunk (`draw_dropout`).
    """
    inputs = (messages, query, key, attn, edge_attr, weight_e, weight_r)
    # A small graph's chunks keep their tensors, if there is to be a backward pass
    reuse = torch.is_grad_enabled() and is_small(edges, messages) and \
        any(x is not None and x.requires_grad for x in inputs)
    out, attention = apply_function(
        LeanAttention, *inputs, score, edges, keep, scale, return_attention,
        attention_dropped, projection, draw, reuse)
    return out, None if attention is None else edges.unsort(attention)


def first_derivative_only(backward: Callable) -> Callable:
    """
    An autograd `Function`'s `backward` whose gradients are made by hand, not by
    operations autograd could differentiate again: asked for a graph of them
    (`create_graph=True`, as for a gradient penalty or a Hessian), it says so
    rather than give second derivatives that silently leave it out. Nor does it run
    under `vmap`, as a batched backward pass would run it (`is_grads_batched`,
    `jacobian(vectorize=True)`): that is refused in one line too.
    """
    @functools.wraps(backward)
    def checked(ctx, *grads):
        if torch.is_grad_enabled():
            raise RuntimeError('the memory-lean layers have no second derivative: no '
                               'backward pass with create_graph=True (a gradient '
                               'penalty, a Hessian); PyG\'s GATv2Conv has one')
        if any(is_batched(g) for g in grads):
            raise RuntimeError('the memory-lean layers take no batched gradients '
                               '(is_grads_batched, jacobian(vectorize=True)): take '
                               'the gradients one at a time (vectorize=False)')
        return backward(ctx, *grads)
    return checked


def is_batched(grad: Optional[Tensor]) -> bool:
    """Whether `grad` is a batched tensor, as a batched backward pass hands it to an
    autograd `Function` (autograd's own `vmap`, or `torch.func.vmap` over
    `torch.autograd.grad`): the chunks' in-place sums into node-level tensors cannot
    take it."""
    if grad is None:
        return False
    functorch = torch._C._functorch
    checks = (getattr(functorch, name, None)
              for name in ('is_legacy_batchedtensor', 'is_batchedtensor'))
    return any(check is not None and check(grad) for check in checks)


def apply_function(function: type, *args):
    """`function.apply(*args)`, or one clear line under `torch.func`'s transforms, which
    take only a `Function` written for them (with `setup_context` and a `vmap` rule), or
    for forward-mode derivatives (dual tensors), which would need a `jvp` of it."""
    try:
        return function.apply(*args)
    except RuntimeError as error:
        if 'forward mode AD' in str(error):
            raise RuntimeError('the memory-lean layers have no forward-mode derivative '
                               '(torch.autograd.forward_ad, dual tensors): use backward, '
                               'or PyG\'s layer (its state_dict loads)') from None
        if 'functorch transforms' not in str(error):
            raise
    raise RuntimeError('the memory-lean layers do not run under torch.func\'s transforms '
                       '(vmap, grad, jacrev): use torch.autograd, and a loop over graphs')


class LeanAttention(torch.autograd.Function):
    r"""
    ## Scores, segment softmax, dropout and aggregation, chunk by chunk

    For the edges of each chunk: the scores $e_{ijk}$, then
    $$\alpha_{ijk} = \exp\big(e_{ijk} - \ell_{ik}\big) \qquad
      \ell_{ik} = m_{ik} + \log \sum_{j' \in \mathcal{N}_i} \exp(e_{ij'k} - m_{ik})$$
    with $m_{ik}$ the maximum, and $h'_{ik} = \sum_{j \in \mathcal{N}_i}
    \tilde\alpha_{ijk} \, g_{k,j}$ with $\tilde\alpha$ the coefficients after dropout.
    In the code, a chunk is targets `a` to `b` and edges `e0` to `e1` (`TargetChunks`),
    `local` numbers its targets from 0, and `cdt` is the dtype it is computed in. Kept
    for the backward pass: the node-level inputs, $\ell$ (`[n_dst, K]`), the sorted
    edges and the dropout mask; for a small graph (`is_small`) also each chunk's
    gathered messages, LeakyReLU and $\alpha$, which the backward pass then reuses.

    **Half precision.** Each chunk is computed in `float32` when the inputs are
    `float16` or `bfloat16`: a hub's softmax denominator and sum add up as many terms as
    it has in-edges, which half precision cannot. $h'$ and $\alpha$ are stored in the
    inputs' dtype, as PyG's are (under autocast, where half-precision messages meet a
    `float32` $a$, in `float32`); $\ell$ and the gradients' node-level sums in `float32`.
    Autocast is off inside: the dtypes here are chosen, not cast.

    **Threads.** On a CPU with several threads, the chunks are shared among them
    ([`ChunkTurns`](#the-chunks-shared-among-cpu-threads)), each chunk's node-level sums
    added in its turn.
    """

    @staticmethod
    def forward(ctx, messages, query, key, attn, edge_attr, weight_e, weight_r, score,
                edges: TargetChunks, keep, scale, return_attention, attention_dropped,
                projection, draw, reuse):
        device = messages.device
        # $h'$ and $\alpha$ in PyG's dtype: the scores' and the messages' promoted (under
        # autocast, half-precision messages scored with a `float32` $a$ give `float32`)
        dtype = score.result_dtype(messages, query, key, attn)
        with torch.autocast(device.type, enabled=False):
            cdt = compute_dtype(messages.dtype)
            score.prepare(attn, cdt)
            t = ChunkInputs(cdt, messages, query, key, None, edge_attr, to(weight_e, cdt),
                            edges)
            n_dst, (n_heads, n_hidden) = edges.degrees.shape[0], messages.shape[1:]
            out = messages.new_zeros(n_dst, n_heads, n_hidden, dtype=dtype)
            log_denominator = messages.new_full((n_dst, n_heads), -torch.inf, dtype=cdt)
            attention = messages.new_empty(edges.src.shape[0], n_heads, dtype=dtype) \
                if return_attention else None
            # A small graph's chunks' tensors, reused by the backward pass
            reused = {} if reuse else None

            def chunk(k: int, part: Chunk) -> None:
                a, b, e0, e1 = part
                src, dst = edges.src[e0:e1], edges.dst[e0:e1]
                # The chunk's targets numbered from 0, and the in-degree of each
                local, degrees = dst - a, edges.degrees[a:b]
                tc = copy.copy(t)
                tc.query = query_chunk(query, projection, weight_r, a, b, n_heads)
                e, messages_j, state = score.forward(tc, src, local, e0, e1,
                                                     for_backward=reused is not None)
                # The segment softmax over each target's in-edges, inside the chunk
                e_max = torch.segment_reduce(e, 'max', lengths=degrees, unsafe=True)
                alpha = e.sub_(e_max.index_select(0, local)).exp_()
                denominator = torch.segment_reduce(alpha, 'sum', lengths=degrees,
                                                   unsafe=True)
                alpha /= denominator.index_select(0, local)
                log_denominator[a:b] = e_max + denominator.log()
                weights = dropped(alpha, keep, scale, e0, e1)
                if attention is not None:
                    attention[e0:e1] = weights if attention_dropped else alpha
                # $h'_{ik}$: the weighted messages added into the rows of their targets
                rows = out[a:b] if cdt == dtype else \
                    messages_j.new_zeros(b - a, n_heads, n_hidden)
                if reused is not None:
                    reused[k] = (messages_j, state, alpha)
                    weighted = messages_j * weights[..., None]
                else:
                    weighted = messages_j.mul_(weights[..., None])
                rows.index_add_(0, local, weighted)
                if cdt != dtype:
                    out[a:b] = rows

            ChunkTurns(edges.parts, messages).run(chunk, ahead=draw)
        ctx.save_for_backward(messages, query, key, attn, edge_attr, weight_e, weight_r,
                              log_denominator, keep)
        ctx.score, ctx.edges, ctx.scale, ctx.projection = score, edges, scale, projection
        ctx.attention_dropped, ctx.reused = attention_dropped, reused
        ctx.set_materialize_grads(False)
        return out, attention

    @staticmethod
    @first_derivative_only
    def backward(ctx, grad_out: Optional[Tensor], grad_attention: Optional[Tensor]):
        r"""
        Per chunk, the scores and $\alpha$ are recomputed from the node-level inputs and
        $\ell$ (or reused, for a small graph). The gradient of the weights,
        $\partial \mathcal{L} / \partial \tilde\alpha_{ijk} =
        (\partial \mathcal{L} / \partial h'_{ik})^\top g_{k,j}$,
        goes back through the dropout to $\partial \mathcal{L} / \partial \alpha_{ijk}$
        (plus the returned attention's gradient), and through the softmax:

        $$\frac{\partial \mathcal{L}}{\partial e_{ijk}} = \alpha_{ijk} \Big(
          \frac{\partial \mathcal{L}}{\partial \alpha_{ijk}} -
          \sum_{j' \in \mathcal{N}_i} \alpha_{ij'k}
          \frac{\partial \mathcal{L}}{\partial \alpha_{ij'k}} \Big)$$

        The message $g_{k,j}$ gets $\tilde\alpha_{ijk} \, \partial \mathcal{L} /
        \partial h'_{ik}$ and the score's part, added into row $j$. A projected query's
        gradient goes straight into that of $W_r$, chunk by chunk.
        """
        (messages, query, key, attn, edge_attr, weight_e, weight_r, log_denominator,
         keep) = ctx.saved_tensors
        score, edges, projection = ctx.score, ctx.edges, ctx.projection
        with torch.autocast(messages.device.type, enabled=False):
            cdt = log_denominator.dtype
            score.prepare(attn, cdt)
            t = ChunkInputs(cdt, messages, None, key, None, edge_attr, to(weight_e, cdt),
                            edges)
            g = ChunkInputs(cdt, torch.zeros_like(messages, dtype=cdt), None,
                            *(None if x is None else torch.zeros_like(x, dtype=cdt)
                              for x in (key, attn)))
            # With shared weights on one node set, $g_r$ is $g_l$: one gradient for both
            grad_query = g.messages if query is messages else \
                None if query is None else torch.zeros_like(query, dtype=cdt)
            if edge_attr is not None:
                g.weight_e = None if weight_e is None else \
                    torch.zeros_like(weight_e, dtype=cdt)
                if ctx.needs_input_grad[4]:
                    g.edge_attr = torch.empty_like(edge_attr)
            grad_weight_r = None if weight_r is None else \
                torch.zeros_like(weight_r, dtype=cdt)
            g.query, n_heads = grad_query, messages.shape[1]
            turns = ChunkTurns(edges.parts, messages)

            def chunk(k: int, part: Chunk) -> None:
                a, b, e0, e1 = part
                tc = copy.copy(t)
                tc.query = query_chunk(query, projection, weight_r, a, b, n_heads)
                grads = backward_chunk(ctx, tc, part, log_denominator, keep, grad_out,
                                       grad_attention, g.edge_attr,
                                       None if ctx.reused is None else ctx.reused[k])
                if projection is not None:
                    grad_w = grads.query.reshape(b - a, -1).T @ \
                        projection.rows(a, b).to(cdt)
                # The node-level sums in the chunks' order, whatever thread computed them
                def add() -> None:
                    g.add_chunk(grads, edges.src[e0:e1], a, b)
                    if projection is not None:
                        grad_weight_r.add_(grad_w)

                turns.in_turn(k, add)

            turns.run(chunk)
        grads = [None if x is None or gx is None else gx.to(x.dtype) for x, gx in
                 ((messages, g.messages),
                  (query, None if query is messages else grad_query),
                  (key, g.key), (attn, g.attn), (edge_attr, g.edge_attr),
                  (weight_e, g.weight_e), (weight_r, grad_weight_r))]
        return (*grads, None, None, None, None, None, None, None, None, None)


def backward_chunk(ctx, t: ChunkInputs, part, log_denominator, keep, grad_out,
                   grad_attention, grad_edge_attr, reused=None) -> ChunkInputs:
    r"""The backward pass of one chunk, from $\partial \mathcal{L} / \partial h'$ and
    the returned attention's gradient: the chunk's part of the node-level gradients,
    the messages' per edge (the edge features' rows are written into `grad_edge_attr`)."""
    (a, b, e0, e1), score, edges, scale = part, ctx.score, ctx.edges, ctx.scale
    src, dst = edges.src[e0:e1], edges.dst[e0:e1]
    local, degrees = dst - a, edges.degrees[a:b]
    if reused is None:
        e, messages_j, state = score.forward(t, src, local, e0, e1, for_backward=True)
        alpha = e.sub_(log_denominator.index_select(0, dst)).exp_()
    else:
        messages_j, state, alpha = reused
    # $\partial \mathcal{L} / \partial \alpha$, `[C, K]`, from $h'$ and from the returned
    # attention (through the dropout first if it was returned after it)
    grad_alpha, grad_messages_j = alpha.new_zeros(alpha.shape), None
    if grad_out is not None:
        grad_out_i = grad_out.index_select(0, dst).to(t.dtype)
        grad_alpha = dropped(feature_sums(grad_out_i * messages_j), keep, scale, e0, e1)
        weights = dropped(alpha, keep, scale, e0, e1)
        grad_messages_j = grad_out_i.mul_(weights[..., None])
    if grad_attention is not None:
        grad_a = grad_attention[e0:e1].to(t.dtype)
        grad_alpha += dropped(grad_a, keep, scale, e0, e1) if ctx.attention_dropped \
            else grad_a
    # Without a gradient of $h'$ the messages get only the score's part
    if grad_messages_j is None:
        grad_messages_j = torch.zeros_like(messages_j)
    # Back through the softmax, per target and head
    grad_e = grad_alpha.mul_(alpha)
    sums = torch.segment_reduce(grad_e, 'sum', lengths=degrees, unsafe=True)
    grad_e -= alpha * sums.index_select(0, local)
    # Back through the score, which adds its part of the messages' gradient
    grads = score.backward(grad_e, state, t, local, e0, e1, grad_messages_j,
                           grad_edge_attr)
    grads.messages = grad_messages_j
    return grads


def to(x: Optional[Tensor], dtype: torch.dtype) -> Optional[Tensor]:
    """`x` in `dtype`, or `None`."""
    return None if x is None else x.to(dtype)


def query_chunk(query: Optional[Tensor], projection, weight_r: Optional[Tensor],
                a: int, b: int, n_heads: int) -> Tensor:
    """Rows `a` to `b` of the query: a view of `query`, or projected from the input."""
    if projection is None:
        return query[a:b]
    return (projection.rows(a, b) @ weight_r.T).view(b - a, n_heads, -1)


def dropped(alpha: Tensor, keep: Optional[Tensor], scale: float, e0: int,
            e1: int) -> Tensor:
    r"""$\tilde\alpha$ for the chunk of edges `e0` to `e1`: after dropout."""
    if keep is None:
        return alpha
    return alpha * keep[e0:e1] * scale


class ChunkTurns:
    r"""
    ### The chunks shared among CPU threads

    With several CPU threads, each of a chunk's operations would be a parallel region
    whose threads wait for each other at its end. Instead several threads, up to
    `MAX_CHUNK_THREADS`, take the chunks one at a time, in order, and compute them at
    once, the intra-op threads shared among them (one each on a small machine). What a
    chunk adds into node-level sums (the gradients of the messages, of $a$, of $W_e$) it
    adds in its *turn*: in the chunks' order, whatever thread computed it. The sums are
    then the same as with one thread, and no thread keeps sums of its own. A thread does
    not wait for its chunk's turn: it leaves the chunk's addition to be made in that turn
    and takes the next chunk, and whichever thread finishes the turn before it makes it
    (at most `2 * n_threads` additions wait, so their tensors stay few).
    One thread on a GPU, with one intra-op thread, or with few chunks.

    A serial step per chunk that must come in the chunks' order (drawing its dropout
    mask), `ahead`, runs on a thread of its own, and a chunk's work waits for its step.
    """

    def __init__(self, parts: List[Chunk], like: Tensor):
        self.parts, self.taken, self.done, self.failed = parts, 0, 0, False
        # How many chunks have had their step ahead
        self.ready = len(parts)
        # The additions waiting for their turns, by chunk, and whether a thread is making
        # the additions whose turns have come
        self.waiting: dict = {}
        self.adding = False
        self.lock, self.turns = threading.Lock(), threading.Condition()
        n = min(torch.get_num_threads(), MAX_CHUNK_THREADS,
                len(parts) // MIN_CHUNKS_PER_THREAD)
        self.n_threads = n if like.device.type == 'cpu' and n > 1 else 1

    def run(self, work: Work, ahead: Optional[Work] = None) -> None:
        """`work(k, part)` for every chunk, in this thread and the others, each after
        `ahead(k, part)` if given."""
        if self.n_threads == 1:
            self.work_on(work if ahead is None else one_then_other(ahead, work))
        else:
            self.run_threads(work, ahead)
        if self.waiting:
            raise RuntimeError(f'chunk {self.done} had no turn')

    def run_threads(self, work: Work, ahead: Optional[Work]) -> None:
        """`run` with several threads: this one, the others, and one for `ahead`."""
        if ahead is not None:
            self.ready = 0
        threads = torch.get_num_threads()
        # New threads take their intra-op threads from the last call
        torch.set_num_threads(max(1, threads // self.n_threads))
        try:
            with ThreadPoolExecutor(self.n_threads - (ahead is None)) as pool:
                others = [pool.submit(in_callers_modes(self.work_on), work)
                          for _ in range(self.n_threads - 1)]
                if ahead is not None:
                    others.append(pool.submit(in_callers_modes(self.go_ahead), ahead))
                errors = [self.call(self.work_on, work)]
                errors += [done.exception() for done in others]
        finally:
            torch.set_num_threads(threads)
        # The error that stopped the others, not theirs
        first = [e for e in errors if e is not None and not isinstance(e, Stopped)]
        if first:
            raise first[0]

    @staticmethod
    def call(function, *args) -> Optional[BaseException]:
        """The error `function(*args)` raised, or `None`."""
        try:
            function(*args)
        except Exception as error:
            return error
        return None

    def work_on(self, work: Work) -> None:
        """Takes the next chunk and computes it, when its step ahead is done, until none
        is left; on an error, the other threads stop."""
        try:
            while True:
                self.wait_for(lambda: len(self.waiting) < 2 * self.n_threads)
                with self.lock:
                    if self.failed or self.taken == len(self.parts):
                        return
                    k, self.taken = self.taken, self.taken + 1
                self.wait_for(lambda: self.ready > k)
                work(k, self.parts[k])
        except BaseException:
            self.fail()
            raise

    def go_ahead(self, ahead: Work) -> None:
        """`ahead(k, part)` for every chunk, in order, each chunk ready after it."""
        try:
            for k, part in enumerate(self.parts):
                if self.failed:
                    return
                ahead(k, part)
                with self.turns:
                    self.ready = k + 1
                    self.turns.notify_all()
        except BaseException:
            self.fail()
            raise

    def wait_for(self, condition: Callable[[], bool]) -> None:
        """Waits until `condition()`, or stops if another thread failed."""
        with self.turns:
            self.turns.wait_for(lambda: condition() or self.failed)
            if self.failed:
                raise Stopped()

    def fail(self) -> None:
        """Tells the other threads to stop."""
        with self.turns:
            self.failed = True
            self.turns.notify_all()

    def in_turn(self, k: int, add: Callable[[], None]) -> None:
        """`add()` in chunk `k`'s turn, after the chunks before it have had theirs: now,
        in this thread, if its turn has come and no other thread is adding; else by the
        thread that makes the turn before it. When the chunks take turns, each takes
        exactly one, or the next ones never come."""
        with self.turns:
            self.waiting[k] = add
            if self.adding:
                return
            self.adding = True
        try:
            while True:
                with self.turns:
                    add = self.waiting.pop(self.done, None)
                    if add is None or self.failed:
                        self.adding = False
                        return
                add()
                with self.turns:
                    self.done += 1
                    self.turns.notify_all()
        except BaseException:
            self.fail()
            raise


def in_callers_modes(function: Callable) -> Callable:
    """`function` for another thread: without gradients, and in inference mode if the
    caller is (both are set per thread; a tensor made in inference mode can only be
    written in it)."""
    inference = torch.is_inference_mode_enabled()

    def run(*args) -> None:
        # `inference_mode(False)` would turn gradients on: no gradients come second
        with torch.inference_mode(inference), torch.no_grad():
            function(*args)
    return run


def one_then_other(first: Work, then: Work) -> Work:
    """`first(k, part)`, then `then(k, part)`, for one thread."""
    def both(k: int, part: Chunk) -> None:
        first(k, part)
        then(k, part)
    return both


class Stopped(Exception):
    """A thread stopped because another one failed."""


def is_small(edges: TargetChunks, messages: Tensor) -> bool:
    r"""
    Whether a graph is small: its $|\mathcal{E}| \times K F'$ tensor at most
    `SMALL_GRAPH_TENSOR_BYTES`. Its chunks then keep their gathered messages, LeakyReLU
    and $\alpha$ for the backward pass (a few such tensors): computing them again would
    cost more time than they take memory.
    """
    per_edge = messages.shape[1] * messages.shape[2] * \
        compute_dtype(messages.dtype).itemsize
    return edges.src.shape[0] * per_edge <= SMALL_GRAPH_TENSOR_BYTES


def check_chunk_size(chunk_size: Optional[int]) -> Optional[int]:
    """`chunk_size` must be `None` or a positive number of edges."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(
            f'chunk_size must be None or a positive integer, got {chunk_size!r}')
    return chunk_size


def auto_chunk_size(like: Tensor, features: int) -> int:
    r"""
    ### The chunk size per device

    On a CPU, each $C \times K F'$ tensor is at most `CPU_CHUNK_TENSOR_BYTES`: the
    chunk's buffers are reused by the allocator and stay in the caches, and a chunk is
    large enough that Python's overhead per chunk is small. On a GPU the kernels are
    launched from Python once per chunk, so chunks are as large as a sixteenth of the
    free memory allows for the `CHUNK_BUFFERS` tensors of the working set: a graph of
    millions of edges is then one chunk or a few.

    With several CPU threads the chunks are shared among them (`ChunkTurns`), each
    thread with a working set of its own.
    """
    per_edge = features * compute_dtype(like.dtype).itemsize
    if like.device.type == 'cuda':
        budget = torch.cuda.mem_get_info(like.device)[0] // (16 * CHUNK_BUFFERS)
    else:
        budget = CPU_CHUNK_TENSOR_BYTES
    return max(1024, budget // per_edge)
