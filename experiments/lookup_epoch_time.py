r"""
---
title: DictionaryLookup, one epoch against another revision
summary: >
  Times one DictionaryLookup training epoch with this checkout's layers and with another
  git revision's, alternating the two, and records both.
---

# DictionaryLookup: one training epoch, this checkout against another revision

A change to the attention layers must not make the [DictionaryLookup
sweep](dictionary_lookup.html) slower. This script times one training epoch of its model
(the default settings: batches of 32 graphs, $d = 128$; `--graphs` training graphs, 5000)
for GAT and GATv2 with 1 and 8 heads at $k = 10$ and $k = 20$, on one thread, in processor
seconds, twice over:

* `after`: the `labml_gat` package this script imports (this checkout);
* `before`: the `labml_gat` package of the revision `--against`, taken with `git archive`
  into a temporary folder and imported from there; a revision whose package cannot train
  that epoch (one older than the model timed) is a mistake, said in one line.

Each measurement runs in a fresh process, and the two alternate, `--repeats` times, so that
a busy machine disturbs both alike; the fastest of each is kept. With `--record` they are
written to `experiments/results/dictionary_lookup_epoch.json` with the command, the date, the
machine and the revisions:

```bash
python experiments/lookup_epoch_time.py --against main --record
```
"""

import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from labml_gat.lookup import MAX_EXAMPLES, examples_bytes
from labml_gat.results import RESULTS, record
from labml_gat.settings import (Settings, UsageError, check_at_least, check_one_record,
                                check_output, command, setting)
from labml_gat.training import check_fits

REPO = Path(__file__).resolve().parent.parent
# What `--help` says the script does
DESCRIPTION = ("Time one DictionaryLookup training epoch with this checkout's layers and "
               "with another revision's. Nothing is recorded unless asked (--record, or "
               "--results FOLDER).")
# The record's name
RECORD = 'dictionary_lookup_epoch'
# The models timed, as (k, layer, heads)
MODELS = [(k, layer, n_heads) for k in (10, 20) for layer in ('gat', 'gatv2')
          for n_heads in (1, 8)]


# The worker: a fresh Python that imports `labml_gat` (the one first on `PYTHONPATH`) and
# nothing of this script, times one training epoch of `graphs` examples of each model, in
# processor seconds, and prints them as JSON, keyed `k/layer/heads`.
TIME_EPOCHS = """
import json, sys, time
import torch
from labml_gat.lookup import LookupModel, make_task, train_epoch
models, graphs = json.loads(sys.argv[1])
torch.set_num_threads(1)
seconds = {}
for k, layer, n_heads in models:
    torch.manual_seed(0)
    task = make_task(k, seed=0)
    model = LookupModel(k, layer, n_heads)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    shuffle = torch.Generator().manual_seed(0)
    start = time.process_time()
    train_epoch(model, optimizer, task.train[:graphs], 32, shuffle, torch.device('cpu'),
                epoch_size=graphs)
    seconds[f'{k}/{layer}/{n_heads}'] = time.process_time() - start
print(json.dumps(seconds))
"""


def worker(package_root: Optional[Path], graphs: int) -> dict:
    """The worker's timings, with the `labml_gat` of `package_root` (this checkout's when
    `None`)."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    job = json.dumps([MODELS, graphs])
    # `python -c` imports from its working folder first: the folder of the package to time
    output = subprocess.run([sys.executable, '-c', TIME_EPOCHS, job], env=env, check=True,
                            cwd=package_root or REPO, capture_output=True,
                            text=True).stdout
    return json.loads(output)


def extract(revision: str, folder: Path) -> str:
    """`labml_gat/` of `revision` into `folder`; returns the revision's commit."""
    commit = subprocess.run(['git', 'rev-parse', '--verify', f'{revision}^{{commit}}'],
                            cwd=REPO, check=True, capture_output=True,
                            text=True).stdout.strip()
    archive = subprocess.run(['git', 'archive', commit, 'labml_gat'], cwd=REPO,
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(folder, filter='data')
    return commit


@dataclass
class EpochTimeSettings(Settings):
    """
    ## Settings

    The flags follow the experiments' [convention](../labml_gat/settings.html); nothing is
    recorded unless asked.
    """
    against: str = setting('main', 'the git revision to compare with')
    repeats: int = setting(3, 'measurements of each side')
    graphs: int = setting(5000, 'training examples in each epoch timed')
    record: bool = setting(False, "record the timings in the project's records, "
                                  'experiments/results/')
    results: Optional[str] = setting(None, 'record the timings in this folder instead',
                                     path=True)

    def check(self) -> None:
        super().check()
        check_at_least(self, 1, ('repeats', 'graphs'))
        check_one_record(self.record, self.results)
        check_output('--results', self.results, folder=True)
        # The epoch of the largest k timed fits in the memory: else both sides' workers
        # fail for its lack, and the revision's failure is said as a fault of --against
        k = max(k for k, _, _ in MODELS)
        check_fits(examples_bytes(k, MAX_EXAMPLES, self.graphs), 'cpu',
                   f'--graphs {self.graphs}: an epoch of {self.graphs} graphs of up to '
                   f'{k} keys', 'use fewer --graphs', per='for the examples')


def measure(s: EpochTimeSettings) -> dict:
    """Both sides, alternating, `s.repeats` times each: `{'before': [...], 'after': [...]}`
    and the commit of `--against`."""
    with tempfile.TemporaryDirectory() as folder:
        try:
            commit = extract(s.against, Path(folder))
        except subprocess.CalledProcessError as error:
            raise UsageError(f'--against {s.against}: {error.stderr.strip()}') from None
        runs = {'before': [], 'after': []}
        for repeat in range(s.repeats):
            for side, root in (('before', Path(folder)), ('after', None)):
                try:
                    runs[side].append(worker(root, s.graphs))
                except subprocess.CalledProcessError as error:
                    if root is None:
                        # This checkout's side failing is a bug: the worker's traceback
                        sys.stderr.write(error.stderr)
                        raise
                    # A revision without the model and the epoch timed (older than them)
                    why = last_line(error.stderr)
                    raise UsageError(f'--against {s.against}: its labml_gat cannot train '
                                     f'the epoch timed ({why})') from None
                timed = ', '.join(f'{name} {seconds:.3f} s'
                                  for name, seconds in runs[side][-1].items())
                print(f'{repeat + 1}/{s.repeats} {side}: {timed}', flush=True)
    return {'runs': runs, 'commit': commit}


def last_line(text: str) -> str:
    """The last line of a worker's error: the exception Python ended it with."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else 'it ended without a word'


def main(argv: Optional[Sequence[str]] = None) -> List[dict]:
    """
    ## Measuring and recording

    Prints the fastest epoch of each side and their ratio, and records them when asked.
    """
    s, _ = EpochTimeSettings.from_command_line(argv, description=DESCRIPTION)
    measured = measure(s)
    runs = measured['runs']
    rows = []
    for name in runs['after'][0]:
        before = min(run[name] for run in runs['before'])
        after = min(run[name] for run in runs['after'])
        k, layer, n_heads = name.split('/')
        rows.append({'k': int(k), 'layer': layer, 'n_heads': int(n_heads),
                     'before_seconds': round(before, 3), 'after_seconds': round(after, 3),
                     'after_over_before': round(after / before, 3)})
        print(f'{name:>14}: before {before:6.2f} s, after {after:6.2f} s, '
              f'ratio {after / before:.2f}')
    if s.record or s.results:
        head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True,
                              text=True).stdout.strip()
        command = 'python experiments/lookup_epoch_time.py ' + shlex.join(
            sys.argv[1:] if argv is None else list(argv))
        values = {'figure': 'one DictionaryLookup training epoch, processor seconds, '
                            'one thread',
                  'before_commit': measured['commit'], 'after_commit': head,
                  'repeats': s.repeats, 'graphs': s.graphs,
                  'load_average': [round(x, 2) for x in os.getloadavg()], 'rows': rows}
        path = record(RECORD, command.strip(), values,
                      Path(s.results) if s.results else RESULTS)
        print(f'recorded in {path}')
    return rows


if __name__ == '__main__':
    command(main)()
