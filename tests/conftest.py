"""Shared fixtures and graph builders for the tests."""

import os
from pathlib import Path

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


@pytest.fixture(scope='session')
def planetoid_dir() -> Path:
    """The folder of the real Planetoid files: `LABML_GAT_DATA`, or `../shared/data/planetoid` beside the repo."""
    path = Path(os.environ.get('LABML_GAT_DATA', REPO.parent / 'shared' / 'data' / 'planetoid'))
    if not (path / 'ind.cora.x').exists():
        pytest.skip(f'the Planetoid files are not in {path}; set LABML_GAT_DATA')
    return path
