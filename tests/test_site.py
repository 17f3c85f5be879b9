"""
The Sphinx site, checked in its built HTML.

One full build (`sphinx-build -W --keep-going -b html docs OUT`, the command of `bash run.sh site`, which
runs every gallery example on the real Cora files) is made once per test session into a temporary
folder and shared with `test_browser.py`. It takes a few minutes; set `LABML_GAT_SITE` to the HTML folder
of a site built with that command to check it instead of building one.
The renderer and its math are tested alone, on small projects, in `test_sidebyside.py`.
"""

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup

from conftest import PLANETOID, REPO

# The slow tier (`pytest -m "not slow"` leaves it out): every test here builds or reads the Sphinx site (minutes)
pytestmark = pytest.mark.slow

DOCS = REPO / 'docs'
GALLERY_SOURCES = REPO / 'experiments' / 'gallery'
SITE_ENV = 'LABML_GAT_SITE'

# Page -> the source file it annotates; the pages mirror the repository's layout.
ANNOTATED = {
    'labml_gat/gatv2.html': 'labml_gat/gatv2.py',
    'labml_gat/gat.html': 'labml_gat/gat.py',
    'labml_gat/edges.html': 'labml_gat/edges.py',
    'labml_gat/datasets.html': 'labml_gat/datasets.py',
    'labml_gat/model.html': 'labml_gat/model.py',
    'labml_gat/fast.html': 'labml_gat/fast.py',
    'labml_gat/training.html': 'labml_gat/training.py',
    'labml_gat/seeds.html': 'labml_gat/seeds.py',
    'labml_gat/sampling.html': 'labml_gat/sampling.py',
    'labml_gat/distributed.html': 'labml_gat/distributed.py',
    'labml_gat/settings.html': 'labml_gat/settings.py',
    'labml_gat/results.html': 'labml_gat/results.py',
    'labml_gat/runs.html': 'labml_gat/runs.py',
    'labml_gat/lookup.html': 'labml_gat/lookup.py',
    'sidebyside/index.html': 'sidebyside/__init__.py',
    'experiments/cora.html': 'experiments/cora.py',
    'experiments/cora_minibatch.html': 'experiments/cora_minibatch.py',
    'experiments/synthetic_minibatch.html': 'experiments/synthetic_minibatch.py',
    'experiments/dictionary_lookup.html': 'experiments/dictionary_lookup.py',
    'experiments/benchmark.html': 'experiments/benchmark.py',
}
# Every example of the gallery folder has a page.
EXAMPLES = sorted(f'experiments/gallery/{path.stem}.html' for path in GALLERY_SOURCES.glob('plot_*.py'))
# Pages Sphinx adds by itself, outside the table of contents.
GENERATED = {'genindex.html', 'search.html'}


def sphinx_build(source: Path, out: Path, *options: str, data: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m sphinx -W --keep-going -b html SOURCE OUT/html`, the doctrees in `OUT/doctrees`,
    temporary files in `OUT/tmp`."""
    (out / 'tmp').mkdir(parents=True, exist_ok=True)
    env = {**os.environ, 'LABML_GAT_DATA': str(data or ''), 'TMPDIR': str(out / 'tmp')}
    command = [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html', '-d', str(out / 'doctrees'),
               *options, str(source), str(out / 'html')]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)


@functools.cache
def full_build(out: Path) -> Path:
    """Builds the whole site once per session (the fixture is imported into more than one module)."""
    result = sphinx_build(DOCS, out, data=PLANETOID)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f'the site does not build:\n{log[-6000:]}'
    assert 'WARNING' not in log and 'ERROR' not in log, log[-6000:]
    return out / 'html'


@pytest.fixture(scope='session')
def site(tmp_path_factory) -> Path:
    """The HTML folder of the full site."""
    if os.environ.get(SITE_ENV):
        return Path(os.environ[SITE_ENV])
    if PLANETOID is None:
        reason = 'Planetoid files not found: set LABML_GAT_DATA (the gallery trains on Cora)'
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    return full_build(tmp_path_factory.getbasetemp() / 'site')


def soup(site: Path, page: str) -> BeautifulSoup:
    return BeautifulSoup((site / page).read_text(encoding='utf-8'), 'html.parser')


def site_pages(site: Path) -> list[str]:
    """Every HTML page of the site, as a path relative to its root."""
    return sorted(path.relative_to(site).as_posix() for path in site.rglob('*.html')
                  if not path.relative_to(site).parts[0].startswith('_'))


def test_every_page_is_in_the_navigation(site):
    pages = set(site_pages(site))
    assert pages >= {'index.html', *ANNOTATED, 'experiments/gallery/index.html', *EXAMPLES}
    navigation = soup(site, 'index.html').select_one('.sidebar-tree')
    linked = {urlsplit(a['href']).path for a in navigation.select('a[href]')}
    assert pages - GENERATED - {'index.html'} <= linked


def test_home_page_links_everything_and_renders_its_formulas(site):
    page = soup(site, 'index.html')
    article = page.select_one('article')
    # Every display formula of the source is a block of MathML, none is lost
    source = (REPO / 'docs' / 'index.md').read_text(encoding='utf-8')
    n_display = len(re.findall(r'^\$\$.+?\$\$$', source, flags=re.MULTILINE | re.DOTALL))
    assert len(article.select('math[display="block"]')) == n_display
    links = {urlsplit(a['href']).path for a in article.select('a[href]')}
    assert {*ANNOTATED, 'experiments/gallery/index.html', *EXAMPLES} <= links
    # Each example is linked by its one name, the title of its page.
    for example in EXAMPLES:
        title = soup(site, example).select_one('article h1').get_text().rstrip('#¶ ')
        assert title in [a.get_text() for a in article.find_all('a', href=example)], example


def test_home_page_lists_the_pages_in_the_order_of_the_navigation(site):
    """The home page's table of pages reads in the order the navigation and its previous and next
    links walk through them."""
    page = soup(site, 'index.html')
    walk = [urlsplit(a['href']).path for a in page.select('.sidebar-tree a[href]')]
    table = page.select_one('article table')
    listed = [urlsplit(a['href']).path for a in table.select('tbody a[href]')]
    assert set(listed) <= set(walk), set(listed) - set(walk)
    assert listed == sorted(listed, key=walk.index)


@pytest.mark.parametrize('page', ANNOTATED)
def test_annotated_page_rows_docs_left_code_right(site, page):
    html = soup(site, page)
    rows = html.select('article .annotate-row')
    assert len(rows) > 5
    for row in rows:
        cells = row.find_all('div', recursive=False)
        assert [cell['class'][0] for cell in cells] == ['annotate-doc', 'annotate-code']
    # The code keeps the file's line numbers: each number shown is the line of the file next to it.
    source = (REPO / ANNOTATED[page]).read_text(encoding='utf-8').split('\n')
    shown = 0
    for block in html.select('.annotate-code pre'):
        for number in block.select('.linenos'):
            number.replace_with(f'\x00{number.get_text().strip()}\x01')
        for line, code in re.findall(r'\x00(\d+)\x01([^\n]*)', block.get_text()):
            assert code == source[int(line) - 1], (page, line)
            shown += 1
    assert shown > 10


@pytest.mark.parametrize('page', ANNOTATED)
def test_annotated_page_headings_are_in_its_table_of_contents(site, page):
    html = soup(site, page)
    source = (REPO / ANNOTATED[page]).read_text(encoding='utf-8')
    # The file's first heading is the page's title.
    title = re.search(r'^# (.+)$', source, re.MULTILINE).group(1)
    assert html.select_one('article h1').get_text().rstrip('#¶ ') == title
    headings = html.select('article section > :is(h2, h3, h4)')
    assert headings
    toc = {urlsplit(a['href']).fragment for a in html.select('.toc-tree a[href]')}
    for heading in headings:
        assert heading.parent['id'] in toc, heading.get_text()


def has_tex(source: Path) -> bool:
    """Whether a source file has `$...$` math on a line (a lone `$` is a shell variable)."""
    return re.search(r'\$[^$\n]+\$', source.read_text(encoding='utf-8')) is not None


@pytest.mark.parametrize('page', ['index.html', *ANNOTATED, *EXAMPLES])
def test_math_is_mathml_and_no_tex_is_left(site, page):
    html = soup(site, page)
    article = html.select_one('article')
    # A page has math where its source has some: `$` in an annotated file, `:math:` in an example.
    example = GALLERY_SOURCES / f'{Path(page).stem}.py'
    if page in ANNOTATED:
        has_math = has_tex(REPO / ANNOTATED[page])
    elif page in EXAMPLES:
        has_math = ':math:' in example.read_text(encoding='utf-8')
    else:
        has_math = True
    assert article.select('math') or not has_math, page
    assert not html.select('.math-error, merror, script[type^="math/tex"]')
    assert not [script for script in html.select('script') if 'mathjax' in str(script).lower()]
    for element in article.select('pre, code, .highlight, .sphx-glr-script-out, math'):
        element.decompose()
    prose = article.get_text(' ')
    for raw in ('$', r'\(', r'\[', r'\begin'):
        assert raw not in prose, (page, prose[max(0, prose.find(raw) - 80):prose.find(raw) + 80])
    assert not re.search(r'\\[A-Za-z]+', prose), (page, re.search(r'.{0,80}\\[A-Za-z]+.{0,80}', prose).group())


def test_display_math_is_block_mathml(site):
    html = soup(site, 'labml_gat/gatv2.html')
    # `\Big\Vert_{k=1}^{K}`, the concatenation of the heads, survives (latex2mathml drops it).
    blocks = [math.get_text() for math in html.select('div.math > math[display="block"]')]
    assert any('‖' in block and 'K' in block for block in blocks)
    assert all(math.parent.name == 'div' for math in html.select('math[display="block"]'))


def test_layer_pages_and_experiment_page_link_each_other(site):
    def links(page: str) -> set[str]:
        return {a['href'] for a in soup(site, page).select('article a[href]')}

    assert '../experiments/cora.html' in links('labml_gat/gatv2.html')
    assert {'../labml_gat/gatv2.html', '../labml_gat/gat.html', '../labml_gat/edges.html',
            '../labml_gat/datasets.html'} <= links('experiments/cora.html')
    assert {'gat.html'} <= links('labml_gat/gatv2.html') and {'gatv2.html'} <= links('labml_gat/gat.html')
    assert {'gatv2.html', 'gat.html'} <= links('labml_gat/edges.html')


def _links(site: Path, page: str, selector: str = 'article a[href]') -> set[str]:
    """The pages and files a page links to, as paths from the site's root; each must exist."""
    targets = set()
    for a in soup(site, page).select(selector):
        parts = urlsplit(a['href'])
        if parts.scheme or parts.netloc or not parts.path:
            continue
        target = (site / page).parent.joinpath(parts.path).resolve()
        assert target.is_file(), (page, a['href'])
        targets.add(target.relative_to(site.resolve()).as_posix())
    return targets


def test_layer_pages_link_to_their_evidence_and_the_examples_link_back(site):
    """The reader goes from a layer to the evidence in one click: the layer pages' own text links
    the DictionaryLookup example and the attention analysis, GATv2's also the Cora training, the
    benchmark's example and its appendix, the drop-in's the performance records, the lean layers'
    those and the million-node run; the Cora page its executed example and its record; the
    examples link back to the pages they run."""
    lookup, attention = 'experiments/gallery/plot_dictionary_lookup.html', 'experiments/gallery/plot_attention.html'
    for layer in ('labml_gat/gatv2.html', 'labml_gat/gat.html'):
        assert {lookup, attention} <= _links(site, layer, 'article .annotate-doc a[href]'), layer
    text = 'article .annotate-doc a[href]'
    assert {'experiments/gallery/plot_cora_training.html', 'experiments/gallery/plot_benchmark.html',
            'experiments/benchmark.html'} <= _links(site, 'labml_gat/gatv2.html', text)
    assert 'usage.html' in _links(site, 'labml_gat/gatv2_conv.html', text)
    assert {'usage.html', 'experiments/synthetic_minibatch.html'} <= \
        _links(site, 'labml_gat/lean.html', text)
    cora = _links(site, 'experiments/cora.html', 'article .annotate-doc a[href]')
    assert {'experiments/gallery/plot_cora_training.html', 'experiments/results/cora_seeds10.json'} <= cora
    assert 'experiments/cora.html' in _links(site, 'experiments/gallery/plot_cora_training.html')
    assert {'labml_gat/gat.html', 'labml_gat/gatv2.html'} <= _links(site, lookup)
    assert {'labml_gat/gatv2.html', 'experiments/cora.html'} <= _links(site, attention)


def test_cora_page_states_the_recorded_result(site):
    """The Cora page's result is the record's, filled in while the site is built: the experiment's
    source holds no copy of it."""
    from labml_gat import results

    record = results.load('cora_seeds10')['values']
    stated = f"{record['test_mean']:.2f} ± {record['test_std']:.2f} %"
    assert stated in soup(site, 'experiments/cora.html').select_one('article').get_text()
    assert stated not in (REPO / 'experiments' / 'cora.py').read_text(encoding='utf-8')
    assert json.loads((site / 'experiments' / 'results' / 'cora_seeds10.json').read_text())['values'] == record


@pytest.mark.parametrize('page', EXAMPLES)
def test_gallery_page_has_figures_and_downloads(site, page):
    html = soup(site, page)
    folder = (site / page).parent
    images = [img['src'] for img in html.select('article img.sphx-glr-single-img, article img.sphx-glr-multi-img')]
    assert images, page
    for src in images:
        assert (folder / src).is_file() and (folder / src).stat().st_size > 1000
    # The example ran: its output is on the page.
    assert html.select('.sphx-glr-script-out')
    downloads = {Path(a['href']).suffix: folder / a['href'] for a in html.select('a.download[href]')}
    assert {'.py', '.ipynb'} <= set(downloads)
    stem = Path(page).stem
    assert downloads['.py'].read_text(encoding='utf-8') == (GALLERY_SOURCES / f'{stem}.py').read_text(encoding='utf-8')
    notebook = json.loads(downloads['.ipynb'].read_text(encoding='utf-8'))
    assert [cell for cell in notebook['cells'] if cell['cell_type'] == 'code']


def test_gallery_index_lists_every_example(site):
    html = soup(site, 'experiments/gallery/index.html')
    linked = {urlsplit(a['href']).path for a in html.select('article a[href]')}
    assert {Path(page).name for page in EXAMPLES} <= linked


# Elements and attributes that load something when the page is shown.
ASSETS = {'script': 'src', 'link': 'href', 'img': 'src', 'iframe': 'src', 'source': 'src', 'video': 'src',
          'audio': 'src', 'embed': 'src', 'object': 'data', 'input': 'src'}
REMOTE = re.compile(r'^\s*(https?:)?//', re.IGNORECASE)
CSS_REMOTE = re.compile(r'(url\(\s*[\'"]?|@import\s+[\'"])\s*(https?:)?//', re.IGNORECASE)


def test_no_page_loads_anything_from_the_network(site):
    for page in site_pages(site):
        html = soup(site, page)
        for tag, attribute in ASSETS.items():
            for element in html.find_all(tag):
                # `<link rel="...">` to another page of the site is navigation; anything remote is not allowed.
                value = element.get(attribute) or ''
                assert not REMOTE.match(value), (page, str(element)[:200])
                assert not REMOTE.match(element.get('srcset') or ''), (page, str(element)[:200])
        for style in html.find_all('style'):
            assert not CSS_REMOTE.search(style.get_text()), page
    for stylesheet in (site / '_static').rglob('*.css'):
        assert not CSS_REMOTE.search(stylesheet.read_text(encoding='utf-8')), stylesheet


def test_generated_files_are_git_ignored():
    # `bash run.sh site` builds into docs/_build, screenshots/ is where a person may keep the browser
    # test's screenshots (LABML_GAT_SCREENSHOTS=screenshots), and sphinx-gallery writes the example pages beside the docs' sources, in docs/experiments/gallery.
    assert {'docs/_build/', 'screenshots/'} <= set((REPO / '.gitignore').read_text(encoding='utf-8').split())
    assert 'docs/experiments/gallery/' in (REPO / '.gitignore').read_text(encoding='utf-8').split()


def test_the_examples_leave_no_temporary_files(site):
    # The examples ran in this build (a fresh clone has no gallery to reuse) with their own
    # TMPDIR. What is left there is the libraries' own: torch's compiler cache and the modules
    # PyG generates for its layers
    if os.environ.get(SITE_ENV):
        pytest.skip(f'{SITE_ENV}: a site built elsewhere')
    left = [path.name for path in (site.parent / 'tmp').iterdir()]
    assert all(name.startswith(('torchinductor_', 'torch_geometric.')) for name in left), left


@pytest.mark.parametrize('example', ['plot_cora_training.py', 'plot_attention.py'])
def test_cora_examples_without_data_fail_with_the_loaders_message(tmp_path, example):
    """What a build without the Planetoid files shows: the loader's message, which says what to do."""
    env = {**os.environ, 'LABML_GAT_DATA': str(tmp_path), 'MPLBACKEND': 'Agg'}
    result = subprocess.run([sys.executable, example], cwd=GALLERY_SOURCES, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith('labml_gat.datasets.MissingDataError: Planetoid \'cora\': missing in')
    assert 'LABML_GAT_DATA' in message


def test_without_data_the_site_builds_and_names_the_skipped_examples(tmp_path):
    """
    A build without the Planetoid files ends without a traceback: one line says which examples
    were not run and how to get the files, and their pages say they were not run.
    (The examples are not run at all here, to keep it quick; which ones would run is checked in
    `test_gallery_runs.py`.)
    """
    empty = tmp_path / 'no-data'
    empty.mkdir()
    result = sphinx_build(DOCS, tmp_path / 'out', '-D', 'sphinx_gallery_conf.plot_gallery=0', data=empty)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-6000:]
    assert 'WARNING' not in log and 'Extension error' not in log and 'Traceback' not in log, log[-6000:]
    [message] = {line for line in log.splitlines() if line.startswith('Planetoid files not found')}
    assert str(empty) in message and 'LABML_GAT_DATA' in message and 'ind.cora.*' in message
    skipped = {Path(name).name for name in re.findall(r'plot_\w+\.py', message)}
    assert skipped == {'plot_cora_training.py', 'plot_attention.py'}
    for page in EXAMPLES:
        text = (tmp_path / 'out' / 'html' / page).read_text(encoding='utf-8')
        assert ('was not run in this build' in text) == (Path(page).stem + '.py' in skipped), page


@pytest.mark.parametrize('page', ['index.html', 'labml_gat/gatv2.html'])
def test_usage_example_is_on_the_layer_page_and_the_home_page(site, page):
    """The section of `docs/labml_gat/use_it.md` right after the introduction: its example as written
    (`test_use_it.py` runs it) and a link to the repository named in pyproject.toml."""
    from test_use_it import code_text, project_url, usage_example

    article = soup(site, page).select_one('article')
    headings = [heading.get_text().strip('¶ ') for heading in article.select('h1, h2')]
    assert headings[1] == 'Use it', headings
    assert code_text(usage_example()) in [code_text(pre.get_text()) for pre in article.select('pre')]
    assert project_url('Repository') in [link['href'] for link in article.select('a[href]')]
