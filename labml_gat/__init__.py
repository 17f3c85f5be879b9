"""
# labml_gat

Annotated Graph Attention Networks. The tutorial: the dense GATv2 layer (`labml_gat.gatv2`),
the original GAT layer (`labml_gat.gat`) to contrast static with dynamic attention, their
edge-list twins (`labml_gat.edges`), the memory-lean edge-list layers (`labml_gat.lean`) on
the chunked core of the drop-in `GATv2Conv` for PyG code (`labml_gat.gatv2_conv`, one file),
and the two-layer model of the GAT paper (`labml_gat.model`). Around it: the Planetoid loader
(`datasets`), the speed-ups (`fast`), neighbour sampling (`sampling`), many processes and
machines with torchrun (`distributed`), the DictionaryLookup task of the GATv2 paper (`lookup`),
many seeds side by side (`seeds`), the experiments' settings and training helpers (`settings`,
`training`), labml runs read offline (`runs`), the benchmark's machinery (`benchmarking`) and
the recorded results (`results`).
The pages of the site are made by the package `sidebyside`, which knows nothing of this one.

Import what you need from its module; importing the package itself loads nothing else.
"""
