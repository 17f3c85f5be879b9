"""
How the site reads, checked in the built site and in Chromium: what a reader would notice first.

Each test guards against a defect that was once there: no navigation on wide screens, code running
out of its column, arrow keys that leave the page from inside a code block, a run banner or a
commit message in an example's output, gallery directives shown as text, a math font heavier than
the rest of the page, tiny primes, pages without a description, figures without a sharp version
and figures that glare in dark mode. The figures of the layer pages are drawn here too.

It uses the full site of `test_site.py` (set `LABML_GAT_SITE` to check a site already built) and the
browser of `test_browser.py`.
"""

import importlib.util
import json
import re
import subprocess
from pathlib import Path

import pytest
import torch
from bs4 import BeautifulSoup

from conftest import REPO
from test_browser import (CHROMIUM_ARGS, Reader, browser,  # noqa: F401  (fixtures)
                          check_inline_code_breaks_only_between_words, server)
from test_site import ANNOTATED, EXAMPLES, site, site_pages, soup  # noqa: F401  (fixtures)

# The slow tier (`pytest -m "not slow"` leaves it out): the built site in a browser (minutes)
pytestmark = pytest.mark.slow



def _load(name: str):
    """One of the site's extensions, `docs/_ext/NAME.py`, loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, REPO / 'docs' / '_ext' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


site_figures = _load('site_figures')
site_assets = _load('site_assets')
site_gallery = _load('site_gallery')

MATH_FONT_BUDGET = 150 * 1024
# labml prints, when a run starts, the experiment's name with the run's uuid and the state of the
# git repository with the last commit's message: `[clean]: "Cora scripts: ..."`.
RUN_BANNER = re.compile(r'\[(clean|dirty|modified)\]|\b[0-9a-f]{32}\b|Monitor experiment at')


def article_pages(site: Path) -> list[str]:
    """The pages with an article: every page but the search page and the index."""
    return [page for page in site_pages(site) if page not in ('search.html', 'genindex.html')]


@pytest.fixture(scope='module')
def reader(browser, server, tmp_path_factory):  # noqa: F811
    # These tests take no screenshots; a `Reader` wants a folder for them all the same.
    screenshots = tmp_path_factory.mktemp('screenshots')

    def open_reader(viewport: dict, dark: bool = False) -> Reader:
        reader = Reader(browser, server, viewport, screenshots)
        if dark:
            reader.page.emulate_media(color_scheme='dark')
        return reader
    return open_reader


# ## Navigation and code

@pytest.mark.parametrize('width', [1200, 1400, 1920])
def test_navigation_sidebar_is_visible_on_wide_screens(site, reader, width):
    tab = reader({'width': width, 'height': 900})
    hidden = []
    for path in site_pages(site):
        tab.open(path)
        box = tab.page.evaluate("""() => { const nav = document.querySelector('.sidebar-drawer');
            const box = nav.getBoundingClientRect();
            return {left: box.left, width: box.width, visible: getComputedStyle(nav).visibility}; }""")
        if box['left'] < 0 or box['width'] < 150 or box['visible'] != 'visible':
            hidden.append(f'{path}: {box}')
    tab.close()
    assert not hidden, '\n'.join(hidden)


def test_code_fits_its_column_at_1400_px(site, reader):
    """No code block of any page scrolls sideways at desktop width. The side-by-side code's long
    lines wrap (with a hanging indent: `test_browser.py`) rather than run out of the column; every
    other block (a command, a printed table) keeps its lines as a terminal shows them, so it is
    written to fit (`test_style.py`): a long command goes on over lines ending in `\\`, with its
    comment on the line above, and a block too wide for the narrow docs column beside code goes to
    a row that spans the page."""
    tab = reader({'width': 1400, 'height': 900})
    too_wide, wrapping = [], []
    for path in site_pages(site):
        tab.open(path)
        blocks = tab.page.evaluate("""() => [...document.querySelectorAll('article pre')].map(pre =>
            ({column: !!pre.closest('.annotate-code'), width: pre.clientWidth, content: pre.scrollWidth,
              wraps: getComputedStyle(pre).whiteSpace !== 'pre',
              line: pre.textContent.split('\\n').reduce((a, b) => a.length > b.length ? a : b, '')}))""")
        too_wide += [f"{path}: {block['content']} > {block['width']} px: {block['line'][:60]}"
                     for block in blocks if block['content'] > block['width'] + 1]
        wrapping += [f"{path}: {block['line'][:60]}" for block in blocks
                     if not block['column'] and block['wraps']]
    tab.close()
    assert not too_wide, '\n'.join(too_wide)
    assert not wrapping, '\n'.join(wrapping)


def test_example_code_and_output_fit_at_1400_px(site, reader):
    """An example's code and what it prints are read, not run in a terminal: at desktop width none
    of their lines hides behind a scroll bar (a table it prints is narrow enough to read whole, and
    a long one is shown to its last line)."""
    tab = reader({'width': 1400, 'height': 900})
    too_wide, too_tall = [], []
    for path in EXAMPLES:
        tab.open(path)
        blocks = tab.page.evaluate("""() => [...document.querySelectorAll(
            'article .highlight-Python pre, article .sphx-glr-script-out pre'
            )].map(pre => [pre.scrollWidth, pre.clientWidth, pre.scrollHeight, pre.clientHeight,
            pre.textContent.split('\\n').reduce((a, b) => a.length > b.length ? a : b, '')])""")
        too_wide += [f'{path}: {content} > {width} px: {line[:60]}'
                     for content, width, _, _, line in blocks if content > width + 1]
        too_tall += [f'{path}: {content} > {height} px high: {line[:60]}'
                     for _, _, content, height, line in blocks if content > height + 1]
    tab.close()
    assert not too_wide, '\n'.join(too_wide)
    assert not too_tall, '\n'.join(too_tall)


def test_the_benchmark_table_fits_at_1400_px(site, reader):
    """Every column of the usage page's tables, the benchmark's nine included, is in view at
    desktop width, without a scroll bar, and the benchmark's figure names are whole, each on one
    line (`scale_1000000` cut after its sixth digit would read as another figure)."""
    tab = reader({'width': 1400, 'height': 900})
    tab.open('usage.html')
    tables = tab.page.evaluate("""() => [...document.querySelectorAll('article table')].map(table =>
        [table.querySelectorAll('th').length, table.scrollWidth, table.parentElement.clientWidth])""")
    cut = tab.page.evaluate("""() => [...document.querySelectorAll(
        'article table:has(th:nth-child(9)) td:first-child')].filter(cell => {
            const words = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT), lines = new Set();
            while (words.nextNode()) {
                const range = document.createRange();
                range.selectNodeContents(words.currentNode);
                for (const rect of range.getClientRects()) lines.add(Math.round(rect.top));
            }
            return lines.size > 1;
        }).map(cell => cell.textContent)""")
    tab.close()
    assert max(columns for columns, _, _ in tables) == 9
    assert all(width <= room + 1 for _, width, room in tables), tables
    assert cut == [], cut


@pytest.mark.parametrize('width', [1400, 700])
def test_inline_code_breaks_only_between_words(site, reader, width):
    """At desktop width and on a narrow screen (`check_inline_code_breaks_only_between_words`)."""
    tab = reader({'width': width, 'height': 900})
    try:
        check_inline_code_breaks_only_between_words(tab, article_pages(site))
    finally:
        tab.close()


def test_code_blocks_are_reachable_and_arrow_keys_stay_on_the_page(site, reader):
    tab = reader({'width': 1400, 'height': 900})
    tab.open('labml_gat/gatv2.html')
    assert tab.page.evaluate("[...document.querySelectorAll('article pre')].every(pre => pre.tabIndex === 0)")
    start = tab.page.url
    # From inside a code block the arrow keys scroll the block...
    tab.page.focus('article pre')
    for key in ('ArrowRight', 'ArrowLeft', 'ArrowRight'):
        tab.page.keyboard.press(key)
    tab.page.wait_for_timeout(500)
    assert tab.page.url == start
    # ...elsewhere they still turn the page, so the check above would see a page change.
    tab.page.evaluate('document.activeElement.blur(); window.getSelection().removeAllRanges()')
    with tab.page.expect_navigation():
        tab.page.keyboard.press('ArrowRight')
    assert tab.page.url != start
    tab.close()


# ## Math

def test_math_font_weighs_under_budget_on_every_page(site, reader):
    tab = reader({'width': 1400, 'height': 900})
    heavy, loaded = [], 0
    for path in site_pages(site):
        tab.open(path)
        fonts = tab.page.evaluate("""() => performance.getEntriesByType('resource')
            .filter(entry => /\\.(woff2?|otf|ttf)(\\?|$)/.test(entry.name))
            .map(entry => ({name: entry.name, size: entry.encodedBodySize || entry.transferSize}))""")
        total = sum(font['size'] for font in fonts)
        loaded += bool(fonts)
        if total >= MATH_FONT_BUDGET:
            heavy.append(f'{path}: {total} bytes of fonts {fonts}')
    tab.close()
    assert loaded, 'no page loaded the math font'
    assert not heavy, '\n'.join(heavy)


def test_every_formula_character_is_in_the_math_font(site):
    points = site_assets.math_codepoints()
    missing = {}
    for page in site_pages(site):
        for math in soup(site, page).find_all('math'):
            for char in set(math.get_text()) - {'\n'}:
                if ord(char) not in points:
                    missing.setdefault(char, page)
    assert not missing, {f'U+{ord(char):04X} {char}': page for char, page in missing.items()}


def test_primes_are_not_superscripts(site):
    """`h'_i` as a prime on the line after h; as a superscript it shrinks to a speck."""
    primes = re.compile(r'<mo>[\u2032-\u2034\u2057]</mo></(msup|msubsup)>')
    found = [page for page in site_pages(site)
             if primes.search((site / page).read_text(encoding='utf-8'))]
    assert not found
    gatv2 = (site / 'labml_gat/gatv2.html').read_text(encoding='utf-8')
    assert '<mo>\u2032</mo>' in gatv2


def test_display_formulas_scroll_visibly_on_a_phone(site, reader):
    """A display formula wider than a phone scrolls in its own box, which shows shadows at its edges."""
    tab = reader({'width': 390, 'height': 844})
    hidden = []
    for path in ['index.html', *ANNOTATED]:
        tab.open(path)
        formulas = tab.page.evaluate("""() => [...document.querySelectorAll('article div.math')]
            .filter(box => box.scrollWidth > box.clientWidth + 1)
            .map(box => ({tex: box.textContent.slice(0, 40), overflow: getComputedStyle(box).overflowX,
                          shadow: getComputedStyle(box).backgroundImage.includes('radial-gradient')}))""")
        hidden += [f'{path}: {formula}' for formula in formulas
                   if formula['overflow'] not in ('auto', 'scroll') or not formula['shadow']]
        assert tab.fits(), path
    tab.close()
    assert not hidden, '\n'.join(hidden)


# ## Gallery

def _outputs(site: Path, page: str) -> str:
    return '\n'.join(block.get_text() for block in soup(site, page).select('.sphx-glr-script-out'))


@pytest.mark.parametrize('page', EXAMPLES)
def test_gallery_output_has_no_run_banner_or_commit_message(site, page):
    output = _outputs(site, page)
    banner = RUN_BANNER.search(output)
    assert banner is None, f'{page}: {output[max(0, banner.start() - 80):banner.end() + 80]}'
    last_commit = subprocess.run(['git', 'log', '-1', '--format=%s'], cwd=REPO, capture_output=True,
                                 text=True).stdout.strip()
    if last_commit:
        assert last_commit not in output


@pytest.mark.parametrize('page', EXAMPLES)
def test_no_gallery_directive_in_prose(site, page):
    article = soup(site, page).select_one('article')
    for code in article.select('pre, .highlight'):
        code.decompose()
    assert 'sphinx_gallery_' not in article.get_text()
    # ...nor in the notebook offered for download.
    for notebook in site.glob(f'_downloads/*/{Path(page).stem}.ipynb'):
        cells = json.loads(notebook.read_text(encoding='utf-8'))['cells']
        assert not any('sphinx_gallery_' in ''.join(cell['source']) for cell in cells
                       if cell['cell_type'] == 'markdown'), notebook


# ## Figures

@pytest.mark.parametrize('page', EXAMPLES)
def test_gallery_figures_have_a_2x_version(site, page):
    images = soup(site, page).select('article img.sphx-glr-single-img, article img.sphx-glr-multi-img')
    assert images, page
    for image in images:
        candidates = [candidate.split() for candidate in image.get('srcset', '').split(',')]
        densities = [float(parts[1].removesuffix('x')) for parts in candidates if len(parts) == 2]
        assert densities and max(densities) >= 2, (page, image)
        for parts in candidates:
            assert (site / page).parent.joinpath(parts[0]).resolve().is_file(), (page, parts[0])


# The smallest text a reader is asked to read, in CSS pixels on a desktop screen.
SMALLEST_TEXT_PX = 11
# Every image of an article, as the browser shows it: its source, the width it is shown at and its
# own width, and where a click on it leads.
SHOWN_IMAGES = """() => [...document.querySelectorAll('article img')]
    .filter(img => !img.closest('.sphx-glr-thumbcontainer'))
    .map(img => ({src: img.currentSrc, shown: img.getBoundingClientRect().width,
                  natural: img.naturalWidth, link: img.closest('a') && img.closest('a').href}))"""


def test_example_figures_are_readable_at_1400_px_and_every_figure_opens(site, reader):
    """At 1400 px, the smallest text of every figure of the examples is shown at 11 px or more (each
    PNG says how large its smallest text is, `site_gallery.scraper`), and a click on any figure of
    any page opens the image file itself, at its own size."""
    from PIL import Image
    from urllib.parse import unquote, urlsplit

    tab = reader({'width': 1400, 'height': 900})
    small, shut, measured = [], [], 0
    try:
        for page in article_pages(site):
            if not soup(site, page).select('article img'):
                continue
            tab.open(page)
            for image in tab.page.evaluate(SHOWN_IMAGES):
                path = unquote(urlsplit(image['src']).path).lstrip('/')
                opened = unquote(urlsplit(image['link'] or '').path).lstrip('/')
                if not image['link'] or not (site / opened).is_file():
                    shut.append(f'{page}: {path} does not open ({image["link"]})')
                if not path.endswith('.png'):
                    continue
                with Image.open(site / path) as png:
                    natural = float(png.text[site_gallery.SMALLEST_TEXT_KEY])
                text = natural * image['shown'] / image['natural']
                measured += 1
                if text < SMALLEST_TEXT_PX:
                    small.append(f'{page}: {path} shown at {image["shown"]:.0f} of '
                                 f'{image["natural"]} px, smallest text {text:.1f} px')
    finally:
        tab.close()
    assert measured >= 8
    assert not small, '\n'.join(small)
    assert not shut, '\n'.join(shut)


def test_figures_sit_on_a_light_card_in_dark_mode(site, reader):
    tab = reader({'width': 1400, 'height': 900}, dark=True)
    tab.open(EXAMPLES[0])
    colours = tab.page.evaluate("""() => [...document.querySelectorAll('article img')]
        .map(img => getComputedStyle(img).backgroundColor)""")
    tab.close()
    assert colours
    for colour in colours:
        red, green, blue = (int(part) for part in re.findall(r'\d+', colour)[:3])
        assert min(red, green, blue) > 200, colour


def test_layer_figures_are_referenced_and_shown(site):
    """Every figure a page links is one the build drew, and the page shows it."""
    linked = {}
    for page in site_pages(site):
        for image in soup(site, page).select('article img'):
            src = image.get('src', '')
            name = Path(src).stem
            if name in site_figures.FIGURES:
                linked[name] = page
                assert (site / page).parent.joinpath(src).resolve().is_file(), (page, src)
    assert 'pair_grid' in linked
    assert (site / '_static' / 'figures' / 'pair_grid.svg').is_file()


def test_layer_figures_are_drawn(tmp_path):
    written = site_figures.write_all(tmp_path)
    assert {path.stem for path in written} == set(site_figures.FIGURES)
    for path in written:
        svg = path.read_text(encoding='utf-8')
        assert svg.lstrip().startswith('<?xml') and '</svg>' in svg and len(svg) > 5000, path


def test_pair_grid_figure_numbers_nodes_as_the_rows_are():
    """The figure's row $iN + j$ holds $g_{r,i}$ and $g_{l,j}$, and the grid's cell $[i, j]$ their
    sum, with the nodes numbered from 0 as the rows are (`test_gatv2.py` checks the code)."""
    figure = site_figures.pair_grid()
    texts = [text.get_text() for text in figure.axes[0].texts]
    n = 3
    for row in range(n * n):
        i, j = divmod(row, n)
        at = texts.index(str(row))
        assert texts[at + 1:at + 4] == [f'$g_{{r,{i}}}$', '+', f'$g_{{l,{j}}}$'], row
        assert f'$g_{{r,{i}}} + g_{{l,{j}}}$' in texts
    assert {f'$i={i}$' for i in range(n)} | {f'$j={j}$' for j in range(n)} <= set(texts)


def test_receptive_field_figure_walks_as_the_experiment_does():
    """The figure's hops mark the same nodes as `labml_gat.fast.receptive_field`."""
    fast = pytest.importorskip('labml_gat.fast')
    generator = torch.Generator().manual_seed(0)
    n_nodes = 40
    edge_index = torch.randint(0, n_nodes, (2, 90), generator=generator)
    targets = torch.tensor([3, 17])
    field = fast.receptive_field(edge_index, targets, n_nodes, n_layers=2)
    hops = site_figures.receptive_field_layers(list(zip(*edge_index.tolist())), targets.tolist())
    assert set(hops) == set(field.nodes.tolist())


# ## Pages

def test_every_page_has_a_meta_description(site):
    missing = []
    for page in site_pages(site):
        meta = soup(site, page).find('meta', attrs={'name': 'description'})
        content = meta.get('content', '') if meta else ''
        if len(content) < 30 or content.startswith('Go to the end') or '\\' in content:
            missing.append(f'{page}: {content!r}')
    assert not missing, '\n'.join(missing)


def test_annotated_page_describes_itself_with_its_summary(site):
    meta = soup(site, 'labml_gat/gatv2.html').find('meta', attrs={'name': 'description'})
    assert meta['content'] == site_assets.front_matter_summary(
        (REPO / 'labml_gat' / 'gatv2.py').read_text(encoding='utf-8'))


def test_wrapped_lines_formatter_marks_every_line_with_its_indent():
    from pygments import highlight
    from pygments.lexers import PythonLexer

    code = 'def f():\n        return 1\n'
    out = highlight(code, PythonLexer(), site_assets.WrappedLinesFormatter(linenos='inline'))
    hangs = [int(value) for value in re.findall(r'--hang: (\d+)ch', out)]
    assert hangs == [2 + 0 + 4, 2 + 8 + 4]
    assert '<pre tabindex="0"' in out
    assert BeautifulSoup(out, 'html.parser').get_text().count('return 1') == 1


def test_committed_math_font_is_the_subset_of_its_unicodes():
    """`docs/_static/fonts/latinmodern-math.woff2` holds every character of `MATH_UNICODES`
    that Latin Modern Math has (`python docs/_ext/site_assets.py` makes it again), and is small."""
    from fontTools.ttLib import TTFont

    committed = REPO / 'docs' / '_static' / site_assets.MATH_FONT_WOFF2
    assert committed.stat().st_size < MATH_FONT_BUDGET
    full = set(TTFont(str(site_assets.MATH_FONT)).getBestCmap())
    subset = set(TTFont(str(committed)).getBestCmap())
    assert full & site_assets.math_codepoints() <= subset <= full


@pytest.mark.parametrize('page', ['labml_gat/gatv2.html', 'experiments/cora.html'])
def test_every_code_line_of_an_annotated_page_has_a_permalink(site, page):
    """`#L123` points at line 123 of the file, and the line's number is that link."""
    lines = soup(site, page).select('article .annotate-code pre > .line')
    assert lines
    for line in lines:
        number = line.select_one('.linenos a')
        assert number is not None and line['id'] == f'L{number.get_text().strip()}', line
        assert number['href'] == f"#{line['id']}"


def test_readable_primes_move_the_prime_onto_the_line():
    from sidebyside.mathml import readable_primes, to_mathml

    assert to_mathml("F'", False) == '<math><mrow><mi>F</mi><mo>\u2032</mo></mrow></math>'
    assert to_mathml("h'_i", False) == ('<math><msub><mrow><mi>h</mi><mo>\u2032</mo></mrow>'
                                        '<mi>i</mi></msub></math>')
    # A prime with more in its superscript, and MathML without primes, stay as they are.
    assert '<msup>' in to_mathml("W'^2", False)
    assert readable_primes('<math><mi>x</mi></math>') == '<math><mi>x</mi></math>'


@pytest.mark.parametrize('page', ['labml_gat/gatv2.html', 'labml_gat/gat.html', 'labml_gat/edges.html'])
def test_layer_page_offers_its_file_to_download(site, page):
    link = soup(site, page).select_one('article p.site-download a[download]')
    assert link is not None, page
    downloaded = (site / page).parent.joinpath(link['href']).resolve()
    source = REPO / 'labml_gat' / Path(page).with_suffix('.py').name
    assert downloaded.read_bytes() == source.read_bytes()


def smallest_label_pt(draw) -> float:
    """The smallest text of a figure, in points (SVG user units, 4/3 px at its drawn size)."""
    from matplotlib.text import Text

    plt = site_figures._pyplot()
    fig = draw()
    fig.canvas.draw()
    sizes = [text.get_fontsize() for text in fig.findobj(Text) if text.get_visible() and text.get_text().strip()]
    plt.close(fig)
    return min(sizes)


def test_layer_figures_have_labels_of_11_px_at_1400_px(site, reader):
    """The diagrams of the layer pages are shown large enough to read: their smallest label is
    at least 11 px on the screen (a picture in a long note gets the row that spans the page)."""
    smallest = {name: smallest_label_pt(draw) for name, draw in site_figures.FIGURES.items()}
    tab = reader({'width': 1400, 'height': 900})
    shown = {}
    for path in ANNOTATED:
        tab.open(path)
        for src, width, natural in tab.page.evaluate("""() => [...document.querySelectorAll('article img')]
                .map(img => [img.src, img.getBoundingClientRect().width, img.naturalWidth])"""):
            name = src.rsplit('/', 1)[-1].removesuffix('.svg')
            if name in smallest:
                shown[name] = smallest[name] * 4 / 3 * width / natural
    tab.close()
    assert set(shown) == set(smallest)
    assert all(size >= 11 for size in shown.values()), shown
