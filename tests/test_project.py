"""The project's files: its licence is in the repository and in what pip installs."""

import pytest

from conftest import REPO

tomllib = pytest.importorskip('tomllib')  # Python 3.11 and later


def test_the_mit_licence_is_there_and_packaged():
    licence = (REPO / 'LICENSE').read_text(encoding='utf-8')
    assert licence.startswith('MIT License\n') and 'Copyright (c) 2026 labml_gat contributors' in licence
    project = tomllib.loads((REPO / 'pyproject.toml').read_text(encoding='utf-8'))['project']
    assert project['license'] == 'MIT' and 'LICENSE' in project['license-files']
