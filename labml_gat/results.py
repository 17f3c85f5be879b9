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

The README's tables are generated from the records between two markers,

```markdown
<!-- results: cora -->
...
<!-- end results -->
```

`python -m labml_gat.results README.md` rewrites them, and a test fails when a table and its
record disagree.
"""

import json
import os
import platform
import re
import sys
from datetime import date
from pathlib import Path
from typing import Callable, Dict, Optional

# The records, beside the experiments that make them
RESULTS = Path(__file__).resolve().parent.parent / 'experiments' / 'results'


def machine() -> dict:
    """The machine a measurement ran on: its CPU, its cores and its memory."""
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            names = [line.split(':', 1)[1].strip() for line in f
                     if line.startswith('model name')]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    memory = os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    return {'cpu': cpu, 'cores': os.cpu_count(), 'memory_gib': round(memory / 2 ** 30),
            'system': f'{platform.system()} {platform.release()}'}


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


def record(name: str, command: str, values: dict, folder: Path = RESULTS) -> Path:
    """Write the record `name` with the values measured by `command`."""
    data = {'name': name, 'command': command, 'date': date.today().isoformat(),
            'machine': machine(), 'versions': versions(), 'values': values}
    path = folder / f'{name}.json'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + '\n', encoding='utf-8')
    return path


def load(name: str, folder: Path = RESULTS) -> dict:
    """The record `name`."""
    return json.loads((folder / f'{name}.json').read_text(encoding='utf-8'))


def provenance(result: dict) -> str:
    """One line that says where a record's numbers come from."""
    m, v = result['machine'], result['versions']
    pyg = f", PyG {v['torch_geometric']}" if 'torch_geometric' in v else ''
    return (f"Measured on {result['date']} with `{result['command']}` on "
            f"{m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB), "
            f"PyTorch {v['torch']}{pyg}.")


# ## Tables for the README
#
# Each renders one record as Markdown; `TABLES` maps a marker's name to its table.

def cora_table(result: dict) -> str:
    """Test accuracy and time of the Cora experiment."""
    rows = ['| run | test accuracy | validation | wall time |', '|---|---|---|---|']
    for run in result['values']['runs']:
        rows.append(f"| {run['label']} | "
                    f"{run['test_mean']:.2f} ± {run['test_std']:.2f} % | "
                    f"{run['val_mean']:.1f} % | {run['wall_seconds']:.0f} s |")
    return '\n'.join(rows)


TABLES: Dict[str, Callable[[dict], str]] = {'cora': cora_table}

MARKERS = re.compile(r'(<!-- results: (?P<name>[\w-]+) -->\n)(?P<body>.*?)'
                     r'(<!-- end results -->)', re.DOTALL)


def render(name: str, folder: Path = RESULTS) -> str:
    """The block for the marker `name`: the table and where its numbers come from."""
    result = load(name, folder)
    return f'{TABLES[name](result)}\n\n{provenance(result)}\n'


def update(text: str, folder: Path = RESULTS) -> str:
    """`text` with every marked block rendered anew from its record."""
    return MARKERS.sub(
        lambda m: m.group(1) + render(m.group('name'), folder) + m.group(4), text)


def main(argv: Optional[list] = None) -> None:
    """Rewrite the marked blocks of the Markdown files named on the command line."""
    for path in map(Path, argv if argv is not None else sys.argv[1:]):
        path.write_text(update(path.read_text(encoding='utf-8')), encoding='utf-8')


if __name__ == '__main__':
    main()
