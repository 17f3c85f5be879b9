r"""
What did the attention learn?
=============================

Train GATv2 on Cora (one seed, as in :doc:`plot_cora_training`), then look at the attention
coefficients :math:`\alpha_{ij}` of its first layer:

1. how *peaked* each head's attention is, measured by the entropy of every node's attention
   distribution, against the uniform attention that would weight all neighbours alike
   (the comparison of DGL's GAT tutorial);
2. where one node puts its attention, drawn on its neighbourhood.
"""

# %%
# Train
# -----
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import networkx as nx
import torch

from labml_gat.datasets import load_planetoid

# `cora.py` is one folder up. sphinx-gallery and Jupyter run this file from its own folder,
# without `__file__`.
here = Path(__file__).parent if '__file__' in globals() else Path.cwd()
sys.path.insert(0, str(here.resolve().parent))
import cora  # noqa: E402  (experiments/cora.py)

data = load_planetoid('cora')
config = cora.Config(seed=0, writers={'file'})
summary = cora.run(config)
print(f"test accuracy {100 * summary['runs'][0]['test_accuracy']:.1f} %")

# %%
# The attention of the first layer
# --------------------------------
#
# We rebuild the trained model from its checkpoint (loaded with ``weights_only=True``) and ask
# its first layer for the attention: one coefficient per edge and head, ``[n_edges, 8]``,
# on the edges with self loops, in evaluation mode (no dropout).
model = cora.GAT(cora.LAYERS['gatv2', 'edges'], data.num_features, data.num_classes,
                 config.n_heads, config.n_hidden, config.dropout)
model.load_state_dict(torch.load(summary['runs'][0]['checkpoint'], weights_only=True))
model.eval()
x, edge_index = cora.prepare_inputs(data, 'edges', config.n_heads, config.n_hidden, torch.device('cpu'))
with torch.no_grad():
    _, attention = model.layer1(x, edge_index, return_attention=True)
source, target = edge_index
print('attention:', tuple(attention.shape))

# %%
# Entropy of the attention, head by head
# --------------------------------------
#
# For node :math:`i` with :math:`d_i` neighbours (itself included), the entropy of its attention is
# :math:`H_i = -\sum_j \alpha_{ij} \log \alpha_{ij}`. Uniform attention, :math:`\alpha_{ij} = 1/d_i`,
# has the largest possible entropy, :math:`\log d_i`. A histogram that sits left of the uniform one
# means the head has learned to prefer some neighbours.
n_nodes = data.num_nodes
degree = torch.zeros(n_nodes).index_add_(0, target, torch.ones_like(target, dtype=torch.float))
terms = -attention * attention.clamp_min(1e-12).log()
entropy = torch.zeros(n_nodes, config.n_heads).index_add_(0, target, terms)
uniform = degree.log()

fig, axes = plt.subplots(2, 4, figsize=(12, 5), sharex=True, sharey=True)
bins = torch.linspace(0, float(uniform.max()), 30)
for head, ax in enumerate(axes.flat):
    ax.hist(uniform.numpy(), bins=bins.numpy(), alpha=0.5, label='uniform', color='tab:grey')
    ax.hist(entropy[:, head].numpy(), bins=bins.numpy(), alpha=0.6, label='learned', color='tab:blue')
    ax.set_title(f'head {head}')
for ax in axes[1]:
    ax.set_xlabel('entropy (nats)')
axes[0, 0].legend()
fig.suptitle('Attention entropy of every node, first layer')
fig.tight_layout()
print('mean entropy per head:', [round(v, 3) for v in entropy.mean(dim=0).tolist()],
      f'(uniform: {uniform.mean().item():.3f})')

# %%
# One node's neighbourhood
# ------------------------
#
# We pick a test node with several neighbours and draw its neighbourhood: edge width and colour are
# the attention the node gives each neighbour, averaged over the heads; node colour is the true class.
# The node's own label is hidden from training, so this is what the model used to classify it.
test_nodes = data.test_mask.nonzero().squeeze(1)
node = int(test_nodes[degree[test_nodes].argsort(descending=True)[10]])
incoming = (target == node).nonzero().squeeze(1)
weights = attention[incoming].mean(dim=1)
graph = nx.Graph()
graph.add_nodes_from([node] + source[incoming].tolist())
for edge, weight in zip(incoming.tolist(), weights.tolist()):
    if source[edge] != node:
        graph.add_edge(node, int(source[edge]), weight=weight)
self_weight = float(weights[source[incoming] == node].sum())

fig, ax = plt.subplots(figsize=(6, 6))
layout = nx.spring_layout(graph, seed=1)
edge_weights = [graph.edges[e]['weight'] for e in graph.edges]
nx.draw_networkx_nodes(graph, layout, node_color=[int(data.y[n]) for n in graph.nodes], cmap='tab10',
                       vmin=0, vmax=9, node_size=[600 if n == node else 250 for n in graph.nodes], ax=ax)
drawn = nx.draw_networkx_edges(graph, layout, width=[1 + 12 * w for w in edge_weights], edge_color=edge_weights,
                               edge_cmap=plt.cm.viridis, ax=ax)
nx.draw_networkx_labels(graph, layout, labels={node: str(node)}, font_color='white', ax=ax)
fig.colorbar(drawn, ax=ax, label='attention (mean over heads)', shrink=0.7)
ax.set_title(f'Node {node}: {len(incoming) - 1} neighbours, attention to itself {self_weight:.2f}')
ax.axis('off')
fig.tight_layout()
