"""
The MkDocs site of `mkdocs.yml`, built with `mkdocs build --strict` into a temporary folder, offline,
and checked against the Sphinx renderer: the same annotated pages, in the same navigation, with the
same rows, line numbers, formulas and anchors. One page is read in Chromium, as in `test_browser.py`.
"""

import contextlib
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

from conftest import REPO, load_file
from test_browser import (CHAPTERS, EMPTY_CODE_BOX, EMPTY_CODE_BOX_LIMIT, NO_WRAP, ROW_BOXES,  # noqa: F401
                          Reader, browser, check_code_reads_at_1400_px,
                          check_inline_code_breaks_only_between_words, check_wrapped_code_hangs,
                          crawl, serve)
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
# The sites' own helper
project_urls = load_file(DOCS / '_ext' / 'project_urls.py')
project_url, substitutions = project_urls.project_url, project_urls.substitutions

SUBSTITUTIONS = substitutions()
# A MyST directive block that names a Python file.
BLOCK = re.compile(r'^```\{annotated-source\}\s+(\S+)\s*$', re.MULTILINE)


def mkdocs_config() -> dict:
    return yaml.safe_load((REPO / 'mkdocs.yml').read_text(encoding='utf-8'))


# Its preface, a Markdown file shown after the Python file's introduction.
PREFACE = re.compile(r'^:preface:\s*(\S+)\s*$', re.MULTILINE)


def annotated_pages() -> dict[str, Path]:
    """Page (`labml_gat/gatv2.html`) -> the Python file it shows, from the MkDocs pages' blocks."""
    pages = {}
    for page in sorted(MKDOCS_DOCS.rglob('*.md')):
        match = BLOCK.search(page.read_text(encoding='utf-8'))
        if match:
            pages[page.relative_to(MKDOCS_DOCS).with_suffix('.html').as_posix()] = REPO / match[1]
    return pages


def prefaces() -> dict[str, Path]:
    """Page -> the Markdown file its block shows after the file's introduction, where it has one."""
    found = {}
    for page in ANNOTATED:
        match = PREFACE.search((MKDOCS_DOCS / page).with_suffix('.md').read_text(encoding='utf-8'))
        if match:
            found[page] = REPO / match[1]
    return found


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
                        "myst_enable_extensions = ['dollarmath', 'amsmath', 'substitution']\n"
                        f"myst_substitutions = {SUBSTITUTIONS!r}\n"
                        "sidebyside_doc_filter = 'labml_gat.results.fill'\n"
                        "suppress_warnings = ['image.not_readable']\n",
             'index.md': '# Pages\n\n```{toctree}\n' + '\n'.join(
        page.removesuffix('.html').replace('/', '__') for page in ANNOTATED) + '\n```\n'}
    with_preface = prefaces()
    for page, source in ANNOTATED.items():
        relative = os.path.relpath(source, root / 'docs')
        preface = (f':preface: {os.path.relpath(with_preface[page], root / "docs")}\n'
                   if page in with_preface else '')
        pages[page.removesuffix('.html').replace('/', '__') + '.md'] = f'```{{annotated-source}} {relative}\n{preface}```\n'
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


def _hooks():
    """The site's MkDocs hooks, `docs/_ext/mkdocs_hooks.py`, loaded from their file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location('mkdocs_hooks', DOCS / '_ext' / 'mkdocs_hooks.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLES = sorted((REPO / 'experiments' / 'gallery').glob('plot_*.py'))


@pytest.mark.parametrize('example', EXAMPLES, ids=lambda path: path.stem)
def test_example_pages_are_rendered(mkdocs_site, example):
    """An example's page is its prose rendered (math as MathML, links as links), its code
    highlighted and, when the example ran in the Sphinx build, its output and every figure it drew;
    no reStructuredText or gallery markup is left."""
    page = mkdocs_site / 'experiments' / 'gallery' / f'{example.stem}.html'
    article = BeautifulSoup(page.read_text(encoding='utf-8'), 'html.parser').select_one('article')
    source = example.read_text(encoding='utf-8')
    assert len(article.select('.highlight')) >= source.count('\n# %%')
    if ':math:' in source:
        assert article.select('math')
    text = article.get_text()
    for code in article.select('pre, code'):
        code.decompose()
    prose = article.get_text()
    for markup in ('r"""', '# %%', ':math:', ':mod:', ':doc:', '``', '`_', '.. code-block'):
        assert markup not in prose, markup
    hooks = _hooks()
    images = [img['src'] for img in article.select('img')]
    if hooks.ran(example.stem):
        executed = (DOCS / 'experiments' / 'gallery' / f'{example.stem}.rst').read_text(encoding='utf-8')
        assert len(images) == executed.count('.. image-sg::') > 0
        assert all((page.parent / src).is_file() for src in images)
    else:
        assert not images and 'bash run.sh site' in text


def test_example_markup_becomes_markdown():
    """The reStructuredText the examples use, as Markdown."""
    hooks = _hooks()
    text = ('Title\n=====\n\nSee ``x``, :math:`\\alpha_{ij}`, the `layer\n<../../labml_gat/gatv2.html>`_,\n'
            ':mod:`labml_gat.lookup` and :doc:`plot_attention`.\n\n.. code-block:: bash\n\n    run it\n')
    assert hooks.rst_to_markdown(text) == (
        '# Title\n\nSee `x`, $\\alpha_{ij}$, the [layer](../../labml_gat/gatv2.md),\n'
        '[`labml_gat.lookup`](../../labml_gat/lookup.md) and '
        '[What did the attention learn?](plot_attention.md).\n\n```bash\nrun it\n```')


@functools.cache
def soup(page: Path) -> BeautifulSoup:
    """A built page, parsed once for all the tests that read it."""
    return BeautifulSoup(page.read_text(encoding='utf-8'), 'html.parser')


@functools.cache
def ids(page: Path) -> frozenset[str]:
    """The ids of a built page, the targets of its `#fragment` links, collected once: the site has
    thousands of such links, and a search of the whole page for each is slow."""
    return frozenset(tag['id'] for tag in soup(page).find_all(id=True))


def test_every_internal_link_resolves(mkdocs_site):
    """Every link between pages reaches a file and, with a `#fragment`, an id of it."""
    broken = []
    for page in mkdocs_site.rglob('*.html'):
        for a in soup(page).select('a[href]'):
            parts = urlsplit(a['href'])
            if parts.scheme or parts.netloc or not (parts.path or parts.fragment):
                continue
            # The 404 page links from the site's root, since it is served at any address.
            base = mkdocs_site if parts.path.startswith('/') else page.parent
            target = (base / unquote(parts.path).lstrip('/')).resolve() if parts.path else page
            if target.is_dir():
                target = target / 'index.html'
            if not target.is_file():
                broken.append(f'{page.relative_to(mkdocs_site)} -> {a["href"]}')
            elif parts.fragment and target.suffix == '.html' and parts.fragment not in ids(target):
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


def test_served_alone_nothing_is_missing(browser, server, mkdocs_site, tmp_path):  # noqa: F811
    """The MkDocs folder served on its own, read in the browser from its home page: no link,
    image or request fails, and every page of the navigation is reached."""
    reader = Reader(browser, server, {'width': 1400, 'height': 900}, tmp_path)
    try:
        reached, broken = crawl(reader, mkdocs_site)
    finally:
        reader.close()
    assert not broken, '\n'.join(broken)
    assert {'index.html', *ANNOTATED, 'experiments/gallery/index.html',
            *(f'experiments/gallery/{example.stem}.html' for example in EXAMPLES)} <= reached


# Every code block outside the code column, as the reader sees it: the element that holds its lines
# (Material's `code`, or the `pre` itself where the block is marked up as Sphinx marks it up), where
# it ends, the box it must stay in, its background and whether a long line scrolls inside it
DOC_CODE_BLOCKS = """() => [...document.querySelectorAll('article pre')]
    .filter(pre => !pre.closest('.annotate-code'))
    .map(pre => {
        const lines = pre.querySelector(':scope > code') || pre, style = getComputedStyle(lines);
        const box = pre.parentElement.closest('.annotate-doc, article').getBoundingClientRect();
        return {right: lines.getBoundingClientRect().right, limit: box.right, overflow: style.overflowX,
                fits: lines.scrollWidth <= lines.clientWidth + 1, background: style.backgroundColor,
                text: pre.textContent.slice(0, 40)};
    })"""


def test_code_blocks_in_the_docs_stay_in_their_column(browser, server, mkdocs_site, tmp_path):  # noqa: F811
    """At 1400 px every code block of the prose (a command beside the code column, a snippet on the
    home page) has a background and stays inside its column: a line too long for it scrolls inside
    the block rather than run over the code beside it."""
    reader = Reader(browser, server, {'width': 1400, 'height': 900}, tmp_path)
    wrong, seen = [], 0
    try:
        for page in sorted(mkdocs_site.rglob('*.html')):
            path = page.relative_to(mkdocs_site).as_posix()
            if path == '404.html':
                continue
            reader.open(path)
            for block in reader.page.evaluate(DOC_CODE_BLOCKS):
                seen += 1
                if block['right'] > block['limit'] + 1 or block['background'] == 'rgba(0, 0, 0, 0)' or \
                        not (block['fits'] or block['overflow'] in ('auto', 'scroll')):
                    wrong.append(f'{path}: {block}')
    finally:
        reader.close()
    assert seen > 20 and not wrong, '\n'.join(wrong)


@pytest.mark.parametrize('width', [1400, 700])
def test_inline_code_breaks_only_between_words(browser, server, mkdocs_site, tmp_path, width):  # noqa: F811
    """As on the Sphinx site (`test_site_look.py`): in the rows and in the pages' own text."""
    reader = Reader(browser, server, {'width': width, 'height': 900}, tmp_path)
    pages = [page.relative_to(mkdocs_site).as_posix() for page in sorted(mkdocs_site.rglob('*.html'))]
    try:
        check_inline_code_breaks_only_between_words(reader, [page for page in pages if page != '404.html'])
    finally:
        reader.close()


def test_every_annotated_page_offers_its_file_to_download(mkdocs_site):
    """Under the title of every annotated page, as on the Sphinx site: a link that downloads the file
    the page shows, byte for byte."""
    for page, source in ANNOTATED.items():
        html = BeautifulSoup((mkdocs_site / page).read_text(encoding='utf-8'), 'html.parser')
        link = html.select_one('article h1 + p.site-download a[download]')
        assert link is not None, page
        downloaded = (mkdocs_site / page).parent.joinpath(link['href']).resolve()
        assert downloaded.read_bytes() == source.read_bytes(), page


def test_dark_mode_follows_the_reader(browser, server, tmp_path):  # noqa: F811
    """A reader whose system prefers dark gets the dark scheme, and the switch brings light back."""
    reader = Reader(browser, server, {'width': 1400, 'height': 900}, tmp_path)
    background = "getComputedStyle(document.body).backgroundColor"
    try:
        reader.page.emulate_media(color_scheme='dark')
        reader.open('labml_gat/gatv2.html')
        dark = [int(part) for part in re.findall(r'\d+', reader.page.evaluate(background))[:3]]
        reader.page.click('label.md-header__button[for^="__palette"]:visible')
        light = [int(part) for part in re.findall(r'\d+', reader.page.evaluate(background))[:3]]
    finally:
        reader.close()
    assert max(dark) < 80 and min(light) > 200, (dark, light)


def test_search_finds_words_in_code_and_prose(browser, server, mkdocs_site, tmp_path):  # noqa: F811
    """The search finds a word on every page that shows it, in its prose or its code
    (`torch.einsum(` counts as `einsum`)."""
    word = 'einsum'
    pages = {page.relative_to(mkdocs_site).as_posix() for page in mkdocs_site.rglob('*.html')
             if re.search(rf'\b{word}\b', (soup(page).select_one('article') or soup(page)).get_text())}
    reader = Reader(browser, server, {'width': 1400, 'height': 900}, tmp_path)
    try:
        reader.open('index.html')
        reader.page.focus('input.md-search__input')
        reader.page.keyboard.type(word)
        reader.page.wait_for_function(
            "() => document.querySelectorAll('.md-search-result__item').length > 0", timeout=20000)
        found = {urlsplit(href).path.lstrip('/') for href in reader.page.evaluate(
            "() => [...document.querySelectorAll('.md-search-result__item > a')].map(a => a.href)")}
    finally:
        reader.close()
    # The dense chapter shows it in its prose and its code, the edge-list one in its code.
    assert {'labml_gat/gatv2.html', 'labml_gat/edges.html'} <= pages <= found, (pages, found)


@pytest.mark.parametrize('path', NO_WRAP + CHAPTERS)
def test_code_reads_without_wrapping_at_1400_px(browser, server, tmp_path, path):  # noqa: F811
    reader = Reader(browser, server, {'width': 1400, 'height': 900}, tmp_path)
    try:
        check_code_reads_at_1400_px(reader, path)
        assert reader.page.evaluate(EMPTY_CODE_BOX) <= EMPTY_CODE_BOX_LIMIT
    finally:
        reader.close()


@pytest.mark.parametrize('path', ['labml_gat/gatv2.html', 'labml_gat/lean.html'])
def test_wrapped_code_continues_one_indent_deeper(browser, server, tmp_path, path):  # noqa: F811
    reader = Reader(browser, server, {'width': 1000, 'height': 900}, tmp_path)
    try:
        check_wrapped_code_hangs(reader, path)
    finally:
        reader.close()


def build_readers_project(root: Path, theme: str, css: tuple = (), code: str = 'x = 1\n') -> BeautifulSoup:
    """A project of one page and one module, its `mkdocs.yml` the lines `sidebyside.markdown`
    gives a reader, with `theme` and the stylesheets `css` of `docs/`; built, and its page returned."""
    import shutil

    import sidebyside

    (root / 'docs').mkdir(exist_ok=True)
    (root / 'mypackage').mkdir()
    (root / 'mypackage' / 'model.py').write_text('"""\n# My model\n\nIt has $x^2$.\n"""\n\n# Doc\n' + code,
                                                encoding='utf-8')
    (root / 'docs' / 'index.md').write_text('```{annotated-source} mypackage/model.py\n```\n', encoding='utf-8')
    (root / 'mkdocs.yml').write_text('site_name: Mine\n' + theme + 'markdown_extensions:\n  - sidebyside.markdown\n'
                                     'extra_css:\n  - sidebyside.css\n' + ''.join(f'  - {name}\n' for name in css),
                                     encoding='utf-8')
    shutil.copy(sidebyside.STYLESHEET, root / 'docs')
    result = build_in(root)
    assert result.returncode == 0, result.stderr[-3000:]
    return BeautifulSoup((root / 'site' / 'index.html').read_text(encoding='utf-8'), 'html.parser')


def build_in(root: Path) -> subprocess.CompletedProcess:
    """`mkdocs build --strict` in the folder `root`, as a reader runs it."""
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'NO_MKDOCS_2_WARNING': '1'}
    return subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict'], cwd=root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_readers_project_with_the_documented_configuration(tmp_path):
    """The lines `sidebyside.markdown` gives a reader, in a project of one page and one module."""
    page = build_readers_project(tmp_path, 'theme:\n  name: material\n  font: false\n')
    assert page.select_one('h1#my-model') and page.select_one('.annotate-doc math')
    assert [int(n.get_text()) for n in page.select('.annotate-code .linenos')] == [8]
    assert page.select_one('link[href="sidebyside.css"]')


@pytest.mark.parametrize('page, named', [
    ('```{annotated-source} mypackage/missing.py\n```\n', 'missing.py'),
    ('```{annotated-source} mypackage/model.py\n:prefce: x.md\n```\n', 'prefce'),
    ('# Page\n\nBroken $\\notacommand{x}$.\n', 'line 3'),
    # MkDocs gives the page's Markdown without its front matter: the line is the file's
    ('---\ntitle: Page\n---\n\n# Page\n\nBroken $\\notacommand{x}$.\n', 'line 7:'),
], ids=['missing-file', 'misspelt-option', 'broken-formula', 'broken-formula-after-front-matter'])
def test_a_mistake_in_a_page_stops_the_build_without_a_traceback(tmp_path, page, named):
    """In a reader's project, a page that names a missing file, misspells an option or holds a
    formula math-core cannot render stops the build with an error that names the mistake (the
    formula's line in the page's file), and no traceback (the mistake is the page's, not the
    renderer's)."""
    build_readers_project(tmp_path, 'theme:\n  name: material\n  font: false\n')
    (tmp_path / 'docs' / 'index.md').write_text(page, encoding='utf-8')
    result = build_in(tmp_path)
    errors = [line for line in result.stderr.splitlines() if line.startswith('ERROR')]
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert any(named in line for line in errors), errors


def test_mkdocs_own_theme_as_documented_colours_the_code_offline(browser, tmp_path):  # noqa: F811
    """MkDocs' own theme with the two more lines `sidebyside.markdown` gives for it: no script from
    a CDN (the tab may load only from 127.0.0.1), and the code in Pygments' colours."""
    (tmp_path / 'docs').mkdir()
    colours = subprocess.run([sys.executable, '-m', 'pygments', '-S', 'default', '-f', 'html', '-a', '.highlight'],
                             capture_output=True, text=True, check=True).stdout
    (tmp_path / 'docs' / 'pygments.css').write_text(colours, encoding='utf-8')
    page = build_readers_project(tmp_path, 'theme:\n  name: mkdocs\n  highlightjs: false\n', ('pygments.css',),
                                 code='def f():\n    return 1\n')
    assert page.select_one('.annotate-code .k')
    with contextlib.contextmanager(serve)(tmp_path / 'site') as url:
        reader = Reader(browser, url, {'width': 1400, 'height': 900}, tmp_path)
        try:
            reader.open('index.html')
            keyword, plain = reader.page.evaluate("""() => ['.annotate-code .k', '.annotate-code pre']
                .map(selector => getComputedStyle(document.querySelector(selector)).color)""")
        finally:
            reader.close()
    assert keyword != plain


@pytest.mark.parametrize('theme', ['mkdocs', 'readthedocs'])
def test_mkdocs_own_themes_keep_inline_code_in_its_line_and_wrap_long_code(browser, tmp_path, theme):  # noqa: F811
    """MkDocs' own themes at 1400 px: inline code in the docs stays in the line of its sentence, and
    a code line too long for the code column wraps there, though `readthedocs` keeps the lines of a
    highlighted block on one line (`.rst-content div[class^=highlight] pre`)."""
    call = 'value = combine(' + ', '.join(f'argument_{number}' for number in range(20)) + ')'
    build_readers_project(tmp_path, f'theme:\n  name: {theme}\n  highlightjs: false\n',
                          code=f'# Run it with `--summary-json` and `--seeds 10`.\n{call}\n')
    with contextlib.contextmanager(serve)(tmp_path / 'site') as url:
        reader = Reader(browser, url, {'width': 1400, 'height': 900}, tmp_path)
        try:
            reader.open('index.html')
            displays, scrolled = reader.page.evaluate("""() => [
                [...document.querySelectorAll('.annotate-doc code')].map(c => getComputedStyle(c).display),
                Math.max(...[...document.querySelectorAll('.annotate-code pre')]
                              .map(pre => pre.scrollWidth - pre.clientWidth))]""")
        finally:
            reader.close()
    assert displays == ['inline', 'inline'] and scrolled <= 1, (displays, scrolled)


@pytest.mark.parametrize('page', ['index.html', 'labml_gat/gatv2.html'])
def test_usage_example_is_on_the_layer_page_and_the_home_page(mkdocs_site, page):
    """The section of `docs/labml_gat/use_it.md` right after the introduction: its example as written
    (`test_use_it.py` runs it) and a link to the repository named in pyproject.toml."""
    from test_use_it import code_text, project_url, usage_example

    article = soup(mkdocs_site / page).select_one('article')
    headings = [heading.get_text().strip('¶ ') for heading in article.select('h1, h2')]
    assert headings[1] == 'Use it', headings
    assert code_text(usage_example()) in [code_text(pre.get_text()) for pre in article.select('pre')]
    assert project_url('Repository') in [link['href'] for link in article.select('a[href]')]
