r"""
---
title: Looking at runs offline
summary: >
  List the labml runs kept in logs/ with their settings and final numbers, and plot the
  training curves of one or more runs into an image, without a server.
---

# Looking at runs offline

Every training run of the experiments is a labml run, kept in a folder
`logs/<experiment>/<run uuid>/`:

* `run.yaml`: the experiment's name, the run's comment, its date and time;
* `configs.yaml`: the settings, one entry per setting with its `computed` value;
* `log.jsonl`: what `tracker` recorded, one JSON object per flush,
  `{"track": {"loss.train": [[step, [value, ...]], ...], ...}, "time": ...}`;
* `run_log.jsonl`: the run's status (`completed`, `crashed`, `interrupted`), the last
  line the latest.

Those files are all there is to read, so two commands need nothing but this module:

```
python -m labml_gat.runs list [LOGS_DIR]
python -m labml_gat.runs plot RUN_DIR [RUN_DIR ...] [--out IMAGE]
```

`list` shows each experiment's runs: the settings shared by all its runs once, then a row
per run with the settings that differ and the last value of every metric. `plot` draws one
panel per kind of metric (`loss`, `accuracy`, ...), with a line per run and split:
training solid, validation dashed, and a value recorded once, such as the test accuracy,
as a dot. More than three runs of one experiment, such as the seeds of `--seeds 10`, are
drawn as their mean with a band of one standard deviation, each run faint behind it.
The image goes into a folder that exists (`--out`), as every output of the experiments; by
default `curves.png` beside the logs (`logs/curves.png` for runs in `logs/<name>/<uuid>`).
Plotting needs matplotlib (the `docs` extra); listing does not.

The experiments keep their runs in `--logs`, else in the folder `LABML_GAT_LOGS` names,
else in labml's `logs/` beside `.labml.yaml`, at the top of the clone, wherever they run
from (the tests and the site's build set the variable, so that their runs stay out of the
clone). `--logs` must be in a folder that exists; the folder the variable names is made,
with the folders above it, as labml makes its own. `list` reads `LABML_GAT_LOGS`, else
`logs/` of the folder it runs in; it takes the folder of the runs, of one experiment's
runs, or of one run.
"""

import io
import json
import math
import os
import signal
import sys
import textwrap
import threading
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import yaml

from labml_gat.results import number_of
from labml_gat.settings import (ArgumentParser, UsageError, check_image, command,
                                home_path, path_errors)

# The environment variable naming the folder of labml runs (for the runs and for `list`)
LOGS_ENV_VAR = 'LABML_GAT_LOGS'

# Metrics that are about the machine, not the model: left out of plots and of the table.
HIDDEN_KINDS = ('time',)


def logs_folder() -> Path:
    """The folder of labml runs: `LABML_GAT_LOGS` if set, else `logs/` here."""
    return Path(os.environ.get(LOGS_ENV_VAR) or 'logs')


def use_logs_from_environment() -> Optional[Path]:
    """
    Point labml at `LABML_GAT_LOGS`, when it is set, for the runs this process starts.
    labml itself reads no environment variable: its `logs/` is found beside `.labml.yaml`,
    so a script started by another process would otherwise write into the repository.
    """
    folder = os.environ.get(LOGS_ENV_VAR)
    if not folder:
        return None
    from labml import lab
    lab.configure({'experiments_path': str(Path(folder).resolve())})
    return Path(folder)


# ## Starting a run

# The signals that stop a run: Ctrl-C, and `SIGTERM` (which `command` turns into a Ctrl-C)
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class StoppedElsewhere(Exception):
    """
    The run was stopped from outside this process: another process of its
    [distributed job](distributed.html) failed, was stopped, or stopped answering. labml
    records every error but a Ctrl-C as the run's crash, which would send a reader to look
    for a fault in this process; the run is recorded as `interrupted`, as a Ctrl-C's, with
    the error's message as labml's details of why.
    """


@contextmanager
def labml_run(name: str, comment: str, configs: dict, explicit: Optional[dict] = None,
              screen: bool = True, quiet: bool = False) -> Iterator[Path]:
    """
    One labml run around the block; yields the run's folder.

    labml's banner names the run but also prints the repository's last commit message, which
    means nothing to a user: it is replaced by one line, the run's comment and its folder.
    A stop signal that arrives while labml sets the run up is held until the run has started,
    so that labml always records the run as `interrupted`, never leaves it half made; one that
    arrives while labml closes the run is handled once it is closed. A run stopped from
    outside the process (`StoppedElsewhere`) is recorded as `interrupted` too.
    `screen` keeps labml's per-epoch progress line, which ends without a newline.
    """
    from labml import experiment, lab
    held = _hold_stop_signals()
    try:
        with redirect_stdout(io.StringIO()):
            experiment.create(name=name, comment=comment,
                              writers={'screen', 'file'} if screen else {'file'})
            experiment.configs(configs, explicit or {})
            run = experiment.start()
        folder = Path(lab.get_experiments_path()) / name / experiment.get_uuid()
        if not quiet:
            print(f'{name}: {comment}, run {_shown(folder)}', flush=True)
        closing = None
        try:
            with run:
                _release(held, STOP_SIGNALS)
                try:
                    yield folder
                except StoppedElsewhere as stop:
                    # Closed here, labml's own closing of the run (its `__exit__`) does
                    # nothing more
                    run.exp.finish('interrupted', str(stop))
                    raise
                finally:
                    if screen:
                        print(flush=True)
                    # A stop signal while labml closes the run would leave labml's writer
                    # thread waiting for its last record, and the process with it
                    closing = _StopsDeferred()
        finally:
            if closing is not None:
                closing.release()
    finally:
        _release(held)


def progress_on_screen(quiet: bool) -> bool:
    """Whether a run shows labml's progress line: not with `--quiet`, and only on a
    terminal, since the line redraws itself."""
    return not quiet and sys.stdout.isatty()


def epochs(n: int) -> Iterator[int]:
    """
    The epochs `0` to `n - 1` of labml's `monit.loop(n)`, left before the loop runs out:
    a loop that runs out closes the run's `log.jsonl`, and what a run saves after its
    epochs (its test accuracy) would be lost.
    """
    from labml import monit
    loop = iter(monit.loop(n))
    for _ in range(n):
        yield next(loop)


@contextmanager
def stop_signals_held() -> Iterator[None]:
    """
    The stop signals held over the block and handled after it: blocked in this thread, so
    that the processes it starts meanwhile start with them blocked too (a child inherits
    its parent's signal mask, while a handler of its parent's is reset), and noted where
    another thread takes one.
    """
    held = _hold_stop_signals()
    deferred = _StopsDeferred()
    try:
        yield
    finally:
        try:
            deferred.release()
        finally:
            _release(held)


def _hold_stop_signals() -> Optional[set]:
    """Block the stop signals; returns the signals blocked before (None where signals cannot
    be blocked)."""
    if not hasattr(signal, 'pthread_sigmask'):
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


def _release(held: Optional[set], signals: Optional[set] = None) -> None:
    """Unblock `signals`, or with none given, block again what was blocked before."""
    if held is None:
        return
    if signals is None:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
    else:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


class _StopsDeferred:
    """
    The stop signals, noted instead of handled until `release`, which then hands the first
    one to its handler. Blocking them would not do: a thread started before (labml's writer,
    gloo's) takes a signal that this one blocks, and Python's handler runs all the same.
    """

    def __init__(self):
        self.noted: list = []
        # Handlers run in the main thread only, so a run closed in another is not stopped
        main = threading.current_thread() is threading.main_thread()
        self.handlers = {signum: signal.signal(signum, self.note)
                         for signum in STOP_SIGNALS if main}

    def note(self, signum: int, frame: Any) -> None:
        self.noted.append(signum)

    def release(self) -> None:
        for signum, handler in self.handlers.items():
            signal.signal(signum, handler)
        if self.noted:
            signal.raise_signal(self.noted[0])


def _shown(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# ## Reading a run

@dataclass
class Run:
    """What a run folder holds, read once."""
    path: Path
    experiment: str
    uuid: str
    comment: str
    started: str
    status: str
    settings: dict = field(default_factory=dict)
    # metric name -> [(step, value)], in the order of the steps
    metrics: dict = field(default_factory=dict)

    def label(self) -> str:
        """The run in a legend: the experiment, a short uuid and the run's comment."""
        parts = (self.experiment, self.uuid[:8], self.comment)
        return ' '.join(part for part in parts if part)


def not_a_folder(path: Path) -> str:
    """Why `path`, which is not a folder, cannot be read as one: a file, or nothing."""
    return 'a file, not a folder' if path.exists() else 'no such folder'


def read_run(path: Path) -> Run:
    """The run in `path`; a folder that is not a labml run is a `UsageError`."""
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f'{path}: {not_a_folder(path)}')
    info_file = path / 'run.yaml'
    if not info_file.is_file():
        raise UsageError(f'{path} is not a labml run: no run.yaml '
                         f'(a run is a folder logs/<experiment>/<run uuid>/)')
    info = _read_yaml(info_file)
    started = f"{info.get('trial_date', '')} {info.get('trial_time', '')}".strip()
    return Run(path=path, experiment=str(info.get('name') or path.parent.name),
               uuid=str(info.get('uuid') or path.name),
               comment=str(info.get('comment') or ''), started=started,
               status=read_status(path), settings=read_settings(path),
               metrics=read_metrics(path))


def _read_yaml(path: Path) -> dict:
    try:
        content = yaml.safe_load(path.read_text(encoding='utf-8'))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise UsageError(f'{path}: not valid YAML ({error.__class__.__name__})') from None
    try:
        # YAML's anchors can make a value that holds itself (`a: &a [*a]`), which no
        # setting is, and which would recurse without end when printed or compared
        json.dumps(content, default=str)
    except ValueError:
        raise UsageError(f'{path}: a value in it holds itself, which no setting '
                         f'does') from None
    return content if isinstance(content, dict) else {}


def read_settings(path: Path) -> dict:
    """
    The settings of a run. labml keeps each as a record (`computed`, `value`, `options`,
    ...); the `computed` value is the one the run used.
    """
    configs = path / 'configs.yaml'
    if not configs.is_file():
        return {}
    settings = {}
    # labml writes types as `<class 'int'>`; safe_load reads those as plain strings.
    for name, record in _read_yaml(configs).items():
        settings[name] = record.get('computed', record.get('value')) \
            if isinstance(record, dict) else record
    return settings


def read_status(path: Path) -> str:
    """The last status in `run_log.jsonl`; `unknown` when labml wrote none."""
    status = 'unknown'
    for entry in _json_lines(path / 'run_log.jsonl'):
        status = str(entry.get('status', status))
    return status


def read_metrics(path: Path) -> dict:
    """
    Every tracked metric of the run as `(step, value)` pairs. labml may record several
    values for one step (one per `tracker.add` before the step was saved); they are
    averaged, as its screen output does.
    """
    metrics: dict = {}
    for entry in _json_lines(path / 'log.jsonl'):
        track = entry.get('track')
        # What is not of labml's shape is left out, as a half-written line is
        for name, points in (track.items() if isinstance(track, dict) else ()):
            for point in (points if isinstance(points, list) else ()):
                if not (isinstance(point, list) and len(point) == 2):
                    continue
                step, values = point
                if not (isinstance(step, (int, float)) and isinstance(values, list)):
                    continue
                values = [v for v in values if isinstance(v, (int, float))]
                if values:
                    metrics.setdefault(name, {})[step] = sum(values) / len(values)
    return {name: sorted(steps.items()) for name, steps in sorted(metrics.items())}


def _json_lines(path: Path):
    """
    The JSON objects of a `.jsonl` file. A run that is still writing, or was killed while
    writing, may end with half a line: that line is left out.
    """
    if not path.is_file():
        return
    for line in path.read_text(encoding='utf-8', errors='replace').splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            yield entry


def find_runs(logs: Path) -> list[Run]:
    """Every run in `logs/<experiment>/<uuid>/`, oldest first within an experiment."""
    if not logs.is_dir():
        raise UsageError(f'{logs}: {not_a_folder(logs)} (runs are kept in logs/ at the '
                         f'top of the clone, or in --logs or ${LOGS_ENV_VAR})')
    # The folder of the runs, of one experiment's runs, or one run
    for pattern in ('*/*/run.yaml', '*/run.yaml', 'run.yaml'):
        found = sorted(logs.glob(pattern))
        if found:
            break
    runs = [read_run(info.parent) for info in found]
    return sorted(runs, key=lambda run: (run.experiment, run.started, run.uuid))


# ## `list`: settings and final numbers

def final_metrics(run: Run) -> dict:
    """The last value of every metric that is about the model."""
    return {name: points[-1][1] for name, points in run.metrics.items()
            if name.split('.')[0] not in HIDDEN_KINDS}


def format_value(value) -> str:
    if isinstance(value, float):
        return f'{value:.4g}'
    if isinstance(value, (list, tuple)):
        return ','.join(map(format_value, value))
    return str(value)


def list_runs(runs: Sequence[Run]) -> str:
    """
    One block per experiment. Printing every setting of every run would bury the few that
    changed, so the settings all runs share are printed once, and each row shows the rest.
    """
    blocks = []
    for experiment in sorted({run.experiment for run in runs}):
        group = [run for run in runs if run.experiment == experiment]
        names = sorted({name for run in group for name in run.settings})
        shared = {name: group[0].settings.get(name) for name in names
                  if all(_same(run.settings.get(name), group[0].settings.get(name))
                         for run in group)}
        varying = [name for name in names if name not in shared] if len(group) > 1 else []
        metrics = sorted({name for run in group for name in final_metrics(run)})
        header = ['run', 'started', 'status', *varying, *metrics]
        rows = [[run.uuid[:8], run.started, run.status,
                 *(format_value(run.settings.get(name, '')) for name in varying),
                 *(format_value(final_metrics(run).get(name, '')) for name in metrics)]
                for run in group]
        lines = [f"{experiment}: {number_of(len(group), 'run')}"]
        if shared:
            settings = ' '.join(f'{name}={format_value(value)}'
                                for name, value in shared.items())
            lines.append(textwrap.fill(settings, 100, initial_indent='  settings: ',
                                       subsequent_indent=' ' * 12,
                                       break_long_words=False))
        lines.extend('  ' + line for line in _table([header, *rows]))
        blocks.append('\n'.join(lines))
    return '\n\n'.join(blocks) if blocks else 'no runs'


def _same(a, b) -> bool:
    # NaN is a value a metric or setting can take; it equals itself here.
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return ['  '.join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
            for row in rows]


# ## `plot`: the curves

def plot_runs(runs: Sequence[Run], out: Path) -> Path:
    """Draw the runs (`draw_runs`) into the image file `out`, whose folder must exist."""
    figure = draw_runs(runs)
    import matplotlib.pyplot as plt
    figure.savefig(out, dpi=120)
    plt.close(figure)
    return out


# Up to this many runs of one experiment are drawn one by one, each in the legend;
# more are drawn as their mean and standard deviation, with the runs themselves faint
FEW_RUNS = 3


def draw_runs(runs: Sequence[Run]):
    """
    One panel per kind of metric, the name before the dot (`loss.train` is a `loss`), so
    that training and validation share axes and overfitting shows as the gap between them.

    A few runs are drawn one by one. Many runs of one experiment, the seeds of a
    `--seeds 10` run, are drawn as what they say together: the mean over the runs at every
    step, a band of one standard deviation around it, and each run as a faint line.
    The legends sit under the panels, out of the curves' way. Returns the figure.
    """
    kinds = sorted({name.split('.')[0] for run in runs for name in run.metrics
                    if name.split('.')[0] not in HIDDEN_KINDS})
    if not kinds:
        raise UsageError('nothing to plot: the runs have no tracked metrics in log.jsonl '
                         '(a run started without labml\'s file writer keeps none)')
    try:
        import matplotlib
        matplotlib.use('Agg')  # an image file, with no display needed
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise UsageError('plotting needs matplotlib: pip install matplotlib') from None

    groups: dict = {}
    for run in runs:
        groups.setdefault(run.experiment, []).append(run)
    figure, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 5), squeeze=False,
                                layout='constrained')
    legend: dict = {}
    for panel, kind in zip(axes[0], kinds):
        colours = iter(plt.rcParams['axes.prop_cycle'].by_key()['color'] * 10)
        for experiment, group in groups.items():
            names = sorted({name for run in group for name in run.metrics
                            if name.split('.')[0] == kind})
            prefix = f'{experiment} ' if len(groups) > 1 else ''
            if len(group) <= FEW_RUNS:
                for run in group:
                    colour = next(colours)
                    for name in names:
                        _draw_one(panel, run, name, colour,
                                  f'{prefix}{run.comment or run.uuid[:8]}'
                                  if len(runs) > 1 else '')
            else:
                for name in names:
                    _draw_many(panel, group, name, next(colours), prefix)
        panel.set_title(kind)
        panel.set_xlabel('step')
        panel.xaxis.set_major_locator(MaxNLocator(integer=True))
        panel.grid(alpha=0.3)
        for handle, label in zip(*panel.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    # One legend for all panels, under them: a column per run drawn one by one (its splits
    # under each other), else a column per split
    columns = sum(len(group) for group in groups.values() if len(group) <= FEW_RUNS)
    if legend:
        figure.legend(legend.values(), legend.keys(), loc='outside lower center',
                      ncol=min(columns or len(legend), 6), fontsize='small',
                      frameon=False)
    if len(runs) == 1:
        figure.suptitle(runs[0].label())
    elif len(groups) == 1:
        figure.suptitle(f'{runs[0].experiment}: {len(runs)} runs')
    return figure


def _split(name: str) -> str:
    """`train` of `loss.train`; a metric without a dot is its own split."""
    return name.partition('.')[2] or name


def _style(split: str, n_points: int) -> dict:
    """Training solid, validation dashed, a value recorded once a dot."""
    if n_points == 1:
        return {'marker': 'o', 'linestyle': 'none'}
    return {'linestyle': '--' if split == 'valid' else '-'}


def _draw_one(panel, run: Run, name: str, colour: str, label: str) -> None:
    points = run.metrics.get(name)
    if not points:
        return
    steps, values = zip(*points)
    panel.plot(steps, values, color=colour, label=f'{label} {_split(name)}'.strip(),
               **_style(_split(name), len(points)))


def _draw_many(panel, group: Sequence[Run], name: str, colour: str, prefix: str) -> None:
    """The runs of `group` faint, and their mean with a band of one standard deviation."""
    by_step: dict = {}
    for run in group:
        points = run.metrics.get(name, [])
        if points:
            steps, values = zip(*points)
            panel.plot(steps, values, color=colour, alpha=0.2, linewidth=0.8,
                       **_style(_split(name), len(points)))
        for step, value in points:
            by_step.setdefault(step, []).append(value)
    if not by_step:
        return
    steps = sorted(by_step)
    mean = [sum(by_step[step]) / len(by_step[step]) for step in steps]
    std = [_std(by_step[step]) for step in steps]
    n_runs = sum(bool(run.metrics.get(name)) for run in group)
    label = f'{prefix}{_split(name)}: mean ± std of {n_runs} runs'
    if all(len(run.metrics.get(name, [])) <= 1 for run in group):
        # A value recorded once per run, such as the test accuracy: one point per run
        values = [value for step in steps for value in by_step[step]]
        panel.errorbar([max(steps)], [sum(values) / len(values)], yerr=[_std(values)],
                       color=colour, marker='o', capsize=4, label=label)
        return
    panel.plot(steps, mean, color=colour, linewidth=2, label=label,
               **_style(_split(name), len(steps)))
    panel.fill_between(steps, [m - s for m, s in zip(mean, std)],
                       [m + s for m, s in zip(mean, std)], color=colour, alpha=0.2,
                       linewidth=0)


def _std(values: Sequence[float]) -> float:
    """The sample standard deviation; 0 for one value."""
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


# ## The command line

def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = ArgumentParser(
        prog='python -m labml_gat.runs',
        description='Look at labml runs offline: list them, or plot their curves.',
        allow_abbrev=False)
    commands = parser.add_subparsers(dest='command', required=True)
    # A command's parser does not take the main one's `allow_abbrev`: each is told so
    listing = commands.add_parser('list', help='runs, their settings and final numbers',
                                  allow_abbrev=False)
    listing.add_argument('logs', nargs='?', type=home_path, default=None,
                         help=f'folder of runs (default: ${LOGS_ENV_VAR}, else logs/)')
    plotting = commands.add_parser('plot', help='the curves of runs, as an image',
                                   allow_abbrev=False)
    plotting.add_argument('runs', nargs='+', type=home_path,
                          help='run folders, logs/<name>/<uuid>')
    plotting.add_argument('--out', type=home_path, default=None,
                          help='the image to write (default: curves.png in the folder of '
                               'the experiments, logs/ for logs/<name>/<uuid>)')
    args = parser.parse_args(argv)
    if args.command == 'list':
        logs = Path(args.logs) if args.logs else logs_folder()
        with path_errors('', logs):
            print(list_runs(find_runs(logs)))
    else:
        # Beside the logs, not in the folder the command runs in (a clone, say)
        out = Path(args.out or Path(args.runs[0]).resolve().parent.parent / 'curves.png')
        check_image('--out', str(out))
        runs = []
        for path in args.runs:
            with path_errors('', path):
                runs.append(read_run(Path(path)))
        print(f'wrote {plot_runs(runs, out)}')


if __name__ == '__main__':
    command(main)()
