"""The project's files: its licence is in the repository and in what pip installs, and the site reads
its modules in an order that explains each before the pages that build on it."""

import ast
import re

import pytest

from conftest import REPO

tomllib = pytest.importorskip('tomllib')  # Python 3.11 and later


def test_the_mit_licence_is_there_and_packaged():
    licence = (REPO / 'LICENSE').read_text(encoding='utf-8')
    assert licence.startswith('MIT License\n') and 'Copyright (c) 2026 labml_gat contributors' in licence
    project = tomllib.loads((REPO / 'pyproject.toml').read_text(encoding='utf-8'))['project']
    assert project['license'] == 'MIT' and 'LICENSE' in project['license-files']


def chapters() -> dict:
    """The site's chapters, from the toctrees of `docs/index.md`: caption -> its pages, in order."""
    index = (REPO / 'docs' / 'index.md').read_text(encoding='utf-8')
    return {re.search(r'^:caption: (.+)$', block, re.MULTILINE)[1]:
            [line for line in block.splitlines() if line and not line.startswith(':')]
            for block in re.findall(r'```\{toctree\}\n(.*?)```', index, re.DOTALL)}


def imported_pages(page: str) -> set:
    """The pages (`labml_gat/edges`) of the project's modules that the module of `page` imports."""
    tree = ast.parse((REPO / f'{page}.py').read_text(encoding='utf-8'))
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    return {module.replace('.', '/') for module in modules if module and module.startswith('labml_gat.')}


# The chapters read from start to end; the appendix is looked up, page by page
@pytest.mark.parametrize('caption', ['The tutorial', 'Speed and scale'])
def test_a_chapter_reads_a_module_after_the_modules_it_builds_on(caption):
    """Within a chapter, the page of a `labml_gat` module comes after the pages of the chapter's
    modules it imports, which explain what it uses (the lean layers the drop-in layer's chunks)."""
    pages = chapters()[caption]
    assert pages
    for place, page in enumerate(pages):
        if page.startswith('labml_gat/'):
            later = imported_pages(page) & set(pages[place + 1:])
            assert not later, f'{page} comes before {sorted(later)}, which it builds on'
