r"""
---
title: Benchmark machinery
summary: >
  Worker processes, peak resident memory, alternating rounds, ratios, recorded results
  as JSON, and the table and plot rendered from them.
---

# Benchmark machinery

The [benchmark appendix](../experiments/benchmark.html) compares our layers, and the
[drop-in `GATv2Conv`](gatv2_conv.html), with PyG's `GATv2Conv`. This module holds what it needs, so that the appendix stays short.

* **Times** come from *alternating rounds* in one process: every round takes one training
  step of each implementation, then one evaluation forward of each, in an order that rotates
  from round to round. The ratio to the peer is taken within each round and the median over
  rounds is reported, so that a slow minute of a busy machine hits both sides alike.
  Both the wall-clock time and the CPU time of the process are recorded. With one
  thread the CPU time is the steadier of the two on a shared machine (the wall clock less
  what other processes took), and the ratios use it. With several threads the CPU time
  adds up the threads, their waits included: the ratios use the wall clock, the time a
  user waits for a step. On a GPU (`device` `cuda`) the process's CPU time says nothing
  of the kernels: every call is timed by the wall clock between two synchronisations, and
  the ratios use that. On a CPU each record keeps the ratios of both clocks. With `repeats`, the
  rounds are run that many times, each in a fresh process (`alternate_runs`), and the
  medians of the runs are reported, with every run's ratio beside them.
* **Page faults**: each call's minor page faults (a fresh page of memory mapped in) and
  the CPU time it spent in the system are recorded beside its times. An implementation
  that allocates edge-sized tensors at every step gets fresh pages from the system each
  time (the allocator returns such large blocks when they are freed), and each costs a
  fault (a system that counts none, as some sandboxes, records no count). What a fault
  costs varies between machines and, on a virtual machine, from minute to minute: every
  alternating worker measures it (`fresh_memory_seconds_per_gib`) before and after its
  rounds, and the record keeps both.
* **Peak memory** is the high-water mark of the resident memory (`VmHWM` on Linux) of a
  fresh process that builds the graph and the model, resets the mark, and runs the step:
  the memory *above data and model*, with what the first call sets up once (thread pools,
  first buffers). On a GPU it is the CUDA allocator's high-water mark, the same way. The
  evaluation's mark (`peak_eval_bytes`, in no table) is taken after the step: on a CPU it
  still holds what the step left (gradients, Adam's state, the allocator's retained heap),
  so it is not the evaluation's own peak. One process's peak varies from run to run (on a
  CPU, with where the allocator's heap stands): with `repeats`, each is measured that many
  times, each in a fresh process, and the median is kept, with every run's ratio
  (`run_peak_ratios`).
* **Records**: each measured figure is written to `experiments/results/benchmark_<figure>.json` with
  the command that produced it, the date, the machine and the versions. The README's table
  and the site's benchmark page are rendered from these records, never typed.
"""

import functools
import gc
import json
import mmap
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import nn

from labml_gat import results
from labml_gat.edges import EdgeGraphAttentionV2Layer
from labml_gat.gatv2_conv import GATConv as DropInGATConv
from labml_gat.gatv2_conv import GATv2Conv as DropInGATv2Conv
from labml_gat.lean import LeanGraphAttentionV2Layer, LeanTwoLayerGAT
from labml_gat.training import available_memory_bytes

# The implementations of the layer, and the one each is compared with. `fast` is the Cora
# experiment's model: the edge-list layer with the speed-ups of `fast.py` on sparse features;
# `dropin` is the drop-in `GATv2Conv`, built with PyG's arguments.
IMPLS = ('edges', 'lean', 'dropin', 'pyg', 'fast')
# Those that take any dense features (`fast` needs sparse ones)
LAYER_IMPLS = ('edges', 'lean', 'dropin', 'pyg')
# Those that take edge features
EDGE_FEATURE_IMPLS = ('dropin', 'pyg')
# The implementations with a GAT layer (PyG's GATConv and the drop-in one)
GAT_IMPLS = ('dropin', 'pyg')
# The implementation every other is compared with
PEER = results.PEER


# ## The graphs

# The help of `--degree`, the random graphs' average in-degree, in every script that takes it
DEGREE_HELP = 'random in-edges per node on average, besides its self loop'


def random_edges(n_nodes: int, degree: float) -> int:
    """
    The random edges of `random_graph`, `degree` per node on average: the whole number
    nearest to `degree * n_nodes` (the even one of two as near, as `round` chooses).
    Floating point puts some products just below the whole number they are, 0.29 * 100 at
    28.999999999999996, which cutting the fraction off would make 28. A whole degree's product is exact, and so is its count.
    """
    return round(degree * n_nodes)


def random_graph(n_nodes: int, degree: float, in_features: int, seed: int = 0
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    r"""
    A random graph with $\text{degree} \cdot N$ random edges $j \to i$ (`random_edges`) and
    a self loop per node (so about `degree + 1` in-edges per node), sorted by target, with
    standard normal features: `(x, edge_index)`. Duplicates are kept: they do not change
    the cost.
    """
    generator = torch.Generator().manual_seed(seed)
    n_edges = random_edges(n_nodes, degree)
    # Drawn straight into the rows of `edge_index`, the loops last, then sorted in place:
    # besides `edge_index` only the order and one row's copy exist at once
    edge_index = torch.empty(2, n_edges + n_nodes, dtype=torch.int64)
    src, dst = edge_index
    torch.randint(0, n_nodes, (n_edges,), generator=generator, out=src[:n_edges])
    torch.randint(0, n_nodes, (n_edges,), generator=generator, out=dst[:n_edges])
    torch.arange(n_nodes, out=src[n_edges:])
    dst[n_edges:] = src[n_edges:]
    order = torch.argsort(dst, stable=True)
    dst.copy_(dst.index_select(0, order))
    src.copy_(src.index_select(0, order))
    del src, dst, order
    x = torch.randn(n_nodes, in_features, generator=generator)
    return x, edge_index


def load_cora(data_dir: Optional[str]) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor, int]:
    """Cora's dense features, edges with self loops, labels, training mask and classes."""
    from labml_gat.datasets import load_planetoid
    cora = load_planetoid('cora', data_dir, download=False)
    return (cora.x, cora.edge_index_with_self_loops(), cora.y, cora.train_mask,
            cora.num_classes)


# ## The layers and the models

def make_layer(impl: str, in_features: int, n_heads: int, n_hidden: int,
               dropout: float = 0.6, chunk_size: Optional[int] = None,
               edge_dim: Optional[int] = None, gat: bool = False) -> nn.Module:
    """
    One attention layer, `in_features` to `n_heads` heads of `n_hidden` concatenated:
    ours on the edge list (`edges`), the lean one (`lean`), the drop-in `GATv2Conv`
    (`dropin`) or PyG's (`pyg`), the last two with the same arguments and, with
    `edge_dim`, edge features; with `gat`, the drop-in `GATConv` or PyG's. All take the
    same `edge_index`, self loops included.
    """
    if edge_dim and impl not in EDGE_FEATURE_IMPLS:
        raise ValueError(f'{impl!r} takes no edge features')
    if gat and impl not in GAT_IMPLS:
        raise ValueError(f'{impl!r} has no GAT layer')
    if impl in ('pyg', 'dropin'):
        if impl == 'pyg':
            from torch_geometric.nn import GATConv, GATv2Conv
        else:
            GATConv, GATv2Conv = DropInGATConv, DropInGATv2Conv
        return (GATConv if gat else GATv2Conv)(
            in_features, n_hidden, heads=n_heads, dropout=dropout, add_self_loops=False,
            edge_dim=edge_dim or None)
    if impl == 'lean':
        return LeanGraphAttentionV2Layer(in_features, n_heads * n_hidden, n_heads,
                                         dropout=dropout, chunk_size=chunk_size)
    if impl == 'edges':
        return EdgeGraphAttentionV2Layer(in_features, n_heads * n_hidden, n_heads,
                                         dropout=dropout)
    raise ValueError(f'unknown implementation {impl!r}, '
                     f'expected one of {", ".join(LAYER_IMPLS)}')


class PyGTwoLayerGAT(nn.Module):
    """
    The [two-layer model](model.html) with PyG's `GATv2Conv` (or, with `drop_in`, the
    drop-in one): dropout on the input, the hidden layer, ELU, dropout, the output layer
    with one head. It takes the same dense input and the same `edge_index`, self loops
    included, as ours.
    """

    def __init__(self, in_features: int, n_classes: int, n_heads: int, n_hidden: int,
                 dropout: float, drop_in: bool = False):
        super().__init__()
        if drop_in:
            GATv2Conv = DropInGATv2Conv
        else:
            from torch_geometric.nn import GATv2Conv
        self.dropout = nn.Dropout(dropout)
        self.layer1 = GATv2Conv(in_features, n_hidden, heads=n_heads, dropout=dropout,
                                add_self_loops=False)
        self.activation = nn.ELU()
        self.output = GATv2Conv(n_heads * n_hidden, n_classes, heads=1, concat=False,
                                dropout=dropout, add_self_loops=False)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.layer1(self.dropout(x), edge_index))
        return self.output(self.dropout(x), edge_index)


def make_model(impl: str, in_features: int, n_classes: int, n_heads: int, n_hidden: int,
               dropout: float = 0.6, lean_model: bool = False) -> nn.Module:
    """
    The two-layer node classifier of the GAT paper with each implementation; with
    `lean_model`, `lean` is the [leaner model](lean.html#the-two-layer-model-leaner) whose
    dropouts and ELU are made inside the projections (the same function).
    """
    if impl in ('pyg', 'dropin'):
        return PyGTwoLayerGAT(in_features, n_classes, n_heads, n_hidden, dropout,
                              drop_in=impl == 'dropin')
    if impl == 'lean' and lean_model:
        return LeanTwoLayerGAT(in_features, n_classes, n_heads, n_hidden, dropout)
    from labml_gat import fast
    from labml_gat.model import TwoLayerGAT
    layer_class = {'lean': LeanGraphAttentionV2Layer, 'edges': EdgeGraphAttentionV2Layer,
                   'fast': EdgeGraphAttentionV2Layer}[impl]
    model = TwoLayerGAT(layer_class, in_features, n_classes, n_heads, n_hidden, dropout)
    return fast.speed_up(model) if impl == 'fast' else model


class Runner:
    """
    A training step (Adam, a loss, backward, update) and an evaluation forward of one model
    or layer. For a layer the loss is the mean square of its output; for a model it is the
    cross-entropy on the labelled nodes.
    """

    def __init__(self, module: nn.Module, x: torch.Tensor, edge_index: torch.Tensor,
                 y: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
                 edge_attr: Optional[torch.Tensor] = None):
        self.module, self.x, self.edge_index = module, x, edge_index
        self.y, self.mask = y, mask
        # The edge features, for the layers that take them
        self.inputs = (x, edge_index) if edge_attr is None else (x, edge_index, edge_attr)
        self.optimizer = torch.optim.Adam(module.parameters(), lr=0.005,
                                          weight_decay=5e-4)

    def step(self) -> None:
        self.module.train()
        self.optimizer.zero_grad()
        out = self.module(*self.inputs)
        if self.y is None:
            loss = out.square().mean()
        else:
            loss = nn.functional.cross_entropy(out[self.mask], self.y[self.mask])
        del out
        loss.backward()
        self.optimizer.step()

    def evaluate(self) -> None:
        self.module.eval()
        with torch.no_grad():
            self.module(*self.inputs)


def make_runner(task: dict, impl: str) -> Runner:
    """The runner of one implementation for a task (see `run_task`), on its device."""
    runner = build_runner(task, impl)
    device = torch.device(task.get('device', 'cpu'))
    runner.module.to(device)
    runner.inputs = tuple(t.to(device) for t in runner.inputs)
    runner.x, runner.edge_index = runner.inputs[:2]
    if runner.y is not None:
        runner.y, runner.mask = runner.y.to(device), runner.mask.to(device)
    # The optimizer's state is made at the first step, on the parameters' device
    return runner


def build_runner(task: dict, impl: str) -> Runner:
    """The runner of one implementation for a task, on the CPU."""
    torch.manual_seed(0)
    n_heads, n_hidden = task['n_heads'], task['n_hidden']
    if task['graph'] == 'cora':
        x, edge_index, y, mask, n_classes = load_cora(task.get('data_dir'))
        model = make_model(impl, x.shape[1], n_classes, n_heads, n_hidden)
        if impl == 'fast':
            from labml_gat.fast import to_sparse_csr
            x = to_sparse_csr(x)
        return Runner(model, x, edge_index, y, mask)
    x, edge_index = random_graph(task['n_nodes'], task['degree'], task['in_features'])
    if task['level'] == 'layer':
        edge_dim = task.get('edge_dim')
        edge_attr = None if not edge_dim else torch.randn(
            edge_index.shape[1], edge_dim, generator=torch.Generator().manual_seed(2))
        layer = make_layer(impl, x.shape[1], n_heads, n_hidden, edge_dim=edge_dim,
                           gat=task.get('gat', False))
        return Runner(layer, x, edge_index, edge_attr=edge_attr)
    n_classes = 7
    generator = torch.Generator().manual_seed(1)
    y = torch.randint(0, n_classes, (x.shape[0],), generator=generator)
    model = make_model(impl, x.shape[1], n_classes, n_heads, n_hidden,
                       lean_model=task.get('lean_model', False))
    return Runner(model, x, edge_index, y, torch.ones_like(y, dtype=torch.bool))


# ## Time and memory

# What `timed` measures of a call, in its order
CLOCKS = ('wall', 'cpu', 'system', 'faults')


@functools.lru_cache(maxsize=None)
def counts_page_faults() -> bool:
    """
    Whether this system counts the process's page faults: some sandboxes report none. The
    first write to 8 MiB of fresh memory faults at least once per 2 MiB huge page.
    """
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with mmap.mmap(-1, 2 ** 23) as fresh:
        for offset in range(0, 2 ** 23, mmap.PAGESIZE):
            fresh[offset] = 1
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before >= 4


def timed(function: Callable[[], None], device: str = 'cpu'
          ) -> Tuple[float, float, float, Optional[int]]:
    """
    The wall-clock and CPU seconds of one call, the part of the CPU seconds spent in the
    system (mapping fresh pages in, among others), and its page faults (`None` where the
    system counts none); on a GPU, between two synchronisations, so that the kernels it
    launched are counted.
    """
    cuda = torch.device(device).type == 'cuda'
    if cuda:
        torch.cuda.synchronize(device)
    before = resource.getrusage(resource.RUSAGE_SELF)
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    if cuda:
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    faults = after.ru_minflt - before.ru_minflt if counts_page_faults() else None
    return wall, cpu, after.ru_stime - before.ru_stime, faults


def fresh_memory_seconds_per_gib(n_bytes: int = 2 ** 28) -> float:
    """
    What fresh memory costs here, in seconds per GiB: the first write to a new tensor of
    `n_bytes` (every page a fault) less a second write to it.
    """
    x = torch.empty(n_bytes // 4)
    start = time.perf_counter()
    x.fill_(1.0)
    first = time.perf_counter() - start
    start = time.perf_counter()
    x.fill_(2.0)
    second = time.perf_counter() - start
    return (first - second) * 2 ** 30 / n_bytes


def on_gpu(task: dict) -> bool:
    return torch.device(task.get('device', 'cpu')).type == 'cuda'


def by_cpu_time(task: dict) -> bool:
    """Whether a task's times are compared by CPU time: on a CPU with one thread."""
    return not on_gpu(task) and task.get('threads', 1) == 1


def peak_resident_bytes() -> int:
    """
    The high-water mark of the process's resident memory: `VmHWM` on Linux,
    else `ru_maxrss` (kilobytes on Linux, bytes on macOS).
    """
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) * 1024 for line in f
                        if line.startswith('VmHWM:'))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == 'darwin' else peak * 1024


def reset_peak() -> int:
    """
    Reset the high-water mark to the current resident size where the system allows it
    (Linux), and return it: the memory of what is built so far, data and model.
    """
    gc.collect()
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass
    return peak_resident_bytes()


def cuda_peak_bytes() -> int:
    """The CUDA allocator's high-water mark on the current device."""
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated()


def reset_cuda_peak() -> int:
    """Reset the CUDA allocator's high-water mark and return what is allocated now."""
    gc.collect()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return torch.cuda.memory_allocated()


def alternate(task: dict) -> dict:
    """
    ### Alternating rounds

    Times every implementation of `task['impls']` in one process, as described at the top.
    The first `warmup` rounds are not kept.
    """
    impls = list(task['impls'])
    device = task.get('device', 'cpu')
    runners = {impl: make_runner(task, impl) for impl in impls}
    times = {(impl, kind, clock): [] for impl in impls for kind in ('step', 'eval')
             for clock in CLOCKS}
    # What fresh memory costs, before and after the rounds (host memory: not on a GPU)
    fresh_memory = [] if on_gpu(task) else [fresh_memory_seconds_per_gib()]
    for r in range(task['warmup'] + task['rounds']):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for kind in ('step', 'eval'):
            for impl in order:
                runner = runners[impl]
                timing = timed(runner.step if kind == 'step' else runner.evaluate,
                               device)
                if r >= task['warmup']:
                    for clock, value in zip(CLOCKS, timing):
                        times[impl, kind, clock].append(value)
    if fresh_memory:
        fresh_memory.append(fresh_memory_seconds_per_gib())

    rows = {}
    for impl in impls:
        row = {}
        for kind in ('step', 'eval'):
            median = {c: statistics.median(times[impl, kind, c]) for c in CLOCKS
                      if None not in times[impl, kind, c]}
            row[f'{kind}_ms'] = 1e3 * median['wall']
            row[f'{kind}_cpu_ms'] = 1e3 * median['cpu']
            row[f'{kind}_system_ms'] = 1e3 * median['system']
            if 'faults' in median:
                row[f'{kind}_faults'] = median['faults']
            if PEER in impls and impl != PEER:
                # The ratio that counts, and the ratio of each clock
                main = 'cpu' if by_cpu_time(task) else 'wall'
                clocks = ('wall',) if on_gpu(task) else ('wall', 'cpu')
                for clock, suffix in ((main, ''), *((c, f'_{c}') for c in clocks)):
                    row[f'{kind}_ratio{suffix}'] = statistics.median(
                        mine / theirs for mine, theirs in
                        zip(times[impl, kind, clock], times[PEER, kind, clock]))
        rows[impl] = row
    return {'rounds': task['rounds'], 'impls': rows,
            'fresh_memory_s_per_gib': fresh_memory}


def peak(task: dict) -> dict:
    """
    ### Peak memory of one implementation

    In a fresh process (see `run_worker`): builds the graph and the model, resets the
    high-water mark, and runs `steps` training steps; then the same for evaluation.
    Returns the memory above data and model, and the step's times.
    """
    device = task.get('device', 'cpu')
    # CUDA reserves far more address space than it uses: no cap on a GPU
    limit = limit_memory() if task.get('limit_memory') and not on_gpu(task) else None
    high_water, reset = ((cuda_peak_bytes, reset_cuda_peak) if on_gpu(task)
                         else (peak_resident_bytes, reset_peak))
    runner = make_runner(task, task['impl'])
    # `timed` asks once whether the system counts page faults, by writing 8 MiB of fresh
    # memory: asked here, before the mark is reset, it is not inside the peak
    counts_page_faults()
    setup = reset()
    step_times = [timed(runner.step, device) for _ in range(task['steps'])]
    step_peak = high_water() - setup
    reset()
    eval_times = [timed(runner.evaluate, device) for _ in range(task['steps'])]
    eval_peak = high_water() - setup
    return {'impl': task['impl'], 'setup_bytes': setup,
            'peak_train_bytes': step_peak, 'peak_eval_bytes': eval_peak,
            'step_ms': 1e3 * min(t[0] for t in step_times),
            'step_cpu_ms': 1e3 * min(t[1] for t in step_times),
            'eval_ms': 1e3 * min(t[0] for t in eval_times),
            'eval_cpu_ms': 1e3 * min(t[1] for t in eval_times),
            'memory_limit_bytes': limit}


def limit_memory() -> Optional[int]:
    """
    Cap the address space at its current size plus 90% of the available memory, so that a
    configuration too big for the machine fails with a clean allocation error instead of
    waking the kernel's out-of-memory killer. Linux only. Returns the cap, if one was set.
    """
    available = available_memory_bytes()
    try:
        with open('/proc/self/status') as f:
            size = next(int(line.split()[1]) * 1024 for line in f
                        if line.startswith('VmSize:'))
    except (OSError, StopIteration):
        return None
    limit = size + int(0.9 * available)
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    return limit


def run_task(task: dict) -> dict:
    """Run a task in this process: `alternate` or `peak`, with the task's threads (and
    this process's threads as they were after it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(task['threads'])
    try:
        if on_gpu(task) and torch.device(task['device']).index is not None:
            torch.cuda.set_device(torch.device(task['device']))
        return {'alternate': alternate, 'peak': peak}[task['mode']](task)
    finally:
        torch.set_num_threads(threads)


def run_worker(task: dict) -> dict:
    """
    Run a task in a fresh Python process (`python -m labml_gat.benchmarking TASK`) with
    `OMP_NUM_THREADS` set to its threads. A process that fails, for example for lack of
    memory, gives `{'error': ...}` with the last line it printed.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(task['threads']))
    package_root = str(Path(__file__).resolve().parent.parent)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (package_root, env.get('PYTHONPATH'))
                                        if p)
    process = subprocess.run([sys.executable, '-m', 'labml_gat.benchmarking',
                              json.dumps(task)], env=env, capture_output=True, text=True)
    if process.returncode < 0:
        return {'error': f'killed by signal {-process.returncode} (out of memory?)'}
    if process.returncode != 0:
        lines = process.stderr.strip().splitlines()
        return {'error': lines[-1] if lines else f'exit code {process.returncode}'}
    return json.loads(process.stdout.strip().splitlines()[-1])


# ## Figures

# What a peak worker measures, of which the median of several runs is kept
PEAK_MEDIANS = ('setup_bytes', 'peak_train_bytes', 'peak_eval_bytes', 'step_ms',
                'step_cpu_ms', 'eval_ms', 'eval_cpu_ms')


def measure_figure(name: str, task: dict, peaks: bool = True,
                   alternating: bool = True) -> dict:
    """
    One figure of the benchmark: the alternating times of `task['impls']` and, with `peaks`,
    the peak memory of each in its own process, with the ratios of time and memory to PyG.
    """
    keys = ('level', 'graph', 'n_heads', 'n_hidden', 'threads')
    figure = {'figure': name, **{k: task[k] for k in keys}}
    for key in ('n_nodes', 'degree', 'in_features', 'edge_dim', 'gat'):
        if task.get(key) and task['graph'] != 'cora':
            figure[key] = task[key]
    if on_gpu(task):
        figure['device'] = task['device']
    rows = {impl: {} for impl in task['impls']}
    if alternating:
        result = alternate_runs(task)
        if 'error' in result:
            figure['error'] = result['error']
            return figure
        figure.update((k, v) for k, v in result.items() if k != 'impls')
        for impl, row in result['impls'].items():
            rows[impl].update(row)
    if peaks:
        # With `repeats`, each peak is measured that many times too, each in a fresh
        # process: one process's peak varies from run to run, the median is kept
        runs = {}
        for impl in task['impls']:
            for _ in range(task.get('repeats', 1)):
                result = run_worker({**task, 'mode': 'peak', 'impl': impl,
                                     'limit_memory': True})
                if 'error' in result:
                    break
                runs.setdefault(impl, []).append(result)
            if 'error' in result:
                rows[impl]['error'] = result['error']
                runs.pop(impl, None)
                continue
            result = dict(runs[impl][0], **{key: statistics.median(run[key] for run in
                                                                   runs[impl])
                                            for key in PEAK_MEDIANS})
            result.pop('impl')
            if alternating:
                # The times of the alternating rounds are the ones reported
                for key in ('step_ms', 'step_cpu_ms', 'eval_ms', 'eval_cpu_ms'):
                    result.pop(key)
            rows[impl].update(result)
        peer = rows.get(PEER, {})
        for impl, row in rows.items():
            if impl != PEER and 'peak_train_bytes' in row and 'peak_train_bytes' in peer:
                row['peak_ratio'] = row['peak_train_bytes'] / peer['peak_train_bytes']
        if task.get('repeats', 1) > 1 and PEER in runs:
            figure['run_peak_ratios'] = {
                impl: [run['peak_train_bytes'] / theirs['peak_train_bytes']
                       for run, theirs in zip(runs[impl], runs[PEER])]
                for impl in runs if impl != PEER}
    figure['impls'] = rows
    return figure


def alternate_runs(task: dict) -> dict:
    """
    The alternating rounds of `task`, run `task['repeats']` times (default once), each
    time in a fresh worker process: a process's own state (where the allocator put its
    tensors, what fresh memory cost while it ran) can make one side faster in all its
    rounds. With several runs, each time and ratio is the median of the runs' medians,
    and the figure keeps every run's `step / PyG` (`run_step_ratios`) and fresh-memory
    costs. The first error of a run is the result.
    """
    repeats = task.get('repeats', 1)
    runs = []
    for k in range(repeats):
        if repeats > 1:
            print(f'  run {k + 1} of {repeats}', file=sys.stderr, flush=True)
        runs.append(run_worker({**task, 'mode': 'alternate'}))
        if 'error' in runs[-1]:
            return runs[-1]
    result = {'rounds': runs[0]['rounds']}
    fresh = [cost for run in runs for cost in run.get('fresh_memory_s_per_gib', [])]
    if fresh:
        result['fresh_memory_s_per_gib'] = fresh
    result['impls'] = {impl: {key: statistics.median(run['impls'][impl][key]
                                                      for run in runs)
                              for key in row}
                       for impl, row in runs[0]['impls'].items()}
    if repeats > 1:
        result['runs'] = repeats
        result['run_step_ratios'] = {
            impl: [run['impls'][impl]['step_ratio'] for run in runs]
            for impl, row in runs[0]['impls'].items() if 'step_ratio' in row}
    return result


# What a worker says when an implementation does not fit in memory: a result of its figure
# (the record says it does not fit), where any other error is a measurement that failed
OUT_OF_MEMORY = ("can't allocate memory", 'MemoryError', 'CUDA out of memory',
                 f'killed by signal {signal.SIGKILL.value} ')


def failure(figure: dict) -> Optional[str]:
    """
    The error of a figure whose measurement failed, if any: its own (its alternating rounds
    did not run), an implementation's that is not a lack of memory, or the lack of memory
    of every implementation (nothing was measured: the graph itself did not fit).
    """
    if 'error' in figure:
        return figure['error']
    impls = figure.get('impls', {})
    errors = [row['error'] for row in impls.values() if 'error' in row]
    if impls and len(errors) == len(impls):
        return errors[0]
    return next((error for error in errors if not out_of_memory(error)), None)


def out_of_memory(error: str) -> bool:
    """Whether a worker's error says that an implementation did not fit in memory."""
    return any(sign in error for sign in OUT_OF_MEMORY)


# ## Records and the plot
#
# Each figure is one record of [`labml_gat.results`](results.html),
# `experiments/results/benchmark_<figure>.json`: the command, the date, the machine, the
# versions, and the figure's values. `results` reads them back and renders the table.

def save_figure(figure: dict, command: str, threads: int, folder: Optional[Path] = None
                ) -> Path:
    """Record a measured figure, replacing an earlier record of the same figure."""
    values = {k: v for k, v in figure.items() if k != 'figure'}
    values['threads'] = threads
    # How busy the machine was: on a shared machine the wall-clock times depend on it
    values['load_average'] = (round(os.getloadavg()[0], 1) if hasattr(os, 'getloadavg')
                              else None)
    name = results.benchmark_record_name(figure['figure'])
    return results.record(name, command, values, folder or results.RESULTS,
                          figure.get('device', 'cpu'))


def plot(records: Sequence[dict], path: Optional[str] = None, title: str = ''):
    """
    A bar chart of the ratios to PyG (training step, evaluation, peak training memory)
    per figure and implementation; below 1 is better than PyG. Returns the figure.
    """
    import matplotlib
    if path:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    bars = [(f"{r['figure']}\n{impl}", row, r['impls'].get(PEER, {})) for r in records
            for impl, row in r.get('impls', {}).items() if impl != PEER]
    # Horizontal bars: the names stay on one side, readable however many there are.
    fig, ax = plt.subplots(figsize=(7.8, 1.6 + 0.6 * len(bars)), layout='constrained')
    height = 0.27
    ratios = (('step_ratio', 'training step'), ('eval_ratio', 'evaluation'),
              ('peak_ratio', 'peak training memory'))
    for k, (key, label) in enumerate(ratios):
        values = [row.get(key) or 0.0 for _, row, _ in bars]
        ax.barh([i + (k - 1) * height for i in range(len(bars))], values, height,
                label=label)
    # Where there is no ratio at all, the reason stands in for the bars
    for i, (_, row, peer) in enumerate(bars):
        if not any(row.get(key) for key, _ in ratios):
            ax.text(0.01, i, no_ratio(row, peer), transform=ax.get_yaxis_transform(),
                    va='center', fontsize=9)
    ax.axvline(1.0, color='black', linewidth=0.8)
    ax.set_yticks(range(len(bars)), [name for name, _, _ in bars])
    ax.invert_yaxis()
    # On two lines: as one, the longest name of PyG's layer reaches past the figure's edge
    ax.set_xlabel(f"ratio to {peer_name(records)}\n(lower is better)")
    ax.set_title(title or 'Time and memory relative to PyG')
    # A tall chart: the key and the scale on top too, in view with the first bars
    fig.legend(loc='outside upper center', ncols=3)
    ax.tick_params(labeltop=True)
    if path:
        fig.savefig(path, dpi=200)
    return fig


def peer_name(records: Sequence[dict]) -> str:
    """The layer of PyG the ratios of `records` are to: `GATConv` in GAT's figures."""
    gat = {bool(r.get('gat')) for r in records}
    if gat == {True}:
        return "PyG's GATConv"
    if gat == {True, False}:
        return "PyG's layer (GATConv in the gat figures, GATv2Conv in the others)"
    return "PyG's GATv2Conv"


def no_ratio(row: dict, peer: dict) -> str:
    """Why an implementation has no ratio to PyG: PyG's failure, else its own."""
    for who, failed in (('PyG', peer), ('it', row)):
        if 'error' in failed:
            why = 'ran out of memory' if out_of_memory(failed['error']) else 'failed'
            return f'no ratio: {who} {why}'
    return 'no ratio'


if __name__ == '__main__':
    # A worker process: one task from the command line, the result as the last line of output
    print(json.dumps(run_task(json.loads(sys.argv[1]))))
