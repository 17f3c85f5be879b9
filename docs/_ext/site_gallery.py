"""
Settings of the gallery that are code: the reading order of the examples and the state every
example starts from. `conf.py` names them as strings, which keeps its configuration picklable.
"""

from __future__ import annotations

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
