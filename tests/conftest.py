"""Shared fixtures and graph builders for the tests."""

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

# The tests' tensors are small: one thread computes them as fast as two, and on a busy machine
# two OpenMP threads spin against each other and against the other processes
torch.set_num_threads(1)


@pytest.fixture(params=[1, 2], ids=['threads1', 'threads2'])
def threads(request):
    """torch's threads for one test, one again after it: with two, the lean layers share their
    chunks between two threads."""
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(1)


def random_edge_index(n_nodes: int, n_edges: int, generator: torch.Generator,
                      self_loops: bool = True) -> torch.Tensor:
    r"""
    A random directed graph as a PyG-style `edge_index` `[2, E]` (row 0 source $j$, row 1 target $i$),
    without duplicate edges; with `self_loops`, every node also gets the edge $i \to i$.
    Node 0 is left without incoming edges (apart from its self loop) to exercise isolated queries.
    """
    src = torch.randint(0, n_nodes, (n_edges,), generator=generator)
    dst = torch.randint(1, n_nodes, (n_edges,), generator=generator)
    keep = src != dst
    edge_index = torch.stack([src[keep], dst[keep]])
    if self_loops:
        loops = torch.arange(n_nodes)
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    return torch.unique(edge_index, dim=1)


def dense_adjacency(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    r"""`adj[i, j]` is `True` for every edge $j \to i$ (column `[j, i]` of `edge_index`)."""
    adj = torch.zeros(n_nodes, n_nodes, dtype=torch.bool)
    adj[edge_index[1], edge_index[0]] = True
    return adj


def small_planetoid(generator: torch.Generator, n_nodes: int = 30, n_features: int = 20,
                    n_classes: int = 3, n_edges: Optional[int] = None):
    """
    A random graph shaped like a tiny Planetoid dataset: sparse row-normalised features, an edge list
    in both directions without self loops, and training, validation and test nodes (a third each).
    """
    from labml_gat.datasets import Planetoid
    edge_index = random_edge_index(n_nodes, n_edges or 3 * n_nodes, generator, self_loops=False)
    edge_index = torch.unique(torch.cat([edge_index, edge_index.flip(0)], dim=1), dim=1)
    x = (torch.rand(n_nodes, n_features, generator=generator) < 0.2).float()
    x[:, 0] = 1.0
    x = x / x.sum(dim=1, keepdim=True)
    split = torch.arange(n_nodes) * 3 // n_nodes
    return Planetoid('small', x, torch.randint(0, n_classes, (n_nodes,), generator=generator), edge_index,
                     split == 0, split == 1, split == 2, num_classes=n_classes)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def find_planetoid() -> Optional[Path]:
    """The folder of the real Planetoid files: `LABML_GAT_DATA`, else `../shared/data/planetoid` beside the repo."""
    folder = Path(os.environ.get('LABML_GAT_DATA') or REPO.parent / 'shared' / 'data' / 'planetoid')
    return folder if (folder / 'ind.cora.x').is_file() and (folder / 'ind.citeseer.x').is_file() else None


PLANETOID = find_planetoid()
# Tests of the real data skip on a machine without it, but never in CI, where a missing folder must fail.
needs_planetoid = pytest.mark.skipif(
    PLANETOID is None and not os.environ.get('CI'),
    reason='Planetoid files not found: set LABML_GAT_DATA or put them in <repo>/../shared/data/planetoid')

def load_experiment(name: str):
    """
    Load the script `experiments/<name>.py` by its path, as the module `<name>`. The experiments are
    scripts in a folder, not a package, and no test changes the import path: anything that needs worker
    processes runs the script itself, as a subprocess (`run_script`).
    """
    return load_file(REPO / 'experiments' / f'{name}.py')


def load_file(path: Path):
    """The Python file `path`, loaded once as the module named by its stem."""
    import importlib.util
    import sys
    if path.stem in sys.modules:
        return sys.modules[path.stem]
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs, as an import does: dataclasses and pickling look modules up by name
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[path.stem]
        raise
    return module


def sigint_as_in_a_terminal() -> None:
    """
    `preexec_fn` of a process a test interrupts with SIGINT: Ctrl-C's signal at its default, as in
    a terminal. A shell without job control starts its background jobs with SIGINT ignored, and
    that is inherited; Python then leaves it ignored, and the test would wait for nothing.
    """
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_script(name: str, *args: str, timeout: float = 600, **kwargs):
    """Run `experiments/<name>.py` with this Python in a subprocess; returns the `CompletedProcess`."""
    import subprocess
    import sys
    return subprocess.run([sys.executable, str(REPO / 'experiments' / f'{name}.py'), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, cwd=kwargs.pop('cwd', REPO),
                          **kwargs)


def the_mistake(returncode: int, out: str, err: str, script: str) -> str:
    """
    What a script said of a user's mistake, checked to be said as the project says them: exit
    status 2, nothing on standard output, no traceback, and one line `SCRIPT: error: ...`, the
    last on standard error.
    """
    assert returncode == 2, err
    assert 'Traceback' not in err and out == '', err
    errors = [line for line in err.splitlines() if line.startswith(f'{script}: error: ')]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    return errors[0][len(f'{script}: error: '):]


# ## Tests write to temporary folders
#
# labml keeps runs in `logs/` beside `.labml.yaml`, which is the repository. Every test's runs go
# to a folder of the session's temporary directory instead: labml is configured in this process,
# and `LABML_GAT_LOGS` tells processes the tests start (a site build's gallery examples) the same.

@pytest.fixture(scope='session', autouse=True)
def session_logs(tmp_path_factory) -> Path:
    # Autouse, so that it is set before session fixtures that start processes (the site build).
    folder = tmp_path_factory.mktemp('labml') / 'logs'
    os.environ['LABML_GAT_LOGS'] = str(folder)
    return folder


@pytest.fixture(autouse=True)
def _runs_out_of_the_repository(session_logs):
    """Before every test, since a test may have pointed labml elsewhere and not back."""
    from labml import lab
    lab.configure({'experiments_path': str(session_logs)})
    os.environ['LABML_GAT_LOGS'] = str(session_logs)


@pytest.fixture
def labml_logs(tmp_path, session_logs):
    """The test's own labml runs folder, to look at what it wrote."""
    from labml import lab
    lab.configure({'experiments_path': str(tmp_path / 'logs')})
    yield tmp_path / 'logs'
    lab.configure({'experiments_path': str(session_logs)})


# The tree must not gain files during the tests. Files that Python and the tools make for
# themselves are allowed, and so are what a site build writes beside the docs' sources
# (git-ignored): sphinx-gallery's pages and the layer pages' figures.
ALLOWED_NEW = ('__pycache__', '.pytest_cache', '.egg-info', 'docs/experiments/gallery/',
               'docs/_static/figures/')
# Where outputs used to land: files inside these count even when the folder already existed.
WATCHED = ('logs', 'screenshots', 'benchmarks', 'data', '_site')
_TREE = pytest.StashKey[Optional[set]]()


def tree_files() -> Optional[set[str]]:
    """The untracked and ignored paths of the repository (None outside a git checkout)."""
    import subprocess
    try:
        status = subprocess.run(['git', 'status', '--porcelain', '--ignored', '-z'], cwd=REPO,
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if status.returncode != 0:
        return None
    paths = {entry[3:] for entry in status.stdout.split('\0') if entry[:2] in ('??', '!!')}
    for folder in WATCHED:
        if (REPO / folder).is_dir():
            paths |= {str(path.relative_to(REPO)) for path in (REPO / folder).rglob('*')}
    paths = {path for path in paths if not any(part in path for part in ALLOWED_NEW)}
    # A new folder is named by its files when they are listed.
    return {path for path in paths
            if not (path.endswith('/') and any(other.startswith(path) and other != path
                                                for other in paths))}


def pytest_sessionstart(session):
    session.config.stash[_TREE] = tree_files()


def pytest_sessionfinish(session, exitstatus):
    """Fails the session, listing them, when the tests left new files in the repository."""
    before = session.config.stash.get(_TREE, None)
    if before is None or hasattr(session.config, 'workerinput'):
        return
    after = tree_files() or set()
    new = sorted(after - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin('terminalreporter')
        shown = ', '.join(new[:10]) + (f' and {len(new) - 10} more' if len(new) > 10 else '')
        if reporter:
            reporter.ensure_newline()
            reporter.write_line(f'the tests left new files in the repository: {shown}', red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED



def imported_modules(path: Path) -> set:
    """The top-level modules a Python file imports."""
    tree = ast.parse(path.read_text())
    modules = {alias.name.split('.')[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
               for alias in node.names}
    return modules | {node.module.split('.')[0] for node in ast.walk(tree)
                      if isinstance(node, ast.ImportFrom)}


def run_copied_alone(path: Path, folder: Path, script: str) -> subprocess.CompletedProcess:
    """`script` run in a fresh Python beside a copy of `path` in `folder`, and nothing else of ours."""
    (folder / path.name).write_text(path.read_text())
    return subprocess.run([sys.executable, '-c', script], cwd=folder, capture_output=True, text=True,
                          env={'PYTHONPATH': str(folder), 'PATH': ''})


def assert_same_runs(runs, others):
    """The same seeds' runs: the epochs kept and trained, the accuracies, and every number of every
    epoch's history (not their times or their folders)."""
    assert len(runs) == len(others)
    for one, other in zip(runs, others):
        assert {key: one[key] for key in one if key not in ('seconds', 'checkpoint', 'history')} == \
            {key: other[key] for key in other if key not in ('seconds', 'checkpoint', 'history')}
        assert [sorted(epoch) for epoch in one['history']] == [sorted(epoch) for epoch in other['history']]
        for epoch, again in zip(one['history'], other['history']):
            assert epoch == pytest.approx(again, rel=1e-4)


def quoted(pattern: str, text: str) -> tuple:
    """
    The groups of `pattern` in a docstring's `text`, read as one line (every break and indent
    one space, so that a sentence is found wherever its lines break): the sizes a sentence
    states and the numbers it quotes, to compute the one from the other.
    """
    found = re.search(pattern, ' '.join(text.split()))
    assert found, f'no {pattern!r} in the docstring'
    return found.groups()


def rounds_to(quoted: str, value: float) -> bool:
    """Whether `quoted`, a number as prose writes it (`1.8`, `26`), is `value` to its digits."""
    decimals = len(quoted.partition('.')[2])
    return quoted == f'{value:.{decimals}f}'
