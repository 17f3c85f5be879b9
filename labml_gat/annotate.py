r"""
---
title: Side-by-side annotated source pages
summary: >
  Turns a Python file into a page of rows: comments and docstrings as Markdown on the left,
  the code they explain on the right, highlighted, with the file's real line numbers.
---

# Annotated source pages

This module renders a Python source file the way [nn.labml.ai](https://nn.labml.ai),
pycco and docco do: every comment block and docstring is Markdown with math
(`$...$` inline, `$$...$$` display) and sits to the left of the code it explains.

A file becomes a list of **sections** $s_1, s_2, \dots$, each a pair
$(\text{doc}_k, \text{code}_k)$ where $\text{code}_k$ is the run of source lines
$\ell_k, \dots, m_k$, quoted verbatim with its real line numbers.
The sections are found in three steps.

1. `ast` finds the docstrings of the module, the classes and the functions.
   The docstring of a class or function is lifted **above** its header (decorators and `def` line),
   so the prose introduces the signature it describes, and a heading in it comes before the code.
2. `tokenize` finds the comments that stand on a line of their own, outside brackets.
   `#` inside strings is not a comment to `tokenize`, and a comment at the end of a code line
   stays with its code.
3. A sweep over the lines starts a new section at every doc block and at every hole that a lifted
   docstring leaves in the code, so each code cell is one contiguous run of lines.

Markdown headings in the docs (`#`, `##`, ...) are pulled out of the rows as **headings**, because
a page's sections cannot live inside a two-column row: the Sphinx directive turns each one into a real
`section` node, nested by level, and the rows that follow go inside it.
Everything a reader sees is escaped: raw HTML in comments is shown as text, never injected.

Three ways to use it:

* `parse(source)` or `parse_file(path)` give the sections, and `layout(sections)` adds the headings.
* `python -m labml_gat.annotate FILE > page.html` prints a standalone HTML page.
* In Sphinx, add `labml_gat.annotate` to `extensions` and give a MyST page nothing but

  ````md
  ```{annotated-source} ../labml_gat/gatv2.py
  ```
  ````

  or, in reStructuredText, `.. annotated-source:: ../labml_gat/gatv2.py`.
  The file's first heading becomes the page's title, the others its sections.
"""

from __future__ import annotations

import argparse
import ast
import html
import inspect
import io
import re
import sys
import tokenize
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from docutils import nodes
    from markdown_it import MarkdownIt
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment


@dataclass(frozen=True)
class Section:
    """
    ## Sections and headings

    A section is one row of the page: Markdown `doc` on the left and `code` on the right.
    `code` is exactly lines `first_line` to `last_line` (1-based, inclusive) of the file,
    without a trailing newline.
    A section without code has the empty range `last_line == first_line - 1`,
    placed where its code would start, after its doc.
    `doc_line` is the file line that the doc's first line comes from, for messages about the docs.
    """
    doc: str
    code: str
    first_line: int
    last_line: int
    doc_line: int


@dataclass(frozen=True)
class Heading:
    """A Markdown heading taken out of a doc: `level` 1 for `#`, `title` as inline Markdown,
    `line` its line in the file."""
    level: int
    title: str
    line: int


def parse_file(path: str | Path) -> list[Section]:
    """
    ## Splitting a file into sections

    Reads a file in the encoding its coding cookie or BOM declares (UTF-8 by default)
    and splits it into sections.
    """
    with open(path, 'rb') as file:
        raw = file.read()
    encoding, _ = tokenize.detect_encoding(io.BytesIO(raw).readline)
    try:
        source = raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise ValueError(f'{path}: not valid {encoding} text ({error})') from error
    return parse(source, str(path))


def parse(source: str, filename: str = '<string>') -> list[Section]:
    """
    Splits Python `source` into sections; `filename` only names the file in errors.
    """
    # One newline convention: Windows `\r\n` and old Mac `\r` become `\n`.
    # `str.splitlines` would also split at form feeds, which Python does not, so split on `\n` only.
    source = source.replace('\r\n', '\n').replace('\r', '\n')
    lines = source.split('\n')
    tree = _syntax_tree(source, filename)
    docs = _docstring_docs(tree, source, lines) + _comment_docs(source, _code_comment_lines(tree, lines))
    return _sweep(lines, docs)


def _syntax_tree(source: str, filename: str) -> ast.Module:
    """Parses the source, turning a syntax error into a `ValueError` that names the file and line."""
    try:
        # Warnings such as invalid escape sequences are the file's business, not the page's.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return ast.parse(source, filename)
    except (SyntaxError, ValueError) as error:
        line = getattr(error, 'lineno', None)
        where = f', line {line}' if line else ''
        reason = getattr(error, 'msg', None) or str(error)
        raise ValueError(f'{filename}{where}: not valid Python ({reason})') from error


@dataclass(frozen=True)
class _Doc:
    """A block of Markdown, shown just before source line `anchor`, whose first line is file line `line`;
    it replaces source `lines` in the code column."""
    anchor: int
    text: str
    line: int
    lines: range


def _docstring_docs(tree: ast.Module, source: str, lines: list[str]) -> list[_Doc]:
    """
    ### Docstrings

    The docstrings of the module, classes and functions (nested ones too), each anchored at the
    first line of its owner's header: the first decorator, or the `class`/`def` line.
    """
    docs = []
    for node in ast.walk(tree):
        expr = _docstring_expr(node)
        if expr is None or not _stands_alone(expr, lines):
            continue
        text, skipped = _docstring_text(expr, source)
        if isinstance(node, ast.Module):
            text, skipped_front_matter = _without_front_matter(text)
            skipped += skipped_front_matter
            anchor = expr.lineno
        else:
            anchor = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
        docs.append(_Doc(anchor, text, expr.lineno + skipped, range(expr.lineno, expr.end_lineno + 1)))
    return docs


# A page's metadata block at the top of the module docstring (`---` lines around YAML) is not prose.
_FRONT_MATTER = re.compile(r'\A---\n.*?\n---[ \t]*(\n|\Z)', re.DOTALL)


def _without_front_matter(text: str) -> tuple[str, int]:
    """The text without its front matter, and the number of lines dropped from its top."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        return text, 0
    skipped, rest = _trim_blank_lines(text[match.end():].split('\n'))
    return rest, match.group().count('\n') + skipped


def _docstring_expr(node: ast.AST) -> ast.Expr | None:
    """The docstring statement of a module, class or function, if it has one."""
    if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) or not node.body:
        return None
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def _stands_alone(expr: ast.Expr, lines: list[str]) -> bool:
    """Whether the docstring has its lines to itself, so lifting them out leaves no code behind:
    a one-line `def f(): 'doc'` keeps its docstring in the code column.
    `ast` column offsets count UTF-8 bytes, so the lines are compared as bytes."""
    before = lines[expr.lineno - 1].encode()[:expr.col_offset]
    after = lines[expr.end_lineno - 1].encode()[expr.end_col_offset:]
    return not before.strip() and not after.strip()


# A single string literal: optional `r`/`u` prefix, quotes, body.
_QUOTES = ('"""', "'''", '"', "'")
_STRING = re.compile('[rRuU]?(?P<quote>{})(?P<body>.*)(?P=quote)'.format('|'.join(_QUOTES)), re.DOTALL)


def _docstring_text(expr: ast.Expr, source: str) -> tuple[str, int]:
    r"""The docstring as written in the file, dedented, and the number of blank lines
    `inspect.cleandoc` dropped from its top (the text starts that many lines below the quotes).
    The source text, not the string's value: in a docstring without the `r` prefix `\text` would
    otherwise become a tab and `\frac` a form feed, while the author wrote (and means) LaTeX."""
    literal = ast.get_source_segment(source, expr.value) or ''
    match = _STRING.fullmatch(literal)
    # Implicitly concatenated literals (`"a" "b"`) fall back to the string's value.
    body = match['body'] if match and match['quote'] not in match['body'] else expr.value.value
    skipped, _ = _trim_blank_lines(body.split('\n'))
    return inspect.cleandoc(body), skipped


def _code_comment_lines(tree: ast.Module, lines: list[str]) -> set[int]:
    """
    ### Comments

    Lines whose comment belongs to the code, even when it stands alone:
    the shebang, the coding cookie, and comments between a decorator and its `def`
    (moving them out would cut the definition in two).
    """
    kept = {number for number in (1, 2) if number <= len(lines) and _CODING.match(lines[number - 1])}
    if lines[0].startswith('#!'):
        kept.add(1)
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.decorator_list:
            kept.update(range(node.decorator_list[0].lineno, node.lineno))
    return kept


# PEP 263 coding cookie.
_CODING = re.compile(r'^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+')


def _comment_docs(source: str, kept: set[int]) -> list[_Doc]:
    """Comment lines that stand alone, outside brackets, grouped into blocks of consecutive lines."""
    docs: list[_Doc] = []
    for number, text in _own_line_comments(source, kept):
        last = docs[-1] if docs else None
        if last is not None and last.lines.stop == number:
            docs[-1] = _Doc(last.anchor, f'{last.text}\n{text}', last.line, range(last.anchor, number + 1))
        else:
            docs.append(_Doc(number, text, number, range(number, number + 1)))
    return docs


def _own_line_comments(source: str, kept: set[int]) -> Iterator[tuple[int, str]]:
    """`(line, Markdown)` for each comment that is alone on its line.
    A comment inside brackets (between the arguments of a call, say) stays in the code:
    moving it out would split the statement across rows."""
    depth = 0
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.OP and token.string in ('(', '[', '{'):
            depth += 1
        elif token.type == tokenize.OP and token.string in (')', ']', '}'):
            depth -= 1
        elif (token.type == tokenize.COMMENT and depth == 0 and token.start[0] not in kept
              and not token.line[:token.start[1]].strip()):
            # Drop `#` and the one space after it; deeper indentation is Markdown's (lists, code).
            text = token.string[1:]
            yield token.start[0], (text[1:] if text.startswith(' ') else text).rstrip()


def _sweep(lines: list[str], docs: list[_Doc]) -> list[Section]:
    """
    ### Rows

    Walks the lines in order, placing each doc block at its anchor and hiding the lines it replaces.
    """
    anchored: dict[int, list[_Doc]] = {}
    hidden: set[int] = set()
    for doc in sorted(docs, key=lambda doc: (doc.anchor, doc.lines.start)):
        anchored.setdefault(doc.anchor, []).append(doc)
        hidden.update(doc.lines)
    rows = _Rows(lines)
    for number in range(1, len(lines) + 1):
        if number in anchored:
            rows.add_docs(anchored[number])
        if number not in hidden:
            rows.add_code(number)
    return rows.finish()


@dataclass
class _Rows:
    """Collects sections; the open one has doc blocks `docs` and code line numbers `code`."""
    lines: list[str]
    sections: list[Section] = field(default_factory=list)
    docs: list[_Doc] = field(default_factory=list)
    code: list[int] = field(default_factory=list)

    def add_docs(self, docs: list[_Doc]) -> None:
        """A doc block ends the open section if it has code; otherwise the docs join up,
        and blank lines between them are dropped."""
        if self._has_code():
            self._close()
        self.code.clear()
        self.docs.extend(doc for doc in docs if doc.text)

    def add_code(self, number: int) -> None:
        """A line that does not follow the last one (a docstring was lifted out) starts a new section."""
        if self.code and number != self.code[-1] + 1:
            if self._has_code():
                self._close()
            self.code.clear()
        self.code.append(number)

    def finish(self) -> list[Section]:
        self._close()
        return self.sections

    def _has_code(self) -> bool:
        return any(self.lines[number - 1].strip() for number in self.code)

    def _close(self) -> None:
        """Blank lines at either end of the code are separators, not content.
        Only the end of the file closes a section that has no code."""
        numbers = [number for number in self.code if self.lines[number - 1].strip()]
        doc = '\n\n'.join(block.text for block in self.docs)
        if numbers:
            first, last = numbers[0], numbers[-1]
        else:
            first = self.code[0] if self.code else len(self.lines) + 1
            last = first - 1
        if numbers or doc:
            code = '\n'.join(self.lines[first - 1:last])
            self.sections.append(Section(doc, code, first, last, self.docs[0].line if self.docs else first))
        self.docs, self.code = [], []


def layout(sections: Sequence[Section], md: MarkdownIt | None = None) -> list[Heading | Section]:
    """
    ## Headings

    Splits each section's doc at its top-level Markdown headings (ATX `##` and setext `===`).
    The prose before a heading becomes a section of its own without code, the heading becomes a
    `Heading`, and the code stays with the prose after the last heading.
    `md` is the markdown-it parser that decides what a heading is (Sphinx passes MyST's own,
    so both agree); it defaults to CommonMark with `$` math.
    """
    md = md or _markdown()
    return [item for section in sections for item in _split_at_headings(section, md)]


def _split_at_headings(section: Section, md: MarkdownIt) -> list[Heading | Section]:
    lines = section.doc.split('\n')
    items: list[Heading | Section] = []
    start = 0
    for begin, end, heading in _headings(section, md):
        items.append(_doc_part(section, lines, start, begin, code=''))
        items.append(heading)
        start = end
    items.append(_doc_part(section, lines, start, len(lines), code=section.code))
    return [item for item in items if isinstance(item, Heading) or item.doc or item.code]


def _doc_part(section: Section, lines: list[str], start: int, stop: int, code: str) -> Section:
    """The section with doc lines `start:stop` only; without code it keeps an empty range."""
    skipped, doc = _trim_blank_lines(lines[start:stop])
    last_line = section.last_line if code else section.first_line - 1
    return replace(section, doc=doc, code=code, last_line=last_line, doc_line=section.doc_line + start + skipped)


def _headings(section: Section, md: MarkdownIt) -> Iterator[tuple[int, int, Heading]]:
    """`(first doc line, line after it, Heading)` for every heading at the top level of the doc;
    a `#` inside a fenced code block or a `$$` block is not a heading, and markdown-it knows."""
    tokens = md.parse(section.doc, {})
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type == 'heading_open' and opening.level == 0 and opening.map:
            begin, end = opening.map
            yield begin, end, Heading(int(opening.tag[1:]), inline.content, section.doc_line + begin)


def _trim_blank_lines(lines: list[str]) -> tuple[int, str]:
    """Joins lines without the blank ones at either end (the first line keeps its indentation),
    and counts the blank lines dropped from the top."""
    kept = [index for index, line in enumerate(lines) if line.strip()]
    if not kept:
        return len(lines), ''
    return kept[0], '\n'.join(lines[kept[0]:kept[-1] + 1])


def _markdown(math: Callable[[str, dict[str, Any]], str] | None = None) -> MarkdownIt:
    """CommonMark with tables and `$`/`$$` math (`$$` display math also inside a paragraph),
    raw HTML off (so it is escaped).
    `math` renders a formula to HTML; by default the TeX is kept, escaped."""
    try:
        from markdown_it import MarkdownIt
        from mdit_py_plugins.dollarmath import dollarmath_plugin
    except ImportError as error:
        raise ImportError('Markdown needs markdown-it-py and mdit-py-plugins: pip install myst-parser') from error
    return (MarkdownIt('commonmark', {'html': False}).enable('table')
            .use(dollarmath_plugin, double_inline=True, renderer=math or _tex))


# ## Page style
#
# One stylesheet for both the Sphinx pages and the standalone page.
# A row is a grid of two columns, docs (2 parts) left of code (3 parts); below 50em wide
# the columns stack, doc above code, and an empty cell disappears.
# The code column keeps one background from row to row, so the code reads as one listing.
# On furo, `.content` is 46em wide; pages that hold rows (`:has(.annotate-row)`) get the free width.
CSS_FILE = 'annotate.css'
CSS = """\
.annotate-row { display: grid; grid-template-columns: minmax(0, 2fr) minmax(0, 3fr); column-gap: 2em; margin: 0; }
.annotate-doc { padding: 0.4em 0; overflow-wrap: break-word; }
.annotate-doc > :first-child { margin-top: 0; }
.annotate-doc > :last-child { margin-bottom: 0; }
.annotate-doc .math, .annotate-doc math[display="block"] { overflow-x: auto; overflow-y: hidden; }
.annotate-code { background: var(--color-code-background, #f8f8f8); min-width: 0; }
.annotate-code div[class^="highlight"], .annotate-code pre { margin: 0; border: 0; border-radius: 0; }
.annotate-code pre { overflow-x: auto; }
@media (max-width: 50em) {
  .annotate-row { grid-template-columns: minmax(0, 1fr); }
  .annotate-no-code > .annotate-code, .annotate-no-doc > .annotate-doc { display: none; }
}
.main:has(.annotate-row) .content { width: auto; flex: 1 1 0; min-width: 0; max-width: 110em; }
@media (min-width: 63em) { .page:has(.annotate-row) .sidebar-drawer { width: 15em; flex: none; } }
"""


def _row_classes(section: Section) -> list[str]:
    """`annotate-row`, plus `annotate-no-doc` or `annotate-no-code` for a half-empty row."""
    return ['annotate-row'] + ['annotate-no-doc'] * (not section.doc) + ['annotate-no-code'] * (not section.code)


def setup(app: Sphinx) -> dict[str, Any]:
    """
    ## Sphinx extension

    `extensions = ['labml_gat.annotate']` registers the `annotated-source` directive.
    Its one argument is a Python file, relative to the page (or to the source folder if it starts
    with `/`); the page is rebuilt when the file changes.
    It loads `myst_parser`, whose configuration (`myst_enable_extensions`: `dollarmath`,
    `amsmath`, ...) it uses for the docs, so math becomes `math`/`math_block` nodes for whatever
    renders math on the site. The stylesheet is written to `_static/annotate.css` after an HTML build.
    """
    from sphinx.util.docutils import SphinxDirective

    app.setup_extension('myst_parser')
    app.add_directive('annotated-source', _directive_class(SphinxDirective))
    app.add_css_file(CSS_FILE)
    app.connect('build-finished', _write_css)
    return {'version': '1', 'parallel_read_safe': True, 'parallel_write_safe': True}


def _directive_class(base: type) -> type:
    """The directive, made here so that importing this module needs no Sphinx."""

    class AnnotatedSource(base):  # type: ignore[misc, valid-type]
        """`annotated-source PATH`: the file as rows, its headings as sections of the page."""
        required_arguments = 1
        final_argument_whitespace = True

        def run(self) -> list[nodes.Node]:
            _, path = self.env.relfn2path(self.arguments[0], self.env.docname)
            self.env.note_dependency(path)
            try:
                sections = parse_file(path)
            except (OSError, ValueError) as error:
                raise self.error(f'annotated-source: {error}') from error
            builder = _DoctreeBuilder(self.state.document, self.env, str(path))
            return builder.build(layout(sections, builder.md))

    return AnnotatedSource


class _DoctreeBuilder:
    """
    ### Rows and sections as docutils nodes

    The docs are rendered by a MyST renderer of our own, created from the project's MyST
    configuration and attached to the page's document, so footnotes, labels and ids land in the page
    (but our heading sections do not disturb the page's own MyST heading state).
    Raw HTML is switched off in this parser: `<b>` in a comment is text.
    Two settings follow the conventions of annotated source rather than the project's:
    a link is a plain URL, as on nn.labml.ai (`[GAT](gat.html)` points at the page built next
    to this one, not at a Sphinx document), and `$$...$$` inside a paragraph is display math.
    """

    def __init__(self, document: nodes.document, env: BuildEnvironment, path: str) -> None:
        from myst_parser.mdit_to_docutils.sphinx_ import SphinxRenderer
        from myst_parser.parsers.mdit import create_md_parser

        config = replace(env.myst_config, all_links_external=True, dmath_double_inline=True)
        self.md = create_md_parser(config, SphinxRenderer)
        self.md.disable(['html_block', 'html_inline'], ignoreInvalid=True)
        self.renderer = self.md.renderer
        self.renderer.setup_render({**self.md.options, 'document': document}, {})
        self.document = document
        self.path = path

    def build(self, items: list[Heading | Section]) -> list[nodes.Node]:
        r"""Rows go into the innermost open section; a heading of level $n$ closes the open
        sections of level $\ge n$ and opens a new one inside the rest.
        Only nesting matters to docutils, so skipped levels (`#` then `###`) are fine."""
        from docutils import nodes

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
        """A real section: in the page's table of contents, search index and `ref` targets.
        Its id is made from its title, with `-1`, `-2`, ... for a title the page already has,
        so that every anchor names its section (docutils would fall back to `id1`)."""
        from docutils import nodes

        title = nodes.title()
        self._render(title, heading.title, heading.line, inline=True)
        base = nodes.make_id(title.astext()) or 'section'
        anchor, count = base, 0
        while anchor in self.document.ids:
            anchor, count = f'{base}-{count + 1}', count + 1
        section = nodes.section('', title, ids=[anchor], names=[nodes.fully_normalize_name(title.astext())])
        self.document.note_implicit_target(section, section)
        return self._locate(section, heading.line)

    def _row(self, section: Section) -> nodes.container:
        """`<div class="annotate-row">` with a docs cell and a code cell (each may be empty).
        The code is a `literal_block` with line numbers from `first_line`, so the site's Pygments
        theme highlights (and escapes) it; `force` keeps odd fragments from raising lexer warnings."""
        from docutils import nodes

        doc = nodes.container(classes=['annotate-doc'])
        self._render(doc, section.doc, section.doc_line)
        code = nodes.container(classes=['annotate-code'])
        if section.code:
            code += nodes.literal_block(section.code, section.code, language='python', linenos=True, force=True,
                                        highlight_args={'linenostart': section.first_line})
        return self._locate(nodes.container('', doc, code, classes=_row_classes(section)), section.first_line)

    def _render(self, parent: nodes.Element, markdown: str, line: int, inline: bool = False) -> None:
        """Renders Markdown into `parent`; MyST reports its warnings at the page, with this Python `line`."""
        if markdown:
            with self.renderer.current_node_context(parent):
                self.renderer.nested_render_text(markdown, line - 1, inline=inline)
            _hoist_display_math(parent)

    def _locate(self, node: nodes.Element, line: int) -> Any:
        """Marks the nodes as coming from the Python file, so later warnings (an unresolved reference,
        say) name it; nodes without a line get the line of their row or heading."""
        from docutils import nodes

        for element in node.findall(nodes.Element):
            element.source = self.path
            element.line = element.line or line
        return node


def _hoist_display_math(parent: nodes.Element) -> None:
    """A `$$...$$` line inside a comment paragraph is a `math_block` inside a `paragraph`:
    the paragraph is split around it, so the block stands between two paragraphs, as it reads."""
    from docutils import nodes

    for paragraph in list(parent.findall(nodes.paragraph)):
        if any(isinstance(child, nodes.math_block) for child in paragraph.children):
            pieces: list[nodes.Element] = [nodes.paragraph()]
            for child in list(paragraph.children):
                if isinstance(child, nodes.math_block):
                    pieces += [child, nodes.paragraph()]
                elif pieces[-1].children or child.astext().strip():
                    pieces[-1] += child
            paragraph.replace_self([piece for piece in pieces if piece.astext().strip()])


def _write_css(app: Sphinx, exception: Exception | None) -> None:
    """Writes the stylesheet into the HTML output's `_static` folder."""
    if exception is None and app.builder.format == 'html':
        static = Path(app.outdir) / '_static'
        static.mkdir(parents=True, exist_ok=True)
        (static / CSS_FILE).write_text(CSS, encoding='utf-8')


def render_page(path: str | Path) -> str:
    r"""
    ## Standalone page

    The file as one self-contained HTML page: the same rows and stylesheet as on the site,
    Pygments colours inline, headings as `<h1>`...`<h6>` with anchors.
    Math becomes MathML when `math-core` is installed, and stays as escaped TeX
    (`\(...\)`, `\[...\]`) otherwise.
    """
    md = _markdown(_math_renderer())
    items = layout(parse_file(path), md)
    title = next((item.title for item in items if isinstance(item, Heading)), Path(path).name)
    ids: set[str] = set()
    body = '\n'.join(_html_heading(item, md, ids) if isinstance(item, Heading) else _html_row(item, md)
                     for item in items)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<title>{html.escape(title)}</title>\n<style>\n{_PAGE_CSS}{CSS}{_pygments_css()}</style>\n'
            f'</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n')


# The standalone page's own frame: a readable font and width, and Pygments' line numbers.
_PAGE_CSS = """\
body { margin: 0 auto; padding: 1em 2em; max-width: 110em; font: 16px/1.5 system-ui, sans-serif; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85em; }
.highlight pre { padding: 0.5em 1em; line-height: 1.5; }
.highlight .linenos { color: #999; margin-right: 1em; user-select: none; }
"""


def _pygments_css() -> str:
    """Pygments' default colours for the `.highlight` blocks."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter().get_style_defs('.highlight') + '\n'


def _html_heading(heading: Heading, md: MarkdownIt, ids: set[str]) -> str:
    """`<hN id="...">`; the id is the title's words joined by `-`, made unique on the page."""
    base = '-'.join(re.findall(r'\w+', heading.title.lower())) or 'section'
    anchor, count = base, 1
    while anchor in ids:
        anchor, count = f'{base}-{count}', count + 1
    ids.add(anchor)
    return f'<h{heading.level} id="{anchor}">{md.renderInline(heading.title)}</h{heading.level}>'


def _html_row(section: Section, md: MarkdownIt) -> str:
    """The same row markup as the Sphinx directive's containers."""
    doc = md.render(section.doc) if section.doc else ''
    code = _highlight(section) if section.code else ''
    return (f'<div class="{" ".join(_row_classes(section))}">\n<div class="annotate-doc">\n{doc}</div>\n'
            f'<div class="annotate-code">{code}</div>\n</div>')


def _highlight(section: Section) -> str:
    """Pygments HTML of the code with inline line numbers starting at the real first line."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    return highlight(section.code, PythonLexer(), HtmlFormatter(linenos='inline', linenostart=section.first_line))


def _math_renderer() -> Callable[[str, dict[str, Any]], str]:
    """MathML from `math-core` if it is installed and the TeX is valid, escaped TeX otherwise."""
    try:
        from math_core import LatexError, LatexToMathML
    except ImportError:
        return _tex
    converter = LatexToMathML()

    def render(tex: str, options: dict[str, Any]) -> str:
        try:
            return converter.convert_with_local_state(tex, displaystyle=options['display_mode'])
        except LatexError:
            return _tex(tex, options)

    return render


def _tex(tex: str, options: dict[str, Any]) -> str:
    """TeX left for the reader (or a MathJax script), escaped."""
    if options['display_mode']:
        return f'\\[{html.escape(tex)}\\]'
    return f'\\({html.escape(tex)}\\)'


def main(argv: Sequence[str] | None = None) -> int:
    """
    ## Command line

    `python -m labml_gat.annotate FILE` writes the standalone page for `FILE` to standard output,
    UTF-8 encoded whatever the terminal's locale (the page says `charset="utf-8"`).
    """
    parser = argparse.ArgumentParser(prog='python -m labml_gat.annotate',
                                     description='Print a Python file as a side-by-side annotated HTML page.')
    parser.add_argument('file', type=Path, help='Python source file')
    args = parser.parse_args(argv)
    try:
        page = render_page(args.file)
    except (OSError, ValueError) as error:
        parser.exit(1, f'error: {error}\n')
    sys.stdout.buffer.write(page.encode('utf-8'))
    sys.stdout.flush()
    return 0


if __name__ == '__main__':
    sys.exit(main())
