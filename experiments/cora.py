r"""
---
title: Train a two-layer GATv2 on Cora
summary: >
  The node-classification experiment of the GAT paper with GATv2 layers: Cora's public split,
  early stopping on validation, labml tracking, and test accuracy over many seeds.
---

# Train a two-layer GATv2 on Cora

This script runs the experiment of the [GAT paper](https://arxiv.org/abs/1710.10903) on the
[Cora citation graph](../labml_gat/datasets.html), with the attention layers of
[GATv2](../labml_gat/gatv2.html) (or, with `--layer gat`, of [GAT](../labml_gat/gat.html)).

Cora's nodes are 2708 papers, each a bag of 1433 words, and its edges are the citations between
them; every paper has one of 7 topics. Only 140 labels are seen in training (20 per topic), 500
choose when to stop, and the model is tested on 1000 others: it must spread what the few labels
tell through the graph.

## The model

The [two-layer model](../labml_gat/model.html) of the GAT paper:
$K = 8$ heads of 8 features, concatenated and passed through an ELU, then one head that maps
them to the 7 class scores. Dropout with $p = 0.6$ acts on the input of both layers and on
the attention coefficients, and every node attends to itself as well as to its neighbours.
Training is full-batch with Adam (learning rate 0.005, weight decay $5 \cdot 10^{-4}$), and
stops early on the validation set, as the paper does ([`EarlyStopping`](../labml_gat/training.html#early-stopping)).

## Two implementations of the same layer

`--impl edges` (the default) runs the [edge-list layer](../labml_gat/edges.html), which computes
on the graph's edges only. `--impl dense` runs the tutorial's dense layer literally: the grid of
all $2708^2$ node pairs, gigabytes of memory and seconds per step. Both have the same parameters
and compute the same function.

## Fast, and literal

By default the model runs with the speed-ups of [Making it fast](../labml_gat/fast.html):
a training step computes only the receptive field of the training nodes, dropout draws random
bits instead of Bernoulli samples, and the sparse features keep their sparsity. Each is the same
function with the same gradients; `--no-fast` trains the model exactly as built.
Several seeds train [side by side](../labml_gat/seeds.html), one process per core.

## The recorded result

<!-- results: cora_seeds10 -->
<!-- end results -->

The site fills in that line from the [record](results/cora_seeds10.json), which also keeps every
seed's accuracy and epochs. The GAT paper reports 83.0 ± 0.7 % for GAT on the same split, and
DGL's GATv2 example 82.1 %; the script prints both beside its own result. The
[executed example](gallery/plot_cora_training.html) trains one seed while the site is built
and draws its curves, and [What did the attention learn?](gallery/plot_attention.html) looks
at the attention of its first layer.

## Usage

```bash
python experiments/cora.py                      # GATv2, one seed
python experiments/cora.py --seeds 10           # mean and std over 10 seeds
python experiments/cora.py --layer gat          # the GAT (v1) baseline
python experiments/cora.py --help               # every setting
```

Each seed is a labml run in `logs/cora_gatv2/<run uuid>/`: `configs.yaml` holds the settings,
`log.jsonl` the tracked metrics, and `checkpoints/best.pt` the weights of the best epoch.
`python -m labml_gat.runs plot logs/cora_gatv2/<run uuid>` draws its curves.
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
from labml import tracker
from torch import nn

from labml_gat import fast
from labml_gat.datasets import Planetoid, load_planetoid
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer
from labml_gat.model import TwoLayerGAT
from labml_gat.results import LAYER_NAMES, write_json
from labml_gat.runs import epochs
from labml_gat.seeds import format_summary, run_seeds
from labml_gat.settings import command, setting
from labml_gat.training import (EarlyStopping, NodeClassificationSettings, accuracy,
                                check_dense_fits, check_edges_fit)

# The layer for each `(--layer, --impl)`: dense layers take an adjacency matrix,
# edge-list layers an `edge_index`
LAYERS = {
    ('gatv2', 'dense'): GraphAttentionV2Layer,
    ('gatv2', 'edges'): EdgeGraphAttentionV2Layer,
    ('gat', 'dense'): GraphAttentionLayer,
    ('gat', 'edges'): EdgeGraphAttentionLayer,
}

# Published test accuracies on Cora's public split, to print next to ours
ANCHORS = {
    'GAT paper (Veličković et al., 2018)': '83.0 ± 0.7',
    "DGL's GATv2 example": '82.1',
}


@dataclass
class CoraSettings(NodeClassificationSettings):
    """
    ## Settings

    The GAT paper's [settings](../labml_gat/training.html#settings), and two of this script.
    """
    impl: str = setting('edges', 'edges: the edge-list layer, O(edges); dense: the '
                                 "tutorial's layer literally, O(nodes^2)",
                        choices=('edges', 'dense'))
    fast: bool = setting(True, 'the speed-ups of labml_gat/fast.py (the same function)')

    def comment(self, seed: int) -> str:
        return f'{self.impl} layer, seed {seed}'


def graph_of(data: Planetoid, impl: str) -> torch.Tensor:
    """The graph in the form the layer takes, with a self loop at every node."""
    if impl == 'edges':
        return data.edge_index_with_self_loops()
    return data.adjacency(self_loops=True)


def train_one_seed(settings: CoraSettings, data: Planetoid, seed: int,
                   checkpoint: Path) -> Tuple[dict, TwoLayerGAT]:
    """
    ## Training one seed

    Full-batch training, validating after every step, with early stopping on the validation
    set. The model is tested once, with the weights of the best validation epoch.
    Returns the results (with the per-epoch `history`) and the model with the best weights.
    """
    torch.manual_seed(seed)
    device = torch.device(settings.device)
    layer = LAYERS[settings.layer, settings.impl]
    model = TwoLayerGAT(layer, data.num_features, data.num_classes, settings.n_heads,
                        settings.n_hidden, settings.dropout, settings.share_weights)
    x, graph, y = data.x, graph_of(data, settings.impl), data.y
    # The node ids of the training, validation and test sets
    nodes = {split: mask.nonzero().squeeze(1) for split, mask in
             (('train', data.train_mask), ('valid', data.val_mask),
              ('test', data.test_mask))}

    # The same model, computed faster: see [Making it fast](../labml_gat/fast.html)
    if settings.fast:
        model, x = fast.speed_up(model), fast.to_sparse_csr(x)
    model, x, graph, y = model.to(device), x.to(device), graph.to(device), y.to(device)
    nodes = {split: index.to(device) for split, index in nodes.items()}
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate,
                                 weight_decay=settings.weight_decay)
    loss_func = nn.CrossEntropyLoss()

    # What a training step and a validation pass read: the whole graph, and the rows of their
    # nodes in the output; with `--fast` and edges, the receptive fields of their nodes only
    train_inputs = inputs_for(settings, x, graph, nodes['train'])
    valid_inputs = inputs_for(settings, x, graph, nodes['valid'])

    early_stopping = EarlyStopping(settings.early_stopping, settings.patience)
    history = []
    start = time.perf_counter()
    for epoch in epochs(settings.epochs):
        # A training step on the labelled nodes
        model.train()
        optimizer.zero_grad()
        logits = model(*train_inputs[:2])[train_inputs[2]]
        loss = loss_func(logits, y[nodes['train']])
        loss.backward()
        optimizer.step()
        train_acc = accuracy(logits, y[nodes['train']])
        tracker.add({'loss.train': loss, 'accuracy.train': train_acc})

        # Validation, without dropout
        model.eval()
        with torch.no_grad():
            logits = model(*valid_inputs[:2])[valid_inputs[2]]
        val_loss = loss_func(logits, y[nodes['valid']]).item()
        val_acc = accuracy(logits, y[nodes['valid']])
        tracker.save(epoch, {'loss.valid': val_loss, 'accuracy.valid': val_acc})
        history.append({'loss.train': loss.item(), 'accuracy.train': train_acc,
                        'loss.valid': val_loss, 'accuracy.valid': val_acc})

        # Keep the weights of the best epoch so far, and stop when patience runs out
        if early_stopping.update(epoch, model, val_acc, val_loss):
            break
    seconds = time.perf_counter() - start

    # Test the best weights, as saved to and loaded back from the checkpoint
    early_stopping.restore_best(model, checkpoint)
    model.eval()
    with torch.no_grad():
        logits = model(x, graph)
    result = {'seed': seed, 'best_epoch': early_stopping.best_epoch, 'epochs': epoch + 1,
              'seconds': round(seconds, 2), 'checkpoint': str(checkpoint),
              'val_accuracy': accuracy(logits[nodes['valid']], y[nodes['valid']]),
              'test_accuracy': accuracy(logits[nodes['test']], y[nodes['test']]),
              'history': history}
    tracker.save(epoch + 1, {'accuracy.test': result['test_accuracy']})
    return result, model


def inputs_for(settings: CoraSettings, x: torch.Tensor, graph: torch.Tensor,
               index: torch.Tensor) -> tuple:
    """`(x, graph, index)`: the model's inputs, and the rows of its output that are `index`."""
    if settings.fast and settings.impl == 'edges':
        return fast.receptive_field_inputs(x, graph, index)
    return x, graph, index


def report(summary: dict) -> str:
    """The table of the seeds, and the published results to compare with."""
    settings = summary['settings']
    lines = [format_summary(summary, f"{LAYER_NAMES[settings['layer']]} "
                                     f"({settings['impl']} layer) "
                                     f"on {settings['dataset']}")]
    if settings['dataset'] == 'cora':
        lines += [f'  {name}: {value} %' for name, value in ANCHORS.items()]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """
    ## From the command line

    Check the settings and the data before any run starts, then train the seeds.
    """
    settings, explicit = CoraSettings.from_command_line(
        argv, 'Train a two-layer GATv2 (or GAT) on Cora or CiteSeer.')
    data = load_planetoid(settings.dataset, settings.data_dir)
    if settings.impl == 'dense':
        print(check_dense_fits(settings, data.num_nodes))
    else:
        n_edges = data.edge_index.shape[1] + data.num_nodes  # with the self loops
        check_edges_fit(settings, data.num_nodes, n_edges, data.num_features,
                        data.num_classes)
    summary = run_seeds(settings, explicit, data, train_one_seed, argv)
    print(report(summary))
    if settings.summary_json:
        write_json(Path(settings.summary_json), summary)
    return summary


if __name__ == '__main__':
    command(main)()
