r"""
---
title: Graph Attention Networks (GAT)
summary: >
  An annotated, dense-adjacency PyTorch implementation of the original GAT layer,
  written to show what "static attention" means.
---

# Graph Attention Networks (GAT)

This is a [PyTorch](https://pytorch.org) implementation of the layer from
[Graph Attention Networks](https://arxiv.org/abs/1710.10903) (Veličković et al., ICLR 2018),
written with the same conventions as the [GATv2 layer](gatv2.html) so that the two can be read side by side.

Each node $i$ carries a vector $h_i \in \mathbb{R}^F$. A shared linear map $W$ turns it into
$g_i = W h_i$, and the layer scores the edge from neighbour $j$ to query node $i$ with an
attention vector $a \in \mathbb{R}^{2F'}$:

$$e_{ij} = \text{LeakyReLU}\Big(a^\top \big[g_i \Vert g_j\big]\Big)$$

The scores are normalised over the neighbours $\mathcal{N}_i$ of $i$,
$\alpha_{ij} = \text{softmax}_j(e_{ij})$, and the output is the weighted sum
$h'_i = \sum_{j \in \mathcal{N}_i} \alpha_{ij} g_j$.

## Why this attention is static

Split $a$ into the half that multiplies the query, $a_1$, and the half that multiplies the neighbour, $a_2$:

$$e_{ij} = \text{LeakyReLU}\big(a_1^\top g_i + a_2^\top g_j\big)$$

For a fixed query $i$, the term $a_1^\top g_i$ is a constant, and LeakyReLU is strictly increasing.
So the order of the scores $e_{ij}$ over the neighbours $j$ is the order of $a_2^\top g_j$,
**the same for every query $i$**.
Whatever GAT learns, all nodes agree on which key is best; they can only disagree on how sharply to prefer it.
[GATv2](gatv2.html) fixes this by applying $a$ after the non-linearity.
[Why GATv2: DictionaryLookup](../experiments/gallery/plot_dictionary_lookup.html) shows the
consequence on the paper's task: one GAT head cannot fit it, one GATv2 head can; [What did the
attention learn?](../experiments/gallery/plot_attention.html) looks at trained attention on Cora.

![Static against dynamic attention: in GAT every query ranks the neighbours in the same order
(the best one, starred, is the same column); in GATv2 the ranking depends on the query](../_static/figures/ranking.svg)

The code below uses this split directly: it computes the two halves once per node and
adds them for every pair, instead of building the $N \times N \times 2F'$ concatenation.

## Conventions

As in [`gatv2.py`](gatv2.html): `adj_mat[i, j]` is `True` when node $i$ attends to node $j$
(a message flows $j \to i$; PyG's `edge_index` has the column `[j, i]`), self loops are the caller's choice,
and a node with no neighbour gets the zero vector (plus the bias).
Like [`gatv2.py`](gatv2.html), it imports nothing but PyTorch and the standard library.
The [Cora experiment](../experiments/cora.html) trains it with `--layer gat`, as the baseline for GATv2.
"""

import math
import numbers
from typing import Optional, Union

import torch
from torch import nn


class GraphAttentionLayer(nn.Module):
    """
    ## Graph attention layer

    A single GAT layer, with $K$ heads concatenated or averaged.
    """

    def __init__(self, in_features: int, out_features: int, n_heads: int,
                 is_concat: bool = True,
                 dropout: float = 0.6,
                 leaky_relu_negative_slope: float = 0.2,
                 bias: bool = False):
        """
        * `in_features`, $F$, is the number of input features per node
        * `out_features` is the number of output features per node: $K F'$ when the heads
          are concatenated, $F'$ when they are averaged
        * `n_heads`, $K$, is the number of attention heads
        * `is_concat` whether the heads' outputs are concatenated (`True`) or averaged (`False`)
        * `dropout` is the dropout probability applied to the attention coefficients
        * `leaky_relu_negative_slope` is the negative slope of the LeakyReLU
        * `bias` if `True`, a learnable vector is added to the output after the heads are merged
        """
        super().__init__()
        in_features, out_features, n_heads = (
            positive_int(name, value) for name, value in (
                ('in_features', in_features), ('out_features', out_features),
                ('n_heads', n_heads)))
        check_flags(is_concat=is_concat, bias=bias)
        check_numbers(dropout=dropout,
                      leaky_relu_negative_slope=leaky_relu_negative_slope)
        if is_concat and out_features % n_heads != 0:
            raise ValueError(f'out_features ({out_features}) must be divisible by '
                             f'n_heads ({n_heads}) when the heads are concatenated')

        self.in_features = in_features
        self.out_features = out_features
        self.is_concat = is_concat
        self.n_heads = n_heads

        # $F'$, the features of each head: `out_features / K` when concatenating, all of
        # `out_features` when averaging.
        self.n_hidden = out_features // n_heads if is_concat else out_features

        # The shared transformation $W$ for all heads at once.
        self.linear = nn.Linear(in_features, self.n_hidden * n_heads, bias=False)
        # One attention vector $a_k = [a_{1,k} \Vert a_{2,k}] \in \mathbb{R}^{2F'}$ per head:
        # `attn[:, :n_hidden]` is $a_1$ (query side), `attn[:, n_hidden:]` is $a_2$ (neighbour side).
        self.attn = nn.Parameter(torch.empty(n_heads, 2 * self.n_hidden))
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

        Glorot (Xavier) uniform, as in the paper's code: $W$ as a matrix, and each half of every $a_k$
        as a linear map from $F'$ features to one score (fan-in $F'$, fan-out 1); zeros for the bias.
        """
        nn.init.xavier_uniform_(self.linear.weight)
        bound = math.sqrt(6.0 / (1 + self.n_hidden))
        nn.init.uniform_(self.attn, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, h: Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]],
                adj_mat: Optional[torch.Tensor], return_attention: bool = False):
        r"""
        ### Forward pass

        * `h`, $\mathbf{h}$, is the input node embeddings of shape `[n_nodes, in_features]`.
        * `adj_mat` is a boolean adjacency matrix of shape `[n_nodes, n_nodes]`, `[n_nodes, n_nodes, 1]`
          or `[n_nodes, n_nodes, n_heads]`; `adj_mat[i, j]` is `True` if node $i$ attends to node $j$.
          `None` means every node attends to every node: nothing is masked.
        * `return_attention` if `True`, also return the attention coefficients $\alpha_{ij}$
          of shape `[n_nodes, n_nodes, n_heads]` (before dropout).

        As in [`gatv2.py`](gatv2.html#forward-pass), `h` may be a batch of graphs with the edges
        of the one `adj_mat`, `[..., n_nodes, in_features]`, or a bipartite graph, the pair
        `(h_l, h_r)` of the neighbours $j$, `[..., n_l, in_features]`, and the queries $i$,
        `[..., n_r, in_features]`, with `adj_mat` `[n_r, n_l]`. Both are transformed by the
        one $W$.
        """
        adj_mat = self.check_inputs(h, adj_mat)
        # The neighbours $j$ and the queries $i$; in a graph they are the same nodes
        h_l, h_r = (h, h) if isinstance(h, torch.Tensor) else h

        # $g_{k,j} = W_k h_j$ for every neighbour and $g_{k,i} = W_k h_i$ for every query:
        # `[..., n_l, n_heads, n_hidden]` and `[..., n_r, n_heads, n_hidden]`
        g_l = self.linear(h_l).unflatten(-1, (self.n_heads, self.n_hidden))
        g_r = self.linear(h_r).unflatten(-1, (self.n_heads, self.n_hidden))

        # #### Calculate the attention scores
        #
        # As in [GATv2's layer](gatv2.html#forward-pass), half precision is computed in
        # `float32` (`acc`) and stored in the inputs' dtype (`dtype`).
        dtype = torch.promote_types(g_l.dtype, self.attn.dtype)
        acc = torch.promote_types(dtype, torch.float32)
        # The query's half of the score, $a_{1,k}^\top g_{k,i}$, and the neighbour's half,
        # $a_{2,k}^\top g_{k,j}$, one number per node and head: `[..., n_r, n_heads]` and
        # `[..., n_l, n_heads]`.
        a_1, a_2 = self.attn.to(acc).split(self.n_hidden, dim=1)
        score_query = torch.einsum('...ihf,hf->...ih', g_r.to(acc), a_1)
        score_neighbour = torch.einsum('...jhf,hf->...jh', g_l.to(acc), a_2)
        # Broadcasting the query's half down the rows and the neighbour's half along the columns gives
        # $$e_{ijk} = \text{LeakyReLU}\big(a_{1,k}^\top g_{k,i} + a_{2,k}^\top g_{k,j}\big)$$
        # of shape `[..., n_r, n_l, n_heads]`, query $i$ first, neighbour $j$ second.
        # For a fixed $i$ the order over $j$ is set by `score_neighbour` alone: static attention.
        e = self.activation(score_query.unsqueeze(-2) + score_neighbour.unsqueeze(-3))

        # #### Normalise over the neighbours
        #
        # $\alpha_{ijk} = \text{softmax}_j(e_{ijk})$ over $j \in \mathcal{N}_i$: non-edges get the
        # score $-\infty$, and `where` zeroes the row of a node with no neighbour (no NaN).
        if adj_mat is not None:
            e = e.masked_fill(~adj_mat, -torch.inf)
        a = torch.softmax(e, dim=-2)
        if adj_mat is not None:
            a = torch.where(adj_mat, a, 0.0)
        attention = a.to(dtype)
        a = self.dropout(a)

        # #### Aggregate
        #
        # $$h'_{ik} = \sum_{j \in \mathcal{N}_i} \alpha_{ijk} \, g_{k,j}$$
        # `attn_res` is `[..., n_r, n_heads, n_hidden]`.
        # A message that is not finite (from a NaN or infinite feature) must reach only the
        # queries that attend to it, whose scores are then not finite either; elsewhere its
        # coefficient is 0, and $0 \times \text{NaN}$ would still spread it. So it enters the sum as 0.
        messages = g_l.nan_to_num(0.0, 0.0, 0.0).to(acc)
        attn_res = torch.einsum('...ijh,...jhf->...ihf', a, messages)
        attn_res = attn_res.to(dtype)

        # Concatenate or average the heads: `[..., n_r, out_features]`, then add the bias.
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
                f'bias={self.bias is not None}')

    def check_inputs(self, h: Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]],
                     adj_mat: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """
        ### Input checks

        As in [`gatv2.py`](gatv2.html#input-checks): one clear line for each mistake.
        Returns the adjacency as `[n_r, n_l, 1]` or `[n_r, n_l, n_heads]` ($N_r = N_l = N$ in a graph).
        """
        if isinstance(h, tuple):
            if len(h) != 2:
                raise ValueError(f'h must be a tensor or a pair (h_l, h_r), '
                                 f'got a tuple of {len(h)}')
            named = [('h_l', h[0], 'n_l'), ('h_r', h[1], 'n_r')]
        else:
            named = [('h', h, 'n_nodes')]
        dtype, device = self.linear.weight.dtype, self.linear.weight.device
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

