r"""
---
title: "Appendix: what the layers cost"
summary: >
  Our edge-list and memory-lean GATv2 layers against PyG's GATv2Conv: time per training step
  and evaluation forward, and peak memory, recorded with the command that measured them.
---

# Appendix: what the layers cost

This script measures our [edge-list](../labml_gat/edges.html) and
[memory-lean](../labml_gat/lean.html) GATv2 layers against PyG's `GATv2Conv`,
with the same inputs for all: the same dense features and the same `edge_index`, self
loops included (the layers add none). The random graphs' edges are sorted by target, the
order in which the drop-in layer neither sorts them nor keeps their order. The machinery
(worker processes, peak memory, alternating rounds, records, table and plot) is in [`labml_gat/benchmarking.py`](../labml_gat/benchmarking.html).

The figures:

* `cora`: the [two-layer model](../labml_gat/model.html) of the GAT paper on Cora,
  with the same dense 1433-feature input for ours and PyG's, and the Cora experiment's own
  model (`fast`: the [speed-ups](../labml_gat/fast.html) on sparse features);
* `layer_N`: one layer (128 input features, 8 heads of 8 features) on a random graph of `N`
  nodes with about 10 in-edges each: the bar is `GATv2Conv` itself, and the
  [drop-in `GATv2Conv`](../labml_gat/gatv2_conv.html) (`dropin`) is built with the same
  arguments; `layer_N_edgeD` gives both `D` edge features per edge (`--edge-dims`);
  `layer_N_gat` is the same with GAT's layers (`--gat`): PyG's `GATConv` and the
  drop-in one;
* `scale_N`: one full-batch training step of the two-layer model on a random graph of `N`
  nodes, each implementation in its own process, reporting the peak memory above data and
  model (or the error, if it does not fit). Its `lean` row is the
  [leaner two-layer model](../labml_gat/lean.html#the-two-layer-model-leaner), which makes
  the model's dropouts and ELU inside the layers' projections instead of keeping them.

With `--device cuda` the layers run on a GPU: times are wall-clock times between
synchronisations, peaks are the CUDA allocator's, and the figures are named for the
device (`layer_100000_cuda`).

With `--record`, each figure replaces its record `experiments/results/benchmark_<figure>.json`
(command, date, machine, versions), from which the pages render their numbers:

```bash
python experiments/benchmark.py --threads 1 --edge-dims 0 16 --record  # cora, layer_100000
python experiments/benchmark.py --figures layer --impls dropin pyg --edge-dims 0 16 \
    --threads 2 --repeats 5 --record
python experiments/benchmark.py --figures layer --layer-nodes 1000000 \
    --impls lean dropin pyg --rounds 2 --warmup 1 --threads 1 --record
python experiments/benchmark.py --figures layer --layer-nodes 1000000 \
    --impls dropin pyg --edge-dims 16 --rounds 2 --warmup 1 --threads 1 --record
python experiments/benchmark.py --figures layer --layer-nodes 1000000 \
    --impls dropin pyg --edge-dims 0 16 --rounds 2 --warmup 1 --threads 2 --record
python experiments/benchmark.py --figures layer --impls dropin pyg --gat --edge-dims 0 16 \
    --threads 1 --record
python experiments/benchmark.py --figures scale --scale-nodes 1000000 --threads 1 --record
python experiments/benchmark.py --figures scale --scale-nodes 10000000 --threads 1 \
    --record
```
"""

import importlib.util
import itertools
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from labml_gat import benchmarking, results
from labml_gat.settings import (Settings, UsageError, check_apart, check_at_least,
                                check_device, check_folder, check_image,
                                check_one_record, check_output, check_positive,
                                check_threads, command, flag, prog, setting)


# What `--help` says the script does
DESCRIPTION = ("Time per training step and evaluation forward, and peak memory, of the "
               "edge-list and memory-lean GATv2 layers against PyG's GATv2Conv. "
               "Nothing is recorded unless asked (--record, or --results FOLDER).")


# The figures that read each flag of some figures alone: given for none of those measured,
# it would be ignored. The scale figures measure peaks alone, without alternating rounds
READ_BY = {'layer_nodes': ('layer',), 'impls': ('layer',), 'edge_dims': ('layer',),
           'rounds': ('layer',), 'cora_impls': ('cora',), 'cora_rounds': ('cora',),
           'data_dir': ('cora',), 'scale_nodes': ('scale',), 'scale_impls': ('scale',),
           'warmup': ('cora', 'layer'), 'degree': ('layer', 'scale'),
           'in_features': ('layer', 'scale')}


@dataclass
class BenchmarkSettings(Settings):
    """
    ## Settings

    What to measure, on which graphs, and how often; the flags follow the experiments'
    [convention](../labml_gat/settings.html).
    """
    figures: List[str] = setting(['cora', 'layer'], 'what to measure: cora, layer, scale')
    layer_nodes: List[int] = setting([100_000], 'nodes of the layer figures\' graphs')
    scale_nodes: List[int] = setting([1_000_000], 'nodes of the scale figures\' graphs')
    impls: List[str] = setting(['edges', 'lean', 'dropin', 'pyg'], 'implementations')
    edge_dims: List[int] = setting([0], 'edge features per edge of the layer figures, '
                                        'one figure each (0: none; beyond 0 only dropin '
                                        'and pyg are measured)')
    gat: bool = setting(False, "layer figures of GAT's layers instead (PyG's GATConv "
                               'and the drop-in one: dropin and pyg only)')
    cora_impls: List[str] = setting(['fast', 'edges', 'lean', 'dropin', 'pyg'],
                                    "implementations, Cora (fast: the Cora experiment's "
                                    'model, on sparse features)')
    scale_impls: List[str] = setting(['lean', 'pyg'], 'implementations, scale figures')
    degree: float = setting(10.0, benchmarking.DEGREE_HELP)
    in_features: int = setting(128, 'input features of the random graphs')
    n_heads: int = setting(8, 'attention heads')
    n_hidden: int = setting(8, 'features per head')
    rounds: int = setting(5, 'alternating rounds kept, random graphs')
    cora_rounds: int = setting(40, 'alternating rounds kept, Cora (about a second each)')
    warmup: int = setting(1, 'alternating rounds run first and not kept')
    repeats: int = setting(1, 'runs of the alternating rounds and of each peak, each '
                              'in a fresh process: the times, peaks and ratios are the '
                              'medians of the runs')
    threads: int = setting(1, 'torch threads of every worker process')
    device: str = setting('cpu', 'where the layers run: cpu, or cuda (times by the wall '
                                 'clock, peaks by the CUDA allocator)')
    data_dir: Optional[str] = setting(None, 'folder of the Planetoid files (default: '
                                            '$LABML_GAT_DATA, else ../shared/data/'
                                            'planetoid beside the clone, else the '
                                            'download cache)', path=True)
    record: bool = setting(False, "record each measured figure in the project's records, "
                                  'experiments/results/')
    results: Optional[str] = setting(None, 'record each measured figure in this folder '
                                           'instead', path=True)
    plot: Optional[str] = setting(None, 'save the ratio plot to this image file',
                                  path=True)

    def check(self) -> None:
        super().check()
        check_at_least(self, 1, ('n_heads', 'n_hidden', 'rounds', 'cora_rounds',
                                 'in_features', 'repeats'))
        check_threads(self.threads)
        check_at_least(self, 0, ('warmup',))
        for name, allowed in (('figures', ('cora', 'layer', 'scale')),
                              ('impls', benchmarking.LAYER_IMPLS),
                              ('cora_impls', benchmarking.IMPLS),
                              ('scale_impls', benchmarking.LAYER_IMPLS)):
            for value in getattr(self, name):
                if value not in allowed:
                    raise UsageError(f'--{name.replace("_", "-")} takes '
                                     f'{", ".join(allowed)}, got {value!r}')
        if min(self.edge_dims) < 0:
            raise UsageError(f'--edge-dims must be 0 or more, got {min(self.edge_dims)}')
        edge_impls = benchmarking.EDGE_FEATURE_IMPLS
        if ('layer' in self.figures and max(self.edge_dims) > 0
                and not set(self.impls) & set(edge_impls)):
            raise UsageError(f'--edge-dims {max(self.edge_dims)}: none of --impls '
                             f'{" ".join(self.impls)} takes edge features; only '
                             f'{" and ".join(edge_impls)} do')
        if self.gat and 'layer' in self.figures and \
                not set(self.impls) & set(benchmarking.GAT_IMPLS):
            raise UsageError(f'--gat: none of --impls {" ".join(self.impls)} has a GAT '
                             f'layer; only {" and ".join(benchmarking.GAT_IMPLS)} do')
        for name in ('layer_nodes', 'scale_nodes'):
            if min(getattr(self, name)) < 2:
                raise UsageError(f'{flag(name)} must be at least 2, '
                                 f'got {min(getattr(self, name))}')
        check_positive('degree', self.degree)
        check_device(self.device)
        if self.device.startswith('mps'):
            raise UsageError('--device mps: the benchmark measures cpu or cuda')
        if self.gat and 'layer' not in self.figures:
            raise UsageError(f'--gat measures the layer figures; --figures '
                             f'{" ".join(self.figures)} has none')
        for name in ('figures', 'impls', 'cora_impls', 'scale_impls', 'layer_nodes',
                     'scale_nodes', 'edge_dims'):
            values = getattr(self, name)
            twice = [value for value in values if values.count(value) > 1]
            if twice:
                raise UsageError(f'{flag(name)} names {twice[0]} twice')
        measured = {impl for _, task, _, _ in tasks(self) for impl in task['impls']}
        peer = benchmarking.PEER
        if peer in measured and not importlib.util.find_spec('torch_geometric'):
            raise UsageError(f"{peer} (PyG's layers, the bar of every ratio) needs "
                             f'torch_geometric, which is not installed: pip install '
                             f'torch_geometric, or leave {peer} out')
        check_one_record(self.record, self.results)
        if self.record:
            check_replaced_records(self)
        check_output('--results', self.results, folder=True)
        check_image('--plot', self.plot)
        if self.plot:
            check_ratios_to_plot(self)
        check_apart('--plot', self.plot, {'--results': self.results})
        check_folder('--data-dir', self.data_dir)
        if 'cora' in self.figures:
            check_cora(self.data_dir)

    def check_given(self, given: set) -> None:
        """The flags given are read by a figure measured, as the experiments refuse a flag
        their run does not read (`given` names the settings given on the command line)."""
        for name in sorted(given & set(READ_BY)):
            if not set(READ_BY[name]) & set(self.figures):
                raise UsageError(f'--figures {" ".join(self.figures)} does not read '
                                 f'{flag(name)}; it is for --figures '
                                 f'{" or ".join(READ_BY[name])}')


def check_cora(data_dir: Optional[str]) -> None:
    """
    ## Checks before anything runs

    The Cora files must be there before anything is measured (nothing is downloaded)."""
    from labml_gat.datasets import load_planetoid
    try:
        load_planetoid('cora', data_dir, download=False)
    except (OSError, ValueError) as error:
        raise UsageError(f'cannot load Cora for the cora figure, and the benchmark does '
                         f'not download: {str(error).rstrip(".")}; or leave the figure '
                         f'out with --figures layer') from None


def check_ratios_to_plot(s: BenchmarkSettings) -> None:
    """`--plot` draws ratios to PyG: a figure must measure PyG and another implementation,
    or the image would hold no bar."""
    peer = benchmarking.PEER
    if not any(peer in task['impls'] and len(task['impls']) > 1
               for _, task, _, _ in tasks(s)):
        raise UsageError(f'--plot draws the ratios to {peer}, and no figure measures '
                         f'{peer} beside another implementation: add one, or leave '
                         f'--plot out')


def check_replaced_records(s: BenchmarkSettings) -> None:
    """
    `--record` replaces the records the pages quote: not with another graph or model under
    the same name, nor without some of their rows.
    """
    for name, task, _, _ in tasks(s):
        record = results.benchmark_record_name(name)
        path = results.RESULTS / f'{record}.json'
        if not path.is_file():
            continue
        old = results.load(record)['values']
        for key in ('degree', 'in_features', 'n_heads', 'n_hidden'):
            if key in old and old[key] != task.get(key, old[key]):
                raise UsageError(f'--record would replace {path.name}, measured with '
                                 f'{flag(key)} {old[key]}, by one with {flag(key)} '
                                 f'{task[key]}: record it elsewhere with --results '
                                 f'FOLDER')
        lost = [impl for impl in old['impls'] if impl not in task['impls']]
        if lost:
            raise UsageError(f'--record would replace {path.name} without its rows of '
                             f'{" and ".join(lost)}: measure them too, or record '
                             f'elsewhere with --results FOLDER')


def tasks(s: BenchmarkSettings) -> List[tuple]:
    """
    ## The figures

    `(name, task, peaks, alternating)` for every figure asked for.
    """
    common = dict(n_heads=s.n_heads, n_hidden=s.n_hidden, threads=s.threads,
                  rounds=s.rounds, warmup=s.warmup, repeats=s.repeats, steps=1,
                  device=s.device)
    # Figures with more than one thread, or on a GPU, are named for it, beside the
    # one-thread CPU ones
    suffix = '' if s.threads == 1 else f'_threads{s.threads}'
    if benchmarking.on_gpu(dict(device=s.device)):
        suffix = '_' + s.device.replace(':', '')
    result = []
    if 'cora' in s.figures:
        result.append((f'cora{suffix}', dict(common, level='model', graph='cora',
                                    data_dir=s.data_dir, impls=s.cora_impls,
                                    rounds=s.cora_rounds), True, True))
    random = dict(common, graph='random', degree=s.degree, in_features=s.in_features)
    if 'layer' in s.figures:
        for n, edge_dim in itertools.product(s.layer_nodes, s.edge_dims):
            impls = [i for i in s.impls if (not edge_dim or
                                            i in benchmarking.EDGE_FEATURE_IMPLS)
                     and (not s.gat or i in benchmarking.GAT_IMPLS)]
            name = f'layer_{n}' + ('_gat' if s.gat else '') + \
                (f'_edge{edge_dim}' if edge_dim else '') + suffix
            result.append((name, dict(random, level='layer', n_nodes=n, impls=impls,
                                      edge_dim=edge_dim, gat=s.gat), True, True))
    if 'scale' in s.figures:
        for n in s.scale_nodes:
            # The lean rows use the model whose dropouts and ELU are inside the projections
            result.append((f'scale_{n}{suffix}', dict(random, level='model', n_nodes=n,
                                              impls=s.scale_impls, lean_model=True),
                           True, False))
    return result


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """
    ## Measuring and recording

    Each figure is measured, printed and recorded in turn, so that a long run keeps what it
    has measured if it is stopped. A figure whose measurement failed is printed but never
    recorded, and the script then ends with status 1; an implementation that runs out of
    memory is a result of its figure, not a failure, unless every one of them did.
    """
    s, _ = BenchmarkSettings.from_command_line(argv, description=DESCRIPTION)
    line = 'python experiments/benchmark.py ' + shlex.join(sys.argv[1:] if argv is None
                                                             else list(argv))
    figures, failures, recorded = [], [], []
    for name, task, peaks, alternating in tasks(s):
        print(f'measuring {name} ...', file=sys.stderr, flush=True)
        figures.append(benchmarking.measure_figure(name, task, peaks, alternating))
        # The table's header once, then each figure's rows as it is measured
        table = results.figures_table(figures[-1:])
        print(table if len(figures) == 1 else table[len(results.FIGURES_HEADER) + 1:],
              flush=True)
        error = benchmarking.failure(figures[-1])
        if error:
            failures.append(f'{name} ({results.short_error(error)})')
        # Each figure is recorded as soon as it is measured, when asked to
        elif s.record or s.results:
            folder = Path(s.results) if s.results else None
            recorded.append(benchmarking.save_figure(figures[-1], line.strip(), s.threads,
                                                     folder))
    print('\n' + '\n'.join(f"* `{r['figure']}`: {results.describe_figure(r)}"
                           for r in figures))
    for path in recorded:
        print(f'recorded in {path}')
    if s.plot:
        benchmarking.plot(figures, s.plot)
    if failures:
        raise SystemExit(f'{prog()}: error: the measurement failed, nothing recorded '
                         f'of it: ' + '; '.join(failures))
    return figures


if __name__ == '__main__':
    command(main)()
