"""
PyG's own tests of GATConv, run against the drop-in GATConv: the scenarios and assertions of
test/nn/conv/test_gat_conv.py of PyTorch Geometric (https://github.com/pyg-team/pytorch_geometric,
commit 00c73d8ce15ffa0443e6a6a0efb46f3e3ef7c409, the newest version stored for this port; MIT
license, Copyright (c) 2023 PyG Team), written out again here with the import swapped to
`labml_gat.gatv2_conv.GATConv` and without PyG: the sparse adjacencies are made with torch.

Cases of the original file not run here, and why:
- the TorchScript blocks (`torch.jit.script`, only in PyG's full test): the layer computes
  attention in chunks with Python control flow, so it refuses scripting with one clear line;
- the `torch_sparse.SparseTensor` blocks: torch_sparse is not installed here, and the layer takes
  `torch.sparse` tensors instead (a SparseTensor converts with `adj.to_torch_sparse_csr_tensor()`);
- the `normalize=True` blocks and `gat_norm` (`test_gat_conv`'s last part,
  `test_gat_conv_csc_error`, `test_gat_norm_csc_error`, `test_gat_conv_bipartite_error`,
  `test_remove_diag_sparse_tensor`): added to PyG after 2.8.1, the version this layer follows,
  whose GATConv has no `normalize` (the drop-in refuses it as an unexpected keyword argument).
"""

import pytest
import torch

from labml_gat.gatv2_conv import GATConv
from test_pyg_gatv2_conv_port import csc_adjacency


@pytest.mark.parametrize('residual', [False, True])
def test_gat_conv(residual):
    x1 = torch.randn(4, 8)
    x2 = torch.randn(2, 16)
    edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    adj1 = csc_adjacency(edge_index, (4, 4))

    conv = GATConv(8, 32, heads=2, residual=residual)
    assert str(conv) == 'GATConv(8, 32, heads=2)'
    out = conv(x1, edge_index)
    assert out.size() == (4, 64)
    assert torch.allclose(conv(x1, edge_index, size=(4, 4)), out)
    assert torch.allclose(conv(x1, adj1.t()), out, atol=1e-6)

    # The attention as (edge_index, alpha) over the 4 edges and 3 added self loops
    result = conv(x1, edge_index, return_attention_weights=True)
    assert torch.allclose(result[0], out)
    assert result[1][0].size() == (2, 7)
    assert result[1][1].size() == (7, 2)
    assert result[1][1].min() >= 0 and result[1][1].max() <= 1

    # and as a sparse [4, 4, heads] tensor for a sparse adjacency
    result = conv(x1, adj1.t(), return_attention_weights=True)
    assert torch.allclose(result[0], out, atol=1e-6)
    assert result[1][0].size() == torch.Size([4, 4, 2])
    assert result[1][0]._nnz() == 7

    # Bipartite message passing
    adj1 = csc_adjacency(edge_index, (4, 2))

    conv = GATConv((8, 16), 32, heads=2, residual=residual)
    assert str(conv) == 'GATConv((8, 16), 32, heads=2)'

    out1 = conv((x1, x2), edge_index)
    assert out1.size() == (2, 64)
    assert torch.allclose(conv((x1, x2), edge_index, size=(4, 2)), out1)
    assert torch.allclose(conv((x1, x2), adj1.t()), out1, atol=1e-6)

    out2 = conv((x1, None), edge_index, size=(4, 2))
    assert out2.size() == (2, 64)
    assert torch.allclose(conv((x1, None), adj1.t()), out2, atol=1e-6)


def test_gat_conv_with_edge_attr():
    x = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 1, 1]])
    edge_weight = torch.randn(edge_index.size(1))
    edge_attr = torch.randn(edge_index.size(1), 4)

    for edge_dim, features in ((1, edge_weight), (4, edge_attr)):
        for fill_value in (0.5, 'mean'):
            conv = GATConv(8, 32, heads=2, edge_dim=edge_dim, fill_value=fill_value)
            out = conv(x, edge_index, features)
            assert out.size() == (4, 64)


def test_gat_conv_empty_edge_index():
    x = torch.randn(0, 8)
    edge_index = torch.empty(2, 0, dtype=torch.long)

    conv = GATConv(8, 32, heads=2)
    out = conv(x, edge_index)
    assert out.size() == (0, 64)
