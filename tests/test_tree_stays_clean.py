"""
The tests keep the repository as they found it: labml runs and screenshots go to temporary
folders, and a session that leaves new files in the tree fails (the hooks of `conftest.py`).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

# The slow tier (`pytest -m "not slow"` leaves it out): runs pytest sessions in subprocesses
pytestmark = pytest.mark.slow


def test_labml_runs_of_a_test_go_to_a_temporary_folder():
    from labml import lab
    logs = Path(lab.get_experiments_path()).resolve()
    assert REPO.resolve() not in logs.parents
    # Processes the tests start are told the same folder.
    assert Path(os.environ['LABML_GAT_LOGS']).resolve() == logs


def test_a_test_asking_for_its_own_folder_gets_it(labml_logs):
    from labml import lab
    assert Path(lab.get_experiments_path()).resolve() == labml_logs.resolve()


INNER_TEST = '''
from conftest import REPO

def test_writes():
    (REPO / {folder!r}).mkdir(exist_ok=True)
    (REPO / {folder!r} / 'left-behind.txt').write_text('x')
'''


def inner_session(tmp_path: Path, folder: str) -> subprocess.CompletedProcess:
    """A pytest session on a small git repository with this conftest and one test writing into
    `folder` of that repository (`logs` already exists and is ignored, as in a used clone)."""
    shutil.copy(REPO / 'tests' / 'conftest.py', tmp_path / 'conftest.py')
    (tmp_path / 'test_inner.py').write_text(INNER_TEST.format(folder=folder), encoding='utf-8')
    (tmp_path / 'conftest.py').write_text(
        (tmp_path / 'conftest.py').read_text(encoding='utf-8').replace(
            'REPO = Path(__file__).resolve().parent.parent', 'REPO = Path(__file__).resolve().parent'),
        encoding='utf-8')
    (tmp_path / '.gitignore').write_text('logs/\n__pycache__/\n.pytest_cache/\nscratch/\n')
    (tmp_path / 'logs').mkdir()
    (tmp_path / 'logs' / 'old-run.txt').write_text('already there')
    git = ['git', '-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'init.defaultBranch=main']
    subprocess.run([*git, 'init', '-q'], cwd=tmp_path, check=True)
    subprocess.run([*git, 'add', '.'], cwd=tmp_path, check=True)
    subprocess.run([*git, 'commit', '-qm', 'start'], cwd=tmp_path, check=True)
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                           'test_inner.py'], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.skipif(shutil.which('git') is None, reason='needs git')
@pytest.mark.parametrize('folder', ['logs'])
def test_a_session_that_leaves_files_in_the_tree_fails(tmp_path, folder):
    result = inner_session(tmp_path, folder)
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout + result.stderr
    assert f'left new files in the repository: {folder}/left-behind.txt' in result.stdout


@pytest.mark.skipif(shutil.which('git') is None, reason='needs git')
def test_new_ignored_files_count_and_python_caches_do_not(tmp_path):
    # scratch/ is git-ignored and was not there before: it is reported all the same.
    result = inner_session(tmp_path, 'scratch')
    assert 'scratch/' in result.stdout and '__pycache__' not in result.stdout
