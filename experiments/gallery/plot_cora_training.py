r"""
Train GATv2 on Cora
===================

This example runs the `Cora experiment <../cora.html>`_ as a reader would run it, from the
command line, for one seed: the two-layer GATv2 of the GAT paper (8 heads of 8 features, then one
output head), trained full-batch with early stopping on the validation set, using the edge-list
layer. It then plots the training curves that the experiment recorded and compares the test
accuracy with the published numbers.

It runs on the real Planetoid files, found through the ``LABML_GAT_DATA`` environment variable.
What the attention of this model learned is the subject of :doc:`plot_attention`.
"""

# %%
# Load Cora
# ---------
#
# 2708 papers with 1433-word bag-of-words features, 7 topics, and the public split
# of 140 training, 500 validation and 1000 test nodes.
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

from labml_gat.datasets import load_planetoid

data = load_planetoid('cora')
print(f'{data.num_nodes} nodes, {data.num_features} features, '
      f'{data.num_classes} classes, {data.edge_index.shape[1]} directed edges')
print(f'train/val/test: {int(data.train_mask.sum())}/{int(data.val_mask.sum())}/'
      f'{int(data.test_mask.sum())}')

# %%
# Train one seed
# --------------
#
# The experiment's defaults are the GAT paper's: Adam with learning rate 0.005 and weight decay
# :math:`5 \cdot 10^{-4}`, dropout 0.6, and early stopping with patience 100 on validation loss and
# accuracy. This is the command a reader would type,
#
# .. code-block:: bash
#
#     python experiments/cora.py --summary-json summary.json --quiet --logs runs/
#
# where ``--quiet`` leaves out the per-epoch progress, ``--logs`` is the folder of the labml runs
# (one per seed, with the settings, the metrics and the best checkpoint) and ``--summary-json``
# writes the results, with each epoch's losses and accuracies, for this page to plot.
# sphinx-gallery and Jupyter run this file from its own folder, without `__file__`.
here = Path(__file__).resolve().parent if '__file__' in globals() else Path.cwd()
cora_script = here.parent / 'cora.py'
work = Path(tempfile.mkdtemp(prefix='cora_'))
finished = subprocess.run(
    [sys.executable, str(cora_script), '--summary-json', str(work / 'summary.json'),
     '--quiet', '--logs', str(work / 'runs'), '--seed', '0'],
    capture_output=True, text=True)
if finished.returncode != 0:
    raise RuntimeError(f'experiments/cora.py failed:\n{finished.stderr}')
print(finished.stdout)
summary = json.loads((work / 'summary.json').read_text())
result = summary['runs'][0]

# %%
# Training curves
# ---------------
#
# The training loss is measured with dropout on, which is what makes it noisy; the validation
# loss is measured with dropout off. Dropout raises the training loss, while fitting the
# 140 training nodes lowers it; the averages printed below the figure say which wins in this run.
# The dashed line is the epoch whose weights were kept.
history = result['history']
epochs = range(len(history))
fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(7.8, 3.4))
for split, colour in (('train', 'tab:blue'), ('valid', 'tab:orange')):
    ax_loss.plot(epochs, [h[f'loss.{split}'] for h in history], label=split, color=colour)
    ax_acc.plot(epochs, [100 * h[f'accuracy.{split}'] for h in history], label=split,
                color=colour)
ax_acc.axhline(100 * result['test_accuracy'], color='tab:green', linestyle=':',
               label='test (kept weights)')
for ax, name in ((ax_loss, 'cross-entropy loss'), (ax_acc, 'accuracy (%)')):
    ax.axvline(result['best_epoch'], color='grey', linestyle='--', linewidth=1,
               label='kept weights')
    ax.set_xlabel('epoch')
    ax.set_ylabel(name)
    ax.legend()
fig.suptitle('GATv2 on Cora, one seed')
fig.tight_layout()

last = history[-50:]
for split in ('train', 'valid'):
    mean = sum(h[f'loss.{split}'] for h in last) / len(last)
    print(f'mean {split} loss over the last {len(last)} epochs: {mean:.3f}')

# %%
# Against the published numbers
# -----------------------------
#
# The table above, printed by the experiment, puts this seed next to the published results.
# One seed is one draw; ``python experiments/cora.py --seeds 10`` gives the mean and standard
# deviation that are comparable with the papers.
print(f"stopped after {result['epochs']} epochs; "
      f"kept the weights of epoch {result['best_epoch']}")
print(f"validation accuracy {100 * result['val_accuracy']:.1f} %, "
      f"test accuracy {100 * result['test_accuracy']:.1f} %")
