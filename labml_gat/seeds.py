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
`run_seeds` takes the function that trains one seed as an argument, so any experiment can use it.
"""

import io
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import nullcontext, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Tuple

import torch
from labml import experiment, lab
from torch import nn

from labml_gat.training import NodeClassificationSettings

# A function that trains one seed: `(settings, data, seed, checkpoint path)` to
# `(results, model)`; the results hold at least the seed's `val_accuracy` and `test_accuracy`
TrainOneSeed = Callable[[NodeClassificationSettings, Any, int, Path],
                        Tuple[dict, nn.Module]]


def run_seeds(settings: NodeClassificationSettings, explicit: set, data: Any,
              train: TrainOneSeed) -> dict:
    """
    ## Running the seeds

    Trains the seeds `settings.seed`, `settings.seed + 1`, ... with `train`, one labml run each.
    `explicit` names the settings given on the command line (labml marks them in `configs.yaml`).
    Returns the per-seed results, their mean and standard deviation, the training time summed
    over the seeds and the wall-clock time of the whole run.
    """
    if settings.logs is not None:
        lab.configure({'experiments_path': str(Path(settings.logs).resolve())})
    torch.set_num_threads(settings.threads)
    seeds = range(settings.seed, settings.seed + settings.seeds)
    jobs = min(settings.jobs or available_cores(), settings.seeds)
    # How busy the machine was as the run started: on a busy machine times are longer
    load = round(os.getloadavg()[0], 1)
    start = time.perf_counter()
    if jobs == 1:
        results = [run_seed(settings, explicit, data, seed, train) for seed in seeds]
    else:
        results = run_in_parallel(settings, explicit, data, seeds, train, jobs)
    return {'settings': settings.as_dict(), 'runs': results,
            'test_accuracy': summarize([r['test_accuracy'] for r in results]),
            'val_accuracy': summarize([r['val_accuracy'] for r in results]),
            'seconds': round(sum(r['seconds'] for r in results), 2), 'jobs': jobs,
            'wall_seconds': round(time.perf_counter() - start, 2), 'load_average': load}


def run_seed(settings: NodeClassificationSettings, explicit: set, data: Any, seed: int,
             train: TrainOneSeed) -> dict:
    """One seed as one labml run; returns its results."""
    # labml's screen output redraws one line, which only a terminal shows well
    screen = not settings.quiet and sys.stdout.isatty()
    configs = {**settings.as_dict(), 'seed': seed}
    # labml prints a banner (the run's uuid and the last commit) as a run starts;
    # `--quiet` keeps it out of the output
    with redirect_stdout(io.StringIO()) if settings.quiet else nullcontext():
        experiment.create(name=settings.experiment_name(), comment=settings.comment(seed),
                          writers={'screen', 'file'} if screen else {'file'})
        experiment.configs(configs, {name: configs[name] for name in explicit | {'seed'}})
        run = experiment.start()
    with run:
        folder = Path(lab.get_experiments_path()) / settings.experiment_name()
        checkpoint = folder / experiment.get_uuid() / 'checkpoints' / 'best.pt'
        result, _ = train(settings, data, seed, checkpoint)
    return result


def run_in_parallel(settings: NodeClassificationSettings, explicit: set, data: Any,
                    seeds: range, train: TrainOneSeed, jobs: int) -> list:
    """
    ### Seeds side by side

    `jobs` worker processes, each with `settings.threads` threads, keep their runs in the same
    `logs/` folder without printing per-epoch progress; a line is printed as each seed ends,
    and the results come back in the order of the seeds.
    """
    quiet = replace(settings, quiet=True)
    context = multiprocessing.get_context('spawn')
    start = time.perf_counter()
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=start_worker,
                             initargs=(settings.threads, str(lab.get_experiments_path()))
                             ) as pool:
        futures = {pool.submit(run_seed, quiet, explicit, data, seed, train): seed
                   for seed in seeds}
        for done, future in enumerate(as_completed(futures), 1):
            result = future.result()
            if not settings.quiet:
                print(f'seed {futures[future]}: test accuracy '
                      f'{100 * result["test_accuracy"]:.1f} % '
                      f'({done}/{len(futures)} seeds, '
                      f'{time.perf_counter() - start:.0f} s)',
                      flush=True)
    return [future.result() for future in futures]


def start_worker(threads: int, experiments_path: str) -> None:
    """
    Set up a worker process: its threads and the parent's labml `logs/` folder.
    Workers print nothing (not even labml's banner of each run): their runs are in `logs/`,
    and their results and errors come back to the parent.
    """
    torch.set_num_threads(threads)
    lab.configure({'experiments_path': experiments_path})
    sys.stdout = open(os.devnull, 'w')


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


def format_summary(summary: dict, title: str) -> str:
    """The table of the seeds: epochs, best epoch, accuracies and time, then the mean and std."""
    lines = [title, f"{'seed':>6} {'epochs':>7} {'best':>5} {'val %':>7} {'test %':>7} "
                    f"{'time s':>7}"]
    for r in summary['runs']:
        lines.append(f"{r['seed']:>6} {r['epochs']:>7} {r['best_epoch']:>5} "
                     f"{100 * r['val_accuracy']:>7.1f} {100 * r['test_accuracy']:>7.1f} "
                     f"{r['seconds']:>7.1f}")
    test, jobs = summary['test_accuracy'], summary['jobs']
    lines.append(f"test accuracy: {test['mean']:.2f} ± {test['std']:.2f} % "
                 f"over {test['n']} seed(s); {summary['seconds']:.1f} s of training, "
                 f"{summary['wall_seconds']:.1f} s in all "
                 f"({jobs} process{'es' * (jobs > 1)})")
    return '\n'.join(lines)
