r"""
---
title: Memory-lean graph attention on an edge list (GATv2 and GAT)
summary: >
  GATv2 and GAT layers that compute exactly the edge-list layers' function but keep only
  a few numbers per edge and head for the backward pass, recomputing the rest in chunks.
---

# Memory-lean graph attention

The [edge-list layers](edges.html) are linear in the number of edges $|\mathcal{E}|$,
but the constant is large. With $K$ heads of $F'/K$ features each
($F'$ numbers per node after the projection), GATv2 gathers to every edge $(j, i)$

* the source's vector $g_{l,j}$: $F'$ numbers per edge, for the score and as the message,
* the sum $g_{r,i} + g_{l,j}$ and its LeakyReLU: $F'$ numbers per edge,
* the weighted message $\alpha_{ijk} \, g_{l,k,j}$: $F'$ numbers per edge,

and autograd keeps two of them, $2 |\mathcal{E}| F'$ numbers, until the backward pass,
which creates as many again for their gradients. The scores $e_{ijk}$, the coefficients
$\alpha_{ijk}$ and the dropout mask are only $K$ numbers per edge, $F'/K$ times fewer.
At 10 million edges, $K = 8$ heads and $F' = 64$ in `float32`, one $|\mathcal{E}| F'$
tensor is 2.56 GB and one $|\mathcal{E}| K$ tensor is 0.32 GB.

## What is kept and what is recomputed

The layers here keep, per edge, only what the backward pass cannot get back cheaply:

* the attention coefficients $\alpha_{ijk}$, `[n_edges, n_heads]`,
  from which the gradient of the softmax follows without the scores,
* the attention dropout mask, `[n_edges, n_heads]`, one byte per entry,
* the edge list itself, which the caller holds anyway.

Everything with $F'$ numbers per edge is a *gather* of a node-level tensor
($g_{l,j}$, $g_{r,i}$, $\partial \mathcal{L} / \partial h'_i$) or a cheap function of
gathers (the sum and its LeakyReLU). These are computed for a chunk of $C$ edges at a
time, used, and dropped, both in the forward pass and again in the backward pass.
So the memory kept for the backward pass is

$$|\mathcal{E}| \cdot K \cdot (b + 1) + 2 \cdot 8 \, |\mathcal{E}|
\quad \text{bytes instead of about} \quad 2 \, |\mathcal{E}| \cdot F' \cdot b$$

for $b$ bytes per number (4 for `float32`), plus the node-level tensors $g_l, g_r$
(GAT also keeps its $K$ scores per edge for the LeakyReLU), and the working set of a
chunk is a few $C \cdot F'$ tensors, whatever $|\mathcal{E}|$ is.
The price is one more gather of the node vectors per edge in the backward pass.

## The chunk size

`chunk_size` is the number of edges $C$ of a chunk. Left at `None`, it is chosen from the
memory available on the device when the layer runs, so the same call works on a laptop
and on a big machine: the chunk's working set, about 6 tensors of $C \times F'$ numbers,
is kept below a sixteenth of the free memory and at most 256 MiB. Smaller chunks save
memory, larger chunks run fewer Python steps; beyond some ten thousand edges the speed
barely changes.

The results are the same as the edge-list layers' up to rounding: the same parameters,
the same `state_dict`, the same `forward(h, edge_index, return_attention=False)`,
bipartite pairs `(h_src, h_dst)`, attention dropout, `share_weights`, bias, and zero
for a node without in-edges.
Nothing here is specific to the CPU: the same code runs on a GPU.
"""

from typing import Optional, Tuple

import torch
from torch import nn

from labml_gat.edges import (EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer,
                             NodeFeatures, check_edge_inputs)
from labml_gat.training import available_memory_bytes

# The largest working set of one chunk when the chunk size is chosen automatically
MAX_CHUNK_BYTES = 256 * 2 ** 20
# Tensors of $C \times F'$ numbers alive at once in a chunk (gathers, sums, gradients)
CHUNK_BUFFERS = 6


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
        n_dst = h_dst.shape[0]

        # The node-level transformations, as in the edge-list layer:
        # $g_{l,j} = W_l h_j$, `[n_src, n_heads, n_hidden]`, and $g_{r,i} = W_r h_i$,
        # `[n_dst, n_heads, n_hidden]`. These are kept; they are not per edge.
        g_l, g_r = self.transform(h_src, h_dst)

        # The scores $e_{ijk} = a_k^\top \text{LeakyReLU}(g_{r,k,i} + g_{l,k,j})$,
        # `[n_edges, n_heads]`, chunk by chunk; nothing per edge is kept for backward.
        chunk = self.chunk_size or auto_chunk_size(g_l, self.n_heads * self.n_hidden)
        e = GATv2Scores.apply(g_l, g_r, self.attn, src, dst,
                              self.activation.negative_slope, chunk)

        # Softmax, dropout and aggregation, keeping only $\alpha$ and the mask per edge
        return lean_attend(self, e, g_l, src, dst, n_dst, chunk, return_attention)


class LeanGraphAttentionLayer(EdgeGraphAttentionLayer):
    """
    ## Memory-lean GAT layer

    The [edge-list GAT layer](edges.html) with a lean aggregation.
    Its scores already need only $K$ numbers per edge (the two halves of GAT's score are
    node-level), so only the messages $g_{k,j}$ have to be chunked.
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
        n_dst = h_dst.shape[0]

        # $g_{k,j} = W_k h_j$ for the sources and the targets, as in the edge-list layer
        g_src, g_dst = self.transform(h_src, h_dst)

        # $e_{ijk} = \text{LeakyReLU}(a_{1,k}^\top g_{k,i} + a_{2,k}^\top g_{k,j})$:
        # ordinary autograd is lean here: each tensor is `[n_edges, n_heads]` or per node.
        score_query = torch.einsum('ihf,hf->ih', g_dst, self.attn[:, :self.n_hidden])
        score_neighbour = torch.einsum('jhf,hf->jh', g_src, self.attn[:, self.n_hidden:])
        e = self.activation(score_query.index_select(0, dst)
                            + score_neighbour.index_select(0, src))

        chunk = self.chunk_size or auto_chunk_size(g_src, self.n_heads * self.n_hidden)
        return lean_attend(self, e, g_src, src, dst, n_dst, chunk, return_attention)


def lean_attend(layer, e: torch.Tensor, messages: torch.Tensor, src: torch.Tensor,
                dst: torch.Tensor, n_dst: int, chunk: int, return_attention: bool):
    """
    ### Normalise, drop, aggregate and merge the heads

    The lean counterpart of the edge-list layers' `attend`. `messages` is node-level here,
    `[n_src, n_heads, n_hidden]`; it is gathered to the edges chunk by chunk.
    """
    # The dropout on the coefficients, as `nn.Dropout` draws it: a mask of kept entries,
    # `[n_edges, n_heads]`, and the scale $1 / (1 - p)$ of the kept ones.
    # It is drawn here, outside the autograd function, so the random stream is that of the
    # edge-list layer.
    p = layer.dropout.p
    if layer.training and p > 0:
        keep = torch.empty_like(e).bernoulli_(1 - p).bool() if p < 1 else e.new_zeros(
            e.shape, dtype=torch.bool)
        scale = 1 / (1 - p) if p < 1 else 0.0
    else:
        keep, scale = None, 1.0

    # $h'_{ik}$, `[n_dst, n_heads, n_hidden]`, and $\alpha_{ijk}$ before dropout
    attn_res, attention = LeanAttend.apply(e, messages, src, dst, n_dst, keep, scale,
                                           chunk)

    # Concatenate or average the heads and add the bias, as the other layers do
    if layer.is_concat:
        out = attn_res.reshape(n_dst, layer.n_heads * layer.n_hidden)
    else:
        out = attn_res.mean(dim=1)
    if layer.bias is not None:
        out = out + layer.bias

    if return_attention:
        return out, attention
    return out


class GATv2Scores(torch.autograd.Function):
    r"""
    ## GATv2's scores, recomputed in the backward pass

    $$e_{ijk} = a_k^\top \text{LeakyReLU}\big(g_{r,k,i} + g_{l,k,j}\big)$$

    for every edge, from the node-level `g_l`, `[n_src, n_heads, n_hidden]`, and `g_r`,
    `[n_dst, n_heads, n_hidden]`. It saves only its inputs, which are node-level.
    """

    @staticmethod
    def forward(ctx, g_l: torch.Tensor, g_r: torch.Tensor, attn: torch.Tensor,
                src: torch.Tensor, dst: torch.Tensor, negative_slope: float, chunk: int):
        n_edges = src.shape[0]
        e = g_l.new_empty(n_edges, g_l.shape[1])
        for start in range(0, n_edges, chunk):
            part = slice(start, start + chunk)
            # $\text{LeakyReLU}(g_{r,i} + g_{l,j})$ for the chunk's edges,
            # `[C, n_heads, n_hidden]`
            s = g_r.index_select(0, dst[part]).add_(g_l.index_select(0, src[part]))
            s = nn.functional.leaky_relu(s, negative_slope, inplace=True)
            # The dot product with each head's $a_k$, written into the chunk's rows of `e`
            e[part] = s.mul_(attn).sum(-1)
        ctx.save_for_backward(g_l, g_r, attn, src, dst)
        ctx.negative_slope = negative_slope
        ctx.chunk = chunk
        return e

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_e: torch.Tensor):
        r"""
        With $s = g_{r,i} + g_{l,j}$ recomputed per chunk and
        $\sigma'(s) \in \{1, \text{slope}\}$ the derivative of LeakyReLU:
        $$\frac{\partial \mathcal{L}}{\partial a_k} = \sum_{(j,i)}
            \frac{\partial \mathcal{L}}{\partial e_{ijk}} \, \text{LeakyReLU}(s_k) \qquad
          \frac{\partial \mathcal{L}}{\partial s_k} =
            \frac{\partial \mathcal{L}}{\partial e_{ijk}} \, a_k \odot \sigma'(s_k)$$
        and $\partial \mathcal{L} / \partial s$ is added into the rows of $j$ and of $i$.
        """
        g_l, g_r, attn, src, dst = ctx.saved_tensors
        slope = ctx.negative_slope
        grad_g_l = torch.zeros_like(g_l)
        grad_g_r = grad_g_l if g_r is g_l else torch.zeros_like(g_r)
        grad_attn = torch.zeros_like(attn)
        for start in range(0, src.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            s = g_r.index_select(0, dst[part]).add_(g_l.index_select(0, src[part]))
            grad_e_part = grad_e[part].unsqueeze(-1)
            # $\partial \mathcal{L} / \partial s$, `[C, n_heads, n_hidden]`, by
            # LeakyReLU's own backward kernel (1 where $s > 0$, the slope elsewhere)
            grad_s = torch.ops.aten.leaky_relu_backward(grad_e_part * attn, s, slope,
                                                        False)
            # `s` becomes LeakyReLU(s) in place, for the gradient of $a$
            s = nn.functional.leaky_relu(s, slope, inplace=True)
            grad_attn += s.mul_(grad_e_part).sum(0)
            grad_g_l.index_add_(0, src[part], grad_s)
            grad_g_r.index_add_(0, dst[part], grad_s)
        # When `g_r` is `g_l` (shared weights) both parts are already in one tensor, and
        # autograd adds what is returned for each input: return it once.
        if g_r is g_l:
            return grad_g_l, None, grad_attn, None, None, None, None
        return grad_g_l, grad_g_r, grad_attn, None, None, None, None


class LeanAttend(torch.autograd.Function):
    r"""
    ## Segment softmax, dropout and aggregation with $\alpha$ kept

    From the scores `e`, `[n_edges, n_heads]`, and the node-level `messages`
    $g_{k,j}$, `[n_src, n_heads, n_hidden]`, computes
    $$\alpha_{ijk} = \text{softmax}_j(e_{ijk}) \qquad
      h'_{ik} = \sum_{j \in \mathcal{N}_i} \tilde\alpha_{ijk} \, g_{k,j}$$
    with $\tilde\alpha$ the coefficients after dropout. Returns $h'$ and $\alpha$.
    """

    @staticmethod
    def forward(ctx, e: torch.Tensor, messages: torch.Tensor, src: torch.Tensor,
                dst: torch.Tensor, n_dst: int, keep: Optional[torch.Tensor], scale: float,
                chunk: int):
        # The segment softmax of the edge-list layers, without autograd
        alpha = segment_softmax_no_grad(e, dst, n_dst, chunk)

        # $h'_{ik}$: the chunk's messages are gathered, weighted by the coefficients after
        # dropout, and added into the rows of their targets
        out = messages.new_zeros(n_dst, *messages.shape[1:])
        for start in range(0, src.shape[0], chunk):
            part = slice(start, start + chunk)
            weighted = messages.index_select(0, src[part])
            weighted.mul_(dropped(alpha, keep, scale, part).unsqueeze(-1))
            out.index_add_(0, dst[part], weighted)

        # What the backward pass needs per edge: $\alpha$ and the mask, $K$ numbers each
        ctx.save_for_backward(alpha, keep, messages, src, dst)
        ctx.n_dst = n_dst
        ctx.scale = scale
        ctx.chunk = chunk
        ctx.set_materialize_grads(False)
        return out, alpha

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Optional[torch.Tensor],
                 grad_alpha: Optional[torch.Tensor]):
        r"""
        The gradient of the weights, per chunk,
        $\partial \mathcal{L} / \partial \tilde\alpha_{ijk} =
        \big(\partial \mathcal{L} / \partial h'_{ik}\big)^\top g_{k,j}$,
        goes back through the dropout to $\partial \mathcal{L} / \partial \alpha_{ijk}$,
        and through the softmax, which needs only $\alpha$:
        $$\frac{\partial \mathcal{L}}{\partial e_{ijk}} = \alpha_{ijk} \Big(
          \frac{\partial \mathcal{L}}{\partial \alpha_{ijk}}
          - \sum_{j' \in \mathcal{N}_i} \alpha_{ij'k}
            \frac{\partial \mathcal{L}}{\partial \alpha_{ij'k}} \Big)$$
        Besides the chunks, it makes one tensor of `[n_edges, n_heads]`, `grad`.
        """
        alpha, keep, messages, src, dst = ctx.saved_tensors
        n_edges, chunk, scale = src.shape[0], ctx.chunk, ctx.scale
        grad_messages = None
        # $\partial \mathcal{L} / \partial \alpha$: from the returned attention if used,
        grad = alpha.new_zeros(alpha.shape) if grad_alpha is None else grad_alpha.clone()
        if grad_out is not None:
            grad_messages = torch.zeros_like(messages)
            for start in range(0, n_edges, chunk):
                part = slice(start, start + chunk)
                # $\partial \mathcal{L} / \partial h'_i$ gathered to the chunk's edges
                grad_out_i = grad_out.index_select(0, dst[part])
                messages_j = messages.index_select(0, src[part])
                # and from the output, through the dropout
                grad_part = messages_j.mul_(grad_out_i).sum(-1)
                if keep is not None:
                    grad_part.mul_(keep[part]).mul_(scale)
                grad[part] += grad_part
                weights = dropped(alpha, keep, scale, part).unsqueeze(-1)
                grad_messages.index_add_(0, src[part], grad_out_i.mul_(weights))
        # Back through the softmax, per target and head: `grad` becomes
        # $\alpha \odot \partial \mathcal{L} / \partial \alpha$, then the scores' gradient
        grad.mul_(alpha)
        index = dst.unsqueeze(-1).expand(-1, alpha.shape[1])
        sums = grad.new_zeros(ctx.n_dst, alpha.shape[1]).scatter_add_(0, index, grad)
        for start in range(0, n_edges, chunk):
            part = slice(start, start + chunk)
            grad[part] -= alpha[part] * sums.index_select(0, dst[part])
        return grad, grad_messages, None, None, None, None, None, None


def dropped(alpha: torch.Tensor, keep: Optional[torch.Tensor], scale: float,
            part: slice) -> torch.Tensor:
    r"""$\tilde\alpha$ for a chunk of edges: the coefficients after dropout."""
    if keep is None:
        return alpha[part]
    return alpha[part] * keep[part] * scale


@torch.no_grad()
def segment_softmax_no_grad(e: torch.Tensor, target: torch.Tensor, n_targets: int,
                            chunk: int) -> torch.Tensor:
    """
    The [segment softmax](edges.html#segment-softmax) of the edge-list layers,
    $\alpha$, `[n_edges, n_heads]`, with the per-edge gathers of the maxima and the
    denominators made chunk by chunk: besides `e`, it makes only its result.
    """
    n_heads = e.shape[1]
    index = target.unsqueeze(-1).expand(-1, n_heads)
    e_max = e.new_full((n_targets, n_heads), -torch.inf)
    e_max.scatter_reduce_(0, index, e, 'amax')
    alpha = torch.empty_like(e)
    for start in range(0, e.shape[0], chunk):
        part = slice(start, start + chunk)
        torch.sub(e[part], e_max.index_select(0, target[part]), out=alpha[part]).exp_()
    denominator = alpha.new_zeros(n_targets, n_heads).scatter_add_(0, index, alpha)
    for start in range(0, e.shape[0], chunk):
        part = slice(start, start + chunk)
        alpha[part] /= denominator.index_select(0, target[part])
    return alpha


def check_chunk_size(chunk_size: Optional[int]) -> Optional[int]:
    """`chunk_size` must be `None` or a positive number of edges."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(
            f'chunk_size must be None or a positive integer, got {chunk_size!r}')
    return chunk_size


def auto_chunk_size(like: torch.Tensor, features: int) -> int:
    """
    ### The chunk size from the available memory

    The number of edges whose working set, `CHUNK_BUFFERS` tensors of `features` numbers
    per edge, fits in a sixteenth of the free memory of `like`'s device and in
    `MAX_CHUNK_BYTES`.
    """
    budget = min(available_bytes(like.device) // 16, MAX_CHUNK_BYTES)
    per_edge = CHUNK_BUFFERS * features * like.element_size()
    return max(1024, budget // per_edge)


def available_bytes(device: torch.device) -> int:
    """Free memory on `device`: the GPU's free memory, or the system's available RAM."""
    if device.type == 'cuda':
        return torch.cuda.mem_get_info(device)[0]
    return available_memory_bytes()
