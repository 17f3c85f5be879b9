r"""
What did the attention learn?
=============================

Train GATv2 (the `layer <../../labml_gat/gatv2.html>`_) on Cora with the `Cora experiment
<../cora.html>`_ (one seed, as in :doc:`plot_cora_training`), then look at the attention
coefficients :math:`\alpha_{ij}` of its first layer:

1. how *peaked* each head's attention is, measured by the entropy of every node's attention
   distribution, against the uniform attention that weights all neighbours alike
   (the comparison of DGL's GAT tutorial);
2. where one node puts its attention, drawn on its neighbourhood.

**What the plots show.** On Cora the learned attention is almost as flat as uniform attention:
in every head the entropies sit nearly on top of the uniform ones, and a node splits its attention
nearly evenly among its neighbours. DGL's tutorial finds the same for GAT on Cora, and takes it as
part of why GAT does about as well as GCN there: attention that barely tells neighbours apart adds
little. The graph suggests why there is little to tell apart: most of its edges join two papers of
the same class (the fraction is printed below), so most neighbours say much the same about a node.
Attention matters where neighbours differ in what they tell about a node, as in the
:doc:`DictionaryLookup task <plot_dictionary_lookup>`, where GATv2 must pick one neighbour per
query.
"""

# %%
# Train
# -----
#
# The experiment runs as a command, ``python experiments/cora.py``, with its labml run in a
# temporary folder. To keep the site's build short it trains for at most 200 epochs, whose test
# accuracy is printed below; :doc:`plot_cora_training` trains to the end.
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import torch
from matplotlib.lines import Line2D

from labml_gat.datasets import load_planetoid
from labml_gat.edges import EdgeGraphAttentionV2Layer
from labml_gat.model import TwoLayerGAT

data = load_planetoid('cora')
# sphinx-gallery and Jupyter run this file from its own folder, without `__file__`.
here = Path(__file__).resolve().parent if '__file__' in globals() else Path.cwd()
work = Path(tempfile.mkdtemp(prefix='cora_attention_'))
finished = subprocess.run(
    [sys.executable, str(here.parent / 'cora.py'),
     '--summary-json', str(work / 'summary.json'), '--quiet',
     '--logs', str(work / 'runs'), '--seed', '0', '--epochs', '200'],
    capture_output=True, text=True)
if finished.returncode != 0:
    raise RuntimeError(f'experiments/cora.py failed:\n{finished.stderr}')
summary = json.loads((work / 'summary.json').read_text())
settings, run = summary['settings'], summary['runs'][0]
print(f"{run['epochs']} epochs, test accuracy {100 * run['test_accuracy']:.1f} %")

# %%
# The attention of the first layer
# --------------------------------
#
# We rebuild the trained model from its settings and its checkpoint (loaded with
# ``weights_only=True``) and ask its first layer for the attention: one coefficient per edge and
# head, ``[n_edges, 8]``, on the edges with self loops, in evaluation mode (no dropout).
model = TwoLayerGAT(EdgeGraphAttentionV2Layer, data.num_features, data.num_classes,
                    settings['n_heads'], settings['n_hidden'], settings['dropout'],
                    share_weights=settings['share_weights'])
model.load_state_dict(torch.load(run['checkpoint'], weights_only=True))
model.eval()
shutil.rmtree(work)  # the run's files are read: nothing is left behind
edge_index = data.edge_index_with_self_loops()
with torch.no_grad():
    _, attention = model.layer1(data.x, edge_index, return_attention=True)
source, target = edge_index
print('attention:', tuple(attention.shape))
# The edges between two papers (self loops aside) whose papers share a class
between = source != target
same_class = (data.y[source[between]] == data.y[target[between]]).float().mean().item()
print(f'edges joining two papers of the same class: {100 * same_class:.0f} %')

# %%
# Entropy of the attention, head by head
# --------------------------------------
#
# For node :math:`i` with :math:`d_i` neighbours (itself included), the entropy of its attention
# is :math:`H_i = -\sum_j \alpha_{ij} \log \alpha_{ij}`. Uniform attention,
# :math:`\alpha_{ij} = 1/d_i`, has the largest possible entropy, :math:`\log d_i`.
# A head that had learned to prefer some neighbours would have its histogram well left of the
# uniform one; here the two nearly coincide.
n_nodes, n_heads = data.num_nodes, settings['n_heads']
ones = torch.ones_like(target, dtype=torch.float)
degree = torch.zeros(n_nodes).index_add_(0, target, ones)
terms = -attention * attention.clamp_min(1e-12).log()
entropy = torch.zeros(n_nodes, n_heads).index_add_(0, target, terms)
uniform = degree.log()

fig, axes = plt.subplots(2, 4, figsize=(7.8, 4.8), sharex=True, sharey=True,
                         layout='constrained')
bins = torch.linspace(0, float(uniform.max()), 30).numpy()
for head, ax in enumerate(axes.flat):
    ax.hist(uniform.numpy(), bins=bins, label='uniform attention', color='tab:grey',
            alpha=0.5)
    ax.hist(entropy[:, head].numpy(), bins=bins, label='learned attention',
            color='tab:blue', histtype='step', linewidth=1.8)
    ax.set_title(f'head {head}')
fig.supxlabel('entropy of a node (nats)')
for ax in axes[:, 0]:
    ax.set_ylabel('nodes')
handles, labels = axes[0, 0].get_legend_handles_labels()
fig.legend(handles, labels, loc='outside upper right', ncols=2, frameon=False)
fig.suptitle('Attention entropy of every node, first layer', x=0.02, ha='left')
mean_uniform = uniform.mean().item()
print(f'mean entropy, uniform attention: {mean_uniform:.3f} nats')
for head, value in enumerate(entropy.mean(dim=0).tolist()):
    print(f'mean entropy, head {head}: {value:.3f} nats '
          f'({100 * value / mean_uniform:.1f} % of uniform)')

# %%
# One node's neighbourhood
# ------------------------
#
# We pick a test node with several neighbours and draw its neighbourhood. An edge's width and
# colour are the attention the node gives that neighbour, averaged over the heads, and its label is
# that attention relative to uniform, :math:`d_i \, \alpha_{ij}`: 1 means "as much as uniform
# attention would give". Width and colour are on a fixed scale from 0 to 2 (further, if the
# attention goes further), not stretched over this node's range: attention near uniform looks
# alike. Node colours are the true classes, which the model never saw for this test node, nor for
# any neighbour outside the 140 training nodes: it classified the node from its own features and
# its neighbours', weighted by this attention.
test_nodes = data.test_mask.nonzero().squeeze(1)
node = int(test_nodes[degree[test_nodes].argsort(descending=True)[10]])
incoming = (target == node).nonzero().squeeze(1)
weights = attention[incoming].mean(dim=1)
d = len(incoming)
graph = nx.Graph()
graph.add_nodes_from([node] + source[incoming].tolist())
for edge, weight in zip(incoming.tolist(), weights.tolist()):
    if source[edge] != node:
        graph.add_edge(node, int(source[edge]), weight=weight)
self_weight = float(weights[source[incoming] == node].sum())

fig, ax = plt.subplots(figsize=(7.5, 6))
# The neighbours evenly on a circle around the node, in the order of the attention it gives
# them: no two edges, and no two labels, lie on one another
around = sorted(graph.neighbors(node), key=lambda n: graph.edges[node, n]['weight'])
layout = nx.shell_layout(graph, nlist=[[node], around])
edge_weights = [graph.edges[e]['weight'] for e in graph.edges]
relative = [d * w for w in edge_weights]
# One scale for any node: 0 to 2 times uniform, or to the largest value if it is larger
low, high = 0.0, max(2.0, *relative)
widths = [0.5 + 4 * r for r in relative]
classes = [int(data.y[n]) for n in graph.nodes]
nx.draw_networkx_nodes(graph, layout, node_color=classes, cmap='tab10', vmin=0, vmax=9,
                       node_size=[700 if n == node else 280 for n in graph.nodes],
                       edgecolors='black', linewidths=0.5, ax=ax)
nx.draw_networkx_edges(graph, layout, width=widths, edge_color=relative,
                       edge_cmap=plt.cm.viridis, edge_vmin=low, edge_vmax=high, ax=ax)
labels = {edge: f'{value:.2f}' for edge, value in zip(graph.edges, relative)}
nx.draw_networkx_edge_labels(graph, layout, edge_labels=labels, font_size=9, ax=ax)
nx.draw_networkx_labels(graph, layout, labels={node: str(node)}, font_color='white',
                        font_size=9, ax=ax)
scale = plt.cm.ScalarMappable(plt.Normalize(low, high), 'viridis')
colourbar = fig.colorbar(scale, ax=ax, shrink=0.7)
colourbar.set_label(r'attention relative to uniform, $d_i \, \alpha_{ij}$')
present = sorted(set(classes))
ax.legend(handles=[Line2D([], [], marker='o', linestyle='', markersize=9,
                          markerfacecolor=plt.cm.tab10(c / 9), markeredgecolor='black',
                          label=f'class {c}') for c in present],
          title='true class', loc='upper left', bbox_to_anchor=(0, -0.02),
          ncols=len(present), frameon=False, fontsize=9, title_fontsize=10)
ax.set_title(f'Node {node}: {d - 1} neighbours; attention to itself '
             f'{d * self_weight:.2f} x uniform', fontsize=10)
ax.margins(0.12)
ax.axis('off')
fig.tight_layout()
