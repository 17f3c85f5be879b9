"""Shared fixtures and graph builders for the tests."""

import os
from pathlib import Path
from typing import Optional

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent


def random_edge_index(n_nodes: int, n_edges: int, generator: torch.Generator,
                      self_loops: bool = True) -> torch.Tensor:
    r"""
    A random directed graph as a PyG-style `edge_index` `[2, E]` (row 0 source $j$, row 1 target $i$),
    without duplicate edges; with `self_loops`, every node also gets the edge $i \to i$.
    Node 0 is left without incoming edges (apart from its self loop) to exercise isolated queries.
    """
    src = torch.randint(0, n_nodes, (n_edges,), generator=generator)
    dst = torch.randint(1, n_nodes, (n_edges,), generator=generator)
    keep = src != dst
    edge_index = torch.stack([src[keep], dst[keep]])
    if self_loops:
        loops = torch.arange(n_nodes)
        edge_index = torch.cat([edge_index, torch.stack([loops, loops])], dim=1)
    return torch.unique(edge_index, dim=1)


def dense_adjacency(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    r"""`adj[i, j]` is `True` for every edge $j \to i$ (column `[j, i]` of `edge_index`)."""
    adj = torch.zeros(n_nodes, n_nodes, dtype=torch.bool)
    adj[edge_index[1], edge_index[0]] = True
    return adj


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def find_planetoid() -> Optional[Path]:
    """The folder of the real Planetoid files: `LABML_GAT_DATA`, else `../shared/data/planetoid` beside the repo."""
    folder = Path(os.environ.get('LABML_GAT_DATA') or REPO.parent / 'shared' / 'data' / 'planetoid')
    return folder if (folder / 'ind.cora.x').is_file() and (folder / 'ind.citeseer.x').is_file() else None


PLANETOID = find_planetoid()
# Tests of the real data skip on a machine without it, but never in CI, where a missing folder must fail.
needs_planetoid = pytest.mark.skipif(
    PLANETOID is None and not os.environ.get('CI'),
    reason='Planetoid files not found: set LABML_GAT_DATA or put them in <repo>/../shared/data/planetoid')

def load_experiment(name: str):
    """
    Import `experiments/<name>.py` as the module `<name>`, as the scripts import each other: the experiments
    are scripts in a folder, not a package. Worker processes started by an experiment import it the same way.
    """
    import importlib
    import sys
    folder = str(REPO / 'experiments')
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(name)


@pytest.fixture
def labml_logs(tmp_path):
    """Keep the test's labml runs in a temporary folder instead of the repository's `logs/`."""
    from labml import lab
    lab.configure({'experiments_path': str(tmp_path / 'logs')})
    yield tmp_path / 'logs'
    lab.configure({'experiments_path': 'logs'})
