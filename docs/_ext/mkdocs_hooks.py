"""
MkDocs hooks of this site.

* The MyST substitutions of the Sphinx site (`{{ repository }}`, from `project_urls`) are given to
  `sidebyside.markdown`, so both sites read the repository's address from pyproject.toml.
* The layer pages' figures are drawn before the pages are collected, as the Sphinx build does on
  `builder-inited`. They are written to `docs/_static/figures/`, which `docs/mkdocs/_static/figures`
  links to, so both sites show them at `_static/figures/NAME.svg`.
* The examples' pages are made from the examples themselves: the text blocks of
  `experiments/gallery/plot_*.py` (reStructuredText) become Markdown, the code blocks code, and
  after each code block come its printed output and its figures as the Sphinx build ran them
  (`docs/experiments/gallery/`, written by `bash run.sh site`). Without that build, or when an
  example changed since, the page shows the prose and the code and says how to get the rest.
* The records (`experiments/results/*.json`) and the examples' files are copied into the site,
  at the paths the pages link them from.
* A page that annotates a Python file offers it under its title, "Download gatv2.py", as the Sphinx
  site does: the file is copied into `_downloads/`, at its path in the repository.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

from mkdocs.structure.files import File

DOCS = Path(__file__).resolve().parent.parent
REPO = DOCS.parent
GALLERY = REPO / 'experiments' / 'gallery'
# What the Sphinx build of the gallery leaves beside the docs' sources
EXECUTED = DOCS / 'experiments' / 'gallery'
PAGES = 'experiments/gallery/'
# A page's `annotated-source` block, which names the Python file the page shows
ANNOTATED = re.compile(r'^```\{annotated-source\}\s+(\S+)\s*$', re.MULTILINE)
DOWNLOADS = '_downloads/'

log = logging.getLogger('mkdocs.hooks.gallery')


def _load(name: str):
    """`docs/_ext/NAME.py`, loaded from its file (MkDocs does not put `_ext/` on the path)."""
    spec = importlib.util.spec_from_file_location(name, DOCS / '_ext' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_config(config):
    options = config['mdx_configs'].setdefault('sidebyside.markdown', {})
    options['substitutions'] = {**_load('project_urls').substitutions(), **options.get('substitutions', {})}
    return config


def on_pre_build(config) -> None:
    _load('site_figures').write_all(DOCS / '_static' / 'figures')


def on_files(files, config):
    """The records, the examples' sources and, where the examples ran, their figures."""
    extra = [(f'experiments/results/{path.name}', path)
             for path in sorted((REPO / 'experiments' / 'results').glob('*.json'))]
    for source in sorted(GALLERY.glob('plot_*.py')):
        extra.append((PAGES + source.name, source))
        if ran(source.stem):
            extra += [(PAGES + f'images/{image.name}', image)
                      for image in sorted((EXECUTED / 'images').glob(f'sphx_glr_{source.stem}_*.png'))]
    missing = [source.name for source in sorted(GALLERY.glob('plot_*.py')) if not ran(source.stem)]
    if missing:
        log.info('The examples %s have not run in a Sphinx build (bash run.sh site): their pages '
                 'show the code without its output and figures.', ', '.join(missing))
    extra += [(DOWNLOADS + source, REPO / source) for source in sorted(set(annotated().values()))]
    for uri, path in extra:
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files


def annotated() -> dict[str, str]:
    """Page source (`labml_gat/gatv2.md`) -> the Python file it shows, from the repository's root."""
    pages = {}
    for page in sorted((DOCS / 'mkdocs').rglob('*.md')):
        match = ANNOTATED.search(page.read_text(encoding='utf-8'))
        if match:
            pages[page.relative_to(DOCS / 'mkdocs').as_posix()] = match[1]
    return pages


def on_page_content(html: str, page, config, files) -> str:
    """Under the title of a page that annotates a Python file: "Download gatv2.py", the file."""
    source = annotated().get(page.file.src_uri)
    if source is None:
        return html
    depth = page.file.src_uri.count('/')
    href = '../' * depth + DOWNLOADS + source
    name = Path(source).name
    link = (f'<p class="site-download">Download <a href="{href}" download><code>{name}</code></a>, '
            f'the file this page shows, to read or copy whole.</p>')
    return re.sub(r'(</h1>)', lambda m: m[1] + link, html, count=1)


def on_page_markdown(markdown: str, page, config, files) -> str:
    match = re.fullmatch(re.escape(PAGES) + r'(plot_\w+)\.md', page.file.src_uri)
    return example_markdown(match[1]) if match else markdown


# ## The examples' pages

def ran(stem: str) -> bool:
    """Whether the Sphinx build ran this very version of the example."""
    copy, page = EXECUTED / f'{stem}.py', EXECUTED / f'{stem}.rst'
    return (copy.is_file() and page.is_file()
            and copy.read_bytes() == (GALLERY / f'{stem}.py').read_bytes())


def example_markdown(stem: str) -> str:
    """The example's page as Markdown: its prose, its code and, if it ran, what the run showed."""
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    blocks = split_code_and_text_blocks(str(GALLERY / f'{stem}.py'))[1]
    n_code = sum(block.type == 'code' for block in blocks)
    results = executed_results(stem) if ran(stem) else None
    if results is not None and len(results) != n_code:
        results = None
    out, code_index = [], 0
    for block in blocks:
        if block.type == 'text':
            out.append(rst_to_markdown(block.content))
            if len(out) == 1:  # after the introduction
                out.append(about(stem, results is not None))
            continue
        code = '\n'.join(line for line in block.content.strip('\n').split('\n')
                         if not line.lstrip().startswith('# sphinx_gallery_'))
        if code.strip():
            out.append(f'```python\n{code}\n```')
        for kind, value, *alt in (results[code_index] if results else []):
            if kind == 'output':
                out.append(f'```text\n{value}\n```')
            else:
                out.append(f'[![{alt[0]}](images/{value})](images/{sharper(value)})')
        code_index += 1
    return '\n\n'.join(out) + '\n'


def about(stem: str, executed: bool) -> str:
    """What the page shows, after the example's introduction."""
    if executed:
        return (f'!!! note "Executed"\n    This example ran while the site was built; the output '
                f'and figures below are that run\'s. Its file: [{stem}.py]({stem}.py).')
    return (f'!!! note "Not run in this build"\n    The printed output and the figures of this '
            f'example appear here once it has run: `bash run.sh site` runs the examples, then '
            f'`bash run.sh mkdocs` builds this site with them. Its file: [{stem}.py]({stem}.py).')


def sharper(name: str) -> str:
    """The file name of the sharpest version of a figure, if the build made one."""
    path = Path(name)
    double = f'{path.stem}_2_00x{path.suffix}'
    return double if (EXECUTED / 'images' / double).is_file() else name


# Parts of a code block's results in sphinx-gallery's page: a figure, or printed output.
IMAGE = re.compile(r'^\s*\.\. image-sg:: /\S*/images/(?P<name>\S+)\n\s+:alt: (?P<alt>.*)$', re.MULTILINE)
OUTPUT = re.compile(r'^\s*\.\. code-block:: none\n\n(?P<body>(?:(?: {4,}.*)?\n)+)', re.MULTILINE)


def executed_results(stem: str) -> list[list[tuple]]:
    """For each code block, in order, its figures `('image', file, alt)` and printed output
    `('output', text)`, read from the page sphinx-gallery wrote."""
    page = (EXECUTED / f'{stem}.rst').read_text(encoding='utf-8')
    sections = re.split(r'^\.\. GENERATED FROM PYTHON SOURCE LINES \d+-\d+\n', page, flags=re.MULTILINE)
    results = []
    for section in sections:
        if '.. code-block:: Python' not in section:
            continue
        found = [(m.start(), ('image', m['name'], m['alt'].replace('[', '(').replace(']', ')')))
                 for m in IMAGE.finditer(section)]
        found += [(m.start(), ('output', _dedent(m['body']))) for m in OUTPUT.finditer(section)]
        results.append([part for _, part in sorted(found)])
    return results


def _dedent(body: str) -> str:
    lines = body.rstrip().split('\n')
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return '\n'.join(line[indent:] for line in lines)


# ## The examples' reStructuredText as Markdown
#
# The few constructs the examples use: headings underlined with `=` and `-`, ``code``,
# `text <url>`_ links, the roles :math:, :doc: and :mod:, and `.. code-block::` directives.
HEADING = re.compile(r'^(?P<title>\S.*)\n(?P<line>[=\-~^])(?P=line){2,}[ \t]*$', re.MULTILINE)
LEVELS = {'=': '#', '-': '##', '~': '###', '^': '####'}


def rst_to_markdown(text: str) -> str:
    text = _code_blocks(text)
    parts = re.split(r'(```.*?```)', text, flags=re.DOTALL)
    for index in range(0, len(parts), 2):
        parts[index] = _inline(HEADING.sub(lambda m: f"{LEVELS[m['line']]} {m['title']}", parts[index]))
    return ''.join(parts).strip()


def _code_blocks(text: str) -> str:
    """`.. code-block:: LANG` and its indented body as a fenced block."""
    def fence(m: re.Match) -> str:
        return f"```{m['language']}\n{_dedent(m['body'])}\n```\n"
    return re.sub(r'^\.\. code-block:: *(?P<language>\w*)\n\n(?P<body>(?:(?: {2,}.*)?\n)+)', fence,
                  text + '\n', flags=re.MULTILINE)


def _inline(text: str) -> str:
    text = re.sub(r'``(.+?)``', r'`\1`', text)
    text = re.sub(r':math:`(.+?)`', lambda m: f'${m[1]}$', text)
    text = re.sub(r'`([^`<]+?)\s*<([^>]+)>`__?', lambda m: f'[{" ".join(m[1].split())}]({_page(m[2])})', text)
    text = re.sub(r':doc:`(?:([^`<]+?)\s*<)?([^`>]+)>?`', _doc_link, text)
    return re.sub(r':mod:`([\w.]+)`', _module_link, text)


def _page(url: str) -> str:
    """A link to a page of this site names its Markdown file, which MkDocs checks and rewrites."""
    path, hash, fragment = url.partition('#')
    markdown = path.removesuffix('.html') + '.md'
    if path.endswith('.html') and (DOCS / 'mkdocs' / PAGES / markdown).resolve().is_file():
        return markdown + hash + fragment
    return url


def _doc_link(m: re.Match) -> str:
    target = m[2].strip()
    title = m[1] or example_title(target)
    return f'[{" ".join(title.split())}]({target}.md)'


def example_title(stem: str) -> str:
    """The title of an example: the first line of its docstring that is text."""
    from sphinx_gallery.py_source_parser import split_code_and_text_blocks

    first = split_code_and_text_blocks(str(GALLERY / f'{stem}.py'))[1][0].content
    return next(line for line in first.split('\n') if line.strip())


def _module_link(m: re.Match) -> str:
    """A module's annotated page, as seen from the examples' folder."""
    path = m[1].replace('.', '/')
    return f'[`{m[1]}`](../../{path}.md)' if (REPO / f'{path}.py').is_file() else f'`{m[1]}`'
