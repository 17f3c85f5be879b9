r"""
Train GATv2 on Cora
===================

This example runs the `Cora experiment <../cora.html>`_ for one seed: the two-layer GATv2 of the
GAT paper (8 heads of 8 features, then one output head), trained full-batch with early stopping on
the validation set, using the edge-list layer. It then plots the training curves and compares the
test accuracy with the published numbers.

It runs on the real Planetoid files, found through the ``LABML_GAT_DATA`` environment variable.
"""

# %%
# Load Cora
# ---------
#
# 2708 papers with 1433-word bag-of-words features, 7 topics, and the public split
# of 140 training, 500 validation and 1000 test nodes.
import sys
from pathlib import Path

import matplotlib.pyplot as plt

from labml_gat.datasets import load_planetoid

# `cora.py` is one folder up. sphinx-gallery and Jupyter run this file from its own folder,
# without `__file__`.
here = Path(__file__).parent if '__file__' in globals() else Path.cwd()
sys.path.insert(0, str(here.resolve().parent))
import cora  # noqa: E402  (experiments/cora.py)

data = load_planetoid('cora')
print(f'{data.num_nodes} nodes, {data.num_features} features, {data.num_classes} classes, '
      f'{data.edge_index.shape[1]} directed edges')
print(f'train/val/test: {int(data.train_mask.sum())}/{int(data.val_mask.sum())}/{int(data.test_mask.sum())}')

# %%
# Train one seed
# --------------
#
# The defaults of :class:`cora.Config` are the GAT paper's: Adam with learning rate 0.005 and
# weight decay :math:`5 \cdot 10^{-4}`, dropout 0.6, and early stopping with patience 100 on
# validation loss and accuracy. The run is tracked with labml in ``logs/cora_gatv2/``.
config = cora.Config(seed=0, writers={'file'})
summary = cora.run(config)
result = summary['runs'][0]
print(f"stopped after {result['epochs']} epochs; best epoch {result['best_epoch']}; "
      f"{result['seconds']:.1f} s of training")
print(f"validation accuracy {100 * result['val_accuracy']:.1f} %, "
      f"test accuracy {100 * result['test_accuracy']:.1f} %")

# %%
# Training curves
# ---------------
#
# Dropout makes the training loss noisy and higher than the validation loss: at evaluation
# every input and every attention coefficient is kept. The dashed line is the epoch whose
# weights were kept.
history = result['history']
epochs = range(len(history))
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
for split, colour in (('train', 'tab:blue'), ('valid', 'tab:orange')):
    ax_loss.plot(epochs, [h[f'loss.{split}'] for h in history], label=split, color=colour)
    ax_acc.plot(epochs, [100 * h[f'accuracy.{split}'] for h in history], label=split, color=colour)
for ax, name in ((ax_loss, 'cross-entropy loss'), (ax_acc, 'accuracy (%)')):
    ax.axvline(result['best_epoch'], color='grey', linestyle='--', linewidth=1)
    ax.set_xlabel('epoch')
    ax.set_ylabel(name)
    ax.legend()
ax_acc.axhline(100 * result['test_accuracy'], color='tab:green', linestyle=':', label='test (best epoch)')
ax_acc.legend()
fig.suptitle('GATv2 on Cora, one seed')
fig.tight_layout()

# %%
# Against the published numbers
# -----------------------------
#
# One seed is one draw; ``python experiments/cora.py --seeds 10`` gives the mean and standard
# deviation that are comparable with the papers.
print(cora.report(summary))
