r"""
# The Python-Markdown extension

For sites built from `mkdocs.yml`: MkDocs, Material for MkDocs, and Zensical, which runs
Python-Markdown extensions but not MkDocs plugins. In `mkdocs.yml`:

```yaml
theme:
  name: material
  font: false        # Material loads its fonts from Google Fonts otherwise
markdown_extensions:
  - sidebyside.markdown
extra_css:
  - sidebyside.css   # a copy of sidebyside/static/sidebyside.css in the docs folder
```

Material for MkDocs and Zensical colour the code's Pygments classes. MkDocs' own themes (`mkdocs`,
`readthedocs`) colour code with highlight.js, fetched from a CDN: turn it off, and give Pygments'
colours a stylesheet of their own,
`python -m pygments -S default -f html -a .highlight > docs/pygments.css`:

```yaml
theme:
  name: mkdocs
  highlightjs: false
extra_css:
  - sidebyside.css
  - pygments.css
```

A page then holds the same block as a Sphinx page, a fence that names the Python file:

````md
```{annotated-source} labml_gat/gatv2.py
```
````

Here the path is relative to `base_dir`, the folder MkDocs runs in unless the configuration says
otherwise (Python-Markdown does not tell an extension which page it renders).
The block becomes the rows of the [Sphinx directive](sphinx.html): the same `<div class="annotate-row">`
markup, Pygments with the file's line numbers, the docs rendered as CommonMark by markdown-it (the
parser MyST uses, so a comment reads the same on both sites) and math as MathML.
Its headings become the page's headings, with the anchors of the Sphinx page, so MkDocs puts them
in the page's table of contents.

The block's option `:preface: PATH` (from `base_dir`) adds a Markdown file of the site's own after the
file's introduction, as on the Sphinx page.

More things make a page written for MyST readable here:

* `$...$` and `$$...$$` in the page's own text become MathML too (through `pymdownx.arithmatex`,
  when pymdown-extensions is installed; `math: false` leaves page math alone);
* a MyST `{doc}` role, `` {doc}`title <path>` ``, becomes a link to `path.md`, which MkDocs checks;
* a MyST `{include}` block becomes the Markdown it names (from `include_dir`, the Sphinx source
  folder, whose pages MyST reads), cut by its `:start-after:` and `:end-before:` options;
* `{{ name }}` becomes the Markdown the `substitutions` option gives it, as MyST's substitutions do;
* a `{toctree}` block is dropped: MkDocs takes its navigation from `nav`.
* inline code is written as Sphinx writes it, each word in a `span.pre` (`code_words`), so that it
  breaks between words only.

`doc_filter: module.function` names the site's filter of the docs, as `sidebyside_doc_filter` does
for Sphinx (`filter_docs`).
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as etree
from copy import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markdown import Extension
from markdown.inlinepatterns import InlineProcessor
from markdown.preprocessors import Preprocessor
from markdown.treeprocessors import Treeprocessor

from . import (Heading, Section, doc_filter_function, filter_docs, heading_anchor,
               heading_text, layout, markdown_parser, parse_file, preface_items,
               row_classes, substitute, with_preface)
from .mathml import CLOSING, OPENING, LatexError, display_tex, to_mathml

if TYPE_CHECKING:
    from markdown import Markdown
    from markdown_it import MarkdownIt
    from markdown_it.rules_core import StateCore

try:
    from mkdocs.exceptions import BuildError
    _REPORTED: tuple[type[Exception], ...] = (BuildError,)
except ImportError:  # Zensical, or Python-Markdown alone
    _REPORTED = ()


class PageError(*_REPORTED, ValueError):
    """
    ## Errors

    A page that cannot be built: a file missing or not Python, an unknown option, a formula
    math-core cannot render. It is the site's mistake, not the renderer's, so under MkDocs it is a
    `BuildError`, which MkDocs reports in one line, without a traceback, and stops the build with;
    elsewhere it is a `ValueError`.
    """


class SideBySideExtension(Extension):
    """
    ## Configuration

    `base_dir` is the folder the paths of the blocks start from; `math` whether page math becomes MathML.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.config = {
            'base_dir': ['.', 'Folder the paths of `annotated-source` blocks start from'],
            'include_dir': ['', 'Folder the paths of MyST `{include}` blocks start from '
                                '(default: base_dir)'],
            'substitutions': [{}, 'MyST substitutions: `{{ name }}` becomes this'],
            'math': [True, 'Page math as MathML (needs pymdown-extensions)'],
            'doc_filter': ['', 'A function `module.function` that changes the docs'],
        }
        super().__init__(**kwargs)

    def extendMarkdown(self, md: Markdown) -> None:
        """The blocks are replaced after `pymdownx.snippets` (32) and the whitespace clean-up (30),
        so an included page's blocks are found and the stashed rows survive, and before the fenced-code
        extensions (25), which never see them. `attr_list` gives the headings their anchors."""
        md.registerExtensions(['attr_list'], {})
        base_dir = Path(self.getConfig('base_dir'))
        include_dir = Path(self.getConfig('include_dir') or base_dir)
        if self.getConfig('doc_filter'):
            # A name that calls nothing is the configuration's mistake, said before any page
            doc_filter_function(self.getConfig('doc_filter'))
        # Before `pymdownx.snippets` (32), the page's text as written
        page = PageText(md)
        md.preprocessors.register(page, 'sidebyside-page', 40)
        blocks = BlockPreprocessor(md, page, base_dir, include_dir,
                                   dict(self.getConfig('substitutions')),
                                   self.getConfig('doc_filter'))
        md.preprocessors.register(blocks, 'sidebyside', 29)
        roles = DocRoleProcessor(DOC_ROLE, md)
        md.inlinePatterns.register(roles, 'sidebyside-doc-role', 200)
        md.treeprocessors.register(InlineCodeTreeprocessor(md), 'sidebyside-code', 14)
        if self.getConfig('math'):
            try:
                import pymdownx.arithmatex  # noqa: F401
            except ImportError:
                return
            md.registerExtensions(['pymdownx.arithmatex'],
                                  {'pymdownx.arithmatex': {'generic': True}})
            md.treeprocessors.register(MathTreeprocessor(md, page), 'sidebyside-math', 15)


def makeExtension(**kwargs: Any) -> SideBySideExtension:
    return SideBySideExtension(**kwargs)


# ## Blocks
#
# A MyST directive fence: three or more backticks or tildes, `{name}`, arguments; its body (options)
# ends at a fence of the same kind and length at least as long.
FENCE = re.compile(r'^ {0,3}(?P<fence>`{3,}|~{3,})\s*'
                   r'(?:\{(?P<name>[\w-]+)\}\s*(?P<argument>.*?)|[^`]*?)\s*$')


# A directive option, `:name: value`, on the lines after the fence.
OPTION = re.compile(r'^\s*:(?P<name>[\w-]+):\s*(?P<value>.*?)\s*$')


class BlockPreprocessor(Preprocessor):
    """Replaces each `annotated-source` block by the page it describes (with its `:preface:`),
    each `{include}` block by the Markdown it names (MyST's options `:start-after:` and
    `:end-before:` cut it), and drops `toctree` blocks; `{{ name }}` substitutions are made.
    Other fences are skipped whole, so a block shown as an example inside one stays an example."""

    def __init__(self, md: Markdown, page: PageText, base_dir: Path,
                 include_dir: Path | None = None,
                 substitutions: dict[str, str] | None = None,
                 doc_filter: str = '') -> None:
        super().__init__(md)
        self.page = page
        self.base_dir = base_dir
        self.include_dir = include_dir or base_dir
        self.substitutions = substitutions or {}
        self.doc_filter = doc_filter

    def run(self, lines: list[str]) -> list[str]:
        """The page with its blocks replaced; a mistake in one is a `PageError`."""
        try:
            return self._blocks(lines)
        except ValueError as error:
            raise PageError(str(error)) from error

    def _blocks(self, lines: list[str]) -> list[str]:
        out: list[str] = []
        index = 0
        taken: set[str] = set()
        while index < len(lines):
            match = FENCE.match(lines[index])
            if match is None:
                out.append(substitute(lines[index], self.substitutions))
                index += 1
                continue
            end = _closing_fence(lines, index, match['fence'])
            options = {option['name']: option['value']
                       for option in map(OPTION.match, lines[index + 1:end]) if option}
            if match['name'] == 'annotated-source':
                unknown = set(options) - {'preface'}
                if unknown:
                    # As Sphinx's directive refuses it: a misspelt option is not ignored
                    name = sorted(unknown)[0]
                    raise ValueError(f'annotated-source {match["argument"]}: unknown '
                                     f'option {name!r} (it takes :preface:)')
                out += self._page(match['argument'], taken, options.get('preface'))
            elif match['name'] == 'include':
                out += self._blocks(self._include(match['argument'], options))
            elif match['name'] != 'toctree':
                out += lines[index:end + 1]
            index = end + 1
        return out

    def _include(self, argument: str, options: dict[str, str]) -> list[str]:
        """The lines of the included Markdown file, after `start-after` and before `end-before`."""
        path = self.include_dir / argument.strip()
        try:
            text = path.read_text(encoding='utf-8')
        except OSError as error:
            raise ValueError(f'include: {error}') from error
        # The whole file, so that a line found in it is the file's line
        self.page.texts.append((str(path), text, 0))
        for option, keep in (('start-after', 1), ('end-before', 0)):
            if option in options:
                pieces = text.split(options[option], 1)
                if len(pieces) < 2:
                    marker = options[option]
                    raise ValueError(f'include: {path} has no {marker!r} ({option})')
                text = pieces[keep]
        return text.split('\n')

    def _page(self, argument: str, taken: set[str],
              preface: str | None = None) -> list[str]:
        """Headings as Markdown headings with their anchor (`{#id}`), rows as stashed HTML.
        A title is rendered by the docs' parser too, so `<b>` in it is text, as on the Sphinx page."""
        path = self.base_dir / argument.strip()
        try:
            preface_path = preface and self.base_dir / preface
            items = render_items(path, preface_path, self.substitutions, self.doc_filter)
        except OSError as error:
            raise ValueError(f'annotated-source: {error}') from error
        md = _docs_parser()
        out: list[str] = ['']
        for item in items:
            if isinstance(item, Heading):
                anchor = heading_anchor(heading_text(item.title), taken)
                taken.add(anchor)
                title = self.md.htmlStash.store(md.renderInline(item.title))
                out += ['#' * item.level + f' {title} {{#{anchor}}}', '']
            else:
                out += [self.md.htmlStash.store(item), '']
        return out


class PageText(Preprocessor):
    """The page's text as written, before anything is included in it, and the text of each file
    an `{include}` block adds (`BlockPreprocessor`): Python-Markdown keeps no line numbers, so a
    message about the page's math finds its line here. Each text is kept with where its Markdown
    starts in it: MkDocs hands over a page without its front matter, whose lines count in the
    page's file (`_page_file_text`)."""

    def __init__(self, md: Markdown) -> None:
        super().__init__(md)
        self.texts: list[tuple[str, str, int]] = []

    def run(self, lines: list[str]) -> list[str]:
        text = '\n'.join(lines)
        written = _page_file_text(self.md)
        self.texts = [('', written, len(written) - len(text)) if written.endswith(text)
                      else ('', text, 0)]
        return lines

    def where(self, snippet: str) -> str:
        """`line N` of the page where `snippet` is first written, or `PATH, line N` of an included
        file; `page` where neither has it (`pymdownx.snippets` included it, say)."""
        for path, text, start in self.texts:
            position = text.find(snippet, start)
            if position >= 0:
                line = f'line {text.count(chr(10), 0, position) + 1}'
                return f'{path}, {line}' if path else line
        return 'page'


def _page_file_text(md: Markdown) -> str:
    """The file of the page MkDocs builds, front matter included, read as MkDocs reads it (its
    `relpath` step knows the file); `''` for a page that is no file, or outside MkDocs."""
    try:
        return md.treeprocessors['relpath'].file.content_string
    except (KeyError, AttributeError, TypeError, OSError, ValueError):
        return ''


def _closing_fence(lines: list[str], start: int, fence: str) -> int:
    """The line of the fence that closes the one opened at `start` (the last line if none does)."""
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        if stripped.startswith(fence[0] * len(fence)) and not stripped.strip(fence[0]):
            return index
    return len(lines) - 1


def render_items(path: str | Path, preface: str | Path | None = None,
                 substitutions: dict[str, str] | None = None,
                 doc_filter: str = '') -> list[Heading | str]:
    """
    ## Rows as HTML

    The page of one Python file: its `Heading`s, and each row as an HTML string, with the Markdown
    file `preface` after the file's introduction. Errors name the file, and for math the line where
    the row's docs start. `doc_filter` is the site's filter of the docs (`filter_docs`).
    """
    md = _docs_parser()
    layout_items = layout(filter_docs(parse_file(path), doc_filter), md)
    sources = {}
    if preface:
        text = Path(preface).read_text(encoding='utf-8')
        extra = preface_items(text, md, substitutions)
        sources = {id(item): preface for item in extra}
        layout_items = with_preface(layout_items, extra)
    items: list[Heading | str] = []
    for item in layout_items:
        if isinstance(item, Heading):
            items.append(item)
            continue
        try:
            items.append(row_html(item, md))
        except LatexError as error:
            source = sources.get(id(item), path)
            raise ValueError(f'{source}, line {item.doc_line}: {error}') from error
    return items


def row_html(section: Section, md: MarkdownIt) -> str:
    """The row's markup, as the Sphinx directive writes it: a docs cell and a code cell."""
    doc = md.render(section.doc) if section.doc else ''
    code = _highlight(section) if section.code else ''
    return (f'<div class="{" ".join(row_classes(section))}">'
            f'<div class="annotate-doc">\n{doc}</div>'
            f'<div class="annotate-code">{code}</div></div>')


def _highlight(section: Section) -> str:
    """Pygments HTML of the code with inline line numbers that start at the real first line,
    as Sphinx writes a `literal_block` with `linenos`, each line a span that knows its hanging
    indent (`sidebyside.highlight`). Tabs become spaces at Python's stops, as on the Sphinx page."""
    from pygments import highlight
    from pygments.lexers import PythonLexer

    from .highlight import LineFormatter

    formatter = LineFormatter(linenos='inline', linenostart=section.first_line)
    return highlight(section.code.expandtabs(), PythonLexer(stripnl=False), formatter)


def _docs_parser() -> MarkdownIt:
    """
    ### The docs

    markdown-it as MyST configures it for the Sphinx pages: CommonMark, tables, `$` and `$$` math
    (also `$$` inside a paragraph, which stands between two paragraphs as on the Sphinx page), amsmath
    environments, raw HTML escaped, typographic quotes. Math is the Sphinx renderer's markup: `<span class="math notranslate">`
    and `<div class="math notranslate">` around MathML, punctuation glued to inline math.
    """
    from mdit_py_plugins.amsmath import amsmath_plugin

    md = markdown_parser().use(amsmath_plugin)
    # Curly quotes, dashes and ellipses, as docutils' smart quotes give the Sphinx pages.
    md.options['typographer'] = True
    md.enable(['smartquotes'])
    md.core.ruler.before('smartquotes', 'sidebyside_replacements', _dashes_and_ellipses)
    md.add_render_rule('math_inline', _inline_math)
    for rule in ('math_block', 'math_block_label', 'math_inline_double'):
        md.add_render_rule(rule, _display_math)
    md.add_render_rule('amsmath', _amsmath)
    md.add_render_rule('code_inline', _inline_code)
    md.add_render_rule('fence', _code_block)
    md.add_render_rule('code_block', _code_block)
    md.core.ruler.push('sidebyside_hoist_display_math', _hoist_display_math)
    md.core.ruler.push('sidebyside_glue_math', _glue_punctuation)
    return md


def _dashes_and_ellipses(state: StateCore) -> None:
    """markdown-it's typographic replacements without `(c)`, `(r)` and `(tm)` as symbols, which
    docutils leaves alone: `Intel(R)` reads the same on both sites."""
    from markdown_it.rules_core.replacements import RARE_RE, replace_rare

    for token in state.tokens:
        if token.type == 'inline' and token.children and RARE_RE.search(token.content):
            replace_rare(token.children)


# Inline code as the Sphinx page writes it, each word in a `span.pre`, in a `<code>` of these
# classes: not `docutils`, which MkDocs' `readthedocs` theme gives its tables and lays out as a block.
LITERAL = 'literal notranslate'
# Its pieces, as docutils splits it: words, single spaces or line ends, longer runs of spaces.
_WORDS_AND_SPACES = re.compile(r'[^ \n]+| +|\n')


def code_words(code: str) -> str:
    """
    ### Inline code

    The HTML of inline `code`, each word in a `<span class="pre">` as on the Sphinx page: the
    stylesheet keeps a word on one line, so a line may end between `--seeds` and `10` but not
    after the dashes of `--summary-json`, which would read as two words. A run of spaces keeps
    its width, and a line may end at its last space.
    """
    pieces = []
    for token in _WORDS_AND_SPACES.findall(code):
        if token.strip():
            pieces.append(f'<span class="pre">{html.escape(token, quote=False)}</span>')
        elif token in (' ', '\n'):
            pieces.append(token)
        else:
            pieces.append('&#160;' * (len(token) - 1) + ' ')
    return ''.join(pieces)


def _inline_code(renderer: Any, tokens: list, index: int, options: Any, env: Any) -> str:
    return f'<code class="{LITERAL}">{code_words(tokens[index].content)}</code>'


def _code_block(renderer: Any, tokens: list, index: int, options: Any, env: Any) -> str:
    """A code block in the docs, highlighted by Pygments as Sphinx does it: in the language its fence
    names, Python without one, plain text for a language Pygments does not know."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer, TextLexer, get_lexer_by_name
    from pygments.util import ClassNotFound

    token = tokens[index]
    language = token.info.strip().split(' ')[0] if token.info else ''
    try:
        lexer = get_lexer_by_name(language) if language else PythonLexer()
    except ClassNotFound:
        lexer = TextLexer()
    code = highlight(token.content, lexer, HtmlFormatter())
    return f'<div class="highlight-{language or "default"} notranslate">{code}</div>\n'


def _inline_math(renderer: Any, tokens: list, index: int, options: Any, env: Any) -> str:
    mathml = to_mathml(tokens[index].content.strip(), False)
    return f'<span class="math notranslate">{mathml}</span>'


def _display_math(renderer: Any, tokens: list, index: int, options: Any, env: Any) -> str:
    tex = display_tex(tokens[index].content.strip())
    return f'<div class="math notranslate">{to_mathml(tex, True)}</div>\n'


def _amsmath(renderer: Any, tokens: list, index: int, options: Any, env: Any) -> str:
    mathml = to_mathml(tokens[index].content, True)
    return f'<div class="math notranslate">{mathml}</div>\n'


def _hoist_display_math(state: StateCore) -> None:
    """Splits a paragraph around `$$...$$` inside it, so the formula is a block between two paragraphs
    (HTML allows no `<div>` in a `<p>`)."""
    from markdown_it.token import Token

    tokens: list[Token] = []
    index = 0
    while index < len(state.tokens):
        opening = state.tokens[index]
        inline = state.tokens[index + 1] if index + 1 < len(state.tokens) else None
        if (opening.type != 'paragraph_open' or inline is None or inline.type != 'inline'
                or not any(child.type == 'math_inline_double'
                           for child in inline.children or [])):
            tokens.append(opening)
            index += 1
            continue
        closing = state.tokens[index + 2]
        pieces: list[list[Token]] = [[]]
        for child in inline.children or []:
            if child.type == 'math_inline_double':
                block = Token('math_block', 'div', 0, content=child.content, block=True)
                pieces += [[block], []]
            else:
                pieces[-1].append(child)
        for piece in pieces:
            if piece and piece[0].type == 'math_block':
                tokens.append(piece[0])
                continue
            while piece and piece[0].type in ('softbreak', 'hardbreak'):
                piece.pop(0)
            while piece and piece[-1].type in ('softbreak', 'hardbreak'):
                piece.pop()
            if any(child.content.strip() or child.type != 'text' for child in piece):
                text = copy(inline)
                text.children = piece
                tokens += [copy(opening), text, copy(closing)]
        index += 3
    state.tokens = tokens


def _glue_punctuation(state: StateCore) -> None:
    """Wraps inline math and the punctuation touching it in `<span class="math-nowrap">`."""
    from markdown_it.token import Token

    for token in state.tokens:
        children = token.children or []
        index = 0
        while index < len(children):
            if children[index].type != 'math_inline':
                index += 1
                continue
            after = _take(children, index + 1, CLOSING, at_start=True)
            before = _take(children, index - 1, OPENING, at_start=False) if index else ''
            if not (before or after):
                index += 1
                continue
            math = children[index]
            glued = [Token('html_inline', '', 0, content='<span class="math-nowrap">')]
            glued += [Token('text', '', 0, content=before)] * bool(before) + [math]
            glued += [Token('text', '', 0, content=after)] * bool(after)
            glued.append(Token('html_inline', '', 0, content='</span>'))
            children[index:index + 1] = glued
            index += len(glued)


def _take(children: list, index: int, pattern: re.Pattern, at_start: bool) -> str:
    """Takes the punctuation matching `pattern` off the start (or end) of the text token
    `children[index]`, if there is one, and returns it (escaped, as the renderer would)."""
    if not 0 <= index < len(children) or children[index].type != 'text':
        return ''
    text = children[index].content
    match = pattern.search(text)
    if match is None:
        return ''
    children[index].content = text[match.end():] if at_start else text[:match.start()]
    return match.group()


# ## The page's own text
#
# A MyST `{doc}` role: `` {doc}`title <path>` `` or `` {doc}`path` ``.
DOC_ROLE = r'\{doc\}`(?P<body>[^`]+)`'


class DocRoleProcessor(InlineProcessor):
    """A link to the page's Markdown file, which MkDocs resolves (and checks) like any link."""

    def handleMatch(self, match: re.Match, data: str) -> tuple[etree.Element, int, int]:
        body = match['body'].strip()
        titled = re.fullmatch(r'(?P<title>.*?)\s*<(?P<path>[^<>]+)>', body, re.DOTALL)
        title, path = (titled['title'], titled['path']) if titled else (body, body)
        link = etree.Element('a', {'href': f'{path}.md'})
        link.text = title
        return link, match.start(0), match.end(0)


class InlineCodeTreeprocessor(Treeprocessor):
    """The page's own inline code, `<code>` outside `<pre>`, written as the rows write it
    (`code_words`). Python-Markdown has escaped its text already; code that another extension
    marked up (highlighted, say) is left as it is."""

    def run(self, root: etree.Element) -> None:
        for parent in root.iter():
            if parent.tag == 'pre':
                continue
            for code in parent.iterfind('code'):
                if len(code) == 0 and not code.get('class'):
                    words = code_words(html.unescape(code.text or ''))
                    code.set('class', LITERAL)
                    code.text = self.md.htmlStash.store(words)


class MathTreeprocessor(Treeprocessor):
    """`pymdownx.arithmatex` (generic) leaves `<span class="arithmatex">\\(...\\)</span>` and
    `<div class="arithmatex">\\[...\\]</div>`; here they become MathML with the Sphinx markup.
    A formula that cannot be rendered is an error that names its line in the `page`."""

    def __init__(self, md: Markdown, page: PageText) -> None:
        super().__init__(md)
        self.page = page

    def run(self, root: etree.Element) -> None:
        for element in root.iter():
            if 'arithmatex' not in element.get('class', '').split():
                continue
            tex = (element.text or '').strip()
            display = element.tag == 'div'
            tex = (tex[2:-2] if tex[:2] in ('\\(', '\\[') else tex).strip()
            try:
                mathml = to_mathml(display_tex(tex) if display else tex, display)
            except LatexError as error:
                raise PageError(f'{self.page.where(tex)}: {error}') from error
            element.set('class', 'math notranslate')
            element.text = self.md.htmlStash.store(mathml)

