r"""
---
title: Benchmark of the GATv2 layers against labml_nn's dense layer and PyG
summary: >
  Time per training step, time per evaluation forward and peak memory of the dense and the edge-list GATv2
  layers, of labml_nn's dense formulation and of PyG's GATv2Conv, on Cora and on random graphs of growing size.
---

# Benchmark of the GATv2 layers

The same two-layer GATv2 model (the [Cora experiment's](cora.html) model: 8 heads of 8 features, ELU,
one output head, dropout 0.6, Adam) is run with five implementations:

| name                   | what                                                                                 |
|------------------------|--------------------------------------------------------------------------------------|
| `edges`                | the [edge-list layer](../labml_gat/edges.html), $O(\vert\mathcal{E}\vert)$                |
| `dense`                | the tutorial's [dense layer](../labml_gat/gatv2.html), $O(N^2)$                          |
| `labml_nn`             | [labml_nn's GATv2](https://nn.labml.ai/graphs/gatv2/index.html), rewritten below, $O(N^2)$ |
| `pyg`                  | PyG's `GATv2Conv` in PyG's own example model: dropout on the dense input features        |
| `pyg_no_input_dropout` | the same without the input dropout, to show how much of PyG's step that dropout is       |

The `pyg` rows need `torch_geometric`; labml_gat itself never imports it.

## What is measured

* **Training step**: `train()`, zero the gradients, forward, cross-entropy on the training nodes,
  backward, an Adam step; the loop of the Cora experiment.
* **Evaluation forward**: `eval()` and a forward pass under `torch.no_grad()`: no dropout, no autograd graph.
* **Peak memory**: how far the resident memory of the process rises above what it holds after setup
  (the data, the graph and the model).

### Subprocess isolation and the high-water mark

Every configuration (one implementation on one graph) runs in a fresh Python process.
Nothing it allocates can hide in the allocator caches of another configuration, and the peak
resident set size of the process belongs to it alone.
The kernel keeps that peak, the *high-water mark*: `VmHWM` in `/proc/self/status` on Linux.
After setup the mark is reset to the current size (writing `5` to `/proc/self/clear_refs`),
so that a transient peak while the graph is generated does not hide the peak of the step:

$$\text{peak} = \text{high-water mark after the phase} - \text{resident size after setup}$$

The evaluation forwards are measured first and the training steps second, with a reset in between;
where the reset is not available, the training peak is still right, as training needs more than evaluation.
Elsewhere the mark is read from `getrusage(RUSAGE_SELF).ru_maxrss`, without a reset. (On Linux
`ru_maxrss` is no help: a started process inherits the high-water mark of its parent, and a peak smaller than
the parent's whole resident size would not show.)
Each process also caps its address space at what the system can still give, so that a configuration
too big for the machine fails with an allocation error instead of waking the kernel's out-of-memory killer.

### Alternating, medians and ratios

On a shared machine the time of a step drifts with the load of the other processes.
The two headline comparisons, `edges` against `pyg` on Cora and `dense` against `labml_nn` on a random
graph, therefore run **in one process, alternating**: each round does one training step of each
implementation, then one evaluation forward of each, in an order that rotates from round to round.
The tables give each implementation's median time and the median over the rounds of its ratio to its peer
*within the round*: two measurements taken moments apart see the same load.

The costs against the number of nodes $N$ come from the isolated processes: one warm-up call, then as many
timed calls as fit in a time budget (at least one, at most `--repeats`), and their median.
The dense layers cost $O(N^2)$ and the edge-list layers $O(\vert\mathcal{E}\vert) = O(N)$ on these graphs,
lines of slope 2 and 1 on a log-log plot. The least-squares slope $s$ of

$$\log t = s \log N + c$$

over the three largest sizes of each curve (where fixed per-operation costs no longer matter) checks it.

### Threads on a shared machine

PyTorch's CPU kernels run on OpenMP threads, one per core by default. When other processes keep the cores
busy, threads that *spin* while they wait for each other can make every operation many times slower.
`--threads 1` avoids that, and so does `OMP_WAIT_POLICY=PASSIVE` in the environment;
the report prints the thread count, the wait policy and the load average next to the numbers.

### Large buffers: page faults, huge pages and glibc

PyTorch takes its CPU memory from `malloc`. glibc serves every buffer above 32 MB with a fresh `mmap`
and unmaps it when it is freed, so a large tensor allocated again in every step is new memory every time:
the kernel maps and zeroes it on first touch, one page fault per 4 kB page.
The tables give the page faults and the CPU time spent in the kernel per training step.
`--scale` trains on large graphs once per *allocator variant* (`ALLOCATORS`), each in its own process:

| variant   | environment                                                                     |
|-----------|---------------------------------------------------------------------------------|
| `default` | none                                                                            |
| `thp`     | `THP_MEM_ALLOC_ENABLE=1`                                                        |
| `mmap_1g` | `MALLOC_MMAP_THRESHOLD_` at 1 GiB, `MALLOC_TRIM_THRESHOLD_` at 1 TiB             |
| `malloc`  | `MALLOC_MMAP_MAX_=0`, `MALLOC_TRIM_THRESHOLD_` at 1 TiB, `MALLOC_TOP_PAD_` at 256 MB |

With `thp`, PyTorch's allocator asks the kernel (`madvise`) to back every buffer of 2 MB or more with
transparent huge pages: one page fault per 2 MB, in the same memory; it needs
`/sys/kernel/mm/transparent_hugepage/enabled` at `madvise` or `always`.
`mmap_1g` makes glibc keep the buffers up to 1 GiB in its heap and reuse them; `malloc` keeps every buffer,
the tuning behind PyG's published figures.
Measured with `--scale --threads 1` on a 2-core virtual machine with 24 GB (median of 3 steps, one number per run
where several are given; the peak is above the data and the model). PyG runs on the graph of its
published figures, $10^6$ nodes and $4 \cdot 10^6$ random edges, plus the self loops `GATv2Conv` adds:

| model, edges with self loops | allocator | step     | of it in the kernel | peak training memory |
|------------------------------|-----------|----------|---------------------|----------------------|
| edge-list, $10^7$            | `default` | 56, 47, 44 s | 30, 31, 29 s    | 14.3 GiB             |
| edge-list, $10^7$            | `thp`     | 33, 35, 32 s | 18, 19, 18 s    | 14.2 GiB             |
| edge-list, $10^7$            | `mmap_1g` | 37 s     | 21 s                | 18.0 GiB             |
| edge-list, $10^7$            | `malloc`  | fails to allocate: the heap outgrows the machine | |   |
| PyG, $5 \cdot 10^6$          | `default` | 30 s     | 18 s                | 9.0 GiB (9.6 GB, as published) |
| PyG, $5 \cdot 10^6$          | `thp`     | 29 s     | 16 s                | 8.8 GiB              |
| PyG, $5 \cdot 10^6$          | `mmap_1g` | 30 s     | 18 s                | 11.6 GiB             |
| PyG, $5 \cdot 10^6$          | `malloc`  | 16.5 s   | 3.6 s               | 14.1 GiB             |

**The edge-list layer does not need malloc tuning, and at a million nodes it cannot use it.**
It trains full-batch with the default allocator in 14.3 GiB, but more than half of its step is the kernel
mapping and zeroing about 8.5 million fresh 4 kB pages (35 GB). glibc's tuning, which makes PyG's step
1.8 times faster at 1.6 times the memory, makes our heap grow past the machine's memory; keeping only the
buffers up to 1 GiB fits, but costs a quarter more memory. Transparent huge pages take 12 s of kernel time
off our step at no cost in memory (0.59 to 0.74 times the step in three runs), while they barely change
PyG's. Even with huge pages the kernel's share stays large on this virtual machine, and at $2 \cdot 10^5$ nodes
they made our step 1.2 times slower (one run; `malloc` made it 0.69 times at 1.5 times the memory there):
measure on your own machine before you set either.

## Usage

```bash
python experiments/benchmark.py --quick                     # small sizes, a minute or two
python experiments/benchmark.py --json bench.json --plot bench.png   # Cora and random graphs, full sizes
python experiments/benchmark.py --no-cora --no-synthetic --scale --threads 1   # a million nodes, each allocator
```
"""

import argparse
import gc
import importlib.util
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from labml import monit
from torch import nn

from labml_gat.datasets import DATA_ENV_VAR, Graph, load_planetoid
from labml_gat.edges import EdgeGraphAttentionV2Layer
from labml_gat.gatv2 import GraphAttentionV2Layer

# The experiments are scripts, not a package: the Cora experiment is found beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cora  # noqa: E402

# The implementations, in the order of the tables
IMPLS = ('edges', 'dense', 'labml_nn', 'pyg', 'pyg_no_input_dropout')
# The one each implementation is compared with in the ratio columns
PEERS = {'edges': 'pyg', 'dense': 'labml_nn', 'pyg_no_input_dropout': 'pyg'}
# The $O(N^2)$ implementations
DENSE_IMPLS = ('dense', 'labml_nn')
# The implementations that run only with `torch_geometric`
PYG_IMPLS = ('pyg', 'pyg_no_input_dropout')
# The implementations fast enough to alternate in one process on Cora
ALTERNATING_IMPLS = ('edges', 'pyg', 'pyg_no_input_dropout')
# The slope is fitted over this many of the largest sizes of each curve
SLOPE_TAIL = 3
# The allocator variants of `--scale`, each the environment of its worker processes (`worker_env`)
ALLOCATORS = {
    # glibc and PyTorch as they come: every buffer above 32 MB is a fresh `mmap`, unmapped again when freed
    'default': {},
    # PyTorch asks the kernel for transparent huge pages (`madvise(MADV_HUGEPAGE)`) for every buffer of 2 MB
    # or more: one page fault per 2 MB instead of one per 4 kB, but the buffers are still returned when freed
    'thp': {'THP_MEM_ALLOC_ENABLE': '1'},
    # glibc keeps and reuses the buffers up to 1 GiB in its heap and never trims it; larger ones
    # (at a million nodes, the edge-sized tensors of all heads' features) are still mapped and unmapped
    'mmap_1g': {'MALLOC_MMAP_THRESHOLD_': str(2 ** 30), 'MALLOC_TRIM_THRESHOLD_': str(2 ** 40)},
    # glibc keeps every freed buffer for reuse: no `mmap` for large buffers, no trimming of the heap,
    # and 256 MB of slack whenever the heap grows; the heap can grow far beyond the peak of `default`
    'malloc': {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': str(2 ** 40), 'MALLOC_TOP_PAD_': str(2 ** 28)},
}
# Every environment variable the allocator variants set
ALLOCATOR_ENV = tuple(sorted({name for env in ALLOCATORS.values() for name in env}))
# Environment variables that change the speed, recorded with the results
SPEED_ENV = ('OMP_NUM_THREADS', 'OMP_WAIT_POLICY', *ALLOCATOR_ENV)


class LabmlNnGATv2Layer(nn.Module):
    r"""
    ## labml_nn's dense GATv2 layer

    The formulation of [labml_nn](https://nn.labml.ai/graphs/gatv2/index.html), line for line,
    as the peer of our dense layer. Its costs differ from ours in three places:
    the two repeated copies of the node vectors live until the end of `forward`,
    the LeakyReLU makes a new $N^2$-sized tensor, and the attention is an `nn.Linear(n_hidden, 1)`
    applied to the whole $N \times N \times K \times F'$ grid.

    It also differs in what it computes: the attention vector $a$ is shared by the heads, and the message
    is $W_r h_j$, the *query-side* transformation taken at the neighbour,
    $h'_i = \sum_j \alpha_{ij} W_r h_j$, where ours and PyG's use $W_l h_j$.
    With `share_weights` ($W_l = W_r$) and one head, the two layers compute the same function; the tests check it.
    labml_nn's layer has no bias; `bias` adds the same output bias as ours,
    so that the peer slots into the same two-layer model.
    """

    def __init__(self, in_features: int, out_features: int, n_heads: int, is_concat: bool = True,
                 dropout: float = 0.6, leaky_relu_negative_slope: float = 0.2, share_weights: bool = False,
                 bias: bool = False):
        super().__init__()
        self.is_concat = is_concat
        self.n_heads = n_heads
        self.share_weights = share_weights
        if is_concat and out_features % n_heads != 0:
            raise ValueError(f'out_features ({out_features}) must be divisible by n_heads ({n_heads})')
        self.n_hidden = out_features // n_heads if is_concat else out_features
        self.linear_l = nn.Linear(in_features, self.n_hidden * n_heads, bias=False)
        if share_weights:
            self.linear_r = self.linear_l
        else:
            self.linear_r = nn.Linear(in_features, self.n_hidden * n_heads, bias=False)
        # One attention vector shared by all heads
        self.attn = nn.Linear(self.n_hidden, 1, bias=False)
        self.activation = nn.LeakyReLU(negative_slope=leaky_relu_negative_slope)
        self.softmax = nn.Softmax(dim=1)
        self.dropout = nn.Dropout(dropout)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, h: torch.Tensor, adj_mat: torch.Tensor) -> torch.Tensor:
        """`h` is `[n_nodes, in_features]`, `adj_mat` is `[n_nodes, n_nodes]` or `[n_nodes, n_nodes, 1]`."""
        n_nodes = h.shape[0]
        adj_mat = adj_mat.view(n_nodes, n_nodes, -1)
        g_l = self.linear_l(h).view(n_nodes, self.n_heads, self.n_hidden)
        g_r = self.linear_r(h).view(n_nodes, self.n_heads, self.n_hidden)
        # Row $i N + j$ of `g_l_repeat` is $g_{l,j}$, and of `g_r_repeat_interleave` it is $g_{r,i}$
        g_l_repeat = g_l.repeat(n_nodes, 1, 1)
        g_r_repeat_interleave = g_r.repeat_interleave(n_nodes, dim=0)
        g_sum = g_l_repeat + g_r_repeat_interleave
        g_sum = g_sum.view(n_nodes, n_nodes, self.n_heads, self.n_hidden)
        # $e_{ijk} = a^\top \text{LeakyReLU}(g_{r,k,i} + g_{l,k,j})$, `[n_nodes, n_nodes, n_heads]`
        e = self.attn(self.activation(g_sum))
        e = e.squeeze(-1)
        e = e.masked_fill(adj_mat == 0, float('-inf'))
        a = self.softmax(e)
        a = self.dropout(a)
        # $h'_{ik} = \sum_j \alpha_{ijk} g_{r,k,j}$
        attn_res = torch.einsum('ijh,jhf->ihf', a, g_r)
        if self.is_concat:
            out = attn_res.reshape(n_nodes, self.n_heads * self.n_hidden)
        else:
            out = attn_res.mean(dim=1)
        return out if self.bias is None else out + self.bias


class PyGGAT(nn.Module):
    """
    ## PyG's model

    The two-layer model of PyG's GAT example with `GATv2Conv`: dropout on the dense input features,
    `GATv2Conv` (which adds the self loops itself), ELU, dropout, the output `GATv2Conv`.
    """

    def __init__(self, in_features: int, n_classes: int, n_heads: int, n_hidden: int, dropout: float,
                 input_dropout: bool = True):
        super().__init__()
        from torch_geometric.nn import GATv2Conv
        self.dropout = dropout
        self.input_dropout = input_dropout
        self.conv1 = GATv2Conv(in_features, n_hidden, heads=n_heads, dropout=dropout)
        self.conv2 = GATv2Conv(n_hidden * n_heads, n_classes, heads=1, concat=False, dropout=dropout)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        if self.input_dropout:
            x = nn.functional.dropout(x, p=self.dropout, training=self.training)
        x = nn.functional.elu(self.conv1(x, edge_index))
        x = nn.functional.dropout(x, p=self.dropout, training=self.training)
        return self.conv2(x, edge_index)


def random_graph(n_nodes: int, degree: float, in_features: int, n_classes: int = 7, seed: int = 0) -> Graph:
    r"""
    ## Random graphs

    $\text{degree} \cdot N$ random edges $j \to i$, without self loops and duplicates and sorted by target,
    then source (as Cora's); standard normal features, random labels, and every node a training node.
    The models add the self loops, as on Cora.
    """
    generator = torch.Generator().manual_seed(seed)
    n_edges = int(degree * n_nodes)
    src = torch.randint(0, n_nodes, (n_edges,), generator=generator)
    dst = torch.randint(0, n_nodes, (n_edges,), generator=generator)
    # One number per edge, $i N + j$: `unique` drops the duplicates and sorts by target, then source.
    key = torch.unique((dst * n_nodes + src)[src != dst])
    edge_index = torch.stack([key % n_nodes, key // n_nodes])
    x = torch.randn(n_nodes, in_features, generator=generator)
    y = torch.randint(0, n_classes, (n_nodes,), generator=generator)
    everyone, nobody = torch.ones(n_nodes, dtype=torch.bool), torch.zeros(n_nodes, dtype=torch.bool)
    return Graph(f'random_{n_nodes}', x, y, edge_index, everyone, nobody, nobody, n_classes)


def load_graph(spec: dict) -> Graph:
    """The graph of a configuration: `{'kind': 'cora', 'data_dir': ...}` or `{'kind': 'random', 'n_nodes': ...}`."""
    if spec['kind'] == 'cora':
        return load_planetoid('cora', spec.get('data_dir'))
    return random_graph(spec['n_nodes'], spec['degree'], spec['in_features'], seed=spec.get('seed', 0))


def graph_edges(data: Graph) -> int:
    """The number of edges every model attends over: the graph's edges plus one self loop per node."""
    return data.edge_index.shape[1] + data.num_nodes


def build(impl: str, data: Graph, n_heads: int = 8, n_hidden: int = 8, dropout: float = 0.6
          ) -> Tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """
    ## The model and its inputs

    Returns `(model, x, graph)` for one implementation.
    Ours take the graph with self loops, as the Cora experiment does. On Cora the features are the
    experiment's sparse matrix with its sparse input dropout (the same distribution as dropout on the dense
    matrix); on random graphs they are dense, with ordinary dropout, as for PyG.
    PyG takes the dense features and the edges without self loops, which `GATv2Conv` adds.
    """
    if impl in PYG_IMPLS:
        model = PyGGAT(data.num_features, data.num_classes, n_heads, n_hidden, dropout,
                       input_dropout=impl == 'pyg')
        return model, data.x, data.edge_index
    layer = {'edges': EdgeGraphAttentionV2Layer, 'dense': GraphAttentionV2Layer,
             'labml_nn': LabmlNnGATv2Layer}[impl]
    model = cora.GAT(layer, data.num_features, data.num_classes, n_heads, n_hidden, dropout)
    if data.name == 'cora':
        x, graph = cora.prepare_inputs(data, 'edges' if impl == 'edges' else 'dense', n_heads, n_hidden,
                                       torch.device('cpu'))
        return model, x, graph
    model.input_dropout = nn.Dropout(dropout)
    graph = data.edge_index_with_self_loops() if impl == 'edges' else data.adjacency(self_loops=True)
    return model, data.x, graph


class Runner:
    """
    ## A training step and an evaluation forward

    The step of the Cora experiment: Adam with weight decay, cross-entropy on the training nodes.
    """

    def __init__(self, impl: str, data: Graph):
        self.model, self.x, self.graph = build(impl, data)
        self.y = data.y
        self.mask = data.train_mask
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=0.005, weight_decay=5e-4)
        self.loss_func = nn.CrossEntropyLoss()

    def step(self) -> None:
        self.model.train()
        self.optimizer.zero_grad()
        logits = self.model(self.x, self.graph)
        self.loss_func(logits[self.mask], self.y[self.mask]).backward()
        self.optimizer.step()

    def evaluate(self) -> None:
        self.model.eval()
        with torch.no_grad():
            self.model(self.x, self.graph)


def seconds(function: Callable[[], None]) -> float:
    """The wall-clock time of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


# ## Peak memory

def peak_resident_bytes() -> int:
    """
    The high-water mark of the process's resident memory: `VmHWM` on Linux,
    else `ru_maxrss` (kilobytes on Linux, bytes on macOS).
    """
    try:
        with open('/proc/self/status') as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmHWM:'))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == 'darwin' else peak * 1024


def reset_peak() -> int:
    """
    Reset the high-water mark to the current resident size, where the system allows it,
    and return the mark: the current size after a reset.
    """
    gc.collect()
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass
    return peak_resident_bytes()


def kernel_work() -> Tuple[int, float]:
    """
    The minor page faults of the process so far (pages the kernel had to map, and zero, on first touch)
    and the CPU seconds it has spent in the kernel: mostly those faults, and unmapping freed buffers.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_minflt, usage.ru_stime


def limit_memory() -> None:
    """
    Cap the address space of the process at its current size plus 90% of the memory the system can still give,
    so that a configuration too big for the machine fails with a clean error from the allocator
    instead of waking the kernel's out-of-memory killer, which might pick another process. Linux only.
    """
    try:
        with open('/proc/self/status') as f:
            size = next(int(line.split()[1]) * 1024 for line in f if line.startswith('VmSize:'))
    except (OSError, StopIteration):
        return
    limit = size + int(0.9 * cora.available_memory_bytes())
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def timed_calls(function: Callable[[], None], repeats: int, budget: Optional[float]
                ) -> Tuple[List[float], float, float]:
    """
    One warm-up call, then as many timed calls as fit in `budget` seconds (judged by the warm-up),
    at least one and at most `repeats`; exactly `repeats` without a budget. Returns the times,
    and the page faults and kernel seconds per timed call.
    """
    warmup = seconds(function)
    n = repeats if budget is None else max(1, min(repeats, int(budget / max(warmup, 1e-9))))
    faults, kernel_seconds = kernel_work()
    times = [seconds(function) for _ in range(n)]
    faults_after, kernel_seconds_after = kernel_work()
    return times, (faults_after - faults) / n, (kernel_seconds_after - kernel_seconds) / n


def measure(spec: dict) -> dict:
    """
    ## One isolated configuration

    Runs inside its own process (see `run_worker`): builds the graph and the model, then times the
    evaluation forward and the training step and records the peak memory of each.
    """
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    torch.manual_seed(0)
    data = load_graph(spec['graph'])
    runner = Runner(spec['impl'], data)
    if spec.get('limit_memory'):
        limit_memory()

    setup = reset_peak()
    eval_times, _, _ = timed_calls(runner.evaluate, spec['repeats'], spec['budget'])
    eval_peak = peak_resident_bytes() - setup
    reset_peak()
    step_times, step_faults, step_kernel_seconds = timed_calls(runner.step, spec['repeats'], spec['budget'])
    step_peak = peak_resident_bytes() - setup

    return {'impl': spec['impl'], 'graph': data.name, 'n_nodes': data.num_nodes, 'n_edges': graph_edges(data),
            'step_ms': 1e3 * statistics.median(step_times), 'eval_ms': 1e3 * statistics.median(eval_times),
            'steps': len(step_times), 'evals': len(eval_times),
            'peak_train_bytes': step_peak, 'peak_eval_bytes': eval_peak, 'setup_bytes': setup,
            'faults_per_step': step_faults, 'kernel_ms_per_step': 1e3 * step_kernel_seconds,
            'threads': torch.get_num_threads(), 'allocator': spec.get('allocator')}


def alternate(spec: dict) -> dict:
    """
    ## The alternating comparison

    Runs inside its own process. Each round times one training step of every implementation, then one
    evaluation forward of every implementation, in an order that rotates from round to round;
    the first `warmup` rounds are not kept. Returns the median times and, for an implementation whose
    peer (`PEERS`) is in the comparison, the median of the ratios to the peer within each round.
    """
    if spec.get('threads'):
        torch.set_num_threads(spec['threads'])
    torch.manual_seed(0)
    data = load_graph(spec['graph'])
    impls = list(spec['impls'])
    runners = {impl: Runner(impl, data) for impl in impls}
    times = {(impl, kind): [] for impl in impls for kind in ('step', 'eval')}
    for r in range(spec['warmup'] + spec['rounds']):
        order = impls[r % len(impls):] + impls[:r % len(impls)]
        for kind in ('step', 'eval'):
            for impl in order:
                t = seconds(runners[impl].step if kind == 'step' else runners[impl].evaluate)
                if r >= spec['warmup']:
                    times[impl, kind].append(t)

    result = {'graph': data.name, 'n_nodes': data.num_nodes, 'n_edges': graph_edges(data),
              'rounds': spec['rounds'], 'threads': torch.get_num_threads(), 'impls': {}}
    for impl in impls:
        row = {f'{kind}_ms': 1e3 * statistics.median(times[impl, kind]) for kind in ('step', 'eval')}
        peer = PEERS.get(impl)
        if peer in impls:
            row['peer'] = peer
            for kind in ('step', 'eval'):
                row[f'{kind}_ratio'] = statistics.median(
                    mine / theirs for mine, theirs in zip(times[impl, kind], times[peer, kind]))
        result['impls'][impl] = row
    return result


def worker_env(base: Dict[str, str], threads: Optional[int] = None, allocator: Optional[str] = None
               ) -> Dict[str, str]:
    """
    The environment of a worker process: `base` with `OMP_NUM_THREADS` set to `threads`, if given.
    For an allocator variant (`ALLOCATORS`), the variables of every variant are removed from `base` first
    and the variant's own are set, so that `default` means the defaults even when the shell sets some of them.
    """
    if allocator is not None and allocator not in ALLOCATORS:
        raise ValueError(f'unknown allocator variant {allocator!r}, expected one of {", ".join(ALLOCATORS)}')
    env = dict(base)
    if allocator is not None:
        env = {k: v for k, v in env.items() if k not in ALLOCATOR_ENV}
        env.update(ALLOCATORS[allocator])
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    return env


def run_worker(task: dict) -> dict:
    """
    ## Running a worker process

    Runs `measure` or `alternate` (by `task['mode']`) in a fresh Python process, in the environment
    `worker_env` makes for the task's threads and allocator variant, and returns its result.
    A process that fails, for example killed for lack of memory, gives `{'error': ...}`.
    """
    env = worker_env(dict(os.environ), task.get('threads'), task.get('allocator'))
    process = subprocess.run([sys.executable, str(Path(__file__).resolve()), '--worker', json.dumps(task)],
                             env=env, capture_output=True, text=True)
    if process.returncode < 0:
        return {'error': f'killed by signal {-process.returncode} (out of memory?)'}
    if process.returncode != 0:
        lines = process.stderr.strip().splitlines()
        return {'error': lines[-1] if lines else f'exit code {process.returncode}'}
    return json.loads(process.stdout.strip().splitlines()[-1])


# ## Slopes

def fit_slope(sizes: Sequence[float], values: Sequence[float]) -> float:
    r"""The least-squares slope $s$ of $\log v = s \log N + c$."""
    if len(sizes) != len(values):
        raise ValueError(f'need as many values as sizes, got {len(values)} and {len(sizes)}')
    if len(set(sizes)) < 2:
        raise ValueError(f'need at least two different sizes to fit a slope, got {list(sizes)}')
    if min(sizes) <= 0 or min(values) <= 0:
        raise ValueError('sizes and values must be positive to fit a slope on a log-log scale')
    xs = [math.log(n) for n in sizes]
    ys = [math.log(v) for v in values]
    x_mean, y_mean = statistics.fmean(xs), statistics.fmean(ys)
    return (sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys))
            / sum((x - x_mean) ** 2 for x in xs))


def slopes(rows: List[dict], tail: int = SLOPE_TAIL) -> Dict[str, dict]:
    """
    The slopes of the step time and of the peak training memory against $N$ for every implementation
    with at least two sizes, fitted over its `tail` largest sizes.
    """
    result = {}
    for impl in IMPLS:
        points = sorted((r['n_nodes'], r['step_ms'], r['peak_train_bytes']) for r in rows
                        if r['impl'] == impl and 'error' not in r)[-tail:]
        if len(points) >= 2:
            sizes = [p[0] for p in points]
            result[impl] = {'time': fit_slope(sizes, [p[1] for p in points]),
                            'memory': fit_slope(sizes, [max(p[2], 1) for p in points]),
                            'sizes': sizes}
    return result


def dense_memory(rows: List[dict]) -> Optional[dict]:
    r"""
    The peak training memory of our dense model per node pair, $\text{peak} / N^2$, at the largest $N$,
    next to the Cora experiment's estimate `dense_training_bytes` for the same $N$.
    """
    dense = [r for r in rows if r['impl'] == 'dense' and 'error' not in r]
    if not dense:
        return None
    largest = max(dense, key=lambda r: r['n_nodes'])
    n = largest['n_nodes']
    estimate = cora.dense_training_bytes(n, 8, 8)
    return {'n_nodes': n, 'bytes_per_pair': largest['peak_train_bytes'] / n ** 2,
            'estimate_bytes_per_pair': estimate / n ** 2,
            'estimate_over_measured': estimate / max(largest['peak_train_bytes'], 1)}


# ## Tables

def mb(n_bytes: float) -> str:
    return f'{n_bytes / 2 ** 20:,.0f}'


def ms(value: float) -> str:
    return f'{value:,.1f}' if value < 1000 else f'{value:,.0f}'


def ratio(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}x'


def format_alternating(result: dict, name: str) -> str:
    """A comparison in one process, with the ratios to the peer within each round."""
    if 'error' in result:
        return f"{name}, alternating: failed: {result['error']}"
    lines = [f"{name}, one process, alternating: {result['n_nodes']:,} nodes, {result['n_edges']:,} edges with "
             f"self loops, {result['rounds']} rounds, {result['threads']} thread(s)",
             f"{'impl':<22}{'step ms':>10}{'eval ms':>10}{'vs':>10}{'step':>8}{'eval':>8}"]
    for impl, row in result['impls'].items():
        lines.append(f"{impl:<22}{ms(row['step_ms']):>10}{ms(row['eval_ms']):>10}{row.get('peer', ''):>10}"
                     f"{ratio(row.get('step_ratio')):>8}{ratio(row.get('eval_ratio')):>8}")
    return '\n'.join(lines)


def peer_key(row: dict) -> tuple:
    """
    The configuration a row is compared with: for an allocator variant, the same implementation on the same
    graph with the `default` allocator; otherwise the peer implementation (`PEERS`) on the same graph.
    """
    graph = (row['n_nodes'], row['n_edges'])
    if row.get('allocator') not in (None, 'default'):
        return (row['impl'], *graph, 'default')
    return (PEERS.get(row['impl']), *graph, row.get('allocator'))


def format_isolated(rows: List[dict], title: str) -> str:
    """
    One row per configuration, each measured in its own process, with the ratios of time and
    memory to the configuration it is compared with (`peer_key`).
    The kernel time is the part of the step spent in the kernel, mostly on page faults.
    """
    by_key = {(r['impl'], r['n_nodes'], r['n_edges'], r.get('allocator')): r for r in rows if 'error' not in r}
    lines = [title, f"{'impl':<22}{'nodes':>10}{'edges':>12}{'step ms':>10}{'kernel':>9}{'eval ms':>9}"
                    f"{'train MB':>10}{'eval MB':>9}{'faults':>11}{'vs':>10}{'step':>7}{'memory':>8}"]
    for r in rows:
        name = r['impl'] if r.get('allocator') is None else f"{r['impl']} {r['allocator']}"
        if 'error' in r:
            lines.append(f"{name:<22}{r.get('n_nodes', 0):>10,}   {r['error']}")
            continue
        line = (f"{name:<22}{r['n_nodes']:>10,}{r['n_edges']:>12,}{ms(r['step_ms']):>10}"
                f"{ms(r['kernel_ms_per_step']):>9}{ms(r['eval_ms']):>9}{mb(r['peak_train_bytes']):>10}"
                f"{mb(r['peak_eval_bytes']):>9}{r['faults_per_step']:>11,.0f}")
        peer = by_key.get(peer_key(r))
        if peer:
            line += (f"{peer['allocator'] if peer['impl'] == r['impl'] else peer['impl']:>10}"
                     f"{r['step_ms'] / peer['step_ms']:>6.2f}x"
                     f"{r['peak_train_bytes'] / max(peer['peak_train_bytes'], 1):>7.2f}x")
        lines.append(line)
    return '\n'.join(lines)


def format_slopes(fitted: Dict[str, dict]) -> str:
    lines = [f"{'slope against N':<22}{'time':>8}{'memory':>8}   fitted over N ="]
    for impl, s in fitted.items():
        lines.append(f"{impl:<22}{s['time']:>8.2f}{s['memory']:>8.2f}   {', '.join(f'{n:,}' for n in s['sizes'])}")
    return '\n'.join(lines)


def format_report(results: dict) -> str:
    """All the tables of a run, as text."""
    meta = results['meta']
    env = ', '.join(f'{k}={v}' for k, v in meta['env'].items()) or 'no thread or malloc settings'
    parts = [f"torch {meta['torch']}, torch_geometric {meta['torch_geometric'] or 'not installed'}; "
             f"{meta['threads']} thread(s) on {meta['cpus']} CPUs; {env}; load average "
             f"{meta['load_start']:.1f} at the start, {meta['load_end']:.1f} at the end"]
    if results.get('cora_alternating'):
        parts.append(format_alternating(results['cora_alternating'], 'Cora'))
    if results.get('cora'):
        parts.append(format_isolated(results['cora'], 'Cora, one process per configuration'))
    if results.get('dense_alternating'):
        parts.append(format_alternating(results['dense_alternating'], 'Random graph, dense layers'))
    if results.get('synthetic'):
        parts.append(format_isolated(results['synthetic'], f"Random graphs ({meta['degree']:g} edges per node "
                                                           f"and a self loop), one process per configuration"))
        parts.append(format_slopes(results['slopes']))
        constant = results.get('dense_memory')
        if constant:
            parts.append(f"dense training peak: {constant['bytes_per_pair']:.0f} bytes per node pair at "
                         f"N = {constant['n_nodes']:,}; cora.dense_training_bytes estimates "
                         f"{constant['estimate_bytes_per_pair']:.0f} ({constant['estimate_over_measured']:.2f}x)")
    if results.get('scale'):
        parts.append(format_isolated(results['scale'], 'Large random graphs, one process per configuration '
                                                       'and allocator variant'))
    return '\n\n'.join(parts)


# ## The plot

def plot(results: dict, path: Optional[str] = None):
    """
    Time per training step and peak training memory against $N$ on log-log axes,
    one line per implementation with its fitted slope in the legend. Returns the figure.
    """
    import matplotlib
    if path:
        matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [r for r in results['synthetic'] if 'error' not in r]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, key, scale, label, slope_key in (
            (axes[0], 'step_ms', 1e-3, 'time per training step (s)', 'time'),
            (axes[1], 'peak_train_bytes', 2 ** -20, 'peak training memory (MB)', 'memory')):
        for impl in IMPLS:
            points = sorted((r['n_nodes'], r[key] * scale) for r in rows if r['impl'] == impl)
            if not points:
                continue
            slope = results['slopes'].get(impl, {}).get(slope_key)
            name = impl if slope is None else f'{impl} (slope {slope:.2f})'
            ax.plot([p[0] for p in points], [max(p[1], 1e-3) for p in points], marker='o', label=name)
        ax.set_xscale('log')
        ax.set_yscale('log')
        ax.set_xlabel(f"nodes N ({results['meta']['degree']:g} random edges per node)")
        ax.set_ylabel(label)
        ax.grid(True, which='both', alpha=0.3)
        ax.legend()
    fig.suptitle('Two-layer GATv2 (8 heads x 8 features), full-batch training')
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=120)
    return fig


# ## Running everything

def pyg_version() -> Optional[str]:
    """The installed `torch_geometric` version, or `None`."""
    if importlib.util.find_spec('torch_geometric') is None:
        return None
    import torch_geometric
    return torch_geometric.__version__


def too_big(rows: List[dict], impl: str, n: int) -> bool:
    """
    Whether a configuration would not fit in the memory still available, extrapolated from the largest size
    measured so far for the same implementation: as $N^2$ for the dense layers, as $N$ for the others.
    """
    done = [r for r in rows if r['impl'] == impl and 'error' not in r]
    if not done:
        return False
    last = max(done, key=lambda r: r['n_nodes'])
    power = 2 if impl in DENSE_IMPLS else 1
    needed = (last['peak_train_bytes'] + last['setup_bytes']) * (n / last['n_nodes']) ** power
    return needed > 0.9 * cora.available_memory_bytes()


def run(args: argparse.Namespace, show_progress: bool = True) -> dict:
    """
    Runs the parts that `args` ask for, each configuration in its own process, and returns the results.
    With `show_progress`, labml's `monit` shows each configuration as it runs.
    """
    with_pyg = pyg_version() is not None and not args.no_pyg
    threads, repeats, budget = args.threads, args.repeats, args.budget
    results = {'meta': {'torch': torch.__version__, 'torch_geometric': pyg_version() if with_pyg else None,
                        'threads': threads or torch.get_num_threads(), 'cpus': os.cpu_count(),
                        'env': {k: os.environ[k] for k in SPEED_ENV if k in os.environ},
                        'degree': args.degree, 'in_features': args.in_features,
                        'load_start': os.getloadavg()[0], 'argv': sys.argv[1:]}}

    def section(name: str):
        return monit.section(name) if show_progress else nullcontext()

    def isolated(impl: str, graph: dict, allocator: Optional[str] = None, calls: Optional[int] = None) -> dict:
        """One configuration; `calls` timed calls per phase instead of the `--repeats` and `--budget`."""
        name = 'Cora' if graph['kind'] == 'cora' else f"N={graph['n_nodes']:,}"
        with section(f"{impl} on {name}{f', allocator {allocator}' if allocator else ''}"):
            result = run_worker({'mode': 'measure', 'impl': impl, 'graph': graph, 'threads': threads,
                                 'repeats': calls or repeats, 'budget': None if calls else budget,
                                 'allocator': allocator, 'limit_memory': True})
        if 'error' in result:
            result.update(impl=impl, n_nodes=graph.get('n_nodes', 0), allocator=allocator)
        return result

    if args.cora:
        cora_graph = {'kind': 'cora', 'data_dir': args.data_dir or os.environ.get(DATA_ENV_VAR)}
        impls = [impl for impl in ALTERNATING_IMPLS if with_pyg or impl not in PYG_IMPLS]
        with section(f"Cora, alternating {', '.join(impls)}"):
            results['cora_alternating'] = run_worker({'mode': 'alternate', 'impls': impls, 'graph': cora_graph,
                                                      'rounds': args.rounds, 'warmup': 3, 'threads': threads})
        if args.cora_isolated:
            results['cora'] = [isolated(impl, cora_graph) for impl in impls + list(DENSE_IMPLS)]

    if args.synthetic:
        graph = {'kind': 'random', 'n_nodes': args.alternate_nodes, 'degree': args.degree,
                 'in_features': args.in_features}
        with section(f"dense, labml_nn on N={args.alternate_nodes:,}, alternating"):
            results['dense_alternating'] = run_worker({'mode': 'alternate', 'impls': list(DENSE_IMPLS),
                                                       'graph': graph, 'rounds': args.dense_rounds, 'warmup': 1,
                                                       'threads': threads})
        rows = []
        for impl, sizes in (('dense', args.dense_sizes), ('labml_nn', args.dense_sizes), ('edges', args.sizes),
                            ('pyg', args.sizes if with_pyg else [])):
            for n in sizes:
                if too_big(rows, impl, n):
                    rows.append({'impl': impl, 'n_nodes': n, 'error': 'skipped: would not fit in memory'})
                    continue
                rows.append(isolated(impl, {'kind': 'random', 'n_nodes': n, 'degree': args.degree,
                                            'in_features': args.in_features}))
        results['synthetic'] = rows
        results['slopes'] = slopes(rows)
        results['dense_memory'] = dense_memory(rows)

    if args.scale:
        # Ours on the large graph, and PyG on the graph of its published figures
        runs = [('edges', args.scale_degree)] + ([('pyg', args.scale_pyg_degree)] if with_pyg else [])
        results['scale'] = [isolated(impl, {'kind': 'random', 'n_nodes': args.scale_nodes, 'degree': degree,
                                            'in_features': args.in_features}, allocator, args.scale_steps)
                            for impl, degree in runs for allocator in args.scale_allocators]

    results['meta']['load_end'] = os.getloadavg()[0]
    return results


def parse_sizes(text: str) -> List[int]:
    """`'1000,3000,1e4'` -> `[1000, 3000, 10000]`"""
    try:
        sizes = [int(float(s)) for s in text.split(',') if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected comma-separated node counts, got {text!r}') from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError(f'expected node counts of at least 2, got {text!r}')
    return sizes


def parse_allocators(text: str) -> List[str]:
    """`'default,thp'` -> `['default', 'thp']`, names of `ALLOCATORS`"""
    names = [s.strip() for s in text.split(',') if s.strip()]
    unknown = [name for name in names if name not in ALLOCATORS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected comma-separated allocator variants of "
                                         f"{', '.join(ALLOCATORS)}, got {text!r}")
    return names


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """The flags; `--quick` changes the defaults of the sizes, repeats, budget and rounds."""
    parser = argparse.ArgumentParser(description='Benchmark the GATv2 layers against labml_nn and PyG.')
    parser.add_argument('--quick', action='store_true',
                        help='small sizes, few repeats, Cora only alternating (a minute or two)')
    parser.add_argument('--sizes', type=parse_sizes, default=None,
                        help='nodes of the random graphs for the edge-list models '
                             '(default 1000,3000,10000,30000,100000,300000; quick 300,1000,3000)')
    parser.add_argument('--dense-sizes', type=parse_sizes, default=None,
                        help='nodes of the random graphs for the dense models '
                             '(default 250,500,1000,2000,3000; quick 100,200,400)')
    parser.add_argument('--degree', type=float, default=5.0, help='random edges per node, self loops apart')
    parser.add_argument('--in-features', type=int, default=128, help='input features of the random graphs')
    parser.add_argument('--repeats', type=int, default=None,
                        help='at most this many timed calls per configuration and phase (default 10; quick 3)')
    parser.add_argument('--budget', type=float, default=None,
                        help='seconds of timed calls per configuration and phase; at least one call is made '
                             '(default 20; quick 1)')
    parser.add_argument('--rounds', type=int, default=None,
                        help='rounds of the alternating comparison on Cora (default 40; quick 10)')
    parser.add_argument('--alternate-nodes', type=int, default=None,
                        help='nodes of the random graph on which the two dense layers alternate in one process '
                             '(default 1000; quick 300)')
    parser.add_argument('--dense-rounds', type=int, default=None,
                        help='rounds of that comparison (default 10; quick 5)')
    parser.add_argument('--threads', type=int, default=None, help='torch threads (default: one per core)')
    parser.add_argument('--data-dir', default=None, help=f'folder of the Planetoid files (default ${DATA_ENV_VAR})')
    parser.add_argument('--no-cora', dest='cora', action='store_false', help='leave Cora out')
    parser.add_argument('--no-synthetic', dest='synthetic', action='store_false', help='leave the random graphs out')
    parser.add_argument('--no-pyg', action='store_true', help='leave PyG out even when it is installed')
    parser.add_argument('--scale', action='store_true',
                        help='train the edge-list model and PyG on large random graphs with each allocator variant')
    parser.add_argument('--scale-nodes', type=int, default=1_000_000)
    parser.add_argument('--scale-degree', type=float, default=9.0,
                        help='random edges per node of the large graph; with the self loops, '
                             '(degree + 1) x nodes edges')
    parser.add_argument('--scale-pyg-degree', type=float, default=4.0,
                        help="random edges per node of PyG's large graph (default 4: its published 4M edges)")
    parser.add_argument('--scale-allocators', type=parse_allocators, default=list(ALLOCATORS),
                        help=f"allocator variants of the large graphs (default all: {','.join(ALLOCATORS)})")
    parser.add_argument('--scale-steps', type=int, default=3,
                        help='timed training steps and evaluation forwards per large configuration')
    parser.add_argument('--json', default=None, help='write the results to this JSON file')
    parser.add_argument('--plot', default=None, help='save the log-log plot to this image file')
    parser.add_argument('--quiet', action='store_true', help='no progress lines')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    quick = args.quick
    defaults = {'sizes': [300, 1000, 3000] if quick else [1000, 3000, 10000, 30000, 100000, 300000],
                'dense_sizes': [100, 200, 400] if quick else [250, 500, 1000, 2000, 3000],
                'repeats': 3 if quick else 10, 'budget': 1.0 if quick else 20.0, 'rounds': 10 if quick else 40,
                'alternate_nodes': 300 if quick else 1000, 'dense_rounds': 5 if quick else 10}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.cora_isolated = not quick
    for name in ('repeats', 'rounds', 'dense_rounds', 'in_features', 'scale_nodes', 'scale_steps'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be at least 1, got {getattr(args, name)}')
    if args.threads is not None and args.threads < 1:
        parser.error(f'--threads must be at least 1, got {args.threads}')
    if args.alternate_nodes < 2:
        parser.error(f'--alternate-nodes must be at least 2, got {args.alternate_nodes}')
    if min(args.degree, args.scale_degree, args.scale_pyg_degree, args.budget) <= 0:
        parser.error('--degree, --scale-degree, --scale-pyg-degree and --budget must be positive')
    return args


def main(argv: Optional[List[str]] = None) -> dict:
    args = parse_args(argv)
    if args.worker:
        # Inside a worker process: one measurement, printed as the last line of the output
        task = json.loads(args.worker)
        print(json.dumps(measure(task) if task['mode'] == 'measure' else alternate(task)))
        return {}
    results = run(args, show_progress=not args.quiet)
    print(format_report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot and results.get('synthetic'):
        plot(results, args.plot)
    return results


if __name__ == '__main__':
    main(sys.argv[1:])
