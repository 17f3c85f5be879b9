r"""
---
title: Many seeds side by side
summary: >
  Runs an experiment for several seeds, one labml run each, in parallel processes,
  and summarises the results as mean and standard deviation.
---

# Many seeds side by side

A single run of a small graph experiment says little: test accuracy on Cora moves by a point or
more from seed to seed. The experiments therefore train several seeds and report the mean and
the standard deviation. Each seed is its own [labml](https://github.com/labmlai/labml) run,
with its settings, its metrics and its best checkpoint in `logs/<experiment>/<run uuid>/`.

A step on a small graph is too small to keep several threads busy, while seeds are independent:
so `jobs` processes train seeds side by side, each with its own `threads`.
`run_seeds` takes the function that trains one seed as an argument, so any experiment can use it:
the [Cora experiments](../experiments/cora.html) and
[DictionaryLookup](../experiments/dictionary_lookup.html) do.
"""

import inspect
import multiprocessing
import os
import signal
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, Sequence, Tuple

import torch
from labml import lab
from torch import nn

from labml_gat.results import number_of
from labml_gat.runs import (STOP_SIGNALS, labml_run, progress_on_screen,
                            stop_signals_held)


class SeedSettings(Protocol):
    """What the runner reads of an experiment's settings: the Cora experiments'
    (`NodeClassificationSettings`) and DictionaryLookup's have it."""
    seed: int
    seeds: int
    jobs: Optional[int]
    threads: int
    logs: Optional[str]
    quiet: bool

    def as_dict(self) -> dict: ...

    def experiment_name(self) -> str: ...

    def comment(self, seed: int) -> str: ...


# A function that trains one seed: `(settings, data, seed, checkpoint path)` to
# `(results, model)`; the results hold at least the seed's `test_accuracy` and the accuracy
# its weights were chosen on: `val_accuracy`, or `train_accuracy` for a task without a
# validation set (DictionaryLookup)
TrainOneSeed = Callable[[SeedSettings, Any, int, Path],
                        Tuple[dict, nn.Module]]
# The accuracies a summary gives the mean and spread of, those the seeds' results hold
ACCURACIES = ('test_accuracy', 'val_accuracy', 'train_accuracy')


def run_seeds(settings: SeedSettings, explicit: set, data: Any,
              train: TrainOneSeed, argv: Optional[Sequence[str]] = None) -> dict:
    """
    ## Running the seeds

    Trains the seeds `settings.seed`, `settings.seed + 1`, ... with `train`, one labml run each.
    `explicit` names the settings given on the command line (labml marks them in `configs.yaml`),
    `argv` the words after the script that its parser read (`None`: `sys.argv[1:]`, as for
    argparse). Returns the settings, the command of the run (the file name of the script of
    the settings, and `argv`: `python -m labml_gat.results --record` checks a record's command
    against them), the per-seed results, the mean and standard deviation of each of their
    accuracies (`ACCURACIES`), the training time summed over the seeds and the wall-clock time
    of the whole run. A run stopped (Ctrl-C) or failed after some seeds finished says which on
    `stderr`, with their test accuracy and where their labml runs are, before the stop or the
    error goes on.
    """
    if settings.logs is not None:
        lab.configure({'experiments_path': str(Path(settings.logs).resolve())})
    torch.set_num_threads(settings.threads)
    seeds = range(settings.seed, settings.seed + settings.seeds)
    jobs = seed_processes(settings)
    # How busy the machine was as the run started: on a busy machine times are longer
    load = round(os.getloadavg()[0], 1)
    start = time.perf_counter()
    # The results of the seeds that finished, by seed
    finished = {}
    try:
        if jobs == 1:
            for seed in seeds:
                finished[seed] = run_seed(settings, explicit, data, seed, train)
        else:
            run_in_parallel(settings, explicit, data, seeds, train, jobs, finished)
    except BaseException:
        if finished:
            say_finished(finished, len(seeds))
        raise
    results = [finished[seed] for seed in seeds]
    return {'settings': settings.as_dict(),
            'script': Path(inspect.getfile(type(settings))).name,
            'argv': list(sys.argv[1:] if argv is None else argv), 'runs': results,
            **{name: summarize([r[name] for r in results]) for name in ACCURACIES
               if name in results[0]},
            'seconds': round(sum(r['seconds'] for r in results), 2), 'jobs': jobs,
            'wall_seconds': round(time.perf_counter() - start, 2), 'load_average': load}


def run_seed(settings: SeedSettings, explicit: set, data: Any, seed: int,
             train: TrainOneSeed, shown: bool = True) -> dict:
    """One seed as one labml run; returns its results. Not `shown` (in a worker), it
    prints nothing, whatever `--quiet` says, and its run keeps the settings as given."""
    screen = shown and progress_on_screen(settings.quiet)
    configs = {**settings.as_dict(), 'seed': seed}
    with labml_run(settings.experiment_name(), settings.comment(seed), configs,
                   {name: configs[name] for name in explicit | {'seed'}},
                   screen=screen, quiet=settings.quiet or not shown) as folder:
        result, _ = train(settings, data, seed, folder / 'checkpoints' / 'best.pt')
    return result


def say_finished(finished: dict, n_seeds: int) -> None:
    """The seeds a stopped or failed run finished: their test accuracy, where their runs are."""
    names = ', '.join(str(seed) for seed in sorted(finished))
    test = summarize([result['test_accuracy'] for result in finished.values()])
    several = len(finished) > 1
    seed, their = ('seeds', 'their runs are') if several else ('seed', 'its run is')
    print(f'{len(finished)} of {n_seeds} seeds finished ({seed} {names}): test accuracy '
          f'{spread(test)}; {their} in {lab.get_experiments_path()}',
          file=sys.stderr, flush=True)


def run_in_parallel(settings: SeedSettings, explicit: set, data: Any,
                    seeds: range, train: TrainOneSeed, jobs: int, finished: dict) -> None:
    """
    ### Seeds side by side

    `jobs` worker processes, each with `settings.threads` threads, keep their runs in the same
    `logs/` folder without printing per-epoch progress; a line is printed as each seed ends,
    and its results go into `finished`.

    Ctrl-C (or `SIGTERM`) stops every seed at once: no worker starts another seed, each
    running seed is interrupted (labml records its run as `interrupted`), and the
    `KeyboardInterrupt` goes on to the caller once every worker has stopped. A seed that
    fails stops the others the same way, and its error goes on to the caller, as it does
    in one process.
    """
    context = multiprocessing.get_context('spawn')
    stop = context.Event()
    start = time.perf_counter()
    futures = {}
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=start_worker,
                             initargs=(settings.threads, str(lab.get_experiments_path()),
                                       stop)) as pool:
        try:
            # The workers are spawned as seeds are submitted, with the stop signals held
            # as they are here meanwhile: a Ctrl-C while they import torch is not theirs
            # to raise, and this process handles it once the seeds are submitted
            with stop_signals_held():
                futures = {pool.submit(run_seed_in_worker, settings, explicit, data, seed,
                                       train): seed for seed in seeds}
            for done, future in enumerate(as_completed(futures), 1):
                result = finished[futures[future]] = future.result()
                if not settings.quiet:
                    print(f'seed {futures[future]}: test accuracy '
                          f'{100 * result["test_accuracy"]:.1f} % '
                          f'({done}/{len(futures)} seeds, '
                          f'{time.perf_counter() - start:.0f} s)',
                          flush=True)
        except BaseException:
            # Ctrl-C, or a seed that failed: as in one process, no other seed starts. A seed
            # may have finished meanwhile
            stop_workers(pool, stop)
            for future, seed in futures.items():
                done = future.done() and not future.cancelled()
                if done and future.exception() is None and future.result() is not None:
                    finished[seed] = future.result()
            raise


def stop_workers(pool: ProcessPoolExecutor, stop: Any) -> None:
    """
    Stop the seeds: `stop` keeps the workers from starting another seed, a Ctrl-C sent to
    each interrupts the seed it trains, and the seeds not yet started are cancelled.
    Waits for the workers, which only record their runs as interrupted; a second Ctrl-C
    meanwhile is ignored, so that no run is left half written.
    """
    handlers = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        stop.set()
        # The pool's workers are this process's children
        for worker in multiprocessing.active_children():
            os.kill(worker.pid, signal.SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


# Set in each worker by `start_worker`: once set, the worker starts no other seed
_stop: Any = None


def run_seed_in_worker(settings: SeedSettings, explicit: set, data: Any,
                       seed: int, train: TrainOneSeed) -> Optional[dict]:
    """`run_seed` in a worker, unless the seeds were stopped (then `None`)."""
    if _stop.is_set():
        return None
    return run_seed(settings, explicit, data, seed, train, shown=False)


def start_worker(threads: int, experiments_path: str, stop: Any = None) -> None:
    """
    Set up a worker process: its threads, the parent's labml `logs/` folder and the parent's
    `stop` event.
    Workers print nothing (not even labml's banner of each run): their runs are in `logs/`,
    and their results and errors come back to the parent.
    A Ctrl-C reaches a worker only while it trains a seed (`labml_run` lets it in), and only
    the first one interrupts it: a worker between seeds has nothing to interrupt, and a
    second Ctrl-C must not break labml's record of the interrupted run. A `SIGTERM` is the
    parent's to handle: it stops the workers with a Ctrl-C.
    """
    global _stop
    _stop = stop
    torch.set_num_threads(threads)
    lab.configure({'experiments_path': experiments_path})
    sys.stdout = open(os.devnull, 'w')
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, 'pthread_sigmask'):
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _interrupt_once(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def seed_processes(settings: SeedSettings) -> int:
    """The processes that train the seeds side by side: `--jobs`, else one per core, and
    never more than the seeds."""
    return min(settings.jobs or available_cores(), settings.seeds)


def available_cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def summarize(values: list) -> dict:
    """Mean and (sample) standard deviation, in percent."""
    mean = 100 * statistics.fmean(values)
    std = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return {'mean': round(mean, 2), 'std': round(std, 2), 'n': len(values)}


def spread(test: dict) -> str:
    """The mean ± the sample standard deviation of `summarize`; one seed has no spread."""
    if test['n'] == 1:
        return f"{test['mean']:.2f} % with one seed"
    return f"{test['mean']:.2f} ± {test['std']:.2f} % over {test['n']} seeds"


def format_summary(summary: dict, title: str) -> str:
    """The table of the seeds: epochs, best epoch, accuracies and time, then the mean and std.
    The accuracy beside the test's is the validation's, or the training set's for runs
    without a validation set."""
    chosen = 'val' if 'val_accuracy' in summary['runs'][0] else 'train'
    lines = [title, f"{'seed':>6} {'epochs':>7} {'best':>5} {chosen + ' %':>7} "
                    f"{'test %':>7} {'time s':>7}"]
    for r in summary['runs']:
        lines.append(f"{r['seed']:>6} {r['epochs']:>7} {r['best_epoch']:>5} "
                     f"{100 * r[chosen + '_accuracy']:>7.1f} "
                     f"{100 * r['test_accuracy']:>7.1f} {r['seconds']:>7.1f}")
    jobs = summary['jobs']
    lines.append(f"test accuracy: {spread(summary['test_accuracy'])}; "
                 f"{summary['seconds']:.1f} s of training, "
                 f"{summary['wall_seconds']:.1f} s in all "
                 f"({number_of(jobs, 'process', 'processes')})")
    return '\n'.join(lines)
