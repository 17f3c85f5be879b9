"""The README's usage example runs as written."""

import re
import subprocess
import sys

import pytest

from conftest import REPO


@pytest.mark.slow
def test_readme_usage_example_runs():
    readme = (REPO / 'README.md').read_text()
    blocks = re.findall(r'```python\n(.*?)```', readme, flags=re.DOTALL)
    example = next(block for block in blocks if 'GraphAttentionV2Layer' in block)
    assert len(example.strip().splitlines()) <= 12
    result = subprocess.run([sys.executable, '-c', example], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'torch.Size([5, 32]) torch.Size([5, 5, 4])'


def test_readme_commands_exist():
    readme = (REPO / 'README.md').read_text()
    assert 'bash run.sh site' in readme and 'bash run.sh test' in readme
    assert 'bash run.sh test' in (REPO / '.ci' / 'run').read_text()
