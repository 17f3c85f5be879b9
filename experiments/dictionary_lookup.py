r"""
---
title: DictionaryLookup, the task GAT cannot learn
summary: >
  The synthetic benchmark of the GATv2 paper: every query node must attend to the one key that matches it.
  One GATv2 head fits it and generalises; GAT's static attention cannot even fit the training set.
---

# DictionaryLookup: the task GAT cannot learn

The [GATv2 paper](https://arxiv.org/abs/2105.14491) (Brody, Alon & Yahav, ICLR 2022) argues that
[GAT](../labml_gat/gat.html) computes only *static* attention, and builds a small problem that needs
*dynamic* attention to make the point. This script reproduces it
(Section 4.1 and Figure 3 of the paper, following the `dictionary_lookup` code of the paper's authors).

## The task

Pick a size $k$ and a permutation $\pi$ of $\{0, \dots, k - 1\}$. One example is one graph with $2k$ nodes:

* $k$ **query** nodes $q_0, \dots, q_{k-1}$: query $q_i$ carries the key $i$ and an empty value,
  written as the extra value id $k$;
* $k$ **key-value** nodes $s_0, \dots, s_{k-1}$: node $s_j$ carries the key $j$ and the value $\pi(j)$;
* an edge $s_j \to q_i$ from every key-value node to every query node: a complete bipartite graph,
  $k^2$ edges, no self loops.

The label of query $q_i$ is $\pi(i)$, the value stored under its key.
To answer, $q_i$ must attend to the one neighbour whose key equals its own, $s_i$:
every query needs a **different** neighbour, chosen by the query's own key.

### Why GAT cannot do it

With one GAT head, the score of the edge $s_j \to q_i$ is

$$e_{ij} = \text{LeakyReLU}\big(a_1^\top W h_{q_i} + a_2^\top W h_{s_j}\big)$$

For a fixed query the first term is a constant, and LeakyReLU is increasing,
so every query ranks the key-value nodes in the order of $a_2^\top W h_{s_j}$:
the **same** key-value node is the favourite of every query (the paper's Theorem 1).
The query's own key enters only through the number $a_1^\top W h_{q_i}$, which can make its attention
sharper or flatter, never move its peak to another node.
So one head cannot look up $k$ different keys in one graph; in the paper, and here, it does not come
close to fitting the training set.
With more heads GAT combines several fixed rankings; that is enough to fit the training graphs
in the paper, but not to generalise to key-value combinations it has not seen.

[GATv2](../labml_gat/gatv2.html) scores the pair inside the non-linearity,

$$e_{ij} = a^\top \text{LeakyReLU}\big(W h_{q_i} + W h_{s_j}\big)$$

a small perceptron of both nodes, which can be largest exactly when the keys of $q_i$ and $s_j$ agree:
one head is enough.

## The examples and the split

This follows the authors' code, deterministically under one seed:

1. **Examples.** All $k!$ permutations when $k! \le 32000$ (that is, $k \le 7$),
   otherwise 32000 permutations drawn uniformly at random; with replacement, as in the authors' code, so
   for $k = 8$ and $9$ some repeat (a repeated permutation always lands on the same side of the split).
2. **Allowed pairs.** A pair $(i, v)$ means "value $v$ is stored under key $i$".
   We sample $n_\text{allowed} = \lfloor 0.8^{1/k} \cdot k^2 \rfloor$ of the $k^2$ pairs uniformly,
   without replacement.
3. **Split.** A permutation is a **training** example if all its $k$ pairs $(i, \pi(i))$ are allowed,
   and a **test** example otherwise.

No training graph contains a pair that is not allowed, and every test graph contains at least one:
every test graph stores some value under a key where no training graph ever stored it,
so only a model that really looks the key up can be right on it.
Each pair is allowed with probability $n_\text{allowed} / k^2 \approx 0.8^{1/k}$, and a permutation has
$k$ pairs, so about $(0.8^{1/k})^k = 0.8$ of the permutations are training examples:
the filter alone gives the 80/20 split, with no need to generate permutations from the allowed pairs.
Rounding down makes the training share a little smaller for small $k$: for $k = 10$, 97 of the
100 pairs are allowed, and 72% of the permutations (23146 of 32000 with seed 0) avoid the other 3.

## The model

The authors' model, with $d = 128$:

$$h_n = \text{ReLU}\big(E_\text{key}[\text{key}_n] + E_\text{value}[\text{value}_n]\big)$$

for every node $n$, with two embedding tables $E_\text{key}, E_\text{value} \in \mathbb{R}^{(k + 1) \times d}$;
one attention layer over the bipartite edges (GATv2 with $W_l = W_r$, or GAT), with
$H$ heads of $d / H$ features concatenated and no bias; and a linear readout without bias on the queries,

$$\hat{y}_i = U h'_{q_i} \in \mathbb{R}^k$$

trained with cross-entropy against $\pi(i)$. A query has no self loop: its own key reaches the output
**only** through the attention scores, so the task is solved exactly when attention finds the right key.

## Training

Adam with learning rate $10^{-3}$, batches of 1024 graphs (each batch is one graph, the disjoint union of
its examples, run through the [edge-list layers](../labml_gat/edges.html)), gradient norm clipped to 1,
and the learning rate halved when the training accuracy has not improved for 10 epochs.
Accuracy is the fraction of query nodes answered correctly.

Two choices are deliberate:

* **No dropout.** (The authors' code also leaves dropout switched on when it evaluates;
  here evaluation always runs in `eval()` mode, and with no dropout the difference cannot arise.)
* **Model selection on training accuracy only.** Training stops when the training accuracy of an epoch
  reaches 100%, or after 30 epochs without a better one, and the weights of the best training epoch are kept.
  The test set is evaluated after every epoch for the curves, but it never influences the learning rate,
  the stopping or the choice of weights.

## Results

One run of each (seed 0, the defaults above) for $k = 10$: 23146 training and 8854 test graphs.
Accuracy is over query nodes, of the weights selected on training accuracy;
time is wall-clock training on one thread of a shared 2-core CPU.

| model | heads | train accuracy | test accuracy | epochs (selected) | time |
|-------|------:|---------------:|--------------:|------------------:|-----:|
| GATv2 | 1     | 100.00%        | 100.00%       | 5 (5)             | 38 s |
| GAT   | 1     | 20.00%         | 20.00%        | 55 (25)           | 8 min |
| GAT   | 8     | 99.996%        | 87.26%        | 247 (217)         | 35 min |

This is the picture of the paper's Figure 3.
One GATv2 head fits the training set within 5 epochs and is exactly as accurate on the test graphs,
whose key-value combinations it has never seen.
One GAT head settles at 20% of the queries on both sets: its attention cannot single out
each query's key.
Eight GAT heads fit the training set (9 wrong queries out of 231460), slowly, but get only 87% of the test
queries right: they fit the combinations they saw without learning a lookup that carries over to new ones.

For $k = 20$ (24688 training and 7312 test graphs) one GATv2 head learns the same way, with training and test
accuracy side by side, but much more slowly on this budget: in steps, 30% after 10 epochs and 55% after 50
(37 minutes), when we stopped it. The paper trains for far longer and reports 100% for $k$ up to 100.

## Usage

```bash
python experiments/dictionary_lookup.py --model gatv2 --heads 1 --k 10
python experiments/dictionary_lookup.py --model gat --heads 1 --k 10
python experiments/dictionary_lookup.py --model gat --heads 8 --k 10 --summary-json gat8.json
```

Each run is a labml run in `logs/dictionary_lookup/<run uuid>/`; `--quiet` turns off the progress output.
From Python, `run(k, model, heads, ...)` trains one model and returns its numbers, its per-epoch history
and the trained network. The [gallery example](gallery/plot_dictionary_lookup.html) uses it to plot
the training curves and the attention of every query.
"""

import argparse
import copy
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Iterable, NamedTuple, Optional, Tuple

import torch
from labml import experiment, monit, tracker
from torch import nn

from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer

# The attention layer of each `--model`
LAYERS = {'gatv2': EdgeGraphAttentionV2Layer, 'gat': EdgeGraphAttentionLayer}


class Task(NamedTuple):
    r"""
    ## A DictionaryLookup task of size $k$

    The examples are permutations, one per row: the row $\pi$ is the graph in which the key-value
    node $s_j$ stores the value $\pi(j)$.
    """
    # $k$
    k: int
    # Training and test permutations, `[n_train, k]` and `[n_test, k]`
    train: torch.Tensor
    test: torch.Tensor
    # `allowed[i, v]` is `True` if value $v$ may be stored under key $i$ in a training graph, `[k, k]`
    allowed: torch.Tensor


def make_task(k: int, seed: int = 0, max_examples: int = 32000, train_fraction: float = 0.8) -> Task:
    r"""
    ## Generating the examples and the split

    Deterministic under `seed`, as described at the top of the page.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f'k must be an integer of at least 2, got {k!r}')
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 1:
        raise ValueError(f'max_examples must be a positive integer, got {max_examples!r}')
    if not 0 < train_fraction < 1:
        raise ValueError(f'train_fraction must be in (0, 1), got {train_fraction!r}')
    generator = torch.Generator().manual_seed(seed)

    # All $k!$ permutations if there are few enough, else `max_examples` uniformly random ones:
    # sorting i.i.d. uniform numbers gives a uniformly random permutation per row. `[n_examples, k]`
    if math.factorial(k) <= max_examples:
        perms = torch.tensor(list(itertools.permutations(range(k))), dtype=torch.long)
    else:
        perms = torch.rand(max_examples, k, generator=generator).argsort(dim=1)

    # $\lfloor 0.8^{1/k} k^2 \rfloor$ allowed pairs $(i, v)$, sampled without replacement,
    # as a mask `allowed[i, v]`, `[k, k]`
    n_allowed = int(train_fraction ** (1 / k) * k * k)
    allowed = torch.zeros(k * k, dtype=torch.bool)
    allowed[torch.randperm(k * k, generator=generator)[:n_allowed]] = True
    allowed = allowed.view(k, k)

    # A permutation is a training example when every pair $(i, \pi(i))$ is allowed. `[n_examples]`
    in_train = allowed[torch.arange(k), perms].all(dim=1)
    return Task(k, perms[in_train], perms[~in_train], allowed)


class Graphs(NamedTuple):
    """
    ## A batch of graphs

    A batch of $B$ examples is one graph with $B$ disjoint parts of $2k$ nodes each.
    In part $b$, nodes $2kb + i$ are the queries $q_i$ and nodes $2kb + k + j$ the key-value nodes $s_j$.
    """
    # Key and value id of every node, `[B * 2k]`
    keys: torch.Tensor
    values: torch.Tensor
    # The edges $s_j \to q_i$, `[2, B * k * k]`; edge $b k^2 + i k + j$ is $s_j \to q_i$ in graph $b$
    edge_index: torch.Tensor
    # The node index of every query, `[B * k]`, and its label $\pi(i)$, `[B * k]`
    queries: torch.Tensor
    labels: torch.Tensor


def make_graphs(perms: torch.Tensor) -> Graphs:
    """
    ### Building a batch

    The batch of graphs for the permutations `perms`, `[B, k]`.
    """
    n_graphs, k = perms.shape
    # The first node of each graph, `[B]`
    offsets = torch.arange(n_graphs) * 2 * k

    # Queries have the keys $0, \dots, k - 1$ and the empty value $k$;
    # key-value nodes have the keys $0, \dots, k - 1$ and the values $\pi(0), \dots, \pi(k - 1)$.
    keys = torch.arange(k).repeat(2).repeat(n_graphs)
    values = torch.cat([torch.full_like(perms, k), perms], dim=1).reshape(-1)

    # The $k^2$ edges of one graph, ordered by query $i$ and then by key-value node $j$:
    # the source $s_j$ is node $k + j$, the target $q_i$ is node $i$. `[2, k * k]`
    i = torch.arange(k).repeat_interleave(k)
    j = torch.arange(k).repeat(k)
    one_graph = torch.stack([k + j, i])
    # The same edges shifted into every part, `[2, B * k * k]`
    edge_index = (one_graph[:, None, :] + offsets[None, :, None]).reshape(2, -1)

    # The queries are the first $k$ nodes of every part; their labels are the permutations, row by row
    queries = (offsets[:, None] + torch.arange(k)[None, :]).reshape(-1)
    return Graphs(keys, values, edge_index, queries, perms.reshape(-1))


class LookupModel(nn.Module):
    """
    ## The model

    Embeddings, one attention layer over the bipartite edges, and a linear readout on the queries.
    """

    def __init__(self, k: int, model: str = 'gatv2', heads: int = 1, d_model: int = 128):
        super().__init__()
        if model not in LAYERS:
            raise ValueError(f"model must be one of {sorted(LAYERS)}, got {model!r}")
        self.k = k
        # $E_\text{key}$ and $E_\text{value}$: ids $0, \dots, k - 1$ and the empty value $k$
        self.key_embedding = nn.Embedding(k + 1, d_model)
        self.value_embedding = nn.Embedding(k + 1, d_model)
        # One attention layer, $H$ heads of $d / H$ features concatenated, no dropout, no bias;
        # GATv2 shares $W_l = W_r$ as in the paper's experiment.
        options = {'share_weights': True} if model == 'gatv2' else {}
        self.attention = LAYERS[model](d_model, d_model, heads, is_concat=True, dropout=0.0, bias=False,
                                       **options)
        # The readout $U$, from $d$ features to the $k$ values
        self.readout = nn.Linear(d_model, k, bias=False)

    def forward(self, graphs: Graphs, return_attention: bool = False):
        r"""
        Returns the logits of every query, `[B * k, k]`, and with `return_attention`
        the attention $\alpha_{ij}$ of query $q_i$ on key-value node $s_j$, `[B, k, k, heads]`.
        """
        # $h_n = \text{ReLU}(E_\text{key}[\text{key}_n] + E_\text{value}[\text{value}_n])$, `[B * 2k, d]`
        h = torch.relu(self.key_embedding(graphs.keys) + self.value_embedding(graphs.values))
        # $h'$, `[B * 2k, d]`, and the attention per edge, `[B * k * k, heads]`
        h, attention = self.attention(h, graphs.edge_index, return_attention=True)
        # $\hat{y}_i = U h'_{q_i}$ for the queries only, `[B * k, k]`
        logits = self.readout(h[graphs.queries])
        if return_attention:
            # The edges are ordered by graph, query $i$, key-value node $j$
            return logits, attention.view(-1, self.k, self.k, attention.shape[-1])
        return logits


def batches(perms: torch.Tensor, batch_size: int, generator: Optional[torch.Generator] = None
            ) -> Iterable[Graphs]:
    """
    ## Batches

    The examples in batches of `batch_size` graphs; shuffled when a `generator` is given.
    """
    if generator is not None:
        perms = perms[torch.randperm(len(perms), generator=generator)]
    for start in range(0, len(perms), batch_size):
        yield make_graphs(perms[start:start + batch_size])


@torch.no_grad()
def evaluate(network: LookupModel, perms: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """The fraction of query nodes answered correctly on the examples `perms`."""
    network.eval()
    correct = 0
    for graphs in batches(perms, batch_size):
        graphs = Graphs(*(t.to(device) for t in graphs))
        correct += (network(graphs).argmax(dim=-1) == graphs.labels).sum().item()
    return correct / perms.numel()


def train_epoch(network: LookupModel, optimizer: torch.optim.Optimizer, perms: torch.Tensor, batch_size: int,
                generator: torch.Generator, device: torch.device, show_progress: bool) -> Tuple[float, float]:
    """
    ### One pass over the training graphs

    In shuffled batches; returns the running loss and accuracy of the pass, as in the authors' code
    (each batch is scored just before its own update).
    """
    network.train()
    loss_func = nn.CrossEntropyLoss()
    total_loss, correct = 0.0, 0
    epoch_batches = batches(perms, batch_size, generator)
    if show_progress:
        epoch_batches = monit.iterate('train', epoch_batches, math.ceil(len(perms) / batch_size))
    for graphs in epoch_batches:
        graphs = Graphs(*(t.to(device) for t in graphs))
        logits = network(graphs)
        loss = loss_func(logits, graphs.labels)
        optimizer.zero_grad()
        loss.backward()
        # Clip the gradient norm to 1
        nn.utils.clip_grad_norm_(network.parameters(), 1.0)
        optimizer.step()
        total_loss += loss.item() * len(graphs.labels)
        correct += (logits.argmax(dim=-1) == graphs.labels).sum().item()
    return total_loss / perms.numel(), correct / perms.numel()


def run(k: int, model: str = 'gatv2', heads: int = 1, epochs: int = 300, seed: int = 0,
        max_examples: int = 32000, batch_size: int = 1024, learning_rate: float = 1e-3,
        patience: int = 30, lr_patience: int = 10, d_model: int = 128, device: str = 'cpu',
        track: bool = False, show_progress: bool = False) -> dict:
    """
    ## Training

    Trains one model on the task of size `k` and returns a dictionary: the settings, the numbers of
    training and test graphs, the number of epochs run and the selected one (`best_epoch`, from 0),
    the seconds of training, the final `train_accuracy` and `test_accuracy` of the selected weights,
    the per-epoch `history`, the trained `network` and its `task`.

    With `track` the metrics go to labml's `tracker`, to be recorded inside `experiment.start()`
    as `main` does; with `show_progress` labml's `monit` shows the progress of the epochs and batches.
    """
    for name, value in (('epochs', epochs), ('batch_size', batch_size), ('patience', patience),
                        ('lr_patience', lr_patience)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'{name} must be a positive integer, got {value!r}')
    task = make_task(k, seed, max_examples)
    if len(task.train) == 0 or len(task.test) == 0:
        raise ValueError(f'k = {k} with max_examples = {max_examples} gives {len(task.train)} training and '
                         f'{len(task.test)} test graphs; both must be non-empty: use more examples')
    device = torch.device(device)

    # The initial weights come from `seed`, without touching the global random state of the caller
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network = LookupModel(k, model, heads, d_model)
    network = network.to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    # Halve the learning rate when the training accuracy has not improved for `lr_patience` epochs
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode='max', factor=0.5,
                                                           patience=lr_patience)
    # The order of the training graphs in every epoch comes from `seed` too
    shuffle = torch.Generator().manual_seed(seed)

    history = []
    best_accuracy, best_epoch, best_state = -1.0, 0, None
    start = time.perf_counter()
    for epoch in (monit.loop(epochs) if show_progress else range(epochs)):
        learning_rate_used = optimizer.param_groups[0]['lr']
        loss, train_accuracy = train_epoch(network, optimizer, task.train, batch_size, shuffle, device,
                                           show_progress)
        # The test accuracy is recorded for the curves, never used for a decision
        test_accuracy = evaluate(network, task.test, batch_size, device)
        history.append({'epoch': epoch, 'loss': loss, 'train_accuracy': train_accuracy,
                        'test_accuracy': test_accuracy, 'learning_rate': learning_rate_used})
        if track:
            tracker.save(epoch, {'loss.train': loss, 'accuracy.train': train_accuracy,
                                 'accuracy.test': test_accuracy})

        # #### Model selection, learning rate and stopping, on the training accuracy alone
        #
        # Keep the weights at the end of the epoch with the best training accuracy so far.
        if train_accuracy > best_accuracy:
            best_accuracy, best_epoch = train_accuracy, epoch
            best_state = copy.deepcopy(network.state_dict())
        scheduler.step(train_accuracy)
        if train_accuracy == 1.0 or epoch - best_epoch >= patience:
            break
    seconds = time.perf_counter() - start

    # #### Final accuracy of the selected weights, on every training and test graph
    network.load_state_dict(best_state)
    result = {'k': k, 'model': model, 'heads': heads, 'seed': seed,
              'n_train': len(task.train), 'n_test': len(task.test),
              'epochs': len(history), 'best_epoch': best_epoch, 'seconds': round(seconds, 2),
              'train_accuracy': evaluate(network, task.train, batch_size, device),
              'test_accuracy': evaluate(network, task.test, batch_size, device),
              'history': history}
    if track:
        tracker.save(len(history), {'accuracy.final_train': result['train_accuracy'],
                                    'accuracy.final_test': result['test_accuracy']})
    return {**result, 'network': network, 'task': task}


def report(result: dict) -> str:
    """The final numbers, next to the paper's."""
    return '\n'.join([
        f"{result['model'].upper()} with {result['heads']} head(s) on DictionaryLookup, k = {result['k']}: "
        f"{result['n_train']} training and {result['n_test']} test graphs",
        f"train accuracy {100 * result['train_accuracy']:.2f} %, "
        f"test accuracy {100 * result['test_accuracy']:.2f} % (weights of epoch {result['best_epoch'] + 1} "
        f"of {result['epochs']}, {result['seconds']:.0f} s of training)",
        'paper (Figure 3): GATv2 with 1 head reaches 100 % train and test accuracy; GAT with 1 head does not '
        'fit the training set; GAT with 8 heads fits it but generalises poorly',
    ])


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    """Command-line flags for the settings of `run`."""
    parser = argparse.ArgumentParser(
        description='Train GATv2 or GAT on the DictionaryLookup task of the GATv2 paper.')
    parser.add_argument('--model', choices=sorted(LAYERS), default='gatv2')
    parser.add_argument('--heads', type=int, default=1)
    parser.add_argument('--k', type=int, default=10, help='the number of keys (and of queries) per graph')
    parser.add_argument('--epochs', type=int, default=300,
                        help='at most this many passes over the training graphs')
    parser.add_argument('--patience', type=int, default=30,
                        help='stop after this many epochs without a better training accuracy')
    parser.add_argument('--lr-patience', type=int, default=10,
                        help='halve the learning rate after this many epochs without a better training accuracy')
    parser.add_argument('--learning-rate', type=float, default=1e-3)
    parser.add_argument('--batch-size', type=int, default=1024, help='graphs per batch')
    parser.add_argument('--max-examples', type=int, default=32000,
                        help='use all permutations if there are at most this many, else this many random ones')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--summary-json', default=None,
                        help='write the final numbers and the history to this JSON file')
    parser.add_argument('--quiet', action='store_true', help='no progress output (the run is still kept in logs/)')
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> dict:
    """
    ## Running from the command line

    One labml run: the settings are recorded with `experiment.configs`, the metrics with `tracker`.
    """
    args = vars(parse_args(argv))
    summary_json, quiet = args.pop('summary_json'), args.pop('quiet')
    experiment.create(name='dictionary_lookup',
                      comment=f"{args['model']}, {args['heads']} head(s), k = {args['k']}",
                      writers={'file'} if quiet else {'screen', 'file'})
    experiment.configs(args)
    with experiment.start():
        result = run(**args, track=True, show_progress=not quiet)
    # Everything but the model and the task is plain data
    summary = {key: value for key, value in result.items() if key not in ('network', 'task')}
    print(report(summary))
    if summary_json:
        Path(summary_json).write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == '__main__':
    main(sys.argv[1:])
