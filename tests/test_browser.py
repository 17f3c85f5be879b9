"""
The site in a real browser: headless Chromium (Debian's `/usr/bin/chromium`, driven by Playwright)
reads the full site of `test_site.py` from a server on 127.0.0.1, as a reader would.

Full-page screenshots of every page, at desktop and at phone width, are saved for a person to
look at: in the folder named by `LABML_GAT_SCREENSHOTS`, else in the session's temporary folder
(pytest keeps the folders of its last three sessions); never in the repository. Without Chromium or Playwright these tests are skipped, except in CI
(`CI` set), where they fail.
"""

import functools
import os
import re
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from conftest import REPO
from test_site import ANNOTATED, EXAMPLES, GENERATED, has_tex, site, site_pages  # noqa: F401  (`site`: the shared fixture)

# The slow tier (`pytest -m "not slow"` leaves it out): the built site in a browser (minutes)
pytestmark = pytest.mark.slow

CHROMIUM = shutil.which('chromium') or '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']
SCREENSHOTS_ENV = 'LABML_GAT_SCREENSHOTS'
DESKTOP = {'width': 1400, 'height': 900}
PHONE = {'width': 390, 'height': 844}


def _missing_browser() -> str | None:
    """Why the browser cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'playwright is not installed (pip install playwright; never `playwright install`)'
    if not Path(CHROMIUM).is_file():
        return f'no Chromium at {CHROMIUM} (apt-get install chromium)'
    return None


def serve(folder: Path) -> Iterator[str]:
    """`http://127.0.0.1:PORT/`, serving `folder` from a free port, quietly, until closed."""

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    httpd = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}/'
    httpd.shutdown()
    thread.join()


@pytest.fixture(scope='module')
def server(site) -> Iterator[str]:
    """The built Sphinx site, served."""
    yield from serve(site)


@pytest.fixture(scope='session')
def screenshots(tmp_path_factory) -> Path:
    """Where the screenshots go: `LABML_GAT_SCREENSHOTS`, else a temporary folder."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    return Path(folder) if folder else tmp_path_factory.mktemp('screenshots')


def test_screenshots_are_kept_outside_the_repository(screenshots):
    assert REPO.resolve() not in screenshots.resolve().parents


@pytest.fixture(scope='module')
def browser():
    reason = _missing_browser()
    if reason:
        if os.environ.get('CI'):
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Reader:
    """A browser tab that may load only from 127.0.0.1 and remembers what went wrong."""

    def __init__(self, browser, server: str, viewport: dict, screenshots: Path):
        self.server = server
        self.screenshots = screenshots
        self.context = browser.new_context(viewport=viewport)
        self.blocked: list[str] = []
        self.errors: list[str] = []
        self.context.route('**/*', self._route)
        self.page = self.context.new_page()
        self.page.on('pageerror', lambda error: self.errors.append(str(error)))
        # A request cut short because the tab moved on to the next page (the icon, say) is not a
        # failure: what the server refuses is caught below.
        self.page.on('requestfailed', lambda request: request.failure != 'net::ERR_ABORTED' and
                     self.errors.append(f'{request.url}: {request.failure}'))
        # Anything the page asks for and does not get (a stylesheet, a figure, the icon) is a defect.
        self.page.on('response', lambda response: response.status >= 400 and self.errors.append(
            f'{response.url}: {response.status}'))

    def _route(self, route) -> None:
        host = urlsplit(route.request.url).hostname
        if host == '127.0.0.1':
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def open(self, path: str) -> None:
        response = self.page.goto(self.server + path, wait_until='load')
        assert response is not None and response.ok, path
        # The math font must have loaded before anything is measured.
        self.page.evaluate('document.fonts.ready.then(() => true)')

    def fits(self) -> bool:
        """Nothing is wider than the window: long lines of code and math scroll inside their own box."""
        return self.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth')

    def screenshot(self, path: str, width: str) -> None:
        name = path.removesuffix('.html').replace('/', '.')
        self.screenshots.joinpath(width).mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=self.screenshots / width / f'{name}.png', full_page=True)

    def close(self) -> None:
        self.context.close()
        assert not self.blocked, f'requests that left 127.0.0.1: {self.blocked}'
        assert not self.errors, f'errors in the pages: {self.errors}'


@pytest.fixture
def desktop(browser, server, screenshots) -> Iterator[Reader]:
    reader = Reader(browser, server, DESKTOP, screenshots)
    yield reader
    reader.close()


@pytest.fixture
def phone(browser, server, screenshots) -> Iterator[Reader]:
    reader = Reader(browser, server, PHONE, screenshots)
    yield reader
    reader.close()


# The boxes of the docs and code cells of every row that has both.
ROW_BOXES = """() => [...document.querySelectorAll('article .annotate-row')]
    .filter(row => !row.matches('.annotate-no-doc, .annotate-no-code'))
    .map(row => [row.querySelector(':scope > .annotate-doc'), row.querySelector(':scope > .annotate-code')]
        .map(cell => { const box = cell.getBoundingClientRect();
                       return {left: box.left, right: box.right, top: box.top, bottom: box.bottom}; }))"""


@pytest.mark.parametrize('path', ANNOTATED)
def test_docs_left_of_code_on_desktop(desktop, path):
    desktop.open(path)
    rows = desktop.page.evaluate(ROW_BOXES)
    assert len(rows) > 5
    for doc, code in rows:
        assert doc['right'] <= code['left'] and abs(doc['top'] - code['top']) < 1, (doc, code)
        # The code column is the wider one, and neither is squeezed.
        assert code['right'] - code['left'] > doc['right'] - doc['left'] > 300, (doc, code)
    assert desktop.fits()
    desktop.screenshot(path, 'desktop')


# Every line of code in the rows, as the reader sees it: the left edge of each screen line it takes
# (more than one when it wraps) and where its code starts (after its number and indentation).
CODE_LINES = r"""() => [...document.querySelectorAll('article .annotate-code pre')].flatMap(pre => {
    const pieces = [[]];
    const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT);
    for (let node; (node = walker.nextNode());) {
        let start = 0;
        for (let i = 0; i <= node.length; i++) {
            if (i === node.length || node.data[i] === '\n') {
                if (i > start) pieces[pieces.length - 1].push([node, start, i]);
                if (i < node.length) pieces.push([]);
                start = i + 1;
            }
        }
    }
    return pieces.filter(line => line.some(([node, a, b]) => node.data.slice(a, b).trim())).map(line => {
        const boxes = [];
        let codeLeft = null;
        for (const [node, a, b] of line) {
            const range = document.createRange(); range.setStart(node, a); range.setEnd(node, b);
            boxes.push(...[...range.getClientRects()].filter(box => box.width > 0));
            const first = node.data.slice(a, b).search(/\S/);
            if (codeLeft === null && first >= 0 && !node.parentElement.closest('.linenos')) {
                range.setStart(node, a + first); range.setEnd(node, a + first + 1);
                codeLeft = range.getBoundingClientRect().left;
            }
        }
        boxes.sort((p, q) => p.top - q.top);
        // Boxes less than half a line apart are on one screen line (a line number sits lower).
        const rows = [];
        for (const box of boxes) {
            const row = rows[rows.length - 1];
            if (row && box.top - row.top < box.height / 2) row.left = Math.min(row.left, box.left);
            else rows.push({top: box.top, left: box.left});
        }
        return {text: line.map(([node, a, b]) => node.data.slice(a, b)).join(''), codeLeft,
                lefts: rows.map(row => row.left)};
    });
})"""
# Pages whose code must not wrap at 1400 px (the tutorial, and the drop-in file researchers copy), and
# pages where a few lines may.
TUTORIAL = ['labml_gat/gatv2.html', 'labml_gat/gat.html', 'labml_gat/model.html', 'experiments/cora.html']
NO_WRAP = TUTORIAL + ['labml_gat/gatv2_conv.html']
CHAPTERS = ['labml_gat/lean.html', 'labml_gat/fast.html', 'labml_gat/sampling.html']


def wrapped_code_lines(reader: 'Reader', path: str) -> tuple[list[dict], int]:
    """The code lines of a page that take more than one screen line, and the number of code lines."""
    reader.open(path)
    lines = reader.page.evaluate(CODE_LINES)
    assert lines, f'{path}: no code lines'
    return [line for line in lines if len(line['lefts']) > 1], len(lines)


def check_code_reads_at_1400_px(reader: 'Reader', path: str) -> None:
    """No code line of the tutorial or the drop-in wraps at 1400 px, and at most 5 % of a chapter's."""
    wrapped, total = wrapped_code_lines(reader, path)
    allowed = 0 if path in NO_WRAP else 0.05 * total
    assert len(wrapped) <= allowed, (path, [line['text'] for line in wrapped])


def check_wrapped_code_hangs(reader: 'Reader', path: str) -> None:
    """Where a line must wrap (here in a narrow window), each continuation starts to the right of
    where the line's code starts: one indent deeper, never back at the left edge."""
    wrapped, _ = wrapped_code_lines(reader, path)
    assert wrapped, f'{path}: no line wraps at this width, so this check sees nothing'
    char = reader.page.evaluate("""() => { const span = document.createElement('span');
        span.textContent = 'x'.repeat(100); document.querySelector('article .annotate-code pre').append(span);
        const width = span.getBoundingClientRect().width / 100; span.remove(); return width; }""")
    for line in wrapped:
        assert all(left >= line['codeLeft'] + 2 * char for left in line['lefts'][1:]), (path, line)


# Inline code of the article (`code` outside `pre`), however it is marked up, as the reader sees it:
# the words of it that a line break cuts in two (their characters stand on more than one screen
# line), and the code whose text runs out of the block (paragraph, list item) that holds it.
INLINE_CODE = r"""() => {
    const block = e => { while (getComputedStyle(e).display === 'inline') e = e.parentElement;
                         return e; };
    const split = [], outside = [];
    for (const code of [...document.querySelectorAll('article code')].filter(c => !c.closest('pre'))) {
        const words = [[]], walker = document.createTreeWalker(code, NodeFilter.SHOW_TEXT);
        let right = -Infinity;
        for (let node; (node = walker.nextNode());) {
            for (let i = 0; i < node.length; i++) {
                if (/\s/.test(node.data[i])) { words.push([]); continue; }
                const range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
                const box = range.getBoundingClientRect();
                words[words.length - 1].push([node.data[i], Math.round(box.top)]);
                right = Math.max(right, box.right);
            }
        }
        split.push(...words.filter(word => new Set(word.map(([, top]) => top)).size > 1)
                           .map(word => word.map(([character]) => character).join('')));
        if (right > block(code.parentElement).getBoundingClientRect().right + 1)
            outside.push(code.textContent);
    }
    return [split, outside];
}"""


def check_inline_code_breaks_only_between_words(reader: 'Reader', pages: list[str]) -> None:
    """A flag or a name in the text (`--summary-json`, `annotate-no-code`) stays on one line: cut
    after its dashes it would read as two words. Kept whole, none runs out of its paragraph."""
    split, outside = [], []
    for path in pages:
        reader.open(path)
        words, codes = reader.page.evaluate(INLINE_CODE)
        split += [f'{path}: {word}' for word in words]
        outside += [f'{path}: {code}' for code in codes]
    assert not split, '\n'.join(split)
    assert not outside, '\n'.join(outside)


# The tallest empty space under the code of a row beside its note.
EMPTY_CODE_BOX = """() => Math.max(0, ...[...document.querySelectorAll('article .annotate-row:not(.annotate-no-code)')]
    .map(row => row.querySelector(':scope > .annotate-code'))
    .filter(code => code.querySelector('pre') && getComputedStyle(code).display !== 'none')
    .map(code => code.getBoundingClientRect().bottom - code.querySelector('pre').getBoundingClientRect().bottom))"""
# A row may be this much taller than its code (a few lines of a note that runs on).
EMPTY_CODE_BOX_LIMIT = 200


@pytest.mark.parametrize('path', NO_WRAP + CHAPTERS)
def test_code_reads_without_wrapping_at_1400_px(desktop, path):
    check_code_reads_at_1400_px(desktop, path)


@pytest.mark.parametrize('path', ['labml_gat/gatv2.html', 'labml_gat/lean.html'])
def test_wrapped_code_continues_one_indent_deeper(browser, server, screenshots, path):
    reader = Reader(browser, server, {'width': 1000, 'height': 900}, screenshots)
    try:
        check_wrapped_code_hangs(reader, path)
    finally:
        reader.close()


@pytest.mark.parametrize('path', ANNOTATED)
def test_no_row_is_mostly_an_empty_code_box(desktop, path):
    """A long note beside short code spans the page instead (`sidebyside.layout`)."""
    desktop.open(path)
    assert desktop.page.evaluate(EMPTY_CODE_BOX) <= EMPTY_CODE_BOX_LIMIT


@pytest.mark.parametrize('path', ANNOTATED)
def test_docs_above_code_on_a_phone(phone, path):
    phone.open(path)
    rows = phone.page.evaluate(ROW_BOXES)
    assert len(rows) > 5
    for doc, code in rows:
        assert doc['bottom'] <= code['top'] + 1 and abs(doc['left'] - code['left']) < 1, (doc, code)
    assert phone.fits()
    phone.screenshot(path, 'phone')


# Every formula in the article: its size, and whether MathML flagged an error.
FORMULAS = """() => [...document.querySelectorAll('article math')].map(math => {
    const box = math.getBoundingClientRect();
    return {tex: math.textContent, width: box.width, height: box.height, error: !!math.querySelector('merror')};
})"""
# The text a reader sees outside code and formulas.
PROSE = """() => { const article = document.querySelector('article').cloneNode(true);
    article.querySelectorAll('pre, code, math, .highlight, .sphx-glr-script-out').forEach(e => e.remove());
    return article.textContent; }"""


@pytest.mark.parametrize('path', ['index.html', *ANNOTATED, *EXAMPLES])
def test_every_formula_is_rendered(desktop, path):
    desktop.open(path)
    formulas = desktop.page.evaluate(FORMULAS)
    # Pages whose source has no math (some appendix pages) have no formula to check
    assert formulas or path in EXAMPLES or (path in ANNOTATED and not has_tex(REPO / ANNOTATED[path]))
    for formula in formulas:
        assert formula['width'] > 0 and formula['height'] > 0 and not formula['error'], formula
    prose = desktop.page.evaluate(PROSE)
    tex = re.search(r'.{0,60}(\$|\\[A-Za-z]+|\\\(|\\\[).{0,60}', prose)
    assert tex is None, tex.group()
    if not formulas:
        return
    # The site's math font has loaded (this system has no math font of its own).
    assert desktop.page.evaluate("[...document.fonts].some(font => font.family.includes('Site Math') "
                                 "&& font.status === 'loaded')")


@pytest.mark.parametrize('path', ['index.html', 'experiments/gallery/index.html', *EXAMPLES])
def test_other_pages_at_both_widths(desktop, phone, path):
    for reader, width in ((desktop, 'desktop'), (phone, 'phone')):
        reader.open(path)
        images = reader.page.evaluate("() => [...document.querySelectorAll('article img')]"
                                      ".map(img => img.complete && img.naturalWidth)")
        assert all(images) and reader.fits(), path
        reader.screenshot(path, width)


def _ids(file: Path) -> frozenset[str]:
    """The ids (and old-style anchor names) of an HTML file, the targets of `#fragment` links: read
    once per version of the file, not once per link."""
    stat = file.stat()
    return _ids_of(file, stat.st_mtime_ns, stat.st_size)


@functools.cache
def _ids_of(file: Path, mtime_ns: int, size: int) -> frozenset[str]:
    return frozenset(re.findall(r'\s(?:id|name)="([^"]*)"', file.read_text(encoding='utf-8')))


def crawl(reader: Reader, folder: Path) -> tuple[set[str], list[str]]:
    """
    Reads a site served from `folder` in the browser, from its home page through every link the
    browser sees (those a script adds included): each link's target file exists, each `#fragment`
    is an id of its page, and every image of a page loaded (`Reader` also notes any request the
    server refused). Returns the pages reached, relative to the root, and what was broken.
    """
    server = reader.server
    start = server + 'index.html'
    queue, seen, broken = [start], {start}, []
    while queue:
        url = queue.pop()
        reader.open(url.removeprefix(server))
        images = reader.page.evaluate("() => [...document.querySelectorAll('img')]"
                                      ".filter(img => !img.complete || !img.naturalWidth).map(img => img.src)")
        broken += [f'{url} -> {image}: not loaded' for image in images]
        for link in reader.page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)"):
            if not link.startswith(server):
                continue
            parts = urlsplit(link)
            path = unquote(parts.path).lstrip('/') or 'index.html'
            if path.endswith('/'):
                path += 'index.html'
            target = folder / path
            if not target.is_file():
                broken.append(f'{url} -> {link}: no file')
                continue
            if parts.fragment and target.suffix == '.html' and unquote(parts.fragment) not in _ids(target):
                broken.append(f'{url} -> {link}: no id')
            page = server + path
            if target.suffix == '.html' and page not in seen:
                seen.add(page)
                queue.append(page)
    return {url.removeprefix(server) for url in seen}, broken


def test_every_internal_link_resolves(desktop, site):
    """The site served on its own: no link, image or request of any page fails, and every page
    of the site is reached from the home page."""
    reached, broken = crawl(desktop, site)
    assert not broken, '\n'.join(broken)
    assert set(site_pages(site)) - GENERATED <= reached
