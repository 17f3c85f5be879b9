r"""
---
title: Train a two-layer GATv2 on Cora
summary: >
  The node-classification experiment of the GAT paper with GATv2 layers: Cora's public split,
  early stopping on validation, labml tracking, and test accuracy over many seeds.
---

# Train a two-layer GATv2 on Cora

This script trains the model of the [GAT paper](https://arxiv.org/abs/1710.10903) on the
[Cora citation graph](../labml_gat/datasets.html), with the attention layers of
[GATv2](../labml_gat/gatv2.html) (or, with `--model gat`, of [GAT](../labml_gat/gat.html)).

Cora has 2708 papers, each a bag of 1433 words, linked by 5429 citations, and every paper has one of
7 topics. Only 140 labels are seen in training; the model must spread what they tell through the graph.

## The model

Two attention layers, as in the GAT paper:

1. $K = 8$ heads of 8 features each, concatenated to 64 features, then an ELU;
2. one head that maps the 64 features to the 7 class scores.

Dropout with $p = 0.6$ is applied to the input of both layers and to the attention coefficients,
and every node attends to itself as well as to its neighbours.
Training is full-batch with Adam (learning rate 0.005, weight decay $5 \cdot 10^{-4}$).

## Two implementations of the same layer

`--impl dense` runs the tutorial's layer literally: it builds the $N \times N$ grid of node pairs.
On Cora that is $2708^2 \approx 7.3$ million pairs per head, several gigabytes and seconds per step.
`--impl edges` (the default) runs the [edge-list layer](../labml_gat/edges.html): the same function with
the same parameters, computed on the 13264 edges only.

## Usage

```bash
python experiments/cora.py                      # GATv2, one seed
python experiments/cora.py --seeds 10           # mean and std over 10 seeds
python experiments/cora.py --model gat          # the GAT (v1) baseline
python experiments/cora.py --impl dense         # the tutorial's dense layer, literally
```

Each seed is a labml run in `logs/cora_gatv2/<run uuid>/`: `configs.yaml` holds the settings,
`log.jsonl` the tracked metrics, and `checkpoints/best.pt` the weights of the best epoch.
"""

import argparse
import copy
import json
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Tuple

import torch
from labml import experiment, lab, monit, tracker
from torch import nn

from labml_gat.datasets import Graph, load_planetoid
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer

# The layer for each `(--model, --impl)`: dense twins take `adj_mat`, edge-list twins take `edge_index`.
LAYERS = {
    ('gatv2', 'dense'): GraphAttentionV2Layer,
    ('gatv2', 'edges'): EdgeGraphAttentionV2Layer,
    ('gat', 'dense'): GraphAttentionLayer,
    ('gat', 'edges'): EdgeGraphAttentionLayer,
}

# Published test accuracies on Cora's public split, to print next to ours.
ANCHORS = {
    'GAT paper (Veličković et al., 2018)': '83.0 ± 0.7',
    "DGL's GATv2 example": '82.1',
}


@dataclass
class Config:
    """
    ## Settings

    The defaults are the GAT paper's for Cora.
    """
    # `gatv2` or `gat`
    model: str = 'gatv2'
    # `edges` or `dense`
    impl: str = 'edges'
    # `cora` or `citeseer`
    dataset: str = 'cora'
    # A folder with the Planetoid files (else `LABML_GAT_DATA`, else the download cache)
    data_dir: Optional[str] = None
    # Heads and features per head of the first layer
    n_heads: int = 8
    n_hidden: int = 8
    # Dropout on the layers' inputs and on the attention coefficients
    dropout: float = 0.6
    # Adam
    learning_rate: float = 0.005
    weight_decay: float = 5e-4
    # At most this many epochs; early stopping ends most runs long before
    epochs: int = 1000
    # Early stopping: `gat` (validation loss and accuracy, as the GAT paper) or `accuracy`
    early_stopping: str = 'gat'
    # Stop after this many epochs without improvement
    patience: int = 100
    # GATv2 only: use one matrix for both sides of the pair, $W_l = W_r$
    share_weights: bool = False
    # First seed, and how many seeds to run (`seed`, `seed + 1`, ...)
    seed: int = 0
    seeds: int = 1
    device: str = 'cpu'
    # Write the final numbers here as JSON
    summary_json: Optional[str] = None
    # labml writers: `screen` prints, `file` keeps the run in `logs/`
    writers: set = field(default_factory=lambda: {'screen', 'file'})


class SparseInputDropout(nn.Module):
    r"""
    ## Dropout on sparse features

    Cora's bag-of-words features are 98.7% zeros. Dropout multiplies each entry by a random
    $0$ or $\frac{1}{1 - p}$, which leaves a zero a zero: drawing the random mask only for the
    non-zero entries is exactly the same dropout, on 1.3% of the entries.
    The input is kept as a sparse CSR matrix, and the first layer's linear maps multiply it directly.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        # Dropout on the stored values only; the sparsity pattern is shared.
        values = nn.functional.dropout(x.values(), self.p)
        return torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), values, x.shape,
                                       check_invariants=False)


class GAT(nn.Module):
    """
    ## The two-layer model

    `layer` is one of the four layer classes; `graph` in `forward` is what that layer takes:
    the adjacency matrix for a dense layer, the edge list for an edge-list layer.
    """

    def __init__(self, layer: type, in_features: int, n_classes: int, n_heads: int, n_hidden: int,
                 dropout: float, share_weights: bool = False):
        super().__init__()
        v2_options = {'share_weights': share_weights} if layer in (GraphAttentionV2Layer,
                                                                    EdgeGraphAttentionV2Layer) else {}
        self.input_dropout = SparseInputDropout(dropout)
        # First layer: $K$ heads of `n_hidden` features, concatenated
        self.layer1 = layer(in_features, n_heads * n_hidden, n_heads, is_concat=True, dropout=dropout,
                            bias=True, **v2_options)
        self.activation = nn.ELU()
        self.dropout = nn.Dropout(dropout)
        # Output layer: one head, the class scores
        self.output = layer(n_heads * n_hidden, n_classes, 1, is_concat=False, dropout=dropout,
                            bias=True, **v2_options)

    def forward(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        """
        * `x` is the node features, a sparse CSR matrix `[n_nodes, in_features]`
        * `graph` is the adjacency `[n_nodes, n_nodes]` or the edges `[2, n_edges]`, self loops included

        Returns the class scores (logits), `[n_nodes, n_classes]`.
        """
        h = self.layer1(self.input_dropout(x), graph)
        h = self.dropout(self.activation(h))
        return self.output(h, graph)


def prepare_inputs(data: Graph, impl: str, n_heads: int, n_hidden: int, device: torch.device):
    """
    ## Inputs

    The features as a sparse matrix and the graph in the form the layer takes, with self loops.
    The dense form is refused before it is allocated when it would not fit in memory.
    """
    with warnings.catch_warnings():
        # PyTorch flags sparse CSR as "beta"; the two operations used here are well covered.
        warnings.filterwarnings('ignore', message='Sparse CSR tensor support is in beta')
        x = data.x.to_sparse_csr().to(device)
    if impl == 'edges':
        return x, data.edge_index_with_self_loops().to(device)
    check_dense_fits(data.num_nodes, n_heads, n_hidden)
    return x, data.adjacency(self_loops=True).to(device)


def dense_training_bytes(n_nodes: int, n_heads: int, n_hidden: int, bytes_per_float: int = 4) -> int:
    r"""
    ### Memory of a dense training step

    The first layer dominates. Its pair tensor `g_sum` has $N^2 K F'$ entries (here $F'$ per head);
    a training step peaks at about three tensors of that size, as measured by `experiments/benchmark.py`
    (773 bytes per node pair for 8 heads of 8 features in float32, against the 768 counted here).
    """
    return 3 * n_nodes * n_nodes * n_heads * n_hidden * bytes_per_float


def available_memory_bytes() -> int:
    """Memory the system can still give (`MemAvailable` on Linux, else the physical memory)."""
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def check_dense_fits(n_nodes: int, n_heads: int, n_hidden: int) -> None:
    """Refuse `--impl dense` with a clear message when its estimated peak exceeds the free memory."""
    needed = dense_training_bytes(n_nodes, n_heads, n_hidden)
    available = available_memory_bytes()
    if needed > 0.9 * available:
        raise MemoryError(f'--impl dense needs about {needed / 2 ** 30:.1f} GiB for {n_nodes} nodes '
                          f'({n_heads} heads x {n_hidden} features: {n_nodes}^2 node pairs each), but only '
                          f'{available / 2 ** 30:.1f} GiB is available; use --impl edges (the same function '
                          f'in O(edges) memory)')


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of nodes whose highest-scoring class is their label."""
    return (logits.argmax(dim=-1) == labels).float().mean().item()


class EarlyStopping:
    """
    ## Early stopping

    Two criteria on the validation set, chosen with `--early-stopping`:

    * `gat`, the GAT paper's: an epoch *improves* when the validation accuracy is at least the best so far
      **or** the validation loss at most the lowest so far, and training stops after `patience` epochs
      without improvement. The weights kept are those of the last epoch that matched both the best
      accuracy and the lowest loss so far, as in the paper's code.
    * `accuracy`, PyG's and DGL's examples': an epoch improves when the validation accuracy is higher
      than the best so far, or equal with a lower loss; its weights are kept.
    """

    def __init__(self, criterion: str, patience: int):
        self.criterion = criterion
        self.patience = patience
        self.best_acc, self.best_loss = -math.inf, math.inf
        self.bad_epochs = 0

    def step(self, val_acc: float, val_loss: float) -> Tuple[bool, bool]:
        """Returns `(keep, stop)`: whether to keep this epoch's weights, and whether to stop now."""
        if self.criterion == 'gat':
            improved = val_acc >= self.best_acc or val_loss <= self.best_loss
            keep = val_acc >= self.best_acc and val_loss <= self.best_loss
            if improved:
                self.best_acc, self.best_loss = max(self.best_acc, val_acc), min(self.best_loss, val_loss)
        else:
            improved = keep = (val_acc, -val_loss) > (self.best_acc, -self.best_loss)
            if improved:
                self.best_acc, self.best_loss = val_acc, val_loss
        self.bad_epochs = 0 if improved else self.bad_epochs + 1
        return keep, self.bad_epochs >= self.patience


def train_one_seed(config: Config, data: Graph, seed: int, checkpoint: Path) -> Tuple[dict, GAT]:
    """
    ## Training one seed

    Full-batch training, validating after every step, with early stopping on the validation set.
    The model is tested once, with the weights of the best validation epoch.

    Returns the results (with the per-epoch `history`) and the model with the best weights loaded.
    """
    torch.manual_seed(seed)
    device = torch.device(config.device)
    x, graph = prepare_inputs(data, config.impl, config.n_heads, config.n_hidden, device)
    y = data.y.to(device)
    masks = {'train': data.train_mask.to(device), 'valid': data.val_mask.to(device),
             'test': data.test_mask.to(device)}

    model = GAT(LAYERS[config.model, config.impl], data.num_features, data.num_classes, config.n_heads,
                config.n_hidden, config.dropout, config.share_weights).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_func = nn.CrossEntropyLoss()

    early_stopping = EarlyStopping(config.early_stopping, config.patience)
    best_epoch = 0
    best_state = copy.deepcopy(model.state_dict())
    history = []
    start = time.perf_counter()
    for epoch in monit.loop(config.epochs):
        # A training step on the 140 labelled nodes
        model.train()
        optimizer.zero_grad()
        logits = model(x, graph)
        loss = loss_func(logits[masks['train']], y[masks['train']])
        loss.backward()
        optimizer.step()
        train_acc = accuracy(logits[masks['train']], y[masks['train']])
        tracker.add({'loss.train': loss, 'accuracy.train': train_acc})

        # Validation, without dropout
        model.eval()
        with torch.no_grad():
            logits = model(x, graph)
        val_loss = loss_func(logits[masks['valid']], y[masks['valid']]).item()
        val_acc = accuracy(logits[masks['valid']], y[masks['valid']])
        tracker.save(epoch, {'loss.valid': val_loss, 'accuracy.valid': val_acc})
        history.append({'loss.train': loss.item(), 'accuracy.train': train_acc,
                        'loss.valid': val_loss, 'accuracy.valid': val_acc})

        # Keep the weights of the best epoch so far, and stop when patience runs out
        keep, stop = early_stopping.step(val_acc, val_loss)
        if keep:
            best_epoch = epoch
            best_state = copy.deepcopy(model.state_dict())
        if stop:
            break
    seconds = time.perf_counter() - start

    # Save the best weights, and test them as loaded back from disk with `weights_only=True`
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save(best_state, checkpoint)
    model.load_state_dict(torch.load(checkpoint, weights_only=True, map_location=device))
    model.eval()
    with torch.no_grad():
        logits = model(x, graph)
    result = {'seed': seed, 'best_epoch': best_epoch, 'epochs': epoch + 1, 'seconds': round(seconds, 2),
              'checkpoint': str(checkpoint),
              'val_accuracy': accuracy(logits[masks['valid']], y[masks['valid']]),
              'test_accuracy': accuracy(logits[masks['test']], y[masks['test']]), 'history': history}
    tracker.save(epoch + 1, {'accuracy.test': result['test_accuracy']})
    return result, model


def run(config: Config) -> dict:
    """
    ## Running the seeds

    Each seed is its own labml run. Returns the per-seed results and their mean and standard deviation.
    """
    validate(config)
    data = load_planetoid(config.dataset, config.data_dir)
    results = []
    for seed in range(config.seed, config.seed + config.seeds):
        experiment.create(name=f'{config.dataset}_{config.model}', writers=set(config.writers),
                          comment=f'{config.impl} layer, seed {seed}')
        experiment.configs({**asdict(config), 'seed': seed, 'writers': sorted(config.writers)})
        with experiment.start():
            checkpoint = run_folder() / 'checkpoints' / 'best.pt'
            result, _ = train_one_seed(config, data, seed, checkpoint)
            results.append(result)
    return {'config': {**asdict(config), 'writers': sorted(config.writers)}, 'runs': results,
            'test_accuracy': summarize([r['test_accuracy'] for r in results]),
            'val_accuracy': summarize([r['val_accuracy'] for r in results]),
            'seconds': round(sum(r['seconds'] for r in results), 2)}


def run_folder() -> Path:
    """The folder of the current labml run, `logs/<name>/<uuid>`."""
    from labml.internal.experiment import experiment_singleton
    return Path(experiment_singleton().run.run_path)


def summarize(values: list) -> dict:
    """Mean and (sample) standard deviation, in percent."""
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return {'mean': round(mean, 2), 'std': round(std, 2), 'n': len(values)}


def validate(config: Config) -> None:
    """Clear errors for settings that cannot run."""
    if config.model not in ('gat', 'gatv2'):
        raise ValueError(f"--model must be 'gat' or 'gatv2', got {config.model!r}")
    if config.early_stopping not in ('gat', 'accuracy'):
        raise ValueError(f"--early-stopping must be 'gat' or 'accuracy', got {config.early_stopping!r}")
    if config.impl not in ('dense', 'edges'):
        raise ValueError(f"--impl must be 'dense' or 'edges', got {config.impl!r}")
    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise FileNotFoundError(f'--data-dir {config.data_dir} is not a folder')
    for name in ('epochs', 'patience', 'seeds', 'n_heads', 'n_hidden'):
        if getattr(config, name) < 1:
            raise ValueError(f'--{name.replace("_", "-")} must be at least 1, got {getattr(config, name)}')
    if not 0 <= config.dropout < 1:
        raise ValueError(f'--dropout must be in [0, 1), got {config.dropout}')


def report(summary: dict) -> str:
    """The final table: every seed, the mean and std, and the published anchors."""
    config = summary['config']
    lines = [f"{config['model'].upper()} ({config['impl']} layer) on {config['dataset']}",
             f"{'seed':>6} {'epochs':>7} {'best':>5} {'val %':>7} {'test %':>7} {'time s':>7}"]
    for r in summary['runs']:
        lines.append(f"{r['seed']:>6} {r['epochs']:>7} {r['best_epoch']:>5} {100 * r['val_accuracy']:>7.1f} "
                     f"{100 * r['test_accuracy']:>7.1f} {r['seconds']:>7.1f}")
    test = summary['test_accuracy']
    lines.append(f"test accuracy: {test['mean']:.2f} ± {test['std']:.2f} % over {test['n']} seed(s), "
                 f"{summary['seconds']:.1f} s of training")
    if config['dataset'] == 'cora':
        lines += [f'  {name}: {value} %' for name, value in ANCHORS.items()]
    return '\n'.join(lines)


def parse_args(argv: Optional[list] = None) -> Config:
    """Command-line flags for every setting of `Config`."""
    defaults = Config()
    parser = argparse.ArgumentParser(description='Train a two-layer GATv2 (or GAT) on Cora or CiteSeer.')
    parser.add_argument('--model', choices=['gatv2', 'gat'], default=defaults.model)
    parser.add_argument('--impl', choices=['edges', 'dense'], default=defaults.impl,
                        help='edges: the edge-list layer (same function, O(edges) cost); '
                             'dense: the tutorial layer, literally (O(nodes^2))')
    parser.add_argument('--dataset', choices=['cora', 'citeseer'], default=defaults.dataset)
    parser.add_argument('--data-dir', default=None, help='folder with the Planetoid files '
                                                         '(default: $LABML_GAT_DATA, else download)')
    parser.add_argument('--epochs', type=int, default=defaults.epochs)
    parser.add_argument('--early-stopping', choices=['gat', 'accuracy'], default=defaults.early_stopping,
                        help='gat: stop when neither validation loss nor accuracy improves (the GAT paper); '
                             'accuracy: on validation accuracy alone')
    parser.add_argument('--patience', type=int, default=defaults.patience)
    parser.add_argument('--learning-rate', type=float, default=defaults.learning_rate)
    parser.add_argument('--weight-decay', type=float, default=defaults.weight_decay)
    parser.add_argument('--dropout', type=float, default=defaults.dropout)
    parser.add_argument('--n-heads', type=int, default=defaults.n_heads)
    parser.add_argument('--n-hidden', type=int, default=defaults.n_hidden)
    parser.add_argument('--share-weights', action='store_true')
    parser.add_argument('--seed', type=int, default=defaults.seed)
    parser.add_argument('--seeds', type=int, default=defaults.seeds, help='run this many seeds from --seed')
    parser.add_argument('--device', default=defaults.device)
    parser.add_argument('--summary-json', default=None, help='write the final numbers to this JSON file')
    parser.add_argument('--quiet', action='store_true', help='no per-epoch output (runs are still kept in logs/)')
    args = vars(parser.parse_args(argv))
    writers = {'file'} if args.pop('quiet') else {'screen', 'file'}
    return Config(**args, writers=writers)


def main(argv: Optional[list] = None) -> None:
    config = parse_args(argv)
    summary = run(config)
    print(report(summary))
    if config.summary_json:
        Path(config.summary_json).write_text(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main(sys.argv[1:])
