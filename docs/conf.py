"""
Sphinx configuration of the labml_gat site.

    sphinx-build -W -b html docs docs/_build/html

builds every page and runs the gallery examples, which read the Planetoid files from the folder in
`LABML_GAT_DATA`. `-D sphinx_gallery_conf.plot_gallery=0` skips running them, for a quick look at the
pages: the examples' pages then keep the output of the last full build, or have none.
A rebuild runs only the examples whose code or dependencies changed; without the Planetoid files
the examples that need them are skipped, and the build says so (see `_ext/gallery_runs.py`).

The pages mirror the repository: `labml_gat/gatv2.py` is `labml_gat/gatv2.html`, `experiments/cora.py` is
`experiments/cora.html` and the examples of `experiments/gallery/` are `experiments/gallery/*.html`,
so a relative link in a docstring (`[GAT](gat.html)`, `[GATv2](../labml_gat/gatv2.html)`)
is the path from one source file to the other.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
# This site's own glue (`site_assets`, `site_gallery`, `gallery_runs`), and the packages
# themselves when they are not installed.
sys.path[:0] = [str(DOCS / '_ext'), str(DOCS.parent)]

from project_urls import substitutions  # noqa: E402  (from `_ext/`, on the path above)

project = 'labml_gat'
author = 'labml_gat contributors'
copyright = 'labml_gat contributors, MIT licence'
html_title = 'GATv2, annotated'
html_favicon = '_static/favicon.svg'

extensions = [
    'myst_parser',
    'sphinx_gallery.gen_gallery',
    'sidebyside.sphinx',
    'gallery_runs',
    'site_assets',
]

# Pages and comments are MyST Markdown with `$...$`, `$$...$$` and amsmath environments, and the
# substitution `{{ repository }}`, a link to the source repository named in pyproject.toml.
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
myst_enable_extensions = ['dollarmath', 'amsmath', 'substitution']
myst_substitutions = substitutions()

# `mkdocs/` holds the pages of the MkDocs site (`mkdocs.yml`), which reads this site's home page;
# `labml_gat/use_it.md` is a part of the layer page and of the home page, not a page of its own.
exclude_patterns = ['_build', '_ext', 'mkdocs', 'labml_gat/use_it.md', 'Thumbs.db', '.DS_Store']

# Math becomes MathML when the pages are written (`sidebyside.mathml`): no MathJax, no network.
html_math_renderer = 'mathml'
# A page's docs may leave the markers of a recorded result empty; the build fills them in from
# the record (`labml_gat.results.fill`), so a page states its numbers without a copy of them.
sidebyside_doc_filter = 'labml_gat.results.fill'

html_theme = 'furo'
html_static_path = ['_static']
html_css_files = ['site.css']
# The arrow keys go to the previous and next page, except inside a code block, where they scroll
# it (`_static/site.js`).
html_theme_options = {
    'navigation_with_keys': True,
    'top_of_page_buttons': [],
}
html_show_sourcelink = False

# The examples of `experiments/gallery/`, run at build time; each page offers the `.py` and `.ipynb`.
sphinx_gallery_conf = {
    'examples_dirs': '../experiments/gallery',
    'gallery_dirs': 'experiments/gallery',
    'filename_pattern': r'/plot_',
    'within_subsection_order': 'site_gallery.ReadingOrder',
    # An example runs again when it or what it imports changed (`_ext/gallery_runs.py` adds
    # the imported code to sphinx-gallery's check of the example's own file); examples that
    # need the Planetoid files are not run when the files are missing.
    'run_stale_examples': False,
    'reset_modules': ('matplotlib', 'site_gallery.one_torch_thread'),
    # A failing example fails the build (after the others ran); its traceback is printed.
    'only_warn_on_example_error': False,
    'remove_config_comments': True,
    # The computation-times page loads scripts from a CDN; the times are printed during the build anyway.
    'write_computation_times': False,
    'download_all_examples': False,
    'show_signature': False,
    # Figures also at twice the resolution, for high-density screens.
    'image_srcset': ['2x'],
    # matplotlib's scraper, which also notes each figure's smallest text in its PNG: the tests
    # check that the page shows it large enough to read.
    'image_scrapers': ('site_gallery.scraper',),
}
