"""Tests for the side-by-side page renderer `sidebyside`: the parser, the Sphinx extension and the
Python-Markdown extension, which must write the same rows."""

import ast
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from docutils import nodes

from sidebyside import CSS_FILE, STYLESHEET, Heading, Section, heading_anchor, layout, parse, parse_file

REPO = Path(__file__).resolve().parents[1]


def src(text: str) -> str:
    """Test sources are written indented; strip the common indentation and the first newline."""
    return textwrap.dedent(text).lstrip('\n')


# A docstring's opening or closing quotes, which are not part of its text.
DOCSTRING_QUOTES = re.compile('^[rRuU]?("{3}|\'{3})|("{3}|\'{3})$')


def check_faithful(source: str, sections: list[Section]) -> None:
    """The invariants every split must keep:
    each code cell is exactly its lines of the file, cells are in order and do not overlap,
    cells neither start nor end with a blank line, and no text of the file is lost."""
    lines = source.replace('\r\n', '\n').split('\n')
    # Front matter at the top of the module docstring is metadata, not prose.
    covered = set(range(2, lines.index('---', 2) + 2)) if lines[1:2] == ['---'] else set()
    previous_last = 0
    for section in sections:
        assert section.doc or section.code, section
        if section.code:
            assert section.code == '\n'.join(lines[section.first_line - 1:section.last_line])
            assert lines[section.first_line - 1].strip() and lines[section.last_line - 1].strip()
            assert section.first_line > previous_last
            previous_last = section.last_line
        else:
            assert section.last_line == section.first_line - 1
        covered.update(range(section.first_line, section.last_line + 1))
    docs = '\n'.join(section.doc for section in sections)
    for number, line in enumerate(lines, start=1):
        text = DOCSTRING_QUOTES.sub('', line.strip().lstrip('#').strip()).strip()
        if number not in covered and text:
            assert text in docs, f'line {number} lost: {line!r}'


def split(source: str) -> list[Section]:
    sections = parse(source, 'test.py')
    check_faithful(source, sections)
    return sections


def test_hash_inside_strings_is_code():
    source = src('''
        x = "# not a comment"
        y = """
        # not a comment either
        """
        z = f"{x}#{y}"
        ''')
    assert split(source) == [Section('', source.rstrip('\n'), 1, 5, 1)]


def test_end_of_line_comments_stay_in_code():
    source = src('''
        # Set up
        x = 1  # the <one>
        y = 2
        ''')
    [section] = split(source)
    assert section.doc == 'Set up'
    assert section.code == 'x = 1  # the <one>\ny = 2'
    assert (section.first_line, section.last_line) == (2, 3)


def test_comment_blocks_explain_the_code_below():
    source = src('''
        # First line
        # second line
        #
        # new paragraph
        a = 1

        # Next block
        b = 2
        ''')
    first, second = split(source)
    assert first == Section('First line\nsecond line\n\nnew paragraph', 'a = 1', 5, 5, 1)
    assert second == Section('Next block', 'b = 2', 8, 8, 7)


def test_comment_markdown_indentation_is_kept():
    source = src('''
        # A list:
        #
        # * item
        #   continued
        #
        #     indented code
        x = 1
        ''')
    [section] = split(source)
    assert section.doc == 'A list:\n\n* item\n  continued\n\n    indented code'


def test_comments_inside_brackets_stay_in_code():
    source = src('''
        # Call
        total = sum([
            # the first
            1,
            2,
        ])
        ''')
    [section] = split(source)
    assert section.doc == 'Call'
    assert '# the first' in section.code and (section.first_line, section.last_line) == (2, 6)


def test_decorators_stay_with_their_definition():
    source = src('''
        import functools


        # A cached square
        @functools.lru_cache(maxsize=None)
        # keep me with the code
        @staticmethod
        def square(x):
            return x * x
        ''')
    _, section = split(source)
    assert section.doc == 'A cached square'
    assert section.code.startswith('@functools.lru_cache') and '# keep me with the code' in section.code
    assert (section.first_line, section.last_line) == (5, 9)


def test_docstring_goes_above_its_decorated_header():
    source = src('''
        # Comment before
        @decorator
        def f(a,
              b):
            """
            Docstring of `f`.
            """
            return a + b
        ''')
    header, body = split(source)
    # The docstring's text keeps its distance from the comment's, in lines, as in the file
    assert header == Section('Comment before\n\n\n\n\nDocstring of `f`.', '@decorator\ndef f(a,\n      b):',
                             2, 4, 1)
    assert body == Section('', '    return a + b', 8, 8, 8)


def test_nested_functions():
    source = src('''
        def outer(x):
            """Outer docstring."""
            # The inner helper
            def inner(y):
                """Inner docstring."""
                return y + 1

            return inner(x)
        ''')
    sections = split(source)
    assert [(s.doc, s.first_line, s.last_line) for s in sections] == [
        ('Outer docstring.', 1, 1),
        ('The inner helper\n\nInner docstring.', 4, 4),
        ('', 6, 8),
    ]
    assert sections[2].code == '        return y + 1\n\n    return inner(x)'


def test_one_line_definition_keeps_its_docstring_in_code():
    source = 'def f(): """doc"""\n'
    assert split(source) == [Section('', 'def f(): """doc"""', 1, 1, 1)]


def test_blank_line_runs():
    source = '\n\n# Doc\n\n\na = 1\n\n\n\nb = 2\n\n\n'
    [section] = split(source)
    assert section == Section('Doc', 'a = 1\n\n\n\nb = 2', 6, 10, 3)


def test_code_without_comments():
    source = 'import os\n\nprint(os.sep)\n'
    assert split(source) == [Section('', 'import os\n\nprint(os.sep)', 1, 3, 1)]


def test_comment_only_file():
    source = '# Just a note\n# on two lines\n'
    assert split(source) == [Section('Just a note\non two lines', '', 3, 2, 1)]
    assert split('# no newline at the end') == [Section('no newline at the end', '', 2, 1, 1)]


def test_empty_file():
    assert split('') == []
    assert split('\n\n') == []


def test_shebang_and_coding_cookie_stay_in_code():
    source = '#!/usr/bin/env python\n# -*- coding: utf-8 -*-\n# Doc\nx = 1\n'
    first, second = split(source)
    assert first.code == '#!/usr/bin/env python\n# -*- coding: utf-8 -*-' and first.doc == ''
    assert second == Section('Doc', 'x = 1', 4, 4, 3)


def test_non_ascii():
    source = src('''
        # Größe $\\alpha$ → β
        λ = "ü"  # ψ
        def größe():
            """Maß für ü."""
            return λ
        def g():
            """üüüüüüüüüü"""#
        ''')
    sections = split(source)
    # `ast` counts columns in UTF-8 bytes: the last docstring shares its line with a comment,
    # so it stays in the code, and the comment is not lost.
    assert sections == [Section('Größe $\\alpha$ → β', 'λ = "ü"  # ψ', 2, 2, 1),
                        Section('Maß für ü.', 'def größe():', 3, 3, 4),
                        Section('', '    return λ\ndef g():\n    """üüüüüüüüüü"""#', 5, 7, 5)]


def test_crlf_line_endings(tmp_path):
    source = src('''
        """Module."""

        # Doc
        x = 1  # end
        ''')
    crlf = source.replace('\n', '\r\n')
    assert parse(crlf) == parse(source)
    path = tmp_path / 'crlf.py'
    path.write_bytes(crlf.encode())
    assert parse_file(path) == parse(source)
    assert all('\r' not in section.code + section.doc for section in parse_file(path))


def test_encoding_cookie_is_honoured(tmp_path):
    path = tmp_path / 'latin.py'
    path.write_bytes('# -*- coding: latin-1 -*-\n# Größe\nx = "é"\n'.encode('latin-1'))
    assert parse_file(path)[1] == Section('Größe', 'x = "é"', 3, 3, 2)


def test_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / 'broken.py'
    path.write_text('x = 1\n\ndef f(:\n    pass\n')
    with pytest.raises(ValueError, match=r'broken\.py, line 3: not valid Python'):
        parse_file(path)
    with pytest.raises(ValueError, match=r'^mod\.py, line 2:'):
        parse('x = (\n]\n', 'mod.py')


def test_an_expression_too_deep_for_the_parser_names_the_file(tmp_path):
    """Generated code with thousands of terms in one expression overflows Python's own parser
    (Python cannot compile it either): an error that names the file, not a bare RecursionError."""
    path = tmp_path / 'deep.py'
    path.write_text('x = ' + '1 + ' * 20000 + '1\n', encoding='utf-8')
    with pytest.raises(ValueError,
                       match=r'deep\.py: not valid Python \(.*(recursion|nest)'):
        parse_file(path)


def test_line_numbers_of_a_real_module():
    """Every section of the repository's own files quotes its lines exactly."""
    for path in (REPO / 'sidebyside' / '__init__.py', REPO / 'labml_gat' / 'gatv2.py'):
        source = path.read_text(encoding='utf-8')
        sections = parse(source, str(path))
        check_faithful(source, sections)
        lines = source.split('\n')
        for section in sections:
            if section.doc:
                first_words = section.doc.split('\n')[0].strip()
                assert first_words in lines[section.doc_line - 1], (section.doc_line, first_words)


def test_docstrings_become_prose_as_written():
    source = src('''
        """
        ---
        title: Front matter is metadata, not prose
        ---

        Module prose with $\\text{math}$ and $\\frac{a}{b}$.
        """

        import math


        class Thing:
            """A thing."""
        ''')
    sections = split(source)
    # The source text of the docstring: `\\t` and `\\f` stay LaTeX, not a tab and a form feed.
    assert sections[0] == Section('Module prose with $\\text{math}$ and $\\frac{a}{b}$.', 'import math', 9, 9, 6)
    assert sections[1] == Section('A thing.', 'class Thing:', 12, 12, 13)


def test_headings_become_headings():
    source = src('''
        """
        # Title

        Intro.

        ## Part one

        Text of part one.
        """

        import os

        # ### Detail
        #
        # ```python
        # # not a heading: inside a code block
        # ```
        x = 1
        ''')
    items = layout(split(source))
    assert items == [
        Heading(1, 'Title', 2),
        Section('Intro.', '', 11, 10, 4),
        Heading(2, 'Part one', 6),
        Section('Text of part one.', 'import os', 11, 11, 8),
        Heading(3, 'Detail', 13),
        Section('```python\n# not a heading: inside a code block\n```', 'x = 1', 18, 18, 15),
    ]


def test_a_long_note_beside_short_code_spans_the_page():
    """The leading blocks of a note much taller than its code get a row of their own, without code;
    the last paragraph, about as tall as the code, stays beside it; no text is lost or repeated."""
    words = ' '.join(['word'] * 60)
    source = src(f'''
        # {words}
        #
        # * first item {words}
        # * second item {words}
        #
        # Beside the code.
        import os
        import sys
        ''')
    items = layout(split(source))
    assert items == [Section(f'{words}\n\n* first item {words}\n* second item {words}', '', 7, 6, 1),
                     Section('Beside the code.', 'import os\nimport sys', 7, 8, 6)]


def test_a_note_with_long_command_lines_beside_short_code_spans_the_page():
    """A code block in a note keeps its lines, which would scroll in the narrow docs column: a few
    long commands beside a few imports move to a row of their own, where they are read whole."""
    command = 'python experiments/benchmark.py ' + ' '.join(['--flag value'] * 5)
    fence = '\n'.join(['```bash', *[command] * 6, '```'])
    imports = '\n'.join(f'import m{number}' for number in range(8))
    source = '\n'.join(f'# {line}'.rstrip() for line in ['Run:', '', *fence.split('\n')]) + '\n' + imports + '\n'
    note, beside = layout(split(source))
    assert not note.code and beside.code == imports
    short = '\n'.join(f'# {line}'.rstrip() for line in ['Run:', '', '```bash', *['ls'] * 6, '```'])
    assert len(layout(split(short + '\n' + imports + '\n'))) == 1


def test_a_note_as_tall_as_its_code_stays_beside_it():
    code = '\n'.join(f'x{number} = {number}' for number in range(12))
    source = f'# One short paragraph.\n#\n# And another.\n{code}\n'
    assert layout(split(source)) == [Section('One short paragraph.\n\nAnd another.', code, 4, 15, 1)]


def test_a_long_list_beside_a_signature_spans_the_page_above_it():
    """One block taller than the code cannot be split: the whole note goes above the code."""
    items = '\n'.join(f'        * `arg{number}` is {" ".join(["the"] * 30)}' for number in range(6))
    source = src(f'''
        def f(a, b):
            """
{items}
            """
            return a
        ''')
    note, code, body = layout(split(source))
    assert body.code == '    return a'
    assert not note.code and note.doc.startswith('* `arg0`') and note.doc.count('* `arg') == 6
    assert code.doc == '' and code.code == 'def f(a, b):' and code.first_line == 1


def test_line_formatter_hangs_each_line_one_indent_deeper():
    """Each line is a span whose `--hang` is its number's width, its indentation and four columns;
    a numbered line is a permalink; the text is unchanged."""
    from pygments import highlight
    from pygments.lexers import PythonLexer

    from sidebyside.highlight import LineFormatter

    code = 'def f():\n        return 1\n'
    out = highlight(code, PythonLexer(), LineFormatter(linenos='inline', linenostart=9))
    lines = BeautifulSoup(out, 'html.parser').select('pre > span.line')
    assert [line['style'] for line in lines] == ['--hang: 7ch', '--hang: 15ch']
    assert [line['id'] for line in lines] == ['L9', 'L10']
    assert lines[1].select_one('.linenos a')['href'] == '#L10'
    assert [line.get_text() for line in lines] == [' 9def f():\n', '10        return 1\n']


@pytest.mark.parametrize('module', ['__init__.py', 'mathml.py'])
def test_import_needs_only_the_standard_library(module):
    """Sphinx, MyST, markdown-it, math-core and Pygments are imported inside the functions that use
    them: the parser works in any project, and neither engine is needed to import the package."""
    tree = ast.parse((REPO / 'sidebyside' / module).read_text(encoding='utf-8'))
    modules = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert {module.split('.')[0] for module in modules} <= set(sys.stdlib_module_names) | {'__future__'}


def test_import_without_sphinx_or_markdown():
    """The package knows nothing of the model code either: a fresh interpreter imports it alone."""
    code = ('import sys; import sidebyside, sidebyside.mathml; '
            'assert not {"sphinx", "docutils", "markdown", "markdown_it", "labml_gat", "torch"} & set(sys.modules)')
    subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True,
                   env={**os.environ, 'PYTHONPATH': str(REPO)})


def test_heading_anchors():
    """One rule for both engines, docutils' ids, and `-1`, `-2`, ... for repeated titles."""
    for title in ('Score e_{ij} of GATv2', 'Größe & façade', ' 2. The  step ', 'Über-Graph'):
        assert heading_anchor(title) == nodes.make_id(title), title
    assert heading_anchor('Score $e_{ij}$ of GATv2') == 'score-e-ij-of-gatv2'
    assert heading_anchor('2. Step') == 'step' and heading_anchor('!!!') == 'section'
    assert heading_anchor('Step', {'step'}) == 'step-1'
    assert heading_anchor('Step', {'step', 'step-1'}) == 'step-2'


def test_one_stylesheet_and_no_css_in_python():
    assert STYLESHEET.is_file() and '.annotate-row' in STYLESHEET.read_text(encoding='utf-8')
    for module in (REPO / 'sidebyside').glob('*.py'):
        assert 'grid-template-columns' not in module.read_text(encoding='utf-8'), module


# A source file with everything the Sphinx page must get right.
SAMPLE = r'''"""
# Sample module

Prose with $\alpha_i$ and <script>alert("doc")</script>.

## First part

Display:

$$\sum_j x_j$$
"""

import math

# Comment with <b>bold</b> & $x < y$, then
# $$e = mc^2$$
# inside a paragraph, and a [link](other.html).
value = "<img src=x onerror=alert(1)>"  # trailing <i>


class Thing:
    """
    ## The thing

    A thing.
    """

    def size(self) -> int:
        # ### Size
        #
        # Always one.
        return 1
'''


def build_site(root: Path, pages: dict[str, str], sources: dict[str, str]):
    """Builds a Sphinx project with MyST and this extension, as `sphinx-build -W` would:
    Python `sources` in `root`, `pages` in `root/docs`. Returns the app and the warnings."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    docs = root / 'docs'
    docs.mkdir()
    for name, text in sources.items():
        (root / name).write_text(text, encoding='utf-8')
    pages = {'conf.py': "project = 'test'\nextensions = ['myst_parser', 'sidebyside.sphinx']\n"
                        "myst_enable_extensions = ['dollarmath', 'amsmath']\n", **pages}
    for name, text in pages.items():
        (docs / name).write_text(text, encoding='utf-8')
    warnings = io.StringIO()
    # Each build registers its directives and nodes afresh, as `sphinx-build` does.
    with docutils_namespace():
        app = Sphinx(docs, docs, root / 'html', root / 'doctrees', 'html', status=None, warning=warnings,
                     freshenv=True, warningiserror=True)
        app.build()
    return app, warnings.getvalue()


@pytest.fixture(scope='module')
def sphinx_site(tmp_path_factory):
    """The sample from a MyST page and from a reStructuredText page; the build must have no warning."""
    root = tmp_path_factory.mktemp('site')
    app, warnings = build_site(root, {
        'index.md': '# Index\n\n```{toctree}\npage\nrst_page\n```\n',
        'page.md': '```{annotated-source} ../sample.py\n```\n',
        'rst_page.rst': 'Source in rST\n=============\n\n.. annotated-source:: ../sample.py\n',
    }, {'sample.py': SAMPLE})
    assert warnings == '' and app.statuscode == 0
    return app, root / 'html'


def test_sphinx_names_file_and_line_of_a_broken_source(tmp_path):
    app, warnings = build_site(tmp_path, {'index.md': '# Broken\n\n```{annotated-source} ../broken.py\n```\n'},
                               {'broken.py': 'x = 1\ndef (\n'})
    [warning] = warnings.strip().splitlines()
    assert 'index.md:3' in warning and 'broken.py, line 2: not valid Python' in warning
    assert app.statuscode == 1


@pytest.mark.parametrize('source', ['x = 1\n', '# A comment, no heading.\nx = 1\n', ''])
def test_sphinx_page_of_a_file_without_headings_is_titled_by_its_name(source, tmp_path):
    """A page needs a title for a toctree to link to it (without one Sphinx warns, and leaves the
    link out): a file with no heading at all, on a page without one, is titled by its name."""
    pages = {'index.md': '# Index\n\n```{toctree}\nbare\n```\n',
             'bare.md': '```{annotated-source} ../bare.py\n```\n'}
    app, warnings = build_site(tmp_path, pages, {'bare.py': source})
    assert warnings == '' and app.statuscode == 0
    index = BeautifulSoup((tmp_path / 'html' / 'index.html').read_text(encoding='utf-8'),
                          'html.parser')
    assert [link.get_text() for link in index.select('.toctree-wrapper a')] == ['bare.py']
    page = BeautifulSoup((tmp_path / 'html' / 'bare.html').read_text(encoding='utf-8'),
                         'html.parser')
    assert page.select_one('section')['id'] == 'bare-py'
    assert len(page.select('.annotate-row')) == (1 if source else 0)


def test_sphinx_page_rows_escaping_and_line_numbers(sphinx_site):
    _, html_dir = sphinx_site
    page = (html_dir / 'page.html').read_text(encoding='utf-8')
    assert '<title>Sample module' in page
    assert page.count('class="annotate-row') == 6
    assert 'class="annotate-row annotate-no-code' in page and 'class="annotate-doc' in page
    for raw in ('<script>alert', '<b>bold', '<img src=x', 'trailing <i>'):
        assert raw not in page
    for escaped in ('&lt;script&gt;alert', '&lt;b&gt;bold&lt;/b&gt;', '&lt;img src=x', 'trailing &lt;i&gt;'):
        assert escaped in page
    lines = SAMPLE.split('\n')
    for line in ('import math', '        return 1'):
        number = lines.index(line) + 1
        assert f'<span class="linenos"><a href="#L{number}">{number}</a></span>' in page
    # The link is a plain URL; math is MathML, display math outside paragraphs.
    assert 'href="other.html"' in page
    assert '<math><msub><mi>α</mi><mi>i</mi></msub></math>' in page and page.count('<math display="block">') == 2
    assert '<p>inside a paragraph' in page
    assert f'_static/{CSS_FILE}' in page and (html_dir / '_static' / CSS_FILE).is_file()
    assert 'annotate-row' in (html_dir / 'rst_page.html').read_text(encoding='utf-8')


def test_sphinx_headings_are_sections_in_toc_and_search(sphinx_site):
    app, html_dir = sphinx_site
    doctree = app.env.get_doctree('page')

    def outline(node: nodes.Element) -> list:
        return [(child[0].astext(), outline(child)) for child in node.children if isinstance(child, nodes.section)]

    assert outline(doctree) == [('Sample module', [('First part', []), ('The thing', [('Size', [])])])]
    index = (html_dir / 'index.html').read_text(encoding='utf-8')
    for anchor in ('page.html#first-part', 'page.html#the-thing', 'page.html#size'):
        assert anchor in index
    assert 'rst_page.html#the-thing' in index
    assert '"First part"' in (html_dir / 'searchindex.js').read_text(encoding='utf-8')


def test_sphinx_repeated_headings_get_anchors_named_after_them(tmp_path):
    step = '    """\n    ## Step\n    """\n'
    _, warnings = build_site(tmp_path, {'index.md': '```{annotated-source} ../twice.py\n```\n'},
                             {'twice.py': f'"""\n# Twice\n"""\n\n\ndef f():\n{step}\n\ndef g():\n{step}'})
    page = (tmp_path / 'html' / 'index.html').read_text(encoding='utf-8')
    assert warnings == ''
    assert '<section id="step">' in page and '<section id="step-1">' in page and 'id="id1"' not in page


# ## Math on Sphinx pages (`sidebyside.sphinx` renders MathML)


def math_project(root: Path, page: str):
    """A Sphinx project of one MyST page, built with the extension only."""
    return build_site(root, {'index.md': page}, {})


def test_sphinx_math_becomes_mathml_without_scripts(tmp_path):
    _, warnings = math_project(tmp_path, '# Math\n\nInline $a_i$, then\n\n$$\\sum_j \\alpha_{ij} = 1$$\n\n'
                                         'In brackets ($x$). Two equations:\n\n$$a = b\n\nc = d$$\n\n'
                                         '```{math}\n:label: euler\ne^{i\\pi} = -1\n```\n\nA role, {math}`\\beta`.\n')
    assert warnings == ''
    page = (tmp_path / 'html' / 'index.html').read_text(encoding='utf-8')
    assert page.count('<math display="block">') == 3 and page.count('<math>') == 3
    # Punctuation stays on the line of the formula it touches.
    assert re.search(r'<span class="math-nowrap">\(<span class="math notranslate"><math>.*?</math></span>\)\.</span>',
                     page)
    assert re.search(r'<span class="math-nowrap"><span class="math notranslate"><math>.*?</math></span>,</span>', page)
    # A labelled equation has its number and anchor; several equations in one block are aligned.
    assert 'id="equation-euler"' in page and '<span class="eqno">(1)' in page
    assert '<mtable' in page
    assert not re.search(r'<script[^>]*(mathjax|type="math)', page, re.IGNORECASE)


def test_sphinx_punctuation_glued_to_a_formula_leaves_the_same_punctuation_elsewhere(tmp_path):
    # Two lines that start with `(`: the one before the formula goes with it, the one before the
    # link stays where it is
    _, warnings = math_project(tmp_path, '# Page\n\nFirst\n([a link](https://example.org)): then\n'
                                         '($x$ after) end.\n')
    assert warnings == ''
    text = BeautifulSoup((tmp_path / 'html' / 'index.html').read_text(encoding='utf-8'),
                         'html.parser').select_one('section p').get_text()
    assert ' '.join(text.split()) == 'First (a link): then (x after) end.'


def test_sphinx_formula_math_core_cannot_render_fails_the_build(tmp_path):
    app, warnings = math_project(tmp_path, '# Broken\n\nFine $a$.\n\nBroken $\\notacommand{x}$ here.\n')
    assert app.statuscode == 1
    [error] = [line for line in warnings.splitlines() if 'math-core' in line]
    assert 'index.md:5' in error and r"'\\notacommand{x}'" in error and 'Unknown command' in error


# ## The Python-Markdown extension


def markdown_page(text: str, root: Path, **config) -> str:
    """`text` converted by Python-Markdown with the extension, paths relative to `root`."""
    import markdown

    md = markdown.Markdown(extensions=['tables', 'sidebyside.markdown'],
                           extension_configs={'sidebyside.markdown': {'base_dir': str(root), **config}})
    return md.convert(text)


def test_inline_code_is_written_as_sphinx_writes_it(tmp_path):
    """Inline code, in the page's text and in a file's docs, has each word in a `span.pre`,
    which the stylesheet keeps on one line, escaped, and a run of spaces as wide as written;
    a code block's code is left as it is."""
    (tmp_path / 'sample.py').write_text('# Run `--seeds  10 <a>`.\nx = 1\n')
    html = markdown_page('Give `--summary-json  x<y`.\n\n```{annotated-source} sample.py\n'
                         '```\n\n    a block `as written`\n', tmp_path)
    code = '<code class="literal notranslate">'
    assert (f'{code}<span class="pre">--summary-json</span>&#160; '
            f'<span class="pre">x&lt;y</span></code>') in html
    assert (f'{code}<span class="pre">--seeds</span>&#160; <span class="pre">10</span> '
            f'<span class="pre">&lt;a&gt;</span></code>') in html
    assert '<pre><code>a block `as written`\n</code></pre>' in html


def row_summary(html: str, scope: str = '') -> list[tuple]:
    """Each row: its classes, the line numbers of its code, its formulas, and its doc's text."""
    page = BeautifulSoup(html, 'html.parser')
    rows = page.select(f'{scope} .annotate-row'.strip())
    return [(tuple(c for c in row['class'] if c.startswith('annotate')),
             tuple(int(n.get_text()) for n in row.select('.annotate-code .linenos')),
             len(row.select('.annotate-doc math')),
             ' '.join(row.select_one('.annotate-doc').get_text(' ').split())) for row in rows]


def test_markdown_rows_are_the_sphinx_rows(sphinx_site, tmp_path):
    """The same sample through both engines: the same rows, line numbers, formulas and text,
    and the same headings with the same anchors."""
    _, html_dir = sphinx_site
    (tmp_path / 'sample.py').write_text(SAMPLE, encoding='utf-8')
    markdown_html = markdown_page('```{annotated-source} sample.py\n```\n', tmp_path)
    sphinx_html = (html_dir / 'page.html').read_text(encoding='utf-8')
    assert row_summary(markdown_html) == row_summary(sphinx_html)
    assert len(row_summary(markdown_html)) == 6
    headings = BeautifulSoup(markdown_html, 'html.parser').select('h1, h2, h3')
    assert [(h.name, h['id']) for h in headings] == [('h1', 'sample-module'), ('h2', 'first-part'),
                                                      ('h2', 'the-thing'), ('h3', 'size')]
    sphinx_ids = {section['id'] for section in BeautifulSoup(sphinx_html, 'html.parser').select('section')}
    assert {h['id'] for h in headings} == sphinx_ids


@pytest.mark.parametrize('document', ['CONTRIBUTING.md', 'sidebyside/markdown.py'])
def test_documented_mkdocs_themes_load_nothing_from_the_network(document):
    """The `mkdocs.yml` a reader is given turns off what its theme would fetch: Material's web
    fonts (`font: false`) and the highlight.js of MkDocs' own themes (`highlightjs: false`)."""
    import yaml

    text = (REPO / document).read_text(encoding='utf-8')
    blocks = re.findall(r'```yaml\n(.*?)```', text, re.DOTALL)
    themes = [yaml.safe_load(block)['theme'] for block in blocks if 'theme:' in block]
    assert {theme['name'] for theme in themes} >= {'material'}
    for theme in themes:
        switch = 'font' if theme['name'] == 'material' else 'highlightjs'
        assert theme.get(switch) is False, theme


def test_markdown_escapes_html_and_keeps_line_numbers(tmp_path):
    (tmp_path / 'page.py').write_text(src('''
        """
        # Title with <em>tags</em>

        Prose <script>alert("doc")</script> and $a < b$ and [bad](javascript:alert(1)).
        """

        # Comment with <b>bold</b> & <img src=x onerror=alert(2)>
        value = "<script>alert(3)</script>"  # <i>end</i>


        x = 1
        '''), encoding='utf-8')
    page = markdown_page('```{annotated-source} page.py\n```\n', tmp_path)
    for raw in ('<script>alert', '<b>bold', '<img src=x', '<i>end', '<em>tags', 'href="javascript'):
        assert raw not in page
    for escaped in ('&lt;script&gt;alert(“doc”)', 'with &lt;em&gt;tags&lt;/em&gt;', '&lt;b&gt;bold&lt;/b&gt; &amp; &lt;img src=x',
                    '&lt;i&gt;end&lt;/i&gt;', '&lt;script&gt;alert(3)'):
        assert escaped in page
    assert row_summary(page)[-1][:2] == (('annotate-row',), (8, 9, 10, 11))


def test_a_dollar_that_is_not_math_stays_text_in_both_engines(tmp_path):
    """A price or a shell variable in a comment is not a formula: as in Pandoc, and as
    `pymdownx.arithmatex` reads a page's own text, `$` opens math only before a non-space and
    closes it only after one."""
    source = ('# Costs $5 and $10 a run; `echo $HOME` with $PATH and $HOME set.\n'
              '# Math $x + 1$ stays math, as does $$y$$.\nx = 1\n')
    page = '# Dollars\n\n```{annotated-source} ../m.py\n```\n'
    app, warnings = build_site(tmp_path, {'index.md': page}, {'m.py': source})
    assert warnings == '' and app.statuscode == 0
    sphinx_html = (tmp_path / 'html' / 'index.html').read_text(encoding='utf-8')
    sphinx_rows = row_summary(sphinx_html)
    markdown_rows = row_summary(markdown_page('```{annotated-source} m.py\n```\n', tmp_path))
    assert markdown_rows == sphinx_rows
    [(_, lines, formulas, text)] = markdown_rows
    assert lines == (3,) and formulas == 2
    assert text.startswith('Costs $5 and $10 a run; echo $HOME with $PATH and $HOME set.')


def test_markdown_display_math_in_a_paragraph_stands_between_paragraphs(tmp_path):
    (tmp_path / 'm.py').write_text('# Before, ($x$), then\n# $$e = mc^2$$\n# after.\nx = 1\n', encoding='utf-8')
    page = BeautifulSoup(markdown_page('```{annotated-source} m.py\n```\n', tmp_path), 'html.parser')
    doc = page.select_one('.annotate-doc')
    assert [child.name for child in doc.find_all(recursive=False)] == ['p', 'div', 'p']
    assert doc.select_one('div.math > math[display="block"]')
    assert doc.select_one('span.math-nowrap').get_text() == '(x),'


def test_markdown_broken_formula_names_file_and_line(tmp_path):
    (tmp_path / 'bad.py').write_text('x = 1\n\n# Broken $\\notacommand{x}$\ny = 2\n', encoding='utf-8')
    with pytest.raises(ValueError, match=r"bad\.py, line 3: math-core cannot render .*notacommand"):
        markdown_page('```{annotated-source} bad.py\n```\n', tmp_path)
    with pytest.raises(ValueError, match='not valid Python'):
        (tmp_path / 'broken.py').write_text('def (\n', encoding='utf-8')
        markdown_page('```{annotated-source} broken.py\n```\n', tmp_path)
    with pytest.raises(ValueError, match='annotated-source: .*missing.py'):
        markdown_page('```{annotated-source} missing.py\n```\n', tmp_path)


def test_markdown_broken_formula_in_the_page_names_its_line(tmp_path):
    """A formula of the page's own text that cannot be rendered names its line: in the page, or in
    the file an `{include}` block adds to it."""
    pytest.importorskip('pymdownx.arithmatex')
    with pytest.raises(ValueError, match=r'^line 5: math-core cannot render .*notacommand'):
        markdown_page('# Page\n\nFine $x$.\n\nBroken $\\notacommand{x}$.\n', tmp_path)
    (tmp_path / 'part.md').write_text('Part, $x$.\n\n$$\na \\\\ \\bad{y}\n$$\n', encoding='utf-8')
    with pytest.raises(ValueError, match=r'part\.md, line 4: math-core cannot render .*bad'):
        markdown_page('# Page\n\n```{include} part.md\n```\n', tmp_path)


def test_markdown_reads_pages_written_for_myst(tmp_path):
    """Page math is MathML, a `{doc}` role is a link to the Markdown page, a toctree is dropped,
    and a block shown inside another fence stays an example."""
    page = markdown_page(src('''
        # Home

        Inline $\\alpha_i$ and see {doc}`the layer <labml_gat/gatv2>` or {doc}`plain`.

        $$e_{ij} = a^\\top h$$

        ````md
        ```{annotated-source} nothing.py
        ```
        ````

        ```{toctree}
        :hidden:

        labml_gat/gatv2
        ```
        '''), tmp_path)
    html = BeautifulSoup(page, 'html.parser')
    assert html.select_one('span.math > math') and html.select_one('div.math > math[display="block"]')
    assert [(a['href'], a.get_text()) for a in html.select('a')] == [('labml_gat/gatv2.md', 'the layer'),
                                                                    ('plain.md', 'plain')]
    assert 'toctree' not in page and '{annotated-source} nothing.py' in html.get_text()
    assert '$' not in html.get_text()


def test_markdown_code_lines_carry_their_hanging_indent(tmp_path):
    """The MkDocs rows' code is written by the same line formatter as Sphinx's: each line a span
    with its `--hang`, which `sidebyside.css` turns into a hanging indent."""
    (tmp_path / 'h.py').write_text('# Doc.\ndef f():\n    return 1\n', encoding='utf-8')
    page = BeautifulSoup(markdown_page('```{annotated-source} h.py\n```\n', tmp_path), 'html.parser')
    lines = page.select('.annotate-code pre > span.line')
    assert [(line['id'], line['style']) for line in lines] == [('L2', '--hang: 6ch'), ('L3', '--hang: 10ch')]
    assert '.annotate-code pre > .line' in STYLESHEET.read_text(encoding='utf-8')


def test_tab_indented_code_hangs_under_its_indentation_in_both_engines(tmp_path):
    """A line indented with tabs is shown at Python's tab stops, every 8 columns, and its
    `--hang` counts them: a wrapped line continues under itself, not left of its start."""
    source = '# Doc.\nclass A:\n\tdef f(self):\n\t\treturn "a\tb"\n'
    page = '# Tabs\n\n```{annotated-source} ../t.py\n```\n'
    app, warnings = build_site(tmp_path, {'index.md': page}, {'t.py': source})
    assert warnings == '' and app.statuscode == 0
    sphinx_html = (tmp_path / 'html' / 'index.html').read_text(encoding='utf-8')
    markdown_html = markdown_page('```{annotated-source} t.py\n```\n', tmp_path)
    for html in (markdown_html, sphinx_html):
        lines = BeautifulSoup(html, 'html.parser').select('.annotate-code pre > .line')
        hangs = [line['style'] for line in lines]
        assert hangs == ['--hang: 6ch', '--hang: 14ch', '--hang: 22ch']
        assert [line.get_text()[1:] for line in lines] == [
            'class A:\n', ' ' * 8 + 'def f(self):\n', ' ' * 16 + 'return "a       b"\n']


def read_rows_in_chromium(rows: str, theme: str, script: str, folder: Path):
    """What `script` finds in a page of `rows` under a `theme`'s stylesheet, which comes before the
    renderer's, as a theme's does in Sphinx and MkDocs, at desktop width."""
    from test_browser import CHROMIUM, CHROMIUM_ARGS, _missing_browser

    if _missing_browser() and not os.environ.get('CI'):
        pytest.skip(_missing_browser())
    from playwright.sync_api import sync_playwright

    stylesheet = STYLESHEET.read_text(encoding='utf-8')
    (folder / 'page.html').write_text(
        f'<!doctype html><html><head><style>{theme}</style>'
        f'<style>{stylesheet}</style>'
        f'</head><body style="width: 1200px">{rows}</body></html>', encoding='utf-8')
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={'width': 1400, 'height': 900})
        page.goto((folder / 'page.html').as_uri())
        found = page.evaluate(script)
        browser.close()
    return found


@pytest.mark.slow
def test_the_code_background_fills_its_cell_under_a_theme_that_colours_pre(tmp_path):
    """Themes colour `pre` and Pygments' box on their own (MkDocs' `mkdocs` theme a white `pre`,
    Sphinx's Alabaster a beige `.highlight`): beside docs taller than the code, the cell below the
    lines has the lines' background, not a band of another colour."""
    code = '\n'.join(f'x{number} = {number}' for number in range(6))
    note = '# ' + 'A note. ' * 50
    (tmp_path / 'c.py').write_text(f'{note}\n{code}\n', encoding='utf-8')
    rows = markdown_page('```{annotated-source} c.py\n```\n', tmp_path)
    for theme in ('pre { background: #fff; } .highlight { background: #f8f8f8; }',
                  '.highlight { background: #faf3e8; }'):
        top, bottom, tall = read_rows_in_chromium(rows, theme, """() => {
            const cell = document.querySelector('.annotate-code');
            const box = cell.getBoundingClientRect();
            const seen = y => {
                let element = document.elementFromPoint(box.left + box.width / 2, y);
                const clear = 'rgba(0, 0, 0, 0)';
                while (getComputedStyle(element).backgroundColor === clear)
                    element = element.parentElement;
                return getComputedStyle(element).backgroundColor;
            };
            const last = cell.querySelector('pre > .line:last-child');
            const below = box.bottom - last.getBoundingClientRect().bottom;
            return [seen(box.top + 5), seen(box.bottom - 2), below > 20];
        }""", tmp_path)
        assert tall and top == bottom, theme


@pytest.mark.slow
def test_long_code_lines_wrap_under_read_the_docs_theme(tmp_path):
    """sphinx_rtd_theme keeps every highlighted line on one line, by a rule more specific than a
    plain `.annotate-code pre` (`.rst-content div[class^=highlight] pre`, as its stylesheet has
    it): in the code column a long line still wraps, rather than hide its end behind a scroll bar."""
    call = 'value = combine(' + ', '.join(f'argument_{number}' for number in range(20)) + ')'
    (tmp_path / 'w.py').write_text(f'# A long line.\n{call}\n', encoding='utf-8')
    rows = markdown_page('```{annotated-source} w.py\n```\n', tmp_path)
    theme = ('.rst-content div[class^=highlight] pre'
             '{white-space:pre;margin:0;padding:12px;display:block;overflow:auto}')
    scrolled, lines = read_rows_in_chromium(f'<div class="rst-content">{rows}</div>', theme, """() => {
        const pre = document.querySelector('.annotate-code pre');
        const line = document.createRange();
        line.selectNodeContents(pre.querySelector('.line:last-child'));
        return [pre.scrollWidth - pre.clientWidth,
                new Set([...line.getClientRects()].map(box => Math.round(box.top))).size];
    }""", tmp_path)
    assert scrolled <= 1 and lines > 1, (scrolled, lines)


PREFACED = '"""\n# Title\n\nIntro.\n\n## Part\n\nText.\n"""\n\nx = 1\n'
PREFACE = '## Use it\n\nWith {{ thing }} and $a_i$:\n\n```python\nuse(x)\n```\n'


def test_preface_follows_the_introduction_in_both_engines(tmp_path):
    """A page's own Markdown (`:preface:`) sits between the file's introduction and its second
    heading, with MyST substitutions made, the same rows in both engines."""
    (tmp_path / 'p.py').write_text(PREFACED, encoding='utf-8')
    (tmp_path / 'pre.md').write_text(PREFACE, encoding='utf-8')
    page = markdown_page('```{annotated-source} p.py\n:preface: pre.md\n```\n', tmp_path,
                         substitutions={'thing': '[a link](https://example.org)'})
    html = BeautifulSoup(page, 'html.parser')
    assert [h.get_text() for h in html.select('h1, h2')] == ['Title', 'Use it', 'Part']
    assert html.select_one('.annotate-doc a[href="https://example.org"]').get_text() == 'a link'
    assert 'use(x)' in html.select('.annotate-row')[1].get_text()
    (tmp_path / 'sphinx').mkdir()
    app, warnings = build_site(tmp_path / 'sphinx', {
        'conf.py': "project = 'test'\nextensions = ['myst_parser', 'sidebyside.sphinx']\n"
                   "myst_enable_extensions = ['dollarmath', 'substitution']\n"
                   "myst_substitutions = {'thing': '[a link](https://example.org)'}\n",
        'index.md': '```{annotated-source} ../../p.py\n:preface: ../../pre.md\n```\n'}, {})
    assert warnings == '' and app.statuscode == 0
    sphinx_html = (tmp_path / 'sphinx' / 'html' / 'index.html').read_text(encoding='utf-8')
    assert row_summary(page) == row_summary(sphinx_html)
    assert [s['id'] for s in BeautifulSoup(sphinx_html, 'html.parser').select('section')] == \
        ['title', 'use-it', 'part']


def test_markdown_include_cuts_and_substitutes(tmp_path):
    """A MyST `{include}` block of a page shared with Sphinx: the named part of the file, from
    `include_dir`, with substitutions; a missing marker is an error naming the file."""
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'part.md').write_text('Skip.\n\nKeep {{ thing }}.\n\nSTOP here.\n', encoding='utf-8')
    page = markdown_page('```{include} part.md\n:start-after: Skip.\n:end-before: STOP\n```\n', tmp_path,
                         include_dir=str(tmp_path / 'docs'), substitutions={'thing': '**this**'})
    assert BeautifulSoup(page, 'html.parser').get_text().split() == ['Keep', 'this.']
    assert BeautifulSoup(page, 'html.parser').select_one('strong').get_text() == 'this'
    with pytest.raises(ValueError, match=r"part\.md has no 'NOPE'"):
        markdown_page('```{include} part.md\n:end-before: NOPE\n```\n', tmp_path, include_dir=str(tmp_path / 'docs'))


BAD_FILTERS = [('fill', 'must name a function as module.function'),
               ('no_such_module_here.fill', 'cannot import no_such_module_here'),
               ('os.path.no_such_function', 'os.path has no function no_such_function'),
               ('os.sep', 'os has no function sep')]


@pytest.mark.parametrize('name, message', BAD_FILTERS)
def test_a_doc_filter_that_calls_nothing_is_a_configuration_error(name, message, tmp_path):
    """A site's `doc_filter` that names no function stops both engines before any page, with a
    line that names the setting, not a traceback from inside the build."""
    from sphinx.errors import ConfigError

    with pytest.raises(ConfigError, match=f'sidebyside_doc_filter: doc_filter {name!r}'
                                          f'.*{re.escape(message)}'):
        build_site(tmp_path, {'conf.py': "extensions = ['sidebyside.sphinx']\n"
                                         f'sidebyside_doc_filter = {name!r}\n',
                              'index.md': '```{annotated-source} ../sample.py\n```\n'},
                   {'sample.py': SAMPLE})
    assert not list((tmp_path / 'html').rglob('*.html'))
    with pytest.raises(ValueError, match=f'doc_filter {name!r}.*{re.escape(message)}'):
        markdown_page('```{annotated-source} sample.py\n```\n', tmp_path, doc_filter=name)


def test_a_doc_filter_changes_the_docs_in_both_engines(tmp_path, monkeypatch):
    (tmp_path / 'site_filter.py').write_text(
        "def fill(doc):\n    return doc.replace('Prose with', 'Filtered prose with')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sphinx_root, markdown_root = tmp_path / 'sphinx', tmp_path / 'markdown'
    sphinx_root.mkdir(), markdown_root.mkdir()
    build_site(sphinx_root, {'conf.py': "extensions = ['sidebyside.sphinx']\n"
                                        "myst_enable_extensions = ['dollarmath']\n"
                                        "sidebyside_doc_filter = 'site_filter.fill'\n",
                             'index.md': '```{annotated-source} ../sample.py\n```\n'},
               {'sample.py': SAMPLE})
    (markdown_root / 'sample.py').write_text(SAMPLE, encoding='utf-8')
    pages = [(sphinx_root / 'html' / 'index.html').read_text(encoding='utf-8'),
             markdown_page('```{annotated-source} sample.py\n```\n', markdown_root,
                           doc_filter='site_filter.fill')]
    for html in pages:
        assert 'Filtered prose with' in html


@pytest.mark.parametrize('head', ['# Copyright 2026 A. Author\n# SPDX-License-Identifier: MIT\n',
                                  '#!/usr/bin/env python\n'])
def test_the_title_comes_before_a_licence_or_a_shebang(head, tmp_path):
    """A file's first heading is the page's title in both engines, though a licence's comments or
    a shebang come above its docstring: the heading is put first, and nothing is lost."""
    source = head + '"""\n# Licensed module\n\nText.\n"""\n\nx = 1\n'
    items = layout(parse(source))
    assert items[0] == Heading(1, 'Licensed module', head.count('\n') + 2)
    rest = '\n'.join(f'{item.doc}\n{item.code}' for item in items[1:])
    assert not any(isinstance(item, Heading) for item in items[1:])
    for line in [*head.splitlines(), 'Text.', 'x = 1']:
        assert line.lstrip('# ') in rest, line
    (tmp_path / 'licensed.py').write_text(source, encoding='utf-8')
    html = markdown_page('```{annotated-source} licensed.py\n```\n', tmp_path)
    first = BeautifulSoup(html, 'html.parser').find(True)
    assert first.name == 'h1' and first.get_text().startswith('Licensed module')


def test_markdown_refuses_an_unknown_option_as_sphinx_does(tmp_path):
    (tmp_path / 'sample.py').write_text(SAMPLE, encoding='utf-8')
    (tmp_path / 'extra.md').write_text('Extra.\n', encoding='utf-8')
    with pytest.raises(ValueError, match="annotated-source sample.py: unknown option 'prefce'"):
        markdown_page('```{annotated-source} sample.py\n:prefce: extra.md\n```\n', tmp_path)
    assert 'Extra.' in markdown_page('```{annotated-source} sample.py\n:preface: extra.md\n```\n',
                                     tmp_path)


def test_front_matter_is_yaml_and_thematic_breaks_stay_prose():
    """Only `key: value` lines between two `---` at the top are the page's metadata; prose
    between two thematic breaks is prose, and nothing of it is dropped."""
    meta = parse('"""\n---\ntitle: T\nsummary: >\n  two lines\n---\n\n# Title\n"""\nx = 1\n')
    assert meta[0].doc == '# Title' and meta[0].doc_line == 8
    prose = parse('"""\n---\nIntro paragraph one.\n\n---\n\n# Title\n"""\nx = 1\n')
    assert prose[0].doc.startswith('---\nIntro paragraph one.') and prose[0].doc_line == 2


# ## More of the parser and the layout


def test_old_mac_line_endings():
    assert parse('# Doc\rx = 1\r# More\ry = 2\r') == parse('# Doc\nx = 1\n# More\ny = 2\n')


def test_a_file_that_is_only_a_docstring():
    assert split('"""Only a docstring."""') == [Section('Only a docstring.', '', 2, 1, 1)]


def test_a_note_at_the_end_of_the_file_is_placed_after_it():
    assert split('\n\n# Note') == [Section('Note', '', 4, 3, 3)]


def test_empty_comments_add_no_doc():
    assert split('#\n\n# Doc\nx = 1\n') == [Section('Doc', 'x = 1', 4, 4, 3)]
    source = 'def f():\n    """"""\n    # Doc\n    return 1\n'
    assert split(source) == [Section('', 'def f():', 1, 1, 1),
                             Section('Doc', '    return 1', 4, 4, 3)]


def test_trailing_spaces_of_a_comment_are_no_line_break():
    """Two spaces at the end of a Markdown line would break it; in a comment they are invisible."""
    [section] = split('# Line one  \n# line two\t\nx = 1\n')
    assert section.doc == 'Line one\nline two'


def test_a_comment_after_a_decorator_stays_with_its_definition():
    source = src('''
        import functools


        @functools.cache
        # keep me with the code
        def f():
            pass
        ''')
    [section] = split(source)
    assert '# keep me with the code' in section.code and not section.doc


def test_comments_after_braces_are_docs_again():
    source = src('''
        table = {
            # in the dict
            1: 2,
        }

        # After the dict
        x = 1
        ''')
    first, second = split(source)
    assert '# in the dict' in first.code
    assert second == Section('After the dict', 'x = 1', 7, 7, 6)


def test_docstrings_with_a_u_prefix_or_in_pieces():
    """A `u` prefix is a docstring's source text too; a docstring in pieces is its value."""
    source = src('''
        def f():
            u"""$\\frac{a}{b}$"""
            return 1


        def g():
            "Two " "pieces."
            return 2
        ''')
    docs = [section.doc for section in parse(source) if section.doc]
    assert docs == ['$\\frac{a}{b}$', 'Two pieces.']


def test_front_matter_needs_every_line_to_be_a_key():
    [section] = parse('"""\n---\ntitle: T\nIntro paragraph.\n---\n\nText.\n"""\nx = 1\n')
    assert section.doc == '---\ntitle: T\nIntro paragraph.\n---\n\nText.' and section.doc_line == 2


def test_headings_inside_quotes_and_lists_stay_in_the_doc():
    items = layout(split('# > # Quoted\n#\n# * ## In a list\nx = 1\n'))
    assert items == [Section('> # Quoted\n\n* ## In a list', 'x = 1', 4, 4, 1)]


def test_only_a_level_one_heading_is_put_first():
    items = layout(parse('# Licence\n"""\n## Part\n\nText.\n"""\nx = 1\n'))
    assert [type(item) for item in items] == [Section, Heading, Section]
    assert items[0].doc == 'Licence'


def test_a_long_note_without_code_stays_one_row():
    words = ' '.join(['word'] * 60)
    doc = '\n\n'.join([words] * 4)
    assert layout(split(f'"""\n{doc}\n"""\n')) == [Section(doc, '', 10, 9, 2)]


def test_one_code_line_in_a_note_wider_than_the_docs_column_moves_its_block():
    """A line of 47 characters would scroll in the docs column beside code, and one line is
    enough to move the block, however short the others; lines of 46 fit, even many of them."""
    code = '\n'.join(f'x{number} = {number}' for number in range(8))

    def rows(*widths: int) -> int:
        fence = ['```', *['x' * width for width in widths], '```']
        note = '\n'.join(f'# {line}'.rstrip() for line in ['Run:', '', *fence])
        return len(layout(split(f'{note}\n{code}\n')))

    assert rows(10, 47) == 2 and rows(*[46] * 10) == 1 and rows(30) == 1


def test_a_preface_goes_at_the_end_of_a_page_with_fewer_than_two_headings():
    from sidebyside import preface_items, with_preface

    extra = preface_items('Extra.\n')
    one = layout(parse('"""\n# Title\n\nIntro.\n"""\nx = 1\n'))
    assert with_preface(one, extra) == one + extra
    none = layout(parse('x = 1\n'))
    assert with_preface(none, extra) == none + extra


def test_unknown_substitutions_are_left_as_written():
    from sidebyside import substitute

    assert substitute('A {{ known }}, {{unknown}}.', {'known': 'K'}) == 'A K, {{unknown}}.'


def test_without_markdown_it_the_error_says_what_to_install(monkeypatch):
    """An MkDocs site needs markdown-it-py and its plugins, not Sphinx's MyST: the error says
    the two packages to install."""
    from sidebyside import markdown_parser
    monkeypatch.setitem(sys.modules, 'mdit_py_plugins.dollarmath', None)
    with pytest.raises(ImportError) as error:
        markdown_parser()
    assert 'pip install markdown-it-py mdit-py-plugins' in str(error.value)


def test_default_markdown_parser_keeps_tex_escaped():
    from sidebyside import markdown_parser

    html = markdown_parser().render('$$a < b$$\n\nand $c < d$\n')
    assert 'a &lt; b' in html and 'c &lt; d' in html


def test_row_classes_name_the_empty_cell():
    from sidebyside import row_classes

    assert row_classes(Section('Doc', 'x = 1', 1, 1, 1)) == ['annotate-row']
    assert row_classes(Section('Doc', '', 1, 0, 1)) == ['annotate-row', 'annotate-no-code']
    assert row_classes(Section('', 'x = 1', 1, 1, 1)) == ['annotate-row', 'annotate-no-doc']


# ## More of the math and the code lines


def test_a_prime_follows_its_letter_on_the_line():
    """`F'` and `h'_i`: the prime after the letter, not a superscript; `<` beside it is kept."""
    from sidebyside.mathml import to_mathml

    assert to_mathml("F'", False) == '<math><mrow><mi>F</mi><mo>′</mo></mrow></math>'
    primed = '<msub><mrow><mi>h</mi><mo>′</mo></mrow><mi>i</mi></msub>'
    assert to_mathml("h'_i < a", False) == f'<math>{primed}<mo>&lt;</mo><mi>a</mi></math>'


@pytest.mark.parametrize('tex', ['a = b \\\\ c = d', 'a = b\n\nc = d'])
def test_display_lines_and_equations_are_aligned_rows(tex):
    from sidebyside.mathml import display_tex, to_mathml

    mathml = to_mathml(display_tex(tex), True)
    assert mathml.count('<mtr>') == 2 and mathml.count('<mtable') == 1


def test_line_formatter_hang_counts_the_last_number_and_stops_deepening():
    """Lines 8 and 9 have one digit; an indentation past `MAX_INDENT` hangs no further."""
    from pygments import highlight
    from pygments.lexers import PythonLexer

    from sidebyside.highlight import LineFormatter

    def hangs(code: str, start: int) -> list[str]:
        out = highlight(code, PythonLexer(), LineFormatter(linenos='inline', linenostart=start))
        return [line['style'] for line in BeautifulSoup(out, 'html.parser').select('span.line')]

    assert hangs('a\nb\n', 8) == ['--hang: 6ch', '--hang: 6ch']
    assert hangs(' ' * 70 + 'x\n', 1) == ['--hang: 66ch']


# ## More of the engines


def test_markdown_include_starts_after_the_first_marker(tmp_path):
    (tmp_path / 'part.md').write_text('Intro.\n\nSTART\n\nKeep START twice.\n\nEND\n',
                                      encoding='utf-8')
    page = markdown_page('```{include} part.md\n:start-after: START\n:end-before: END\n```\n',
                         tmp_path)
    assert BeautifulSoup(page, 'html.parser').get_text().split() == ['Keep', 'START', 'twice.']


def test_markdown_heading_anchors_are_the_sphinx_ones(tmp_path):
    """An anchor is made from the title's text, as Sphinx makes it: a link's address, code and
    math are not markup; a repeated title gets `-1`."""
    step = '    """\n    ## Step\n    """\n'
    title = 'The `size` of $e_{ij}$, [linked](https://x.org)'
    (tmp_path / 'h.py').write_text(f'"""\n# {title}\n"""\n\n'
                                   f'def f():\n{step}\n\ndef g():\n{step}', encoding='utf-8')
    html = markdown_page('```{annotated-source} h.py\n```\n', tmp_path)
    page = BeautifulSoup(html, 'html.parser')
    assert [h['id'] for h in page.select('h1, h2')] == ['the-size-of-e-ij-linked', 'step', 'step-1']


def test_markdown_display_math_of_several_lines_is_aligned(tmp_path):
    (tmp_path / 'a.py').write_text('# $$a = b \\\\ c = d$$\nx = 1\n', encoding='utf-8')
    rows = markdown_page('```{annotated-source} a.py\n```\n', tmp_path)
    assert rows.count('<mtr>') == 2
    page = markdown_page('Page:\n\n$$\na = b \\\\ c = d\n$$\n', tmp_path)
    assert page.count('<mtr>') == 2


def test_markdown_code_blocks_in_the_docs_are_python_without_a_language(tmp_path):
    (tmp_path / 'c.py').write_text('# ```\n# def f(): pass\n# ```\nx = 1\n', encoding='utf-8')
    html = markdown_page('```{annotated-source} c.py\n```\n', tmp_path)
    page = BeautifulSoup(html, 'html.parser')
    assert page.select_one('.annotate-doc .highlight .k').get_text() == 'def'


def test_sphinx_keeps_the_projects_own_math_renderer(tmp_path):
    conf = ("extensions = ['myst_parser', 'sidebyside.sphinx']\n"
            "myst_enable_extensions = ['dollarmath']\nhtml_math_renderer = 'mathjax'\n")
    pages = {'conf.py': conf, 'index.md': '# Math\n\nInline $a_i$.\n'}
    _, warnings = build_site(tmp_path, pages, {})
    page = (tmp_path / 'html' / 'index.html').read_text(encoding='utf-8')
    assert warnings == '' and '<math' not in page and 'mathjax' in page.lower()


def test_sphinx_names_the_python_line_of_a_broken_formula(tmp_path):
    source = '# One\n#\n# Two\n#\n# Broken $\\notacommand{x}$\ny = 2\n'
    page = '# P\n\n```{annotated-source} ../bad.py\n```\n'
    app, warnings = build_site(tmp_path, {'index.md': page}, {'bad.py': source})
    [error] = [line for line in warnings.splitlines() if 'math-core' in line]
    assert 'bad.py:5:' in error and app.statuscode == 1


# A docstring, a blank line, then a comment: the row's doc joins them, and a line of it is still
# the file's line (8 in the file, not 7)
DOCSTRING_THEN_BROKEN_COMMENT = '"""\nDoc,\non two lines.\n"""\n\n# Fine.\n#\n# Broken $\\notacommand{x}$\ny = 2\n'


def test_sphinx_names_the_file_line_of_a_formula_in_joined_docs(tmp_path):
    page = '# P\n\n```{annotated-source} ../bad.py\n```\n'
    app, warnings = build_site(tmp_path, {'index.md': page}, {'bad.py': DOCSTRING_THEN_BROKEN_COMMENT})
    [error] = [line for line in warnings.splitlines() if 'math-core' in line]
    assert 'bad.py:8:' in error and app.statuscode == 1


def test_sphinx_page_depends_on_its_file_and_its_preface(tmp_path):
    app, warnings = build_site(tmp_path, {'index.md': '```{annotated-source} ../p.py\n'
                                                      ':preface: ../pre.md\n```\n'},
                               {'p.py': '"""\n# Title\n"""\nx = 1\n', 'pre.md': 'Extra.\n'})
    assert warnings == ''
    assert {Path(path).name for path in app.env.dependencies['index']} == {'p.py', 'pre.md'}


def test_sphinx_nowrap_math_is_the_tex_as_written(tmp_path):
    _, warnings = math_project(tmp_path, '# Math\n\n```{math}\n:nowrap:\na = b \\\\ c = d\n```\n')
    page = (tmp_path / 'html' / 'index.html').read_text(encoding='utf-8')
    assert warnings == '' and '<math display="block">' in page and '<mtable' not in page


def test_sphinx_formula_that_fails_fails_the_build_without_w(tmp_path):
    """Without `-W` Sphinx exits with 0 after an error; a formula left as TeX still fails it."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace

    docs = tmp_path / 'docs'
    docs.mkdir()
    (docs / 'conf.py').write_text("extensions = ['myst_parser', 'sidebyside.sphinx']\n"
                                  "myst_enable_extensions = ['dollarmath']\n", encoding='utf-8')
    (docs / 'index.md').write_text('# Broken\n\n$\\notacommand{x}$\n', encoding='utf-8')
    with docutils_namespace():
        app = Sphinx(docs, docs, tmp_path / 'html', tmp_path / 'doctrees', 'html', status=None,
                     warning=io.StringIO(), freshenv=True)
        app.build()
    assert app.statuscode == 1
    assert 'math-error' in (tmp_path / 'html' / 'index.html').read_text(encoding='utf-8')


def test_display_math_in_a_paragraph_is_one_block_in_both_engines(tmp_path):
    """A paragraph split around its `$$...$$` is still one block of the note: a note beside
    short code gets the same rows in both engines."""
    words = ' '.join(['word'] * 38)
    source = (f'# Intro.\n#\n# Before $$e = mc^2$$ after {words}\n'
              + ''.join(f'x{number} = {number}\n' for number in range(4)))
    _, warnings = build_site(tmp_path, {'index.md': '```{annotated-source} ../s.py\n```\n'},
                             {'s.py': source})
    assert warnings == ''
    sphinx_rows = row_summary((tmp_path / 'html' / 'index.html').read_text(encoding='utf-8'))
    markdown_rows = row_summary(markdown_page('```{annotated-source} s.py\n```\n', tmp_path))
    assert markdown_rows == sphinx_rows and len(sphinx_rows) == 1


def test_sphinx_reads_pages_again_when_the_renderer_changed(tmp_path):
    """An incremental build after a change to the renderer's code alone writes the pages with the new
    layout, as a fresh build would; without a change it reads nothing again. The renderer is a copy
    of the package, changed in place as a developer changes it, built by `sphinx-build` in a process
    of its own."""
    import shutil

    shutil.copytree(REPO / 'sidebyside', tmp_path / 'lib' / 'sidebyside',
                    ignore=shutil.ignore_patterns('__pycache__'))
    docs = tmp_path / 'docs'
    docs.mkdir()
    (docs / 'conf.py').write_text("extensions = ['sidebyside.sphinx']\n", encoding='utf-8')
    (docs / 'index.md').write_text('```{annotated-source} ../s.py\n```\n', encoding='utf-8')
    (tmp_path / 's.py').write_text('"""\n# Title\n"""\n# A note.\nx = 1\n', encoding='utf-8')
    page = tmp_path / 'html' / 'index.html'

    def build() -> str:
        result = subprocess.run([sys.executable, '-m', 'sphinx', '-W', '-b', 'html', str(docs),
                                 str(tmp_path / 'html')], capture_output=True, text=True,
                                env={**os.environ, 'PYTHONPATH': str(tmp_path / 'lib')},
                                cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        return page.read_text(encoding='utf-8')

    assert 'class="annotate-doc docutils container"' in build()
    written = page.stat().st_mtime_ns
    assert 'class="annotate-doc docutils container"' in build() and page.stat().st_mtime_ns == written
    renderer = tmp_path / 'lib' / 'sidebyside' / 'sphinx.py'
    code = renderer.read_text(encoding='utf-8')
    assert code.count("classes=['annotate-doc']") == 1
    renderer.write_text(code.replace("classes=['annotate-doc']", "classes=['annotate-doc', 'changed']"),
                        encoding='utf-8')
    assert 'class="annotate-doc changed docutils container"' in build()
