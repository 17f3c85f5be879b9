r"""
---
title: The mini-batch route on a graph of a million nodes
summary: >
  The distributed mini-batch route with the lean layers on the benchmark's synthetic graph of a
  million nodes and eleven million edges: throughput and memory per process for one process and
  several, one shared copy of the graph per machine, and layer-by-layer evaluation.
---

# A million nodes, several processes

Cora's 2,708 nodes fit anywhere; this script runs the [mini-batch route](cora_minibatch.html) where
the graph matters: the [benchmark's](benchmark.html) random graph of $N = 10^6$ nodes with 10
random in-edges each on average (their targets are drawn at random) and a self loop each
(11 million edges) and 128 features per node, with the
[memory-lean two-layer model](../labml_gat/lean.html). It measures what
[data parallelism](../labml_gat/distributed.html) buys: the targets trained per second by one
process and by several, each with one thread, on the same global batches, and the memory of each.

The task is made so that the graph matters: the class of a node is the one of its first $C$
features that is largest on average over its in-neighbours. One process, or several:

```bash
OMP_NUM_THREADS=1 python experiments/synthetic_minibatch.py --record
OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 -- experiments/synthetic_minibatch.py --record
OMP_NUM_THREADS=1 python experiments/synthetic_minibatch.py --summary-json summary.json
```

The first run on a machine writes the graph, the features and the labels to files in `--cache`
(about 0.6 GB); every process of the machine maps the same files
([one copy per machine](../labml_gat/distributed.html#one-copy-of-the-graph-per-machine)).
A graph too large for the free memory is refused before anything is made (`graph_bytes`,
which counts every process of the machine under torchrun), and so is a folder in the
graph's place that is not its files (one made by hand, say); a build that fails or is
stopped leaves nothing in the cache.
It trains `--steps` global batches after `--warmup` more, then evaluates the validation nodes
[layer by layer](../labml_gat/distributed.html#evaluation-on-all-nodes-layer-by-layer).
A graph with fewer training batches than that is trained epoch after epoch, each in a new order.
Rank 0 says how far it is on the standard error and prints the result, one line, on the output.
With `--record`, rank 0 adds its numbers to `experiments/results/synthetic_minibatch.json`
(with `--results FOLDER`, to `synthetic_minibatch.json` there), one entry per number of
processes. The record has one date, machine and set of versions, so it
keeps the entry of another number of processes only when it was recorded on the same day, machine
and versions, with the same settings: those two are read side by side, with the ratio of their
throughputs. With `--summary-json PATH`, rank 0 writes the run's numbers to `PATH`, in the
shape of the Cora experiments' summaries (`summary`, below), whole or not at all; as every
output, the path is checked before anything runs.
"""

import os
import sys
import time
from dataclasses import dataclass
from datetime import date
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from labml import lab
from torch import nn

from labml_gat import distributed, results
from labml_gat.benchmarking import DEGREE_HELP, random_edges, random_graph
from labml_gat.datasets import DataFileError
from labml_gat.lean import LeanTwoLayerGAT
from labml_gat.sampling import NeighbourSampler
from labml_gat.seeds import summarize
from labml_gat.settings import (Settings, UsageError, check_apart, check_at_least,
                                check_device, check_folder_to_make, check_one_record,
                                check_output, check_positive, check_probability,
                                check_seed, check_threads, command, path_errors, setting)
from labml_gat.training import check_fits


@dataclass
class SyntheticSettings(Settings):
    """## Settings"""
    nodes: int = setting(1_000_000, 'nodes N of the random graph')
    degree: float = setting(10.0, DEGREE_HELP)
    in_features: int = setting(128, 'features per node')
    classes: int = setting(8, 'classes C')
    n_heads: int = setting(8, 'attention heads K of the first layer')
    n_hidden: int = setting(8, "features F' per head of the first layer")
    dropout: float = setting(0.6, "dropout on the layers' inputs and attention")
    learning_rate: float = setting(0.005, "Adam's learning rate")
    fanouts: List[int] = setting([10, 10], 'neighbours sampled per node at hop 1 and 2')
    batch_size: int = setting(1024, 'target nodes per global batch, over all processes')
    steps: int = setting(20, 'training steps measured')
    warmup: int = setting(2, 'training steps before the measured ones')
    eval_nodes: int = setting(10_000, 'validation nodes, evaluated layer by layer')
    eval_batch_size: int = setting(20_000, 'target nodes per batch of the evaluation')
    seed: int = setting(0, 'the seed of the graph, the weights and the batches')
    threads: int = setting(1, 'PyTorch threads per process')
    device: str = setting('cpu', 'cpu or cuda (one GPU per process under torchrun)')
    cache: Optional[str] = setting(None, "folder for the graph's files, made if missing "
                                         "(default: labml's data folder)", path=True)
    peer_timeout: int = setting(distributed.PEER_TIMEOUT, distributed.PEER_TIMEOUT_HELP)
    record: bool = setting(False, 'add the numbers to experiments/results/'
                                  'synthetic_minibatch.json')
    results: Optional[str] = setting(None, 'add the numbers to the record in this folder '
                                           'instead', path=True)
    summary_json: Optional[str] = setting(None, 'write the final numbers to this '
                                                'JSON file', path=True)

    def check(self) -> None:
        super().check()
        check_at_least(self, 1, ('nodes', 'in_features', 'n_heads', 'n_hidden',
                                 'batch_size', 'steps', 'eval_nodes', 'eval_batch_size',
                                 'peer_timeout'))
        check_threads(self.threads)
        check_positive('degree', self.degree)
        check_at_least(self, 2, ('classes',))
        check_at_least(self, 0, ('warmup',))
        check_seed(self.seed)
        if self.classes > self.in_features:
            raise UsageError(f'--classes {self.classes} needs as many features, '
                             f'got --in-features {self.in_features}')
        # Every process trains at least one of the nodes left for training
        if self.nodes - self.eval_nodes < distributed.world_size():
            raise UsageError(f'--eval-nodes {self.eval_nodes} leaves fewer than '
                             f'{distributed.world_size()} of the {self.nodes} nodes to '
                             f'train, one per process')
        # and evaluates at least one of the validation nodes: a process with none would
        # sample the blocks of no node, and end the job after its training
        if self.eval_nodes < distributed.world_size():
            raise UsageError(f'--eval-nodes {self.eval_nodes} leaves a process without a '
                             f'validation node: give at least one per process '
                             f'({distributed.world_size()})')
        if len(self.fanouts) != 2 or any(f == 0 or f < -1 for f in self.fanouts):
            raise UsageError(f'--fanouts needs two numbers, -1 or at least 1 each, '
                             f'got {self.fanouts}')
        check_probability('dropout', self.dropout)
        check_positive('learning_rate', self.learning_rate)
        check_device(self.device)
        distributed.check_settings(self)
        check_one_record(self.record, self.results)
        check_output('--results', self.results, folder=True)
        check_output('--summary-json', self.summary_json)
        check_apart('--summary-json', self.summary_json,
                    {'--results': self.results, '--cache': self.cache})
        # The size first: a graph too large for any memory has a folder name too long for
        # any file system, which is not a fault of `--cache`
        self.check_memory()
        self.check_cache()

    def edges(self) -> int:
        """The edges of the graph, as `random_graph` draws them: `degree` random in-edges
        per node on average (`random_edges`), then a self loop each."""
        return random_edges(self.nodes, self.degree) + self.nodes

    def graph_folder(self) -> Path:
        """
        The folder of this graph's files, in the cache. The graph is drawn from its number
        of random edges: a whole degree names it as a whole number (`10`, so `10` and
        `10.0` share it), any other by the number of random edges it draws (`2.5` at 1000
        nodes is `2500e`), so two degrees that draw as many edges share the graph, and a
        change in how a degree turns into a count changes the name.
        """
        cache = Path(self.cache).expanduser() if self.cache else \
            lab.get_data_path() / 'synthetic'
        degree = (str(int(self.degree)) if float(self.degree).is_integer()
                  else f'{random_edges(self.nodes, self.degree)}e')
        return cache / (f'graph_{self.nodes}_{degree}_{self.in_features}_'
                        f'{self.classes}_{self.seed}')

    def check_memory(self) -> None:
        """
        The graph fits in the memory, judged from its size (`graph_bytes`) before any of
        it is made: a graph too large would otherwise end in a traceback, or the kernel's
        out-of-memory killer, after its build has taken what the machine has.
        """
        try:
            cached = (self.graph_folder() / 'tensors.json').is_file()
        except OSError:
            # The cache cannot be read, which `check_cache` says, or the name is too long
            cached = False
        # The processes of this machine under torchrun map one copy of the graph, but each
        # holds its own orders of the nodes and hidden vectors
        processes = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
        needed, hidden = graph_bytes(self, cached, processes)
        # The graph stays in the host's memory; the hidden vectors are on the device, a GPU
        # of each process's own under torchrun
        on_host = torch.device(self.device).type != 'cuda'
        # Counts past any memory in three digits, not in the hundreds of a huge size
        def count(n: int) -> str:
            return f'{n}' if n < 10 ** 15 else f'{float(n):.3g}'
        what = (f'--nodes {count(self.nodes)}: a graph of {count(self.edges())} edges '
                f'and {self.in_features} features a node')
        check_fits(needed + hidden * processes * on_host, 'cpu', what,
                   'use fewer --nodes, or a smaller --degree or --in-features',
                   per='to build and train on')
        if not on_host:
            check_fits(hidden, self.device, what, 'use fewer --nodes', per='to evaluate')

    def check_cache(self) -> None:
        """
        The graph's files are there, or can be written: the cache is a folder that takes new
        files, or it is made, with the folders above it, in the nearest folder that exists.
        What is in the graph's place and is not its files (a folder made by hand, or by
        another version) is a `DataFileError`, said before the graph is built.
        """
        if self.cache == '':
            raise UsageError('--cache is empty; give a folder')
        with path_errors('--cache', self.cache):
            folder = self.graph_folder()
            distributed.check_graph_folder(folder)
            if (folder / 'tensors.json').is_file():
                return
        check_folder_to_make('--cache', self.cache, folder.parent.absolute())


def build_graph(s: SyntheticSettings) -> dict:
    """
    ## The graph, its features and its labels

    The in-neighbour lists of the [sampler](../labml_gat/sampling.html), the features, and the
    class of every node: the largest of its in-neighbours' mean first $C$ features.
    """
    x, edge_index = random_graph(s.nodes, s.degree, s.in_features, s.seed)
    sampler = NeighbourSampler(edge_index, s.nodes)
    src, dst = edge_index
    mean = torch.zeros(s.nodes, s.classes).index_add_(0, dst, x[src, :s.classes])
    return {'ptr': sampler.ptr, 'sources': sampler.sources, 'x': x,
            'y': mean.argmax(dim=1)}


def check_graph(data: dict, s: SyntheticSettings) -> None:
    """
    The graph read from the cache is the one of the settings: the tensors `build_graph` makes,
    of their shapes, the offsets growing from 0 to the number of edges, and every node and
    class in range. A folder from another version, or changed by hand, is a `DataFileError`
    that says to remove it, not a traceback or the training of another graph.
    """
    ptr, sources = data.get('ptr'), data.get('sources')
    shapes = {'ptr': ((s.nodes + 1,), torch.int64), 'y': ((s.nodes,), torch.int64),
              'x': ((s.nodes, s.in_features), torch.float32)}
    why = None
    if data.keys() != {'ptr', 'sources', 'x', 'y'}:
        why = f'its tensors are {", ".join(sorted(data))}'
    elif any((tuple(data[name].shape), data[name].dtype) != kind
             for name, kind in shapes.items()) or sources.dtype != torch.int64 \
            or sources.dim() != 1:
        why = 'its tensors have other shapes or types than these settings make'
    elif ptr[0] != 0 or ptr[-1] != len(sources) or (ptr.diff() < 0).any():
        why = 'its offsets are not those of its in-neighbour lists'
    elif len(sources) and (sources.min() < 0 or sources.max() >= s.nodes):
        why = 'it has in-neighbours out of range'
    elif data['y'].min() < 0 or data['y'].max() >= s.classes:
        why = 'it has classes out of range'
    if why:
        raise DataFileError(f'{s.graph_folder()}: not the graph of these settings '
                            f'({why}); '
                            f'remove the folder, and the graph is written again')


def graph_bytes(s: SyntheticSettings, cached: bool,
                processes: int = 1) -> Tuple[int, int]:
    r"""
    ## The memory the graph needs

    In bytes, from the settings alone: the graph's, in the host's memory, and the hidden
    vectors of the [layer-by-layer
    evaluation](../labml_gat/distributed.html#evaluation-on-all-nodes-layer-by-layer), on
    the device. With $N$ nodes, $F$ features, $C$ classes and
    $E = \text{degree} \cdot N + N$ edges (`edges`, the first term rounded to a whole
    number), `build_graph` holds at once the features, $4 N F$; the edge index, $16 E$;
    the sampler's edges without loops, their sort and its in-neighbour lists, $32 E$; the
    first $C$ features of every edge's source, to label the nodes, $4 E C$; and the offsets,
    in-degrees and labels, $24 N$. That bounds its peak, as the graph's tests check. The
    run after the build, or from the `cached` files, maps the features, the
    in-neighbour lists, the offsets and the labels, and holds three orders of the nodes,
    $8 N$ each; the evaluation makes the first layer's $K F'$ outputs of every node, and
    their activation, per process. The `processes` of one machine map one copy of the
    graph, and each holds its own orders of the nodes: the bytes of the graph count them
    all, the hidden vectors are one process's.
    """
    nodes, edges = s.nodes, s.edges()
    build = (4 * nodes * s.in_features + 16 * edges + 32 * edges + 4 * edges * s.classes
             + 24 * nodes)
    run = 4 * nodes * s.in_features + 8 * edges + 16 * nodes + 24 * nodes * processes
    hidden = 2 * 4 * nodes * s.n_heads * s.n_hidden
    return (run if cached else max(build, run)), hidden


def main(argv: Optional[Sequence[str]] = None) -> None:
    """## Training and measuring"""
    distributed.quiet_unless_main()
    with distributed.checks_said_once():
        s, _ = SyntheticSettings.from_command_line(
            argv, 'The distributed mini-batch route on a random graph of a million '
                  'nodes.')
    torch.set_num_threads(s.threads)
    load = os.getloadavg()[0]
    wall_start = time.perf_counter()
    with distributed.job(s.device, s.peer_timeout) as job:
        # Every launch of the job was given the same settings
        distributed.check_same_settings(s)
        # Progress goes to the standard error, from the first process: the output is the result
        say = (partial(print, file=sys.stderr, flush=True) if job.is_main
               else lambda text: None)
        if not (s.graph_folder() / 'tensors.json').is_file():
            say(f'building the graph of {s.nodes} nodes into {s.graph_folder()} '
                f'(once: later runs read it)')
        data = distributed.shared_tensors(s.graph_folder(), lambda: build_graph(s))
        check_graph(data, s)
        sampler = NeighbourSampler.from_csr(data['ptr'], data['sources'])
        x, y = data['x'], data['y']
        # The last `eval_nodes` of a random order are the validation nodes
        order = torch.randperm(s.nodes, generator=torch.Generator().manual_seed(s.seed))
        train_nodes, val_nodes = order[:-s.eval_nodes], order[-s.eval_nodes:]

        torch.manual_seed(s.seed)
        module = LeanTwoLayerGAT(s.in_features, s.classes, s.n_heads, s.n_hidden,
                                 s.dropout).to(job.device)
        model = distributed.wrap(module)
        distributed.own_dropout(s.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=s.learning_rate)
        shares = list(islice(global_batches(train_nodes, s), s.warmup + s.steps))
        samples = distributed.sample_generator(s.seed)

        # Training steps, the last `steps` of them timed, all ranks together
        model.train()
        say(f'{len(shares)} training steps, the first {s.warmup} not timed')
        for step, (seeds, global_size) in enumerate(shares):
            if step == s.warmup:
                distributed.barrier()
                start = time.perf_counter()
            if step % max(1, len(shares) // 10) == 0:
                say(f'step {step + 1} of {len(shares)}')
            # The features stay in the shared CPU copy: their rows `n_id` go to the device
            batch = sampler.sample(seeds, s.fanouts, samples)
            logits = model(x[batch.n_id].to(job.device),
                           [block.edge_index.to(job.device) for block in batch.blocks])
            labels = y[seeds].to(job.device)
            loss = nn.functional.cross_entropy(logits[:len(seeds)], labels,
                                               reduction='sum')
            optimizer.zero_grad()
            (loss * job.world_size / global_size).backward()
            optimizer.step()
        distributed.barrier()
        seconds = time.perf_counter() - start
        # An epoch's last batch can be smaller: the rate counts the targets trained
        targets = sum(size for _, size in shares[s.warmup:])
        memory = distributed.gather(distributed.memory())

        # Validation, layer by layer
        say(f'validation of {s.eval_nodes} nodes, layer by layer')
        start = time.perf_counter()
        mine, scores = distributed.layer_by_layer(module, sampler, x, val_nodes,
                                                  s.eval_batch_size)
        correct, = distributed.sum_over_ranks(
            (scores.argmax(dim=1).cpu() == y[mine]).sum().item())
        eval_seconds = time.perf_counter() - start
    wall_seconds = time.perf_counter() - wall_start

    if not job.is_main:
        return
    mib = [{kind: round(value / 2 ** 20) for kind, value in m.items()} for m in memory]
    values = {'processes': job.world_size, 'threads': s.threads,
              'targets_per_second': round(targets / seconds, 1),
              'step_seconds': round(seconds / s.steps, 3), 'steps': s.steps,
              'batch_size': s.batch_size, 'memory_mib_per_rank': mib,
              'eval_seconds': round(eval_seconds, 1),
              'val_accuracy_after_steps': round(correct / s.eval_nodes, 4),
              'load_average': [round(load, 1), round(os.getloadavg()[0], 1)],
              'command': command_line(argv, job.world_size),
              'settings': measured_settings(s)}
    print(f"{results.number_of(job.world_size, 'process', 'processes')}, "
          f"{results.number_of(s.threads, 'thread')} each: "
          f"{values['targets_per_second']} targets/s, {values['step_seconds']} s a step; "
          f"memory per rank, MiB (resident / proportional / private): "
          f"{results.memory_per_rank(mib)}; layer-by-layer validation of "
          f"{s.eval_nodes} nodes in {values['eval_seconds']} s")
    if s.record or s.results:
        print(f'recorded in {record(values, s, s.results and Path(s.results))}')
    if s.summary_json:
        results.write_json(Path(s.summary_json),
                           summary(values, s, seconds, wall_seconds, load, argv))


def summary(values: dict, s: SyntheticSettings, seconds: float, wall_seconds: float,
            load: float, argv: Optional[Sequence[str]] = None) -> dict:
    """
    ## The summary

    What `--summary-json` writes, in the shape of the mini-batch Cora experiment's summary
    where it applies: all the settings, the one seed's run, the validation accuracy over the
    seeds (one, the `mean` in percent), the seconds of the timed steps, the processes, the
    wall-clock time and the load average as the run started; `torchrun` where torchrun
    started more than one process (torchrun of one runs the script as `python` does, and
    its summary is the same); and, as every summary says, the script's file name and the
    words after it (`argv`, `None`: `sys.argv[1:]`).
    The run holds the numbers of a record's entry, its validation accuracy
    (`val_accuracy_after_steps` there) as a fraction. There is no test accuracy: the run
    measures a few steps of training, not a trained model.
    """
    accuracy = values['val_accuracy_after_steps']
    run = {'seed': s.seed, 'val_accuracy': accuracy, 'seconds': round(seconds, 2),
           **{key: value for key, value in values.items()
              if key not in ('settings', 'val_accuracy_after_steps')}}
    processes = values['processes']
    return {'settings': s.as_dict(), 'script': Path(__file__).name,
            'argv': list(sys.argv[1:] if argv is None else argv),
            'runs': [run], 'val_accuracy': summarize([accuracy]),
            'seconds': run['seconds'], 'jobs': processes,
            'wall_seconds': round(wall_seconds, 2), 'load_average': round(load, 1),
            **({'torchrun': True} if processes > 1 else {})}


def global_batches(nodes: torch.Tensor, s: SyntheticSettings
                   ) -> Iterator[Tuple[torch.Tensor, int]]:
    """
    This rank's shares of the global batches of `nodes`, epoch after epoch, each epoch in a new
    order: as many as the steps take, however few batches the graph has.
    """
    generator = torch.Generator().manual_seed(s.seed)
    while True:
        yield from distributed.epoch_shares(nodes, s.batch_size, generator)


def command_line(argv: Optional[Sequence[str]], processes: int) -> str:
    """The command that ran this, as the page shows it: with torchrun on several machines,
    their number and the processes of each, as torchrun tells its processes; as every
    record's, without the flags that only say where files go (`--cache`, `--summary-json`)
    or how long to wait for the other processes (`results.rerun_command`)."""
    args = ' '.join(sys.argv[1:] if argv is None else argv)
    machines = int(os.environ.get('GROUP_WORLD_SIZE', 1))
    per_machine = int(os.environ.get('LOCAL_WORLD_SIZE', processes))
    nodes = f'--nnodes {machines} ' if machines > 1 else ''
    launch = ('python' if not distributed.launched()
              else f'torchrun {nodes}--nproc-per-node {per_machine} --')
    return results.rerun_command(
        f'OMP_NUM_THREADS=1 {launch} experiments/synthetic_minibatch.py {args}'.strip())


def measured_settings(s: SyntheticSettings) -> dict:
    """The settings that shape the measurement: all but where files go and how long to wait."""
    return {key: value for key, value in s.as_dict().items()
            if key not in ('cache', 'peer_timeout', 'record', 'results', 'summary_json')}


def record(values: dict, s: SyntheticSettings, folder: Optional[Path] = None) -> Path:
    """
    The record keeps one entry per number of processes, so that the runs with one and with two
    processes, made by two commands, are read side by side, with the ratio of their throughputs.
    Its date, machine and versions are those of this run, so it keeps an earlier entry only
    when they were that entry's too, and its settings were this run's.
    """
    name = 'synthetic_minibatch'
    folder = folder or results.RESULTS
    runs = {**earlier_runs(name, folder, s, values['processes']),
            str(values['processes']): values}
    summary = {'runs': runs, 'nodes': s.nodes, 'edges': s.edges()}
    if '1' in runs and '2' in runs:
        one, two = runs['1'], runs['2']
        summary['speedup_2_over_1'] = round(
            two['targets_per_second'] / one['targets_per_second'], 2)
        summary['rss_ratio_2_over_1'] = round(
            max(m['rss'] for m in two['memory_mib_per_rank'])
            / one['memory_mib_per_rank'][0]['rss'], 2)
    commands = ' ; '.join(run['command'] for _, run in sorted(runs.items()))
    return results.record(name, commands, summary, folder, s.device)


def earlier_runs(name: str, folder: Path, s: SyntheticSettings, processes: int) -> dict:
    """
    The entries of the record `name` for other numbers of processes than this run's that were
    measured as this run is. The others are dropped, and said so.
    """
    if not (folder / f'{name}.json').is_file():
        return {}
    earlier = results.load(name, folder)
    alike = (earlier['date'] == date.today().isoformat()
             and earlier['machine'] == results.machine(s.device)
             and earlier['versions'] == results.versions())
    runs = {key: run for key, run in earlier['values']['runs'].items()
            if key != str(processes)}
    kept = {key: run for key, run in runs.items()
            if alike and run.get('settings') == measured_settings(s)}
    for key in sorted(runs.keys() - kept.keys()):
        print(f"dropped from the record: the run with "
              f"{results.number_of(int(key), 'process', 'processes')} of "
              f"{earlier['date']}, measured on another day, machine, versions or "
              f"settings")
    return kept


if __name__ == '__main__':
    command(main, torchrun=True)()
