"""
The project's links, read from `[project.urls]` of `pyproject.toml`, the one place they are set:
the Sphinx site (`docs/conf.py`) and the MkDocs site (`docs/_ext/mkdocs_hooks.py`) both link the
source repository from here, in the page header and as the MyST substitution `{{ repository }}`.
"""

from __future__ import annotations

import re
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[2] / 'pyproject.toml'


def project_url(name: str, pyproject: Path = PYPROJECT) -> str:
    """The URL called `name` in `[project.urls]` (read with a pattern: `tomllib` is Python 3.11+)."""
    text = pyproject.read_text(encoding='utf-8')
    table = re.search(r'^\[project\.urls\][ \t]*\n(.*?)(?=^\[|\Z)', text, re.MULTILINE | re.DOTALL)
    entry = table and re.search(rf'^{re.escape(name)}\s*=\s*"([^"]+)"', table[1], re.MULTILINE)
    if not entry:
        raise ValueError(f'{pyproject}: no {name} in [project.urls]')
    return entry[1]


def substitutions() -> dict[str, str]:
    """The MyST substitutions of both sites' pages: `{{ repository }}`, a link to the source."""
    return {'repository': f'[the source repository]({project_url("Repository")})'}
