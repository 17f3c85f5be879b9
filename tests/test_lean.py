"""
Tests for the memory-lean layers in labml_gat/lean.py: the same function as the edge-list layers
and PyG (outputs, attention, gradients), chunk sizes, errors, and what is kept for backward.

The device-agnostic tests run on every device present: the CPU, and CUDA when it is available
(on a machine without a GPU only the CPU cases run).
"""

import itertools

import pytest
import torch

import labml_gat.lean
from conftest import PLANETOID, needs_planetoid, quoted, rounds_to
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.lean import (LeanGraphAttentionLayer, LeanGraphAttentionV2Layer, LeanTwoLayerGAT,
                            NodeInput, TargetChunks, auto_chunk_size, project)
from labml_gat.model import TwoLayerGAT
from test_edges import random_graph

IN_FEATURES = 5
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}

V2_CONFIGS = [dict(version=2, is_concat=c, share_weights=s, bias=b)
              for c, s, b in itertools.product([True, False], repeat=3)]
V1_CONFIGS = [dict(version=1, is_concat=c, bias=b) for c, b in itertools.product([True, False], repeat=2)]


def make_pair(version: int, dtype=torch.float64, device='cpu', chunk_size=None, out_features=6,
              n_heads=3, in_features=IN_FEATURES, **kwargs):
    """An edge-list layer and a lean layer with the same parameters (random bias)."""
    kwargs.setdefault('dropout', 0.0)
    edge_cls, lean_cls = ((EdgeGraphAttentionV2Layer, LeanGraphAttentionV2Layer) if version == 2
                          else (EdgeGraphAttentionLayer, LeanGraphAttentionLayer))
    torch.manual_seed(1)
    edge = edge_cls(in_features, out_features, n_heads, **kwargs).to(dtype=dtype, device=device)
    if edge.bias is not None:
        with torch.no_grad():
            edge.bias.normal_()
    lean = lean_cls(in_features, out_features, n_heads, chunk_size=chunk_size, **kwargs)
    lean.to(dtype=dtype, device=device).load_state_dict(edge.state_dict())
    return edge, lean


def run(layer, h, edge_index, weight, seed=3):
    """Output, attention and the gradients (of `h` and every parameter, by name) of a loss that
    uses both the output and the returned attention."""
    if isinstance(h, tuple):
        h = tuple(x.detach().clone().requires_grad_() for x in h)
        inputs = h
    else:
        h = h.detach().clone().requires_grad_()
        inputs = (h,)
    layer.zero_grad()
    torch.manual_seed(seed)
    out, attention = layer(h, edge_index, return_attention=True)
    ((out * weight).sum() + attention.pow(2).sum()).backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    return out.detach(), attention.detach(), [x.grad for x in inputs], grads


def assert_same(result, expected, tol):
    out, attention, h_grads, grads = result
    out_e, attention_e, h_grads_e, grads_e = expected
    torch.testing.assert_close(out, out_e, atol=tol, rtol=0)
    torch.testing.assert_close(attention, attention_e, atol=tol, rtol=0)
    for g, g_e in zip(h_grads, h_grads_e):
        torch.testing.assert_close(g, g_e, atol=tol, rtol=0)
    assert grads.keys() == grads_e.keys()
    for name in grads_e:
        torch.testing.assert_close(grads[name], grads_e[name], atol=tol, rtol=0,
                                   msg=lambda m: f'{name}: {m}')


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('chunk_size', [1, 7, 1000, None])
@pytest.mark.parametrize('config', V2_CONFIGS + V1_CONFIGS, ids=str)
def test_matches_edge_layer(config, chunk_size, dtype, device):
    # 7 does not divide the number of edges; 1000 is more than all of them
    n_nodes = 11
    edge_index = random_graph(n_nodes, 40, self_loops=True).to(device)
    assert edge_index.shape[1] % 7 != 0
    edge, lean = make_pair(dtype=dtype, device=device, chunk_size=chunk_size, **config)
    torch.manual_seed(2)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=dtype, device=device)
    weight = torch.randn(n_nodes, lean.out_features, dtype=dtype, device=device)
    assert_same(run(lean, h, edge_index, weight), run(edge, h, edge_index, weight),
                TOLERANCE[dtype])


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('config', [dict(version=2), dict(version=2, share_weights=True, bias=True),
                                    dict(version=1, is_concat=False, bias=True)], ids=str)
def test_dropout_draws_the_same_mask(config, device):
    # In training mode the lean layer draws its attention dropout from the same random stream
    n_nodes = 10
    edge_index = random_graph(n_nodes, 30, self_loops=True).to(device)
    edge, lean = make_pair(dropout=0.5, chunk_size=4, device=device, **config)
    edge.train(), lean.train()
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64, device=device)
    weight = torch.randn(n_nodes, lean.out_features, dtype=torch.float64, device=device)
    result = run(lean, h, edge_index, weight)
    assert_same(result, run(edge, h, edge_index, weight), 1e-10)
    # and it is a dropout: the output differs from the evaluation output
    lean.eval()
    assert not torch.allclose(result[0], lean(h, edge_index))


@pytest.mark.parametrize('version', [2, 1])
def test_dropout_of_one_drops_everything(version):
    edge, lean = make_pair(version, dropout=1.0, bias=False, chunk_size=3)
    edge.train(), lean.train()
    edge_index = random_graph(8, 20, self_loops=True)
    h = torch.randn(8, IN_FEATURES, dtype=torch.float64)
    assert torch.equal(lean(h, edge_index), edge(h, edge_index))
    assert torch.equal(lean(h, edge_index), torch.zeros(8, lean.out_features, dtype=torch.float64))


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('config', [dict(version=2), dict(version=2, share_weights=True, bias=True),
                                    dict(version=1, bias=True)], ids=str)
def test_bipartite_matches_edge_layer(config, device):
    n_src, n_dst = 12, 5
    edge_index = random_graph(n_src, 40, self_loops=True, n_isolated=n_src - n_dst).to(device)
    edge, lean = make_pair(chunk_size=6, device=device, **config)
    h_src = torch.randn(n_src, IN_FEATURES, dtype=torch.float64, device=device)
    h_dst = torch.randn(n_dst, IN_FEATURES, dtype=torch.float64, device=device)
    weight = torch.randn(n_dst, lean.out_features, dtype=torch.float64, device=device)
    assert_same(run(lean, (h_src, h_dst), edge_index, weight),
                run(edge, (h_src, h_dst), edge_index, weight), 1e-10)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('version', [2, 1])
def test_isolated_nodes_and_no_edges(version, device):
    _, lean = make_pair(version, bias=True, chunk_size=2, device=device)
    bias = lean.bias.detach()
    # Nodes 4 and 5 have no in-edges
    edge_index = torch.tensor([[1, 2, 0, 4, 5, 3], [0, 0, 1, 2, 3, 3]], device=device)
    h = torch.randn(6, IN_FEATURES, dtype=torch.float64, device=device, requires_grad=True)
    out = lean(h, edge_index)
    out.pow(2).sum().backward()
    torch.testing.assert_close(out[4:], bias.expand(2, -1), atol=0, rtol=0)
    assert torch.isfinite(out).all() and torch.isfinite(h.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in lean.parameters())

    h = torch.randn(4, IN_FEATURES, dtype=torch.float64, device=device, requires_grad=True)
    out, attention = lean(h, torch.empty(2, 0, dtype=torch.int64, device=device),
                          return_attention=True)
    assert attention.shape == (0, lean.n_heads)
    torch.testing.assert_close(out, bias.expand(4, -1), atol=0, rtol=0)
    out.sum().backward()
    assert torch.equal(h.grad, torch.zeros_like(h))


@pytest.mark.parametrize('config', [dict(version=2, bias=True), dict(version=2, share_weights=True),
                                    dict(version=1, bias=True, is_concat=False)], ids=str)
def test_gradcheck(config):
    # float64 gradients of the output and of the returned attention, in chunks of 2 edges
    _, layer = make_pair(out_features=4, n_heads=2, chunk_size=2, **config)
    edge_index = torch.tensor([[0, 1, 2, 3, 0, 3, 1], [0, 0, 0, 1, 2, 2, 1]])
    names = [name for name, _ in layer.named_parameters()]
    h = torch.randn(4, IN_FEATURES, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def function(h, *params):
        return torch.func.functional_call(layer, dict(zip(names, params)),
                                          (h, edge_index), {'return_attention': True})

    assert torch.autograd.gradcheck(function, (h, *params))


def to_pyg(layer):
    """PyG's `GATv2Conv` or `GATConv` with the parameters of a lean layer."""
    from torch_geometric.nn import GATConv, GATv2Conv
    sizes = dict(in_channels=layer.in_features, out_channels=layer.n_hidden, heads=layer.n_heads,
                 concat=layer.is_concat, negative_slope=layer.activation.negative_slope,
                 dropout=0.0, add_self_loops=False, bias=layer.bias is not None)
    dtype = layer.attn.dtype
    with torch.no_grad():
        if isinstance(layer, LeanGraphAttentionV2Layer):
            conv = GATv2Conv(share_weights=layer.share_weights, **sizes).to(dtype)
            conv.lin_l.weight.copy_(layer.linear_l.weight)
            conv.lin_r.weight.copy_(layer.linear_r.weight)
            for lin in (conv.lin_l, conv.lin_r):
                if lin.bias is not None:
                    lin.bias.zero_()
            conv.att.copy_(layer.attn.view(1, layer.n_heads, layer.n_hidden))
        else:
            conv = GATConv(**sizes).to(dtype)
            conv.lin.weight.copy_(layer.linear.weight)
            # Our a_1 (target half) is PyG's att_dst, our a_2 (source half) its att_src
            conv.att_dst.copy_(layer.attn[:, :layer.n_hidden].reshape(1, layer.n_heads, -1))
            conv.att_src.copy_(layer.attn[:, layer.n_hidden:].reshape(1, layer.n_heads, -1))
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    return conv.eval()


def pyg_gradients(conv, layer):
    """PyG's parameter gradients under our parameter names."""
    if layer.__class__ is LeanGraphAttentionV2Layer:
        names = {'linear_l.weight': conv.lin_l.weight, 'attn': conv.att}
        if not layer.share_weights:
            names['linear_r.weight'] = conv.lin_r.weight
        grads = {name: p.grad.reshape(layer.get_parameter(name).shape) for name, p in names.items()}
    else:
        grads = {'linear.weight': conv.lin.weight.grad,
                 'attn': torch.cat([conv.att_dst.grad, conv.att_src.grad], dim=-1)[0]}
    if layer.bias is not None:
        grads['bias'] = conv.bias.grad
    return grads


def compare_with_pyg(config: dict, edge_index: torch.Tensor, h: torch.Tensor, n_heads: int,
                     out_features: int, tol: float):
    dtype = h.dtype
    _, lean = make_pair(in_features=h.shape[1], n_heads=n_heads, out_features=out_features,
                        dtype=dtype, chunk_size=997, leaky_relu_negative_slope=0.1, **config)
    conv = to_pyg(lean)
    weight = torch.randn(h.shape[0], lean.out_features, dtype=dtype)

    out, attention, (h_grad,), grads = run(lean, h, edge_index, weight)
    x = h.detach().clone().requires_grad_()
    out_pyg, (edge_index_pyg, attention_pyg) = conv(x, edge_index, return_attention_weights=True)
    ((out_pyg * weight).sum() + attention_pyg.pow(2).sum()).backward()
    assert torch.equal(edge_index_pyg, edge_index)
    torch.testing.assert_close(out, out_pyg.detach(), atol=tol, rtol=0)
    torch.testing.assert_close(attention, attention_pyg.detach(), atol=tol, rtol=0)
    torch.testing.assert_close(h_grad, x.grad, atol=tol, rtol=0)
    grads_pyg = pyg_gradients(conv, lean)
    assert grads.keys() == grads_pyg.keys()
    for name in grads:
        torch.testing.assert_close(grads[name], grads_pyg[name], atol=tol, rtol=0,
                                   msg=lambda m: f'{name}: {m}')


@pytest.mark.parametrize('config', V2_CONFIGS + V1_CONFIGS, ids=str)
def test_matches_torch_geometric(config):
    pytest.importorskip('torch_geometric')
    n_nodes = 30
    edge_index = random_graph(n_nodes, 150, self_loops=True)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    compare_with_pyg(config, edge_index, h, n_heads=3, out_features=6, tol=1e-10)


@needs_planetoid
@pytest.mark.parametrize('config', [dict(version=2), dict(version=1)], ids=str)
def test_matches_torch_geometric_on_cora(config):
    # The first layer of the GAT paper's Cora model: 1433 features in, 8 heads of 8 features
    pytest.importorskip('torch_geometric')
    from labml_gat.datasets import load_planetoid
    cora = load_planetoid('cora', data_dir=PLANETOID, download=False)
    edge_index = cora.edge_index_with_self_loops()
    compare_with_pyg(config, edge_index, cora.x.double(), n_heads=8, out_features=64, tol=1e-9)


@pytest.mark.parametrize('version', [2, 1])
def test_state_dict_and_constructor(version):
    edge, lean = make_pair(version, bias=True)
    assert lean.state_dict().keys() == edge.state_dict().keys()
    assert isinstance(lean, type(edge))
    with pytest.raises(ValueError, match='chunk_size must be None or a positive integer, got 0'):
        type(lean)(IN_FEATURES, 6, 3, chunk_size=0)
    with pytest.raises(ValueError, match='chunk_size must be None or a positive integer, got 1.5'):
        type(lean)(IN_FEATURES, 6, 3, chunk_size=1.5)
    with pytest.raises(ValueError, match=r'out_features \(7\) must be divisible by n_heads \(2\)'):
        type(lean)(IN_FEATURES, 7, 2)


def test_auto_chunk_size():
    like = torch.zeros(1)
    # Each [C, F'] tensor of a chunk is at most 2 MiB (and a chunk has at least 1024 edges)
    assert auto_chunk_size(like, 64) == 2 * 2 ** 20 // (64 * 4)
    assert auto_chunk_size(like.double(), 64) == 2 * 2 ** 20 // (64 * 8)
    assert auto_chunk_size(like, 4096) == 1024


def sorted_by_target(edge_index: torch.Tensor) -> torch.Tensor:
    return edge_index[:, torch.argsort(edge_index[1], stable=True)]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('chunk', [1, 3, 7, 1000])
def test_target_chunks(chunk, device):
    # The chunks cover every edge once, in the order of the targets, and never split the
    # in-edges of a target
    n_nodes = 12
    edge_index = random_graph(n_nodes, 60, self_loops=True).to(device)
    src, dst = edge_index
    edges = TargetChunks(src, dst, n_nodes, chunk)
    assert edges.order is not None
    assert torch.equal(edges.dst, dst[edges.order])
    assert torch.equal(edges.src, src[edges.order])
    assert torch.equal(edges.sort(dst), edges.dst)
    assert torch.equal(edges.unsort(edges.src), src)
    assert torch.equal(edges.dst, torch.sort(dst, stable=True).values)
    degrees = torch.bincount(dst, minlength=n_nodes)
    covered = 0
    for a, b, e0, e1 in edges.parts:
        assert e0 == covered and e1 > e0
        covered = e1
        assert e1 - e0 == degrees[a:b].sum().item()
        assert ((edges.dst[e0:e1] >= a) & (edges.dst[e0:e1] < b)).all()
        # A chunk starts at a multiple of `chunk` edges (or the first target after one) and
        # ends with the target that crosses the next multiple
        assert e1 - e0 <= chunk - 1 + degrees[b - 1].item()
    assert covered == src.shape[0]
    # Edges already sorted by target are used as they are
    src_sorted, dst_sorted = sorted_by_target(edge_index)
    edges = TargetChunks(src_sorted, dst_sorted, n_nodes, chunk)
    assert edges.order is None and edges.src is src_sorted
    assert TargetChunks(src[:0], dst[:0], n_nodes, chunk).parts == []


def test_targets_past_32_bits_are_sorted_as_they_are():
    # The sort's 32-bit keys are only for targets that fit: larger ones would wrap round
    from labml_gat.gatv2_conv import target_order
    dst = torch.tensor([2 ** 31 + 1, 5, 2 ** 31, 5])
    assert target_order(dst, 2 ** 31 + 2).tolist() == [1, 3, 2, 0]
    assert target_order(dst[1::2], 6).tolist() == [0, 1]


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('in_order', [True, False], ids=['sorted', 'shuffled'])
@pytest.mark.parametrize('n_loops', [12, 7])
def test_target_chunks_put_the_loops_in(n_loops, in_order, device, monkeypatch):
    # The loops (i, i), i < n_loops, given after the edges: the chunks are those of the edges and
    # loops sorted by target with a stable sort, each loop last among the in-edges of its node;
    # edges sorted by target are not sorted again
    n_nodes = 12
    edge_index = random_graph(n_nodes, 60, self_loops=False).to(device)
    if in_order:
        edge_index = sorted_by_target(edge_index)
    src, dst = edge_index
    with monkeypatch.context() as patch:
        if in_order:
            patch.setattr(torch, 'argsort', None)
        edges = TargetChunks(src, dst, n_nodes, 5, n_loops)
    loops = torch.arange(n_loops, device=device)
    src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
    order = torch.argsort(dst, stable=True)
    assert torch.equal(edges.order, order)
    assert torch.equal(edges.src, src[order]) and torch.equal(edges.dst, dst[order])
    assert torch.equal(edges.degrees, torch.bincount(dst, minlength=n_nodes))
    assert torch.equal(edges.unsort(edges.src), src)
    assert edges.parts == TargetChunks(src[order], dst[order], n_nodes, 5).parts


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('chunk_size', [1, 5, None])
@pytest.mark.parametrize('config', [dict(version=2), dict(version=2, share_weights=True, bias=True),
                                    dict(version=1, bias=True)], ids=str)
def test_edges_sorted_by_target(config, chunk_size, device):
    # Sorted edges take the path without a permutation; the attention is in their order
    n_nodes = 11
    edge_index = sorted_by_target(random_graph(n_nodes, 40, self_loops=True)).to(device)
    edge, lean = make_pair(dropout=0.5, chunk_size=chunk_size, device=device, **config)
    edge.train(), lean.train()
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64, device=device)
    weight = torch.randn(n_nodes, lean.out_features, dtype=torch.float64, device=device)
    assert_same(run(lean, h, edge_index, weight), run(edge, h, edge_index, weight), 1e-10)


@pytest.mark.parametrize('version', [2, 1])
def test_a_target_with_more_in_edges_than_a_chunk(version):
    # A hub with 50 in-edges, chunks of 4 edges: the hub's softmax is never split
    n_nodes = 60
    hub = torch.stack([torch.arange(50), torch.zeros(50, dtype=torch.int64)])
    loops = torch.arange(n_nodes).expand(2, -1)
    edge_index = torch.cat([loops, hub], dim=1)
    edge, lean = make_pair(version, chunk_size=4, bias=True)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    weight = torch.randn(n_nodes, lean.out_features, dtype=torch.float64)
    assert_same(run(lean, h, edge_index, weight), run(edge, h, edge_index, weight), 1e-10)


BAD_INPUTS = [
    ([[0.0] * IN_FEATURES], torch.zeros(2, 1, dtype=torch.int64)),
    (torch.zeros(3, IN_FEATURES, dtype=torch.int64), torch.zeros(2, 1, dtype=torch.int64)),
    (torch.zeros(3, 4), torch.zeros(2, 1, dtype=torch.int64)),
    ((torch.zeros(3, 5),), torch.zeros(2, 1, dtype=torch.int64)),
    ((torch.zeros(3, 5), torch.zeros(3, 5, dtype=torch.float64)), torch.zeros(2, 1, dtype=torch.int64)),
    (torch.zeros(3, 5), [[0], [1]]),
    (torch.zeros(3, 5), torch.zeros(2, 1, dtype=torch.int32)),
    (torch.zeros(3, 5), torch.zeros(3, 4, dtype=torch.int64)),
    (torch.zeros(3, 5), torch.zeros(2, 1, dtype=torch.int64, device='meta')),
    (torch.zeros(3, 5), torch.tensor([[0, -1], [1, 2]])),
    (torch.zeros(3, 5), torch.tensor([[0, 3], [1, 2]])),
    ((torch.zeros(4, 5), torch.zeros(2, 5)), torch.tensor([[3, 1], [1, 2]])),
]


@pytest.mark.parametrize('version', [2, 1])
@pytest.mark.parametrize('h, edge_index', BAD_INPUTS)
def test_bad_input_same_error_as_edge_layer(version, h, edge_index):
    edge, lean = make_pair(version, dtype=torch.float32)
    with pytest.raises(Exception) as expected:
        edge(h, edge_index)
    with pytest.raises(expected.type) as raised:
        lean(h, edge_index)
    assert str(raised.value) == str(expected.value)


def saved_bytes(layer, h, edge_index) -> int:
    """The total size of the distinct tensors autograd keeps for the backward pass."""
    seen = {}

    def pack(tensor):
        key = (tensor.data_ptr(), tensor.numel(), tensor.dtype)
        seen[key] = tensor.numel() * tensor.element_size()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layer(h, edge_index).sum().backward()
    return sum(seen.values())


@pytest.mark.parametrize('version', [2, 1])
def test_saved_tensors_grow_with_heads_not_features(version):
    # What is kept for backward is O(E * heads): widening each head from 4 to 64 features adds
    # only node-level tensors for the lean layer, but E * heads * 60 numbers or more for the
    # edge-list layer.
    n_nodes, n_heads = 50, 2
    edge_index = random_graph(n_nodes, 20_000, self_loops=True, n_isolated=0)
    n_edges = edge_index.shape[1]
    h = torch.randn(n_nodes, IN_FEATURES, requires_grad=True)
    sizes = {}
    for n_hidden in (4, 64):
        edge, lean = make_pair(version, dtype=torch.float32, out_features=n_hidden * n_heads,
                               n_heads=n_heads, chunk_size=1000, dropout=0.5)
        edge.train(), lean.train()
        sizes[n_hidden] = saved_bytes(lean, h, edge_index), saved_bytes(edge, h, edge_index)
    lean_growth = sizes[64][0] - sizes[4][0]
    edge_growth = sizes[64][1] - sizes[4][1]
    assert lean_growth <= 8 * n_nodes * n_heads * 64 * 4
    assert edge_growth >= n_edges * n_heads * 60 * 4
    # Per edge the lean layer keeps only the dropout mask, one byte per head; the rest is a few
    # node-level tensors (the input, g_l, g_r, the log-denominators)
    assert n_edges * n_heads < sizes[4][0] <= n_edges * n_heads + 16 * n_nodes * n_heads * 4 * 4


@pytest.mark.parametrize('slope', [-0.3, 0.0, 1.5])
@pytest.mark.parametrize('version', [2, 1])
def test_any_leaky_relu_slope(version, slope):
    n_nodes = 10
    edge_index = random_graph(n_nodes, 30, self_loops=True)
    edge, lean = make_pair(version, chunk_size=4, leaky_relu_negative_slope=slope, bias=True)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    weight = torch.randn(n_nodes, lean.out_features, dtype=torch.float64)
    assert_same(run(lean, h, edge_index, weight), run(edge, h, edge_index, weight), 1e-10)


@pytest.mark.parametrize('lean_cls, edge_cls', [
    (LeanGraphAttentionV2Layer, EdgeGraphAttentionV2Layer),
    (LeanGraphAttentionLayer, EdgeGraphAttentionLayer)])
def test_two_layer_model_is_the_same(lean_cls, edge_cls):
    # The paper's model built from the lean layers takes the edge-list model's state_dict and,
    # under the same random draws, gives the same training loss and gradients
    from labml_gat.model import TwoLayerGAT
    n_nodes = 30
    edge_index = random_graph(n_nodes, 120, self_loops=True)
    x = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    y = torch.randint(0, 3, (n_nodes,))
    torch.manual_seed(0)
    edge_model = TwoLayerGAT(edge_cls, IN_FEATURES, 3, 4, 2, dropout=0.5).double()
    lean_model = TwoLayerGAT(lean_cls, IN_FEATURES, 3, 4, 2, dropout=0.5).double()
    lean_model.load_state_dict(edge_model.state_dict())
    losses, grads = [], []
    for model in (edge_model, lean_model):
        torch.manual_seed(4)
        loss = torch.nn.functional.cross_entropy(model(x, edge_index), y)
        loss.backward()
        losses.append(loss.detach())
        grads.append({name: p.grad for name, p in model.named_parameters()})
    torch.testing.assert_close(losses[1], losses[0], atol=1e-12, rtol=0)
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-10, rtol=0)


def model_pair(share_weights=False, chunk_size=None, dropout=0.5, in_features=IN_FEATURES,
               n_heads=4, n_hidden=2, device='cpu'):
    """The edge-list two-layer model and the lean one with the same state_dict (random biases)."""
    torch.manual_seed(0)
    plain = TwoLayerGAT(EdgeGraphAttentionV2Layer, in_features, 3, n_heads, n_hidden, dropout,
                        share_weights=share_weights).double().to(device)
    with torch.no_grad():
        for layer in (plain.layer1, plain.output):
            layer.bias.normal_()
    lean = LeanTwoLayerGAT(in_features, 3, n_heads, n_hidden, dropout, share_weights=share_weights,
                           chunk_size=chunk_size).double().to(device)
    lean.load_state_dict(plain.state_dict())
    return plain, lean


def loss_and_grads(model, x, edge_index, y, seed=4):
    model.zero_grad()
    torch.manual_seed(seed)
    loss = torch.nn.functional.cross_entropy(model(x, edge_index), y)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('chunk_size', [5, None])
@pytest.mark.parametrize('share_weights', [False, True])
def test_lean_model_is_the_two_layer_model(share_weights, chunk_size, device, threads):
    # Same state_dict, and in training the same draws of all four dropouts (input, attention,
    # hidden, attention), so the same loss and gradients; and the same evaluation output
    n_nodes = 30
    edge_index = random_graph(n_nodes, 120, self_loops=True).to(device)
    x = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64, device=device)
    y = torch.randint(0, 3, (n_nodes,), device=device)
    plain, lean = model_pair(share_weights, chunk_size, device=device)
    assert lean.state_dict().keys() == plain.state_dict().keys()
    loss, grads = loss_and_grads(lean, x, edge_index, y)
    loss_e, grads_e = loss_and_grads(plain, x, edge_index, y)
    torch.testing.assert_close(loss, loss_e, atol=1e-12, rtol=0)
    assert grads.keys() == grads_e.keys()
    for name in grads_e:
        torch.testing.assert_close(grads[name], grads_e[name], atol=1e-10, rtol=0,
                                   msg=lambda m: f'{name}: {m}')
    # A different seed draws different masks: the dropouts are there
    assert not torch.allclose(loss_and_grads(lean, x, edge_index, y, seed=5)[0], loss)
    plain.eval(), lean.eval()
    with torch.no_grad():
        torch.testing.assert_close(lean(x, edge_index), plain(x, edge_index), atol=1e-12, rtol=0)


def test_lean_model_pair_of_graphs_and_no_dropout():
    n_nodes = 20
    graphs = (random_graph(n_nodes, 60, self_loops=True), random_graph(n_nodes, 50, True, seed=1))
    x = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    y = torch.randint(0, 3, (n_nodes,))
    plain, lean = model_pair(chunk_size=3, dropout=0.0)
    loss, grads = loss_and_grads(lean, x, graphs, y)
    loss_e, grads_e = loss_and_grads(plain, x, graphs, y)
    torch.testing.assert_close(loss, loss_e, atol=1e-12, rtol=0)
    for name in grads_e:
        torch.testing.assert_close(grads[name], grads_e[name], atol=1e-10, rtol=0)


def test_lean_model_has_one_backward_pass_per_forward():
    # The first backward pass writes the gradient of h1 over h1: a second one is refused by
    # autograd (h1 was modified), never computed from the overwritten values
    n_nodes = 12
    graph = random_graph(n_nodes, 40, self_loops=True)
    x = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    _, lean = model_pair(chunk_size=3, dropout=0.0)
    out = lean(x, graph)
    out.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match='modified by an inplace operation'):
        out.sum().backward()


@pytest.mark.parametrize('alpha', [None, 1.0, 0.5])
def test_project_rows_gradcheck(alpha, monkeypatch):
    # A fixed mask, slices of 3 rows, and the gradients of x (through mask and ELU) and of W;
    # the ELU with its own alpha (`None`: no ELU), as nn.ELU(alpha) makes it
    monkeypatch.setattr('labml_gat.lean.MAX_CHUNK_TENSOR_BYTES', 3 * 4 * 8)
    x = torch.randn(10, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    keep = torch.rand(10, 4) < 0.6
    assert len(NodeInput(x, keep, 2.5, alpha).slices()) == 4

    def function(x, weight):
        return project(NodeInput(x, keep, 2.5, alpha), weight)[0]

    assert torch.autograd.gradcheck(function, (x, weight))
    h = x * keep * 2.5
    h = h if alpha is None else torch.nn.functional.elu(x, alpha) * keep * 2.5
    torch.testing.assert_close(function(x, weight), h @ weight.T, atol=1e-12, rtol=0)


def test_project_rows_says_what_it_cannot_do():
    # Its gradients are made by hand: asked for a graph of them, it says so, with a loss linear
    # in its output as well (whose second derivatives would silently leave it out); and it says
    # that torch.func's transforms cannot take it
    x = torch.randn(10, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    keep = torch.rand(10, 4) < 0.6
    out = project(NodeInput(x, keep, 2.5, None), weight)[0]
    with pytest.raises(RuntimeError, match='no second derivative'):
        torch.autograd.grad(out.sum(), (x, weight), create_graph=True)
    with pytest.raises(RuntimeError, match="do not run under torch.func's transforms"):
        torch.func.grad(lambda w: project(NodeInput(x, keep, 2.5, None), w)[0].sum())(weight)


@pytest.mark.parametrize('requires_grad', [False, True])
def test_forward_input_gradcheck(requires_grad):
    # The first layer's path (the query projected chunk by chunk, x needs no gradient) and the
    # second's (one projection for W_l and W_r), in chunks of 2 edges, with a fixed input mask
    # and a slope other than the default one
    _, layer = make_pair(2, out_features=4, n_heads=2, chunk_size=2, bias=True,
                         leaky_relu_negative_slope=-0.3)
    edge_index = torch.tensor([[0, 1, 2, 3, 0, 3, 1], [0, 0, 0, 1, 2, 2, 1]])
    names = [name for name, _ in layer.named_parameters()]
    x = torch.randn(4, IN_FEATURES, dtype=torch.float64, requires_grad=requires_grad)
    keep = torch.rand(4, IN_FEATURES) < 0.6
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def function(*inputs):
        x_in = inputs[0] if requires_grad else x
        params = inputs[1:] if requires_grad else inputs
        h = NodeInput(x_in, keep, 2.5, 1.0)
        return call_forward_input(layer, names, params, h, edge_index)

    inputs = ((x,) if requires_grad else ()) + tuple(params)
    assert torch.autograd.gradcheck(function, inputs)
    # and the same function as the layer on the dropped-out input
    expected = layer(torch.nn.functional.elu(x) * keep * 2.5, edge_index)
    torch.testing.assert_close(function(*inputs), expected, atol=1e-12, rtol=0)


class ForwardInput(torch.nn.Module):
    """A layer's `forward_input` as a module's `forward`, for `functional_call`."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, h, edge_index):
        return self.layer.forward_input(h, edge_index)


def call_forward_input(layer, names, params, h, edge_index):
    """`layer.forward_input(h, edge_index)` with the given parameters."""
    return torch.func.functional_call(ForwardInput(layer), {
        f'layer.{name}': p for name, p in zip(names, params)}, (h, edge_index))


def saved_tensors(model, x, edge_index, y):
    """The distinct tensors autograd keeps for the backward pass of a training step."""
    seen = {}

    def pack(tensor):
        seen[(tensor.data_ptr(), tensor.numel(), tensor.dtype)] = tensor
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss_and_grads(model, x, edge_index, y)
    return list(seen.values())


def test_lean_model_keeps_no_input_sized_tensor():
    # The plain model keeps the dropped-out input [N, in_features] (and its dropout's mask as
    # numbers); the lean one keeps x itself, a byte per input feature and node-level tensors
    # of the hidden width
    n_nodes, in_features, n_heads, n_hidden = 200, 64, 4, 4
    edge_index = random_graph(n_nodes, 2000, self_loops=True)
    n_edges = edge_index.shape[1]
    x = torch.randn(n_nodes, in_features, dtype=torch.float64)
    y = torch.randint(0, 3, (n_nodes,))
    _, lean = model_pair(in_features=in_features, n_heads=n_heads, n_hidden=n_hidden)
    plain = TwoLayerGAT(LeanGraphAttentionV2Layer, in_features, 3, n_heads, n_hidden, 0.5
                        ).double()
    big = n_nodes * in_features
    kept_plain = saved_tensors(plain, x, edge_index, y)
    assert any(t.is_floating_point() and t.numel() == big for t in kept_plain)
    kept = saved_tensors(lean, x, edge_index, y)
    others = [t for t in kept if t.data_ptr() != x.data_ptr()]
    assert not any(t.is_floating_point() and t.numel() >= big for t in others)
    # Besides x: the input mask (bytes), g_l and h1 (8 bytes per number here) and the hidden
    # mask, the attention masks (a byte per edge and head) and small node-level tensors
    hidden = n_heads * n_hidden
    bound = big + n_nodes * hidden * (2 * 8 + 1) + n_edges * (n_heads + 1) + 64 * n_nodes * 8
    assert sum(t.numel() * t.element_size() for t in others) <= bound


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('version', [2, 1])
def test_half_precision_is_summed_in_float32(version, dtype):
    """A hub with 3000 in-edges, more than a chunk: in float16 or bfloat16 the lean layers score,
    normalise and sum in float32, so the output is the float64 one (same rounded inputs and weights)
    up to the rounding of the output; summed in the input's precision, the softmax's denominator
    and the hub's sum would stall."""
    n_nodes = 3000
    hub = torch.stack([torch.arange(1, n_nodes), torch.zeros(n_nodes - 1, dtype=torch.long)])
    edge_index = torch.cat([hub, torch.arange(n_nodes).expand(2, -1)], dim=1)
    edge, lean = make_pair(version, chunk_size=64)
    lean.to(dtype)
    edge.load_state_dict(lean.state_dict())
    h = (torch.rand(n_nodes, IN_FEATURES, generator=torch.Generator().manual_seed(0)) + 1).to(dtype)
    out, expected = lean(h, edge_index), edge(h.double(), edge_index)
    assert out.dtype == dtype
    assert (out.double() - expected).abs().max() <= 2e-2 * expected.abs().max()


def test_runs_under_autocast():
    # Under CPU autocast the lean layer's projections run in bfloat16 and its attention in
    # float32 inside (the drop-in layer's core); the leaner model runs too, close to float32
    x, edge_index = torch.randn(30, IN_FEATURES), random_graph(30, 100, self_loops=True)
    layer = LeanGraphAttentionV2Layer(IN_FEATURES, 8, 2, dropout=0.0)
    model = LeanTwoLayerGAT(IN_FEATURES, 3, 2, 4, dropout=0.0).eval()
    for module in (layer, model):
        with torch.autocast('cpu', torch.bfloat16):
            out = module(x, edge_index)
        out.float().sum().backward()
        reference = module(x, edge_index)
        assert (out.float() - reference).abs().max() <= 0.05 * reference.abs().max()
        assert all(p.grad is not None for p in module.parameters())


def test_the_memory_quoted_per_node():
    """
    The bytes per node the docstrings quote, computed from the formulas and the sizes they state
    (kB and GB of 1000 and 10^9 bytes): the plain two-layer model keeps $F + 5 K F'$ numbers and
    its backward pass adds $3 K F'$ (1.8 kB and 0.8 kB, 26 GB at 10M nodes, 2.6 kB in all on the
    page); the lean model at most the bytes of its formula, with edges that came sorted by
    target and with edges that came unsorted. A changed number, size or formula fails.
    """
    model, page = LeanTwoLayerGAT.__doc__, labml_gat.lean.__doc__
    F, K, KF, b, kept, more, total, millions = quoted(
        r"\$F \+ 5 K F'\$ numbers, and the backward pass adds \$3 K F'\$ more\. "
        r"With \$F = (\d+)\$, \$K = (\d+)\$, \$K F' = (\d+)\$, \$b = (\d+)\$: ([\d.]+) kB kept "
        r"and ([\d.]+) kB more per node, ([\d.]+) GB at (\d+)M nodes\.", model)
    F, K, KF, b = int(F), int(K), int(KF), int(b)
    plain, backward = (F + 5 * KF) * b, 3 * KF * b
    assert rounds_to(kept, plain / 1e3) and rounds_to(more, backward / 1e3)
    assert rounds_to(total, (plain + backward) * int(millions) * 1e6 / 1e9)
    edge_bytes = quoted(r"\(\$s\$ = (\d+) bytes per edge, (\d+) if they came unsorted\)", model)
    degree, *at_most = quoted(
        r"At most, per node: \$F \+ K F' \+ 3 K F' b \+ K b \+ \(K \+ 1 \+ 2 s\)"
        r"\|\\mathcal\{E\}\|/N\$ bytes, for the sizes above with (\d+) in-edges per node "
        r"([\d.]+) kB with the edges sorted and ([\d.]+) kB unsorted\.", model)
    lean = [F + KF + 3 * KF * b + K * b + (K + 1 + 2 * int(s)) * int(degree) for s in edge_bytes]
    assert all(rounds_to(q, bytes_ / 1e3) for q, bytes_ in zip(at_most, lean))
    *page_lean, page_plain = quoted(
        r"\(\$F \+ 5 K F'\$ numbers per node for \$F\$ input features\); "
        r"\[`LeanTwoLayerGAT`\]\(#the-two-layer-model-leaner\) keeps at most ([\d.]+) kB per "
        r"node with edges given sorted by target \(([\d.]+) kB unsorted\), the attention's part "
        r"included, where the plain model keeps ([\d.]+) kB besides its attention\.", page)
    assert page_lean == at_most and rounds_to(page_plain, (plain + backward) / 1e3)
