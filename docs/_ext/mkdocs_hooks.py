"""
MkDocs hook of this site: draw the layer pages' figures before the pages are collected, as the
Sphinx build does on `builder-inited`. The figures are written to `docs/_static/figures/`, which
`docs/mkdocs/_static/figures` links to, so both sites show them at `_static/figures/NAME.svg`.
"""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent


def on_pre_build(config) -> None:
    spec = importlib.util.spec_from_file_location('site_figures', DOCS / '_ext' / 'site_figures.py')
    site_figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site_figures)
    site_figures.write_all(DOCS / '_static' / 'figures')
