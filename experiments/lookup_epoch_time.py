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
(the default settings: batches of 32 graphs, $d = 128$, 5000 graphs at least) for GAT and
GATv2 with 1 and 8 heads at $k = 10$ and $k = 20$, on one thread, in processor seconds,
twice over:

* `after`: the `labml_gat` package this script imports (this checkout);
* `before`: the `labml_gat` package of the revision `--against`, taken with `git archive`
  into a temporary folder and imported from there.

Each measurement runs in a fresh process, and the two alternate, `--repeats` times, so that
a busy machine disturbs both alike; the record keeps the fastest of each. It is written to
`experiments/results/dictionary_lookup_epoch.json` with the command, the date, the machine
and the revisions.

```bash
python experiments/lookup_epoch_time.py --against main
```
"""

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

REPO = Path(__file__).resolve().parent.parent
# The models timed, as (k, layer, heads)
MODELS = [(k, layer, n_heads) for k in (10, 20) for layer in ('gat', 'gatv2')
          for n_heads in (1, 8)]


def time_epochs() -> dict:
    """
    In a worker process: one training epoch of each model of `MODELS` with the
    `labml_gat` that this process imports, in processor seconds, keyed `k/layer/heads`.
    """
    import torch
    from labml_gat.lookup import LookupModel, make_task, train_epoch
    torch.set_num_threads(1)
    seconds = {}
    for k, layer, n_heads in MODELS:
        torch.manual_seed(0)
        task = make_task(k, seed=0)
        model = LookupModel(k, layer, n_heads)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        shuffle = torch.Generator().manual_seed(0)
        start = time.process_time()
        train_epoch(model, optimizer, task.train, 32, shuffle, torch.device('cpu'),
                    epoch_size=5000)
        seconds[f'{k}/{layer}/{n_heads}'] = time.process_time() - start
    return seconds


def worker(package_root: Optional[Path]) -> dict:
    """`time_epochs` in a fresh process, importing `labml_gat` from `package_root`."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if package_root is not None:
        env['PYTHONPATH'] = str(package_root)
    output = subprocess.run([sys.executable, __file__, '--worker'], env=env, check=True,
                            capture_output=True, text=True).stdout
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


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n# ')[1].split('\n')[0])
    parser.add_argument('--against', default='main',
                        help='the git revision to compare with (default: main)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='measurements of each side (default: 3)')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(time_epochs()))
        return
    if args.repeats < 1:
        parser.error(f'--repeats must be at least 1, got {args.repeats}')

    from labml_gat.results import record
    with tempfile.TemporaryDirectory() as folder:
        try:
            commit = extract(args.against, Path(folder))
        except subprocess.CalledProcessError as error:
            sys.exit(f'error: --against {args.against}: {error.stderr.strip()}')
        runs = {'before': [], 'after': []}
        for repeat in range(args.repeats):
            for side, root in (('before', Path(folder)), ('after', None)):
                runs[side].append(worker(root))
                print(f'{repeat + 1}/{args.repeats} {side}: {runs[side][-1]}', flush=True)
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
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
    command = 'python experiments/lookup_epoch_time.py ' + ' '.join(
        sys.argv[1:] if argv is None else argv)
    path = record('dictionary_lookup_epoch', command.strip(), {
        'figure': 'one DictionaryLookup training epoch, processor seconds, one thread',
        'before_commit': commit, 'after_commit': head, 'repeats': args.repeats,
        'load_average': [round(x, 2) for x in os.getloadavg()], 'rows': rows})
    print(f'recorded in {path.relative_to(REPO)}')


if __name__ == '__main__':
    main()
