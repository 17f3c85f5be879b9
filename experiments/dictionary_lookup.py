r"""
---
title: DictionaryLookup, the task GAT cannot learn
summary: >
  The synthetic benchmark of the GATv2 paper: every query node must attend to the one key
  that matches it. One GATv2 head fits it; GAT's static attention cannot fit the training
  set.
---

# DictionaryLookup: the task GAT cannot learn

The [GATv2 paper](https://arxiv.org/abs/2105.14491) (Brody, Alon & Yahav, ICLR 2022)
argues that [GAT](../labml_gat/gat.html) computes only *static* attention, and builds a
small problem that needs *dynamic* attention to make the point (Section 4.1 and Figure 3
of the paper). The task, the model and the training loop are in
[`labml_gat.lookup`](../labml_gat/lookup.html); this page runs them.

## The task

Pick a size $k$ and a permutation $\pi$ of $\{0, \dots, k - 1\}$. One example is a graph
of $2k$ nodes: $k$ **queries** $q_i$, with the key $i$ and an empty value, and $k$
**key-value** nodes $s_j$, with the key $j$ and the value $\pi(j)$; every $s_j$ sends a
message to every $q_i$, a complete bipartite graph. The label of $q_i$ is $\pi(i)$, the
value stored under its key: every query must attend to a **different** neighbour, chosen
by its own key.

Most of the examples are for training and the rest for testing (a share that nears 80 %
as $k$ grows; rounding the number of allowed pairs down makes it smaller at small $k$),
split so that every test graph stores some value under a key where no training graph ever
stored it: only a model that really looks the key up can answer it. With $k! \le 32000$ all
permutations are used, otherwise 32000 drawn at random (with repeats, each on one side of
the split).

### Why GAT cannot do it

With one GAT head the score of the edge $s_j \to q_i$ is

$$e_{ij} = \text{LeakyReLU}\big(a_1^\top W h_{q_i} + a_2^\top W h_{s_j}\big)$$

For a fixed query the first term is a constant and LeakyReLU is increasing, so every query
ranks the key-value nodes in the order of $a_2^\top W h_{s_j}$: the **same** node is the
favourite of every query (the paper's Theorem 1). One head cannot look up $k$ different
keys in one graph, however it is trained. With more heads GAT combines several fixed
rankings, which in the paper is enough to fit the training graphs but not to generalise.
[GATv2](../labml_gat/gatv2.html) scores the pair inside the non-linearity,

$$e_{ij} = a^\top \text{LeakyReLU}\big(W h_{q_i} + W h_{s_j}\big)$$

a small perceptron of both nodes, which can peak exactly where the keys agree.

## The model and the training

The authors' model, $d = 128$: node vectors
$h_n = \text{ReLU}(E_\text{key}[\text{key}_n] + E_\text{value}[\text{value}_n])$, one
attention layer of $H$ heads of $d / H$ features (GATv2 with $W_l = W_r$), and a linear
readout $U h'_{q_i}$ on the queries, trained with cross-entropy. A query has no self loop:
its own key reaches the output only through the attention scores.

Adam with learning rate $3 \cdot 10^{-3}$, batches of 32 graphs, the gradient norm
clipped to 1, no dropout. Small batches make many updates per pass, and a small batch of
small graphs stays in the processor's cache. An epoch makes *progress* when it removes
at least 5 % of the training errors left after the last epoch that made progress; the
learning rate is halved after 6 epochs without progress (more than 5, as PyTorch's
`ReduceLROnPlateau` counts), and training stops at 100 %
training accuracy or after 10 epochs without progress, keeping the weights of the best
training epoch: the test set never influences a decision. Counting the errors left makes the rule patient
near 100 %, where a model that is fitting removes few errors per epoch, and quick to
stop a model stuck near chance that gains a tenth of a percent per epoch. For small $k$
there are few examples (all $k!$ permutations), so an epoch repeats them to at least
5000 graphs (`--epoch-size`), to give every $k$ a comparable number of updates. The
authors train with batches of 1024 graphs at $10^{-3}$ for many thousands of epochs on a
GPU; these settings reach the same verdicts in minutes on a laptop's processor.

Every graph has the same edges, from each of the $k$ key-value nodes to each of the $k$
queries, so a batch is the key-value nodes' vectors `[B, k, d]`, the queries' `[k, d]`
and one `[k, k]` adjacency: the [dense layer](../labml_gat/gatv2.html) is the right tool,
called once on the pair of node sets for all the graphs of a batch (`--impl edges` trains
the [edge-list twin](../labml_gat/edges.html) on the union of the graphs instead; a test
shows that the two compute the same outputs and gradients).

## The paper's sweep

`--sweep` trains GAT and GATv2 with 1 and 8 heads for every $k$ of `--ks`, with the
settings above; with `--record` it writes the record
`experiments/results/dictionary_lookup_sweep.json` (with `--results FOLDER`, into that folder,
made if need be, as the benchmark makes its own):
the command, the date, the machine and, for every model, its accuracy, its epochs and
why it stopped (`fitted`, `patience` when it stopped making progress, or `epochs` when
the epoch budget ran out). The table and the figure, drawn from the record, are in the
[gallery example](gallery/plot_dictionary_lookup.html). The paper's claims against it
(`tests/test_dictionary_lookup.py` checks them against the record):

* **One GAT head cannot fit the training set** for any $k$ with more than one training
  graph, and at the largest $k$ it stays at chance.
* **One GATv2 head fits the training set at every $k$**, and answers the test graphs,
  whose key-value combinations it has never seen, once the training set is large: with
  all $k!$ permutations of a small $k$ there are only a few dozen training graphs, and
  some test answers are guesses.
* **More heads help GAT, not enough**: eight GAT heads fit the training graphs of small
  $k$ and come close at large $k$, but stay behind eight GATv2 heads on the test graphs:
  they learn the training combinations rather than the lookup.

At $k = 2$ the task degenerates: one training graph and one test graph, which a model
either gets right or not.

### What the sweep costs

The dense layer on a batch avoids the edge list's gathering and scattering, but GATv2's
score is a perceptron of every pair: a graph has $k^2$ (query, key-value) pairs of $d$
features, on an edge list just as on the dense grid. That grid, $B k^2 d$ numbers per
batch, is where the time of the sweep goes at large $k$; GAT's score needs one number per
node and stays cheap. It is where the memory goes too, several numbers a pair and feature,
tens of GiB a batch at $k$ in the thousands: a $k$ of `--k` or `--ks` whose grid or examples
would not fit in the free memory is refused before anything is made, with the memory it would
need.

## Which layer when

The same layer, four ways (`--which-layer` measures one GATv2 layer, forward and backward:
its processor time and the memory autograd keeps for the backward pass; `--record` records them
in `experiments/results/dictionary_lookup_layers.json`, which the gallery example draws):

* **Many small graphs, dense or complete** (DictionaryLookup, molecules): the dense layer,
  batched. Each graph's grid is small, and the batch runs as a few large tensor
  operations.
* **One small graph, or a dense one** of up to a few hundred nodes: the dense layer on
  its $N \times N$ grid.
* **Sparse graphs** (Cora and bigger): an edge list, whose cost grows with the edges, not
  with $N^2$: the [readable edge-list layer](../labml_gat/edges.html) for small ones, the
  [memory-lean one](../labml_gat/lean.html) from about a hundred thousand edges on. The
  lean layer keeps a byte per edge and head for the backward pass instead of a few
  numbers per edge and feature, and on large graphs, sparse or complete, it is also the
  fastest.
* Putting many small graphs into one block-diagonal dense graph is the worst of both: its
  grid grows with the square of the total.

## Usage

```bash
python experiments/dictionary_lookup.py --layer gatv2 --n-heads 1 --k 10
python experiments/dictionary_lookup.py --layer gat --n-heads 8 --k 10 \
    --summary-json gat8.json
python experiments/dictionary_lookup.py --layer gat --n-heads 8 --k 15 --seeds 5
python experiments/dictionary_lookup.py --sweep
python experiments/dictionary_lookup.py --which-layer
```

Each run is a labml run in `logs/dictionary_lookup/` (or in `--logs`). labml's progress line
is shown on a terminal, and `--quiet` turns it off there too. A flag that the run does not read, such as
`--record` for one model or `--k` for `--sweep`, is refused before anything runs.

A model is trained as the Cora experiments train theirs: with the seed `--seed`, or with
`--seeds N` the seeds `--seed` to `--seed` + N - 1, `--jobs` of them side by side. Each seed is
its own labml run (its comment ends with its seed) with its weights in `checkpoints/best.pt`;
the seed makes the split, the first weights and the order of the batches. The script prints the
table of the seeds and the mean and sample standard deviation of the test and the training
accuracy, and `--summary-json` writes the seeds' summary of the Cora experiments, one seed's
too, with the training accuracy where theirs have the validation accuracy: this task has no
validation set. `--sweep` and `--which-layer` run one seed.
"""

import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import torch
from labml import lab, monit, tracker

from labml_gat.lookup import (LAYERS, MAX_EXAMPLES, describe_layers, examples_bytes,
                              make_task, n_examples, time_layers, train,
                              training_step_bytes)
from labml_gat.results import RESULTS, model_name, number_of, record, write_json
from labml_gat.runs import epochs, labml_run, progress_on_screen
from labml_gat.seeds import format_summary, run_seeds, spread
from labml_gat.settings import (Settings, UsageError, argument_parser, check_apart,
                                check_at_least, check_device, check_logs,
                                check_one_record, check_output, check_positive,
                                check_threads, command, flag, labml_folders, setting)
from labml_gat.training import check_jobs, check_seeds, check_seeds_fit

# The names of the records of `--sweep` and `--which-layer`, which `--record` replaces in
# the project's records (`RESULTS`)
SWEEP_RECORD = 'dictionary_lookup_sweep'
LAYERS_RECORD = 'dictionary_lookup_layers'
# The graphs it times, as (nodes, graphs, density): many small graphs of 512 nodes in
# all, single graphs, and large sparse graphs of about 10 in-edges per node
WHICH_LAYER_GRAPHS = [(n_nodes, 512 // n_nodes, density) for n_nodes in (4, 16, 64)
                      for density in (0.1, 1.0)] + [
                     (n_nodes, 1, density) for n_nodes in (64, 256, 1024)
                     for density in (0.01, 0.1, 1.0)] + [
                     (n_nodes, 1, 10 / n_nodes) for n_nodes in (10_000, 100_000)]
# The settings each kind of run reads: a flag given for another kind would be ignored
TRAINING = ('epochs', 'patience', 'lr_patience', 'min_progress', 'learning_rate',
            'batch_size', 'max_examples', 'epoch_size', 'd_model', 'seed', 'impl',
            'device', 'threads', 'quiet', 'logs')
READS = {'a run of one model': (*TRAINING, 'layer', 'n_heads', 'k', 'summary_json',
                                'seeds', 'jobs'),
         '--sweep': (*TRAINING, 'sweep', 'ks', 'sweep_heads', 'record', 'results'),
         '--which-layer': ('which_layer', 'seed', 'threads', 'record', 'results')}


@dataclass
class LookupSettings(Settings):
    """
    ## Settings

    Every field is a flag: `n_heads` is `--n-heads`.
    """
    layer: str = setting('gatv2', 'the attention layer', choices=tuple(LAYERS))
    n_heads: int = setting(1, 'attention heads (they split the d-model features)')
    k: int = setting(10, 'keys (and queries) per graph')
    epochs: int = setting(50, 'at most this many passes over the training graphs')
    patience: int = setting(
        10, 'stop after this many epochs without progress')
    lr_patience: int = setting(
        5, 'halve the learning rate after more than this many epochs without progress')
    min_progress: float = setting(
        0.05, 'an epoch makes progress when it removes this fraction of the training '
              'errors left')
    learning_rate: float = setting(3e-3, 'Adam learning rate')
    batch_size: int = setting(32, 'graphs per batch')
    max_examples: int = setting(
        MAX_EXAMPLES, 'all permutations if at most this many, else this many random ones')
    epoch_size: int = setting(
        5000, 'repeat a smaller training set to this many graphs per epoch (0: one pass)')
    d_model: int = setting(128, 'features per node')
    seed: int = setting(0, 'seed of the split, the weights and the order of the batches '
                           '(with --seeds, the first seed)')
    seeds: int = setting(1, 'how many seeds to run, from --seed on')
    jobs: Optional[int] = setting(None, 'processes training the seeds of --seeds side '
                                        'by side (default: one per core, at most one per '
                                        'seed)')
    impl: str = setting('dense', 'dense layer on a batch, or edge list on the union',
                        choices=('dense', 'edges'))
    device: str = setting('cpu', 'torch device')
    threads: int = setting(1, 'torch threads: a batch of small graphs keeps one busy')
    summary_json: Optional[str] = setting(
        None, 'write the final numbers and the history here', path=True)
    logs: Optional[str] = setting(None, 'folder for the labml runs '
                                        "(default: labml's logs/)", path=True)
    quiet: bool = setting(False, 'no progress output (the run is still kept by labml)')
    sweep: bool = setting(
        False, 'train GAT and GATv2 with each of --sweep-heads for each k of --ks')
    ks: list = setting([2, 5, 10, 15, 20], 'the values of k of --sweep')
    sweep_heads: list = setting([1, 8], 'the head counts of --sweep')
    which_layer: bool = setting(
        False, 'time the dense layer (batched, one graph) and the edge-list layers')
    record: bool = setting(False, "write the record of --sweep or --which-layer into the "
                                  "project's records, experiments/results/")
    results: Optional[str] = setting(None, 'write the record of --sweep or --which-layer '
                                           'into this folder instead', path=True)

    def check(self) -> None:
        """Everything that cannot run, said in one line before a labml run is created."""
        super().check()
        if self.k < 2 or min(self.ks) < 2:
            raise UsageError('--k and --ks must be at least 2: with one key every query '
                             'has one neighbour, there is nothing to look up and no test '
                             'graph')
        check_at_least(self, 0, ('epoch_size',))
        check_seeds(self)
        check_at_least(self, 1, ('n_heads', 'epochs', 'patience', 'lr_patience',
                                 'batch_size', 'max_examples', 'd_model'))
        check_threads(self.threads)
        for name, n_heads in [('n_heads', self.n_heads),
                              *(('sweep_heads', n) for n in self.sweep_heads)]:
            if n_heads < 1 or self.d_model % n_heads:
                raise UsageError(f'{flag(name)} {n_heads}: the heads must be at least 1 '
                                 f'and divide --d-model ({self.d_model})')
        # Each model of the sweep once: twice would train it again and record it twice
        for name in ('ks', 'sweep_heads'):
            values = getattr(self, name)
            twice = [value for value in values if values.count(value) > 1]
            if twice:
                raise UsageError(f'{flag(name)} names {twice[0]} twice')
        check_positive('learning_rate', self.learning_rate)
        if not 0 <= self.min_progress < 1:
            raise UsageError(f'--min-progress must be a fraction in [0, 1), '
                             f'got {self.min_progress}')
        check_device(self.device)
        check_output('--summary-json', self.summary_json)
        check_logs(self.logs)
        check_apart('--summary-json', self.summary_json,
                    labml_folders(self.logs, self.experiment_name()))
        check_output('--results', self.results, folder=True)
        # Every size is checked against the memory before any task is made
        for k in (self.ks if self.sweep else [self.k]):
            self.check_memory(k)
        for k in (self.ks if self.sweep else [self.k]):
            task = make_task(k, self.seed, self.max_examples)
            if len(task.train) == 0 or len(task.test) == 0:
                raise UsageError(f'--k {k} with --max-examples {self.max_examples} gives '
                                 f'{len(task.train)} training and {len(task.test)} test '
                                 f'graphs: use more examples')

    def check_memory(self, k: int) -> None:
        """
        The examples of size `k` and a training step on them fit in the memory, judged from
        their sizes alone (the estimates of `labml_gat.lookup`), before anything is made: a
        `--k` of a thousand asks for tens of GiB a step, and would otherwise end in a
        traceback or the kernel's out-of-memory killer, minutes after the run started.
        Seeds trained side by side (`--seeds` with `--jobs`) each hold their own
        (`check_seeds_fit`).
        """
        name = f'k = {k} of --ks' if self.sweep else f'--k {k}'
        n = n_examples(k, self.max_examples)
        graphs = min(self.batch_size, n + self.epoch_size)
        models = (itertools.product(LAYERS, self.sweep_heads) if self.sweep
                  else [(self.layer, self.n_heads)])
        step = max(training_step_bytes(k, layer, n_heads, self.d_model, self.impl, graphs)
                   for layer, n_heads in models)
        examples = examples_bytes(k, self.max_examples, self.epoch_size)
        batch = (f'{name}: a batch of {graphs} graphs of {k} x {k} (query, key) pairs, '
                 f'{self.d_model} features each',
                 'use a smaller --k, --batch-size or --d-model')
        held = (f'{name}: {n} examples of {k} keys (--max-examples) and an epoch of at '
                f'least {self.epoch_size} graphs (--epoch-size)',
                'use a smaller --max-examples or --epoch-size')
        # The examples stay in the host's memory; a CUDA device holds the step alone
        if torch.device(self.device).type == 'cuda':
            check_seeds_fit(self, step, self.device, *batch)
            check_seeds_fit(self, examples, 'cpu', *held, per='for the examples')
        else:
            # One memory for both: the larger part names the flags to change
            larger = batch if step >= examples else held
            check_seeds_fit(self, step + examples, self.device, *larger)

    def check_given(self, given: set) -> None:
        """The flags given name one kind of run, and that run reads every one of them."""
        if self.sweep and self.which_layer:
            raise UsageError('--sweep and --which-layer are two different runs: give one')
        check_one_record(self.record, self.results)
        kind = ('--sweep' if self.sweep else '--which-layer' if self.which_layer
                else 'a run of one model')
        unread = sorted(given - set(READS[kind]))
        if unread:
            readers = [other for other, names in READS.items() if unread[0] in names]
            # A run of one model reads `--jobs` with `--seeds` alone (`check_jobs`)
            if unread[0] == 'jobs':
                readers = ['the seeds of a run of one model with --seeds']
            raise UsageError(f'{kind} does not read {flag(unread[0])}; '
                             f'it is for {" and ".join(readers)}')
        # `--jobs` without `--seeds`, in the words of every experiment that runs seeds
        check_jobs(given)

    def experiment_name(self) -> str:
        """The labml experiment of a model's runs: they are kept in `logs/<name>/`."""
        return 'dictionary_lookup'

    def model(self) -> str:
        """The model trained, as its labml run names it."""
        return f"{self.layer}, {number_of(self.n_heads, 'head')}, k = {self.k}"

    def comment(self, seed: int) -> str:
        """The comment of the labml run of one seed."""
        return f'{self.model()}, seed {seed}'

    def training(self) -> dict:
        """The arguments of `labml_gat.lookup.train` for one model."""
        names = ('layer', 'n_heads', 'k', 'epochs', 'patience', 'lr_patience',
                 'min_progress', 'learning_rate',
                 'batch_size', 'max_examples', 'epoch_size', 'd_model', 'seed', 'impl',
                 'device')
        return {name: getattr(self, name) for name in names}


def parse(argv: Optional[Sequence[str]]) -> Tuple[LookupSettings, set]:
    """
    The flags as settings, and the names of those given, as `Settings.from_command_line`
    returns them. A flag argparse cannot read ends with argparse's message; a value that
    cannot run raises `UsageError`, which `command` prints as one line.
    """
    parser = argument_parser(LookupSettings, 'Train GATv2 or GAT on the DictionaryLookup '
                                             'task of the GATv2 paper.')
    given = {name: value for name, value in vars(parser.parse_args(argv)).items()
             if value is not None}
    settings = LookupSettings(**given)
    settings.check()
    # `--no-record` and the like ask for what happens anyway
    settings.check_given({name for name, value in given.items() if value is not False})
    return settings, set(given)


def train_tracked(settings: LookupSettings, seed: int) -> dict:
    """The model of the settings trained with `seed`, in the labml run around it: the
    numbers of every epoch, then the final accuracies, go to its `tracker`."""
    progress = {'wrap_epochs': epochs,
                'wrap_batches': lambda batches, n: monit.iterate('train', batches, n)
                } if progress_on_screen(settings.quiet) else {}
    result = train(**{**settings.training(), 'seed': seed}, **progress, on_epoch=track)
    tracker.save(result['epochs'], {'accuracy.final_train': result['train_accuracy'],
                                    'accuracy.final_test': result['test_accuracy']})
    return result


def numbers(result: dict) -> dict:
    """The numbers of a trained model: the result of `train` without the model and the task."""
    return {key: value for key, value in result.items() if key not in ('model', 'task')}


def train_one_seed(settings: LookupSettings, data: None, seed: int,
                   checkpoint: Optional[Path]) -> Tuple[dict, torch.nn.Module]:
    """
    ## One model, one labml run per seed

    The model is trained once per seed (one without `--seeds`), each its own labml run, by
    the [seeds' runner](../labml_gat/seeds.html), side by side with `--jobs`, as the Cora
    experiments train theirs: the settings go to the run's configs, the metrics of every
    epoch to its `tracker`. The seed makes the task's split, the first weights and the
    order of the batches, so the seeds' spread is that of all three. A seed's weights, the
    best training epoch's, go to its run's `checkpoints/best.pt`. There is no validation
    set: the summary gives the mean and spread of the training accuracy beside the test's.
    The task is made from the seed, so there is no `data` to share between the seeds.
    """
    result = train_tracked(settings, seed)
    model = result['model']
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), checkpoint)
    return {**numbers(result), 'checkpoint': str(checkpoint)}, model


def train_seeds(settings: LookupSettings, explicit: set, argv: Sequence[str]) -> dict:
    """The seeds, their table, and their summary in `--summary-json`."""
    summary = run_seeds(settings, explicit, None, train_one_seed, argv)
    print(report_seeds(summary))
    if settings.summary_json:
        write_json(Path(settings.summary_json), summary)
    return summary


def track(epoch: int, record: dict) -> None:
    tracker.save(epoch, {'loss.train': record['loss'],
                         'accuracy.train': record['train_accuracy'],
                         'accuracy.test': record['test_accuracy']})


def report(result: dict) -> str:
    """The final numbers of one model."""
    return (f"{model_name(result['layer'], result['n_heads'])}, k = {result['k']}: "
            f"train accuracy {100 * result['train_accuracy']:.2f} %, "
            f"test accuracy {100 * result['test_accuracy']:.2f} % "
            f"({result['n_train']} training and {result['n_test']} test graphs; "
            f"weights of epoch {result['best_epoch']} of 0 to {result['epochs'] - 1}, "
            f"{result['seconds']:.0f} s of training)")


def report_seeds(summary: dict) -> str:
    """The table of the seeds, the mean and spread of the training accuracy, and how many
    graphs each seed's split has: at a small $k$ a few test graphs make each percent."""
    s = summary['settings']
    title = f"{model_name(s['layer'], s['n_heads'])}, k = {s['k']}"
    n_train, n_test = (summary['runs'][0][key] for key in ('n_train', 'n_test'))
    return '\n'.join([format_summary(summary, title),
                      f"train accuracy: {spread(summary['train_accuracy'])}",
                      f"each seed's split: {n_train} training and {n_test} test graphs"])


def sweep(settings: LookupSettings, explicit: set, argv: Sequence[str]) -> dict:
    """
    ## The sweep of the paper's Figure 3

    GAT and GATv2, with each head count, for every $k$: one labml run for the whole sweep,
    whose settings mark those given on the command line (`explicit`), as every run's do,
    and a record with the command, the machine and every model's numbers, written after
    every model so that a stopped sweep keeps what it finished. It returns the record's
    values.
    """
    folder, path = record_folder(settings), None
    configs = settings.as_dict()
    values = {'figure': 'GATv2 paper, Figure 3: DictionaryLookup accuracy against k',
              'settings': configs, 'runs': []}
    start, cpu_start = time.perf_counter(), time.process_time()
    with labml_run('dictionary_lookup_sweep', f'k = {settings.ks}', configs,
                   {name: configs[name] for name in explicit},
                   screen=progress_on_screen(settings.quiet), quiet=settings.quiet):
        # One head before eight: the paper's claims are about one head
        for k in settings.ks:
            for n_heads, layer in itertools.product(settings.sweep_heads,
                                                    ('gatv2', 'gat')):
                cpu = time.process_time()
                result = train(**{**settings.training(), 'k': k, 'layer': layer,
                                  'n_heads': n_heads})
                run = {key: result[key] for key in
                       ('k', 'layer', 'n_heads', 'n_train', 'n_test', 'epochs',
                        'best_epoch', 'seconds', 'train_accuracy', 'test_accuracy')}
                run['cpu_seconds'] = round(time.process_time() - cpu, 2)
                run['stopped_by'] = stopped_by(result, settings)
                run['history'] = {
                    split: [round(h[f'{split}_accuracy'], 5) for h in result['history']]
                    for split in ('train', 'test')}
                values['runs'].append(run)
                tracker.save(len(values['runs']),
                             {'accuracy.final_train': run['train_accuracy'],
                              'accuracy.final_test': run['test_accuracy']})
                values['total_seconds'] = round(time.perf_counter() - start, 1)
                values['total_cpu_seconds'] = round(time.process_time() - cpu_start, 1)
                if folder:
                    path = record(SWEEP_RECORD, made_by(argv), values, folder,
                                  settings.device)
                print(report(result), flush=True)
    if path:
        print(f'recorded in {path}')
    return values


def which_layer(settings: LookupSettings, argv: Sequence[str]) -> dict:
    """
    ## Measuring the four ways

    One GATv2 layer, forward and backward, on each kind of graph of `WHICH_LAYER_GRAPHS`,
    computed by the dense layer mapped over a batch, the dense layer on the union as one
    graph, the edge-list layer and the memory-lean edge-list layer: the processor time and
    the memory kept for the backward pass, printed and, when asked, recorded. It returns
    the record's values.
    """
    values = {'figure': 'which layer when: dense batched, dense single graph, edge list, '
                        'lean edge list',
              'threads': settings.threads,
              'unit': 'processor seconds, forward and backward; bytes saved for backward',
              'rows': []}
    for n_nodes, n_graphs, density in WHICH_LAYER_GRAPHS:
        row = time_layers(n_nodes, n_graphs, density, seed=settings.seed)
        values['rows'].append(row)
        print(describe_layers(row), flush=True)
    folder = record_folder(settings)
    if folder:
        print(f'recorded in {record(LAYERS_RECORD, made_by(argv), values, folder)}')
    return values


def record_folder(settings: LookupSettings) -> Optional[Path]:
    """
    Where a record goes: nowhere unless asked, as for every experiment of the project. The
    record of `labml_gat.results` makes the folder: `check` has seen that its parent takes
    files.
    """
    if settings.results:
        return Path(settings.results)
    return RESULTS if settings.record else None


def made_by(argv: Sequence[str]) -> str:
    """The command of a record: this script with the flags it was given (the record
    leaves out those that only say where files go, `results.rerun_command`)."""
    return 'python experiments/dictionary_lookup.py ' + ' '.join(argv)


def stopped_by(result: dict, settings: LookupSettings) -> str:
    """Why training ended: the training set fitted, no progress, or the epoch budget."""
    if result['history'][-1]['train_accuracy'] == 1.0:
        return 'fitted'
    return 'epochs' if result['epochs'] == settings.epochs else 'patience'


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """
    ## Running from the command line

    The settings are checked before anything runs; then one model over its seeds, the
    sweep or the layers' timing.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    settings, explicit = parse(argv)
    torch.set_num_threads(settings.threads)
    if settings.logs is not None:
        lab.configure({'experiments_path': str(Path(settings.logs).resolve())})
    if settings.sweep:
        return sweep(settings, explicit, argv)
    if settings.which_layer:
        return which_layer(settings, argv)
    return train_seeds(settings, explicit, argv)


if __name__ == '__main__':
    command(main)()
