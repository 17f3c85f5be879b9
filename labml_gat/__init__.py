"""
# labml_gat

Annotated Graph Attention Networks: the dense GATv2 layer of the tutorial ([`gatv2.py`](gatv2.html)),
the original GAT layer ([`gat.py`](gat.html)) to contrast static with dynamic attention,
and the tools around them.
"""

from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer

__all__ = ['GraphAttentionLayer', 'GraphAttentionV2Layer']
