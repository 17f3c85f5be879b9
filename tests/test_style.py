"""
Style rules that the site's pages depend on: the code column of an annotated page is about
90 characters wide, so a code line longer than that would scroll sideways. Docstrings and
comments are rendered as prose in the left column and may be longer. The code blocks of the
pages written in Markdown (the commands of the usage page) are as wide as the code column.
A symbol of the math means one thing on every page.
"""

import ast
import re
from pathlib import Path

import pytest

from conftest import REPO
from sidebyside import _own_line_comments

CODE_COLUMN = 90
# Every file rendered side by side on the site
RENDERED = sorted([*REPO.glob('labml_gat/*.py'), *REPO.glob('experiments/*.py'),
                   *REPO.glob('sidebyside/*.py')])


def prose_lines(source: str) -> set[int]:
    """The line numbers (from 1) of docstrings and of the comments rendered as prose."""
    lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, 'body', None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    # The comments the renderer moves into the prose column: alone on their line, outside
    # brackets (one between a call's arguments stays in the code)
    lines.update(number for number, _ in _own_line_comments(source, set()))
    return lines


def long_code_lines(path: Path, root: Path = REPO) -> list[str]:
    source = path.read_text(encoding='utf-8')
    prose = prose_lines(source)
    return [f'{path.relative_to(root)}:{number}: {len(line)} characters'
            for number, line in enumerate(source.splitlines(), 1)
            if number not in prose and len(line) > CODE_COLUMN]


@pytest.mark.parametrize('path', RENDERED, ids=lambda path: str(path.relative_to(REPO)))
def test_code_fits_the_code_column(path):
    assert long_code_lines(path) == []


def test_the_rule_sees_a_long_line(tmp_path):
    """The check itself: a long code line is found, a long comment or docstring is not."""
    path = tmp_path / 'x.py'
    long = 'x' * CODE_COLUMN
    path.write_text(f'"""\n{long} doc\n"""\n# {long}\ny = "{long}"\n', encoding='utf-8')
    assert [line.split(':')[1] for line in long_code_lines(path, tmp_path)] == ['5']


# The site's pages written in Markdown: a code block there is as wide as the article, which holds
# as many characters of code as the code column (at 1400 px: `test_site_look.py`).
MARKDOWN_PAGES = sorted(REPO.glob('docs/*.md'))


def long_block_lines(path: Path, root: Path = REPO) -> list[str]:
    """The lines of a Markdown page's code blocks that are longer than the code column (the body
    of a MyST directive, such as `{toctree}`, is not code)."""
    from markdown_it import MarkdownIt

    long = []
    for token in MarkdownIt().parse(path.read_text(encoding='utf-8')):
        if token.type == 'fence' and not token.info.startswith('{'):
            # `map` starts at the fence's line, counted from 0
            long += [f'{path.relative_to(root)}:{token.map[0] + 2 + number}: {len(line)} characters'
                     for number, line in enumerate(token.content.splitlines())
                     if len(line) > CODE_COLUMN]
    return long


@pytest.mark.parametrize('path', MARKDOWN_PAGES, ids=lambda path: str(path.relative_to(REPO)))
def test_commands_fit_the_page(path):
    """A long command goes on over lines ending in `\\`, its comment on the line above it."""
    pytest.importorskip('markdown_it')
    assert long_block_lines(path) == []


def test_the_rule_sees_a_long_command(tmp_path):
    """The check itself: a long line of a code block is found, a long line of prose or of a
    directive is not."""
    pytest.importorskip('markdown_it')
    path = tmp_path / 'page.md'
    long = 'x' * CODE_COLUMN
    path.write_text(f'{long} text\n\n```bash\nrun {long}\n```\n\n```{{toctree}}\n{long}\n```\n',
                    encoding='utf-8')
    assert [line.split(':')[1] for line in long_block_lines(path, tmp_path)] == ['4']


# The gallery's examples: sphinx-gallery renders a `# %%` block's comment lines as prose up to
# the first line that is not a comment, so a code comment right under the prose, with no blank
# line between, is shown as the end of the prose.
EXAMPLES = sorted(REPO.glob('experiments/gallery/plot_*.py'))


def prose_ending_mid_sentence(path: Path, root: Path = REPO) -> list[str]:
    """The text blocks of an example whose last line ends no sentence (a heading's underline
    ends one)."""
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    unfinished = []
    for label, content, number in split_code_and_text_blocks(str(path))[1]:
        lines = [line.rstrip() for line in content.splitlines() if line.strip()]
        if label == 'text' and lines and not lines[-1].endswith(('.', ':', '?', '!', '-', '=')):
            unfinished.append(f'{path.relative_to(root)}:{number}: ...{lines[-1][-50:]}')
    return unfinished


@pytest.mark.parametrize('path', EXAMPLES, ids=lambda path: path.name)
def test_example_prose_ends_with_a_sentence(path):
    """A comment about the code below the prose is parted from it by a blank line."""
    pytest.importorskip('sphinx_gallery')
    assert prose_ending_mid_sentence(path) == []


def test_the_rule_sees_a_comment_glued_to_the_prose(tmp_path):
    """The check itself: a code comment right under the prose is found, one after a blank
    line is not."""
    pytest.importorskip('sphinx_gallery')
    path = tmp_path / 'plot_x.py'
    path.write_text('"""\nTitle\n=====\n\nText.\n"""\n\n# %%\n# Prose.\n# The colours\nx = 1\n\n'
                    '# %%\n# Prose.\n\n# The colours\ny = 2\n', encoding='utf-8')
    assert [line.split(':')[1] for line in prose_ending_mid_sentence(path, tmp_path)] == ['9']


# The symbols that mean one thing on every page, as the GATv2 paper and the layer pages write them,
# and the uses that would give them a second meaning: $l$ is the left side ($W_l$, $g_l$), not a
# layer's index; $N$ counts nodes, not processes; $e$ is a score and $x$ a node's features
# ($x_{if}$ its feature $f$, $g = W x$), neither an edge's features ($u_{ij}$).
NOTATION = {
    'l as a layer index': re.compile(r'\^\{\(l[-)]|[Ll]ayer \$l\$'),
    'N as a number of processes': re.compile(r'\$N\$ (processes|ranks)|_\{r=1\}\^\{?N\b'),
    'e_{ij} or x_{ij} as edge features':
        re.compile(r'W_(\{e[^}]*\}|e) [ex]_\{ij\}|[ex]_\{ij\}\^\\top|features \$x_\{ij\}'),
}
NOTATED = sorted([*RENDERED, *EXAMPLES, *MARKDOWN_PAGES, *REPO.glob('docs/*/*.md')])


def notation_clashes(path: Path, root: Path = REPO) -> list[str]:
    """The lines of a page that give a symbol of `NOTATION` a second meaning."""
    return [f'{path.relative_to(root)}:{number}: {meaning}'
            for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), 1)
            for meaning, use in NOTATION.items() if use.search(line)]


@pytest.mark.parametrize('path', NOTATED, ids=lambda path: str(path.relative_to(REPO)))
def test_a_symbol_means_one_thing(path):
    assert notation_clashes(path) == []


def test_the_rule_sees_a_symbol_used_twice(tmp_path):
    """The check itself: a layer index $l$, $N$ processes and edge features $e_{ij}$ or $x_{ij}$
    are found; $W_l$, $N$ nodes, the score $e_{ij}$, a node's features $x_{if}$ and the edge
    features $u_{ij}$ are not."""
    path = tmp_path / 'page.md'
    path.write_text('$h^{(l-1)}_j$ and $W_l h_j$\n$N$ processes\n$N$ nodes, $W_e u_{ij}$\n'
                    '$W_{e,k} e_{ij}$\n$e_{ij} = a^\\top z$\n$\\sum_{r=1}^{N} x_r$\n'
                    '$W_{e,k} x_{ij}$, and $x_{ij}^\\top M_k$\nthe features $x_{ij}$ of the edge\n'
                    '$\\sum_f x_{if}$, $g = W x$\n', encoding='utf-8')
    assert [line.split(':')[1] for line in notation_clashes(path, tmp_path)] == \
        ['1', '2', '4', '6', '7', '8']
