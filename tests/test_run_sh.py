"""
`run.sh`'s setup, with a fake Python that records what it was asked to do: the first call
installs, a second call with nothing changed installs nothing, and a changed `pyproject.toml`
or `TORCH_VERSION` installs again.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

# Stands for both the interpreter that makes the venv and the venv's own Python: `-m venv DIR`
# makes DIR/bin/python (this same script), `-m pip ...` is recorded, `-c ...` prints a version.
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && chmod +x "$3/bin/python"
elif [ "$1" = "-c" ]; then
    echo 3.11.0
elif [ "$*" = "-m pip install --quiet -e .[test,docs]" ] && [ -n "${FAKE_FAIL:-}" ]; then
    exit 1
fi
"""


@pytest.fixture
def clone(tmp_path) -> Path:
    shutil.copy(REPO / 'run.sh', tmp_path / 'run.sh')
    shutil.copy(REPO / 'pyproject.toml', tmp_path / 'pyproject.toml')
    python = tmp_path / 'fake-python'
    python.write_text(FAKE_PYTHON, encoding='utf-8')
    python.chmod(0o755)
    return tmp_path


def setup(clone: Path, fails: bool = False, **env: str) -> list[str]:
    """Runs `bash run.sh setup` and returns the pip commands it ran."""
    log = clone / 'calls.log'
    log.unlink(missing_ok=True)
    environment = {name: value for name, value in os.environ.items()
                   if name not in ('TORCH_VERSION', 'FAKE_FAIL')}
    environment.update(PYTHON=str(clone / 'fake-python'), FAKE_LOG=str(log), VENV='.venv', **env)
    result = subprocess.run(['bash', 'run.sh', 'setup'], cwd=clone, env=environment,
                            capture_output=True, text=True, timeout=60)
    if fails:
        assert result.returncode != 0
        return []
    assert result.returncode == 0, result.stderr
    assert 'setup' in result.stdout and ' s\n' in result.stdout  # the phase's time
    return [line for line in log.read_text(encoding='utf-8').splitlines() if line.startswith('-m pip')]


def test_setup_installs_once_then_only_after_a_change(clone):
    first = setup(clone)
    assert any('torch==2.13.0' in call for call in first)
    assert any('-e .[test,docs]' in call for call in first)
    # Nothing changed: no pip at all.
    assert setup(clone) == []
    # Another torch, then another pyproject.toml: install again, then quiet again.
    assert any('torch==2.12.0' in call for call in setup(clone, TORCH_VERSION='2.12.0'))
    assert setup(clone, TORCH_VERSION='2.12.0') == []
    with open(clone / 'pyproject.toml', 'a', encoding='utf-8') as file:
        file.write('\n# changed\n')
    assert any('-e .[test,docs]' in call for call in setup(clone, TORCH_VERSION='2.12.0'))


def test_a_failed_install_is_retried(clone):
    # A setup that stopped half-way leaves no stamp, so the next call installs again.
    setup(clone, fails=True, FAKE_FAIL='1')
    assert any('-e .[test,docs]' in call for call in setup(clone))
    assert setup(clone) == []
