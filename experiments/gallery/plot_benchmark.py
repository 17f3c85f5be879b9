r"""
What the layers cost
====================

The `benchmark appendix <../benchmark.html>`_ compares our `edge-list
<../../labml_gat/edges.html>`_ and `memory-lean <../../labml_gat/lean.html>`_ GATv2 layers
with PyG's ``GATv2Conv``, given the same dense features and the same ``edge_index``:
time per training step and per evaluation forward (alternating in one process, ratios taken
within each round, CPU time) and peak memory above data and model (each implementation in
its own process).

This page first shows the **recorded results**: the figures in
``experiments/results/benchmark_<figure>.json``, each with the command that measured it, the
date, the machine and the versions. Nothing here is typed by hand. Then it runs a **tiny live
measurement**, small enough for the site build, which only shows that the machinery works:
at that size fixed costs dominate and its ratios say little about large graphs.
"""

# %%
# Recorded results
# ----------------
#
# Each figure's rows, read from its record: ``step`` is the median time of a training step
# (CPU time with one CPU thread, else the wall clock), ``peak`` the high-water mark of memory
# during a step above the data and the model, each ``/PyG`` the median ratio to PyG's layer
# in the same rounds (``eval``: a forward pass without gradients). A failed measurement
# shows its error, for example for lack of memory. The evaluation times, the page faults
# and each record's command and versions are in the tables of the `performance section
# <../../usage.html#performance>`_.
from labml_gat import benchmarking, results

records = results.load_figures()
print(f"{'figure':29} {'impl':6} {'step':>9} {'step/PyG':>8} {'eval/PyG':>8} "
      f"{'peak':>9} {'peak/PyG':>8}")
for record in records:
    step = f'step{results.figure_clock(record)}_ms'
    for impl, row in record.get('impls', {}).items():
        if step not in row:
            cells = results.short_error(row['error'])
        else:
            cells = (f"{results.ms(row[step]):>9} {results.ratio(row.get('step_ratio')):>8} "
                     f"{results.ratio(row.get('eval_ratio')):>8} "
                     f"{results.gib(row.get('peak_train_bytes')):>9} "
                     f"{results.ratio(row.get('peak_ratio')):>8}")
        print(f"{record['figure']:29} {impl:6} {cells}".rstrip())
    if 'error' in record:
        print(f"{record['figure']:29} {results.short_error(record['error'])}")

# %%
# Where and when each figure was measured: the machines differ, and so do the ratios.
for record in records:
    machine = record['machine']
    device = f", {machine['gpu']}" if record.get('device') == 'cuda' else \
        f", {results.number_of(record['threads'], 'thread')}"
    print(f"{record['figure']:29} {record['date']}, {machine['cpu']}{device}")

# %%
# The ratios to PyG as bars: left of the line is better than PyG.
import matplotlib.pyplot as plt  # noqa: E402

plt.rcParams['figure.dpi'] = 200
fig = benchmarking.plot([r for r in records if 'impls' in r],
                        title='Recorded: time and memory relative to PyG (lower is better)')

# %%
# A tiny live measurement
# -----------------------
#
# One layer on a random graph of 1,000 nodes, three alternating rounds in this process,
# one thread. It is **measured while this page is built**, on whatever machine builds it.
import importlib.util  # noqa: E402

impls = ['edges', 'lean'] + (['pyg'] if importlib.util.find_spec('torch_geometric') else [])
live = benchmarking.run_task(dict(mode='alternate', level='layer', graph='random',
                                  n_nodes=1000, degree=10.0, in_features=128, n_heads=8,
                                  n_hidden=8, threads=1, rounds=3, warmup=1, impls=impls))
for impl, row in live['impls'].items():
    ratios = (f", {row['step_ratio']:.2f}x / {row['eval_ratio']:.2f}x PyG"
              if 'step_ratio' in row else '')
    print(f"live, {impl:6}: step {row['step_cpu_ms']:.1f} ms, eval {row['eval_cpu_ms']:.1f} ms"
          + ratios)
