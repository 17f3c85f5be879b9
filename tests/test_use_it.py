"""
The "Use it" section of the layer page and of the home page: one Markdown file,
`docs/labml_gat/use_it.md`, shown by both sites (the built pages are checked in `test_site.py` and
`test_mkdocs.py`). Its example runs as written, and the source repository it links is the one
`pyproject.toml` names, the one place both sites read it from.
"""

import re
import runpy
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, load_file

USE_IT = REPO / 'docs' / 'labml_gat' / 'use_it.md'
# The sites' own helper
project_urls = load_file(REPO / 'docs' / '_ext' / 'project_urls.py')
project_url, substitutions = project_urls.project_url, project_urls.substitutions


def usage_example() -> str:
    """The Python block of the section."""
    [example] = re.findall(r'```python\n(.*?)```', USE_IT.read_text(encoding='utf-8'), flags=re.DOTALL)
    return example


def code_text(example: str) -> str:
    """The example's code as a page shows it, whitespace aside."""
    return ' '.join(example.split())


@pytest.mark.slow
def test_usage_example_runs():
    example = usage_example()
    assert len(example.strip().splitlines()) <= 12
    result = subprocess.run([sys.executable, '-c', example], capture_output=True, text=True, cwd=REPO,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'torch.Size([5, 32]) torch.Size([5, 5, 4])'


def test_repository_is_named_in_pyproject_and_read_by_both_sites(tmp_path):
    url = project_url('Repository')
    assert re.fullmatch(r'https://\S+', url)
    assert substitutions()['repository'].endswith(f'({url})')
    assert runpy.run_path(str(REPO / 'docs' / 'conf.py'))['myst_substitutions'] == substitutions()
    # MkDocs gets it from its hook; a `repo_url` of its own would be a second place (and Material
    # would fetch the repository's facts from GitHub).
    assert 'repo_url' not in yaml.safe_load((REPO / 'mkdocs.yml').read_text(encoding='utf-8'))
    (tmp_path / 'pyproject.toml').write_text('[project]\nname = "x"\n', encoding='utf-8')
    try:
        project_url('Repository', tmp_path / 'pyproject.toml')
    except ValueError as error:
        assert 'no Repository in [project.urls]' in str(error)
    else:
        raise AssertionError('a pyproject.toml without the URL was accepted')
