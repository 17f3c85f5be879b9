"""
The MkDocs site of `mkdocs.yml`, built with `mkdocs build --strict` into a temporary folder, offline,
and checked against the Sphinx renderer: the same annotated pages, in the same navigation, with the
same rows, line numbers, formulas and anchors. One page is read in Chromium, as in `test_browser.py`.
"""

import functools
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from bs4 import BeautifulSoup

from conftest import REPO
from test_browser import ROW_BOXES, Reader, browser, serve  # noqa: F401  (`browser`: the shared fixture)
from test_site import ASSETS, CSS_REMOTE, REMOTE
from test_sidebyside import build_site, row_summary

pytest.importorskip('mkdocs')
pytest.importorskip('material')

import yaml  # noqa: E402  (after the skips: MkDocs brings it)

from sidebyside import STYLESHEET  # noqa: E402

# The slow tier (`pytest -m "not slow"` leaves it out): builds the MkDocs site and the Sphinx pages it is compared with (minutes)
pytestmark = pytest.mark.slow

DOCS = REPO / 'docs'
MKDOCS_DOCS = DOCS / 'mkdocs'
# A MyST directive block that names a Python file.
BLOCK = re.compile(r'^```\{annotated-source\}\s+(\S+)\s*$', re.MULTILINE)


def mkdocs_config() -> dict:
    return yaml.safe_load((REPO / 'mkdocs.yml').read_text(encoding='utf-8'))


def annotated_pages() -> dict[str, Path]:
    """Page (`labml_gat/gatv2.html`) -> the Python file it shows, from the MkDocs pages' blocks."""
    pages = {}
    for page in sorted(MKDOCS_DOCS.rglob('*.md')):
        match = BLOCK.search(page.read_text(encoding='utf-8'))
        if match:
            pages[page.relative_to(MKDOCS_DOCS).with_suffix('.html').as_posix()] = REPO / match[1]
    return pages


ANNOTATED = annotated_pages()


@pytest.fixture(scope='module')
def mkdocs_site(tmp_path_factory) -> Path:
    """`mkdocs build --strict` into a temporary folder, beside an (empty) `html` folder where the
    Sphinx site would be. Fails on any warning; no network is needed."""
    out = tmp_path_factory.mktemp('_build') / 'mkdocs'
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(REPO), os.environ.get('PYTHONPATH', '')]),
           'NO_MKDOCS_2_WARNING': '1'}
    result = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '-f', str(REPO / 'mkdocs.yml'),
                             '-d', str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert 'WARNING' not in log and 'ERROR' not in log, log[-6000:]
    return out


@pytest.fixture(scope='module')
def sphinx_pages(tmp_path_factory) -> Path:
    """The same annotated files through the Sphinx extension, in a small project with the site's
    MyST settings (the full site runs the gallery; `test_site.py` builds that one)."""
    root = tmp_path_factory.mktemp('sphinx')
    # The pages' figures are drawn by the site's own extension (`docs/_ext/site_assets.py`),
    # which this small project does not load.
    pages = {'conf.py': "project = 'test'\nextensions = ['myst_parser', 'sidebyside.sphinx']\n"
                        "myst_enable_extensions = ['dollarmath', 'amsmath']\n"
                        "suppress_warnings = ['image.not_readable']\n",
             'index.md': '# Pages\n\n```{toctree}\n' + '\n'.join(
        page.removesuffix('.html').replace('/', '__') for page in ANNOTATED) + '\n```\n'}
    for page, source in ANNOTATED.items():
        relative = os.path.relpath(source, root / 'docs')
        pages[page.removesuffix('.html').replace('/', '__') + '.md'] = f'```{{annotated-source}} {relative}\n```\n'
    _, warnings = build_site(root, pages, {})
    assert warnings == ''
    return root / 'html'


def test_navigation_is_the_sphinx_toctree():
    """One list of pages: the sections of `nav` are the toctrees of docs/index.md, with their captions,
    and the examples' section stands for the Sphinx gallery."""
    toctrees = re.findall(r'```\{toctree\}\n(.*?)```', (DOCS / 'index.md').read_text(encoding='utf-8'), re.DOTALL)
    sphinx = []
    for block in toctrees:
        caption = re.search(r'^:caption: (.+)$', block, re.MULTILINE)[1]
        sphinx.append((caption, [line for line in block.splitlines() if line and not line.startswith(':')]))
    nav = mkdocs_config()['nav']
    assert nav[0] == {'Home': 'index.md'}
    mkdocs = []
    for section in nav[1:]:
        [(caption, entries)] = section.items()
        names = [entry.removesuffix('.md') if isinstance(entry, str)
                 else Path(next(iter(entry.values()))[0]).with_suffix('').as_posix() for entry in entries]
        mkdocs.append((caption, names))
    assert mkdocs == sphinx


def test_every_annotated_page_shows_the_same_file_on_both_sites():
    assert len(ANNOTATED) >= 9
    for page, source in ANNOTATED.items():
        assert source.is_file(), page
        sphinx_page = (DOCS / page).with_suffix('.md')
        match = BLOCK.search(sphinx_page.read_text(encoding='utf-8'))
        assert match and (sphinx_page.parent / match[1]).resolve() == source.resolve(), page


@pytest.mark.parametrize('page', ANNOTATED)
def test_rows_line_numbers_and_math_are_the_sphinx_ones(mkdocs_site, sphinx_pages, page):
    mkdocs_html = (mkdocs_site / page).read_text(encoding='utf-8')
    sphinx_html = (sphinx_pages / (page.removesuffix('.html').replace('/', '__') + '.html')).read_text(encoding='utf-8')
    rows = row_summary(mkdocs_html, 'article')
    assert len(rows) > 5 and rows == row_summary(sphinx_html)
    # Each number shown is the line of the file next to it.
    source = ANNOTATED[page].read_text(encoding='utf-8').split('\n')
    for block in BeautifulSoup(mkdocs_html, 'html.parser').select('.annotate-code pre'):
        for number in block.select('.linenos'):
            number.replace_with(f'\x00{number.get_text().strip()}\x01')
        for line, code in re.findall(r'\x00(\d+)\x01([^\n]*)', block.get_text()):
            assert code == source[int(line) - 1], (page, line)
    # The same headings, with the same anchors, and the first one is the page's title.
    sphinx_ids = [section['id'] for section in BeautifulSoup(sphinx_html, 'html.parser').select('section[id]')]
    mkdocs = BeautifulSoup(mkdocs_html, 'html.parser')
    headings = mkdocs.select('article :is(h1, h2, h3, h4, h5, h6)[id]')
    assert [heading['id'] for heading in headings] == sphinx_ids
    assert mkdocs.title.get_text().startswith(headings[0].get_text().rstrip('¶ '))
    assert not mkdocs.select('.math-error, merror, script[type^="math/tex"]')


def test_home_page_is_the_sphinx_home_page(mkdocs_site):
    """docs/index.md, read by Python-Markdown: its formulas are MathML, its links reach pages of this
    site, and its toctrees are gone."""
    page = BeautifulSoup((mkdocs_site / 'index.html').read_text(encoding='utf-8'), 'html.parser')
    article = page.select_one('article')
    source = (REPO / 'docs' / 'index.md').read_text(encoding='utf-8')
    n_display = len(re.findall(r'^\$\$.+?\$\$$', source, flags=re.MULTILINE | re.DOTALL))
    assert len(article.select('math[display="block"]')) == n_display
    text = article.get_text(' ')
    assert '$' not in text and 'toctree' not in text
    links = {urlsplit(a['href']).path for a in article.select('a[href]') if not REMOTE.match(a['href'])}
    assert set(ANNOTATED) - {'sidebyside/sphinx.html', 'sidebyside/markdown.html', 'sidebyside/mathml.html'} <= links
    assert 'experiments/gallery/plot_dictionary_lookup.html' in links


def test_examples_link_to_their_executed_version(mkdocs_site):
    """The gallery runs in the Sphinx build only: each example's page says so, shows its source and
    links to the executed page of the Sphinx site, built beside this one (`docs/_build/html`)."""
    examples = sorted((REPO / 'experiments' / 'gallery').glob('plot_*.py'))
    assert examples
    for example in examples:
        page = mkdocs_site / 'experiments' / 'gallery' / f'{example.stem}.html'
        html = BeautifulSoup(page.read_text(encoding='utf-8'), 'html.parser')
        assert 'Sphinx site' in html.select_one('.admonition').get_text()
        executed = [a['href'] for a in html.select('.admonition a[href]')]
        target = (page.parent / executed[0]).resolve()
        assert target == (mkdocs_site.parent / 'html' / 'experiments' / 'gallery' / f'{example.stem}.html').resolve()
        assert example.read_text(encoding='utf-8').split('\n')[1] in html.select_one('.highlight').get_text()


@functools.cache
def soup(page: Path) -> BeautifulSoup:
    """A built page, parsed once for all the tests that read it."""
    return BeautifulSoup(page.read_text(encoding='utf-8'), 'html.parser')


def test_every_internal_link_resolves(mkdocs_site):
    """Every link between pages reaches a file and, with a `#fragment`, an id of it."""
    broken = []
    for page in mkdocs_site.rglob('*.html'):
        for a in soup(page).select('a[href]'):
            parts = urlsplit(a['href'])
            if parts.scheme or parts.netloc or '/html/' in parts.path or not (parts.path or parts.fragment):
                continue
            # The 404 page links from the site's root, since it is served at any address.
            base = mkdocs_site if parts.path.startswith('/') else page.parent
            target = (base / unquote(parts.path).lstrip('/')).resolve() if parts.path else page
            if target.is_dir():
                target = target / 'index.html'
            if not target.is_file():
                broken.append(f'{page.relative_to(mkdocs_site)} -> {a["href"]}')
            elif parts.fragment and target.suffix == '.html' and not soup(target).find(id=parts.fragment):
                broken.append(f'{page.relative_to(mkdocs_site)} -> {a["href"]}: no id')
    assert not broken, '\n'.join(broken)


def test_nothing_is_loaded_from_the_network_and_the_stylesheet_is_shared(mkdocs_site, sphinx_pages):
    for page in mkdocs_site.rglob('*.html'):
        for tag, attribute in ASSETS.items():
            for element in soup(page).find_all(tag):
                assert not REMOTE.match(element.get(attribute) or ''), (page, str(element)[:200])
    for stylesheet in mkdocs_site.rglob('*.css'):
        assert not CSS_REMOTE.search(stylesheet.read_text(encoding='utf-8')), stylesheet
    shipped = STYLESHEET.read_bytes()
    assert (mkdocs_site / 'sidebyside.css').read_bytes() == shipped
    assert (sphinx_pages / '_static' / 'sidebyside.css').read_bytes() == shipped


@pytest.fixture(scope='module')
def server(mkdocs_site) -> Iterator[str]:
    """The built MkDocs site, served."""
    yield from serve(mkdocs_site)


def test_layer_page_in_a_browser(browser, server, tmp_path):  # noqa: F811
    """The GATv2 page at 1400 px: docs left of code in every row, the code column the wider one,
    every formula laid out with a size, and no request leaves 127.0.0.1 (checked when the tab closes)."""
    reader = Reader(browser, server, {'width': 1400, 'height': 900}, tmp_path)
    try:
        reader.open('labml_gat/gatv2.html')
        rows = reader.page.evaluate(ROW_BOXES)
        assert len(rows) > 5
        for doc, code in rows:
            assert doc['right'] <= code['left'] and abs(doc['top'] - code['top']) < 1, (doc, code)
            assert code['right'] - code['left'] > doc['right'] - doc['left'] > 300, (doc, code)
        formulas = reader.page.evaluate("""() => [...document.querySelectorAll('article math')]
            .map(math => { const box = math.getBoundingClientRect(); return [box.width, box.height]; })""")
        assert len(formulas) > 20 and all(width > 0 and height > 0 for width, height in formulas)
        assert reader.fits()
    finally:
        reader.close()


def test_a_readers_project_with_the_readme_configuration(tmp_path):
    """The lines README-sidebyside.md gives a reader, in a project of one page and one module."""
    import shutil

    import sidebyside

    (tmp_path / 'docs').mkdir()
    (tmp_path / 'mypackage').mkdir()
    (tmp_path / 'mypackage' / 'model.py').write_text('"""\n# My model\n\nIt has $x^2$.\n"""\n\n# Doc\nx = 1\n',
                                                   encoding='utf-8')
    (tmp_path / 'docs' / 'index.md').write_text('```{annotated-source} mypackage/model.py\n```\n', encoding='utf-8')
    (tmp_path / 'mkdocs.yml').write_text('site_name: Mine\ntheme:\n  name: material\n  font: false\n'
                                         'markdown_extensions:\n  - sidebyside.markdown\n'
                                         'extra_css:\n  - sidebyside.css\n', encoding='utf-8')
    shutil.copy(sidebyside.STYLESHEET, tmp_path / 'docs')
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'NO_MKDOCS_2_WARNING': '1'}
    result = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict'], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    page = BeautifulSoup((tmp_path / 'site' / 'index.html').read_text(encoding='utf-8'), 'html.parser')
    assert page.select_one('h1#my-model') and page.select_one('.annotate-doc math')
    assert [int(n.get_text()) for n in page.select('.annotate-code .linenos')] == [8]
    assert page.select_one('link[href="sidebyside.css"]')
