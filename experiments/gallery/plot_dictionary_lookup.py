r"""
Why GATv2: DictionaryLookup
===========================

The `DictionaryLookup experiment <../dictionary_lookup.html>`_ reproduces the synthetic
task of the GATv2 paper, with the `GAT <../../labml_gat/gat.html>`_ and the `GATv2
<../../labml_gat/gatv2.html>`_ layers of this site. Each example is a complete bipartite
graph: :math:`k` query nodes, each with a key, and :math:`k` key-value nodes; query
:math:`i` must output the value stored under its own key, so it must attend to a
*different* key-value node than every other query.

One GAT head cannot: its attention is *static*, every query ranks the key-value nodes in
the same order. One GATv2 head can, because it scores the pair of nodes inside the
non-linearity.

The paper's Figure 3 shows training and test accuracy against :math:`k` for both layers
with one and eight heads. This example draws that figure twice: from a **reduced sweep**
that runs while the page is built (small :math:`k`, 32 features, a few epochs), and from
the **recorded sweep** of the full setting, read from
``experiments/results/dictionary_lookup_sweep.json`` with the command that produced it.
"""

# %%
# The reduced sweep
# -----------------
#
# The task, the model and the training loop are those of the experiment
# (:mod:`labml_gat.lookup`), with its training rule; only the sizes are smaller: 32
# features, at most 3000 examples, epochs of 2000 graphs and at most 6 of them.
import time

import matplotlib.pyplot as plt
import torch

from labml_gat import results
from labml_gat.lookup import make_task, train

torch.set_num_threads(1)
# Figures at twice the screen resolution
plt.rcParams['savefig.dpi'] = 2 * plt.rcParams['figure.dpi']

MODELS = [('gatv2', 1), ('gat', 1), ('gatv2', 8), ('gat', 8)]
REDUCED = dict(d_model=32, epoch_size=2000, epochs=6, max_examples=3000, seed=0)
REDUCED_KS = (4, 6, 8)

start = time.perf_counter()
reduced, models = [], {}
for k in REDUCED_KS:
    for layer, n_heads in MODELS:
        result = train(k, layer, n_heads, **REDUCED)
        models[k, layer, n_heads] = result['model']
        reduced.append({key: result[key] for key in
                        ('k', 'layer', 'n_heads', 'train_accuracy', 'test_accuracy')})
    print(f"k = {k}: {result['n_train']} training and {result['n_test']} test graphs")
print(f'reduced sweep: {len(reduced)} models in {time.perf_counter() - start:.0f} s')

# %%
# The recorded sweep
# ------------------
#
# The full setting (128 features, up to 32000 examples), as recorded by
# ``python experiments/dictionary_lookup.py --sweep``; the record says with which flags,
# when, on which machine, and how long each model trained.
record = results.load('dictionary_lookup_sweep')
recorded = record['values']['runs']
print(record['command'])
print(f"{record['date']}, {record['machine']['cpu']}, torch {record['versions']['torch']}")
print(f"{record['values']['total_seconds'] / 60:.0f} min for the whole sweep")

# %%
# Accuracy against k
# ------------------
#
# As in the paper's figure: training accuracy on the left, test accuracy on the right,
# one line per layer and head count, first for the recorded sweep, then (below) for the
# reduced one. Every figure opens at full size with a click.
#
# In the recorded sweep, one GAT head stays far from fitting the training graphs once there
# is more than one training graph to fit. One GATv2 head fits them at every :math:`k`, and
# once there are thousands of them it answers the test graphs too, whose key-value
# combinations it has never seen. Eight GAT heads get further than one, and beyond k = 2
# stay behind GATv2 on the test graphs. The reduced sweep has only a few test graphs at its
# smallest :math:`k` (printed above): there one model's test accuracy moves by many points
# with the seed, and need not follow the recorded order.

# Colour, marker and marker size; GAT first and larger, so that where the lines meet at
# 100 % every marker still shows around the next one
STYLE = {('gat', 8): ('tab:orange', 's', 11), ('gat', 1): ('tab:red', 'o', 9),
         ('gatv2', 8): ('tab:blue', 's', 7), ('gatv2', 1): ('tab:green', 'o', 5)}


def plot_sweep(runs, title):
    """Training and test accuracy against k, one line per model."""
    fig, axes = plt.subplots(1, 2, figsize=(7.8, 3.8), sharey=True, layout='constrained')
    for ax, split in zip(axes, ('train', 'test')):
        for (layer, n_heads), (colour, marker, size) in STYLE.items():
            mine = sorted((r for r in runs if (r['layer'], r['n_heads']) == (layer, n_heads)),
                          key=lambda r: r['k'])
            ax.plot([r['k'] for r in mine], [100 * r[f'{split}_accuracy'] for r in mine],
                    color=colour, marker=marker, markersize=size,
                    linestyle='-' if n_heads == 1 else '--',
                    label=results.model_name(layer, n_heads))
        ax.set_xticks(sorted({r['k'] for r in runs}))
        ax.set_xlabel('k (number of keys)')
        ax.set_title(f'{split} accuracy')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('accuracy (%)')
    axes[0].set_ylim(0, 102)
    fig.legend(*axes[0].get_legend_handles_labels(), loc='outside lower center', ncol=2)
    fig.suptitle(title)
    plt.show()


# sphinx_gallery_thumbnail_number = 1
plot_sweep(recorded, 'DictionaryLookup (GATv2 paper, Figure 3), recorded')

# %%
# The reduced sweep of this page, drawn the same way.
plot_sweep(reduced, 'DictionaryLookup, reduced sweep run for this page')

# %%
# The recorded numbers
# --------------------
#
# Every model of the recorded sweep: accuracy of the weights selected on training
# accuracy, the epochs trained and why training stopped (``fitted``: 100 % training
# accuracy; ``patience``: no progress for 10 epochs; ``epochs``: the epoch budget ran
# out, so the model might have gone further), and how many training and test graphs the
# task of that :math:`k` has.
#
# **At k = 2 the numbers mean little.** There are 2! = 2 graphs, and the task allows
# :math:`\lfloor 0.8^{1/2} \cdot 4 \rfloor = 3` of the 4 (key, value) pairs, so exactly
# one of the two graphs has all its pairs allowed: **one training graph and one test
# graph**. The test graph is the other permutation, which gives each query the value the
# training graph gave the other query. A model that answers each query from its own key,
# without looking anything up, fits the one training graph (100 %) and gets every test
# answer wrong (0 %): both models with eight heads did just that. One GAT head cannot fit
# even the training graph, since both queries rank the two key-value nodes alike (50 %).
print(f"{'k':>3} {'layer':>6} {'heads':>5} {'graphs':>11} {'train':>8} {'test':>8} "
      f"{'epochs':>6} {'stopped':>9} {'minutes':>7}")
for r in recorded:
    graphs = f"{r['n_train']}/{r['n_test']}"
    print(f"{r['k']:>3} {r['layer']:>6} {r['n_heads']:>5} {graphs:>11} "
          f"{100 * r['train_accuracy']:>7.2f}% "
          f"{100 * r['test_accuracy']:>7.2f}% {r['epochs']:>6} {r['stopped_by']:>9} "
          f"{r['seconds'] / 60:>7.1f}")

# %%
# Training curves at the two largest recorded k
# ---------------------------------------------
#
# Per epoch, from the record. GATv2 fits within a few epochs, on the training and the
# test graphs together: what it learns is the lookup itself. One GAT head stays at
# chance. Eight GAT heads climb on the training graphs for much longer. At the smaller
# :math:`k` their test accuracy levels off far below their training accuracy: they learn
# the training combinations. At the larger, both still rise together when the epochs run
# out, the test accuracy a few points behind.
ks = sorted({r['k'] for r in recorded})[-2:]
fig, axes = plt.subplots(2, 2, figsize=(7.8, 6.4), sharex=True, sharey=True,
                         layout='constrained')
for row, k in zip(axes, ks):
    for ax, split in zip(row, ('train', 'test')):
        for r in recorded:
            if r['k'] == k:
                colour, marker, _ = STYLE[r['layer'], r['n_heads']]
                epochs = range(1, len(r['history'][split]) + 1)
                ax.plot(epochs, [100 * a for a in r['history'][split]], color=colour,
                        marker=marker, markersize=3,
                        label=results.model_name(r['layer'], r['n_heads']))
        ax.axhline(100 / k, color='grey', linestyle=':', linewidth=1, label='chance')
        ax.set_title(f'{split} accuracy, k = {k} (recorded)')
        ax.grid(alpha=0.3)
    row[0].set_ylabel('accuracy (%)')
for ax in axes[1]:
    ax.set_xlabel('epoch')
fig.legend(*axes[0, 0].get_legend_handles_labels(), loc='outside lower center', ncol=3)
plt.show()

# %%
# Where does each query look?
# ---------------------------
#
# The paper's Figure 1, from the reduced sweep's models at the largest :math:`k`: for one
# test graph, the attention :math:`\alpha_{ij}` of every query :math:`q_i` (a row) over
# the key-value nodes :math:`s_j` (the columns, ordered by key). The right key is the
# diagonal. With one GAT head every row peaks in the **same** column; GATv2 finds the
# diagonal. Each panel has its own colour scale.
k = REDUCED_KS[-1]
perms = make_task(k, seed=REDUCED['seed'], max_examples=REDUCED['max_examples']).test[:1]
fig, axes = plt.subplots(1, 2, figsize=(7.8, 3.6), layout='constrained')
for ax, layer in zip(axes, ('gat', 'gatv2')):
    model = models[k, layer, 1]
    with torch.no_grad():
        _, attention = model(perms, return_attention=True)
    alpha = attention[0, :, :, 0]
    image = ax.imshow(alpha, cmap='viridis', vmin=0)
    fig.colorbar(image, ax=ax, label=r'attention $\alpha_{ij}$')
    ax.set_title(results.model_name(layer, 1))
    ax.set_xlabel('key of the key-value node $j$')
    ax.set_ylabel('key of the query $i$')
    print(f'{layer:>6}: the most attended key of each query: '
          f'{alpha.argmax(dim=1).tolist()}')
plt.show()

# %%
# Which layer when
# ----------------
#
# One GATv2 layer, forward and backward, measured by
# ``python experiments/dictionary_lookup.py --which-layer`` (processor time, one thread)
# four ways: the dense layer mapped over a batch of graphs, the dense layer on their
# union as one block-diagonal graph, the edge-list layer on the union, and the
# memory-lean edge-list layer on the union; and for each, the memory autograd keeps for
# the backward pass. Read from the record:
#
# * complete graphs (density 1) of a few dozen to a few hundred nodes go to the dense
#   layer: batched when there are many graphs, on its grid when there is one;
# * sparse graphs go to an edge list, small or large;
# * the union of many small graphs as one dense graph is never the right choice: its grid
#   grows with the square of all the nodes together;
# * the lean edge list keeps the least for the backward pass on every graph, and from
#   about a hundred thousand edges on, sparse or complete, it is also the fastest: the
#   layer for large graphs.
layers_record = results.load('dictionary_lookup_layers')
print(layers_record['command'])
print(f"{layers_record['date']}, {layers_record['machine']['cpu']}, "
      f"torch {layers_record['versions']['torch']}")
print(layers_record['values']['unit'])
WAYS = {'dense_batched': ('dense, batched', 'tab:blue', 's'),
        'dense_single': ('dense, one graph', 'tab:purple', 'D'),
        'edges': ('edge list', 'tab:orange', 'o'),
        'lean': ('lean edge list', 'tab:green', '^')}
rows = layers_record['values']['rows']
labels = [f"{r['n_graphs']} × {r['n_nodes']:,} nodes, density {r['density']:.2g}"
          for r in rows]
fig, axes = plt.subplots(1, 2, figsize=(7.8, 0.3 * len(rows) + 2.0), sharey=True,
                         layout='constrained')
for ax, key, scale, unit in ((axes[0], 'seconds', 1000, 'ms of processor time'),
                             (axes[1], 'saved_bytes', 2 ** -20, 'MiB kept for backward')):
    for way, (name, colour, marker) in WAYS.items():
        points = [(r[key][way] * scale, y) for y, r in enumerate(rows) if way in r[key]]
        ax.scatter(*zip(*points), color=colour, marker=marker, label=name, zorder=3)
    ax.set_xscale('log')
    ax.set_xlabel(unit)
    ax.grid(alpha=0.3)
axes[0].set_yticks(range(len(rows)), labels)
axes[0].invert_yaxis()
axes[0].set_title('time, forward and backward')
axes[1].set_title('memory')
fig.legend(*axes[0].get_legend_handles_labels(), loc='outside lower center', ncol=2)
plt.show()

# %%
# The same record as two tables, milliseconds of processor time and MiB kept for the
# backward pass, with the best way for each graph: ``batched`` and ``one graph`` are the
# dense layer's two ways, ``edges`` and ``lean`` the two edge lists.
SHORT = {'dense_batched': 'batched', 'dense_single': 'one graph', 'edges': 'edges',
         'lean': 'lean'}
for key, scale, title, best in (
        ('seconds', 1000, 'ms of processor time, forward and backward', 'fastest'),
        ('saved_bytes', 2 ** -20, 'MiB kept for the backward pass', 'leanest')):
    print(f"\n{title}\n{'graphs':>6} {'nodes':>7} {'density':>7} {'edges':>8}" +
          ''.join(f'{SHORT[way]:>11}' for way in WAYS) + f'  {best}')
    for row in rows:
        cells = [f'{row[key][way] * scale:.2f}' if way in row[key] else '-' for way in WAYS]
        print(f"{row['n_graphs']:>6} {row['n_nodes']:>7} {row['density']:>7.2g} "
              f"{row['n_edges']:>8}" + ''.join(f'{cell:>11}' for cell in cells) +
              f"  {SHORT[row[best]]}")
