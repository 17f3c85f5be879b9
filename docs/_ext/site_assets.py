"""
Files this site makes from code, and what every page's `<head>` says about the page.

* The math font: a subset of Latin Modern Math (`docs/fonts/`, GUST Font License) as WOFF2, with the
  letters, symbols and stretchy delimiters that formulas about graphs and tensors use, so that a page
  with math downloads about a sixth of the full font. It is committed as
  `docs/_static/fonts/latinmodern-math.woff2`, where both the Sphinx and the MkDocs site find it;
  `python docs/_ext/site_assets.py` makes it again after a change of `MATH_UNICODES`, and a test
  checks that it matches them and that every character of every formula of the site is in them.
* The figures of `site_figures`, drawn with matplotlib when the site builds (`builder-inited`) into
  `docs/_static/figures/` (git-ignored), where Sphinx finds the images the pages show; they are
  served as `_static/figures/NAME.svg`, and drawn again only when `site_figures.py` changed.
* Code blocks whose long lines wrap with a hanging indent: every line of every highlighted block is
  a `<span class="line">` that knows its own indentation (`sidebyside.highlight`), and each `<pre>`
  can be reached with Tab, to scroll it with the arrow keys (`WrappedLinesFormatter`).
* A link to download the Python file an annotated page shows, under the page's title.
* A `<meta name="description">` on every page: the `summary` of the front matter of the module a page
  annotates, else the page's own `summary` or `description`, else its first paragraph.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx.util import logging

from sidebyside.highlight import LineFormatter

if TYPE_CHECKING:
    from sphinx.application import Sphinx

logger = logging.getLogger(__name__)

DOCS = Path(__file__).resolve().parent.parent
MATH_FONT = DOCS / 'fonts' / 'latinmodern-math.otf'
MATH_FONT_WOFF2 = 'fonts/latinmodern-math.woff2'
FIGURES = DOCS / '_static' / 'figures'
RECORDS = DOCS.parent / 'experiments' / 'results'

# Latin, Greek, the operators, arrows, relations and delimiters of everyday math, and the math
# italic, bold and script letters that MathML draws `<mi>x</mi>`, `\mathbf` and `\mathcal` with.
MATH_UNICODES = ','.join([
    'U+0020-007E', 'U+00A0', 'U+00AC', 'U+00B1', 'U+00B7', 'U+00D7', 'U+00F7', 'U+0131', 'U+0237',
    'U+02C6', 'U+02C7', 'U+02D8', 'U+02DC', 'U+0300-0308', 'U+030C', 'U+0338',
    'U+0391-03A9', 'U+03B1-03C9', 'U+03D1', 'U+03D5', 'U+03D6', 'U+03F0', 'U+03F1', 'U+03F5',
    'U+2016', 'U+2022', 'U+2026', 'U+2032-2037', 'U+2057', 'U+2061-2064', 'U+20D7',
    'U+2102', 'U+210B-2113', 'U+2115', 'U+2119-211D', 'U+2124', 'U+2128', 'U+212C', 'U+212D',
    'U+2130', 'U+2131', 'U+2133',
    'U+2190-2199', 'U+21A6', 'U+21D0-21D5',
    'U+2200-2219', 'U+221A', 'U+221D', 'U+221E', 'U+2220', 'U+2223-222E', 'U+2234', 'U+2235',
    'U+223C', 'U+2243', 'U+2245', 'U+2248', 'U+2260', 'U+2261', 'U+2264', 'U+2265', 'U+226A',
    'U+226B', 'U+2282-2287', 'U+228E', 'U+2295-2299', 'U+22A2-22A5', 'U+22C0-22C6', 'U+22C8',
    'U+22EE-22F1', 'U+2308-230B', 'U+23B4', 'U+23B5', 'U+23DC-23E1', 'U+27E8', 'U+27E9',
    'U+27F5-27FA', 'U+1D400-1D467', 'U+1D49C-1D4B5', 'U+1D6A4', 'U+1D6A5', 'U+1D6E2-1D71B',
    'U+FE00',
])


def math_codepoints() -> set[int]:
    """The code points of `MATH_UNICODES`."""
    points = set()
    for part in MATH_UNICODES.split(','):
        first, _, last = part.removeprefix('U+').partition('-')
        points.update(range(int(first, 16), int(last or first, 16) + 1))
    return points


def write_math_font(static: Path = DOCS / '_static') -> Path:
    """Writes the WOFF2 subset of the math font into `static/fonts/`."""
    target = static / MATH_FONT_WOFF2
    import logging as std_logging

    from fontTools import subset

    # Its report of every table it pruned is not news for the build's log.
    std_logging.getLogger('fontTools').setLevel(std_logging.WARNING)

    options = subset.Options()
    options.flavor = 'woff2'
    # The script-size glyphs (`ssty`) and dotless i and j (`dtls`) are the features math layout uses;
    # hinting is for low-resolution screens of another age, and flat charstrings compress better.
    options.layout_features = ['ssty', 'dtls']
    options.hinting = False
    options.desubroutinize = True
    options.drop_tables += ['FFTM']
    font = subset.load_font(str(MATH_FONT), options)
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes=math_codepoints())
    subsetter.subset(font)
    target.parent.mkdir(parents=True, exist_ok=True)
    subset.save_font(font, str(target), options)
    return target


def make_files(app: Sphinx) -> None:
    """On `builder-inited`: the figures, where the pages' Markdown finds them. Sphinx reads every
    image a page shows when it reads the page, and `_static/` is copied into the site."""
    if app.builder.format != 'html':
        return
    import site_figures

    site_figures.write_all(FIGURES)


# `summary: >` (folded) or `summary: text` in the front matter at the top of a module docstring.
_FRONT_MATTER = re.compile(r'^(?:[rRbBuU]*)("""|\'\'\')\s*\n---\n(.*?)\n---\n', re.S)


def front_matter_summary(source: str) -> str | None:
    """The `summary` of the front matter that opens a module's docstring, as one line, or None."""
    match = _FRONT_MATTER.match(source)
    if match is None:
        return None
    lines = match.group(2).splitlines()
    for index, line in enumerate(lines):
        key, _, value = line.partition(':')
        if key.strip() not in ('summary', 'description') or line.startswith(' '):
            continue
        value = value.strip()
        if value in ('>', '|', '>-', '|-', ''):
            folded = []
            for more in lines[index + 1:]:
                if more and not more.startswith(' '):
                    break
                folded.append(more.strip())
            value = ' '.join(part for part in folded if part)
        return value.strip('"\'') or None
    return None


def _annotated_source(app: Sphinx, pagename: str) -> Path | None:
    """The source file a page annotates, from its `annotated-source` directive."""
    page = Path(app.srcdir) / f'{pagename}.md'
    if not page.is_file():
        return None
    match = re.search(r'```\{annotated-source\}\s+(\S+)', page.read_text(encoding='utf-8'))
    return (page.parent / match.group(1)).resolve() if match else None


def _shorten(text: str, limit: int = 200) -> str:
    text = ' '.join(text.split())
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(' ', 1)[0].rstrip(',;:') + '…'


def page_description(app: Sphinx, pagename: str, doctree: nodes.document | None) -> str:
    """What a search result or a link preview should say about the page."""
    source = _annotated_source(app, pagename)
    if source is not None and source.is_file():
        summary = front_matter_summary(source.read_text(encoding='utf-8'))
        if summary:
            return _shorten(summary)
    metadata = app.env.metadata.get(pagename, {})
    for key in ('summary', 'description'):
        if metadata.get(key):
            return _shorten(str(metadata[key]))
    if doctree is not None:
        for paragraph in doctree.findall(nodes.paragraph):
            text = _plain_text(paragraph).strip()
            # Not sphinx-gallery's note on top of an example, "Go to the end to download...".
            in_note = any(isinstance(parent, nodes.Admonition)
                          or 'sphx-glr-download-link-note' in parent.get('classes', [])
                          for parent in _ancestors(paragraph) if isinstance(parent, nodes.Element))
            if len(text) > 40 and not in_note:
                return _shorten(text)
    title = {'genindex': 'Index', 'search': 'Search'}.get(pagename, pagename)
    return f'{title} of {app.config.html_title}: an annotated PyTorch implementation of GATv2.'


_GREEK = {name: chr(0x3B1 + index) for index, name in enumerate(
    'alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho '
    'varsigma sigma tau upsilon phi chi psi omega'.split())}


def _plain_text(node: nodes.Element) -> str:
    """The text of `node`, its formulas as plain letters (`\\alpha_{ij}` is `αij`)."""
    parts = []
    for child in node.findall(nodes.Text):
        text = child.astext()
        if isinstance(child.parent, nodes.math):
            text = re.sub(r'\\([A-Za-z]+)\s*', lambda match: _GREEK.get(match.group(1), ''), text)
            text = re.sub(r'[{}_^\\]', '', text)
        parts.append(text)
    return ''.join(parts)


def add_download_link(app: Sphinx, doctree: nodes.document) -> None:
    """On `doctree-read`, before Sphinx collects the page's downloads: under the title of a page
    that annotates a Python file, "Download gatv2.py", the file itself (copied into `_downloads/`)."""
    from sphinx import addnodes

    source = _annotated_source(app, app.env.docname)
    section = next(iter(doctree.findall(nodes.section)), None)
    if source is None or not source.is_file() or section is None:
        return
    target = os.path.relpath(source, Path(app.env.doc2path(app.env.docname)).parent)
    link = addnodes.download_reference('', '', nodes.literal(source.name, source.name),
                                       reftarget=target, refdoc=app.env.docname, refexplicit=True)
    section.insert(1, nodes.paragraph('', '', nodes.Text('Download '), link,
                                      nodes.Text(', the file this page shows, to read or copy whole.'),
                                      classes=['site-download']))


def _ancestors(node: nodes.Node):
    while node.parent is not None:
        node = node.parent
        yield node


def add_description(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """On `html-page-context`: the page's `<meta name="description">`."""
    if 'name="description"' in context.get('metatags', ''):
        return
    description = html.escape(page_description(app, pagename, doctree), quote=True)
    context['metatags'] = context.get('metatags', '') + f'\n<meta name="description" content="{description}">'


class WrappedLinesFormatter(LineFormatter):
    """The renderer's formatter (`sidebyside.highlight`: every line a `<span class="line">` with its
    hanging indent, numbered lines permalinks), for every code block of the site, and each `<pre>`
    can be reached with Tab, to scroll it with the arrow keys."""

    def _wrap_pre(self, inner):
        for kind, piece in super()._wrap_pre(inner):
            if piece.startswith('<pre'):
                piece = '<pre tabindex="0"' + piece.removeprefix('<pre')
            yield kind, piece


def use_wrapped_lines(app: Sphinx) -> None:
    """On `builder-inited`: the HTML builder highlights code with `WrappedLinesFormatter`."""
    highlighter = getattr(app.builder, 'highlighter', None)
    if highlighter is not None and getattr(highlighter, 'dest', None) == 'html':
        highlighter.formatter = WrappedLinesFormatter


def name_thumbnails(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """A gallery thumbnail says in its `alt` text which example it opens: the example's title
    (sphinx-gallery leaves it empty)."""
    for image in doctree.findall(nodes.image):
        match = re.search(r'images/thumb/sphx_glr_(\w+)_thumb\.', image.get('uri', ''))
        if match and not image.get('alt'):
            example = f'{Path(docname).parent.as_posix()}/{match[1]}'
            title = app.env.titles.get(example)
            image['alt'] = title.astext() if title else match[1]


def depend_on_records(app: Sphinx, doctree: nodes.document) -> None:
    """A page whose file leaves result markers for the build to fill in
    (`sidebyside_doc_filter`) is read again when a record changes."""
    from labml_gat.results import EMPTY_MARKERS

    for dependency in list(app.env.dependencies.get(app.env.docname, ())):
        path = Path(app.srcdir, dependency)
        if path.suffix == '.py' and path.is_file() \
                and EMPTY_MARKERS.search(path.read_text(encoding='utf-8')):
            for record in sorted(RECORDS.glob('*.json')):
                app.env.note_dependency(str(record))


def copy_records(app: Sphinx, exception: Exception | None) -> None:
    """The records the pages quote, `experiments/results/*.json`, at the same path in the site,
    so that a page can link the record its numbers come from."""
    if exception is not None or app.builder.format != 'html':
        return
    target = Path(app.outdir) / 'experiments' / 'results'
    target.mkdir(parents=True, exist_ok=True)
    for record in sorted(RECORDS.glob('*.json')):
        shutil.copyfile(record, target / record.name)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect('builder-inited', make_files)
    app.connect('builder-inited', use_wrapped_lines)
    app.connect('html-page-context', add_description)
    # Sphinx's own collector of downloads listens at the default priority, 500.
    app.connect('doctree-read', add_download_link, priority=400)
    app.add_js_file('site.js', loading_method='defer')
    app.connect('doctree-resolved', name_thumbnails)
    app.connect('build-finished', copy_records)
    app.connect('doctree-read', depend_on_records)
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': True}


if __name__ == '__main__':
    print(write_math_font())
