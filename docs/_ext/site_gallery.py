"""
Settings of the gallery that are code: the reading order of the examples and the state every
example starts from. `conf.py` names them as strings, which keeps its configuration picklable.
"""

from __future__ import annotations

from pathlib import Path

from sphinx_gallery.sorting import FileNameSortKey

# Why GATv2 at all, then the real experiment, what it learned, and what it costs.
READING_ORDER = ('plot_dictionary_lookup.py', 'plot_cora_training.py', 'plot_attention.py', 'plot_benchmark.py')


class ReadingOrder(FileNameSortKey):
    """Examples in `READING_ORDER` first, in that order, then any other by file name."""

    def __call__(self, filename: str) -> tuple[int, str]:
        name = str(filename)
        return (READING_ORDER.index(name) if name in READING_ORDER else len(READING_ORDER), name)


def one_torch_thread(gallery_conf: dict, fname: str) -> None:
    """Every example runs PyTorch on one thread. The graphs are small, so a second thread gains
    little, and on a busy machine threads that wait for each other made a Cora epoch 20 times slower;
    one thread also makes the printed numbers the same from build to build."""
    import torch

    torch.set_num_threads(1)


# ## Figures a reader can read
#
# Every figure of an example states, in its PNG file, the size of its smallest text in pixels of
# that file (the `Smallest-text-px` text chunk). The site's tests compare it with how wide the
# browser shows the figure, so a figure drawn too wide for the page, whose labels would shrink
# below what a reader can read, fails a test rather than going unnoticed.
SMALLEST_TEXT_KEY = 'Smallest-text-px'


def smallest_text_points(fig) -> float:
    """The size, in points, of the smallest piece of text the figure draws (ticks, labels,
    legends, titles)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    sizes = [text.get_fontsize() for text in fig.findobj(Text)
             if text.get_visible() and text.get_text().strip()]
    return min(sizes, default=float('inf'))


def scraper(block, block_vars: dict, gallery_conf: dict) -> str:
    """sphinx-gallery's matplotlib scraper, which then writes the smallest text size into
    every PNG it saved (the one of the page's resolution and the sharper ones of `srcset`)."""
    import matplotlib
    import matplotlib.pyplot as plt
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo
    from sphinx_gallery.scrapers import matplotlib_scraper

    figures = [plt.figure(number) for number in plt.get_fignums()]
    points = [smallest_text_points(fig) for fig in figures]
    dpis = [fig.dpi if matplotlib.rcParams['savefig.dpi'] == 'figure'
            else matplotlib.rcParams['savefig.dpi'] for fig in figures]
    paths = block_vars['image_path_iterator'].paths
    before = len(paths)
    rst = matplotlib_scraper(block, block_vars, gallery_conf)
    for path, size, dpi in zip(paths[before:], points, dpis):
        path = Path(path)
        versions = {1.0: path}
        for mult in gallery_conf['image_srcset']:
            suffix = f'{mult:.2f}'.replace('.', '_')
            versions[mult] = path.with_name(f'{path.stem}_{suffix}x{path.suffix}')
        for mult, version in versions.items():
            if version.is_file():
                info = PngInfo()
                info.add_text(SMALLEST_TEXT_KEY, f'{size * dpi * mult / 72:.2f}')
                with Image.open(version) as image:
                    image.load()
                    image.save(version, pnginfo=info)
    return rst
