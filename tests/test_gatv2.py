"""Tests of the dense GATv2 layer: cross-checked against PyG's `GATv2Conv`, and every claim its comments make."""

import sys

import pytest
import torch
from torch import nn

from conftest import REPO, dense_adjacency, imported_modules, random_edge_index, run_copied_alone
from labml_gat.edges import EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer, describe, edge_index_to_adj_mat

torch_geometric = pytest.importorskip('torch_geometric')
from torch_geometric.nn import GATv2Conv  # noqa: E402


def pyg_twin(layer: GraphAttentionV2Layer) -> GATv2Conv:
    """A `GATv2Conv` computing the same function as `layer`, with its weights copied over."""
    conv = GATv2Conv(layer.in_features, layer.n_hidden, heads=layer.n_heads, concat=layer.is_concat,
                     negative_slope=layer.activation.negative_slope, dropout=0.0, add_self_loops=False,
                     bias=layer.bias is not None, share_weights=layer.share_weights)
    conv = conv.to(layer.attn.dtype)
    with torch.no_grad():
        conv.lin_l.weight.copy_(layer.linear_l.weight)
        conv.lin_r.weight.copy_(layer.linear_r.weight)
        conv.att.copy_(layer.attn[None])
        if layer.bias is not None:
            # PyG's linear maps carry biases of their own; ours do not.
            conv.lin_l.bias.zero_()
            conv.lin_r.bias.zero_()
            conv.bias.copy_(layer.bias)
    return conv


def parameter_grads(layer: GraphAttentionV2Layer) -> dict:
    grads = {'linear_l': layer.linear_l.weight.grad, 'attn': layer.attn.grad}
    if not layer.share_weights:
        grads['linear_r'] = layer.linear_r.weight.grad
    if layer.bias is not None:
        grads['bias'] = layer.bias.grad
    return grads


def pyg_grads(conv: GATv2Conv, share_weights: bool, bias: bool) -> dict:
    grads = {'linear_l': conv.lin_l.weight.grad, 'attn': conv.att.grad[0]}
    if not share_weights:
        grads['linear_r'] = conv.lin_r.weight.grad
    if bias:
        grads['bias'] = conv.bias.grad
    return grads


@pytest.mark.parametrize('is_concat', [True, False])
@pytest.mark.parametrize('share_weights', [True, False])
@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('self_loops', [True, False])
def test_matches_pyg(generator, is_concat, share_weights, bias, self_loops):
    torch.manual_seed(1)
    n_nodes, n_heads = 13, 3
    edge_index = random_edge_index(n_nodes, 40, generator, self_loops=self_loops)
    adj = dense_adjacency(edge_index, n_nodes)
    layer = GraphAttentionV2Layer(6, 12 if is_concat else 5, n_heads, is_concat=is_concat, dropout=0.0,
                                  share_weights=share_weights, bias=bias).double().eval()
    if bias:
        nn.init.normal_(layer.bias)
    conv = pyg_twin(layer).eval()

    h = torch.randn(n_nodes, 6, dtype=torch.float64, generator=generator)
    h_ours = h.clone().requires_grad_()
    h_pyg = h.clone().requires_grad_()
    out, attention = layer(h_ours, adj, return_attention=True)
    out_pyg, (edges_pyg, alpha_pyg) = conv(h_pyg, edge_index, return_attention_weights=True)

    torch.testing.assert_close(out, out_pyg)
    # PyG's attention is per edge `[j, i]`; ours is the grid `[i, j]`.
    torch.testing.assert_close(attention[edges_pyg[1], edges_pyg[0]], alpha_pyg)
    # Attention is zero off the graph.
    assert attention.sum().item() == pytest.approx(alpha_pyg.sum().item())

    weights = torch.randn(out.shape, dtype=torch.float64, generator=generator)
    (out * weights).sum().backward()
    (out_pyg * weights).sum().backward()
    torch.testing.assert_close(h_ours.grad, h_pyg.grad)
    ours, theirs = parameter_grads(layer), pyg_grads(conv, share_weights, bias)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], msg=name)


@pytest.mark.parametrize('batch', [(), (2,)])
def test_pair_sum_index_order(batch):
    """The comment's claim: row $i N_l + j$ of the two repeats holds $g_{r,i}$ and $g_{l,j}$, in every graph."""
    n_r, n_l = 4, 5
    g_r = torch.randn(*batch, n_r, 2, 3)
    g_l = torch.randn(*batch, n_l, 2, 3)
    g_sum = (g_r.repeat_interleave(n_l, dim=-3) + g_l.tile(n_r, 1, 1)).unflatten(-3, (n_r, n_l))
    for i in range(n_r):
        for j in range(n_l):
            torch.testing.assert_close(g_sum[..., i, j, :, :], g_r[..., i, :, :] + g_l[..., j, :, :])


def test_scores_follow_the_equation():
    r"""$e_{ij} = a^\top \text{LeakyReLU}(W_r h_i + W_l h_j)$ with the query $i$ on $W_r$, written out by hand."""
    torch.manual_seed(2)
    n_nodes = 4
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0).double()
    h = torch.randn(n_nodes, 3, dtype=torch.float64)
    adj = torch.ones(n_nodes, n_nodes, dtype=torch.bool)
    _, attention = layer(h, adj, return_attention=True)

    w_l = layer.linear_l.weight.view(2, 2, 3)
    w_r = layer.linear_r.weight.view(2, 2, 3)
    for k in range(2):
        e = torch.empty(n_nodes, n_nodes, dtype=torch.float64)
        for i in range(n_nodes):
            for j in range(n_nodes):
                pair = w_r[k] @ h[i] + w_l[k] @ h[j]
                e[i, j] = layer.attn[k] @ nn.functional.leaky_relu(pair, 0.2)
        torch.testing.assert_close(attention[:, :, k], torch.softmax(e, dim=1))
    # With $W_l \ne W_r$, swapping the roles gives other numbers, so the check above pins the order.
    assert not torch.allclose(attention, attention.transpose(0, 1))


def test_values_go_through_w_l():
    r"""$h'_i = \sum_j \alpha_{ij} W_l h_j$: a node attending only to $j$ outputs exactly $W_l h_j$."""
    torch.manual_seed(3)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0).double()
    h = torch.randn(3, 3, dtype=torch.float64)
    adj = torch.zeros(3, 3, dtype=torch.bool)
    adj[0, 2] = True
    out = layer(h, adj)
    torch.testing.assert_close(out[0], layer.linear_l(h)[2])


def test_each_head_has_its_own_attention_vector():
    layer = GraphAttentionV2Layer(3, 8, 4)
    assert layer.attn.shape == (4, 2)
    assert len({tuple(row.tolist()) for row in layer.attn}) == 4


@pytest.mark.parametrize('layer', [GraphAttentionV2Layer, GraphAttentionLayer])
def test_per_head_adjacency(generator, layer):
    """An `[N, N, n_heads]` adjacency gives each head its own neighbourhoods."""
    torch.manual_seed(4)
    n_nodes, n_heads = 7, 2
    layer = layer(4, 6, n_heads, is_concat=True, dropout=0.0).double()
    h = torch.randn(n_nodes, 4, dtype=torch.float64, generator=generator)
    adjs = [dense_adjacency(random_edge_index(n_nodes, 15, generator), n_nodes) for _ in range(n_heads)]
    out = layer(h, torch.stack(adjs, dim=-1))
    for k, adj in enumerate(adjs):
        head_k = layer(h, adj).view(n_nodes, n_heads, 3)[:, k]
        torch.testing.assert_close(out.view(n_nodes, n_heads, 3)[:, k], head_k)


def test_adjacency_shapes_agree(generator):
    torch.manual_seed(5)
    layer = GraphAttentionV2Layer(4, 6, 3, dropout=0.0)
    h = torch.randn(6, 4, generator=generator)
    adj = dense_adjacency(random_edge_index(6, 12, generator), 6)
    out = layer(h, adj)
    torch.testing.assert_close(layer(h, adj[:, :, None]), out)
    torch.testing.assert_close(layer(h, adj[:, :, None].expand(6, 6, 3)), out)


def test_shapes():
    layer = GraphAttentionV2Layer(4, 6, 3)
    out, attention = layer(torch.randn(5, 4), torch.ones(5, 5, dtype=torch.bool), return_attention=True)
    assert out.shape == (5, 6)
    assert attention.shape == (5, 5, 3)
    mean_layer = GraphAttentionV2Layer(4, 6, 3, is_concat=False)
    assert mean_layer.n_hidden == 6
    assert mean_layer(torch.randn(5, 4), torch.ones(5, 5, dtype=torch.bool)).shape == (5, 6)


def test_gradcheck_float64(generator):
    torch.manual_seed(6)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0, bias=True).double()
    adj = dense_adjacency(random_edge_index(5, 10, generator), 5)
    adj[0] = False  # an isolated query node
    h = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: layer(x, adj), (h,))
    params = tuple(layer.parameters())

    def as_function_of_parameters(*values):
        state = {name: value for (name, _), value in zip(layer.named_parameters(), values)}
        return torch.func.functional_call(layer, state, (h.detach(), adj))

    assert torch.autograd.gradcheck(as_function_of_parameters, params)


@pytest.mark.parametrize('bias', [True, False])
def test_isolated_node_gets_zero_and_no_nan(bias):
    torch.manual_seed(7)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0, bias=bias)
    if bias:
        nn.init.normal_(layer.bias)
    h = torch.randn(4, 3, requires_grad=True)
    adj = torch.ones(4, 4, dtype=torch.bool)
    adj[1] = False
    out, attention = layer(h, adj, return_attention=True)
    expected = layer.bias.detach() if bias else torch.zeros(4)
    torch.testing.assert_close(out[1].detach(), expected)
    assert torch.all(attention[1] == 0)
    out.sum().backward()
    for tensor in [h.grad, *(p.grad for p in layer.parameters())]:
        assert torch.isfinite(tensor).all()
    # An entirely empty graph works too.
    assert torch.isfinite(layer(h, torch.zeros(4, 4, dtype=torch.bool))).all()


def test_large_scores_do_not_overflow():
    layer = GraphAttentionV2Layer(2, 2, 1, dropout=0.0)
    with torch.no_grad():
        layer.attn.fill_(1e4)
    h = torch.randn(3, 2) * 1e3
    adj = torch.tensor([[1, 1, 0], [0, 1, 1], [0, 0, 0]], dtype=torch.bool)
    out, attention = layer(h, adj, return_attention=True)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(attention.sum(dim=1)[:, 0], torch.tensor([1.0, 1.0, 0.0]))


def test_very_negative_scores_still_normalise(generator):
    """Scores of about -1200 on every edge, far below any small stand-in for minus infinity: the
    non-edges still get no weight, each row's attention sums to one, and the output is PyG's."""
    layer = GraphAttentionV2Layer(2, 2, 1, dropout=0.0)
    with torch.no_grad():
        layer.linear_l.weight.fill_(1.0)
        layer.linear_r.weight.fill_(1.0)
        layer.attn.fill_(-100.0)
    edge_index = torch.tensor([[1, 2, 0, 3, 0, 1], [0, 0, 1, 1, 2, 3]])
    h = torch.rand(4, 2, generator=generator) + 1.0
    out, attention = layer(h, edge_index_to_adj_mat(edge_index, 4, self_loops=False), return_attention=True)
    torch.testing.assert_close(attention.sum(dim=1), torch.ones(4, 1))
    torch.testing.assert_close(out, pyg_twin(layer)(h, edge_index))


def test_share_weights_uses_one_module():
    layer = GraphAttentionV2Layer(3, 4, 2, share_weights=True)
    assert layer.linear_r is layer.linear_l
    assert len(list(layer.parameters())) == 2
    assert 'share_weights=True' in repr(layer)


def test_bias_parameter():
    assert GraphAttentionV2Layer(3, 4, 2).bias is None
    layer = GraphAttentionV2Layer(3, 4, 2, bias=True)
    assert layer.bias.shape == (4,)
    assert torch.all(layer.bias == 0)


def test_reset_parameters_is_glorot():
    torch.manual_seed(8)
    layer = GraphAttentionV2Layer(300, 64, 8)
    bound_w = (6 / (300 + 64)) ** 0.5
    assert layer.linear_l.weight.abs().max() <= bound_w
    assert layer.linear_l.weight.abs().max() > 0.9 * bound_w
    bound_a = (6 / (1 + 8)) ** 0.5
    assert 0.9 * bound_a < layer.attn.abs().max() <= bound_a
    before = layer.attn.detach().clone()
    layer.reset_parameters()
    assert not torch.equal(before, layer.attn)


def test_dropout_only_in_training():
    torch.manual_seed(9)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.5)
    h, adj = torch.randn(6, 3), torch.ones(6, 6, dtype=torch.bool)
    layer.eval()
    torch.testing.assert_close(layer(h, adj), layer(h, adj))
    layer.train()
    assert not torch.allclose(layer(h, adj), layer(h, adj))


def test_dropout_applies_after_returned_attention():
    """In training the returned attention is the one before dropout, and the output sums the messages
    with those coefficients dropped out: dropout acts on the attention, not on the scores."""
    torch.manual_seed(9)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.5)
    h, adj = torch.randn(6, 3), torch.rand(6, 6) < 0.6
    _, attention_eval = layer.eval()(h, adj, return_attention=True)
    torch.manual_seed(0)
    out, attention = layer.train()(h, adj, return_attention=True)
    torch.testing.assert_close(attention, attention_eval)
    torch.manual_seed(0)
    dropped = nn.functional.dropout(attention_eval, 0.5, training=True)
    g_l = layer.linear_l(h).view(6, 2, 2)
    torch.testing.assert_close(out, torch.einsum('ijh,jhf->ihf', dropped, g_l).flatten(1))


def test_repr_is_informative():
    text = repr(GraphAttentionV2Layer(1433, 64, 8, dropout=0.6))
    for part in ['1433, 64', 'n_heads=8', 'heads=concat', 'dropout=0.6', 'negative_slope=0.2', 'bias=False']:
        assert part in text


@pytest.mark.parametrize('kwargs, message', [
    (dict(in_features=3, out_features=10, n_heads=3), 'divisible by n_heads'),
    (dict(in_features=0, out_features=4, n_heads=2), 'in_features must be a positive integer'),
    (dict(in_features=3, out_features=4, n_heads=0), 'n_heads must be a positive integer'),
    (dict(in_features=3.0, out_features=4, n_heads=2), 'in_features must be a positive integer'),
])
def test_constructor_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GraphAttentionV2Layer(**kwargs)


@pytest.mark.parametrize('layer', [GraphAttentionV2Layer, GraphAttentionLayer])
@pytest.mark.parametrize('kwargs, message', [
    (dict(is_concat='no'), "^is_concat must be True or False, got 'no'$"),
    (dict(bias=1), '^bias must be True or False, got 1$'),
    (dict(dropout=None), '^dropout must be a number, got None$'),
    (dict(leaky_relu_negative_slope='a'),
     "^leaky_relu_negative_slope must be a number, got 'a'$"),
])
def test_options_of_the_wrong_type(layer, kwargs, message):
    # Each would otherwise be taken (a string for True) or fail only inside forward
    with pytest.raises(TypeError, match=message):
        layer(4, 8, 2, **kwargs)


@pytest.mark.parametrize('layer', [GraphAttentionV2Layer, GraphAttentionLayer])
def test_numpy_integers_are_integers(layer):
    numpy = pytest.importorskip('numpy')
    built = layer(numpy.int64(4), numpy.int32(8), numpy.int64(2))
    assert (built.in_features, built.out_features, built.n_heads) == (4, 8, 2)
    assert type(built.in_features) is int
    assert built(torch.randn(3, 4), None).shape == (3, 8)


def test_mean_heads_need_no_divisibility():
    assert GraphAttentionV2Layer(3, 10, 3, is_concat=False).n_hidden == 10


@pytest.mark.parametrize('h, adj, error, message', [
    (torch.randn(4, 5), torch.ones(4, 4, dtype=torch.bool), ValueError, r'h must have shape \[\.\.\., n_nodes, 3\], got \[4, 5\]'),
    (torch.randn(4), torch.ones(4, 4, dtype=torch.bool), ValueError, r'got \[4\]'),
    # One node's features without the node dimension: its length is in_features
    (torch.randn(3), torch.ones(3, 3, dtype=torch.bool), ValueError, r'h must have shape \[\.\.\., n_nodes, 3\], got \[3\]$'),
    (torch.ones(4, 3, dtype=torch.long), torch.ones(4, 4, dtype=torch.bool), TypeError, 'floating-point'),
    ([[0.0] * 3] * 4, torch.ones(4, 4, dtype=torch.bool), TypeError, 'got list'),
    (torch.randn(4, 3), torch.ones(4, 4), TypeError, 'adj_mat must be a boolean tensor or None, got a tensor of dtype torch.float32'),
    (torch.randn(4, 3), torch.ones(4, 4, dtype=torch.uint8), TypeError, 'adj_mat must be a boolean tensor or None, got a tensor of dtype torch.uint8'),
    (torch.randn(4, 3), torch.ones(4, 5, dtype=torch.bool), ValueError, r'for 4 nodes and 2 heads, got \[4, 5\]$'),
    (torch.randn(4, 3), torch.ones(3, 3, dtype=torch.bool), ValueError, r'got \[3, 3\]$'),
    (torch.randn(4, 3), torch.ones(4, 4, 3, dtype=torch.bool), ValueError, r'\[4, 4, 2\] for 4 nodes and 2 heads, got \[4, 4, 3\]'),
    (torch.randn(4, 3), torch.ones(4, 4, 2, 1, dtype=torch.bool), ValueError, r'got \[4, 4, 2, 1\]'),
])
def test_input_errors(h, adj, error, message):
    """One line that names the mistake, with the shape the caller passed (not a reshaped one)."""
    layer = GraphAttentionV2Layer(3, 4, 2)
    with pytest.raises(error, match=message):
        layer(h, adj)


@pytest.mark.parametrize('layer', [GraphAttentionV2Layer, GraphAttentionLayer])
def test_a_sparse_adjacency_or_a_layer_elsewhere_is_one_line(layer):
    adj = torch.ones(3, 3, dtype=torch.bool)
    with pytest.raises(TypeError, match=r'dense tensor, got a torch.sparse_coo one: pass '
                                        r'adj_mat.to_dense\(\)$'):
        layer(4, 8, 2)(torch.randn(3, 4), adj.to_sparse())
    with pytest.raises(ValueError, match=r"^h is on cpu but the layer is on meta: pass "
                                         r"h.to\('meta'\) or call layer.to\('cpu'\)$"):
        layer(4, 8, 2).to('meta')(torch.randn(3, 4), adj)


# ## Batches of graphs and bipartite graphs

def outputs_and_grads(layer, h, adj, weights):
    """The output, the attention and the gradients (inputs, then parameters) of `(out * weights).sum()`."""
    out, attention = layer(h, adj, return_attention=True)
    inputs = list(h) if isinstance(h, tuple) else [h]
    grads = torch.autograd.grad((out * weights).sum(), [*inputs, *layer.parameters()])
    return out, attention, grads


@pytest.mark.parametrize('adj_heads', [None, 1, 3])
@pytest.mark.parametrize('share_weights', [True, False])
def test_batch_equals_each_graph(generator, adj_heads, share_weights):
    """`h` of `[2, 3, N, F]` with one adjacency: each graph's output and attention are the layer's on
    that graph alone, and so are the gradients."""
    torch.manual_seed(8)
    n_nodes, n_heads = 6, 3
    layer = GraphAttentionV2Layer(4, 6, n_heads, dropout=0.0, bias=True,
                                  share_weights=share_weights).double()
    nn.init.normal_(layer.bias)
    adj = dense_adjacency(random_edge_index(n_nodes, 14, generator), n_nodes)
    adj[2] = False  # an isolated query node
    if adj_heads is not None:
        adj = adj[:, :, None].expand(n_nodes, n_nodes, adj_heads).clone()
        adj[0, 1, -1] = ~adj[0, 1, -1]  # the last head sees one edge more or less
    h = torch.randn(2, 3, n_nodes, 4, dtype=torch.float64, generator=generator, requires_grad=True)
    weights = torch.randn(2, 3, n_nodes, 6, dtype=torch.float64, generator=generator)
    out, attention, (h_grad, *param_grads) = outputs_and_grads(layer, h, adj, weights)
    assert out.shape == (2, 3, n_nodes, 6) and attention.shape == (2, 3, n_nodes, n_nodes, n_heads)
    summed = [torch.zeros_like(g) for g in param_grads]
    for b in range(2):
        for c in range(3):
            one = h[b, c].detach().requires_grad_()
            one_out, one_attention, (one_h_grad, *one_grads) = outputs_and_grads(layer, one, adj,
                                                                             weights[b, c])
            torch.testing.assert_close(out[b, c], one_out)
            torch.testing.assert_close(attention[b, c], one_attention)
            torch.testing.assert_close(h_grad[b, c], one_h_grad)
            summed = [x + y for x, y in zip(summed, one_grads)]
    for batched, per_graph in zip(param_grads, summed):
        torch.testing.assert_close(batched, per_graph)


def bipartite_union(h_l, h_r, adj):
    """The bipartite graph as one graph: the queries first, then the neighbours, edges j -> i only."""
    n_r, n_l = adj.shape
    union = torch.zeros(n_r + n_l, n_r + n_l, dtype=torch.bool)
    union[:n_r, n_r:] = adj
    return torch.cat([h_r, h_l], dim=-2), union


@pytest.mark.parametrize('share_weights', [True, False])
def test_bipartite_equals_the_graph_of_both_sets_and_pyg(generator, share_weights):
    """
    The pair `(h_l, h_r)` is the graph of both node sets in which only the queries attend, to the
    neighbours: the same outputs for the queries, attention and gradients as that graph (through the
    dense layer and the edge-list layer), and PyG's `GATv2Conv` on `(x_src, x_dst)`.
    """
    torch.manual_seed(9)
    n_l, n_r, n_heads = 7, 4, 2
    layer = GraphAttentionV2Layer(5, 6, n_heads, dropout=0.0, bias=True,
                                  share_weights=share_weights).double()
    nn.init.normal_(layer.bias)
    adj = torch.rand(n_r, n_l, generator=generator) < 0.5
    adj[1] = False  # a query with no neighbour
    h_l = torch.randn(n_l, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    h_r = torch.randn(n_r, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    weights = torch.randn(n_r, 6, dtype=torch.float64, generator=generator)
    out, attention, grads = outputs_and_grads(layer, (h_l, h_r), adj, weights)
    assert out.shape == (n_r, 6) and attention.shape == (n_r, n_l, n_heads)

    # The graph of both sets, through the dense layer and through its edge-list twin
    h, union = bipartite_union(h_l, h_r, adj)
    edges = EdgeGraphAttentionV2Layer(5, 6, n_heads, dropout=0.0, bias=True,
                                      share_weights=share_weights).double()
    edges.load_state_dict(layer.state_dict())
    edge_index = union.nonzero().flip(1).T
    for twin, graph in ((layer, union), (edges, edge_index)):
        union_out, union_attention = twin(h, graph, return_attention=True)
        if twin is edges:
            grid = torch.zeros(n_r + n_l, n_r + n_l, n_heads, dtype=torch.float64)
            grid[edge_index[1], edge_index[0]] = union_attention
            union_attention = grid
        union_grads = torch.autograd.grad((union_out[:n_r] * weights).sum(),
                                          [h_l, h_r, *twin.parameters()])
        torch.testing.assert_close(out, union_out[:n_r])
        torch.testing.assert_close(attention, union_attention[:n_r, n_r:])
        for ours, theirs in zip(grads, union_grads):
            torch.testing.assert_close(ours, theirs)

    # PyG's GATv2Conv on the bipartite pair, with the edges as `[j, i]` columns
    conv = pyg_twin(layer)
    pair_index = adj.nonzero().flip(1).T
    pyg_out, (pyg_edges, pyg_alpha) = conv((h_l, h_r), pair_index, return_attention_weights=True)
    torch.testing.assert_close(out, pyg_out)
    torch.testing.assert_close(attention[pyg_edges[1], pyg_edges[0]], pyg_alpha)


def test_batched_neighbours_with_shared_queries(generator):
    """Queries without a batch dimension broadcast against a batch of neighbours, as if repeated."""
    torch.manual_seed(10)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0, share_weights=True).double()
    h_l = torch.randn(5, 6, 3, dtype=torch.float64, generator=generator)
    h_r = torch.randn(4, 3, dtype=torch.float64, generator=generator)
    adj = torch.ones(4, 6, dtype=torch.bool)
    out, attention = layer((h_l, h_r), adj, return_attention=True)
    repeated, repeated_attention = layer((h_l, h_r.expand(5, 4, 3)), adj, return_attention=True)
    torch.testing.assert_close(out, repeated)
    torch.testing.assert_close(attention, repeated_attention)
    assert torch.autograd.gradcheck(lambda l, r: layer((l, r), adj), (h_l.requires_grad_(),
                                                                        h_r.requires_grad_()))


@pytest.mark.parametrize('inputs', ['graph', 'batch', 'bipartite batch', 'shared queries'])
def test_broadcast_pair_sums_are_the_repeated_ones(generator, inputs):
    """`broadcast=True` makes the same grid of pair sums without the copies: the same outputs,
    attention and gradients, on graphs, batches and bipartite inputs, with any adjacency."""
    torch.manual_seed(11)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0, bias=True).double()
    nn.init.normal_(layer.bias)
    fast = GraphAttentionV2Layer(3, 4, 2, dropout=0.0, bias=True, broadcast=True).double()
    fast.load_state_dict(layer.state_dict())
    h_l = torch.randn(2, 5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    h_r = torch.randn(2, 4, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    h, n_r, n_l = {'graph': (h_l[0], 5, 5), 'batch': (h_l, 5, 5),
                   'bipartite batch': ((h_l, h_r), 4, 5),
                   'shared queries': ((h_l, h_r[0]), 4, 5)}[inputs]
    adj = torch.rand(n_r, n_l, 2, generator=generator) < 0.6
    adj[1] = False  # a query with no neighbour
    weights = torch.randn(*([] if inputs == 'graph' else [2]), n_r, 4, dtype=torch.float64,
                          generator=generator)
    for ours, theirs in zip(outputs_and_grads(fast, h, adj, weights),
                            outputs_and_grads(layer, h, adj, weights)):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    assert fast.broadcast and 'broadcast=True' in repr(fast)


def test_vmap_gives_each_graph_its_own_adjacency(generator):
    """The forward's docstring: `torch.func.vmap` maps the layer over graphs with one adjacency each."""
    torch.manual_seed(11)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0)
    h = torch.randn(3, 5, 3, generator=generator)
    adj = torch.rand(3, 5, 5, generator=generator) < 0.5
    out = torch.func.vmap(layer)(h, adj)
    for b in range(3):
        torch.testing.assert_close(out[b], layer(h[b], adj[b]))


@pytest.mark.parametrize('h, adj, error, message', [
    (torch.randn(2, 4, 5), torch.ones(4, 4, dtype=torch.bool), ValueError, r'h must have shape \[\.\.\., n_nodes, 3\], got \[2, 4, 5\]'),
    (torch.randn(2, 4, 3), torch.ones(2, 4, 4, dtype=torch.bool), ValueError, r'\[4, 4, 2\] for 4 nodes and 2 heads, got \[2, 4, 4\]$'),
    ((torch.randn(5, 3),), torch.ones(4, 5, dtype=torch.bool), ValueError, r'^h must be a tensor or a pair \(h_l, h_r\), got a tuple of 1$'),
    ((torch.randn(5, 3), [0.0]), torch.ones(4, 5, dtype=torch.bool), TypeError, '^h_r must be a floating-point tensor, got list$'),
    ((torch.randn(5, 2), torch.randn(4, 3)), torch.ones(4, 5, dtype=torch.bool), ValueError, r'^h_l must have shape \[\.\.\., n_l, 3\], got \[5, 2\]$'),
    ((torch.randn(5, 3), torch.randn(4, 3, dtype=torch.float64)), torch.ones(4, 5, dtype=torch.bool), TypeError, r'^h_r is torch.float64 but the layer is torch.float32: pass h_r.to'),
    ((torch.randn(2, 5, 3), torch.randn(3, 4, 3)), torch.ones(4, 5, dtype=torch.bool), ValueError, r'^the batch dimensions of h_l, \[2\], and of h_r, \[3\], do not broadcast$'),
    ((torch.randn(5, 3), torch.randn(4, 3)), torch.ones(5, 4, dtype=torch.bool), ValueError, r'for 4 queries, 5 neighbours and 2 heads, got \[5, 4\]$'),
    ((torch.randn(5, 3), torch.randn(4, 3, device='meta')), torch.ones(4, 5, dtype=torch.bool), ValueError, '^h_r is on meta but the layer is on cpu'),
])
def test_batch_and_pair_input_errors(h, adj, error, message):
    """The new forms get one line each too, naming the tensor at fault."""
    layer = GraphAttentionV2Layer(3, 4, 2)
    with pytest.raises(error, match=message):
        layer(h, adj)


def test_module_imports_only_torch():
    modules = imported_modules(REPO / 'labml_gat' / 'gatv2.py')
    assert modules <= set(sys.stdlib_module_names) | {'torch'}


@pytest.mark.slow
def test_file_can_be_copied_alone(tmp_path):
    """A researcher copies `gatv2.py` into their project and uses it, with nothing else of ours around."""
    script = ('import torch\nfrom gatv2 import GraphAttentionV2Layer\n'
              'layer = GraphAttentionV2Layer(4, 8, 2)\n'
              'out = layer(torch.randn(3, 4), torch.eye(3, dtype=torch.bool))\n'
              'print(tuple(out.shape))\n')
    result = run_copied_alone(REPO / 'labml_gat' / 'gatv2.py', tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '(3, 8)'


def test_dynamic_attention_can_rank_differently():
    r"""
    A GATv2 layer whose queries prefer different keys: with
    $W_l h = [h, -h]$, $W_r h = [-h, h]$ and $a = [-1, -1]$,
    $e_{ij} = -\text{LeakyReLU}(h_j - h_i) - \text{LeakyReLU}(h_i - h_j)$ peaks at the key closest to $h_i$.
    """
    layer = GraphAttentionV2Layer(1, 2, 1, dropout=0.0)
    with torch.no_grad():
        layer.linear_l.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        layer.linear_r.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        layer.attn.copy_(torch.tensor([[-1.0, -1.0]]))
    keys = torch.tensor([[-2.0], [0.0], [2.0]])
    queries = torch.tensor([[-2.1], [0.1], [1.9]])
    h = torch.cat([queries, keys])
    # Complete bipartite: every query (rows 0..2) attends to every key (columns 3..5).
    adj = torch.zeros(6, 6, dtype=torch.bool)
    adj[:3, 3:] = True
    _, attention = layer(h, adj, return_attention=True)
    best_key = attention[:3, 3:, 0].argmax(dim=1)
    assert best_key.tolist() == [0, 1, 2]


@pytest.mark.parametrize('in_features, n_heads, n_hidden', [(1433, 8, 8), (16, 4, 8), (64, 1, 7)])
def test_parameters_against_gat(in_features, n_heads, n_hidden):
    """The module docstring: dynamic attention costs no parameters ($a_k$ has $F'$ numbers, GAT's
    $2F'$); with `share_weights` GATv2 has $K F'$ fewer parameters than GAT, and by default its
    two matrices make it about twice as large (not "no more parameters than GAT")."""
    def count(layer: nn.Module) -> int:
        return sum(p.numel() for p in layer.parameters())

    out_features = n_heads * n_hidden
    gat = count(GraphAttentionLayer(in_features, out_features, n_heads))
    shared = count(GraphAttentionV2Layer(in_features, out_features, n_heads, share_weights=True))
    default = count(GraphAttentionV2Layer(in_features, out_features, n_heads))
    assert shared == gat - n_heads * n_hidden
    assert default == 2 * in_features * out_features + out_features > gat
    assert 1.8 < default / gat <= 2


def test_float64_input_into_float32_layer_says_what_to_do():
    layer = GraphAttentionV2Layer(3, 4, 2)
    adj = torch.ones(4, 4, dtype=torch.bool)
    with pytest.raises(TypeError, match=r'^h is torch.float64 but the layer is torch.float32: '
                                        r'pass h.to\(torch.float32\) or call layer.to\(torch.float64\)$'):
        layer(torch.randn(4, 3, dtype=torch.float64), adj)
    # Doing either works
    out32 = layer(torch.randn(4, 3, dtype=torch.float64).to(torch.float32), adj)
    out64 = layer.to(torch.float64)(torch.randn(4, 3, dtype=torch.float64), adj)
    assert out32.dtype == torch.float32 and out64.dtype == torch.float64


def test_adjacency_on_another_device_is_named():
    layer = GraphAttentionV2Layer(3, 4, 2)
    adj = torch.ones(4, 4, dtype=torch.bool, device='meta')
    with pytest.raises(ValueError, match='adj_mat is on meta but h is on cpu'):
        layer(torch.randn(4, 3), adj)


def test_describe():
    assert describe(torch.zeros(2, 3, dtype=torch.int32)) == 'a tensor of dtype torch.int32 and shape [2, 3]'
    assert describe([1, 2]) == 'list'
    assert describe(None) == 'NoneType'


@pytest.mark.parametrize('edge_index, n_nodes, error, message', [
    (torch.tensor([[0, 1], [1, 2], [2, 0]]), 3, ValueError, r'shape \[2, n_edges\].*got \[3, 2\].*\.t\(\)'),
    (torch.tensor([0, 1, 2]), 3, ValueError, r'shape \[2, n_edges\], got \[3\]'),
    (torch.zeros(3, 4, dtype=torch.long), 3, ValueError, r'shape \[2, n_edges\], got \[3, 4\]'),
    (torch.tensor([[0, 1], [1, 3]]), 3, ValueError, r'node ids from 0 to 3; they must be in \[0, 3\)'),
    (torch.tensor([[0, -1], [1, 2]]), 3, ValueError, r'node ids from -1 to 2'),
    (torch.tensor([[0.0, 1.0], [1.0, 2.0]]), 3, TypeError, r'integer tensor .* torch.float32'),
    (torch.ones(2, 2, dtype=torch.bool), 3, TypeError, r'integer tensor .* torch.bool'),
    ([[0, 1], [1, 2]], 3, TypeError, r'must be a tensor, got list'),
    (torch.tensor([[0, 1], [1, 2]]), -1, ValueError, r'n_nodes must be a non-negative integer, got -1'),
    (torch.tensor([[0, 1], [1, 2]]), 3.0, ValueError, r'n_nodes must be a non-negative integer, got 3.0'),
])
def test_edge_index_to_adj_mat_says_what_is_wrong(edge_index, n_nodes, error, message):
    with pytest.raises(error, match=message):
        edge_index_to_adj_mat(edge_index, n_nodes)


@pytest.mark.parametrize('dtype', [torch.uint8, torch.int8, torch.int16, torch.int32])
def test_edge_index_of_any_integer_dtype(dtype):
    # uint8 ids were read as a boolean mask by indexing
    edge_index = torch.tensor([[0, 2, 1], [1, 0, 2]])
    expected = edge_index_to_adj_mat(edge_index, 3)
    assert torch.equal(edge_index_to_adj_mat(edge_index.to(dtype), 3), expected)


def test_edge_index_to_adj_mat_of_no_nodes_and_numpy_sizes():
    numpy = pytest.importorskip('numpy')
    empty = torch.zeros(2, 0, dtype=torch.long)
    assert edge_index_to_adj_mat(empty, 0).shape == (0, 0)
    adj = edge_index_to_adj_mat(torch.tensor([[0], [1]]), numpy.int64(2), self_loops=False)
    assert adj.tolist() == [[False, False], [True, False]]


def test_a_duplicate_edge_is_one_entry():
    # As documented: the adjacency cannot count an edge twice; deduplicated, it is the same
    edge_index = torch.tensor([[0, 0, 2], [1, 1, 0]])
    assert torch.equal(edge_index_to_adj_mat(edge_index, 3),
                       edge_index_to_adj_mat(torch.unique(edge_index, dim=1), 3))


def test_edge_index_to_adj_mat_reads_two_edges_in_pygs_layout():
    # [2, 2] is both layouts; it is read as PyG's: the edges 0 -> 1 and 2 -> 0
    adj = edge_index_to_adj_mat(torch.tensor([[0, 2], [1, 0]]), 3, self_loops=False)
    assert adj.nonzero().tolist() == [[0, 2], [1, 0]]


def test_edge_index_to_adj_mat(generator):
    """PyG's column `[j, i]` is `adj_mat[i, j]`; self loops are added unless asked not to."""
    edge_index = torch.tensor([[0, 1, 3], [1, 2, 1]])
    adj = edge_index_to_adj_mat(edge_index, 4, self_loops=False)
    assert adj.dtype == torch.bool and adj.shape == (4, 4)
    assert adj.nonzero().tolist() == [[1, 0], [1, 3], [2, 1]]
    with_loops = edge_index_to_adj_mat(edge_index, 4)
    assert torch.equal(with_loops, adj | torch.eye(4, dtype=torch.bool))
    assert edge_index_to_adj_mat(torch.zeros(2, 0, dtype=torch.long), 3).equal(torch.eye(3, dtype=torch.bool))
    edge_index = random_edge_index(15, 40, generator, self_loops=False)
    assert torch.equal(edge_index_to_adj_mat(edge_index, 15, self_loops=False), dense_adjacency(edge_index, 15))


@pytest.mark.parametrize('slope', [-0.3, 0.0, 1.5])
@pytest.mark.parametrize('share_weights', [True, False])
def test_any_slope_matches_pyg(generator, slope, share_weights):
    """A negative (or zero, or above one) LeakyReLU slope is allowed, and computes PyG's function,
    gradients included: the dense layer never computes in place."""
    torch.manual_seed(2)
    n_nodes = 11
    layer = GraphAttentionV2Layer(5, 6, 2, dropout=0.0, leaky_relu_negative_slope=slope, bias=True,
                                  share_weights=share_weights)
    nn.init.normal_(layer.bias)
    conv = pyg_twin(layer)
    # pyg_twin copies the layer's slope: it must be the one asked for
    assert conv.negative_slope == slope
    edge_index = random_edge_index(n_nodes, 30, generator)
    h = torch.randn(n_nodes, 5, generator=generator)
    h1, h2 = h.clone().requires_grad_(), h.clone().requires_grad_()
    out = layer(h1, edge_index_to_adj_mat(edge_index, n_nodes))
    expected = conv(h2, edge_index)
    torch.testing.assert_close(out, expected)
    weight = torch.randn(out.shape, generator=generator)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    torch.testing.assert_close(h1.grad, h2.grad)
    for name, grad in parameter_grads(layer).items():
        torch.testing.assert_close(grad, pyg_grads(conv, share_weights, True)[name], msg=name)


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_a_bad_feature_reaches_only_the_rows_that_attend_to_it(generator, bad):
    """
    A NaN (or inf) in node $j$'s features poisons $j$'s own row (its query vector) and the rows of the
    nodes that attend to $j$; every other row is what it would be without it, as in PyG.
    """
    torch.manual_seed(5)
    n_nodes, bad_node = 12, 4
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0)
    edge_index = random_edge_index(n_nodes, 30, generator)
    adj = edge_index_to_adj_mat(edge_index, n_nodes)
    h = torch.randn(n_nodes, 3, generator=generator)
    clean = layer(h, adj)
    h[bad_node, 1] = bad
    out = layer(h, adj)
    poisoned = adj[:, bad_node].clone()
    poisoned[bad_node] = True
    assert 0 < poisoned.sum() < n_nodes
    assert not torch.isfinite(out[poisoned]).all(dim=1).any()
    torch.testing.assert_close(out[~poisoned], clean[~poisoned])
    torch.testing.assert_close(out, pyg_twin(layer)(h, edge_index), equal_nan=True)


@pytest.mark.parametrize('inputs', ['graph', 'batch', 'bipartite batch'])
def test_no_adjacency_is_the_complete_one(generator, inputs):
    """`adj_mat=None` is every query attending to every neighbour: the outputs, attention and
    gradients of an all-`True` adjacency, with nothing masked."""
    torch.manual_seed(12)
    layer = GraphAttentionV2Layer(3, 4, 2, dropout=0.0, bias=True).double()
    h_l = torch.randn(2, 5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    h_r = torch.randn(2, 4, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    h, n_r = {'graph': (h_l[0], 5), 'batch': (h_l, 5), 'bipartite batch': ((h_l, h_r), 4)}[inputs]
    weights = torch.randn(*([] if inputs == 'graph' else [2]), n_r, 4, dtype=torch.float64,
                          generator=generator)
    complete = torch.ones(n_r, 5, dtype=torch.bool)
    for ours, theirs in zip(outputs_and_grads(layer, h, None, weights),
                            outputs_and_grads(layer, h, complete, weights)):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
