r"""
# The Sphinx extension

```python
extensions = ['sidebyside.sphinx']
```

gives a Sphinx project two things:

* the `annotated-source` directive: a MyST page that holds only

  ````md
  ```{annotated-source} ../labml_gat/gatv2.py
  ```
  ````

  (or, in reStructuredText, `.. annotated-source:: ../labml_gat/gatv2.py`) becomes the file's page:
  its first heading the page's title, the others sections of the page, in its table of contents;
* math as MathML, written when the pages are built by `sidebyside.mathml`: the HTML math renderer
  `mathml`, chosen unless `conf.py` names another one;
* code lines that wrap one indent deeper than they start (`sidebyside.highlight`).

The stylesheet `sidebyside.css` is added to every page. The extension loads `myst_parser`,
whose configuration (`myst_enable_extensions`: `dollarmath`, `amsmath`, ...) it uses for the docs.
An incremental build reads every page again when the renderer's own code changed
(`renderer_digest`).
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.errors import ConfigError
from sphinx.locale import _
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.math import get_node_equation_number

from . import (CSS_FILE, STYLESHEET, Heading, Section, doc_filter_function,
               filter_docs, heading_anchor, layout, parse_file, preface_items,
               row_classes, with_preface)
from .mathml import CLOSING, OPENING, LatexError, display_tex, to_mathml

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.config import Config
    from sphinx.environment import BuildEnvironment
    from sphinx.writers.html5 import HTML5Translator

logger = logging.getLogger(__name__)


def setup(app: Sphinx) -> dict[str, Any]:
    """
    ## Setup

    The directive, the math renderer and its post-transform, and the stylesheet, which is a static file
    of this package: its folder joins `html_static_path`. Formulas that fail are counted in the process
    that writes the pages, so the pages are written in one process.

    Sphinx reads a page again when its source or a file it depends on changed, or when a
    configuration value marked `'env'` differs from the last build's. The renderer's code is none of
    these, so the digest of its files is such a value, `sidebyside_renderer` (set by the extension,
    not by `conf.py`): after a change to the renderer an incremental build reads every page again
    ("The configuration has changed") and writes it with the new layout, as a fresh build would.
    Every page, not only the annotated ones: the math renderer and the code lines are the renderer's
    on all of them.
    """
    app.setup_extension('myst_parser')
    app.add_directive('annotated-source', AnnotatedSource)
    app.add_html_math_renderer('mathml', (visit_math, None), (visit_math_block, None))
    app.add_post_transform(GlueMathPunctuation)
    app.add_css_file(CSS_FILE)
    app.add_config_value('sidebyside_doc_filter', None, 'env', [str])
    app.add_config_value('sidebyside_renderer', renderer_digest(), 'env', [str])
    app.connect('config-inited', _configure)
    app.connect('builder-inited', _use_line_formatter)
    app.connect('builder-inited', _count_math_errors)
    app.connect('build-finished', _fail_on_math_errors)
    return {'version': '2', 'parallel_read_safe': True, 'parallel_write_safe': False}


def renderer_digest() -> str:
    """The SHA-256 of the package's Python files, names and contents: it changes with any change
    to the code that makes the pages (the stylesheet is copied by every build anyway)."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).resolve().parent.glob('*.py')):
        code = path.read_bytes()
        digest.update(f'{path.name}\0{len(code)}\0'.encode() + code)
    return digest.hexdigest()


def _configure(app: Sphinx, config: Config) -> None:
    """MathML is the math renderer unless the project chose one; the stylesheet's folder is static;
    the filter of the docs, if any, is one that can be called (else a configuration error)."""
    if config.sidebyside_doc_filter:
        try:
            doc_filter_function(config.sidebyside_doc_filter)
        except ValueError as error:
            raise ConfigError(f'sidebyside_doc_filter: {error}') from None
    if not config.html_math_renderer:
        config.html_math_renderer = 'mathml'
    config.html_static_path = [*config.html_static_path, str(STYLESHEET.parent)]


def _use_line_formatter(app: Sphinx) -> None:
    """The HTML highlighter writes each code line as a span with its hanging indent
    (`sidebyside.highlight`), so a wrapped line continues under itself."""
    from .highlight import LineFormatter

    highlighter = getattr(app.builder, 'highlighter', None)
    if highlighter is not None and getattr(highlighter, 'dest', None) == 'html':
        highlighter.formatter = LineFormatter


class AnnotatedSource(SphinxDirective):
    """
    ## The directive

    `annotated-source PATH`: the file as rows, its headings as sections of the page. `PATH` is relative
    to the page, or to the source folder if it starts with `/`; the page is rebuilt when the file changes.
    The option `:preface: MARKDOWN_PATH` (relative in the same way) adds a Markdown file of the site's
    own after the file's introduction, with the project's MyST substitutions (`myst_substitutions`).
    A file without any heading, on a page without one, is titled by its file name.
    """
    required_arguments = 1
    final_argument_whitespace = True
    option_spec = {'preface': directives.unchanged_required}

    def run(self) -> list[nodes.Node]:
        _, path = self.env.relfn2path(self.arguments[0], self.env.docname)
        self.env.note_dependency(path)
        try:
            sections = filter_docs(parse_file(path), self.config.sidebyside_doc_filter)
        except (OSError, ValueError) as error:
            raise self.error(f'annotated-source: {error}') from error
        builder = _DoctreeBuilder(self.state.document, self.env, str(path))
        items = layout(sections, builder.md)
        if 'preface' in self.options:
            preface = self.options['preface']
            _, preface_path = self.env.relfn2path(preface, self.env.docname)
            self.env.note_dependency(preface_path)
            try:
                text = Path(preface_path).read_text(encoding='utf-8')
            except OSError as error:
                raise self.error(f'annotated-source: {error}') from error
            extra = preface_items(text, builder.md, self.env.myst_config.substitutions)
            builder.sources.update({id(item): str(preface_path) for item in extra})
            items = with_preface(items, extra)
        if (not any(isinstance(item, Heading) for item in items)
                and self.state.document.next_node(nodes.section) is None):
            # A toctree links to a page by its title, and leaves out one without: a file with no
            # heading, on a page with none before it, is titled by its name
            items = [Heading(1, f'`{Path(path).name}`', 1), *items]
        return builder.build(items)


class _DoctreeBuilder:
    """
    ### Rows and sections as docutils nodes

    The docs are rendered by a MyST renderer of our own, created from the project's MyST
    configuration and attached to the page's document, so footnotes, labels and ids land in the page
    (but our heading sections do not disturb the page's own MyST heading state).
    Raw HTML is switched off in this parser: `<b>` in a comment is text.
    Three settings follow the conventions of annotated source rather than the project's:
    a link is a plain URL, as on nn.labml.ai (`[GAT](gat.html)` points at the page built next
    to this one, not at a Sphinx document), `$$...$$` inside a paragraph is display math, and
    a `$` beside a space neither opens nor closes math (`dmath_allow_space`), so a price or a
    shell variable in a comment stays text, as in the Markdown engine.
    """

    def __init__(self, document: nodes.document, env: BuildEnvironment,
                 path: str) -> None:
        from myst_parser.mdit_to_docutils.sphinx_ import SphinxRenderer
        from myst_parser.parsers.mdit import create_md_parser

        config = replace(env.myst_config, all_links_external=True,
                         dmath_double_inline=True, dmath_allow_space=False)
        self.md = create_md_parser(config, SphinxRenderer)
        self.md.disable(['html_block', 'html_inline'], ignoreInvalid=True)
        self.renderer = self.md.renderer
        self.renderer.setup_render({**self.md.options, 'document': document}, {})
        self.document = document
        self.path = path
        # Items that come from another file than `path` (a preface), by `id`.
        self.sources: dict[int, str] = {}

    def build(self, items: list[Heading | Section]) -> list[nodes.Node]:
        r"""Rows go into the innermost open section; a heading of level $n$ closes the open
        sections of level $\ge n$ and opens a new one inside the rest.
        Only nesting matters to docutils, so skipped levels (`#` then `###`) are fine."""
        root = nodes.container()
        open_sections: list[tuple[int, nodes.Element]] = [(0, root)]
        for item in items:
            if isinstance(item, Heading):
                while open_sections[-1][0] >= item.level:
                    open_sections.pop()
                section = self._section(item)
                open_sections[-1][1].append(section)
                open_sections.append((item.level, section))
            else:
                open_sections[-1][1].append(self._row(item))
        return list(root.children)

    def _section(self, heading: Heading) -> nodes.section:
        """A real section: in the page's table of contents, search index and `ref` targets,
        with the anchor `heading_anchor` gives (docutils would fall back to `id1` for a repeated title)."""
        title = nodes.title()
        self._render(title, heading.title, heading.line, inline=True)
        anchor = heading_anchor(title.astext(), self.document.ids)
        section = nodes.section('', title, ids=[anchor],
                                names=[nodes.fully_normalize_name(title.astext())])
        self.document.note_implicit_target(section, section)
        source = self.sources.get(id(heading), self.path)
        return self._locate(section, heading.line, source)

    def _row(self, section: Section) -> nodes.container:
        """`<div class="annotate-row">` with a docs cell and a code cell (each may be empty).
        The code is a `literal_block` with line numbers from `first_line`, so the site's Pygments
        theme highlights (and escapes) it; `force` keeps odd fragments from raising lexer warnings."""
        doc = nodes.container(classes=['annotate-doc'])
        self._render(doc, section.doc, section.doc_line)
        code = nodes.container(classes=['annotate-code'])
        if section.code:
            # Tabs at Python's stops, every 8 columns, as spaces: the line formatter counts
            # spaces for a line's hanging indent, and a browser's tab stops would count the
            # line number too
            text = section.code.expandtabs()
            code += nodes.literal_block(
                text, text, language='python', linenos=True, force=True,
                highlight_args={'linenostart': section.first_line})
        row = nodes.container('', doc, code, classes=row_classes(section))
        source = self.sources.get(id(section), self.path)
        line = section.first_line if source == self.path else section.doc_line
        return self._locate(row, line, source)

    def _render(self, parent: nodes.Element, markdown: str, line: int,
                inline: bool = False) -> None:
        """Renders Markdown into `parent`; MyST reports its warnings at the page, with this Python
        `line`."""
        if markdown:
            with self.renderer.current_node_context(parent):
                self.renderer.nested_render_text(markdown, line - 1, inline=inline)
            _hoist_display_math(parent)

    def _locate(self, node: nodes.Element, line: int, source: str) -> Any:
        """Marks the nodes as coming from the Python file (or the preface), so later warnings (an
        unresolved reference, say) name it; nodes without a line get the line of their row or heading."""
        for element in node.findall(nodes.Element):
            element.source = source
            element.line = element.line or line
        return node


def _hoist_display_math(parent: nodes.Element) -> None:
    """A `$$...$$` line inside a comment paragraph is a `math_block` inside a `paragraph`:
    the paragraph is split around it, so the block stands between two paragraphs, as it reads."""
    for paragraph in list(parent.findall(nodes.paragraph)):
        if any(isinstance(child, nodes.math_block) for child in paragraph.children):
            pieces: list[nodes.Element] = [nodes.paragraph()]
            for child in list(paragraph.children):
                if isinstance(child, nodes.math_block):
                    pieces += [child, nodes.paragraph()]
                elif pieces[-1].children or child.astext().strip():
                    pieces[-1] += child
            paragraph.replace_self([piece for piece in pieces if piece.astext().strip()])


# ## Math
#
# Inline math is `<span class="math">` around `<math>`; display math is `<div class="math">` around
# `<math display="block">`, with the number and permalink of a labelled equation, as Sphinx's
# MathJax renderer writes them.


def _render_math(translator: HTML5Translator, node: nodes.Element, tex: str,
                 display: bool) -> str:
    """MathML, or (after reporting the error at the node) the escaped TeX, so the build can go on
    and report every broken formula before it fails."""
    try:
        return to_mathml(tex, display)
    except LatexError as error:
        logger.error('%s', error, location=node, type='math', subtype='mathml')
        page = translator.builder.env.docname
        _math_failures[page] = _math_failures.get(page, 0) + 1
        return f'<code class="math-error">{html.escape(tex)}</code>'


def visit_math(self: HTML5Translator, node: nodes.math) -> None:
    self.body.append(self.starttag(node, 'span', '', CLASS='math notranslate'))
    self.body.append(_render_math(self, node, node.astext(), display=False))
    self.body.append('</span>')
    raise nodes.SkipNode


def visit_math_block(self: HTML5Translator, node: nodes.math_block) -> None:
    self.body.append(self.starttag(node, 'div', CLASS='math notranslate'))
    if node.get('number'):
        self.body.append(f'<span class="eqno">({get_node_equation_number(self, node)})')
        self.add_permalink_ref(node, _('Link to this equation'))
        self.body.append('</span>')
    nowrap = node.get('no-wrap', node.get('nowrap', False))
    tex = display_tex(node.astext(), nowrap=nowrap)
    self.body.append(_render_math(self, node, tex, display=True))
    self.body.append('</div>\n')
    raise nodes.SkipNode


class GlueMathPunctuation(SphinxPostTransform):
    """Wraps inline math and the punctuation touching it in `<span class="math-nowrap">`."""
    default_priority = 400
    formats = ('html',)

    def run(self, **kwargs: Any) -> None:
        for math in list(self.document.findall(nodes.math)):
            parent = math.parent
            index = parent.index(math)
            after = _split_text(parent, index + 1, CLOSING, at_start=True)
            before = ''
            if index > 0:
                before = _split_text(parent, index - 1, OPENING, at_start=False)
            if before or after:
                glued = nodes.inline('', '', classes=['math-nowrap'])
                parent.replace(math, glued)
                glued += [nodes.Text(before)] * bool(before) + [math]
                glued += [nodes.Text(after)] * bool(after)


def _split_text(parent: nodes.Element, index: int, pattern: Any, at_start: bool) -> str:
    """Takes the punctuation matching `pattern` off the start (or end) of the text node
    `parent[index]`, if there is one, and returns it."""
    if not 0 <= index < len(parent) or not isinstance(parent[index], nodes.Text):
        return ''
    text = parent[index].astext()
    match = pattern.search(text)
    if match is None:
        return ''
    rest = text[match.end():] if at_start else text[:match.start()]
    if rest:
        parent[index] = nodes.Text(rest)
    else:
        # By its place: another text node equal to it (a `(` that starts a line) may come first
        del parent[index]
    return match.group()


# Formulas that could not be rendered in this build, per page.
_math_failures: dict[str, int] = {}


def _count_math_errors(app: Sphinx) -> None:
    _math_failures.clear()


def _fail_on_math_errors(app: Sphinx, exception: Exception | None) -> None:
    """The build fails (exit status 1) if a formula could not be rendered, even without `-W`."""
    if _math_failures:
        app.statuscode = 1
