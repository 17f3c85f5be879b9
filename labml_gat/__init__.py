"""
# labml_gat

Annotated Graph Attention Networks: the dense GATv2 layer of the tutorial (`labml_gat.gatv2`),
the original GAT layer (`labml_gat.gat`) to contrast static with dynamic attention,
their edge-list twins (`labml_gat.edges`) and the Planetoid loader (`labml_gat.datasets`).
The pages of the site are made by the package `sidebyside`, which knows nothing of this one.

Import what you need from its module; importing the package itself loads nothing else.
"""
