"""Tests for the edge-list layers in labml_gat/edges.py, checked against the dense layers and PyG."""

import itertools

import pytest
import torch

from conftest import dense_adjacency
from labml_gat.edges import (EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer, check_edge_inputs,
                             check_features, segment_softmax)
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer

IN_FEATURES = 5
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def random_graph(n_nodes: int, n_edges: int, self_loops: bool, n_isolated: int = 2,
                 seed: int = 0) -> torch.Tensor:
    """
    Distinct random edges in a shuffled order (not sorted by target); the last `n_isolated` nodes have
    no in-edge at all (they are still sources), which also makes the first nodes a valid target set
    of a bipartite graph. With `self_loops` every other node also gets its self loop; without, there is none.
    """
    generator = torch.Generator().manual_seed(seed)
    n_targets = n_nodes - n_isolated
    edges = torch.stack([torch.randint(0, n_nodes, (n_edges,), generator=generator),
                         torch.randint(0, n_targets, (n_edges,), generator=generator)])
    edges = edges[:, edges[0] != edges[1]]
    if self_loops:
        loops = torch.arange(n_targets)
        edges = torch.cat([edges, torch.stack([loops, loops])], dim=1)
    edges = torch.unique(edges, dim=1)
    # A fixed shuffle, so that the edges are not sorted by target
    return edges[:, torch.randperm(edges.shape[1], generator=generator)]


def make_layers(version: int, dtype: torch.dtype = torch.float64, out_features: int = 6, n_heads: int = 3,
                **kwargs):
    """A dense layer and an edge-list layer with the same parameters (Glorot weights, random bias), in eval mode."""
    kwargs.setdefault('dropout', 0.0)
    dense_cls, edge_cls = ((GraphAttentionV2Layer, EdgeGraphAttentionV2Layer) if version == 2
                           else (GraphAttentionLayer, EdgeGraphAttentionLayer))
    torch.manual_seed(1)
    dense = dense_cls(IN_FEATURES, out_features, n_heads, **kwargs).to(dtype).eval()
    if dense.bias is not None:
        with torch.no_grad():
            dense.bias.normal_()
    edge = edge_cls(IN_FEATURES, out_features, n_heads, **kwargs).to(dtype).eval()
    edge.load_state_dict(dense.state_dict())
    return dense, edge


def run_with_grads(layer, h: torch.Tensor, graph: torch.Tensor, weight: torch.Tensor):
    """Output, attention and the gradients of a fixed linear function of the output
    with respect to `h` and to every parameter (by name)."""
    h = h.detach().clone().requires_grad_()
    layer.zero_grad()
    out, attention = layer(h, graph, return_attention=True)
    (out * weight).sum().backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    return out.detach(), attention.detach(), h.grad, grads


V2_CONFIGS = [dict(version=2, is_concat=c, share_weights=s, bias=b)
              for c, s, b in itertools.product([True, False], repeat=3)]
V1_CONFIGS = [dict(version=1, is_concat=c, bias=b) for c, b in itertools.product([True, False], repeat=2)]


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('self_loops', [True, False])
@pytest.mark.parametrize('config', V2_CONFIGS + V1_CONFIGS, ids=str)
def test_matches_dense(config, self_loops, dtype):
    n_nodes = 9
    edge_index = random_graph(n_nodes, 25, self_loops)
    dense, edge = make_layers(dtype=dtype, **config)
    torch.manual_seed(2)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=dtype)
    weight = torch.randn(n_nodes, edge.out_features, dtype=dtype)

    out_d, att_d, h_grad_d, grads_d = run_with_grads(dense, h, dense_adjacency(edge_index, n_nodes), weight)
    out_e, att_e, h_grad_e, grads_e = run_with_grads(edge, h, edge_index, weight)

    tol = TOLERANCE[dtype]
    assert out_e.shape == (n_nodes, edge.out_features)
    torch.testing.assert_close(out_e, out_d, atol=tol, rtol=0)
    # Attention is `[n_edges, n_heads]` in the order of the edges
    assert att_e.shape == (edge_index.shape[1], edge.n_heads)
    torch.testing.assert_close(att_e, att_d[edge_index[1], edge_index[0]], atol=tol, rtol=0)
    torch.testing.assert_close(h_grad_e, h_grad_d, atol=tol, rtol=0)
    assert grads_e.keys() == grads_d.keys()
    for name in grads_d:
        torch.testing.assert_close(grads_e[name], grads_d[name], atol=tol, rtol=0, msg=lambda m: f'{name}: {m}')


@pytest.mark.parametrize('config', [dict(version=2), dict(version=2, share_weights=True), dict(version=1)],
                         ids=str)
def test_single_head_and_wide_heads(config):
    n_nodes = 8
    edge_index = random_graph(n_nodes, 20, self_loops=True, seed=3)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    for out_features, n_heads in ((4, 1), (16, 2)):
        dense, edge = make_layers(out_features=out_features, n_heads=n_heads, **config)
        out_d, att_d = dense(h, dense_adjacency(edge_index, n_nodes), return_attention=True)
        out_e, att_e = edge(h, edge_index, return_attention=True)
        torch.testing.assert_close(out_e, out_d, atol=1e-10, rtol=0)
        torch.testing.assert_close(att_e, att_d[edge_index[1], edge_index[0]], atol=1e-10, rtol=0)


@pytest.mark.parametrize('version', [2, 1])
def test_isolated_nodes_get_bias_and_no_nan(version):
    n_nodes = 6
    # Nodes 4 and 5 have no in-edges
    edge_index = torch.tensor([[1, 2, 0, 4, 5, 3], [0, 0, 1, 2, 3, 3]])
    _, layer = make_layers(version, bias=True)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64, requires_grad=True)
    out = layer(h, edge_index)
    out.pow(2).sum().backward()
    torch.testing.assert_close(out[4:], layer.bias.expand(2, -1).detach(), atol=0, rtol=0)
    assert torch.isfinite(out).all()
    assert torch.isfinite(h.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())


@pytest.mark.parametrize('version', [2, 1])
def test_no_edges(version):
    _, layer = make_layers(version, bias=True)
    h = torch.randn(4, IN_FEATURES, dtype=torch.float64, requires_grad=True)
    out, attention = layer(h, torch.empty(2, 0, dtype=torch.int64), return_attention=True)
    assert attention.shape == (0, layer.n_heads)
    torch.testing.assert_close(out, layer.bias.expand(4, -1).detach(), atol=0, rtol=0)
    out.sum().backward()
    assert torch.equal(h.grad, torch.zeros_like(h))


@pytest.mark.parametrize('version', [2, 1])
def test_attention_sums_to_one_and_follows_edge_order(version):
    n_nodes = 10
    edge_index = random_graph(n_nodes, 30, self_loops=True, n_isolated=3)
    _, layer = make_layers(version)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    out, attention = layer(h, edge_index, return_attention=True)
    sums = torch.zeros(n_nodes, layer.n_heads, dtype=torch.float64).index_add_(0, edge_index[1], attention)
    has_in_edge = torch.zeros(n_nodes, dtype=torch.bool)
    has_in_edge[edge_index[1]] = True
    torch.testing.assert_close(sums[has_in_edge], torch.ones_like(sums[has_in_edge]))
    assert torch.equal(sums[~has_in_edge], torch.zeros_like(sums[~has_in_edge]))

    permutation = torch.randperm(edge_index.shape[1])
    out_p, attention_p = layer(h, edge_index[:, permutation], return_attention=True)
    torch.testing.assert_close(out_p, out, atol=1e-12, rtol=0)
    torch.testing.assert_close(attention_p, attention[permutation], atol=1e-12, rtol=0)


def test_duplicate_edge_counts_twice():
    # Node 0 has in-edges from 1 and 2; listing 1 -> 0 twice gives each copy exp(e_1) / (2 exp(e_1) + exp(e_2))
    _, layer = make_layers(2)
    h = torch.randn(3, IN_FEATURES, dtype=torch.float64)
    _, attention = layer(h, torch.tensor([[1, 2], [0, 0]]), return_attention=True)
    _, attention_dup = layer(h, torch.tensor([[1, 1, 2], [0, 0, 0]]), return_attention=True)
    alpha_1, alpha_2 = attention
    torch.testing.assert_close(attention_dup, torch.stack([alpha_1, alpha_1, alpha_2]) / (1 + alpha_1))


def test_segment_softmax_is_stable():
    e = torch.tensor([[1000.0, -1000.0], [1001.0, -1001.0], [-1000.0, 1000.0]])
    alpha = segment_softmax(e, torch.tensor([0, 0, 2]), 3)
    expected_0 = torch.softmax(torch.tensor([1000.0, 1001.0]), dim=0)
    torch.testing.assert_close(alpha[:2, 0], expected_0)
    torch.testing.assert_close(alpha[:2, 1], expected_0.flip(0))
    torch.testing.assert_close(alpha[2], torch.ones(2))


@pytest.mark.parametrize('config', [dict(version=2, bias=True), dict(version=2, share_weights=True),
                                    dict(version=1, bias=True)], ids=str)
def test_state_dict_round_trip(config):
    n_nodes = 7
    edge_index = random_graph(n_nodes, 18, self_loops=True)
    adj = dense_adjacency(edge_index, n_nodes)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    dense, edge = make_layers(**config)
    # Same names and shapes both ways
    assert {k: v.shape for k, v in dense.state_dict().items()} == {k: v.shape for k, v in edge.state_dict().items()}
    # edge -> dense: a fresh dense layer loads the edge layer's parameters and computes the same function
    fresh_dense, fresh_edge = make_layers(**config)
    with torch.no_grad():
        for p in edge.parameters():
            p.add_(0.5)
    fresh_dense.load_state_dict(edge.state_dict())
    torch.testing.assert_close(fresh_dense(h, adj), edge(h, edge_index), atol=1e-10, rtol=0)
    # dense -> edge
    fresh_edge.load_state_dict(fresh_dense.state_dict())
    torch.testing.assert_close(fresh_edge(h, edge_index), fresh_dense(h, adj), atol=1e-10, rtol=0)


@pytest.mark.parametrize('version', [2, 1])
def test_disjoint_union_equals_graphs_alone(version):
    _, layer = make_layers(version, bias=True)
    sizes = [4, 7, 5]
    graphs = [random_graph(n, 3 * n, self_loops=True, n_isolated=1, seed=n) for n in sizes]
    features = [torch.randn(n, IN_FEATURES, dtype=torch.float64) for n in sizes]
    offsets = [0, 4, 11]
    batch_edges = torch.cat([g + o for g, o in zip(graphs, offsets)], dim=1)
    out, attention = layer(torch.cat(features), batch_edges, return_attention=True)
    n_edges = 0
    for g, x, o, n in zip(graphs, features, offsets, sizes):
        out_alone, attention_alone = layer(x, g, return_attention=True)
        torch.testing.assert_close(out[o:o + n], out_alone, atol=1e-12, rtol=0)
        torch.testing.assert_close(attention[n_edges:n_edges + g.shape[1]], attention_alone, atol=1e-12, rtol=0)
        n_edges += g.shape[1]


@pytest.mark.parametrize('config', [dict(version=2), dict(version=2, share_weights=True, bias=True),
                                    dict(version=1, is_concat=False, bias=True)], ids=str)
def test_bipartite_targets_prefix_of_sources(config):
    # As a neighbour sampler produces: the targets are the first `n_dst` of the sampled nodes
    n_src, n_dst = 12, 5
    edge_index = random_graph(n_src, 40, self_loops=True, n_isolated=n_src - n_dst)
    _, layer = make_layers(**config)
    h = torch.randn(n_src, IN_FEATURES, dtype=torch.float64, requires_grad=True)
    out, attention = layer(h, edge_index, return_attention=True)
    h_src = h.detach().clone().requires_grad_()
    h_dst = h.detach()[:n_dst].clone().requires_grad_()
    out_b, attention_b = layer((h_src, h_dst), edge_index, return_attention=True)
    assert out_b.shape == (n_dst, layer.out_features)
    torch.testing.assert_close(out_b, out[:n_dst], atol=1e-12, rtol=0)
    torch.testing.assert_close(attention_b, attention, atol=1e-12, rtol=0)
    # The gradients of the two inputs add up to that of the shared one
    out[:n_dst].sum().backward()
    out_b.sum().backward()
    h_grad_b = h_src.grad.clone()
    h_grad_b[:n_dst] += h_dst.grad
    torch.testing.assert_close(h_grad_b, h.grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize('config', [dict(version=2), dict(version=2, share_weights=True), dict(version=1)],
                         ids=str)
def test_bipartite_matches_dense_union(config):
    # Sources and targets are different node sets; as one graph of n_src + n_dst nodes,
    # the edge j -> i becomes j -> n_src + i, and the dense layer's rows n_src: are the targets' outputs.
    n_src, n_dst = 6, 4
    generator = torch.Generator().manual_seed(5)
    edge_index = torch.unique(torch.stack([torch.randint(0, n_src, (15,), generator=generator),
                                           torch.randint(0, n_dst - 1, (15,), generator=generator)]), dim=1)
    dense, layer = make_layers(**config)
    h_src = torch.randn(n_src, IN_FEATURES, dtype=torch.float64)
    h_dst = torch.randn(n_dst, IN_FEATURES, dtype=torch.float64)
    out, attention = layer((h_src, h_dst), edge_index, return_attention=True)
    union_edges = edge_index + torch.tensor([[0], [n_src]])
    out_d, att_d = dense(torch.cat([h_src, h_dst]), dense_adjacency(union_edges, n_src + n_dst),
                         return_attention=True)
    torch.testing.assert_close(out, out_d[n_src:], atol=1e-10, rtol=0)
    torch.testing.assert_close(attention, att_d[union_edges[1], union_edges[0]], atol=1e-10, rtol=0)


def _copy_to_pyg_gatv2(layer: EdgeGraphAttentionV2Layer):
    torch_geometric_nn = pytest.importorskip('torch_geometric.nn')
    n_hidden = layer.n_hidden
    conv = torch_geometric_nn.GATv2Conv(IN_FEATURES, n_hidden, layer.n_heads, concat=layer.is_concat,
                                        negative_slope=layer.activation.negative_slope, dropout=0.0,
                                        add_self_loops=False, bias=layer.bias is not None,
                                        share_weights=layer.share_weights).double().eval()
    with torch.no_grad():
        conv.lin_l.weight.copy_(layer.linear_l.weight)
        conv.lin_r.weight.copy_(layer.linear_r.weight)
        for lin in (conv.lin_l, conv.lin_r):
            if lin.bias is not None:
                lin.bias.zero_()
        conv.att.copy_(layer.attn.view(1, layer.n_heads, n_hidden))
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    return conv


def _copy_to_pyg_gat(layer: EdgeGraphAttentionLayer):
    torch_geometric_nn = pytest.importorskip('torch_geometric.nn')
    n_hidden = layer.n_hidden
    conv = torch_geometric_nn.GATConv(IN_FEATURES, n_hidden, layer.n_heads, concat=layer.is_concat,
                                      negative_slope=layer.activation.negative_slope, dropout=0.0,
                                      add_self_loops=False, bias=layer.bias is not None).double().eval()
    with torch.no_grad():
        conv.lin.weight.copy_(layer.linear.weight)
        # Our a_1 (target part) is PyG's att_dst, our a_2 (source part) is att_src
        conv.att_dst.copy_(layer.attn[:, :n_hidden].reshape(1, layer.n_heads, n_hidden))
        conv.att_src.copy_(layer.attn[:, n_hidden:].reshape(1, layer.n_heads, n_hidden))
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    return conv


@pytest.mark.parametrize('config', V2_CONFIGS + V1_CONFIGS, ids=str)
def test_matches_torch_geometric(config):
    n_nodes = 9
    edge_index = random_graph(n_nodes, 25, self_loops=True)
    _, layer = make_layers(leaky_relu_negative_slope=0.1, **config)
    conv = _copy_to_pyg_gatv2(layer) if config['version'] == 2 else _copy_to_pyg_gat(layer)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    out, attention = layer(h, edge_index, return_attention=True)
    out_pyg, (edge_index_pyg, attention_pyg) = conv(h, edge_index, return_attention_weights=True)
    assert torch.equal(edge_index_pyg, edge_index)
    torch.testing.assert_close(out, out_pyg, atol=1e-10, rtol=0)
    torch.testing.assert_close(attention, attention_pyg, atol=1e-10, rtol=0)


@pytest.mark.parametrize('n_dst', [4, 7])
@pytest.mark.parametrize('config', [dict(version=2, bias=True), dict(version=2, share_weights=True),
                                    dict(version=1, bias=True)], ids=str)
def test_bipartite_matches_torch_geometric(config, n_dst):
    # Also with as many targets as sources: two node sets of the same size are still two
    n_src = 7
    generator = torch.Generator().manual_seed(6)
    edge_index = torch.unique(torch.stack([torch.randint(0, n_src, (16,), generator=generator),
                                           torch.randint(0, n_dst, (16,), generator=generator)]), dim=1)
    _, layer = make_layers(**config)
    conv = _copy_to_pyg_gatv2(layer) if config['version'] == 2 else _copy_to_pyg_gat(layer)
    h_src = torch.randn(n_src, IN_FEATURES, dtype=torch.float64)
    h_dst = torch.randn(n_dst, IN_FEATURES, dtype=torch.float64)
    out = layer((h_src, h_dst), edge_index)
    torch.testing.assert_close(out, conv((h_src, h_dst), edge_index), atol=1e-10, rtol=0)


@pytest.mark.parametrize('config', [dict(version=2, bias=True), dict(version=1, bias=True, is_concat=False)],
                         ids=str)
def test_gradcheck(config):
    _, layer = make_layers(out_features=4, n_heads=2, **config)
    # Node 3 has no in-edge; node 0 has a self loop
    edge_index = torch.tensor([[0, 1, 2, 3, 0, 3], [0, 0, 0, 1, 2, 2]])
    names = [name for name, _ in layer.named_parameters()]
    h = torch.randn(4, IN_FEATURES, dtype=torch.float64, requires_grad=True)
    params = [p.detach().clone().requires_grad_() for p in layer.parameters()]

    def function(h, *params):
        return torch.func.functional_call(layer, dict(zip(names, params)), (h, edge_index))

    assert torch.autograd.gradcheck(function, (h, *params))


@pytest.mark.parametrize('version', [2, 1])
def test_dropout_applies_after_returned_attention(version):
    n_nodes = 8
    edge_index = random_graph(n_nodes, 20, self_loops=True)
    _, layer = make_layers(version, dropout=0.5)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64)
    out_eval, attention_eval = layer(h, edge_index, return_attention=True)
    layer.train()
    torch.manual_seed(0)
    out_train, attention_train = layer(h, edge_index, return_attention=True)
    torch.testing.assert_close(attention_train, attention_eval)
    assert not torch.allclose(out_train, out_eval)


@pytest.mark.parametrize('layer_cls', [EdgeGraphAttentionV2Layer, EdgeGraphAttentionLayer])
@pytest.mark.parametrize('h, edge_index, error, message', [
    ([[0.0] * IN_FEATURES], torch.zeros(2, 1, dtype=torch.int64), TypeError, 'h must be a floating-point tensor'),
    (torch.zeros(3, IN_FEATURES, dtype=torch.int64), torch.zeros(2, 1, dtype=torch.int64), TypeError,
     'torch.int64'),
    (torch.zeros(3, 4), torch.zeros(2, 1, dtype=torch.int64), ValueError, r'\[n_nodes, 5\], got \[3, 4\]'),
    (torch.zeros(3), torch.zeros(2, 1, dtype=torch.int64), ValueError, r'\[n_nodes, 5\], got \[3\]'),
    ((torch.zeros(3, 5),), torch.zeros(2, 1, dtype=torch.int64), ValueError, 'got a tuple of 1'),
    ((torch.zeros(3, 4), torch.zeros(3, 5)), torch.zeros(2, 1, dtype=torch.int64), ValueError,
     r'h_src must have shape \[n_nodes, 5\], got \[3, 4\]'),
    ((torch.zeros(3, 5), torch.zeros(3, 5, 1)), torch.zeros(2, 1, dtype=torch.int64), ValueError,
     r'h_dst must have shape \[n_nodes, 5\], got \[3, 5, 1\]'),
    ((torch.zeros(3, 5), None), torch.zeros(2, 1, dtype=torch.int64), TypeError,
     'h_dst must be a floating-point tensor, got NoneType'),
    ((torch.zeros(3, 5), torch.zeros(3, 5, dtype=torch.float64)), torch.zeros(2, 1, dtype=torch.int64),
     TypeError, r'^h_dst is torch.float64 but the layer is torch.float32: pass h_dst.to\(torch.float32\) '
                r'or call layer.to\(torch.float64\)$'),
    (torch.zeros(3, 5, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.int64), TypeError,
     r'^h is torch.float64 but the layer is torch.float32: pass h.to\(torch.float32\) '
     r'or call layer.to\(torch.float64\)$'),
    (torch.zeros(3, 5), [[0], [1]], TypeError, 'edge_index must be a tensor of dtype torch.int64, got list'),
    (torch.zeros(3, 5), torch.zeros(2, 1, dtype=torch.int32), TypeError, 'torch.int64, got .*torch.int32'),
    (torch.zeros(3, 5), torch.zeros(2, 1), TypeError, 'torch.int64, got .*torch.float32'),
    (torch.zeros(3, 5), torch.zeros(3, 4, dtype=torch.int64), ValueError, r'\[2, n_edges\], got \[3, 4\]'),
    (torch.zeros(3, 5), torch.zeros(4, 2, dtype=torch.int64), ValueError, r'\[2, n_edges\], got \[4, 2\]'),
    (torch.zeros(3, 5), torch.zeros(2, dtype=torch.int64), ValueError, r'\[2, n_edges\], got \[2\]'),
    (torch.zeros(3, 5), torch.zeros(2, 1, dtype=torch.int64, device='meta'), ValueError,
     'same device as h'),
    (torch.zeros(3, 5), torch.tensor([[0, -1], [1, 2]]), ValueError, 'negative indices, got -1'),
    (torch.zeros(3, 5), torch.tensor([[0, 3], [1, 2]]), ValueError,
     r'sources edge_index\[0\] must be smaller than the number of nodes \(3\), got 3'),
    (torch.zeros(3, 5), torch.tensor([[0, 1], [1, 7]]), ValueError,
     r'targets edge_index\[1\] must be smaller than the number of nodes \(3\), got 7'),
    ((torch.zeros(4, 5), torch.zeros(2, 5)), torch.tensor([[3, 1], [1, 2]]), ValueError,
     r'targets edge_index\[1\] must be smaller than the number of nodes \(2\), got 2'),
])
def test_bad_input(layer_cls, h, edge_index, error, message):
    layer = layer_cls(IN_FEATURES, 4, 2)
    with pytest.raises(error, match=message):
        layer(h, edge_index)


@pytest.mark.parametrize('layer_cls', [EdgeGraphAttentionV2Layer, EdgeGraphAttentionLayer])
def test_bad_sizes(layer_cls):
    with pytest.raises(ValueError, match=r'out_features \(7\) must be divisible by n_heads \(2\)'):
        layer_cls(IN_FEATURES, 7, 2)


def test_check_edge_inputs_returns_the_two_ends():
    h = torch.zeros(4, IN_FEATURES)
    edge_index = torch.tensor([[0, 3], [1, 2]])
    h_src, h_dst, src, dst = check_edge_inputs(h, edge_index, IN_FEATURES, torch.float32)
    assert h_src is h and h_dst is h and src.tolist() == [0, 3] and dst.tolist() == [1, 2]
    h_dst = torch.zeros(3, IN_FEATURES)
    assert check_edge_inputs((h, h_dst), edge_index, IN_FEATURES, torch.float32)[1] is h_dst
    # No edges at all is a valid graph
    check_edge_inputs(h, torch.zeros(2, 0, dtype=torch.int64), IN_FEATURES, torch.float32)


@pytest.mark.filterwarnings('ignore:Sparse CSR tensor support is in beta')
def test_check_features_takes_sparse_features():
    x = torch.eye(3, IN_FEATURES).to_sparse_csr()
    check_features(x, 'x', IN_FEATURES, torch.float32)
    with pytest.raises(ValueError, match=r'^x must have shape \[n_nodes, 4\], got \[3, 5\]$'):
        check_features(x, 'x', 4, torch.float32)
    with pytest.raises(TypeError, match='^x is torch.float32 but the layer is torch.float64'):
        check_features(x, 'x', IN_FEATURES, torch.float64)


def pyg_twin(layer):
    return _copy_to_pyg_gatv2(layer) if isinstance(layer, EdgeGraphAttentionV2Layer) else _copy_to_pyg_gat(layer)


@pytest.mark.parametrize('slope', [-0.4, 0.0, 2.0])
@pytest.mark.parametrize('config', [dict(version=2, bias=True), dict(version=2, share_weights=True),
                                    dict(version=1, bias=True, is_concat=False)], ids=str)
def test_any_slope_dense_equals_edges_equals_pyg(config, slope):
    """
    A negative LeakyReLU slope: the edge-list GATv2 then computes its LeakyReLU out of place
    (its backward needs the input, not only the sign of the output). Outputs, attention and every
    gradient agree between the dense layer, the edge-list layer and PyG.
    """
    n_nodes = 10
    edge_index = random_graph(n_nodes, 30, self_loops=True, seed=3)
    dense, edge = make_layers(leaky_relu_negative_slope=slope, **config)
    conv = pyg_twin(edge)
    generator = torch.Generator().manual_seed(4)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64, generator=generator)
    weight = torch.randn(n_nodes, dense.out_features, dtype=torch.float64, generator=generator)
    out_d, att_d, h_grad_d, grads_d = run_with_grads(dense, h, dense_adjacency(edge_index, n_nodes), weight)
    out_e, att_e, h_grad_e, grads_e = run_with_grads(edge, h, edge_index, weight)
    torch.testing.assert_close(out_e, out_d, atol=1e-10, rtol=0)
    torch.testing.assert_close(att_e, att_d[edge_index[1], edge_index[0]], atol=1e-10, rtol=0)
    torch.testing.assert_close(h_grad_e, h_grad_d, atol=1e-10, rtol=0)
    for name in grads_d:
        torch.testing.assert_close(grads_e[name], grads_d[name], atol=1e-10, rtol=0, msg=name)
    h_pyg = h.clone().requires_grad_()
    out_pyg = conv(h_pyg, edge_index)
    (out_pyg * weight).sum().backward()
    torch.testing.assert_close(out_e, out_pyg.detach(), atol=1e-10, rtol=0)
    torch.testing.assert_close(h_grad_e, h_pyg.grad, atol=1e-10, rtol=0)
    # Out-of-place LeakyReLU with a negative slope: the gradient is still checked numerically
    if slope < 0:
        edge_index_small = torch.tensor([[0, 1, 2, 3, 0], [0, 0, 0, 1, 2]])
        x = torch.randn(4, IN_FEATURES, dtype=torch.float64, generator=generator, requires_grad=True)
        assert torch.autograd.gradcheck(lambda x: edge(x, edge_index_small), (x,))


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
@pytest.mark.parametrize('version', [2, 1])
def test_a_bad_feature_poisons_the_same_rows_dense_edges_and_pyg(version, bad):
    """
    A NaN (or inf) in one node's features reaches the rows of the nodes that attend to it (and its own),
    and no other: the same rows, with the same values elsewhere, in the dense layer, the edge-list
    layer and PyG.
    """
    n_nodes, bad_node = 12, 3
    edge_index = random_graph(n_nodes, 30, self_loops=True, seed=5)
    adj = dense_adjacency(edge_index, n_nodes)
    dense, edge = make_layers(version)
    h = torch.randn(n_nodes, IN_FEATURES, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    clean = edge(h, edge_index)
    h[bad_node, 2] = bad
    out_d, out_e, out_pyg = dense(h, adj), edge(h, edge_index), pyg_twin(edge)(h, edge_index)
    poisoned = adj[:, bad_node] | (torch.arange(n_nodes) == bad_node)
    assert 1 < poisoned.sum() < n_nodes
    # Every poisoned row is non-finite; every other row is exactly the clean one
    for out in (out_d, out_e, out_pyg):
        assert not torch.isfinite(out[poisoned]).all(dim=1).any()
        torch.testing.assert_close(out[~poisoned], clean[~poisoned], atol=1e-10, rtol=0)
    torch.testing.assert_close(out_d, out_e, equal_nan=True, atol=1e-10, rtol=0)
    torch.testing.assert_close(out_e, out_pyg, equal_nan=True, atol=1e-10, rtol=0)


def twins(version: int, **kwargs):
    """The dense, edge-list and lean layers of one attention with the same parameters, and a
    broadcast dense GATv2: all compute the same function."""
    from labml_gat.lean import LeanGraphAttentionLayer, LeanGraphAttentionV2Layer
    dense, edge = make_layers(version, torch.float32, **kwargs)
    lean_cls = LeanGraphAttentionV2Layer if version == 2 else LeanGraphAttentionLayer
    lean = lean_cls(IN_FEATURES, edge.out_features, edge.n_heads, dropout=0.0,
                    bias=edge.bias is not None)
    lean.load_state_dict(edge.state_dict())
    layers = {'dense': dense, 'edges': edge, 'lean': lean.eval()}
    if version == 2:
        layers['broadcast'] = make_layers(version, torch.float32, broadcast=True, **kwargs)[0]
        layers['broadcast'].load_state_dict(edge.state_dict())
    return layers


@pytest.mark.parametrize('sign', [1.0, -1.0])
@pytest.mark.parametrize('version', [2, 1])
def test_float16_scores_beyond_its_range(version, sign):
    # Scores of about 1e5 (features of thousands, summed over 64 features): beyond float16's
    # largest number, 65504, while every output fits. Summed in float16 the scores would be
    # infinite and the outputs NaN (or, masked with float16's lowest number, zeros); every
    # twin scores in float32 and agrees with float64 on the same rounded inputs and weights
    edge_index = random_graph(12, 60, self_loops=True, n_isolated=0)
    h = (torch.rand(12, IN_FEATURES, generator=torch.Generator().manual_seed(0)) * 3000).half()
    for name, layer in twins(version, out_features=64, n_heads=1).items():
        with torch.no_grad():
            for p in layer.parameters():
                p.abs_()
            layer.attn.fill_(sign * 0.5)
        graph = dense_adjacency(edge_index, 12) if name in ('dense', 'broadcast') else edge_index
        out, attention = layer.half()(h, graph, return_attention=True)
        expected = layer.double()(h.double(), graph)
        # Scored in float32, stored in float16: the output and the attention
        assert out.dtype == attention.dtype == torch.float16, name
        assert (out.double() - expected).abs().max() <= 1e-2 * expected.abs().max(), name


@pytest.mark.parametrize('version', [2, 1])
def test_all_scores_minus_infinity_are_nan_in_every_twin(version):
    # A feature of -inf makes every score of some queries -inf: their softmax is undefined,
    # and every twin says so with NaN in those rows (the dense layers once masked non-edges
    # with the lowest finite number, which then won the softmax and gave a silent zero);
    # the rows of a node with no neighbour stay zero, and the others finite, in all of them
    edge_index = random_graph(8, 30, self_loops=False, n_isolated=2)
    h = torch.randn(8, IN_FEATURES, generator=torch.Generator().manual_seed(3))
    h[2, 0] = -torch.inf
    outs = {}
    for name, layer in twins(version).items():
        graph = dense_adjacency(edge_index, 8) if name in ('dense', 'broadcast') else edge_index
        with torch.no_grad():
            outs[name] = layer(h, graph)
    nan = outs['edges'].isnan()
    assert nan.any() and not nan[-2:].any()
    assert (outs['edges'][-2:] == 0).all()
    for name, out in outs.items():
        assert torch.equal(out.isnan(), nan), name
        torch.testing.assert_close(out[~nan], outs['edges'][~nan], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('version', [2, 1])
def test_returned_attention_carries_its_gradient(version):
    # The attention a layer returns is part of its function (a loss may regularise it):
    # its gradient reaches the features in every twin as in PyG's layer
    edge_index = random_graph(9, 25, self_loops=True)
    generator = torch.Generator().manual_seed(2)
    h = torch.randn(9, IN_FEATURES, dtype=torch.float64, generator=generator)
    weight = torch.randn(edge_index.shape[1], 3, dtype=torch.float64, generator=generator)
    layers = twins(version)
    conv = pyg_twin(layers['edges'].double())
    h_pyg = h.clone().requires_grad_()
    _, (edges_pyg, attention_pyg) = conv(h_pyg, edge_index, return_attention_weights=True)
    assert torch.equal(edges_pyg, edge_index)
    (attention_pyg * weight).sum().backward()
    for name, layer in layers.items():
        h_ours = h.clone().requires_grad_()
        if name in ('dense', 'broadcast'):
            _, attention = layer.double()(h_ours, dense_adjacency(edge_index, 9), return_attention=True)
            attention = attention[edge_index[1], edge_index[0]]
        else:
            _, attention = layer.double()(h_ours, edge_index, return_attention=True)
        (attention * weight).sum().backward()
        torch.testing.assert_close(h_ours.grad, h_pyg.grad, atol=1e-10, rtol=0, msg=name)

