r"""
What the layers cost
====================

The `benchmark script <../benchmark.html>`_ trains the same two-layer GATv2 (the Cora model: 8 heads of
8 features, then one output head) with four implementations of the layer:

* ``edges``: the `edge-list layer <../../labml_gat/edges.html>`_, which visits only the edges;
* ``dense``: the tutorial's `dense layer <../../labml_gat/gatv2.html>`_, which builds all :math:`N^2`
  pairs of nodes;
* ``labml_nn``: labml_nn's dense formulation of the same layer, as a peer of ours;
* ``pyg``: PyG's ``GATv2Conv`` in PyG's own example model (when ``torch_geometric`` is installed).

For each it measures the time of a training step, the time of an evaluation forward and the peak
memory, every configuration in a fresh process. This page runs it on small graphs, in less than a
minute; the results of the full-size run on the same 2-core CPU are at the end.
"""

# %%
# Run the benchmark on small graphs
# ---------------------------------
#
# On Cora, the edge-list model and PyG's model alternate in one process, and the ratios compare
# steps taken a few milliseconds apart. Then come random graphs of growing size with about five edges
# per node: up to 400 nodes for the dense layers, whose cost grows as :math:`N^2`, and up to
# 10000 nodes for the edge-list layers. Everything runs on one thread: on a busy machine, threads that
# wait for each other can make the times many times longer, and one thread keeps them comparable.
import os
import sys
from pathlib import Path

# `benchmark.py` is one folder up. sphinx-gallery and Jupyter run this file from its own folder,
# without `__file__`.
here = Path(__file__).parent if '__file__' in globals() else Path.cwd()
sys.path.insert(0, str(here.resolve().parent))
import benchmark  # noqa: E402  (experiments/benchmark.py)

argv = ['--quick', '--threads', '1', '--rounds', '10', '--sizes', '1000,10000', '--dense-sizes', '100,200,400']
if not os.environ.get('LABML_GAT_DATA'):
    # Without the Planetoid files there is no Cora row (and nothing is downloaded).
    argv.append('--no-cora')
results = benchmark.run(benchmark.parse_args(argv), show_progress=False)
print(benchmark.format_report(results))

# %%
# Cost against the size of the graph
# ----------------------------------
#
# On log-log axes a cost that grows as :math:`N^s` is a line of slope :math:`s`.
# The dense layers' lines rise with slope 2; the edge-list layers' with slope 1 once the graph is
# large enough for the fixed cost of each operation not to matter.
# At these sizes memory is still close to the resolution of the measurement, and the curves bend.
fig = benchmark.plot(results)

# %%
# Full-size results
# -----------------
#
# The numbers below come from one full-size run on the same 2-core CPU, one thread, with the load
# average of the machine at about 1 (one other busy process):
#
# .. code-block:: bash
#
#     python experiments/benchmark.py --threads 1 --scale --json bench.json --plot bench.png
#
# **Cora** (2708 nodes, 13264 edges with the self loops). The edge-list model takes 28% of PyG's
# time per training step and 38% of its time per evaluation forward. Half of PyG's step is the dropout
# mask it draws over the dense :math:`2708 \times 1433` feature matrix; the Cora experiment draws it only for
# the 1.3% of the features that are not zero, which is the same dropout. Without its input dropout,
# PyG's step still takes 1.7 times as long as ours.
#
# .. code-block:: text
#
#     Cora, one process, alternating, 40 rounds, 1 thread
#     impl                     step ms   eval ms        vs    step    eval
#     edges                       27.0       7.5       pyg   0.28x   0.38x
#     pyg                         97.3      19.9                 -       -
#     pyg_no_input_dropout        45.8      19.3       pyg   0.48x   0.96x
#
# With PyTorch's default of two threads, at the same load
# (``python experiments/benchmark.py --quick --no-synthetic --rounds 40``), the edge-list model takes
# 19.4 ms per step and 5.0 ms per evaluation against PyG's 76.5 ms and 11.3 ms: 0.25x and 0.45x.
#
# **The dense layers.** Ours needs less time and about two thirds of the memory of labml_nn's
# formulation of the same layer:
#
# .. code-block:: text
#
#     random graph, 1000 nodes, one process, alternating, 10 rounds
#     impl                     step ms   eval ms        vs    step    eval
#     dense                      1,094     507.4  labml_nn   0.92x   0.86x
#     labml_nn                   1,183     591.9                 -       -
#
#     Cora, one process per configuration
#     impl          step ms   eval ms   train MB   eval MB
#     dense          14,144     6,151      5,751     5,404
#     labml_nn       18,200     9,395      8,472     7,434
#
# A training step of the dense model peaks at 773 bytes per pair of nodes (at :math:`N = 3000`):
# three float32 tensors of :math:`N^2 K F'` numbers, :math:`K F' = 64` for the first layer.
#
# **Against the size of the graph** (random graphs with 5 edges per node and a self loop):
#
# .. code-block:: text
#
#     impl            nodes       edges   step ms   eval ms   train MB
#     dense           1,000       5,982     1,154     547.9      1,072
#     dense           3,000      17,989    17,405     9,184      6,633
#     labml_nn        1,000       5,982     1,225     609.7      1,283
#     labml_nn        3,000      17,989    25,897    13,436      9,955
#     edges         300,000   1,799,977     5,975     2,048      2,813
#     pyg           300,000   1,799,977     7,307     3,007      3,320
#
#     slope against N    time  memory   fitted over N =
#     edges              1.08    0.86   30,000, 100,000, 300,000
#     dense              2.44    1.65   1,000, 2,000, 3,000
#     labml_nn           2.73    1.86   1,000, 2,000, 3,000
#     pyg                1.07    0.86   30,000, 100,000, 300,000
#
# The dense layers' time grows a little faster than :math:`N^2`: every step maps gigabytes of fresh
# memory, and the kernel's work for that grows with it. The memory slopes are below 2 and 1 because
# glibc keeps the small buffers of the smaller graphs in its heap, while it returns every buffer above
# 32 MB to the system as soon as it is freed.
#
# **A million nodes.** The edge-list model trains full-batch on a random graph of :math:`10^6` nodes and
# :math:`10^7` edges (9 random edges per node and a self loop) in 15.4 GB (14.3 GiB) above the 1.1 GB
# of data and model, at 47 s per step on one thread (19 s per evaluation forward).
# Each step takes 8.3 million page faults: glibc hands every large tensor back to the system when it is
# freed, and the next step's tensors are fresh memory again; more than half of the step is the kernel
# mapping and zeroing them. The layer does not need malloc tuning, and at this size it cannot use it:
# making glibc keep that memory (``MALLOC_MMAP_MAX_=0``, ``MALLOC_TRIM_THRESHOLD_``), which makes PyG's
# step 1.8 times faster at 1.6 times the memory, grows our heap past the machine's 24 GB.
# PyTorch's own transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``) cut the step to 0.59-0.74 times
# at the same memory. The `benchmark page <../benchmark.html>`_ has the table of every allocator.
#
# (In these tables MB means :math:`2^{20}` bytes.)
