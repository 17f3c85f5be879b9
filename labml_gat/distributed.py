r"""
---
title: Data parallelism on graphs with torch.distributed
summary: >
  The mini-batch route on several processes and machines with torchrun and
  DistributedDataParallel: what each rank holds, what is exchanged per step (gradients only),
  one shared copy of the graph per machine, and where replicating the graph stops scaling.
---

# Data parallelism on graphs

The [mini-batch experiment](../experiments/cora_minibatch.html) trains on batches of target nodes
with [sampled neighbourhoods](sampling.html). A step needs the rows `x[n_id]` of the features and the
sampled edges of its own batch, nothing else. That makes it **data parallel** the same way image
classifiers are: $P$ processes (*ranks*) each take their own share of every batch, compute the
gradient of their share, and average the gradients before the optimiser's step. This module is the
machinery for that; the experiment script calls it and runs unchanged as one process or as many.

## What each rank holds, and what is exchanged

Every rank holds

* the **whole graph and all the features**, read-only: the [sampler's](sampling.html) in-neighbour
  lists and `x`. Ranks on one machine can share one copy
  ([below](#one-copy-of-the-graph-per-machine)), as the
  [million-node script](../experiments/synthetic_minibatch.html) does; the mini-batch experiment's
  ranks each load Cora, which is small;
* a **replica of the model** and of the optimiser's state: the same initial weights (DDP copies rank 0's
  when it wraps the model) and, since every rank applies the same averaged gradient, the same weights
  after every step;
* its own **random streams for sampling and dropout**, and the same stream for the order of the
  targets.

Each epoch every rank shuffles the training nodes the same way, cuts the order into global batches
of `--batch-size` targets, and takes its own slice $r$ of $P$ of every batch
([`epoch_shares`](#each-rank-s-share-of-an-epoch)). So the ranks train on disjoint targets, have the
same number of steps (no rank waits forever at a step the others never take), and together see every
training node once per epoch. A last batch with fewer targets than ranks is the exception: it is
filled up with the first targets of the epoch, so that no rank's slice is empty, and those are
trained twice. Each rank samples the blocks of its own slice and runs forward and backward on them.
Then [`DistributedDataParallel`](https://pytorch.org/docs/stable/notes/ddp.html) (DDP) **averages the
gradients** over the ranks with an all-reduce, overlapping it with the backward pass. That is the
only exchange of a training step: one gradient of the model's parameters, as many numbers as the
model has weights, whatever the size of the graph. No features, no hidden vectors, no edges cross
between ranks.

With the loss of a rank's slice written as a sum of its targets' losses $\mathcal{L}_i$ divided by
the size $B$ of the global batch, times $P$,
$$\frac{1}{P} \sum_{r=1}^{P} \frac{P}{B} \sum_{i \in \text{slice}_r} \mathcal{L}_i
= \frac{1}{B} \sum_{i \in \text{batch}} \mathcal{L}_i ,$$
DDP's average is exactly the gradient of one process's mean loss over the global batch, even when
the slices differ by a node. With dropout off and all neighbours kept, $P$ processes therefore take
the same steps as one (up to float rounding, a filled last batch aside), which
`tests/test_distributed.py` checks.

Evaluation is split the same way: each rank evaluates its slice of the validation or test nodes, and
one all-reduce sums the losses and the counts of correct nodes ([`sum_over_ranks`](#sums-over-the-ranks)).
Early stopping decides on those global numbers, so every rank stops at the same epoch.
Only rank 0 creates the labml run, prints, and writes checkpoints and summaries.

## Where this stops scaling

Replicating the graph is what keeps this simple: any rank can sample any neighbourhood from its own
memory, with no communication. It stops working when the graph and its features no longer fit in
one machine's memory; where the ranks of a machine share one copy, the limit is the memory of a
machine, not of a process. Beyond that the graph must be **partitioned**: each machine keeps a part
of the nodes, their features and edges, and sampling fetches remote neighbourhoods and feature rows
over the network. That is what `torch_geometric.distributed` and DistDGL do; this project does not.
Until then, more ranks buy throughput (more targets per second), not capacity.

## Commands

One machine, two processes:
```bash
torchrun --nproc-per-node 2 -- experiments/cora_minibatch.py --logs runs
```
Two machines (or two launches on one machine, with `127.0.0.1` as `HOST`), one on each:
```bash
torchrun --nnodes 2 --nproc-per-node 1 --node-rank 0 --master-addr HOST \
    --master-port 29400 -- experiments/cora_minibatch.py
torchrun --nnodes 2 --nproc-per-node 1 --node-rank 1 --master-addr HOST \
    --master-port 29400 -- experiments/cora_minibatch.py
```
`--node-rank` numbers the machines, and machine 0 holds rank 0, the one that prints and writes
(with `--rdzv-backend c10d` instead, ranks go to the machines in the order they join).
The `--` ends torchrun's own options. torchrun reads every option of the command line, its
script's too, and accepts abbreviations of its own: without `--`, `--logs` stops it
(`ambiguous option: --logs could match --logs-specs, --logs_specs`).
The backend follows `--device`: gloo on the CPU, NCCL on CUDA with one GPU per process, chosen by
`LOCAL_RANK`. Only the gloo path has run here: the machine of the records has no GPU, so the NCCL
path is untested.

## When a process fails

A mistake in the settings or missing data is found before any process group starts, and said once
per machine ([`checks_said_once`](#settings-that-do-not-mix-with-several-processes)); the process
exits with status 2. So are launches given different settings, found as the job starts
([`check_same_settings`](#the-same-settings-on-every-machine)): each machine types its own
command line, and a process trained otherwise than rank 0 would go unnoticed or abort.
A process that dies mid-run closes its connections, and one that hangs stops answering: the
others' next collective fails at once, or after `--peer-timeout` seconds (600 by default), and they
end with one line, `another process of the job failed or stopped answering`, and status 1.
Rank 0's labml run is recorded as `interrupted`, with that line as the reason: it was stopped
by another process, and did not crash (labml's word for an error of its own).
A Ctrl-C in the terminal stops every process, and torchrun passes it on to them once more: the
first process of each machine says `stopped`, once, and they end with status 130. So does a
process stopped while it waits for the others to join ([`joined`](#waiting-for-the-others-to-join)),
or for them at a barrier (the first process of its machine building the synthetic graph) or
another collective ([`collective`](#waiting-in-a-collective)), at once.
torchrun's launch for one machine of several waits for the other launches itself, before it
starts any process, and takes a Ctrl-C there only when that wait ends (after 900 s, torchrun's
default, or `--rdzv-conf timeout=SECONDS`: `--peer-timeout` is the script's, read only once its
processes run), with a traceback of its own; `kill` (`SIGTERM`) stops it at once.
torchrun itself, seeing a process fail, stops the others and prints its own report of the failure
(with a traceback of torchrun's own code), naming the rank that failed first and its exit status.
"""

import datetime
import io
import json
import math
import os
import shutil
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import torch
import torch.distributed as dist
from torch import nn

from labml_gat.runs import StoppedElsewhere
from labml_gat.settings import UsageError, flag


class LostPeer(StoppedElsewhere, RuntimeError):
    """Another process of the job failed, was stopped, or did not answer in time. The labml
    run of rank 0 is then recorded as interrupted, not as a crash of its own."""


@dataclass(frozen=True)
class Job:
    """
    ## The job

    This process's place in the job: its `rank` among `world_size` processes, and its `device`.
    A plain `python script.py` is the job of one process, rank 0, without `torch.distributed`.
    """
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device('cpu')

    @property
    def is_main(self) -> bool:
        """Rank 0 is the one that prints and writes."""
        return self.rank == 0


# The job of this process: one process until `start` joins a process group
_job = Job()


def current() -> Job:
    """The job this process is part of."""
    return _job


def device(name: str) -> torch.device:
    """The device of this process: `name`, or under torchrun on CUDA the GPU of its local rank."""
    return _job.device if _job.world_size > 1 else torch.device(name)


def launched() -> bool:
    """Whether torchrun (or anything that sets its variables) started this process."""
    return 'RANK' in os.environ and 'WORLD_SIZE' in os.environ


def world_size() -> int:
    """The number of processes of the job, known from the environment before any set-up."""
    return int(os.environ['WORLD_SIZE']) if launched() else 1


def rank() -> int:
    return int(os.environ['RANK']) if launched() else 0


# The default `--peer-timeout` of every script, in seconds. It must outlast the longest
# wait of a healthy job: the first process of each machine builds the synthetic script's
# graph and writes it to the cache while the others wait at a barrier, some seconds for
# the default million nodes, ten times that for ten million (`--nodes`), longer on a busy
# machine or with the cache in a network folder. A timeout shorter than that would end a
# job that was only building; a longer one only makes a job whose process hangs end later.
PEER_TIMEOUT = 600
PEER_TIMEOUT_HELP = ('under torchrun: seconds a process waits for the others before the '
                     'job ends')

# The longest `--peer-timeout`, in seconds
MAX_PEER_TIMEOUT = 10 ** 9


def check_settings(settings: Any) -> None:
    """
    ## Settings that do not mix with several processes

    Checked with the other settings, before any process group or run starts.
    `--jobs` trains seeds side by side in a pool of processes; under torchrun the processes
    train each seed together, one seed after another, so the two do not mix. A
    `--peer-timeout` is one the process group can keep, checked in one process too.
    """
    # A wait longer than this overflows the process group's clock: torch's timeouts end at
    # once, hang or fail in Python, by how far it is over
    if settings.peer_timeout > MAX_PEER_TIMEOUT:
        raise UsageError(f'--peer-timeout must be at most {MAX_PEER_TIMEOUT} seconds '
                         f'(about 31 years), got {settings.peer_timeout}')
    processes = world_size()
    if processes == 1:
        return
    jobs = getattr(settings, 'jobs', None)
    if jobs is not None and jobs != 1:
        raise UsageError(f'--jobs {jobs} trains seeds in a pool of processes; '
                         f'under torchrun the {processes} processes train each seed '
                         f'together, one seed after another: leave --jobs out')
    if settings.batch_size < processes:
        raise UsageError(f'--batch-size {settings.batch_size} is smaller than the '
                         f'{processes} processes: each needs at least one target '
                         f'per batch')
    device = torch.device(settings.device)
    # Every process of a machine finds it, so that its first one says it
    local = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
    if device.type == 'cuda' and local > torch.cuda.device_count():
        raise UsageError(f'--device cuda: each of the {local} processes of this machine '
                         f'needs a GPU of its own, and there are '
                         f'{torch.cuda.device_count()}')
    if device.type not in ('cpu', 'cuda'):
        raise UsageError(f'--device {settings.device}: torchrun runs on cpu (gloo) '
                         f'or cuda (NCCL)')


def check_one_process() -> None:
    """
    ## Scripts of one process

    torchrun starts the script it is given in each of its processes. A script that does not
    join a process group (the full-batch Cora experiment, DictionaryLookup, the benchmark) would
    run whole in every one of them, training the same seeds and writing the same runs, records
    and summaries side by side. So several processes of such a script are refused in one line,
    said once per machine, before anything starts; one process is the script's plain run.
    """
    processes = world_size()
    if processes > 1:
        with checks_said_once():
            raise UsageError(f'torchrun started {processes} processes of a script that '
                             f'runs in one: run it with python (the mini-batch scripts, '
                             f'cora_minibatch.py and synthetic_minibatch.py, are the '
                             f'ones for torchrun)')


# The settings each machine may have of its own: where files are read and written, what it
# prints, its threads, how long it waits, and its device (under torchrun, its local rank's GPU)
LOCAL_SETTINGS = ('data_dir', 'logs', 'summary_json', 'quiet', 'threads', 'device',
                  'jobs', 'peer_timeout', 'cache', 'record', 'results')


def check_same_settings(settings: Any) -> None:
    """
    ## The same settings on every machine

    Each launch of torchrun hands its own command line to its processes, and the launches of a
    job on several machines are typed apart. Processes trained with other settings than rank 0's
    take other steps (a learning rate, a seed, a dropout: the run is silently not the one rank 0
    records) or another number of them (the epochs, the batches: a collective that does not match
    ends in gloo's abort). So, as the job starts, every process compares its settings but the
    `LOCAL_SETTINGS` with everyone's, and all of them end with the same one line when any
    differ, said once per machine.
    """
    if _job.world_size == 1:
        return
    mine = {name: value for name, value in settings.as_dict().items()
            if name not in LOCAL_SETTINGS}
    everyone = gather(mine)
    differ = [name for name in mine if any(other.get(name) != everyone[0].get(name)
                                             for other in everyone)]
    with checks_said_once():
        if differ:
            shown = '; '.join(f'{flag(name)} {by_rank([s.get(name) for s in everyone])}'
                              for name in differ)
            raise UsageError(f'the processes of the job were given different settings: '
                             f'{shown}; give every launch the same flags after --')


def by_rank(values: List[Any]) -> str:
    """`values`, one per rank, as `0.005 on rank 0, 0.5 on ranks 1, 2`."""
    ranks: Dict[str, List[int]] = {}
    for index, value in enumerate(values):
        ranks.setdefault(repr(value), []).append(index)
    return ', '.join(f'{value} on rank{"s" if len(held) > 1 else ""} '
                     f'{", ".join(map(str, held))}' for value, held in ranks.items())


def quiet_unless_main() -> None:
    """Only rank 0 prints: the others' standard output goes nowhere. Errors still show."""
    if rank() != 0:
        sys.stdout = open(os.devnull, 'w')


def first_of_machine() -> bool:
    """Whether this is the first process of its machine (local rank 0), the one that says
    what every process of the machine finds: a mistake, or that the job was stopped."""
    return int(os.environ.get('LOCAL_RANK', 0)) == 0


@contextmanager
def checks_said_once() -> Iterator[None]:
    """
    The checks of the settings and the data, said once per machine: the processes of a
    machine check the same settings against the same files, so only its first (local rank 0)
    prints what is wrong. A machine whose data is missing says so on that machine.
    The others hold back what they print. Finding a mistake (an error, or the parser's exit),
    they wait for torchrun to stop them (`SIGTERM`) when the first exits with it: leaving
    first, one of them would be the failure torchrun reports, and the first might be stopped
    before it said anything. Their error is then marked `said_elsewhere`, so that `command`
    does not print it again. One not stopped within `SAID_ONCE_WAIT_SECONDS` found a mistake
    the first did not, and says it itself.
    """
    if first_of_machine():
        yield
        return
    stderr, sys.stderr = sys.stderr, io.StringIO()
    try:
        yield
    except (Exception, SystemExit) as error:
        if isinstance(error, SystemExit) and not error.code:
            raise
        said = stopped_within(SAID_ONCE_WAIT_SECONDS)
        if isinstance(error, Exception):
            error.said_elsewhere = said
        if not said:
            stderr.write(sys.stderr.getvalue())
        raise
    finally:
        sys.stderr = stderr


# How long a process waits for its machine's first to say the mistake both found
SAID_ONCE_WAIT_SECONDS = 30.0


def stopped_within(seconds: float) -> bool:
    """Whether this process is stopped (`SIGTERM` or Ctrl-C, a `KeyboardInterrupt`) within
    `seconds`."""
    try:
        time.sleep(seconds)
    except KeyboardInterrupt:
        return True
    return False


# How long a process of a finished job lets gloo's threads finish (`job`)
GLOO_SETTLE_SECONDS = 0.2


@contextmanager
def job(device: str, timeout_seconds: float) -> Iterator[Job]:
    """
    ## Joining the job

    Under torchrun, joins the process group with the backend of the device: gloo for the CPU,
    NCCL for CUDA with the GPU `LOCAL_RANK`. `timeout_seconds` bounds every wait for the
    others, so a process that hangs ends the job instead of holding it forever; a process that
    dies closes its connections, which ends the others' waits at once. Either way the others
    raise `LostPeer`, one line for the user. Without torchrun it is the job of one process.
    A stop signal while the process waits for the others to join stops it at once
    ([`joined`](#waiting-for-the-others-to-join)).
    """
    global _job
    if not launched():
        yield replace(_job, device=torch.device(device))
        return
    kind = torch.device(device).type
    local = int(os.environ.get('LOCAL_RANK', 0))
    if kind == 'cuda':
        torch.cuda.set_device(local)
    timeout = datetime.timedelta(seconds=timeout_seconds)
    try:
        with peers_watched():
            joined('nccl' if kind == 'cuda' else 'gloo', timeout, local)
            here = torch.device('cuda', local) if kind == 'cuda' else torch.device(kind)
            _job = Job(dist.get_rank(), dist.get_world_size(), here)
            yield _job
            barrier()
    finally:
        _job = Job()
        # A thread left in a wait by a stop signal still uses the group, and the process
        # ends without destroying it (`end_while_waiting`)
        if dist.is_initialized() and not _waiting:
            dist.destroy_process_group()
            # gloo's worker threads let go of a collective's tensors just after it completes,
            # which takes the GIL; the group's destructor joins them holding the GIL. Dropping
            # the last reference to the group at once (DDP's reducer holds one) can leave both
            # waiting forever: sleeping releases the GIL so that the threads finish first.
            time.sleep(GLOO_SETTLE_SECONDS)


@contextmanager
def peers_watched() -> Iterator[None]:
    """A lost peer, which gloo and NCCL report as a `DistError` or a plain `RuntimeError`
    (`is_communication_error`), raised as `LostPeer`: one line for the user, and inside a
    labml run, the run's record that it was stopped by another process."""
    try:
        yield
    except LostPeer:
        raise
    except (dist.DistError, RuntimeError) as error:
        if isinstance(error, dist.DistError) or is_communication_error(error):
            raise LostPeer(f'rank {rank()} of {world_size()}: another process of the job '
                           f'failed or stopped answering ({first_line(error)})') from None
        raise


def joined(backend: str, timeout: datetime.timedelta, local: int) -> None:
    """
    ### Waiting for the others to join

    Joins the process group, which waits for every process of the job to come: a process
    started by hand with torchrun's variables before the others, or under torchrun one
    whose peer on another machine is still starting or failed before it joined, waits
    there until they come, or for `timeout`. That wait is in torch's C++ code, and Python
    runs its handler of a signal only between two of its own steps: a Ctrl-C or a `SIGTERM`
    (torchrun's, stopping its processes) would be handled only when the wait ends, minutes
    later, after torch's errors.
    So the process group is joined in a thread of its own, and the main thread waits for it
    in Python, where a stop signal raises at once. The joining thread, a daemon, is left in
    its wait, and the process ends without Python's shutdown (`end_while_waiting`): nothing
    has been written yet.
    """
    def join() -> None:
        if backend == 'nccl':
            # The current GPU is set for each thread
            torch.cuda.set_device(local)
        dist.init_process_group(backend, timeout=timeout)
    in_thread(join)


# The threads of `in_thread` not yet seen to end: those a stop signal left in their wait
_waiting: Set[threading.Thread] = set()


def in_thread(function: Callable[[], Any]) -> Any:
    """`function()` run in a daemon thread and waited for in this one, where a stop signal
    raises its `KeyboardInterrupt` at once: its result, or its error. A thread the signal
    leaves in its wait keeps the process from Python's shutdown (`end_while_waiting`)."""
    outcome: Dict[str, Any] = {}

    def run() -> None:
        try:
            outcome['result'] = function()
        except BaseException as error:
            outcome['error'] = error
    thread = threading.Thread(target=run, name=function.__name__, daemon=True)
    # Counted from before it starts until it is seen to end, so that a stop signal at any
    # moment between finds it counted
    _waiting.add(thread)
    thread.start()
    # A wait without a time limit, which a signal interrupts
    thread.join()
    _waiting.discard(thread)
    if 'error' in outcome:
        raise outcome['error']
    return outcome['result']


def collective(function: Callable[[], Any]) -> Any:
    """
    ### Waiting in a collective

    `function()`, a collective of the process group, which waits until every process has
    come to it: the first process of a machine that builds the synthetic script's graph
    keeps the others at the barrier after it for minutes, and a peer that hangs keeps
    everyone until `--peer-timeout`. That wait is in torch's C++ code, as the join's is, so
    the collective runs in a thread too (`in_thread`), and a stop signal ends the wait at
    once. The barriers, the gathers, the sums and DDP's wrapping do. The exchanges inside a
    training step do not (the gradients' all-reduce, DDP's broadcast of its buckets' order
    on the second step): DDP starts them inside the forward and the backward pass, in
    torch's autograd engine, so every step's passes would have to run in another thread,
    with the state autograd keeps per thread, for a wait that is short in a healthy job,
    since the ranks take the same steps. A peer stopped mid-step closes its connections,
    which ends that wait, and one that hangs ends it after `--peer-timeout`. With NCCL a
    collective only queues the exchange on the GPU, and the wait comes where its result is
    read; gloo's, the one that has run here, is covered.
    """
    device = _job.device

    def run() -> Any:
        if device.type == 'cuda':
            # The current GPU is set for each thread, and NCCL's barrier uses it
            torch.cuda.set_device(device)
        return function()
    return in_thread(run)


def end_while_waiting(status: int) -> None:
    """
    ### Ending while a thread waits

    Ends the process with `status` at once when a stop signal left a thread of `in_thread` in
    its wait; otherwise returns. Python's shutdown must not run then: a thread whose wait in
    torch's C++ code ends (the peer comes) while the interpreter finalizes is ended inside
    that code, which aborts the process (`terminate called without an active exception`,
    no status of ours), and destroying the process group would pull it from under the
    thread. So the process ends without the shutdown, once what the stop had to do is done:
    the blocks the `KeyboardInterrupt` left have run (labml's run is marked interrupted, a
    graph cut short is removed); the threads that are not daemons, labml's writer of the
    run's last records among them, are waited for, as the shutdown would; and what is
    printed is flushed. The `atexit` handlers, which the shutdown would run, are left
    out with nothing a user sees: labml registers none; `logging`'s flushes handlers that
    here write only to the standard error stream, flushing every record; multiprocessing's
    and torch's data loaders' end worker processes, which a process of the job does not
    start; torch's others free memory or print statistics that are off.
    """
    if not _waiting:
        return
    for thread in threading.enumerate():
        if not thread.daemon and thread is not threading.current_thread():
            thread.join()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            # A closed stream, or a reader gone: nothing more can be said on it
            pass
    os._exit(status)


def is_communication_error(error: BaseException) -> bool:
    """gloo and NCCL report a lost peer or a timeout as a plain `RuntimeError`."""
    text = str(error)
    return any(word in text for word in ('gloo', 'Gloo', 'NCCL', 'Connection closed',
                                         'Timed out', 'timed out'))


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0][:200] if lines else type(error).__name__


def wrap(model: nn.Module) -> nn.Module:
    """The model as DDP wraps it under torchrun: gradients averaged over the ranks. Wrapping
    is a collective: every rank gets rank 0's weights."""
    if _job.world_size == 1:
        return model
    ids = [_job.device.index] if _job.device.type == 'cuda' else None
    return collective(lambda: nn.parallel.DistributedDataParallel(model, device_ids=ids))


def epoch_shares(nodes: torch.Tensor, batch_size: int,
                 generator: torch.Generator) -> List[Tuple[torch.Tensor, int]]:
    """
    ## Each rank's share of an epoch

    `nodes` in the order drawn by `generator` (the same on every rank), cut into global batches
    of `batch_size`, and this rank's slice of each: `(slice, size of the global batch)`.
    The slices of a batch differ in size by one at most. A last batch smaller than the number of
    ranks is filled up with the first nodes of the order, so that no slice is empty.
    """
    n = _job.world_size
    if len(nodes) < n:
        raise ValueError(f'{len(nodes)} target nodes cannot be shared by {n} processes')
    order = nodes[torch.randperm(len(nodes), generator=generator)]
    batches = list(order.split(batch_size))
    if len(batches[-1]) < n:
        batches[-1] = torch.cat([batches[-1], order[:n - len(batches[-1])]])
    return [(batch.tensor_split(n)[_job.rank], len(batch)) for batch in batches]


def share(nodes: torch.Tensor) -> torch.Tensor:
    """This rank's slice of `nodes`, for evaluation: every node is evaluated by one rank."""
    return nodes.tensor_split(_job.world_size)[_job.rank]


def sum_over_ranks(*values: float) -> List[float]:
    """
    ## Sums over the ranks

    The sums of the ranks' `values` (losses, counts), the same on every rank: one all-reduce.
    In float64, so that counts stay exact.
    """
    if _job.world_size == 1:
        return [float(v) for v in values]
    total = torch.tensor(values, dtype=torch.float64,
                         device=_job.device if _job.device.type == 'cuda' else 'cpu')
    collective(lambda: dist.all_reduce(total))
    return total.tolist()


def barrier() -> None:
    """Wait until every rank is here; a job of one process has no one to wait for."""
    if _job.world_size > 1:
        collective(dist.barrier)


def gather(value: Any) -> List[Any]:
    """Every rank's `value` (anything that pickles), in the order of the ranks, on every
    rank: one all-gather."""
    if _job.world_size == 1:
        return [value]
    values = [None] * _job.world_size
    collective(lambda: dist.all_gather_object(values, value))
    return values


def sample_generator(seed: int) -> torch.Generator:
    """The random stream of this rank's samples: its own for every seed and rank."""
    return torch.Generator().manual_seed(rank_seed(seed))


def own_dropout(seed: int) -> None:
    """
    After the model is built, the same on every rank, every rank but 0 reseeds PyTorch's
    global random stream, so that the ranks draw different dropout masks.
    """
    if _job.rank:
        torch.manual_seed(rank_seed(seed) + 1)


def rank_seed(seed: int) -> int:
    return seed * 1_000_003 + 7919 * (_job.rank + 1)


def run_seeds(settings: Any, explicit: set, data: Any, train: Any,
              argv: Optional[Sequence[str]] = None) -> Optional[dict]:
    """
    ## Seeds under torchrun

    One seed after another, each trained by all the ranks together. Rank 0 runs them through
    [`run_seeds`](seeds.html) (one labml run each, `argv` the script's words) and returns
    the summary; the other ranks train the same seeds without a labml run or a checkpoint
    and return `None`.
    """
    from labml_gat.seeds import run_seeds as run_each
    if _job.world_size == 1:
        return run_each(settings, explicit, data, train, argv)
    if _job.is_main:
        def train_watched(*args: Any) -> Any:
            # A peer lost during the seed is said as such to its labml run
            with peers_watched():
                return train(*args)
        # The summary counts the processes that trained, here the ranks
        summary = run_each(replace(settings, jobs=1), explicit, data, train_watched, argv)
        return {**summary, 'jobs': _job.world_size, 'torchrun': True}
    torch.set_num_threads(settings.threads)
    for seed in range(settings.seed, settings.seed + settings.seeds):
        train(settings, data, seed, None)
    return None


def gather_shares(rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """The rows of every rank's `share` of `range(n_rows)`, in order: one all-gather."""
    if _job.world_size == 1:
        return rows
    sizes = [len(part) for part in torch.arange(n_rows).tensor_split(_job.world_size)]
    padded = rows.new_zeros(sizes[0], *rows.shape[1:])
    padded[:len(rows)] = rows
    parts = [torch.empty_like(padded) for _ in sizes]
    collective(lambda: dist.all_gather(parts, padded))
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])


# ## One copy of the graph per machine
#
# Each rank reads the whole graph, but only reads it. So the first process of every machine
# writes the graph's tensors to files once, and every process of the machine maps them into its
# memory with `torch.from_file`: the system keeps one copy of their pages, whatever the number of
# processes, and a second run on the same machine starts from the files. The copy-on-write mapping
# keeps a process that writes to them from changing the files or the other processes' tensors.
# Machines that share the folder (a network home), or two launches on one machine, each build
# the graph: the first to finish writes the files, and the others map those.

def shared_tensors(folder: Path, build: Callable[[], Dict[str, torch.Tensor]]
                   ) -> Dict[str, torch.Tensor]:
    """
    The tensors that `build()` makes, mapped from files in `folder`, which the first process of
    each machine writes when they are not there yet (`write_tensors`).
    """
    folder = Path(folder)
    if first_of_machine() and not (folder / 'tensors.json').is_file():
        write_tensors(folder, build)
    barrier()
    return {name: torch.from_file(str(folder / f'{name}.bin'), shared=False,
                                  size=math.prod(shape), dtype=dtype).view(shape)
            for name, (shape, dtype) in read_shapes(folder).items()}


# The types of the tensors that `write_tensors` writes, by the names `tensors.json` gives them
DTYPES = {str(dtype)[6:]: dtype for dtype in (
    torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
    torch.float16, torch.bfloat16, torch.float32, torch.float64)}


def read_shapes(folder: Path) -> Dict[str, Tuple[List[int], torch.dtype]]:
    """
    The shape and type of every tensor in `folder/tensors.json`, each of whose files holds
    exactly that many bytes. A folder changed by hand, cut short or written by another
    version is a `DataFileError` that says to remove it: never a traceback, a mapping of
    what the file does not hold, or a file outside the folder.
    """
    try:
        shapes = json.loads((folder / 'tensors.json').read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise not_a_graph(folder, f'tensors.json: {err}') from None
    if not isinstance(shapes, dict) or not shapes:
        raise not_a_graph(folder, 'tensors.json names no tensors')
    found = {}
    for name, kind in shapes.items():
        if not (name.isidentifier() and isinstance(kind, dict)
                and kind.get('dtype') in DTYPES and isinstance(kind.get('shape'), list)
                and all(type(n) is int and n >= 0 for n in kind['shape'])):
            raise not_a_graph(folder, f'tensors.json: {name!r}: {kind!r}')
        shape, dtype = kind['shape'], DTYPES[kind['dtype']]
        path = folder / f'{name}.bin'
        size = path.stat().st_size if path.is_file() else None
        expected = math.prod(shape) * dtype.itemsize
        if size != expected:
            raise not_a_graph(folder, f'{path.name} is not a file' if size is None
                              else f'{path.name} holds {size} bytes, {expected} expected')
        found[name] = shape, dtype
    return found


def not_a_graph(folder: Path, why: str) -> Exception:
    """The `DataFileError` of what is at `folder` but not a graph's files written here: one
    line that says what is wrong, and to remove it."""
    from labml_gat.datasets import DataFileError
    what = 'the folder' if folder.is_dir() and not folder.is_symlink() else 'it'
    return DataFileError(f'{folder}: not the files of a graph as written here ({why}); '
                         f'remove {what}, and the graph is written again')


def check_graph_folder(folder: Path) -> None:
    """
    `folder` holds the files of a graph (its `tensors.json`, which `read_shapes` checks), or
    nothing yet: no such path, or an empty folder, which the written folder replaces. Anything
    else is not ours to write into or to replace (a folder made by hand or by another program,
    a file): a `DataFileError`, checked before the build, which takes minutes for a big graph
    whose files could then not be put in their place.
    """
    if (folder / 'tensors.json').is_file():
        return
    if folder.is_dir() and not folder.is_symlink():
        if next(folder.iterdir(), None) is not None:
            raise not_a_graph(folder, 'it has no tensors.json')
    elif folder.is_symlink() or folder.exists():
        raise not_a_graph(folder, 'it is a file or a link, not a folder')


def write_tensors(folder: Path, build: Callable[[], Dict[str, torch.Tensor]]) -> None:
    """
    Write the tensors of `build()` into a temporary folder beside `folder`, renamed to it
    when complete, so that an interrupted write leaves nothing half-written. Two writers
    at once (two machines, or two launches on one, sharing the folder) both build, and the
    second to finish finds the first one's files in `folder` and keeps them. A build or a
    write that fails for any reason (no memory, a full disk, Ctrl-C) leaves nothing at all:
    the temporary folder goes, or every failed try would leave one more (its name has the
    process's id), and so do the folders made for it. What is at `folder` and not a graph's
    files is a `DataFileError` (`check_graph_folder`), before the build or, when it came
    during the build, after it.
    """
    check_graph_folder(folder)
    # The folders made here, the innermost last, as `datasets.download_planetoid` does
    made = [parent for parent in (folder.parent, *folder.parent.parents)
            if not parent.exists()][::-1]
    partial = folder.with_name(f'{folder.name}.partial-{os.getpid()}')
    try:
        # Built before anything is written: a build that fails has written nothing
        tensors, shapes = build(), {}
        partial.mkdir(parents=True)
        for name, tensor in tensors.items():
            tensor.contiguous().numpy().tofile(partial / f'{name}.bin')
            shapes[name] = {'shape': list(tensor.shape), 'dtype': str(tensor.dtype)[6:]}
        (partial / 'tensors.json').write_text(json.dumps(shapes))
        del tensors
        try:
            os.replace(partial, folder)
        except OSError:
            # Another writer of the folder was first: the first process of another machine
            # that shares it, or of another launch on this machine. Its files are these
            # (the folder's name holds everything the build depends on), so they are used
            if not (folder / 'tensors.json').is_file():
                # Or something else came there during the build, which is not the files
                check_graph_folder(folder)
                raise
            shutil.rmtree(partial)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        # Those still empty; a build that failed made none of them
        for made_folder in reversed(made):
            if made_folder.exists():
                if any(made_folder.iterdir()):
                    break
                made_folder.rmdir()
        raise


def memory() -> Dict[str, int]:
    """
    This process's memory in bytes: `rss`, the pages it has in memory, shared or not; `pss`, the
    same with every shared page divided among the processes that map it (the sum over processes is
    the machine's memory); and `private`, the pages of this process alone. Linux only.
    """
    found = {}
    with open('/proc/self/smaps_rollup') as f:
        for line in f:
            name, _, value = line.partition(':')
            found[name] = int(value.split()[0]) * 1024
    return {'rss': found['Rss'], 'pss': found['Pss'],
            'private': found['Private_Clean'] + found['Private_Dirty']}


# ## Evaluation on all nodes, layer by layer
#
# Evaluating a batch of targets with all their neighbours recomputes the first layer at every
# node of their neighbourhoods, once for each batch that reaches it; on a big graph with many
# targets that repeats the work many times over. Layer by layer, the first layer is computed
# once at every node (each rank its share, in batches of targets with their in-edges), the ranks
# exchange their shares so that each holds $h^{(1)}$ of all nodes, and the second layer is computed
# at the rank's share of the targets.

@torch.no_grad()
def layer_by_layer(model: nn.Module, sampler: Any, x: torch.Tensor, nodes: torch.Tensor,
                   batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """
    The class scores of this rank's `share(nodes)` from the [two-layer model](model.html)
    `model` in eval mode, with all neighbours: `(share, scores)`, `[n_share, n_classes]`.
    """
    model.eval()
    everyone = torch.arange(sampler.num_nodes)
    hidden = torch.cat([on_block(model.layer1, x, sampler, targets)
                        for targets in share(everyone).split(batch_size)])
    hidden = gather_shares(model.activation(hidden), sampler.num_nodes)
    mine = share(nodes)
    return mine, torch.cat([on_block(model.output, hidden, sampler, targets)
                            for targets in mine.split(batch_size)])


def on_block(layer: nn.Module, h: torch.Tensor, sampler: Any,
             targets: torch.Tensor) -> torch.Tensor:
    """One layer at `targets` from all their in-neighbours: `[len(targets), out_features]`."""
    batch = sampler.sample(targets, [-1])
    device = next(layer.parameters()).device
    h_src = h[batch.n_id].to(device)
    return layer((h_src, h_src[:len(targets)]), batch.blocks[0].edge_index.to(device))
