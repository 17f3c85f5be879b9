r"""
---
title: Graph Attention Networks v2 (GATv2)
summary: >
  An annotated, dense-adjacency PyTorch implementation of the GATv2 layer
  from "How Attentive are Graph Attention Networks?".
---

# Graph Attention Networks v2 (GATv2)

This is a [PyTorch](https://pytorch.org) implementation of the GATv2 operator from the paper
[How Attentive are Graph Attention Networks?](https://arxiv.org/abs/2105.14491)
(Brody, Alon & Yahav, ICLR 2022).

GATv2 works on graph data the way [GAT](gat.html) does.
A graph has nodes and edges connecting them; in the citation graph Cora, for example,
nodes are papers and edges are citations.
Each node $i$ carries a vector of features $h_i \in \mathbb{R}^F$,
and a graph attention layer turns these into new vectors
$h'_i \in \mathbb{R}^{F'}$ by letting every node attend to its neighbours $\mathcal{N}_i$.

## Static attention in GAT

GAT scores the edge from neighbour $j$ to query node $i$ as

$$e_{ij} = \text{LeakyReLU}\Big(a^\top \big[W h_i \Vert W h_j\big]\Big)
        = \text{LeakyReLU}\big(a_1^\top W h_i + a_2^\top W h_j\big)$$

The query's part $a_1^\top W h_i$ is the same number for every neighbour $j$,
and LeakyReLU is monotonic, so **every** query node ranks the neighbours in the same order:
the one that maximises $a_2^\top W h_j$ wins for everyone.
The paper calls this *static* attention.
A query node cannot prefer a neighbour that others do not prefer, however
the weights are trained.

## Dynamic attention in GATv2

GATv2 moves the attention vector $a$ outside the non-linearity:

$$e_{ij} = a^\top \text{LeakyReLU}\big(W_r h_i + W_l h_j\big)$$

The score is then a two-layer perceptron of the *pair* $(h_i, h_j)$, and the ranking of the
neighbours can depend on the query: the attention is *dynamic*.
Dynamic attention costs no parameters: each head's $a_k$ has $F'$ numbers, where GAT's has
$2F'$. With `share_weights` ($W_l = W_r$) a layer of $K$ heads has $K F'$ fewer parameters than
GAT; by default
$W_l$ and $W_r$ are two matrices, about twice GAT's weights.

**The evidence.** [Why GATv2: DictionaryLookup](../experiments/gallery/plot_dictionary_lookup.html)
trains both layers on the paper's task that needs dynamic attention: one GATv2 head fits it,
one GAT head cannot. [Train GATv2 on Cora](../experiments/gallery/plot_cora_training.html)
trains the two-layer model of the [Cora experiment](../experiments/cora.html) and draws its
curves, and [What did the attention learn?](../experiments/gallery/plot_attention.html)
looks at the attention it puts on its neighbours.
[What the layers cost](../experiments/gallery/plot_benchmark.html) measures this layer's twins
on edge lists against PyG's `GATv2Conv` ([the records](../experiments/benchmark.html)).

The attention coefficients are the softmax of the scores over the neighbours of $i$,

$$\alpha_{ij} = \text{softmax}_j(e_{ij}) = \frac{\exp(e_{ij})}{\sum_{j' \in \mathcal{N}_i} \exp(e_{ij'})}$$

and the new embedding of $i$ is the attention-weighted sum of its neighbours' vectors,
passed through the same $W_l$ as in the score:

$$h'_i = \sum_{j \in \mathcal{N}_i} \alpha_{ij} W_l h_j$$

With $K$ heads, each head $k$ has its own $W_{l,k}$, $W_{r,k}$ and attention vector $a_k$, and the
heads' outputs are concatenated (hidden layers) or averaged (the output layer).

## Conventions

* `adj_mat[i, j]` is `True` when **node $i$ attends to node $j$**: a message flows $j \to i$.
  The row is the query (target) $i$, the column the neighbour (source) $j$.
  In PyG's `edge_index` that edge is the column `[j, i]`.
* Self loops are the caller's choice: add $i \to i$ to the adjacency if node $i$ should see itself
  (the paper does).
* A query node with no neighbour at all gets the zero vector (plus the bias), never NaN.

This file imports nothing but PyTorch and Python's standard library, so it can be copied into any
project on its own. The layer builds the full $N \times N$ grid of node pairs, which is what makes it
easy to read; it costs $O(N^2 \cdot K \cdot F')$ memory, so it suits graphs of a few thousand nodes,
or batches of small graphs.
The [edge-list layer](edges.html) computes the same function in $O(|\mathcal{E}|)$, and the
[Cora experiment](../experiments/cora.html) trains a two-layer GATv2 with either.
"""

import math
import numbers
from typing import Optional, Union

import torch
from torch import nn


class GraphAttentionV2Layer(nn.Module):
    r"""
    ## Graph attention v2 layer

    This is a single GATv2 layer.
    A GATv2 is made up of several such layers: it takes
    $\mathbf{h} = \{ h_1, h_2, \dots, h_N \}$, $h_i \in \mathbb{R}^F$, as input
    and outputs $\mathbf{h}' = \{ h'_1, h'_2, \dots, h'_N \}$: $K$ heads of $F'$ features each,
    concatenated ($h'_i \in \mathbb{R}^{K F'}$) or averaged ($h'_i \in \mathbb{R}^{F'}$).
    """

    def __init__(self, in_features: int, out_features: int, n_heads: int,
                 is_concat: bool = True,
                 dropout: float = 0.6,
                 leaky_relu_negative_slope: float = 0.2,
                 share_weights: bool = False,
                 bias: bool = False,
                 broadcast: bool = False):
        """
        * `in_features`, $F$, is the number of input features per node
        * `out_features` is the number of output features per node: $K F'$ when the heads
          are concatenated, $F'$ when they are averaged
        * `n_heads`, $K$, is the number of attention heads
        * `is_concat` whether the heads' outputs are concatenated (`True`) or averaged (`False`)
        * `dropout` is the dropout probability applied to the attention coefficients
        * `leaky_relu_negative_slope` is the negative slope of the LeakyReLU
        * `share_weights` if `True`, the same matrix is used for the query and the neighbour, $W_l = W_r$
        * `bias` if `True`, a learnable vector is added to the output after the heads are merged
        * `broadcast` if `True`, the scores are made by `broadcast_scores`: the same numbers
          without copying the pairs, faster on batches of small graphs (what
          [DictionaryLookup](lookup.html) trains)
        """
        super().__init__()
        in_features, out_features, n_heads = (
            positive_int(name, value) for name, value in (
                ('in_features', in_features), ('out_features', out_features),
                ('n_heads', n_heads)))
        check_flags(is_concat=is_concat, share_weights=share_weights,
                    bias=bias, broadcast=broadcast)
        check_numbers(dropout=dropout,
                      leaky_relu_negative_slope=leaky_relu_negative_slope)
        if is_concat and out_features % n_heads != 0:
            raise ValueError(f'out_features ({out_features}) must be divisible by '
                             f'n_heads ({n_heads}) when the heads are concatenated')

        self.in_features = in_features
        self.out_features = out_features
        self.is_concat = is_concat
        self.n_heads = n_heads
        self.share_weights = share_weights
        self.broadcast = broadcast

        # $F'$, the features of each head: `out_features` split between the heads when they
        # are concatenated, all of `out_features` when they are averaged.
        self.n_hidden = out_features // n_heads if is_concat else out_features

        # $W_l$ for all heads at once: the transformation of the neighbour (source) $j$.
        # Its output is used both in the score and as the message $W_l h_j$.
        self.linear_l = nn.Linear(in_features, self.n_hidden * n_heads, bias=False)
        # $W_r$ for all heads at once: the transformation of the query (target) $i$.
        # With `share_weights` it is the very same module as $W_l$.
        if share_weights:
            self.linear_r = self.linear_l
        else:
            self.linear_r = nn.Linear(in_features, self.n_hidden * n_heads, bias=False)

        # One attention vector $a_k \in \mathbb{R}^{F'}$ per head $k$.
        self.attn = nn.Parameter(torch.empty(n_heads, self.n_hidden))
        # The optional output bias, added after the heads are merged.
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
        else:
            self.register_parameter('bias', None)

        self.activation = nn.LeakyReLU(negative_slope=leaky_relu_negative_slope)
        self.dropout = nn.Dropout(dropout)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        """
        ### Initialisation

        Glorot (Xavier) uniform initialisation, as in the GAT paper's code, and zeros for the bias.
        """
        nn.init.xavier_uniform_(self.linear_l.weight)
        if not self.share_weights:
            nn.init.xavier_uniform_(self.linear_r.weight)
        # Each $a_k$ is a linear map from $F'$ features to one score: fan-in $F'$, fan-out 1.
        bound = math.sqrt(6.0 / (1 + self.n_hidden))
        nn.init.uniform_(self.attn, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, h: Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]],
                adj_mat: Optional[torch.Tensor], return_attention: bool = False):
        r"""
        ### Forward pass

        * `h`, $\mathbf{h}$, is the input node embeddings of shape `[n_nodes, in_features]`.
        * `adj_mat` is a boolean adjacency matrix of shape `[n_nodes, n_nodes, n_heads]`;
          `adj_mat[i, j]` is `True` if node $i$ attends to node $j$.
          Shapes `[n_nodes, n_nodes]` and `[n_nodes, n_nodes, 1]` share one adjacency across the heads.
          `None` means every node attends to every node: nothing is masked.
        * `return_attention` if `True`, also return the attention coefficients $\alpha_{ij}$
          of shape `[n_nodes, n_nodes, n_heads]` (before dropout).

        **A batch of graphs with the same edges.** `h` may have leading batch dimensions,
        `[..., n_nodes, in_features]`: graph $b$ has the features $h_{b,i}$, and every graph
        has the edges of the one `adj_mat`. The output is `[..., n_nodes, out_features]`,
        the attention `[..., n_nodes, n_nodes, n_heads]`. (For one adjacency per graph, map
        the layer over the batch with `torch.func.vmap`, with `randomness='different'`
        for dropout while training.)

        **A bipartite graph.** When the queries $i$ and the neighbours $j$ are two different
        sets of nodes, $N_r$ queries that receive messages and $N_l$ neighbours that send
        them (PyG's `(x_src, x_dst)`), `h` is the pair `(h_l, h_r)`: the neighbours,
        `[..., n_l, in_features]`, which $W_l$ transforms, and the queries,
        `[..., n_r, in_features]`, which $W_r$ transforms. `adj_mat` is then `[n_r, n_l]` (or
        `[n_r, n_l, 1]`, `[n_r, n_l, n_heads]`), the output `[..., n_r, out_features]` and the
        attention `[..., n_r, n_l, n_heads]`. A graph is the case $h_l = h_r = h$. The batch
        dimensions of `h_l` and `h_r` broadcast: queries shared by every graph of a batch
        can be passed once, without a batch dimension.
        """
        adj_mat = self.check_inputs(h, adj_mat)
        # The neighbours $j$ and the queries $i$; in a graph they are the same $N$ nodes
        h_l, h_r = (h, h) if isinstance(h, torch.Tensor) else h
        # The number of neighbours $N_l$ and of queries $N_r$, both $N$ in a graph
        n_l, n_r = h_l.shape[-2], h_r.shape[-2]

        # The initial transformations, for each head:
        # $$g_{l,k,j} = W_{l,k} h_j \qquad g_{r,k,i} = W_{r,k} h_i$$
        # `g_l` is `[..., n_l, n_heads, n_hidden]` and `g_r` is `[..., n_r, n_heads, n_hidden]`:
        # the batch dimensions `...` (none for one graph), the node, the head, the feature.
        g_l = self.linear_l(h_l).unflatten(-1, (self.n_heads, self.n_hidden))
        g_r = self.linear_r(h_r).unflatten(-1, (self.n_heads, self.n_hidden))

        # Half-precision inputs are scored, normalised and summed in `float32` (`acc`), and
        # the results stored in their dtype (`dtype`): in `float16` a sum of $F'$ products
        # overflows at 65504, and a softmax adds up as many terms as a node has neighbours.
        dtype = torch.promote_types(g_l.dtype, self.attn.dtype)
        acc = torch.promote_types(dtype, torch.float32)

        # #### Calculate the attention scores
        #
        # We need the sum $g_{r,i} + g_{l,j}$ for every pair of a query $i$ and a neighbour $j$.
        # Here the nodes are numbered from 0, as the rows of the tensors are.
        #
        # ![repeat_interleave repeats each query's row, tile repeats the neighbours: row iN + j
        # holds the pair (i, j), and viewed as N x N the pairs form a grid](../_static/figures/pair_grid.svg)
        if self.broadcast:
            # The same scores without copying the pairs (see `broadcast_scores` below)
            e = self.broadcast_scores(g_l, g_r, acc)
        else:
            # `g_r.repeat_interleave(n_l, dim=-3)` repeats each query's row $N_l$ times in place,
            # so its row $i N_l + j$ holds $g_{r,i}$:
            # $$\{g_{r,0}, g_{r,0}, \dots, g_{r,0}, g_{r,1}, g_{r,1}, \dots, g_{r,1}, \dots\}$$
            g_r_repeat_interleave = g_r.repeat_interleave(n_l, dim=-3)
            # `g_l.tile(n_r, 1, 1)` tiles all the neighbours (of each graph) once per query,
            # so its row $i N_l + j$ holds $g_{l,j}$:
            # $$\{g_{l,0}, g_{l,1}, \dots, g_{l,N_l-1}, g_{l,0}, g_{l,1}, \dots, g_{l,N_l-1}, \dots\}$$
            g_l_repeat = g_l.tile(n_r, 1, 1)
            # Adding them gives, in row $i N_l + j$, the sum $g_{r,i} + g_{l,j} = W_r h_i + W_l h_j$
            # for the query $i$ and the neighbour $j$.
            g_sum = g_r_repeat_interleave + g_l_repeat
            # Viewed as an $N_r \times N_l$ grid, `g_sum[..., i, j, :, :]` is $g_{r,i} + g_{l,j}$:
            # `[..., n_r, n_l, n_heads, n_hidden]`, the query $i$ first, the neighbour $j$ second.
            g_sum = g_sum.unflatten(-3, (n_r, n_l))

            # The scores of all pairs and heads,
            # $$e_{ijk} = a_k^\top \text{LeakyReLU}\big(g_{r,k,i} + g_{l,k,j}\big)$$
            # a dot product over the features with each head's own attention vector $a_k$:
            # `attn`, `[n_heads, n_hidden]`, multiplies every pair's LeakyReLU by $a_k$ (it
            # broadcasts over the pairs), and the sum runs over the features.
            # `e` is `[..., n_r, n_l, n_heads]`.
            e = (self.activation(g_sum) * self.attn).sum(dim=-1, dtype=acc)

        # #### Normalise over the neighbours
        #
        # $$\alpha_{ijk} = \text{softmax}_j(e_{ijk})$$
        # over the neighbours $j \in \mathcal{N}_i$ only: non-edges get the score $-\infty$,
        # which `exp` turns into exactly zero.
        # `adj_mat`, `[n_r, n_l, 1 or n_heads]`, is the same for every graph of a batch.
        if adj_mat is not None:
            e = e.masked_fill(~adj_mat, -torch.inf)
        a = torch.softmax(e, dim=-2)
        # A query with no neighbour at all has only $-\infty$ scores, whose softmax is NaN:
        # `where` gives its row zeros, so its output is zero (and the gradient too).
        if adj_mat is not None:
            a = torch.where(adj_mat, a, 0.0)
        attention = a.to(dtype)

        # Dropout on the attention coefficients, as in the paper
        a = self.dropout(a)

        # #### Aggregate
        #
        # $$h'_{ik} = \sum_{j \in \mathcal{N}_i} \alpha_{ijk} \, g_{l,k,j}$$
        # the einsum sums over the neighbours `j` for every query `i`, head `h` and feature `f`
        # (and every graph `...` of a batch):
        #
        # ![The letters of the einsum: i the query, j the neighbour (summed over), h the head,
        # f a feature; for each head a matrix product](../_static/figures/einsum.svg)
        #
        # `attn_res` is `[..., n_r, n_heads, n_hidden]`.
        # A message that is not finite (from a NaN or infinite feature) must reach only the
        # queries that attend to it, whose scores are then not finite either; elsewhere its
        # coefficient is 0, and $0 \times \text{NaN}$ would still spread it. So it enters the sum as 0.
        messages = g_l.nan_to_num(0.0, 0.0, 0.0).to(acc)
        attn_res = torch.einsum('...ijh,...jhf->...ihf', a, messages)
        # Stored in the inputs' dtype
        attn_res = attn_res.to(dtype)

        # Merge the heads: concatenate them,
        # $$h'_i = \Big\Vert_{k=1}^{K} h'_{ik}$$
        # or average them,
        # $$h'_i = \frac{1}{K} \sum_{k=1}^{K} h'_{ik}$$
        # and `out` is `[..., n_r, out_features]`.
        if self.is_concat:
            out = attn_res.flatten(-2)
        else:
            out = attn_res.mean(dim=-2)

        if self.bias is not None:
            out = out + self.bias

        if return_attention:
            return out, attention
        return out

    def extra_repr(self) -> str:
        merge = 'concat' if self.is_concat else 'mean'
        return (f'{self.in_features}, {self.out_features}, n_heads={self.n_heads}, '
                f'heads={merge}, dropout={self.dropout.p}, '
                f'negative_slope={self.activation.negative_slope}, '
                f'share_weights={self.share_weights}, bias={self.bias is not None}'
                + (', broadcast=True' if self.broadcast else ''))

    def broadcast_scores(self, g_l: torch.Tensor, g_r: torch.Tensor,
                         acc: torch.dtype) -> torch.Tensor:
        r"""
        ### The scores, faster

        With `broadcast`, the scores $e_{ijk}$ of `forward` without the copies: `g_r` as a
        column of queries plus `g_l` as a row of neighbours, added by broadcasting into the
        grid `[..., n_r, n_l, n_heads, n_hidden]`, and every head's dot product with $a_k$
        as one matrix product: `blocks`, `[n_heads, n_heads * n_hidden]`, holds $a_k$ in
        row $k$ at the columns of head $k$. The same numbers, with fewer passes over the
        grid, which is what a batch of many small graphs spends its time on. The product is
        in `acc`, `float32` for half-precision inputs.
        """
        g_sum = g_r.unsqueeze(-3) + g_l.unsqueeze(-4)
        blocks = torch.block_diag(*self.attn.unsqueeze(1)).to(acc)
        return self.activation(g_sum).flatten(-2).to(acc) @ blocks.T

    def check_inputs(self, h: Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]],
                     adj_mat: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """
        ### Input checks

        One clear line for each mistake, rather than a shape error deep inside `forward`.
        Returns the adjacency as `[n_r, n_l, 1]` or `[n_r, n_l, n_heads]` (in a graph
        $N_r = N_l = N$), ready to broadcast against the scores of every graph of a batch.
        """
        if isinstance(h, tuple):
            if len(h) != 2:
                raise ValueError(f'h must be a tensor or a pair (h_l, h_r), '
                                 f'got a tuple of {len(h)}')
            named = [('h_l', h[0], 'n_l'), ('h_r', h[1], 'n_r')]
        else:
            named = [('h', h, 'n_nodes')]
        dtype, device = self.linear_l.weight.dtype, self.linear_l.weight.device
        for name, x, rows in named:
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                raise TypeError(f'{name} must be a floating-point tensor, '
                                f'got {describe(x)}')
            if x.dim() < 2 or x.shape[-1] != self.in_features:
                shape = f'[..., {rows}, {self.in_features}]'
                raise ValueError(f'{name} must have shape {shape}, got {list(x.shape)}')
            if x.dtype != dtype:
                raise TypeError(f'{name} is {x.dtype} but the layer is {dtype}: '
                                f'pass {name}.to({dtype}) or call layer.to({x.dtype})')
            if x.device != device:
                raise ValueError(f'{name} is on {x.device} but the layer is on {device}: '
                                 f'pass {name}.to(\'{device}\') or call '
                                 f'layer.to(\'{x.device}\')')
        if adj_mat is not None and (not isinstance(adj_mat, torch.Tensor)
                                    or adj_mat.dtype != torch.bool):
            raise TypeError(f'adj_mat must be a boolean tensor or None, '
                            f'got {describe(adj_mat)}')
        if adj_mat is not None and adj_mat.layout != torch.strided:
            raise TypeError(f'adj_mat must be a dense tensor, got a {adj_mat.layout} '
                            f'one: pass adj_mat.to_dense()')
        batches = [list(x.shape[:-2]) for _, x, _ in named]
        if not broadcast(*batches):
            raise ValueError(f'the batch dimensions of h_l, {batches[0]}, and of '
                             f'h_r, {batches[-1]}, do not broadcast')
        if adj_mat is None:
            return None
        # The rows are the queries, the columns the neighbours
        n_r, n_l = named[-1][1].shape[-2], named[0][1].shape[-2]
        nodes = f'{n_r} nodes' if len(named) == 1 else f'{n_r} queries, {n_l} neighbours'
        shapes = [[n_r, n_l], [n_r, n_l, 1], [n_r, n_l, self.n_heads]]
        if list(adj_mat.shape) not in shapes:
            raise ValueError(f'adj_mat must have shape {shapes[0]}, {shapes[1]} or '
                             f'{shapes[2]} for {nodes} and {self.n_heads} heads, '
                             f'got {list(adj_mat.shape)}')
        for name, x, _ in named:
            if adj_mat.device != x.device:
                raise ValueError(f'adj_mat is on {adj_mat.device} '
                                 f'but {name} is on {x.device}')
        return adj_mat.unsqueeze(-1) if adj_mat.dim() == 2 else adj_mat


def edge_index_to_adj_mat(edge_index: torch.Tensor, n_nodes: int,
                          self_loops: bool = True) -> torch.Tensor:
    """
    ## From PyG's `edge_index`

    PyG lists an edge $j \to i$ as the column `[j, i]` of `edge_index`: the source first.
    Here node $i$ attends to $j$ at `adj_mat[i, j]`: the target first, so the two rows swap
    (`adj_mat[edge_index[0], edge_index[1]]` would reverse every directed edge).
    With `self_loops` every node also attends to itself, as in the paper.
    Returns a boolean `[n_nodes, n_nodes]`.

    `edge_index` is an integer tensor `[2, n_edges]` of node ids in `[0, n_nodes)`.
    An edge listed twice is one `True`: a boolean matrix cannot count it twice, where
    PyG's `GATv2Conv` and the [edge-list layer](edges.html) give it two terms in the
    softmax. Remove duplicates first (`torch.unique(edge_index, dim=1)`) for the same
    function.
    An edge list `[n_edges, 2]` is refused, since reading its rows as source and target
    would connect the wrong nodes; with exactly two edges the shapes agree, and a
    `[2, 2]` tensor is read in PyG's layout, column by column.
    """
    if isinstance(n_nodes, bool) or not isinstance(n_nodes, numbers.Integral) \
            or n_nodes < 0:
        raise ValueError(f'n_nodes must be a non-negative integer, got {n_nodes!r}')
    n_nodes = int(n_nodes)
    if not isinstance(edge_index, torch.Tensor):
        raise TypeError(f'edge_index must be a tensor, got {describe(edge_index)}')
    if edge_index.is_floating_point() or edge_index.is_complex() \
            or edge_index.dtype == torch.bool:
        raise TypeError(f'edge_index must be an integer tensor (torch.long) of node ids, '
                        f'got {describe(edge_index)}')
    if edge_index.dim() == 2 and edge_index.shape[1] == 2 and edge_index.shape[0] != 2:
        raise ValueError(f'edge_index must have shape [2, n_edges] (PyG\'s layout), got '
                         f'{list(edge_index.shape)}: transpose it with edge_index.t()')
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f'edge_index must have shape [2, n_edges], got '
                         f'{list(edge_index.shape)}')
    if edge_index.numel() and (edge_index.min() < 0 or edge_index.max() >= n_nodes):
        raise ValueError(f'edge_index holds node ids from {edge_index.min().item()} to '
                         f'{edge_index.max().item()}; they must be in [0, {n_nodes}) '
                         f'for n_nodes = {n_nodes}')
    # Any integer dtype is read as node ids (indexing would take `uint8` for a mask)
    source, target = edge_index.long()
    adj_mat = torch.zeros(n_nodes, n_nodes, dtype=torch.bool, device=edge_index.device)
    adj_mat[target, source] = True
    if self_loops:
        adj_mat.fill_diagonal_(True)
    return adj_mat


def positive_int(name: str, value) -> int:
    """`value` as an `int`: any integer type (NumPy's too) but `bool`, else one line."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    return int(value)


def check_flags(**flags) -> None:
    """Options that are `True` or `False` (a string `'no'` would read as `True`)."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise TypeError(f'{name} must be True or False, got {value!r}')


def check_numbers(**values) -> None:
    """Options that are real numbers, checked before they fail inside `forward`."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f'{name} must be a number, got {value!r}')


def broadcast(*shapes: list[int]) -> bool:
    """Whether tensors of these shapes broadcast together."""
    try:
        torch.broadcast_shapes(*shapes)
    except RuntimeError:
        return False
    return True


def describe(x) -> str:
    """A short description of a value, for error messages."""
    if isinstance(x, torch.Tensor):
        return f'a tensor of dtype {x.dtype} and shape {list(x.shape)}'
    return type(x).__name__

