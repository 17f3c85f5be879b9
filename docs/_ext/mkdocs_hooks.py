"""
MkDocs hooks of this site:

* the MyST substitutions of the Sphinx site (`{{ repository }}`, from `project_urls`) are given to
  `sidebyside.markdown`, so both sites read the repository's address from pyproject.toml;
* the layer pages' figures are drawn before the pages are collected, as the Sphinx build does on
  `builder-inited`. The figures are written to `docs/_static/figures/`, which
  `docs/mkdocs/_static/figures` links to, so both sites show them at `_static/figures/NAME.svg`.
"""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent


def _load(name: str):
    """`docs/_ext/NAME.py`, loaded from its file (MkDocs does not put `_ext/` on the path)."""
    spec = importlib.util.spec_from_file_location(name, DOCS / '_ext' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_config(config):
    options = config['mdx_configs'].setdefault('sidebyside.markdown', {})
    options['substitutions'] = {**_load('project_urls').substitutions(), **options.get('substitutions', {})}
    return config


def on_pre_build(config) -> None:
    _load('site_figures').write_all(DOCS / '_static' / 'figures')
