"""
PyG's own tests of GATv2Conv, run against the drop-in layer: every scenario and assertion of
test/nn/conv/test_gatv2_conv.py of PyTorch Geometric (https://github.com/pyg-team/pytorch_geometric,
blob 9f308f457e0460082c9958e893eb81f3c75c11f6, the newest version stored for this port; MIT
license, Copyright (c) 2023 PyG Team), written out again here with the import swapped to
`labml_gat.gatv2_conv.GATv2Conv` and without PyG: the sparse adjacencies are made with torch.

Cases of the original file not run here, and why:
- the four TorchScript blocks (`torch.jit.script(conv.jittable(...))`, only in PyG's full test):
  the layer computes attention in chunks with Python control flow, so it refuses scripting with
  one clear line (tested in test_gatv2_conv.py);
- the `torch_sparse.SparseTensor` blocks (an adjacency, the attention returned as one, and the
  bipartite one): torch_sparse is not installed here, and the layer takes `torch.sparse` tensors
  instead (a SparseTensor converts with `adj.to_torch_sparse_csr_tensor()`).
"""

import torch

from labml_gat.gatv2_conv import GATv2Conv


def csc_adjacency(edge_index: torch.Tensor, size) -> torch.Tensor:
    """PyG's `to_torch_csc_tensor(edge_index, size=size)`: sources as rows, ones as values."""
    values = torch.ones(edge_index.shape[1])
    return torch.sparse_coo_tensor(edge_index, values, size).coalesce().to_sparse_csc()


def test_gatv2_conv():
    x1 = torch.randn(4, 8)
    x2 = torch.randn(2, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [0, 0, 1, 1]])
    adj1 = csc_adjacency(edge_index, (4, 4))

    conv = GATv2Conv(8, 32, heads=2)
    assert str(conv) == 'GATv2Conv(8, 32, heads=2)'
    out = conv(x1, edge_index)
    assert out.size() == (4, 64)
    assert torch.allclose(conv(x1, edge_index), out)
    assert torch.allclose(conv(x1, adj1.t()), out, atol=1e-6)

    # The attention as (edge_index, alpha) over the 4 edges and 3 added self loops
    result = conv(x1, edge_index, return_attention_weights=True)
    assert torch.allclose(result[0], out)
    assert result[1][0].size() == (2, 7)
    assert result[1][1].size() == (7, 2)
    assert result[1][1].min() >= 0 and result[1][1].max() <= 1
    assert conv._alpha is None

    # and as a sparse [4, 4, heads] tensor for a sparse adjacency
    result = conv(x1, adj1.t(), return_attention_weights=True)
    assert torch.allclose(result[0], out, atol=1e-6)
    assert result[1][0].size() == torch.Size([4, 4, 2])
    assert result[1][0]._nnz() == 7

    # Bipartite message passing
    adj1 = csc_adjacency(edge_index, (4, 2))
    out = conv((x1, x2), edge_index)
    assert out.size() == (2, 64)
    assert torch.allclose(conv((x1, x2), edge_index), out)
    assert torch.allclose(conv((x1, x2), adj1.t()), out, atol=1e-6)


def test_gatv2_conv_with_edge_attr():
    x = torch.randn(4, 8)
    edge_index = torch.tensor([[0, 1, 2, 3], [1, 0, 1, 1]])
    edge_weight = torch.randn(edge_index.size(1))
    edge_attr = torch.randn(edge_index.size(1), 4)

    for edge_dim, features in ((1, edge_weight), (4, edge_attr)):
        for fill_value in (0.5, 'mean'):
            conv = GATv2Conv(8, 32, heads=2, edge_dim=edge_dim, fill_value=fill_value)
            out = conv(x, edge_index, features)
            assert out.size() == (4, 64)
