r"""
---
title: Memory-lean graph attention on an edge list (GATv2 and GAT)
summary: >
  GATv2 and GAT layers that compute exactly the edge-list layers' function but keep only
  a few node-level numbers, the sorted edges and a one-byte dropout mask per edge and
  head for the backward pass, recomputing the rest in chunks of whole neighbourhoods.
---

# Memory-lean graph attention

With $K$ heads of $F'$ features (`n_hidden`), the [edge-list layers](edges.html) gather
$K F'$ numbers to every edge, and autograd keeps two such $|\mathcal{E}| \cdot K F'$
tensors for the backward pass. The lean layers compute the same function with the
[chunked attention of the drop-in `GATv2Conv`](gatv2_conv.html), which the page before
this one explains (one implementation): chunks of whole neighbourhoods, and per target
and head only the log of the softmax's denominator kept for the backward pass, which
recomputes the scores from it. This page builds the project's lean layers and a leaner two-layer
model on it. The model around the layers then holds about as much as the attention does,
or more ($F + 5 K F'$ numbers per node for $F$ input features);
[`LeanTwoLayerGAT`](#the-two-layer-model-leaner) keeps at most 1.44 kB per node with
edges given sorted by target (1.62 kB unsorted), the attention's part included, where
the plain model keeps 2.6 kB besides its attention. The
results are the edge-list layers' up to rounding: the same parameters, `state_dict`,
arguments and random draws.

**The evidence.** The `lean` rows of the [recorded benchmark](../usage.html#performance)
give the time and peak memory of the lean layer and of the leaner model against PyG's: at
ten million nodes the leaner model fits where PyG runs out of memory.
[A million nodes](../experiments/synthetic_minibatch.html) trains `LeanTwoLayerGAT` on a
synthetic graph of a million nodes, with its throughput and memory per process.
"""

from dataclasses import dataclass, replace
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

from labml_gat.edges import (EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer,
                             NodeFeatures, check_edge_inputs)
from labml_gat.gatv2_conv import (CPU_CHUNK_TENSOR_BYTES, GATScore, GATv2Score,
                                  TargetChunks, apply_function, auto_chunk_size,
                                  check_chunk_size, draw_dropout, dropout_mask,
                                  first_derivative_only, lean_attention)
from labml_gat.model import Graph, TwoLayerGAT

# The largest slice of an input made on the fly, on a CPU (a GPU takes 64 times more)
MAX_CHUNK_TENSOR_BYTES = CPU_CHUNK_TENSOR_BYTES


class LeanGraphAttentionV2Layer(EdgeGraphAttentionV2Layer):
    """
    ## Memory-lean GATv2 layer

    The [edge-list GATv2 layer](edges.html) computed chunk by chunk. It takes the same
    arguments as `GraphAttentionV2Layer`, and `chunk_size` (keyword only), the number of
    edges per chunk, or `None` to choose it from the available memory.
    """

    def __init__(self, *args, chunk_size: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunk_size = check_chunk_size(chunk_size)

    def forward(self, h: NodeFeatures, edge_index: torch.Tensor,
                return_attention: bool = False):
        r"""
        The arguments and results are those of
        [`EdgeGraphAttentionV2Layer`](edges.html#edge-list-gatv2-layer).
        """
        h_src, h_dst, src, dst = check_edge_inputs(h, edge_index, self.in_features,
                                                   self.attn.dtype)

        # The node-level transformations, as in the edge-list layer:
        # $g_{l,j} = W_l h_j$, `[n_src, n_heads, n_hidden]`, and $g_{r,i} = W_r h_i$,
        # `[n_dst, n_heads, n_hidden]`. These are kept; they are not per edge.
        g_l, g_r = self.transform(h_src, h_dst)

        # $e_{ijk} = a_k^\top \text{LeakyReLU}(g_{r,k,i} + g_{l,k,j})$ is computed inside
        # the chunks from the gathered $g_{l,j}$ and $g_{r,i}$; $g_{l,j}$ is also the message.
        chunk = self.chunk_size or auto_chunk_size(g_l, self.n_heads * self.n_hidden)
        score = GATv2Score(self.activation.negative_slope)
        return lean_attend(self, score, g_l, g_r, None, src, dst, chunk, return_attention)

    def forward_input(self, h: 'NodeInput', edge_index: torch.Tensor) -> torch.Tensor:
        r"""
        ### The layer on an input made on the fly

        The same layer on $h = \text{dropout}(\sigma(x))$ described by a
        [`NodeInput`](#the-input-of-a-layer-made-on-the-fly), never a whole tensor:
        $g_l = W_l h$ is projected in slices of nodes by `ProjectRows`, and $g_r = W_r h$
        chunk by chunk inside the attention, when the input needs no gradient (the data);
        otherwise both are projected by one `ProjectRows`, so that the gradient of $x$ is
        made once, not once for each.
        """
        _, _, src, dst = check_edge_inputs(h.x, edge_index, self.in_features,
                                           self.attn.dtype)
        n_nodes, shape = h.x.shape[0], (-1, self.n_heads, self.n_hidden)
        projection = None
        if self.share_weights:
            g_l, = project(h, self.linear_l.weight)
            g_r = g_l = g_l.view(shape)
        elif h.x.requires_grad:
            g_l, g_r = (g.view(shape) for g in
                        project(h, self.linear_l.weight, self.linear_r.weight))
        else:
            g_l, g_r = project(h, self.linear_l.weight)[0].view(shape), None
            projection = (h, self.linear_r.weight)
        chunk = self.chunk_size or auto_chunk_size(g_l, self.n_heads * self.n_hidden)
        score = GATv2Score(self.activation.negative_slope)
        return lean_attend(self, score, g_l, g_r, None, src, dst, chunk, False,
                           n_dst=n_nodes, projection=projection)


class LeanGraphAttentionLayer(EdgeGraphAttentionLayer):
    """
    ## Memory-lean GAT layer

    The [edge-list GAT layer](edges.html) computed chunk by chunk.
    Its scores need only $2K$ numbers per node (the two halves of GAT's score, for the
    node as a target and as a source, are node-level), so only the messages $g_{k,j}$
    are gathered to the edges.
    """

    def __init__(self, *args, chunk_size: Optional[int] = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.chunk_size = check_chunk_size(chunk_size)

    def forward(self, h: NodeFeatures, edge_index: torch.Tensor,
                return_attention: bool = False):
        """
        The arguments and results are those of
        [`EdgeGraphAttentionLayer`](edges.html#edge-list-gat-layer).
        """
        h_src, h_dst, src, dst = check_edge_inputs(h, edge_index, self.in_features,
                                                   self.attn.dtype)

        # $g_{k,j} = W_k h_j$ for the sources and the targets, as in the edge-list layer
        g_src, g_dst = self.transform(h_src, h_dst)

        # The two halves of the score, $a_{1,k}^\top g_{k,i}$, `[n_dst, n_heads]`, and
        # $a_{2,k}^\top g_{k,j}$, `[n_src, n_heads]`, as in the edge-list layer, by ordinary
        # autograd: node-level. In `float32` for half precision, so the results' dtype is given
        score_query, score_neighbour = self.score_halves(g_src, g_dst)
        dtype = torch.promote_types(g_src.dtype, self.attn.dtype)

        chunk = self.chunk_size or auto_chunk_size(g_src, self.n_heads * self.n_hidden)
        score = GATScore(self.activation.negative_slope, dtype)
        return lean_attend(self, score, g_src, score_query, score_neighbour, src, dst,
                           chunk, return_attention)


def lean_attend(layer, score, messages: torch.Tensor, query: Optional[torch.Tensor],
                key: Optional[torch.Tensor], src: torch.Tensor, dst: torch.Tensor,
                chunk: int, return_attention: bool, n_dst: Optional[int] = None,
                projection: Optional[Tuple['NodeInput', torch.Tensor]] = None):
    """
    ### Score, normalise, drop, aggregate and merge the heads

    The lean counterpart of the edge-list layers' `attend`. `messages` $g_{k,j}$ is
    node-level here, `[n_src, n_heads, n_hidden]`; `query` and `key` are the node-level
    inputs of the score (`score` says how they make $e_{ijk}$). With `projection`,
    `(h, W_r)`, the query is projected chunk by chunk from `h`.
    """
    n_dst, n_heads = query.shape[0] if n_dst is None else n_dst, layer.n_heads
    edges = TargetChunks(src, dst, n_dst, chunk)
    p = layer.dropout.p if layer.training else 0.0
    keep, scale, draw = draw_dropout(messages, src.shape[0], n_heads, p, edges)

    # $h'_{ik}$, `[n_dst, n_heads, n_hidden]`, and, if asked for, $\alpha_{ijk}$
    # before dropout, by the [chunked attention](gatv2_conv.html) of the drop-in layer
    h, weight_r = (None, None) if projection is None else projection
    attn = layer.attn if isinstance(score, GATv2Score) else None
    attn_res, attention = lean_attention(score, messages, query, key, attn, edges, keep,
                                         scale, return_attention, False,
                                         weight_r=weight_r, projection=h, draw=draw)

    # Concatenate or average the heads and add the bias, as the other layers do. The bias
    # in place, as nothing has kept these node-level tensors: with concatenated heads,
    # head by head on the attention's own output (the same sum), not on the merged view,
    # since after an in-place operation on a view autograd copies the gradient of its base
    if layer.is_concat:
        if layer.bias is not None:
            attn_res.add_(layer.bias.view(n_heads, layer.n_hidden))
        out = attn_res.view(n_dst, n_heads * layer.n_hidden)
    else:
        out = attn_res.mean(dim=1)
        if layer.bias is not None:
            out.add_(layer.bias)

    if return_attention:
        return out, attention
    return out


@dataclass
class NodeInput:
    r"""
    ## The input of a layer, made on the fly

    In the [two-layer model](model.html) the first layer's input is $\text{dropout}(x)$,
    and the second's is $\text{dropout}(\text{ELU}(h^{(1)}))$. Each is as large as the
    tensor it comes from, and autograd keeps it for the weight's gradient. Here only `x`
    is kept, with the dropout as a mask of one byte per number (`keep`, or `None` without
    dropout) and its scale; `rows(a, b)` makes the rows `a` to `b` of
    $h = \text{dropout}(\sigma(x))$ when they are needed, $\sigma$ being the ELU with
    `elu_alpha`, or nothing if it is `None`.
    """
    x: torch.Tensor
    keep: Optional[torch.Tensor] = None
    scale: float = 1.0
    elu_alpha: Optional[float] = None
    # Whether the gradient of `x` may be written over `x` in the backward pass
    overwrite: bool = False

    @staticmethod
    def draw(x: torch.Tensor, dropout: nn.Dropout, elu: Optional[nn.ELU] = None,
             overwrite: bool = False) -> 'NodeInput':
        """
        The input of a layer that `dropout` (and `elu`) would make from `x`, with the mask
        drawn as `nn.Dropout` draws it, so the random stream is the same.
        """
        keep, scale = dropout_mask(x, x.shape, dropout.p if dropout.training else 0.0)
        return NodeInput(x, keep, scale, None if elu is None else elu.alpha, overwrite)

    def rows(self, a: int, b: int) -> torch.Tensor:
        """Rows `a` to `b` of $h$."""
        h = self.x[a:b]
        if self.elu_alpha is not None:
            h = nn.functional.elu(h, self.elu_alpha)
        if self.keep is not None:
            h = h * self.keep[a:b] * self.scale
        return h

    def backward_rows(self, grad_h: torch.Tensor, a: int, b: int) -> torch.Tensor:
        r"""$\partial \mathcal{L} / \partial x$ for rows `a` to `b` from
        $\partial \mathcal{L} / \partial h$: through the mask and the ELU."""
        if self.keep is not None:
            grad_h = grad_h * self.keep[a:b] * self.scale
        if self.elu_alpha is not None:
            # $\sigma'(x) = 1$ for $x > 0$, else $\alpha e^x$: $d + p (1 - d)$ with
            # $d = \alpha e^{\min(x, 0)}$ and $p$ 1 where $x > 0$, else 0
            x = self.x[a:b]
            d = x.clamp(max=0).exp_().mul_(self.elu_alpha)
            positive = torch.sign(x).clamp_(min=0)
            grad_h = grad_h * positive.mul_(1 - d).add_(d)
        return grad_h

    def slices(self) -> Sequence[Tuple[int, int]]:
        """Slices of nodes of at most `MAX_CHUNK_TENSOR_BYTES` of `x` each."""
        n, row = self.x.shape[0], max(1, self.x[:1].numel() * self.x.element_size())
        size = MAX_CHUNK_TENSOR_BYTES * (1 if self.x.device.type == 'cpu' else 64)
        step = max(1, size // row)
        return [(a, min(a + step, n)) for a in range(0, n, step)]


def project(h: NodeInput, *weights: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    """$h W^\top$ for each $W$ of `weights`, `[n_nodes, out]`, without making $h$."""
    return apply_function(ProjectRows, h.x, h, *weights)


class ProjectRows(torch.autograd.Function):
    r"""
    ## Projections of an input made on the fly

    $g = h W^\top$ for one or more $W$, in slices of nodes. `nn.Linear` would keep $h$
    for $\partial \mathcal{L} / \partial W = (\partial \mathcal{L} / \partial g)^\top h$;
    this keeps $x$ (the caller's tensor) and the mask, and makes each slice of $h$ again
    in the backward pass. With $x$ needing a gradient (the second layer's input),
    $\partial \mathcal{L} / \partial x = \sum_W (\partial \mathcal{L} / \partial g) W$,
    through the mask and the ELU, is made slice by slice as well: over $x$ itself when
    `h.overwrite` says that nothing else needs $x$ any more.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, h: NodeInput, *weights: torch.Tensor):
        outs = tuple(x.new_empty(x.shape[0], w.shape[0]) for w in weights)
        for a, b in h.slices():
            rows = h.rows(a, b)
            for w, out in zip(weights, outs):
                torch.mm(rows, w.T, out=out[a:b])
        ctx.save_for_backward(x, h.keep, *weights)
        ctx.h = replace(h, x=None, keep=None)
        ctx.set_materialize_grads(False)
        return outs

    @staticmethod
    @first_derivative_only
    def backward(ctx, *grad_outs: Optional[torch.Tensor]):
        x, keep, *weights = ctx.saved_tensors
        h = replace(ctx.h, x=x, keep=keep)
        grad_weights = [None if g is None else torch.zeros_like(w)
                        for w, g in zip(weights, grad_outs)]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = x.detach() if h.overwrite else torch.empty_like(x)
        for a, b in h.slices():
            rows = h.rows(a, b)
            grad_h = None
            for w, g, grad_w in zip(weights, grad_outs, grad_weights):
                if g is None:
                    continue
                grad_w.addmm_(g[a:b].T, rows)
                if grad_x is not None:
                    grad_h = g[a:b] @ w if grad_h is None else grad_h.addmm_(g[a:b], w)
            if grad_x is not None:
                # The rows of $x$ are read (in `rows` and the ELU's derivative) before
                # they are written over
                grad_x[a:b] = (h.backward_rows(grad_h, a, b) if grad_h is not None
                               else 0)
        return (grad_x, None, *grad_weights)


class LeanTwoLayerGAT(TwoLayerGAT):
    r"""
    ## The two-layer model, leaner

    The [two-layer model](model.html) with lean GATv2 layers, the same modules, parameters
    and `state_dict`, and the same random draws. With $N$ nodes, $F$ input features and
    $K F'$ hidden features of $b$ bytes, the plain model keeps per node the dropped-out
    input ($F$, for the projections' weight gradients), $g_l$ and $g_r$ ($2 K F'$),
    $h^{(1)}$ (for the ELU), the dropout's mask and the dropped-out hidden features: $F +
    5 K F'$ numbers, and the backward pass adds $3 K F'$ more. With $F = 128$, $K = 8$,
    $K F' = 64$, $b = 4$: 1.8 kB kept and 0.8 kB more per node, 26 GB at 10M nodes.

    Here the dropouts and the ELU are made inside the layers' projections
    ([`NodeInput`](#the-input-of-a-layer-made-on-the-fly)): kept are $x$ itself (the
    caller's), one byte per input feature (the first mask), $g_l$ ($g_{r,i}$ is projected
    inside the chunk of $i$'s in-edges, in both passes), $h^{(1)}$ and one byte per hidden
    feature, and the small second layer; with the attention, each layer's edges sorted by
    target ($s$ = 16 bytes per edge, 24 if they came unsorted) and the layers' masks ($K$
    bytes per edge, and one for the output's head). In the backward pass the gradient of
    $h^{(1)}$ is written over $h^{(1)}$, so a forward pass has one backward pass (a second,
    with `retain_graph=True`, is refused by autograd: $h^{(1)}$ was modified). At most, per
    node: $F + K F' + 3 K F' b + K b + (K + 1 + 2 s)|\mathcal{E}|/N$
    bytes, for the sizes above with 11 in-edges per node 1.44 kB with the edges sorted
    and 1.62 kB unsorted. The price is a
    second projection of the input and of the hidden features in the backward pass.
    """

    def __init__(self, in_features: int, n_classes: int, n_heads: int, n_hidden: int,
                 dropout: float, share_weights: bool = False,
                 chunk_size: Optional[int] = None):
        super().__init__(LeanGraphAttentionV2Layer, in_features, n_classes, n_heads,
                         n_hidden, dropout, share_weights)
        self.layer1.chunk_size = self.output.chunk_size = check_chunk_size(chunk_size)

    def forward(self, x: torch.Tensor,
                graph: Union[Graph, Sequence[Graph]]) -> torch.Tensor:
        """The arguments and result of [`TwoLayerGAT`](model.html#the-model)."""
        graph1, graph2 = (graph, graph) if isinstance(graph, torch.Tensor) else graph
        # $h^{(1)}$ before the ELU, `[n_nodes, n_heads * n_hidden]`
        h = self.layer1.forward_input(NodeInput.draw(x, self.input_dropout), graph1)
        # $h^{(1)}$ is needed in the backward pass only to make its own gradient, which
        # can therefore take its place
        h = NodeInput.draw(h, self.dropout, self.activation, overwrite=True)
        return self.output.forward_input(h, graph2)
