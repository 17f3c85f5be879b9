"""
# labml_gat

Annotated Graph Attention Networks: the dense GATv2 layer of the tutorial (`labml_gat.gatv2`),
the original GAT layer (`labml_gat.gat`) to contrast static with dynamic attention,
their edge-list twins (`labml_gat.edges`), the Planetoid loader (`labml_gat.datasets`)
and the side-by-side page renderer (`labml_gat.annotate`).

Import what you need from its module; importing the package itself loads nothing else,
so that the page renderer works without PyTorch.
"""
