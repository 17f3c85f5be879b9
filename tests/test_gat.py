"""Tests of the dense GAT (v1) layer: cross-checked against PyG's `GATConv`, and its static attention."""

import re
import sys

import pytest
import torch
from torch import nn

from conftest import REPO, dense_adjacency, imported_modules, random_edge_index, run_copied_alone
from labml_gat.edges import EdgeGraphAttentionLayer
from labml_gat.gat import GraphAttentionLayer
from test_gatv2 import outputs_and_grads

torch_geometric = pytest.importorskip('torch_geometric')
from torch_geometric.nn import GATConv  # noqa: E402


def pyg_twin(layer: GraphAttentionLayer) -> GATConv:
    """A `GATConv` with `layer`'s weights: $a_1$ is PyG's `att_dst` (target), $a_2$ its `att_src` (source)."""
    conv = GATConv(layer.in_features, layer.n_hidden, heads=layer.n_heads, concat=layer.is_concat,
                   negative_slope=layer.activation.negative_slope, dropout=0.0, add_self_loops=False,
                   bias=layer.bias is not None).to(layer.attn.dtype)
    with torch.no_grad():
        conv.lin.weight.copy_(layer.linear.weight)
        conv.att_dst.copy_(layer.attn[None, :, :layer.n_hidden])
        conv.att_src.copy_(layer.attn[None, :, layer.n_hidden:])
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    return conv


@pytest.mark.parametrize('is_concat', [True, False])
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('self_loops', [True, False])
def test_matches_pyg(generator, is_concat, bias, self_loops):
    torch.manual_seed(1)
    n_nodes = 11
    edge_index = random_edge_index(n_nodes, 35, generator, self_loops=self_loops)
    adj = dense_adjacency(edge_index, n_nodes)
    layer = GraphAttentionLayer(5, 8 if is_concat else 3, 2, is_concat=is_concat, dropout=0.0,
                                bias=bias).double().eval()
    if bias:
        nn.init.normal_(layer.bias)
    conv = pyg_twin(layer).eval()

    h = torch.randn(n_nodes, 5, dtype=torch.float64, generator=generator)
    h_ours, h_pyg = h.clone().requires_grad_(), h.clone().requires_grad_()
    out, attention = layer(h_ours, adj, return_attention=True)
    out_pyg, (edges_pyg, alpha_pyg) = conv(h_pyg, edge_index, return_attention_weights=True)
    torch.testing.assert_close(out, out_pyg)
    torch.testing.assert_close(attention[edges_pyg[1], edges_pyg[0]], alpha_pyg)

    weights = torch.randn(out.shape, dtype=torch.float64, generator=generator)
    (out * weights).sum().backward()
    (out_pyg * weights).sum().backward()
    torch.testing.assert_close(h_ours.grad, h_pyg.grad)
    torch.testing.assert_close(layer.linear.weight.grad, conv.lin.weight.grad)
    pyg_attn_grad = torch.cat([conv.att_dst.grad[0], conv.att_src.grad[0]], dim=-1)
    torch.testing.assert_close(layer.attn.grad, pyg_attn_grad)
    if bias:
        torch.testing.assert_close(layer.bias.grad, conv.bias.grad)


def test_scores_follow_the_equation():
    r"""$e_{ij} = \text{LeakyReLU}(a^\top [W h_i \Vert W h_j])$, query $i$ first, written out by hand."""
    torch.manual_seed(2)
    layer = GraphAttentionLayer(3, 4, 2, dropout=0.0).double()
    h = torch.randn(4, 3, dtype=torch.float64)
    _, attention = layer(h, torch.ones(4, 4, dtype=torch.bool), return_attention=True)
    g = layer.linear(h).view(4, 2, 2)
    for k in range(2):
        e = torch.empty(4, 4, dtype=torch.float64)
        for i in range(4):
            for j in range(4):
                e[i, j] = nn.functional.leaky_relu(layer.attn[k] @ torch.cat([g[i, k], g[j, k]]), 0.2)
        torch.testing.assert_close(attention[:, :, k], torch.softmax(e, dim=1))


@pytest.mark.parametrize('seed', range(5))
def test_static_attention_ranks_keys_alike_for_every_query(seed):
    """On a complete bipartite query/key graph, every query orders the keys the same way."""
    torch.manual_seed(seed)
    n_queries, n_keys, n_heads = 6, 5, 3
    layer = GraphAttentionLayer(4, 6, n_heads, dropout=0.0)
    h = torch.randn(n_queries + n_keys, 4)
    adj = torch.zeros(n_queries + n_keys, n_queries + n_keys, dtype=torch.bool)
    adj[:n_queries, n_queries:] = True
    _, attention = layer(h, adj, return_attention=True)
    ranking = attention[:n_queries, n_queries:].argsort(dim=1)
    assert (ranking == ranking[:1]).all()


def test_gradcheck_float64(generator):
    torch.manual_seed(3)
    layer = GraphAttentionLayer(3, 4, 2, dropout=0.0, bias=True).double()
    adj = dense_adjacency(random_edge_index(5, 10, generator), 5)
    adj[0] = False
    h = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x, adj), (h,))
    assert torch.autograd.gradcheck(lambda a: torch.func.functional_call(layer, {'attn': a}, (h.detach(), adj)),
                                    (layer.attn.detach().clone().requires_grad_(),))


def test_isolated_node_gets_zero_and_no_nan():
    torch.manual_seed(4)
    layer = GraphAttentionLayer(3, 4, 2, dropout=0.0, bias=True)
    nn.init.normal_(layer.bias)
    h = torch.randn(4, 3, requires_grad=True)
    adj = torch.ones(4, 4, dtype=torch.bool)
    adj[2] = False
    out = layer(h, adj)
    torch.testing.assert_close(out[2].detach(), layer.bias.detach())
    out.sum().backward()
    assert all(torch.isfinite(t).all() for t in [h.grad, *(p.grad for p in layer.parameters())])


def test_parameters_and_repr():
    layer = GraphAttentionLayer(10, 12, 3, bias=True)
    assert layer.linear.weight.shape == (12, 10)
    assert layer.attn.shape == (3, 8)
    assert layer.bias.shape == (12,)
    assert 'n_heads=3' in repr(layer) and 'bias=True' in repr(layer)


def test_reset_parameters_is_glorot():
    """Glorot uniform: W as a matrix, each half of every a_k as a map from F' features to one score."""
    torch.manual_seed(8)
    layer = GraphAttentionLayer(300, 64, 8)
    bound_w = (6 / (300 + 64)) ** 0.5
    assert 0.9 * bound_w < layer.linear.weight.abs().max() <= bound_w
    bound_a = (6 / (1 + 8)) ** 0.5
    assert 0.9 * bound_a < layer.attn.abs().max() <= bound_a


def test_very_negative_scores_still_normalise(generator):
    """Scores of about -240 on every edge, far below any small stand-in for minus infinity: the
    non-edges still get no weight, each row's attention sums to one, and the output is PyG's."""
    layer = GraphAttentionLayer(2, 2, 1, dropout=0.0)
    with torch.no_grad():
        layer.linear.weight.fill_(1.0)
        layer.attn.fill_(-100.0)
    edge_index = torch.tensor([[1, 2, 0, 3, 0, 1], [0, 0, 1, 1, 2, 3]])
    h = torch.rand(4, 2, generator=generator) + 1.0
    out, attention = layer(h, dense_adjacency(edge_index, 4), return_attention=True)
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(4, 1))
    torch.testing.assert_close(out, pyg_twin(layer)(h, edge_index))


def test_dropout_applies_after_returned_attention():
    """In training the returned attention is the one before dropout, and the output sums the messages
    with those coefficients dropped out: dropout acts on the attention, not on the scores."""
    torch.manual_seed(9)
    layer = GraphAttentionLayer(3, 4, 2, dropout=0.5)
    h, adj = torch.randn(6, 3), torch.rand(6, 6) < 0.6
    _, attention_eval = layer.eval()(h, adj, return_attention=True)
    torch.manual_seed(0)
    out, attention = layer.train()(h, adj, return_attention=True)
    torch.testing.assert_close(attention, attention_eval)
    torch.manual_seed(0)
    dropped = nn.functional.dropout(attention_eval, 0.5, training=True)
    g = layer.linear(h).view(6, 2, 2)
    torch.testing.assert_close(out, torch.einsum('ijh,jhf->ihf', dropped, g).flatten(1))


def test_errors():
    with pytest.raises(ValueError, match='divisible by n_heads'):
        GraphAttentionLayer(3, 10, 4)
    layer = GraphAttentionLayer(3, 4, 2)
    with pytest.raises(TypeError, match='adj_mat must be a boolean tensor'):
        layer(torch.randn(4, 3), torch.ones(4, 4))
    with pytest.raises(TypeError, match='adj_mat must be a boolean tensor or None, got a tensor of dtype torch.uint8'):
        layer(torch.randn(4, 3), torch.ones(4, 4, dtype=torch.uint8))
    # One node's features without the node dimension: its length is in_features
    with pytest.raises(ValueError, match=r'h must have shape \[\.\.\., n_nodes, 3\], got \[3\]$'):
        layer(torch.randn(3), torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'h must have shape \[\.\.\., n_nodes, 3\]'):
        layer(torch.randn(4, 2), torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r'in_features must be a positive integer, got 0'):
        GraphAttentionLayer(0, 4, 2)


@pytest.mark.parametrize('adj_shape', [(4, 5), (3, 3), (4, 4, 3), (4, 4, 2, 1)])
def test_adjacency_shape_error_reports_the_shape_passed(adj_shape):
    layer = GraphAttentionLayer(3, 4, 2)
    expected = re.escape(f'for 4 nodes and 2 heads, got {list(adj_shape)}') + '$'
    with pytest.raises(ValueError, match=expected):
        layer(torch.randn(4, 3), torch.ones(adj_shape, dtype=torch.bool))


def test_float64_input_into_float32_layer_says_what_to_do():
    layer = GraphAttentionLayer(3, 4, 2)
    with pytest.raises(TypeError, match=r'^h is torch.float64 but the layer is torch.float32: '
                                        r'pass h.to\(torch.float32\) or call layer.to\(torch.float64\)$'):
        layer(torch.randn(4, 3, dtype=torch.float64), torch.ones(4, 4, dtype=torch.bool))


@pytest.mark.parametrize('slope', [-0.3, 0.0, 1.5])
def test_any_slope_matches_pyg(generator, slope):
    """A negative LeakyReLU slope is allowed and computes PyG's function, gradients included."""
    torch.manual_seed(2)
    n_nodes = 11
    layer = GraphAttentionLayer(5, 6, 2, dropout=0.0, leaky_relu_negative_slope=slope, bias=True)
    nn.init.normal_(layer.bias)
    conv = pyg_twin(layer)
    # pyg_twin copies the layer's slope: it must be the one asked for
    assert conv.negative_slope == slope
    edge_index = random_edge_index(n_nodes, 30, generator)
    h = torch.randn(n_nodes, 5, generator=generator)
    h1, h2 = h.clone().requires_grad_(), h.clone().requires_grad_()
    out, expected = layer(h1, dense_adjacency(edge_index, n_nodes)), conv(h2, edge_index)
    torch.testing.assert_close(out, expected)
    weight = torch.randn(out.shape, generator=generator)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    torch.testing.assert_close(h1.grad, h2.grad)
    torch.testing.assert_close(layer.linear.weight.grad, conv.lin.weight.grad)
    torch.testing.assert_close(layer.attn.grad, torch.cat([conv.att_dst.grad[0], conv.att_src.grad[0]], -1))


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_a_bad_feature_reaches_only_the_rows_that_attend_to_it(generator, bad):
    """A NaN (or inf) in node $j$'s features poisons $j$'s own row and the rows that attend to $j$;
    every other row is unchanged, as in PyG."""
    torch.manual_seed(5)
    n_nodes, bad_node = 12, 4
    layer = GraphAttentionLayer(3, 4, 2, dropout=0.0)
    edge_index = random_edge_index(n_nodes, 30, generator)
    adj = dense_adjacency(edge_index, n_nodes)
    h = torch.randn(n_nodes, 3, generator=generator)
    clean = layer(h, adj)
    h[bad_node, 1] = bad
    out = layer(h, adj)
    poisoned = adj[:, bad_node] | (torch.arange(n_nodes) == bad_node)
    assert 0 < poisoned.sum() < n_nodes
    assert not torch.isfinite(out[poisoned]).all(dim=1).any()
    torch.testing.assert_close(out[~poisoned], clean[~poisoned])
    torch.testing.assert_close(out, pyg_twin(layer)(h, edge_index), equal_nan=True)


# ## Batches of graphs and bipartite graphs

def test_batch_equals_each_graph(generator):
    """`h` of `[2, 3, N, F]` with one adjacency: outputs, attention and gradients are those of each graph."""
    torch.manual_seed(8)
    n_nodes = 6
    layer = GraphAttentionLayer(4, 6, 3, dropout=0.0, bias=True).double()
    nn.init.normal_(layer.bias)
    adj = dense_adjacency(random_edge_index(n_nodes, 14, generator), n_nodes)
    adj[2] = False  # an isolated query node
    h = torch.randn(2, 3, n_nodes, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    weights = torch.randn(2, 3, n_nodes, 6, dtype=torch.float64, generator=generator)
    out, attention = layer(h, adj, return_attention=True)
    h_grad, *grads = torch.autograd.grad((out * weights).sum(), [h, *layer.parameters()])
    summed = [torch.zeros_like(g) for g in grads]
    for b in range(2):
        for c in range(3):
            one = h[b, c].detach().requires_grad_()
            one_out, one_attention = layer(one, adj, return_attention=True)
            one_h_grad, *one_grads = torch.autograd.grad((one_out * weights[b, c]).sum(),
                                                         [one, *layer.parameters()])
            torch.testing.assert_close(out[b, c], one_out)
            torch.testing.assert_close(attention[b, c], one_attention)
            torch.testing.assert_close(h_grad[b, c], one_h_grad)
            summed = [x + y for x, y in zip(summed, one_grads)]
    for batched, per_graph in zip(grads, summed):
        torch.testing.assert_close(batched, per_graph)


def test_bipartite_equals_the_graph_of_both_sets_and_pyg(generator):
    """
    The pair `(h_l, h_r)`, batched neighbours and shared queries: for each graph of the batch, the
    graph of both node sets in which the queries attend to the neighbours (dense and edge-list layer,
    gradients included), and PyG's `GATConv` on `(x_src, x_dst)`.
    """
    torch.manual_seed(9)
    n_l, n_r, n_graphs = 7, 4, 3
    layer = GraphAttentionLayer(5, 6, 2, dropout=0.0, bias=True).double()
    nn.init.normal_(layer.bias)
    edges = EdgeGraphAttentionLayer(5, 6, 2, dropout=0.0, bias=True).double()
    edges.load_state_dict(layer.state_dict())
    adj = torch.rand(n_r, n_l, generator=generator) < 0.5
    adj[1] = False  # a query with no neighbour
    h_l = torch.randn(n_graphs, n_l, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    h_r = torch.randn(n_r, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    weights = torch.randn(n_graphs, n_r, 6, dtype=torch.float64, generator=generator)
    out, attention = layer((h_l, h_r), adj, return_attention=True)
    assert out.shape == (n_graphs, n_r, 6) and attention.shape == (n_graphs, n_r, n_l, 2)
    grads = torch.autograd.grad((out * weights).sum(), [h_l, h_r, *layer.parameters()])

    union = torch.zeros(n_r + n_l, n_r + n_l, dtype=torch.bool)
    union[:n_r, n_r:] = adj
    edge_index = union.nonzero().flip(1).T
    conv = pyg_twin(layer)
    pair_index = adj.nonzero().flip(1).T
    summed = {twin: [torch.zeros_like(g) for g in grads] for twin in ('dense', 'edges')}
    for b in range(n_graphs):
        h = torch.cat([h_r, h_l[b]])
        dense_out, dense_attention = layer(h, union, return_attention=True)
        edge_out = edges(h, edge_index)
        torch.testing.assert_close(out[b], dense_out[:n_r])
        torch.testing.assert_close(attention[b], dense_attention[:n_r, n_r:])
        torch.testing.assert_close(out[b], edge_out[:n_r])
        for twin, twin_out, module in (('dense', dense_out, layer), ('edges', edge_out, edges)):
            twin_grads = torch.autograd.grad((twin_out[:n_r] * weights[b]).sum(),
                                             [h_l, h_r, *module.parameters()])
            summed[twin] = [x + y for x, y in zip(summed[twin], twin_grads)]
        pyg_out = conv((h_l[b], h_r), pair_index, size=(n_l, n_r))
        torch.testing.assert_close(out[b], pyg_out)
    for twin in summed:
        for ours, theirs in zip(grads, summed[twin]):
            torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize('h, adj, error, message', [
    ((torch.randn(5, 3), torch.randn(4, 2)), torch.ones(4, 5, dtype=torch.bool), ValueError, r'^h_r must have shape \[\.\.\., n_r, 3\], got \[4, 2\]$'),
    ((torch.randn(2, 5, 3), torch.randn(3, 4, 3)), torch.ones(4, 5, dtype=torch.bool), ValueError, 'do not broadcast$'),
    ((torch.randn(5, 3), torch.randn(4, 3)), torch.ones(5, 4, dtype=torch.bool), ValueError, r'for 4 queries, 5 neighbours and 2 heads, got \[5, 4\]$'),
    (torch.randn(2, 4, 3), torch.ones(2, 4, 4, dtype=torch.bool), ValueError, r'for 4 nodes and 2 heads, got \[2, 4, 4\]$'),
])
def test_batch_and_pair_input_errors(h, adj, error, message):
    layer = GraphAttentionLayer(3, 4, 2)
    with pytest.raises(error, match=message):
        layer(h, adj)


def test_module_imports_only_torch():
    modules = imported_modules(REPO / 'labml_gat' / 'gat.py')
    assert modules <= set(sys.stdlib_module_names) | {'torch'}


@pytest.mark.slow
def test_file_can_be_copied_alone(tmp_path):
    """`gat.py` copied into another project works with nothing else of ours around."""
    script = ('import torch\nfrom gat import GraphAttentionLayer\n'
              'layer = GraphAttentionLayer(4, 8, 2)\n'
              'out = layer(torch.randn(3, 4), torch.eye(3, dtype=torch.bool))\n'
              'print(tuple(out.shape))\n')
    result = run_copied_alone(REPO / 'labml_gat' / 'gat.py', tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '(3, 8)'


@pytest.mark.parametrize('inputs', ['graph', 'batch', 'bipartite batch'])
def test_no_adjacency_is_the_complete_one(generator, inputs):
    """`adj_mat=None` is every query attending to every neighbour: the outputs, attention and
    gradients of an all-`True` adjacency, with nothing masked."""
    torch.manual_seed(12)
    layer = GraphAttentionLayer(3, 4, 2, dropout=0.0, bias=True).double()
    h_l = torch.randn(2, 5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    h_r = torch.randn(2, 4, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    h, n_r = {'graph': (h_l[0], 5), 'batch': (h_l, 5), 'bipartite batch': ((h_l, h_r), 4)}[inputs]
    weights = torch.randn(*([] if inputs == 'graph' else [2]), n_r, 4, dtype=torch.float64,
                          generator=generator)
    complete = torch.ones(n_r, 5, dtype=torch.bool)
    for ours, theirs in zip(outputs_and_grads(layer, h, None, weights),
                            outputs_and_grads(layer, h, complete, weights)):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('name', ['dense', 'edges', 'lean'])
def test_float16_score_halves_beyond_its_range(name):
    # Each half of GAT's score, a_1^T W h_i and a_2^T W h_j, is a sum over F' features of its
    # own: here each is about -1e5 or 1e5, beyond float16's largest number, while the score,
    # their difference, and every output fit. The halves are summed in float32 (an infinite
    # half would make the scores of its rows infinite and the outputs NaN), so every twin
    # agrees with float64 on the same rounded inputs and weights
    from test_edges import IN_FEATURES, random_graph, twins
    edge_index = random_graph(12, 60, self_loops=True, n_isolated=0)
    h = (torch.rand(12, IN_FEATURES, generator=torch.Generator().manual_seed(0)) * 3000).half()
    layer = twins(1, out_features=64, n_heads=1)[name]
    with torch.no_grad():
        for p in layer.parameters():
            p.abs_()
        layer.attn[:, :64].fill_(1.0)
        layer.attn[:, 64:].fill_(-1.0)
    graph = dense_adjacency(edge_index, 12) if name == 'dense' else edge_index
    out = layer.half()(h, graph)
    expected = layer.double()(h.double(), graph)
    assert out.dtype == torch.float16
    assert (out.double() - expected).abs().max() <= 1e-2 * expected.abs().max()
