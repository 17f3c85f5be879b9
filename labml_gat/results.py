r"""
---
title: Recorded results
summary: >
  Every measured number of the project in one place: JSON records with the command that made
  them, the date, the machine and the versions, which the README and the pages quote.
---

# Recorded results

A measured number means little without how and where it was measured, and a number typed
twice drifts. So every figure the README or a page quotes comes from one JSON record in
`experiments/results/`: the values, the command that produced them, the date, the machine
and the versions of Python, PyTorch and PyG.

The tables of the README, `CONTRIBUTING.md` and the site's Markdown pages are generated
from the records between two markers,

```markdown
<!-- results: cora -->
...
<!-- end results -->
```

`python -m labml_gat.results` rewrites every marked block of those files, and a test fails
when a table and its record disagree. A page made from a Python file leaves the two markers with
nothing between them, and the site fills them in from the record while it is built (`fill`):
its source never holds a copy.
"""

import argparse
import json
import math
import os
import platform
import re
import shlex
import sys
from collections import Counter
from datetime import date
from itertools import chain
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

# The records, beside the experiments that make them
REPOSITORY = Path(__file__).resolve().parent.parent
RESULTS = REPOSITORY / 'experiments' / 'results'
# The layers of the `--layer` flags as the papers write them, in tables and titles
LAYER_NAMES = {'gatv2': 'GATv2', 'gat': 'GAT'}
# The experiments whose `--summary-json` is of a model trained with one or more seeds
SEEDS_SCRIPTS = ('cora.py', 'cora_minibatch.py', 'dictionary_lookup.py')


def number_of(n: int, noun: str, plural: Optional[str] = None) -> str:
    """A number of things in words, as the outputs, run names and legends write it:
    `1 head`, `8 heads`, `2 processes`."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def model_name(layer: str, n_heads: int) -> str:
    """A model of the `--layer` flag as titles and legends name it: `GATv2, 8 heads`."""
    return f"{LAYER_NAMES[layer]}, {number_of(n_heads, 'head')}"


def machine(device: str = 'cpu') -> dict:
    """
    The machine a measurement ran on: its CPU, its cores and its memory, and the GPU of a
    measurement on `cuda`.
    """
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f
                     if line.startswith('model name')]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    found = {'cpu': cpu, 'cores': os.cpu_count(), 'memory_gib': round(memory / 2 ** 30),
             'system': f'{platform.system()} {platform.release()}'}
    if device.startswith('cuda'):
        import torch
        properties = torch.cuda.get_device_properties(torch.device(device))
        found.update(gpu=properties.name,
                     gpu_memory_gib=round(properties.total_memory / 2 ** 30))
    return found


def versions() -> dict:
    """The versions of Python, PyTorch and, where installed, PyG."""
    import torch
    found = {'python': platform.python_version(), 'torch': torch.__version__}
    try:
        import torch_geometric
        found['torch_geometric'] = torch_geometric.__version__
    except ImportError:
        pass
    return found


def record(name: str, command: str, values: dict, folder: Path = RESULTS,
           device: str = 'cpu') -> Path:
    """Write the record `name` with the values measured by `command` on `device`. The
    record keeps the command to run again, without the flags that say only where this
    machine keeps its files and how long it waits (`rerun_command`)."""
    data = {'name': name, 'command': rerun_command(command),
            'date': date.today().isoformat(), 'machine': machine(device),
            'versions': versions(), 'values': values}
    path = folder / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)
    return path


def write_json(path: Path, data, indent: int = 2) -> None:
    """
    `data` as strict JSON into `path`, whole or not at all: written into a file beside it,
    then put in its place, so that a run stopped while it writes leaves the file it had
    (or none), never half of one. A link is followed (the file it names is replaced); what
    is not a file, such as `/dev/stdout`, is written as it is.
    """
    text = strict_json(data, indent) + '\n'
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        path.write_text(text, encoding='utf-8')
        return
    partial = path.with_name(f'.{path.name}.{os.getpid()}.part')
    try:
        partial.write_text(text, encoding='utf-8')
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def strict_json(data, indent: int) -> str:
    """
    JSON that every reader accepts: a number that is not finite, such as the loss of a
    model that diverged, is written as `null`, never as `NaN`.
    """
    return json.dumps(finite(data), indent=indent, allow_nan=False)


def finite(data):
    """`data` with every float that is not finite replaced by `None`."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite(value) for value in data]
    return data


def load(name: str, folder: Path = RESULTS) -> dict:
    """The record `name`."""
    return json.loads((folder / f'{name}.json').read_text(encoding='utf-8'))


def provenance(result: dict) -> str:
    """One line that says where a record's numbers come from."""
    m, v = result['machine'], result['versions']
    pyg = f", PyG {v['torch_geometric']}" if 'torch_geometric' in v else ''
    gpu = f" with an {m['gpu']} ({m['gpu_memory_gib']} GiB)" if 'gpu' in m else ''
    return (f"Measured on {result['date']} with `{result['command']}` on "
            f"{m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB){gpu}, "
            f"PyTorch {v['torch']}{pyg}.")


def from_summary(summary: dict) -> dict:
    """
    The values to record of an experiment's `--summary-json`: accuracies and times. The
    accuracy the weights were chosen on is the validation's (`val_mean`), or the training
    set's (`train_mean`) for a task without a validation set (DictionaryLookup's seeds).
    """
    test = summary['test_accuracy']
    chosen = 'val' if 'val_accuracy' in summary else 'train'
    return {'seeds': test['n'], 'test_mean': test['mean'], 'test_std': test['std'],
            f'{chosen}_mean': summary[f'{chosen}_accuracy']['mean'],
            'train_seconds': summary['seconds'],
            'wall_seconds': summary['wall_seconds'], 'jobs': summary['jobs'],
            'load_average': summary['load_average'],
            'per_seed': [{key: run[key] for key in ('seed', 'epochs', 'best_epoch',
                                                    f'{chosen}_accuracy',
                                                    'test_accuracy')}
                         for run in summary['runs']]}


def over_seeds_missing(summary) -> bool:
    """
    Whether `summary` is an experiment's, but not of a test accuracy over seeds, the one
    number every record of an experiment gives: the million-node script's (a few steps
    timed, no model tested), or the numbers of one trained model alone.
    """
    return (isinstance(summary, dict)
            and ('runs' in summary or 'test_accuracy' in summary)
            and not isinstance(summary.get('test_accuracy'), dict))


def not_over_seeds(summary: dict) -> str:
    """What a summary with no test accuracy over seeds is, and what to record instead."""
    script = summary.get('script')
    if script in SEEDS_SCRIPTS:
        # These scripts sum up every run over its seeds, one seed or more: a summary of
        # one model alone was written by an earlier version of the script
        return (f'it is the summary of one model by an older {script}: run it again, '
                f'its summaries are of seeds (one or more)')
    return (f'a record is made from the summary of {", ".join(SEEDS_SCRIPTS[:-1])} or '
            f'{SEEDS_SCRIPTS[-1]} (synthetic_minibatch.py records its numbers with its '
            f'own --record)')


# ## Tables for the README and the pages
#
# Each marker names a table, made from one or more records.

def over_seeds(values: dict, bold: bool = False) -> str:
    """A record's test accuracy over its seeds: the mean and the sample standard deviation
    (`82.57 ± 0.62 % over 10 seeds`), or the one seed's."""
    mark = '**' if bold else ''
    if values['seeds'] == 1:
        return f"{mark}{values['test_mean']:.2f} %{mark} with one seed"
    return (f"{mark}{values['test_mean']:.2f} ± {values['test_std']:.2f} %{mark} "
            f"over {values['seeds']} seeds")


def chosen_accuracy(values: dict) -> Tuple[str, float]:
    """The accuracy a record's weights were chosen on, and what it is the accuracy of: the
    validation set, or the training set of a task without one (DictionaryLookup)."""
    if 'val_mean' in values:
        return 'validation', values['val_mean']
    return 'training', values['train_mean']


def experiments_table(names: Sequence[str], folder: Path) -> str:
    """Test accuracy and time of experiment runs, one record a row."""
    records = [load(name, folder) for name in names]
    rows = ['| command | test accuracy (mean ± sample std) | validation | wall time '
            '| machine load |',
            '|---|---|---|---|---|']
    for r in records:
        v = r['values']
        split, mean = chosen_accuracy(v)
        chosen = f'{mean:.1f} %' + (f' ({split})' if split != 'validation' else '')
        rows.append(f"| `{r['command']}` | {over_seeds(v)} | {chosen} | "
                    f"{v['wall_seconds']:.0f} s | {v['load_average']} |")
    notes = [f"- {provenance(r)}" for r in records]
    return '\n'.join(rows) + '\n\n' + '\n'.join(notes)


def duration(seconds: float) -> str:
    """Seconds as a person reads them: `4 s`, `2.5 min`."""
    return f'{seconds:.0f} s' if seconds < 90 else f'{seconds / 60:.1f} min'


def quickstart_table(folder: Path) -> str:
    """How long the README's two commands take, from a fresh clone and again."""
    record = load('quickstart', folder)
    rows = ['| command | fresh clone | again, nothing changed |', '|---|---|---|']
    for row in record['values']['commands']:
        rows.append(f"| `{row['command']}` | {duration(row['fresh_seconds'])} | "
                    f"{duration(row['again_seconds'])} |")
    return '\n'.join(rows) + '\n\n' + provenance(record)


def lookup_sweep_table(folder: Path) -> str:
    """The DictionaryLookup sweep: every model's accuracy, epochs and why it stopped."""
    record = load('dictionary_lookup_sweep', folder)
    v = record['values']
    rows = ['| k | layer | heads | train | test | epochs | stopped by |',
            '|--:|-------|------:|------:|-----:|-------:|------------|']
    for run in sorted(v['runs'],
                      key=lambda r: (r['k'], r['n_heads'], r['layer'] == 'gat')):
        rows.append(f"| {run['k']} | {LAYER_NAMES[run['layer']]} | {run['n_heads']} "
                    f"| {100 * run['train_accuracy']:.1f} % "
                    f"| {100 * run['test_accuracy']:.1f} % "
                    f"| {run['epochs']} | {run['stopped_by']} |")
    return ('\n'.join(rows) + '\n\n' +
            f"The whole sweep took {v['total_seconds'] / 60:.0f} min of wall-clock "
            f"time and {v['total_cpu_seconds'] / 60:.0f} min of processor time. "
            f"{provenance(record)}")


def experiment_result(name: str, folder: Path) -> str:
    """One experiment's recorded result as a sentence: its test accuracy over the seeds, the
    validation accuracy (`chosen_accuracy`), the time, and where it was measured."""
    r = load(name, folder)
    v = r['values']
    spread = 'mean ± sample standard deviation; ' if v['seeds'] > 1 else ''
    split, mean = chosen_accuracy(v)
    return (f"Test accuracy {over_seeds(v, bold=True)} ({spread}"
            f"{split} {mean:.1f} %), in "
            f"{duration(v['wall_seconds'])} of wall-clock time. {provenance(r)}")


def memory_per_rank(mib: list) -> str:
    """The memory of each rank, `{'rss': ..., 'pss': ..., 'private': ...}` in MiB, as the
    table and the synthetic script's output write it: `1158 / 1091 / 1060, 1069 / 699 / 389`
    (resident / proportional / private)."""
    return ', '.join(f"{m['rss']} / {m['pss']} / {m['private']}" for m in mib)


def distributed_table(folder: Path) -> str:
    """
    The mini-batch route on several processes: Cora's accuracy under torchrun beside one
    process's, then throughput and memory per rank on the synthetic million-node graph.
    """
    cora = experiments_table(['cora_minibatch_seeds10',
                              'cora_minibatch_torchrun_seeds10'], folder)
    record = load('synthetic_minibatch', folder)
    v = record['values']
    rows = ['| processes | targets per second | s per step | memory per rank, MiB '
            '(resident / proportional / private) | load average (start, end) |',
            '|---:|---:|---:|---|---|']
    for _, run in sorted(v['runs'].items()):
        rows.append(f"| {run['processes']} | {run['targets_per_second']:.0f} | "
                    f"{run['step_seconds']:.2f} | "
                    f"{memory_per_rank(run['memory_mib_per_rank'])} | "
                    f"{', '.join(map(str, run['load_average']))} |")
    ratios = (f"Two processes against one: {v['speedup_2_over_1']}x the throughput, "
              f"{v['rss_ratio_2_over_1']}x the resident memory per rank. "
              if 'speedup_2_over_1' in v else '')
    commands = '; '.join(f"`{run['command']}`" for _, run in sorted(v['runs'].items()))
    batch_size = next(iter(v['runs'].values()))['batch_size']
    machine = record['machine']
    return (cora + '\n\n' + '\n'.join(rows) + '\n\n' + ratios +
            f"{v['nodes']:,} nodes, {v['edges']:,} edges, global batches of "
            f"{batch_size} targets, one thread per process; "
            f"measured on {record['date']} with {commands} on {machine['cpu']} "
            f"({machine['cores']} cores), PyTorch {record['versions']['torch']}.")


def lookup_epoch_table(folder: Path) -> str:
    """One DictionaryLookup training epoch with two revisions' layers, side by side."""
    record = load('dictionary_lookup_epoch', folder)
    v = record['values']
    before, after = v['before_commit'][:7], v['after_commit'][:7]
    rows = [f'| k | layer | heads | `{before}`, s | `{after}`, s | ratio |',
            '|--:|-------|------:|------:|------:|------:|']
    for row in v['rows']:
        rows.append(f"| {row['k']} | {LAYER_NAMES[row['layer']]} | {row['n_heads']} "
                    f"| {row['before_seconds']:.2f} | {row['after_seconds']:.2f} "
                    f"| {row['after_over_before']:.2f} |")
    note = (f"Processor seconds of the fastest of {v['repeats']} epochs each, one "
            f"thread, load average {v['load_average']}. {provenance(record)}")
    return '\n'.join(rows) + '\n\n' + note


# ## The benchmark's figures
#
# Each figure of the [benchmark](benchmarking.html) is the record `benchmark_<figure>`; the
# table of all of them, with what each measures and how, is rendered here.

# The implementation every other is compared with
PEER = 'pyg'


def benchmark_record_name(figure: str) -> str:
    return f'benchmark_{figure}'


def figure_order(name: str) -> tuple:
    """Cora first, then the layer figures, then the scale figures, each by size."""
    kind, _, rest = name.partition('_')
    size = rest.partition('_')[0]
    return ({'cora': 0, 'layer': 1, 'scale': 2}.get(kind, 3), int(size) if size.isdigit()
            else 0, name)


def load_figures(folder: Optional[Path] = None) -> List[dict]:
    """
    The recorded figures, as flat dictionaries: the record's `command`, `date`, `machine`
    and `versions` with its values and `figure`, the name without `benchmark_`.
    """
    folder = Path(folder or RESULTS)
    figures = []
    for path in sorted(folder.glob(benchmark_record_name('*') + '.json')):
        r = load(path.stem, folder)
        check_figure_record(r)
        figures.append({'figure': r['name'][len(benchmark_record_name('')):],
                        **{k: r[k] for k in ('command', 'date', 'machine', 'versions')},
                        **r['values']})
    return sorted(figures, key=lambda f: figure_order(f['figure']))


def check_figure_record(r: dict) -> None:
    """A record has a name, the provenance and the values of a figure."""
    missing = [k for k in ('name', 'command', 'date', 'machine', 'versions', 'values')
               if k not in r]
    missing += [f'values.{k}' for k in FIGURE_KEYS if k not in r.get('values', {})]
    if missing:
        raise ValueError(f'benchmark record {r.get("name")!r} lacks {", ".join(missing)}')


# The values every figure has
FIGURE_KEYS = ('level', 'graph', 'n_heads', 'n_hidden', 'threads')


# ## Formatting

def gib(n_bytes: Optional[float]) -> str:
    return '' if n_bytes is None else f'{n_bytes / 2 ** 30:.2f} GiB'


def ms(value: Optional[float]) -> str:
    if value is None:
        return ''
    return f'{value / 1e3:.1f} s' if value >= 10_000 else f'{value:.1f} ms'


def ratio(value: Optional[float]) -> str:
    return '' if value is None else f'{value:.2f}x'


def count(value: Optional[float]) -> str:
    """A count, in thousands or millions from a thousand on."""
    if value is None:
        return ''
    if value >= 1e6:
        return f'{value / 1e6:.2f}M'
    return f'{value / 1e3:.1f}k' if value >= 1e3 else f'{value:.0f}'


def describe_figure(record: dict) -> str:
    """What a figure measures, in a few words."""
    if record['graph'] == 'cora':
        what = 'Cora'
    else:
        what = (f"{record['n_nodes']:,} nodes, {record['degree']:g} random in-edges "
                f"per node on average + self loop, {record['in_features']} features")
        if record.get('edge_dim'):
            what += f", {number_of(record['edge_dim'], 'edge feature')}"
    model = 'one layer' if record['level'] == 'layer' else 'two-layer model'
    if record.get('gat'):
        model = "one GAT layer (PyG's GATConv and the drop-in one)"
    where = f" on {record['device']}" if record.get('device') else ''
    return (f"{what}; {model}, {number_of(record['n_heads'], 'head')} x "
            f"{record['n_hidden']}{where}")


FIGURES_HEADER = ('| figure | impl | step | eval | step / PyG | eval / PyG '
                  '| peak train | peak / PyG | page faults / step |\n'
                  '|---|---|---|---|---|---|---|---|---|')


def short_error(error: str) -> str:
    """An error in a few words: an allocation that failed says how much it asked for."""
    found = re.search(r'tried to allocate (\d+) bytes', error)
    if found:
        return f'out of memory (an allocation of {gib(int(found.group(1)))} failed)'
    # CUDA's allocator says it in its own units
    found = re.search(r'Tried to allocate ([\d.]+ [GM]iB)', error)
    if found:
        return f'out of memory (an allocation of {found.group(1)} failed)'
    return error[:60]


def figure_clock(figure: dict) -> str:
    """The suffix of the times a figure is read in: `_cpu` (CPU time) on a CPU with one
    thread, else `''` (the wall clock)."""
    return '_cpu' if not figure.get('device') and figure.get('threads', 1) == 1 else ''


def figures_table(records: Sequence[dict]) -> str:
    """
    The recorded figures as one Markdown table: times per training step and evaluation
    forward (medians over the alternating rounds, and over the runs of a figure run several
    times; CPU time on a CPU with one thread, else the wall clock),
    ratios to PyG, peak training memory above data and model, and the page faults of a
    training step (fresh pages of memory, median). A failed measurement shows its error.
    """
    lines = [FIGURES_HEADER]
    for r in records:
        clock = figure_clock(r)
        for impl, row in r.get('impls', {}).items():
            if 'error' in row and f'step{clock}_ms' not in row:
                cells = [short_error(row['error']), '', '', '', '', '', '']
            else:
                cells = [ms(row.get(f'step{clock}_ms')), ms(row.get(f'eval{clock}_ms')),
                         ratio(row.get('step_ratio')), ratio(row.get('eval_ratio')),
                         gib(row.get('peak_train_bytes')) or row.get('error', '')[:40],
                         ratio(row.get('peak_ratio')), count(row.get('step_faults'))]
            lines.append(f"| {r['figure']} | {impl} | " + ' | '.join(cells) + ' |')
        if 'error' in r:
            lines.append(f"| {r['figure']} | | {short_error(r['error'])} | | | | | | |")
    return '\n'.join(lines)


def figures_provenance(records: Sequence[dict]) -> str:
    """What each record measures and how: command, date, machine and versions, and
    how busy the machine was and what fresh memory cost on it then, where recorded."""
    def load(r: dict) -> str:
        average = r.get('load_average')
        return '' if average is None else f', load average {average}'

    def fresh(r: dict) -> str:
        cost = r.get('fresh_memory_s_per_gib')
        if cost and r.get('runs'):
            return f", fresh memory {min(cost):.2f} to {max(cost):.2f} s/GiB"
        return '' if not cost else \
            f", fresh memory {' then '.join(f'{c:.2f}' for c in cost)} s/GiB"
    return '\n'.join(f"* `{r['figure']}`: {describe_figure(r)}, "
                     f"{number_of(r['threads'], 'thread')}{load(r)}{fresh(r)}{runs(r)}. "
                     f"{provenance(r)}" for r in records)


def runs(r: dict) -> str:
    """A figure measured in several runs (fresh processes): how many, and each
    implementation's `step / PyG` (and `peak / PyG`, where recorded) in every run, in the
    order they ran."""
    if not r.get('runs'):
        return ''

    def each(ratios: dict) -> str:
        return '; '.join(f"{impl} {', '.join(ratio(v) for v in values)}"
                         for impl, values in ratios.items())

    peaks = each(r.get('run_peak_ratios', {}))
    steps = each(r['run_step_ratios'])
    return (f"; the median of {r['runs']} runs, step / PyG in each: {steps}"
            + (f'; peak / PyG in each: {peaks}' if peaks else ''))


def second_thread(folder: Path = RESULTS) -> str:
    """
    What a second CPU thread gives the drop-in layer and PyG at 100,000 nodes, from the
    one- and two-thread figures: the step's time in the table's clock (`figure_clock`), the
    speed-up, and the CPU time spent outside the system (the work itself, without mapping
    in fresh memory) by one thread and by two together.
    """
    figures = ('layer_100000', 'layer_100000_threads2')
    one, two = (load(benchmark_record_name(figure), folder)['values']
                for figure in figures)
    clocks = [f'step{figure_clock(values)}_ms' for values in (one, two)]
    parts = []
    for impl, name in (('dropin', 'the drop-in layer'), (PEER, 'PyG')):
        rows = [values['impls'][impl] for values in (one, two)]
        alone, both = (row[clock] for row, clock in zip(rows, clocks))
        work = [row['step_cpu_ms'] - row['step_system_ms'] for row in rows]
        parts.append(
            f"{name} {alone:.0f} ms with one thread, {both:.0f} ms with two "
            f"({alone / both:.2f}x as fast), its CPU time outside the system "
            f"{work[0]:.0f} ms with one thread and {work[1]:.0f} ms with two together "
            f"({work[1] / work[0]:.2f}x)")
    return (f"A training step at 100,000 nodes (`{figures[0]}`, `{figures[1]}`): "
            f"{'; '.join(parts)}.")


def benchmark_table(folder: Path = RESULTS) -> str:
    """The benchmark's figures against PyG (see [the machinery](benchmarking.html)), with
    what each one measures and how."""
    records = load_figures(folder)
    return figures_table(records) + '\n\n' + figures_provenance(records)


TABLES: Dict[str, Callable[[Path], str]] = {
    'quickstart': quickstart_table,
    'dictionary_lookup': lookup_sweep_table,
    'cora': lambda folder: experiments_table(['cora_seeds10', 'cora_minibatch_seeds10'],
                                             folder),
    'benchmark': benchmark_table,
    'distributed': distributed_table,
    'lookup_epoch': lookup_epoch_table,
}

# Results a page states in a sentence (`fill`)
SENTENCES: Dict[str, Callable[[Path], str]] = {
    'cora_seeds10': lambda folder: experiment_result('cora_seeds10', folder),
    'second_thread': second_thread,
}

MARKERS = re.compile(r'(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)'
                     r'(<!-- end results -->)', re.DOTALL)


# Anything that starts like a marker, to find one the two patterns above would skip
MARKER_LIKE = re.compile(r'<!--\s*results\b')


def render(name: str, folder: Path = RESULTS) -> str:
    """The block for the marker `name`, rendered from its records."""
    blocks = {**TABLES, **SENTENCES}
    if name not in blocks:
        raise ValueError(f'<!-- results: {name} -->: no such block (the blocks: '
                         f'{", ".join(sorted(blocks))})')
    return blocks[name](folder) + '\n'


def check_markers(text: str) -> None:
    """Every marker of `text` is one the renderer reads: a misspelt one would be left stale."""
    read = {m.start() for m in MARKERS.finditer(text)}
    for m in MARKER_LIKE.finditer(text):
        if m.start() not in read:
            line = text.count('\n', 0, m.start()) + 1
            raise ValueError(f'line {line}: a marker must be "<!-- results: NAME -->", '
                             f'its own line, followed by "<!-- end results -->"')


def update(text: str, folder: Path = RESULTS) -> str:
    """`text` with every marked block rendered anew from its records."""
    check_markers(text)
    return MARKERS.sub(
        lambda m: m.group(1) + render(m.group('name'), folder) + m.group(4), text)


def quoting_files(root: Path = REPOSITORY) -> List[Path]:
    """The Markdown files that quote records: the README, `CONTRIBUTING.md` and the site's pages."""
    candidates = [root / 'README.md', root / 'CONTRIBUTING.md',
                  *sorted((root / 'docs').rglob('*.md'))]
    return [path for path in candidates
            if path.is_file() and '_build' not in path.parts
            and MARKER_LIKE.search(path.read_text(encoding='utf-8'))]


EMPTY_MARKERS = re.compile(r'<!-- results: (?P<name>[\w-]+) -->\n<!-- end results -->')


def fill(text: str, folder: Path = RESULTS) -> str:
    """
    `text` with every empty marked block replaced by its rendering, markers and all: a page's
    filter (`sidebyside_doc_filter`), so that a page states recorded numbers without a copy of
    them in its source.
    """
    return EMPTY_MARKERS.sub(lambda m: render(m.group('name'), folder).rstrip('\n'), text)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """
    `python -m labml_gat.results` rewrites the marked blocks of every file that quotes records
    (`python -m labml_gat.results FILE.md ...` only those files);
    `python -m labml_gat.results --record NAME SUMMARY.json COMMAND` records an experiment's
    `--summary-json` as the result `NAME`, made by `COMMAND`, which must be the command of
    the summary's run (`command_mismatch`); the record keeps it without the flags that say
    only where files go and how long to wait (`rerun_command`). A mistake is one line and
    exit status 2, before anything is written.
    """
    parser = argparse.ArgumentParser(
        prog='python -m labml_gat.results', allow_abbrev=False,
        description='Render the tables that quote the records, or record a summary.')
    parser.add_argument('files', nargs='*', type=Path,
                        help='the Markdown files to rewrite (default: every file that '
                             'quotes records)')
    parser.add_argument('--record', nargs=3, metavar=('NAME', 'SUMMARY', 'COMMAND'),
                        help="record an experiment's --summary-json as NAME, made by "
                             'COMMAND, the quoted command of its run')
    # One line, as every command of the project says a mistake
    parser.error = lambda message: parser.exit(2, f'{parser.prog}: error: {message}\n')
    argv = list(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(argv)
    if args.record and (unknown or any(path.suffix != '.md' for path in args.files)):
        # A command not quoted: its first word is COMMAND, the others files or flags
        at = argv.index('--record')
        command = shlex.quote(shlex.join(argv[at + 3:]))
        parser.error(f'--record takes the command as one argument: quote it, '
                     f'{shlex.join(argv[at:at + 3])} {command}')
    if unknown:
        parser.error(f'unrecognized arguments: {" ".join(unknown)}')
    if args.record:
        if args.files:
            parser.error('--record records a summary; it rewrites no file')
        name, summary, command = args.record
        if not re.fullmatch(r'[\w-]+', name):
            parser.error(f'--record {name}: a record\'s name is letters, digits, _ and -')
        taken = taken_by(name, RESULTS)
        if taken:
            parser.error(f'--record {name}: {taken}; choose another name')
        values, device, run = summary_values(Path(summary), parser.error)
        mismatch = command_mismatch(command, run)
        if mismatch:
            parser.error(f'--record: {summary} {mismatch}')
        record(name, command, values, RESULTS, device)
        return
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        parser.error(f'{missing[0]}: no such file')
    paths = args.files or quoting_files()
    # Every file rendered before any is written, so that a mistake writes nothing
    texts = []
    for path in paths:
        try:
            text = path.read_text(encoding='utf-8')
            # A file given that quotes nothing (a record's JSON, a page misnamed) is a mistake
            if not MARKER_LIKE.search(text):
                raise ValueError('it quotes no record: no "<!-- results: NAME -->" block')
            texts.append(update(text))
        except (ValueError, OSError) as error:
            parser.error(f'{path}: {error}')
        except KeyError as error:
            parser.error(f'{path}: a record it quotes has no {error}')
    for path, text in zip(paths, texts):
        path.write_text(text, encoding='utf-8')


def taken_by(name: str, folder: Path = RESULTS) -> Optional[str]:
    """
    Why `name` cannot be a summary's record, or `None`: the benchmark's figures are the
    records named `benchmark_...`, and a record of another kind (a sweep's, a figure's) would
    be replaced by one the pages that quote it cannot read. A summary's record is replaced
    by a newer one of the same name: that is how a result is measured again.
    """
    if name.startswith(benchmark_record_name('')):
        return f'the names {benchmark_record_name("...")} are the benchmark\'s figures'
    path = folder / f'{name}.json'
    try:
        values = json.loads(path.read_text(encoding='utf-8'))['values'] \
            if path.exists() else {}
    except (OSError, ValueError, KeyError, TypeError):
        return f'the file of that record, {path}, is not a record'
    if values and 'test_mean' not in values:
        return f'it is the record of another kind of result ({path})'
    return None


def summary_values(path: Path, error: Callable[[str], None]) -> Tuple[dict, str, dict]:
    """The values to record of an experiment's `--summary-json`, the device it ran on
    (its machine is recorded with that device's GPU) and the summary, or `error` with what
    is wrong."""
    summary: dict = {}
    try:
        summary = json.loads(path.read_text(encoding='utf-8'))
        if over_seeds_missing(summary):
            error(f'--record: {path} has no test accuracy over seeds to record: '
                  f'{not_over_seeds(summary)}')
        values = from_summary(summary)
        device = str(summary.get('settings', {}).get('device', 'cpu'))
    except FileNotFoundError:
        error(f'--record: {path}: no such file')
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as problem:
        error(f"--record: {path} is not an experiment's --summary-json "
              f'({type(problem).__name__}: {problem})')
    else:
        if missing_device(device):
            error(f'--record: {path} was measured on {device}, which this machine does '
                  f'not have: record it on the machine it ran on')
        return values, device, summary
    return {}, 'cpu', summary


# ## The command of a record made from a summary
#
# A record says which command made its numbers, and `--record` is told it: it must be the
# command the summary's run was started with, or the pages would quote one command's numbers
# as another's. A summary says the file name of its script and the words after it (`script`,
# `argv`); the flags are compared as written, in any order, but those that do not change what
# a run measures: where it reads and writes files (the synthetic graph's `--cache` and the
# folder of a record, `--results`, among them), and how long it waits for the other
# processes of a job.
#
# The pages show a record's command as the one to run again, so a record keeps it without
# those flags (`rerun_command`): their values are this machine's folders and files, such as
# `--data-dir /home/me/planetoid`, which another machine lacks, and a reader's run finds its
# own by default (`$LABML_GAT_DATA`, labml's folders). The comparison leaves them out too, so
# the command of the run may be given as it was typed.
UNMEASURED = ('--data-dir', '--logs', '--summary-json', '--results', '--peer-timeout',
              '--cache')


def command_mismatch(command: str, summary: dict) -> Optional[str]:
    """
    What keeps `command` from being the command of the run `summary` sums up, in a few
    words, or `None`: it runs the summary's script, under torchrun with as many processes
    where the run had them, with the run's flags (`flag_groups`).
    """
    script, argv = summary.get('script'), summary.get('argv')
    if not isinstance(script, str) or not isinstance(argv, list):
        return ('does not say the command of its run (a summary of an older version?): '
                'run the experiment again')
    syntax = shell_syntax(command)
    if syntax:
        return (f'takes the command of its run alone, in plain words: the shell\'s '
                f'{syntax!r} (a redirection, pipe, second command or expansion) '
                f'cannot be recorded')
    try:
        words = shlex.split(command)
    except ValueError as problem:
        return f'cannot be checked against the command {command!r}: {problem}'
    ran = flag_groups(argv)
    flags = list(chain(*ran))
    start, at = script_at(words)
    if at is None or Path(words[at]).name != script:
        runs = 'no script' if at is None else Path(words[at]).name
        return f'was run with {shlex.join([script, *flags])!r}; the command runs {runs}'
    problem = launch_mismatch(words[start:at], summary)
    if problem:
        return problem
    said = flag_groups(words[at + 1:])
    extra = shlex.join(chain(*(Counter(said) - Counter(ran)).elements()))
    missing = shlex.join(chain(*(Counter(ran) - Counter(said)).elements()))
    if not extra and not missing:
        return None
    differs = (f'says {extra} but not {missing}' if extra and missing else
               f'says {extra}' if extra else f'does not say {missing}')
    return f'was run with {shlex.join(words[:at + 1] + flags)!r}; the command {differs}'


def script_at(words: Sequence[str]) -> Tuple[int, Optional[int]]:
    """Where a command's launcher starts, after its environment variables
    (`OMP_NUM_THREADS=1 python ...`), and where its script is (`None` where it runs none)."""
    start = 0
    while start < len(words) and re.fullmatch(r'[A-Za-z_]\w*=.*', words[start]):
        start += 1
    return start, next((at for at in range(start, len(words))
                        if words[at].endswith('.py')), None)


def word_groups(words: Sequence[str]) -> List[List[str]]:
    """The words of a command line, as written, in flags: each a word that starts with `--`
    and the words after it up to the next such word."""
    groups: List[List[str]] = []
    for word in words:
        if word.startswith('--') or not groups:
            groups.append([word])
        else:
            groups[-1].append(word)
    return groups


def measured(group: Sequence[str]) -> bool:
    """Whether a flag (`word_groups`) is not one of the `UNMEASURED`, in either spelling,
    `--name value` or `--name=value`."""
    return group[0].split('=', 1)[0] not in UNMEASURED


def flag_groups(words: Sequence[str]) -> List[Tuple[str, ...]]:
    """
    The flags of a command line but the `UNMEASURED` ones (`word_groups`), `--name=value`
    as `--name value`.
    """
    return [(*group[0].split('=', 1), *group[1:]) if group[0].startswith('--')
            else tuple(group) for group in word_groups(words) if measured(group)]


# A command's text in pieces: quoted, escaped, a separator of commands (`;`, `&&`, `|`), the
# shell's other syntax (a redirection, an expansion, a comment, a line's end), or any other
# character. Each command of a line such as `A --record ; B --record` is its own.
SHELL_PIECES = re.compile(r"""'[^']*'|"(?:[^"\\]|\\.)*"|\\.|(?P<separator>[;&|]+)"""
                          r"""|(?P<syntax>[<>$`#\n])|.""", re.DOTALL)


def shell_syntax(command: str) -> Optional[str]:
    """The first of the shell's separators, redirections or expansions in `command` (`$`
    inside double quotes too), or `None`: a command of plain words, whose flags
    `rerun_command` can leave out without changing what the rest means."""
    for piece in SHELL_PIECES.finditer(command):
        if piece.group('separator') or piece.group('syntax'):
            return piece.group()
        expansion = re.search(r'[$`]', piece.group()) if piece.group()[0] == '"' else None
        if expansion:
            return expansion.group()
    return None


def rerun_command(command: str) -> str:
    """
    `command` as a record keeps it, to be run again on another machine: each of its
    commands without the `UNMEASURED` flags its script is given, and their values. The
    words before the script (environment variables, torchrun and its options) are kept,
    and a command with nothing to leave out is kept as it is written.
    """
    pieces: List[str] = []
    current = ''
    for piece in SHELL_PIECES.finditer(command):
        if piece.group('separator'):
            pieces += [measured_command(current), piece.group()]
            current = ''
        else:
            current += piece.group()
    return ''.join(pieces + [measured_command(current)])


def measured_command(command: str) -> str:
    """One command of `rerun_command`, without the `UNMEASURED` flags of its script, in
    the words of `shlex.join`, or as it is where it has none (or cannot be split)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    _, at = script_at(words)
    groups = word_groups(words[at + 1:]) if at is not None else []
    kept = [group for group in groups if measured(group)]
    if len(kept) == len(groups):
        return command
    # The spaces around it, which part it from its separators
    before, after = re.fullmatch(r'(\s*).*?(\s*)', command, re.DOTALL).groups()
    return before + shlex.join(words[:at + 1] + list(chain(*kept))) + after


def launch_mismatch(launcher: List[str], summary: dict) -> Optional[str]:
    """The words before the script start it as the run was started: under torchrun, by
    as many processes where they say how many (`--nnodes`, `--nproc-per-node`), or not.
    torchrun of one process runs the script as `python` does, and writes the same summary:
    it is the command of a run without torchrun, and the other way round."""
    torchrun = any(Path(word).name == 'torchrun' or word == 'torch.distributed.run'
                   for word in launcher)
    started = torchrun_processes(launcher) if torchrun else None
    if not summary.get('torchrun'):
        if torchrun and started != 1:
            return 'was run without torchrun; the command runs torchrun'
        return None
    processes = summary.get('jobs')
    if not torchrun:
        return (f'was run under torchrun, by {processes} processes; the command does not '
                f'run torchrun')
    if started is not None and started != processes:
        return f'was run by {processes} processes; the command starts {started}'
    return None


def torchrun_processes(launcher: List[str]) -> Optional[int]:
    """The processes torchrun's options start (`--nnodes` times `--nproc-per-node`, each 1
    by default), or `None` where they say no number: elastic bounds (`--nnodes 1:4`) or
    `--nproc-per-node gpu`."""
    options = {}
    for at, word in enumerate(launcher):
        name, given, value = word.partition('=')
        name = name.replace('_', '-')
        if name in ('--nnodes', '--nproc-per-node'):
            options[name] = value if given else ''.join(launcher[at + 1:at + 2])
    machines, each = options.get('--nnodes', '1'), options.get('--nproc-per-node', '1')
    if machines.isdigit() and each.isdigit():
        return int(machines) * int(each)
    return None


def missing_device(device: str) -> Optional[str]:
    """
    Why `device` (`cpu`, `cuda`, `cuda:1`, `mps`) is not a device of this machine, in a few
    words, or `None`: the experiments' `--device` is tested so, and so is the device of a
    summary to record, whose machine is this one.
    """
    import torch
    try:
        kind = torch.device(device)
    except RuntimeError:
        return 'not a device (cpu, cuda, cuda:1, mps)'
    if kind.type == 'cuda' and not torch.cuda.is_available():
        return 'PyTorch finds no CUDA device here'
    if (kind.type == 'cuda' and kind.index is not None
            and kind.index >= torch.cuda.device_count()):
        return f'there are {torch.cuda.device_count()} CUDA devices'
    if kind.type == 'mps' and not torch.backends.mps.is_available():
        return 'PyTorch finds no MPS device here'
    if kind.type not in ('cpu', 'cuda', 'mps'):
        return 'only cpu, cuda and mps are supported'
    return None


if __name__ == '__main__':
    main()
