r"""
---
title: Edge-list graph attention layers (GATv2 and GAT)
summary: >
  GATv2 and GAT layers that take a PyG-style edge list instead of a dense adjacency matrix,
  computing the same function in time and memory linear in the number of edges.
---

# Edge-list graph attention layers

The [dense GATv2 layer](gatv2.html) scores every pair of nodes $(i, j)$ and then masks out the
non-edges, which costs $O(N^2 \cdot K \cdot F')$ for $N$ nodes, $K$ heads and $F'$ features.
Real graphs are sparse: Cora has $N = 2708$ nodes but only about $5N$ edges.
This module computes **exactly the same function** visiting only the edges,
in $O(|\mathcal{E}| \cdot K \cdot F')$.

The layers here subclass their dense twins, [`GraphAttentionV2Layer`](gatv2.html) and
[`GraphAttentionLayer`](gat.html), and replace only `forward`.
The constructor arguments, the parameters (`linear_l`, `linear_r`, `attn`, `bias` for GATv2;
`linear`, `attn`, `bias` for GAT) and their initialisation are inherited, so a `state_dict`
moves between a dense and an edge-list layer unchanged.

## The edge list

The graph is an `edge_index` of shape `[2, n_edges]`, as in PyG: the column $e = (j, i)$ is an edge
from the **source** (neighbour) $j =$ `edge_index[0, e]` to the **target** (query) $i =$ `edge_index[1, e]`,
a message $j \to i$. It is the entry `adj_mat[i, j] = True` of the dense layers.
Self loops are the caller's choice, as for the dense layers; an edge listed twice counts twice.

## Attention per edge

Everything the dense layer computes on the $N \times N$ grid is computed here on the edges only.
For GATv2 the score of edge $(j, i)$ in head $k$ is

$$e_{ijk} = a_k^\top \text{LeakyReLU}\big(W_{r,k} h_i + W_{l,k} h_j\big)$$

and for GAT it is $e_{ijk} = \text{LeakyReLU}\big(a_{1,k}^\top W_k h_i + a_{2,k}^\top W_k h_j\big)$.
The node vectors $W h$ are computed once per node and then *gathered* to the edges with `index_select`.

### Softmax over the in-edges of each node

The attention coefficients normalise the scores over the edges that end at the same target $i$,

$$\alpha_{ijk} = \frac{\exp(e_{ijk} - m_{ik})}{\sum_{j' \in \mathcal{N}_i} \exp(e_{ij'k} - m_{ik})},
\qquad m_{ik} = \max_{j \in \mathcal{N}_i} e_{ijk}$$

Subtracting the maximum $m_{ik}$ changes nothing mathematically but keeps $\exp$ from overflowing.
The maximum and the sum over "the edges ending at $i$" are *segment* reductions:
`scatter_reduce` (with `amax`) and `scatter_add` combine each edge's value into the entry of its target.

![Gather, segment softmax, scatter: each edge gets its source's vector, the scores of the edges
into one target are normalised together, and the weighted messages are added into the
target's row](../_static/figures/edge_softmax.svg)

### Aggregation

$$h'_{ik} = \sum_{j \in \mathcal{N}_i} \alpha_{ijk} \, g_{k,j}$$

is again a segment sum: each edge contributes its weighted message to the row of its target.
A node with no in-edge receives nothing, so its output is zero (plus the bias), with no NaN.

## Bipartite graphs and mini-batches

A batch of small graphs is a single graph with disjoint parts; the layers need nothing special for it.

For neighbour-sampled mini-batches (PyG's `NeighborLoader`) the sources and targets are different
node sets: `h` may be a pair `(h_src, h_dst)` of shapes `[n_src, in_features]` and
`[n_dst, in_features]`; `edge_index[0]` indexes `h_src`, `edge_index[1]` indexes `h_dst`,
and the output has one row per target, `[n_dst, out_features]`.
In GATv2, $W_l$ transforms the sources and $W_r$ the targets.
The targets of a sampled block are usually the first `n_dst` of its sources (PyG's and DGL's convention),
so a layer is called as `layer((h, h[:n_dst]), edge_index)` and returns the `n_dst` target rows.
The [mini-batch Cora experiment](../experiments/cora_minibatch.html) trains this way, with a neighbour
sampler written in plain PyTorch, and checks that with all neighbours it gives exactly the full-batch outputs:
mini-batches are the route to graphs that do not fit in one machine's memory.

The [Cora experiment](../experiments/cora.html) trains with these layers by default (`--impl edges`).
"""

from typing import Tuple, Union

import torch
from torch import nn

from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer, describe

# A node feature tensor, or a pair `(h_src, h_dst)` for a bipartite graph
NodeFeatures = Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]


class EdgeGraphAttentionV2Layer(GraphAttentionV2Layer):
    """
    ## Edge-list GATv2 layer

    The [GATv2 layer](gatv2.html) on an edge list. It takes the same constructor arguments
    and has the same parameters as `GraphAttentionV2Layer`.
    """

    def forward(self, h: NodeFeatures, edge_index: torch.Tensor,
                return_attention: bool = False):
        r"""
        * `h` is the node embeddings `[n_nodes, in_features]`,
          or a pair `(h_src, h_dst)` for a bipartite graph.
        * `edge_index` is a `torch.int64` tensor of shape `[2, n_edges]`:
          `edge_index[0]` holds the sources $j$, `edge_index[1]` the targets $i$.
        * `return_attention` if `True`, also return the attention coefficients $\alpha_{ijk}$
          of shape `[n_edges, n_heads]`, in the order of the edges (before dropout).
        """
        h_src, h_dst, src, dst = check_edge_inputs(h, edge_index, self.in_features,
                                                   self.attn.dtype)
        # Number of targets; equal to the number of nodes unless the graph is bipartite
        n_dst = h_dst.shape[0]

        # The transformations of the sources and the targets, once per node
        g_l, g_r = self.transform(h_src, h_dst)

        # #### Calculate the attention scores
        #
        # Gather the source's vector $g_{l,j}$ to every edge: `[n_edges, n_heads, n_hidden]`.
        # It is used twice, in the score and as the message.
        g_l_j = g_l.index_select(0, src)
        # Gather the target's vector $g_{r,i}$ and add, giving $g_{r,i} + g_{l,j}$ per edge.
        # The sum is done in place on the fresh gathered tensor to save one edge-sized buffer.
        g_sum = g_r.index_select(0, dst).add_(g_l_j)
        # LeakyReLU in place as well: with a slope $\ge 0$ its backward needs only the sign of
        # its output.
        slope = self.activation.negative_slope
        g_sum = nn.functional.leaky_relu(g_sum, slope, inplace=slope >= 0)
        # The dot products with the heads' attention vectors,
        # $$e_{ijk} = a_k^\top \text{LeakyReLU}\big(g_{r,k,i} + g_{l,k,j}\big)$$
        # as one matrix product: `attn_blocks`, `[n_heads, n_heads * n_hidden]`, has $a_k$ in row $k$
        # at the columns of head $k$ and zeros elsewhere. `e` is `[n_edges, n_heads]`.
        # Half precision is scored, normalised and summed in `float32` (`acc`), as in
        # [`gatv2.py`](gatv2.html#forward-pass), and stored in the inputs' dtype.
        acc = torch.promote_types(torch.promote_types(g_sum.dtype, self.attn.dtype),
                                  torch.float32)
        attn_blocks = torch.block_diag(*self.attn.unsqueeze(1)).to(acc)
        e = g_sum.reshape(-1, self.n_heads * self.n_hidden).to(acc) @ attn_blocks.T

        # #### Normalise, aggregate and merge the heads
        return attend(self, e, g_l_j, dst, n_dst, return_attention)


    def transform(self, h_src: torch.Tensor, h_dst: torch.Tensor
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""
        ### Node transformations

        $$g_{l,k,j} = W_{l,k} h_j \qquad g_{r,k,i} = W_{r,k} h_i$$
        once per node: `g_l` is `[n_src, n_heads, n_hidden]` and `g_r` is
        `[n_dst, n_heads, n_hidden]`. With $W_l = W_r$ on a single node set the two are the
        same tensor.
        """
        g_l = self.linear_l(h_src).view(-1, self.n_heads, self.n_hidden)
        if h_dst is h_src and self.share_weights:
            return g_l, g_l
        return g_l, self.linear_r(h_dst).view(-1, self.n_heads, self.n_hidden)


class EdgeGraphAttentionLayer(GraphAttentionLayer):
    """
    ## Edge-list GAT layer

    The [GAT layer](gat.html) on an edge list. It takes the same constructor arguments
    and has the same parameters as `GraphAttentionLayer`.
    """

    def forward(self, h: NodeFeatures, edge_index: torch.Tensor,
                return_attention: bool = False):
        """
        The arguments are the same as for [`EdgeGraphAttentionV2Layer`](#edge-list-gatv2-layer).
        """
        h_src, h_dst, src, dst = check_edge_inputs(h, edge_index, self.in_features,
                                                   self.attn.dtype)
        n_dst = h_dst.shape[0]

        # $g_{k,j} = W_k h_j$ for the sources, `[n_src, n_heads, n_hidden]`,
        # and $g_{k,i} = W_k h_i$ for the targets, `[n_dst, n_heads, n_hidden]`.
        g_src, g_dst = self.transform(h_src, h_dst)

        # #### Calculate the attention scores
        #
        # GAT's score splits into a target part and a source part,
        # so each is a single number per node and head, computed before touching the edges
        # (`score_halves`)
        score_query, score_neighbour = self.score_halves(g_src, g_dst)
        # Gathering these numbers to the edges is cheap, `[n_edges, n_heads]`:
        # $$e_{ijk} = \text{LeakyReLU}\big(a_{1,k}^\top g_{k,i} + a_{2,k}^\top g_{k,j}\big)$$
        e = self.activation(score_query.index_select(0, dst)
                            + score_neighbour.index_select(0, src))

        # The messages $g_{k,j}$ gathered to the edges, `[n_edges, n_heads, n_hidden]`
        g_j = g_src.index_select(0, src)

        # #### Normalise, aggregate and merge the heads
        return attend(self, e, g_j, dst, n_dst, return_attention)


    def transform(self, h_src: torch.Tensor, h_dst: torch.Tensor
                  ) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        ### Node transformations

        $g_{k,j} = W_k h_j$ for the sources and the targets, once per node:
        `[n_src, n_heads, n_hidden]` and `[n_dst, n_heads, n_hidden]`.
        """
        g_src = self.linear(h_src).view(-1, self.n_heads, self.n_hidden)
        if h_dst is h_src:
            return g_src, g_src
        return g_src, self.linear(h_dst).view(-1, self.n_heads, self.n_hidden)

    def score_halves(self, g_src: torch.Tensor, g_dst: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
        r"""
        ### The halves of the score

        $a_{1,k}^\top g_{k,i}$ for the targets, `[n_dst, n_heads]`, and $a_{2,k}^\top g_{k,j}$
        for the sources, `[n_src, n_heads]`: in `float32` for half-precision inputs (`acc`),
        as in [`gat.py`](gat.html), since a sum over $F'$ features can overflow `float16`.
        """
        acc = torch.promote_types(torch.promote_types(g_src.dtype, self.attn.dtype),
                                  torch.float32)
        a_1, a_2 = self.attn.to(acc).split(self.n_hidden, dim=1)
        return (torch.einsum('ihf,hf->ih', g_dst.to(acc), a_1),
                torch.einsum('jhf,hf->jh', g_src.to(acc), a_2))


def attend(layer: Union[EdgeGraphAttentionV2Layer, EdgeGraphAttentionLayer],
           e: torch.Tensor, messages: torch.Tensor, dst: torch.Tensor, n_dst: int,
           return_attention: bool):
    """
    ### Normalise, aggregate and merge the heads

    The part shared by both layers.

    * `e` is the scores $e_{ijk}$, `[n_edges, n_heads]`, in the dtype of the computation
      (`float32` for half-precision inputs)
    * `messages` is the gathered source vectors $g_{k,j}$, `[n_edges, n_heads, n_hidden]`
    * `dst` is the target $i$ of every edge, `[n_edges]`, and `n_dst` the number of targets
    """
    # $\alpha_{ijk} = \text{softmax}_j(e_{ijk})$ over the in-edges of each target, `[n_edges, n_heads]`
    a = segment_softmax(e, dst, n_dst)
    # The results in the inputs' dtype
    dtype = torch.promote_types(messages.dtype, layer.attn.dtype)
    attention = a.to(dtype)

    # Dropout on the attention coefficients, as in the paper
    a = layer.dropout(a)

    # Weight each message by its coefficient and add it into the row of its target:
    # $$h'_{ik} = \sum_{j \in \mathcal{N}_i} \alpha_{ijk} \, g_{k,j}$$
    # `attn_res` is `[n_dst, n_heads, n_hidden]`; a target with no in-edge keeps its row of zeros.
    weighted = messages.to(e.dtype) * a.unsqueeze(-1)
    attn_res = (weighted.new_zeros(n_dst, layer.n_heads, layer.n_hidden)
                .index_add_(0, dst, weighted).to(dtype))

    # Concatenate the heads, $h'_i = \Big\Vert_{k=1}^{K} h'_{ik}$,
    # or average them, $h'_i = \frac{1}{K} \sum_{k=1}^{K} h'_{ik}$: `[n_dst, out_features]`
    if layer.is_concat:
        out = attn_res.reshape(n_dst, layer.n_heads * layer.n_hidden)
    else:
        out = attn_res.mean(dim=1)

    if layer.bias is not None:
        out = out + layer.bias

    if return_attention:
        return out, attention
    return out


def segment_softmax(e: torch.Tensor, target: torch.Tensor,
                    n_targets: int) -> torch.Tensor:
    r"""
    ## Segment softmax

    The softmax of the scores `e`, `[n_edges, n_heads]`, over the edges with the same `target`,
    `[n_edges]`, separately for each head. `n_targets` is the number of targets.
    Returns $\alpha$, `[n_edges, n_heads]`.
    """
    n_heads = e.shape[1]
    # The target of every edge, repeated for each head: `[n_edges, n_heads]`, a view without a copy.
    index = target.unsqueeze(-1).expand(-1, n_heads)

    # The maximum score of each target and head, $m_{ik}$, `[n_targets, n_heads]`.
    # It is only a shift that cancels out in the fraction, so it needs no gradient (it is detached).
    # Targets with no edge keep the initial $-\infty$, which is never read.
    e_max = (e.new_full((n_targets, n_heads), -torch.inf)
             .scatter_reduce_(0, index, e.detach(), 'amax'))

    # $\exp(e_{ijk} - m_{ik}) \in (0, 1]$ for every edge and head
    exp = torch.exp(e - e_max.index_select(0, target))
    # The denominators $\sum_{j' \in \mathcal{N}_i} \exp(e_{ij'k} - m_{ik}) \ge 1$, `[n_targets, n_heads]`
    denominator = exp.new_zeros(n_targets, n_heads).scatter_add_(0, index, exp)

    # $\alpha_{ijk}$, the share of each edge in the sum of its target, `[n_edges, n_heads]`
    return exp / denominator.index_select(0, target)


def check_edge_inputs(h: NodeFeatures, edge_index: torch.Tensor, in_features: int,
                      dtype: torch.dtype
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """
    ## Input checks

    Checks `h` and `edge_index` and returns `(h_src, h_dst, src, dst)`:
    for a single node set `h_src` and `h_dst` are both `h`.
    `src` and `dst` are the rows of `edge_index`.
    """
    if isinstance(h, tuple):
        if len(h) != 2:
            raise ValueError(f'a bipartite h must be a pair (h_src, h_dst), '
                             f'got a tuple of {len(h)}')
        h_src, h_dst = h
        check_features(h_src, 'h_src', in_features, dtype)
        check_features(h_dst, 'h_dst', in_features, dtype)
        if h_src.dtype != h_dst.dtype or h_src.device != h_dst.device:
            raise TypeError(f'h_src and h_dst must have the same dtype and device, got '
                            f'{h_src.dtype} on {h_src.device} and '
                            f'{h_dst.dtype} on {h_dst.device}')
    else:
        check_features(h, 'h', in_features, dtype)
        h_src = h_dst = h

    if not isinstance(edge_index, torch.Tensor) or edge_index.dtype != torch.int64:
        raise TypeError(f'edge_index must be a tensor of dtype torch.int64, '
                        f'got {describe(edge_index)}')
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f'edge_index must have shape [2, n_edges], '
                         f'got {list(edge_index.shape)}')
    if edge_index.device != h_src.device:
        raise ValueError(f'edge_index must be on the same device as h ({h_src.device}), '
                         f'got {edge_index.device}')

    src, dst = edge_index[0], edge_index[1]
    if edge_index.numel() > 0:
        if edge_index.min() < 0:
            raise ValueError(f'edge_index must not contain negative indices, '
                             f'got {edge_index.min().item()}')
        for name, index, n_nodes in (('sources edge_index[0]', src, h_src.shape[0]),
                                     ('targets edge_index[1]', dst, h_dst.shape[0])):
            if index.max() >= n_nodes:
                raise ValueError(f'the {name} must be smaller than the number of nodes '
                                 f'({n_nodes}), got {index.max().item()}')
    return h_src, h_dst, src, dst


def check_features(h: torch.Tensor, name: str, in_features: int,
                   dtype: torch.dtype) -> None:
    """Checks a node feature tensor `[n_nodes, in_features]`, dense or sparse."""
    if not isinstance(h, torch.Tensor) or not h.is_floating_point():
        raise TypeError(f'{name} must be a floating-point tensor, got {describe(h)}')
    if h.dim() != 2 or h.shape[1] != in_features:
        raise ValueError(f'{name} must have shape [n_nodes, {in_features}], '
                         f'got {list(h.shape)}')
    if h.dtype != dtype:
        raise TypeError(f'{name} is {h.dtype} but the layer is {dtype}: '
                        f'pass {name}.to({dtype}) or call layer.to({h.dtype})')
