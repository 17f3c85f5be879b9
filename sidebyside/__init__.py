r"""
---
title: sidebyside, annotated source pages side by side
summary: >
  Turns a Python file into a page of rows: comments and docstrings as Markdown on the left,
  the code they explain on the right, highlighted, with the file's real line numbers.
---

# Side-by-side annotated source pages

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
a page's sections cannot live inside a two-column row: each engine turns them into the page's own
headings (in Sphinx real `section` nodes, nested by level, with the rows that follow inside them),
so they are in its table of contents, with the same anchors on every site.
Everything a reader sees is escaped: raw HTML in comments is shown as text, never injected.

The package has four parts, and only this one is needed to split a file:

* here, `parse(source)` or `parse_file(path)` give the sections, `layout(sections)` adds the headings
  (and lets a long note beside short code span the page), `with_preface` adds a page's own Markdown
  after the file's introduction, `heading_anchor` names a heading's anchor and `row_classes` a row's
  HTML classes, the same in every engine;
* [`sidebyside.sphinx`](sphinx.html), the Sphinx extension: the `annotated-source` directive and math
  as MathML;
* [`sidebyside.markdown`](markdown.html), the Python-Markdown extension for MkDocs, Material for MkDocs
  and Zensical: the same directive as a fenced block, the same rows, math as MathML;
* `sidebyside.mathml`, the one conversion of TeX to MathML that both use
  ([math-core](https://pypi.org/project/math-core/), at build time: no script, no network).

Both engines ship one stylesheet, `sidebyside/static/sidebyside.css` (`STYLESHEET`).
Importing this package needs only the standard library; Sphinx, MkDocs, markdown-it and Pygments
are imported by the functions that use them.
"""

from __future__ import annotations

import ast
import html
import inspect
import io
import math
import re
import tokenize
import unicodedata
import warnings
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

__all__ = ['CSS_FILE', 'Heading', 'STYLESHEET', 'Section', 'filter_docs',
           'heading_anchor', 'layout', 'parse', 'parse_file', 'preface_items',
           'row_classes', 'substitute', 'with_preface']

# The one stylesheet of the rows, shipped by both engines.
STYLESHEET = Path(__file__).resolve().parent / 'static' / 'sidebyside.css'
CSS_FILE = STYLESHEET.name


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
    docs = _docstring_docs(tree, source, lines)
    docs += _comment_docs(source, _code_comment_lines(tree, lines))
    return _sweep(lines, docs)


def _syntax_tree(source: str, filename: str) -> ast.Module:
    """Parses the source, turning a syntax error into a `ValueError` that names the file and line."""
    try:
        # Warnings such as invalid escape sequences are the file's business, not the page's.
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return ast.parse(source, filename)
    # An expression nested thousands deep (generated code) overflows the parser's stack, a
    # `RecursionError` or `MemoryError` that would not name the file.
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
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
            anchor = min([node.lineno] + [decorator.lineno
                                          for decorator in node.decorator_list])
        replaced = range(expr.lineno, expr.end_lineno + 1)
        docs.append(_Doc(anchor, text, expr.lineno + skipped, replaced))
    return docs


# A page's metadata block at the top of the module docstring (`---` lines around YAML) is not prose;
# its lines that are not indented are `key: value`, else the `---` are thematic breaks in prose.
_FRONT_MATTER = re.compile(r'\A---\n(?P<body>.*?)\n---[ \t]*(\n|\Z)', re.DOTALL)
_YAML_KEY = re.compile(r'[\w-]+:(\s|$)')


def _without_front_matter(text: str) -> tuple[str, int]:
    """The text without its front matter, and the number of lines dropped from its top."""
    match = _FRONT_MATTER.match(text)
    lines = [] if match is None else match['body'].split('\n')
    keys = [line for line in lines if line.strip() and not line[0].isspace()]
    if not keys or not all(_YAML_KEY.match(line) for line in keys):
        return text, 0
    skipped, rest = _trim_blank_lines(text[match.end():].split('\n'))
    return rest, match.group().count('\n') + skipped


def _docstring_expr(node: ast.AST) -> ast.Expr | None:
    """The docstring statement of a module, class or function, if it has one."""
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    if not isinstance(node, owners) or not node.body:
        return None
    first = node.body[0]
    if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
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
_STRING = re.compile('[rRuU]?(?P<quote>{})(?P<body>.*)(?P=quote)'
                     .format('|'.join(_QUOTES)), re.DOTALL)


def _docstring_text(expr: ast.Expr, source: str) -> tuple[str, int]:
    r"""The docstring as written in the file, dedented, and the number of blank lines
    `inspect.cleandoc` dropped from its top (the text starts that many lines below the quotes).
    The source text, not the string's value: in a docstring without the `r` prefix `\text` would
    otherwise become a tab and `\frac` a form feed, while the author wrote (and means) LaTeX."""
    literal = ast.get_source_segment(source, expr.value) or ''
    match = _STRING.fullmatch(literal)
    # Implicitly concatenated literals (`"a" "b"`) fall back to the string's value.
    whole = match and match['quote'] not in match['body']
    body = match['body'] if whole else expr.value.value
    skipped, _ = _trim_blank_lines(body.split('\n'))
    return inspect.cleandoc(body), skipped


def _code_comment_lines(tree: ast.Module, lines: list[str]) -> set[int]:
    """
    ### Comments

    Lines whose comment belongs to the code, even when it stands alone:
    the shebang, the coding cookie, and comments between a decorator and its `def`
    (moving them out would cut the definition in two).
    """
    kept = {number for number in (1, 2)
            if number <= len(lines) and _CODING.match(lines[number - 1])}
    if lines[0].startswith('#!'):
        kept.add(1)
    for node in ast.walk(tree):
        definitions = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
        if isinstance(node, definitions) and node.decorator_list:
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
            docs[-1] = _Doc(last.anchor, f'{last.text}\n{text}', last.line,
                            range(last.anchor, number + 1))
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
        doc = _joined(self.docs)
        if numbers:
            first, last = numbers[0], numbers[-1]
        else:
            first = self.code[0] if self.code else len(self.lines) + 1
            last = first - 1
        if numbers or doc:
            code = '\n'.join(self.lines[first - 1:last])
            doc_line = self.docs[0].line if self.docs else first
            self.sections.append(Section(doc, code, first, last, doc_line))
        self.docs, self.code = [], []


def _joined(docs: list[_Doc]) -> str:
    """The doc blocks of a row as one Markdown text, a blank line or more between two: as many
    lines apart as in the file, so that a line of the text is `doc_line` plus its index,
    for the messages that name a line."""
    text = docs[0].text if docs else ''
    for before, block in zip(docs, docs[1:]):
        end = before.line + before.text.count('\n') + 1
        text += '\n' * (1 + max(1, block.line - end)) + block.text
    return text


def filter_docs(sections: Sequence[Section], doc_filter: str | None) -> list[Section]:
    """
    ## A site's own filter of the docs

    `doc_filter` names a function, `module.function`, that a site gives both engines
    (`sidebyside_doc_filter` in Sphinx, `doc_filter` in MkDocs): it takes each row's docs as
    Markdown and returns them changed, before they are rendered. A site fills in numbers it keeps
    elsewhere this way, so that the file shows where they come from rather than a copy.
    """
    if not doc_filter:
        return list(sections)
    function = doc_filter_function(doc_filter)
    return [replace(section, doc=function(section.doc)) for section in sections]


def doc_filter_function(doc_filter: str) -> Callable[[str], str]:
    """The function `module.function` names, or a `ValueError` that says what is wrong with the
    name: the engines check it once, as a configuration error, before any page is built."""
    import importlib

    module, _, name = doc_filter.rpartition('.')
    if not module or not name:
        raise ValueError(f'doc_filter {doc_filter!r} must name a function as '
                         'module.function')
    try:
        function = getattr(importlib.import_module(module), name, None)
    except ImportError as error:
        raise ValueError(f'doc_filter {doc_filter!r}: cannot import {module} '
                         f'({error})') from None
    if not callable(function):
        raise ValueError(f'doc_filter {doc_filter!r}: {module} has no function {name}')
    return function


def layout(sections: Sequence[Section],
           md: MarkdownIt | None = None) -> list[Heading | Section]:
    """
    ## Headings

    Splits each section's doc at its top-level Markdown headings (ATX `##` and setext `===`).
    The prose before a heading becomes a section of its own without code, the heading becomes a
    `Heading`, and the code stays with the prose after the last heading.
    `md` is the markdown-it parser that decides what a heading is (Sphinx passes MyST's own,
    so both agree); it defaults to CommonMark with `$` math.
    """
    md = md or markdown_parser()
    items = [item for section in sections for item in _split_at_headings(section, md)]
    return title_first(items)


def title_first(items: list[Heading | Section]) -> list[Heading | Section]:
    """The page's title first: a level-1 heading that only rows without a heading come before (a
    licence's comments, a shebang) is put above them, where both engines take it as the title."""
    first = next((i for i, item in enumerate(items) if isinstance(item, Heading)), 0)
    if first and items[first].level == 1:
        return [items[first], *items[:first], *items[first + 1:]]
    return items


def _split_at_headings(section: Section, md: MarkdownIt) -> list[Heading | Section]:
    items = _split_at_headings_only(section, md)
    if items and isinstance(items[-1], Section) and items[-1].code:
        items[-1:] = _balance(items[-1], md)
    return items


def _split_at_headings_only(section: Section, md: MarkdownIt) -> list[Heading | Section]:
    lines = section.doc.split('\n')
    items: list[Heading | Section] = []
    start = 0
    for begin, end, heading in _headings(section, md):
        items.append(_doc_part(section, lines, start, begin, code=''))
        items.append(heading)
        start = end
    items.append(_doc_part(section, lines, start, len(lines), code=section.code))
    return [item for item in items if isinstance(item, Heading) or item.doc or item.code]


def _doc_part(section: Section, lines: list[str], start: int, stop: int,
              code: str) -> Section:
    """The section with doc lines `start:stop` only; without code it keeps an empty range."""
    skipped, doc = _trim_blank_lines(lines[start:stop])
    last_line = section.last_line if code else section.first_line - 1
    return replace(section, doc=doc, code=code, last_line=last_line,
                   doc_line=section.doc_line + start + skipped)


# ## Long notes beside short code
#
# A row is as tall as the taller of its cells, so a long note beside a few lines of code leaves an
# empty code box below the code. Heights are estimated from the Markdown, in lines of the docs
# column: `DOC_CHARS` characters of text to a line, and a code line `CODE_LINE` of a text line.
# A code block in a note keeps its lines (commands are copied whole): one with a line longer
# than `FENCE_CHARS`, the width of the docs column beside code, would scroll there, so it is
# moved to the row that spans the page, with the blocks before it.
DOC_CHARS = 50
CODE_LINE = 0.75
FENCE_CHARS = 46
# A note may be this many lines taller than its code before it is moved.
SLACK = 5
# A picture (a paragraph that is only an image) is about this many lines tall; so a picture in a long
# note usually moves to the row that spans the page, where it is shown larger.
PICTURE_LINES = 12
_PICTURE = re.compile(r'\s*!\[[^\]]*\]\([^)]*\)\s*', re.DOTALL)


def _balance(section: Section, md: MarkdownIt) -> list[Section]:
    """
    When the doc of a row is much taller than its code, its leading blocks (paragraphs, lists,
    formulas, pictures) become a row of their own without code, which spans the page, and the blocks at its
    end that are about as tall as the code stay beside it. If even the last block is too tall
    (a long list of parameters beside a short signature), the whole doc spans the page, above
    its code.
    """
    blocks = _doc_blocks(section.doc, md)
    budget = CODE_LINE * (section.code.count('\n') + 1) + 1 + SLACK
    if sum(height for _, height in blocks) <= budget:
        return [section]
    kept, height = len(blocks), 0.0
    while kept > 0 and height + blocks[kept - 1][1] <= budget:
        kept -= 1
        height += blocks[kept][1]
    lines = section.doc.split('\n')
    split = blocks[kept][0] if kept < len(blocks) else len(lines)
    note = _doc_part(section, lines, 0, split, code='')
    rest = _doc_part(section, lines, split, len(lines), code=section.code)
    return [note, rest] if note.doc else [section]


def _doc_blocks(doc: str, md: MarkdownIt) -> list[tuple[int, float]]:
    """`(first line, estimated height)` of each top-level block of the doc."""
    lines = doc.split('\n')
    starts = [token for token in md.parse(doc, {}) if token.level == 0
              and token.nesting >= 0 and token.map and token.type != 'inline']
    blocks = []
    for token in starts:
        begin, end = token.map
        if blocks and blocks[-1][0] == begin:
            # The pieces of one paragraph split around its display math are one block
            continue
        text = '\n'.join(lines[begin:end])
        if token.type in ('math_block', 'math_block_label', 'amsmath'):
            height = 2.5 + text.count('\\\\')
        elif token.type == 'paragraph_open' and _PICTURE.fullmatch(text):
            height = PICTURE_LINES
        elif token.type in ('fence', 'code_block'):
            too_wide = any(len(line.rstrip()) > FENCE_CHARS for line in lines[begin:end])
            height = math.inf if too_wide else 1 + CODE_LINE * (end - begin)
        else:
            # A list item, or a paragraph, fills whole lines.
            items = re.split(r'\n(?=\s*(?:[*+-]|\d+[.)])\s)', text)
            lengths = [len(' '.join(item.split())) for item in items]
            height = 0.5 + sum(-(-length // DOC_CHARS) for length in lengths)
        blocks.append((begin, height))
    return blocks


def _headings(section: Section, md: MarkdownIt) -> Iterator[tuple[int, int, Heading]]:
    """`(first doc line, line after it, Heading)` for every heading at the top level of the doc;
    a `#` inside a fenced code block or a `$$` block is not a heading, and markdown-it knows."""
    tokens = md.parse(section.doc, {})
    for opening, inline in zip(tokens, tokens[1:]):
        if opening.type == 'heading_open' and opening.level == 0 and opening.map:
            begin, end = opening.map
            level = int(opening.tag[1:])
            yield begin, end, Heading(level, inline.content, section.doc_line + begin)


def preface_items(text: str, md: MarkdownIt | None = None,
                  substitutions: Mapping[str, str] | None = None,
                  ) -> list[Heading | Section]:
    """
    ## A page's own preface

    A page may add Markdown of its own to a file's page (a usage section, say): `text`, with MyST's
    `{{ name }}` substitutions made, as headings and rows without code, numbered by its own lines.
    `with_preface` puts them after the file's introduction.
    """
    return layout([Section(substitute(text, substitutions or {}), '', 1, 0, 1)], md)


def with_preface(items: list[Heading | Section], preface: list[Heading | Section],
                 ) -> list[Heading | Section]:
    """The page with `preface` after the file's introduction: before its second heading
    (at the end, if it has fewer than two)."""
    headings = [index for index, item in enumerate(items) if isinstance(item, Heading)]
    position = headings[1] if len(headings) > 1 else len(items)
    return items[:position] + preface + items[position:]


# MyST's substitution syntax, `{{ name }}`.
_SUBSTITUTION = re.compile(r'\{\{\s*([A-Za-z_][\w-]*)\s*\}\}')


def substitute(text: str, substitutions: Mapping[str, str]) -> str:
    """`{{ name }}` replaced by its Markdown, as MyST's `substitution` extension does; unknown names
    are left as written."""
    return _SUBSTITUTION.sub(lambda match: substitutions.get(match[1], match[0]), text)


def _trim_blank_lines(lines: list[str]) -> tuple[int, str]:
    """Joins lines without the blank ones at either end (the first line keeps its indentation),
    and counts the blank lines dropped from the top."""
    kept = [index for index, line in enumerate(lines) if line.strip()]
    if not kept:
        return len(lines), ''
    return kept[0], '\n'.join(lines[kept[0]:kept[-1] + 1])


def markdown_parser(math: Callable[[str, dict[str, Any]], str] | None = None,
                    ) -> MarkdownIt:
    """CommonMark with tables and `$`/`$$` math (`$$` display math also inside a paragraph),
    raw HTML off (so it is escaped).
    `math` renders a formula to HTML; by default the TeX is kept, escaped.
    A `$` opens math only before a non-space and closes it only after one (Pandoc's rule, and
    `pymdownx.arithmatex`'s for a page's own text): a price, `$5 and $10`, or a shell variable,
    `$HOME and $PATH`, in a comment is text, not a formula."""
    try:
        from markdown_it import MarkdownIt
        from mdit_py_plugins.dollarmath import dollarmath_plugin
    except ImportError as error:
        raise ImportError('Markdown needs markdown-it-py and mdit-py-plugins: '
                          'pip install markdown-it-py mdit-py-plugins (Sphinx\'s '
                          'myst-parser brings both)') from error
    return (MarkdownIt('commonmark', {'html': False}).enable('table')
            .use(dollarmath_plugin, double_inline=True, allow_space=False,
                 renderer=math or _tex))




def _tex(tex: str, options: dict[str, Any]) -> str:
    """TeX left for the reader, escaped, where no math renderer was given."""
    if options['display_mode']:
        return f'\\[{html.escape(tex)}\\]'
    return f'\\({html.escape(tex)}\\)'


def heading_text(title: str, md: MarkdownIt | None = None) -> str:
    """A heading's title as plain text: the Markdown markup gone, code and TeX as written
    (what docutils' `astext()` gives for the same title)."""
    tokens = (md or markdown_parser()).parseInline(title, {})
    return ''.join(child.content for token in tokens for child in token.children or []
                   if child.type in _TEXT_TOKENS)


# The inline tokens whose content is the text of a heading.
_TEXT_TOKENS = ('text', 'code_inline', 'math_inline', 'math_inline_double')


def heading_anchor(text: str, taken: Container[str] = ()) -> str:
    """
    ## Anchors

    The id of a heading with plain `text`, the same on a Sphinx and on a Markdown page:
    lower case ASCII letters and digits, runs of anything else turned into one `-`,
    no leading digit or `-` (the rule of docutils' `make_id`). A title the page has already
    `taken` gets `-1`, `-2`, ..., so every anchor still names its section.
    """
    ascii_text = unicodedata.normalize('NFKD', text.lower().translate(_LETTERS))
    ascii_text = ascii_text.encode('ascii', 'ignore').decode('ascii')
    base = re.sub(r'^[-0-9]+|-+$', '', re.sub('[^a-z0-9]+', '-', ascii_text)) or 'section'
    anchor, count = base, 0
    while anchor in taken:
        count += 1
        anchor = f'{base}-{count}'
    return anchor


# Letters that do not decompose into an ASCII letter and accents, spelled as docutils spells them.
_LETTERS = str.maketrans({'ß': 'sz', 'æ': 'ae', 'œ': 'oe', 'ø': 'o',
                          'đ': 'd', 'ħ': 'h', 'ı': 'i', 'ł': 'l'})


def row_classes(section: Section) -> list[str]:
    """`annotate-row`, plus `annotate-no-doc` or `annotate-no-code` for a half-empty row."""
    return (['annotate-row'] + ['annotate-no-doc'] * (not section.doc)
            + ['annotate-no-code'] * (not section.code))
