r"""
---
title: The two-layer GAT model for node classification
summary: >
  The model of the GAT paper's transductive experiments, built from any of the attention layers:
  dropout, K heads concatenated, an ELU, and one output head.
---

# The two-layer model

The [GAT paper](https://arxiv.org/abs/1710.10903) classifies the nodes of citation graphs with two
attention layers, and the [GATv2 paper](https://arxiv.org/abs/2105.14491) keeps that model and
swaps the layer. With features $x_i$ and the graph's neighbourhoods $\mathcal{N}_i$
(self loops included):

1. dropout on the input features, then the first layer with $K$ heads of $F'$ features each,
   concatenated to $K F'$ features, plus a bias, then an ELU:
   $$h_i = \text{ELU}\Big(\Big[\Big\Vert_{k=1}^{K} \sum_{j \in \mathcal{N}_i} \alpha^{(1)}_{ijk} W_k x_j\Big] + b^{(1)}\Big)$$
2. dropout again, then an output layer with one head that maps $h_i$ to a score per class:
   $$z_i = \sum_{j \in \mathcal{N}_i} \alpha^{(2)}_{ij} W h_j + b^{(2)}$$

The loss is the cross-entropy of $\text{softmax}(z_i)$ on the labelled nodes.
Dropout also drops attention coefficients $\alpha$ inside both layers.

The model takes the attention layer as an argument: the dense [GATv2](gatv2.html) or
[GAT](gat.html) layer, their [edge-list twins](edges.html), or the
[memory-lean ones](lean.html). All compute the same function with the same parameters,
so a `state_dict` moves between them.
"""

from typing import Sequence, Union

import torch
from torch import nn

from labml_gat.gatv2 import GraphAttentionV2Layer

# What a layer's `forward` takes besides the features: the adjacency `[n_nodes, n_nodes]` of a
# dense layer, or the `edge_index` `[2, n_edges]` of an edge-list layer
Graph = torch.Tensor


class TwoLayerGAT(nn.Module):
    """
    ## The model

    * `layer` is the class of the attention layers
    * `in_features` and `n_classes` are the sizes of the input features and of the output
    * `n_heads` and `n_hidden` are $K$ and $F'$ of the first layer
    * `dropout` is the probability of the dropout on the layers' inputs and attention
    * `share_weights` is GATv2's option $W_l = W_r$
    """

    def __init__(self, layer: type, in_features: int, n_classes: int, n_heads: int,
                 n_hidden: int, dropout: float, share_weights: bool = False):
        super().__init__()
        # `share_weights` exists for the GATv2 layers only
        options = {'share_weights': share_weights} if issubclass(
            layer, GraphAttentionV2Layer) else {}
        self.input_dropout = nn.Dropout(dropout)
        # First layer: $K$ heads of $F'$ features, concatenated
        self.layer1 = layer(in_features, n_heads * n_hidden, n_heads, is_concat=True,
                            dropout=dropout, bias=True, **options)
        self.activation = nn.ELU()
        self.dropout = nn.Dropout(dropout)
        # Output layer: one head whose features are the class scores
        self.output = layer(n_heads * n_hidden, n_classes, 1, is_concat=False,
                            dropout=dropout, bias=True, **options)

    def forward(self, x: torch.Tensor,
                graph: Union[Graph, Sequence[Graph]]) -> torch.Tensor:
        """
        * `x` is the node features `[n_nodes, in_features]`
        * `graph` is what the layer takes, self loops included, for both layers;
          or a pair, one graph per layer (a [receptive field](fast.html#receptive-fields))

        Returns the class scores (logits), `[n_nodes, n_classes]`.
        """
        graph1, graph2 = (graph, graph) if isinstance(graph, torch.Tensor) else graph
        # `[n_nodes, n_heads * n_hidden]`
        h = self.layer1(self.input_dropout(x), graph1)
        h = self.dropout(self.activation(h))
        # `[n_nodes, n_classes]`
        return self.output(h, graph2)
