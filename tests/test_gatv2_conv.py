"""
Tests for labml_gat/gatv2_conv.py, the drop-in GATv2Conv: the same function as PyG's (outputs,
attention, every gradient) for each option, a PyG state_dict loaded unchanged, gradcheck, half
precision against float64, inside PyG's models, torch.compile, clear errors, and the file alone.

The device-agnostic tests run on every device present: the CPU, and CUDA when it is available.
"""

import ast
import threading
import time
import warnings

import pytest
import torch

from conftest import (PLANETOID, REPO, imported_modules, needs_planetoid, quoted, rounds_to,
                      run_copied_alone)
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat import gatv2_conv
from labml_gat.gatv2_conv import (ChunkTurns, GATConv, GATv2Conv, GATv2Score, auto_chunk_size,
                                  uniform_is_bernoulli, dropout_mask, message_passing_class)
from test_edges import random_graph

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-4}
FILL_VALUES = [0.5, 2, 'mean', 'add', 'sum', 'min', 'max', 'mul', 'tensor']
# Each option on its own, then edge features with each fill value, with and without self loops
CONFIGS = ([dict(), dict(add_self_loops=False), dict(concat=False), dict(share_weights=True),
            dict(residual=True), dict(bias=False), dict(negative_slope=-0.3),
            dict(residual=True, concat=False, share_weights=True, bias=False)]
           + [dict(edge_dim=3, fill_value=f) for f in FILL_VALUES]
           + [dict(edge_dim=3, add_self_loops=False), dict(edge_dim=1, residual=True, concat=False)])


@pytest.fixture(params=[True, False], ids=['reused', 'recomputed'])
def reuse(request, monkeypatch):
    """Whether the tests' small graphs are small for the layer: their chunks' tensors then reach
    the backward pass from the forward pass, else the backward pass computes them again."""
    monkeypatch.setattr(gatv2_conv, 'SMALL_GRAPH_TENSOR_BYTES', 2 ** 62 if request.param else 0)
    return request.param


def make_pair(dtype=torch.float64, device='cpu', chunk_size=7, in_channels=5, out_channels=4,
              heads=3, layer=GATv2Conv, **kwargs):
    """PyG's layer of the same name as `layer` with random parameters (biases included), and
    `layer` with its state_dict."""
    import torch_geometric.nn
    if kwargs.get('fill_value') == 'tensor':
        kwargs['fill_value'] = torch.arange(kwargs['edge_dim'], dtype=dtype) / 2
    torch.manual_seed(1)
    pyg = getattr(torch_geometric.nn, layer.__name__)(in_channels, out_channels, heads, **kwargs)
    pyg.to(dtype=dtype, device=device)
    with torch.no_grad():
        for p in pyg.parameters():
            p.normal_()
    ours = layer(in_channels, out_channels, heads, chunk_size=chunk_size, **kwargs)
    ours.to(dtype=dtype, device=device).load_state_dict(pyg.state_dict())
    return pyg, ours


def run(layer, x, edge_index, edge_attr=None, seed=3):
    """Output, attention (PyG's form) and the gradients of the inputs and of every parameter, of
    a loss that uses the output and the returned attention."""
    xs = tuple(t.detach().clone().requires_grad_() for t in (x if isinstance(x, tuple) else (x,)))
    attr = None if edge_attr is None else edge_attr.detach().clone().requires_grad_()
    layer.zero_grad()
    torch.manual_seed(seed)
    out, (index, alpha) = layer(xs if isinstance(x, tuple) else xs[0], edge_index, attr,
                                return_attention_weights=True)
    weight = torch.randn(out.shape, generator=torch.Generator().manual_seed(4),
                         dtype=out.dtype).to(out.device)
    ((out * weight).sum() + alpha.pow(2).sum()).backward()
    grads = {name: p.grad for name, p in layer.named_parameters()}
    inputs = [t.grad for t in xs] + ([] if attr is None else [attr.grad])
    return out.detach(), index, alpha.detach(), inputs, grads


def assert_same(ours, pyg, tol):
    out, index, alpha, inputs, grads = ours
    out_p, index_p, alpha_p, inputs_p, grads_p = pyg
    assert torch.equal(index, index_p)
    torch.testing.assert_close(out, out_p, atol=tol, rtol=tol)
    torch.testing.assert_close(alpha, alpha_p, atol=tol, rtol=tol)
    assert len(inputs) == len(inputs_p)
    for g, g_p in zip(inputs, inputs_p):
        torch.testing.assert_close(g, g_p, atol=tol, rtol=tol)
    assert grads.keys() == grads_p.keys()
    for name in grads_p:
        torch.testing.assert_close(grads[name], grads_p[name], atol=tol, rtol=tol,
                                   msg=lambda m: f'{name}: {m}')


def graph(n_src=30, n_dst=None, n_edges=150, edge_dim=None, dtype=torch.float64, device='cpu'):
    """Random features and edges (shuffled, some self loops, some nodes without in-edges)."""
    n_dst = n_src if n_dst is None else n_dst
    n_nodes = max(n_src, n_dst)
    edge_index = random_graph(n_nodes, n_edges, self_loops=True, n_isolated=n_nodes - n_dst + 2)
    edge_index = edge_index[:, edge_index[0] < n_src].to(device)
    x = torch.randn(n_src, 5, dtype=dtype, device=device)
    x = x if n_dst == n_src and n_src == 30 else (x, torch.randn(n_dst, 5, dtype=dtype,
                                                                 device=device))
    edge_attr = None if edge_dim is None else \
        torch.randn(edge_index.shape[1], edge_dim, dtype=dtype, device=device)
    return x, edge_index, edge_attr


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_matches_pyg(config, dtype, device, threads, reuse):
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(dtype, device, **config)
    x, edge_index, edge_attr = graph(edge_dim=config.get('edge_dim'), dtype=dtype, device=device)
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr),
                TOLERANCE[dtype])


def test_a_numpy_fill_value_is_its_number():
    # PyG takes Python's numbers only; NumPy's (a value read from a config file) are numbers too
    np = pytest.importorskip('numpy')
    x, edge_index, edge_attr = graph(edge_dim=3, dtype=torch.float32)
    torch.manual_seed(0)
    python = GATv2Conv(5, 4, heads=2, edge_dim=3, fill_value=2.0)
    numpy = GATv2Conv(5, 4, heads=2, edge_dim=3, fill_value=np.float32(2))
    numpy.load_state_dict(python.state_dict())
    assert torch.equal(numpy(x, edge_index, edge_attr), python(x, edge_index, edge_attr))


@pytest.mark.parametrize('layer', [GATv2Conv, GATConv], ids=['GATv2Conv', 'GATConv'])
@pytest.mark.parametrize('fill_value', [torch.arange(30) / 7, torch.tensor(0.5),
                                        torch.tensor([0.5])], ids=['per node', '0-d', '1'])
def test_tensor_fill_value_with_edge_features_of_one_dimension(fill_value, layer):
    # Edge features [|E|] (edge_dim 1) and a tensor fill_value make the loops' features as PyG
    # makes them: one of [n_nodes] is then one number per node's loop
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(edge_dim=1, fill_value=fill_value.double(), layer=layer)
    x, edge_index, edge_attr = graph(edge_dim=1)
    assert_same(run(ours, x, edge_index, edge_attr[:, 0]),
                run(pyg, x, edge_index, edge_attr[:, 0]), 1e-10)


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('config', [dict(), dict(bias=False), dict(edge_dim=3, residual=True),
                                    dict(share_weights=True)], ids=str)
def test_wide_input_matches_pyg(config, dtype):
    # An input wider than both projections together is projected by one product of the two
    # stacked (Cora's 1433 features are): the same function as PyG's; with shared weights the
    # one projection
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(dtype, in_channels=30, **config)
    _, edge_index, edge_attr = graph(edge_dim=config.get('edge_dim'), dtype=dtype)
    x = torch.randn(30, 30, dtype=dtype)
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr),
                TOLERANCE[dtype])
    g_l, g_r = ours.project(x, x)
    assert g_l.untyped_storage().data_ptr() == g_r.untyped_storage().data_ptr()
    assert (g_l is g_r) == bool(config.get('share_weights'))


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('sizes, config', [
    ((30, 12), dict()), ((30, 12), dict(residual=True, edge_dim=2)),
    ((30, 12), dict(share_weights=True, concat=False)),
    # With fewer sources than targets PyG's self loops and 'mean' features need targets below
    # n_src; without self loops any bipartite graph
    ((12, 30), dict(add_self_loops=False, edge_dim=2, residual=True)),
    ((12, 30), dict(add_self_loops=False, share_weights=True))], ids=str)
def test_bipartite_matches_pyg(sizes, config, dtype):
    pytest.importorskip('torch_geometric')
    in_channels = (5, 5) if config.get('share_weights') else (5, 6)
    pyg, ours = make_pair(dtype, in_channels=in_channels, **config)
    (x_src, _), edge_index, edge_attr = graph(*sizes, edge_dim=config.get('edge_dim'), dtype=dtype)
    x = (x_src, torch.randn(sizes[1], in_channels[1], dtype=dtype))
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr),
                TOLERANCE[dtype])


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize('shape', [(1000, 8), (12345, 3), (37, 1)])
def test_dropout_mask_is_nn_dropouts(shape, dtype, device):
    # From the same seed, the mask nn.Dropout draws on the device (a CPU's Bernoulli draws,
    # a GPU's fused kernel), and its scale
    values = torch.rand(shape, device=device).add_(0.5).to(dtype)
    for p in (0.3, 0.6):
        torch.manual_seed(1)
        dropped = torch.nn.functional.dropout(values, p, training=True)
        torch.manual_seed(1)
        keep, scale = dropout_mask(values, shape, p)
        assert keep.dtype == torch.bool and torch.equal(keep, dropped != 0)
        torch.testing.assert_close(values * keep * scale, dropped)
    assert dropout_mask(values, shape, 0.0) == (None, 1.0)
    keep, scale = dropout_mask(values, shape, 1.0)
    assert not keep.any() and scale == 0.0


@pytest.mark.parametrize('shape', [(1000, 8), (77, 3), (1,)])
def test_draw_bernoulli_is_bernoulli(shape, monkeypatch):
    # Drawn as uniform doubles, block by block (several blocks and a ragged last one here), the
    # mask bernoulli_ draws from the same seed, and the random stream after it is the same
    if not uniform_is_bernoulli():
        pytest.skip("this CPU's Bernoulli kernel seeds every call (MKL's)")
    monkeypatch.setattr(gatv2_conv, 'DRAW_BLOCK', 100)
    uniform = torch.Tensor.uniform_
    calls = []
    monkeypatch.setattr(torch.Tensor, 'uniform_', lambda t, *a, **k: calls.append(t.numel())
                        or uniform(t, *a, **k))
    for q in (0.4, 0.7):
        torch.manual_seed(3)
        expected = torch.empty(shape, dtype=torch.bool).bernoulli_(q)
        expected_state = torch.get_rng_state()
        torch.manual_seed(3)
        calls.clear()
        keep = gatv2_conv.draw_bernoulli(torch.empty(shape, dtype=torch.bool), q)
        assert torch.equal(keep, expected) and torch.equal(torch.get_rng_state(), expected_state)
        assert sum(calls) == keep.numel() and max(calls) <= 100


@pytest.mark.parametrize('chunk_size', [1, 1000, None])
def test_chunk_sizes_int32_and_training_dropout(chunk_size):
    # Any chunk size and an int32 edge index give PyG's function; in training the attention's
    # dropout is drawn from PyG's random stream, and the attention is returned after it
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(chunk_size=chunk_size, dropout=0.4, edge_dim=2)
    pyg.train(), ours.train()
    x, edge_index, edge_attr = graph(edge_dim=2)
    expected = run(pyg, x, edge_index, edge_attr)
    assert_same(run(ours, x, edge_index.int(), edge_attr), expected, 1e-10)
    assert (expected[2] == 0).any()


@pytest.mark.parametrize('layer', [GATv2Conv, GATConv], ids=['GATv2Conv', 'GATConv'])
@pytest.mark.parametrize('add_self_loops', [False, True])
def test_attention_edge_index_in_pygs_dtype(add_self_loops, layer):
    # An int32 edge index comes back as given, or as int64 with the loops added to it (PyG
    # itself takes one from PyTorch 2.8 on: before, its scatter wants int64)
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(add_self_loops=add_self_loops, layer=layer)
    x, edge_index, _ = graph()
    index = ours(x, edge_index.int(), return_attention_weights=True)[1][0]
    assert index.dtype == (torch.int64 if add_self_loops else torch.int32)
    if torch.__version__ >= '2.8':
        index_p = pyg(x, edge_index.int(), return_attention_weights=True)[1][0]
        assert index.dtype == index_p.dtype and torch.equal(index, index_p)
    # PyG's EdgeIndex comes back as PyG returns it: the given one, or PyG's EdgeIndex with
    # the loops, its sizes and sort order as PyG sets them
    from torch_geometric import EdgeIndex
    for sort_order in (None, 'col'):
        given = EdgeIndex(edge_index, sparse_size=(x.shape[0], x.shape[0]))
        if sort_order:
            given = given.sort_by(sort_order)[0]
        index_p = pyg(x, given, return_attention_weights=True)[1][0]
        index = ours(x, given, return_attention_weights=True)[1][0]
        assert type(index) is type(index_p) is EdgeIndex
        assert torch.equal(index.as_tensor(), index_p.as_tensor())
        assert (index.sparse_size(), index.sort_order) == \
            (index_p.sparse_size(), index_p.sort_order)
        assert add_self_loops or index is given


@pytest.mark.parametrize('layer', [GATv2Conv, GATConv], ids=['GATv2Conv', 'GATConv'])
@pytest.mark.parametrize('dtype', [torch.int16, torch.int8, torch.uint8], ids=str)
@pytest.mark.parametrize('add_self_loops', [False, True])
def test_small_integer_edge_index(add_self_loops, dtype, layer):
    # An edge index of a smaller integer dtype is the same graph: PyG's function, attention and
    # gradients with the loops added, the same as the int64 index without them (where PyG's own
    # layer fails, as it does with the loops' edge features); with the loops the index comes
    # back as int64, as PyG's does
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(add_self_loops=add_self_loops, edge_dim=2, layer=layer)
    x, edge_index, edge_attr = graph(edge_dim=2)
    small = edge_index.to(dtype)
    assert torch.equal(small.long(), edge_index)
    got = run(ours, x, small, edge_attr)
    assert_same(got, run(pyg if add_self_loops else ours, x, edge_index, edge_attr), 1e-10)
    assert got[1].dtype == (torch.int64 if add_self_loops else dtype)


@pytest.mark.parametrize('edge_dim', [None, 2])
def test_edges_sorted_by_target_with_self_loops_added(edge_dim, threads):
    # Edges already sorted by target, with some self loops and without any: the layer removes
    # the loops there are and puts its own in among the edges without sorting again; in training
    # that is PyG's function, attention (after the same dropout) and gradients
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(dropout=0.4, edge_dim=edge_dim, fill_value='mean')
    pyg.train(), ours.train()
    x, edge_index, edge_attr = graph(edge_dim=edge_dim)
    order = torch.argsort(edge_index[1], stable=True)
    no_loops = edge_index[0, order] != edge_index[1, order]
    for rows in (order, order[no_loops]):
        edges, attr = edge_index[:, rows], None if edge_attr is None else edge_attr[rows]
        assert_same(run(ours, x, edges, attr), run(pyg, x, edges, attr), 1e-10)


@pytest.mark.parametrize('in_order', [True, False], ids=['chunk_by_chunk', 'at_once'])
def test_dropout_drawn_chunk_by_chunk_is_pygs(in_order, threads, monkeypatch):
    # Edges sorted by target: the attention's dropout mask is drawn chunk by chunk, in order,
    # ahead of the chunks (on a thread of its own with two threads), or at once where the CPU's
    # Bernoulli cannot be drawn in parts; either way PyG's masks, outputs and gradients, and
    # the random stream after the layer is PyG's
    pytest.importorskip('torch_geometric')
    if in_order and not uniform_is_bernoulli():
        pytest.skip("this CPU's Bernoulli kernel seeds every call (MKL's)")
    monkeypatch.setattr(gatv2_conv, 'uniform_is_bernoulli', lambda: in_order)
    draws, drawn = [], []
    draw_dropout = gatv2_conv.draw_dropout

    def spy(*args):
        keep, scale, draw = draw_dropout(*args)
        draws.append(draw)
        if draw is None:
            return keep, scale, None

        def spied(k, part):
            drawn.append((part[2:], threading.get_ident()))
            draw(k, part)
        return keep, scale, spied

    monkeypatch.setattr(gatv2_conv, 'draw_dropout', spy)
    pyg, ours = make_pair(chunk_size=10, dropout=0.5, add_self_loops=False)
    pyg.train(), ours.train()
    x, edge_index, _ = graph()
    edge_index = edge_index[:, torch.argsort(edge_index[1], stable=True)]
    expected, expected_state = run(pyg, x, edge_index), torch.get_rng_state()
    got, state = run(ours, x, edge_index), torch.get_rng_state()
    assert_same(got, expected, 1e-10)
    assert (expected[2] == 0).any() and torch.equal(state, expected_state)
    assert (draws[0] is not None) == in_order
    if in_order:
        # Every chunk's rows once, in order, in one thread: the caller's only with one thread
        ends = [e for (e0, e1), _ in drawn for e in (e0, e1)]
        assert ends[0] == 0 and ends[-1] == edge_index.shape[1] and ends == sorted(ends)
        assert len(drawn) >= 8 and len({t for _, t in drawn}) == 1
        assert (drawn[0][1] == threading.get_ident()) == (threads == 1)


def test_uniform_is_bernoulli_tells_how_the_cpu_draws(monkeypatch):
    # This CPU's Bernoulli: a mask drawn in parts, in order, is the mask drawn at once exactly
    # when the check says so; a Bernoulli that seeds every call (as MKL's) fails the check, and
    # the layer then draws the mask at once with it: nn.Dropout's
    def in_parts(p, seed=5):
        torch.manual_seed(seed)
        keep = torch.empty(1000, 4, dtype=torch.bool)
        for rows in keep.split(37):
            rows.bernoulli_(p)
        return keep

    torch.manual_seed(5)
    at_once = torch.empty(1000, 4, dtype=torch.bool).bernoulli_(0.5)
    assert torch.equal(in_parts(0.5), at_once) == uniform_is_bernoulli()
    bernoulli = torch.Tensor.bernoulli_

    def seeded_per_call(self, p, generator=None):
        seed = torch.randint(2 ** 31, (), generator=generator).item()
        return bernoulli(self, p, generator=torch.Generator().manual_seed(seed))

    monkeypatch.setattr(torch.Tensor, 'bernoulli_', seeded_per_call)
    uniform_is_bernoulli.cache_clear()
    try:
        assert not uniform_is_bernoulli()
        torch.manual_seed(5)
        at_once = torch.empty(1000, 4, dtype=torch.bool).bernoulli_(0.5)
        assert not torch.equal(in_parts(0.5), at_once)
        conv = GATv2Conv(5, 4, heads=3, dropout=0.5, add_self_loops=False, chunk_size=10)
        x, edge_index, _ = graph(dtype=torch.float32)
        edge_index = edge_index[:, torch.argsort(edge_index[1], stable=True)]
        torch.manual_seed(2)
        _, (_, alpha) = conv(x, edge_index, return_attention_weights=True)
        torch.manual_seed(2)
        keep, _ = dropout_mask(x, (edge_index.shape[1], 3), 0.5)
        assert torch.equal(alpha != 0, keep)
    finally:
        monkeypatch.undo()
        uniform_is_bernoulli.cache_clear()


@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
@pytest.mark.parametrize('layout', ['csr', 'coo', 'csc'])
@pytest.mark.parametrize('config', [dict(), dict(add_self_loops=False)], ids=str)
def test_torch_sparse_adjacency(layout, config, layer):
    # A torch.sparse adjacency with targets as rows (PyG's adj_t): the same output as the edge
    # index, and the attention back as a sparse [n_dst, n_src, heads] tensor, as PyG returns it
    pytest.importorskip('torch_geometric')
    from torch_geometric.utils import to_torch_coo_tensor
    pyg, ours = make_pair(layer=layer, **config)
    x, edge_index, _ = graph()
    adj_t = to_torch_coo_tensor(edge_index.flip(0), size=(30, 30))
    adj_t = {'csr': adj_t.to_sparse_csr(), 'coo': adj_t, 'csc': adj_t.to_sparse_csc()}[layout]
    out, (adj, alpha) = ours(x, adj_t, return_attention_weights=True)
    torch.testing.assert_close(out, ours(x, edge_index), atol=1e-10, rtol=0)
    if layout == 'csc':
        # PyG's GATv2Conv refuses a CSC adjacency ("invalid layout"); ours returns CSC
        assert adj.layout == torch.sparse_csc and adj.shape == (30, 30, 3)
        _, (adj_csr, _) = ours(x, adj_t.to_sparse_csr(), return_attention_weights=True)
        torch.testing.assert_close(adj.to_dense(), adj_csr.to_dense(), atol=1e-12, rtol=0)
        return
    torch.testing.assert_close(out, pyg(x, adj_t), atol=1e-10, rtol=0)
    out_p, (adj_p, alpha_p) = pyg(x, adj_t, return_attention_weights=True)
    assert adj.layout == adj_p.layout and adj.shape == adj_p.shape == (30, 30, 3)
    torch.testing.assert_close(adj.to_dense(), adj_p.to_dense(), atol=1e-10, rtol=0)
    torch.testing.assert_close(alpha, alpha_p, atol=1e-10, rtol=0)



@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
def test_an_uncoalesced_coo_adjacency_is_the_matrix_it_means(layer):
    # An entry given twice is one edge, as in the coalesced matrix (not two edges, as the same
    # pair twice in an edge index is)
    conv = layer(5, 4, heads=3, dropout=0.0)
    x = torch.randn(6, 5, dtype=torch.float64)
    conv = conv.double()
    pairs = torch.tensor([[1, 2, 3, 1], [0, 0, 1, 0]])
    adj_t = torch.sparse_coo_tensor(pairs.flip(0), torch.ones(4), (6, 6))
    assert not adj_t.is_coalesced()
    once = conv(x, pairs[:, :3])
    torch.testing.assert_close(conv(x, adj_t), once, atol=1e-12, rtol=0)
    assert not torch.allclose(conv(x, pairs), once)


@pytest.mark.parametrize('add_self_loops', [False, True])
def test_csr_with_its_columns_out_of_order(add_self_loops):
    # A valid CSR whose columns are not sorted within its rows: its entries are taken in the
    # order it stores them, as PyG takes them (sorted once the loops are added, as PyG sorts
    # them), so the attention comes back in PyG's order and training drops PyG's entries
    pytest.importorskip('torch_geometric')
    from torch_geometric.utils import to_torch_coo_tensor
    pyg, ours = make_pair(add_self_loops=add_self_loops, dropout=0.5)
    pyg.train(), ours.train()
    x, edge_index, _ = graph()
    csr = to_torch_coo_tensor(edge_index.flip(0), size=(30, 30)).to_sparse_csr()
    ptr, col = csr.crow_indices(), csr.col_indices()
    row = torch.repeat_interleave(torch.arange(30), ptr.diff())
    # Each row's columns in decreasing order
    order = torch.argsort(row * 30 - col)
    adj_t = torch.sparse_csr_tensor(ptr, col[order], csr.values()[order], (30, 30))
    results = []
    for layer in (pyg, ours):
        torch.manual_seed(3)
        out, (adj, alpha) = layer(x, adj_t, return_attention_weights=True)
        results.append((out, adj.to_dense(), alpha))
    assert (results[0][2] == 0).any()
    for got, expected in zip(results[1], results[0]):
        torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)

def test_return_attention_weights_false_returns_the_output_alone():
    # As PyG's code does (its docstring says "regardless of its actual value")
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair()
    x, edge_index, _ = graph()
    for value in (False, None):
        assert isinstance(pyg(x, edge_index, return_attention_weights=value), torch.Tensor)
        assert isinstance(ours(x, edge_index, return_attention_weights=value), torch.Tensor)


def test_state_dict_both_ways_and_constructor():
    pytest.importorskip('torch_geometric')
    from torch_geometric.nn import GATv2Conv as PyGConv
    for kwargs in [dict(), dict(share_weights=True, residual=True, edge_dim=4, bias=False)]:
        pyg, ours = PyGConv(8, 4, 2, **kwargs), GATv2Conv(8, 4, 2, **kwargs)
        shapes = {k: v.shape for k, v in pyg.state_dict().items()}
        assert {k: v.shape for k, v in ours.state_dict().items()} == shapes
        pyg.load_state_dict(ours.state_dict())
        assert [n for n, _ in ours.named_parameters()] == [n for n, _ in pyg.named_parameters()]
    assert str(GATv2Conv(8, 32, heads=2)) == str(PyGConv(8, 32, heads=2)) == \
        'GATv2Conv(8, 32, heads=2)'
    # MessagePassing's arguments, at the values PyG's layer has
    assert str(GATv2Conv(8, 32, heads=2, aggr='add', flow='source_to_target',
                         decomposed_layers=1)) == 'GATv2Conv(8, 32, heads=2)'
    # Sizes as NumPy integers, as a dataset's shape may give them
    numpy = pytest.importorskip('numpy')
    conv = GATv2Conv((numpy.int64(8), numpy.int32(6)), 4)
    assert (conv.lin_l.in_channels, conv.lin_r.in_channels) == (8, 6)
    # PyG's initialisation: zero bias, Glorot weights
    conv = GATv2Conv(8, 32, heads=2)
    assert torch.equal(conv.bias, torch.zeros(64))
    assert conv.lin_l.weight.abs().max() <= (6 / (8 + 64)) ** 0.5



@pytest.mark.parametrize('message_passing', [False, True], ids=['plain', 'MessagePassing'])
@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
def test_attributes_pyg_users_read(layer, message_passing):
    # What code written for PyG's layers reads of them besides their parameters: the aggregation,
    # the flow and the node dimension, and how each map is initialised, as PyG's layer has them
    pytest.importorskip('torch_geometric')
    import torch_geometric.nn
    pyg = getattr(torch_geometric.nn, layer.__name__)(8, 4, 2, edge_dim=3, residual=True)
    ours = (message_passing_class(layer) if message_passing else layer)(8, 4, 2, edge_dim=3,
                                                                        residual=True)
    for name in ('aggr', 'flow', 'node_dim'):
        assert getattr(ours, name) == getattr(pyg, name), name
    for name, lin in pyg.named_modules():
        if name and hasattr(lin, 'weight_initializer'):
            mine = ours.get_submodule(name)
            assert (mine.weight_initializer, mine.bias_initializer) == \
                (lin.weight_initializer, lin.bias_initializer), name


@pytest.mark.parametrize('in_channels, kwargs', [
    (-1, dict()), (-1, dict(residual=True, bias=False)), (-1, dict(share_weights=True)),
    ((-1, -1), dict(residual=True, edge_dim=2)), ((-1, 6), dict()),
], ids=str)
def test_lazy_in_channels_initialised_as_pygs(in_channels, kwargs):
    # Lazy maps take their sizes and PyG's Glorot weights at the first call: with the same seed,
    # the same parameters and output as PyG's
    pytest.importorskip('torch_geometric')
    from torch_geometric.nn import GATv2Conv as PyGConv
    x = (torch.randn(12, 5), torch.randn(9, 6)) if isinstance(in_channels, tuple) \
        else torch.randn(12, 5)
    n_dst = x[1].shape[0] if isinstance(x, tuple) else 12
    edge_index = torch.stack([torch.randint(0, 12, (40,)), torch.randint(0, n_dst, (40,))])
    edge_attr = torch.randn(40, 2) if 'edge_dim' in kwargs else None
    results = []
    for conv_class in (PyGConv, GATv2Conv):
        torch.manual_seed(0)
        conv = conv_class(in_channels, 4, 3, **kwargs)
        out = conv(x, edge_index, edge_attr)
        results.append((out, conv.state_dict()))
    (out_p, state_p), (out, state) = results
    assert state.keys() == state_p.keys()
    for name in state_p:
        assert torch.equal(state[name], state_p[name]), name
    torch.testing.assert_close(out, out_p)


def test_lazy_state_dict_before_the_first_call_loads_both_ways():
    # A checkpoint of a lazy layer taken before its first call: its sizes come at the first
    # call after loading, with PyG's initialisation
    pytest.importorskip('torch_geometric')
    from torch_geometric.nn import GATv2Conv as PyGConv
    x, edge_index = torch.randn(12, 5), torch.randint(0, 12, (2, 40))
    outs = []
    for source, target in ((GATv2Conv, PyGConv), (PyGConv, GATv2Conv), (PyGConv, PyGConv)):
        layer = target(-1, 4, 3, residual=True)
        torch.manual_seed(1)
        layer.load_state_dict(source(-1, 4, 3, residual=True).state_dict())
        torch.manual_seed(0)
        outs.append(layer(x, edge_index))
    torch.testing.assert_close(outs[0], outs[2])
    torch.testing.assert_close(outs[1], outs[2])
    # And a sized state_dict gives a lazy layer its sizes
    sized = GATv2Conv(5, 4, 3)
    lazy = GATv2Conv(-1, 4, 3)
    lazy.load_state_dict(sized.state_dict())
    torch.testing.assert_close(lazy(x, edge_index), sized(x, edge_index))


class Adapter(torch.nn.Module):
    """A low-rank update beside a linear map (LoRA's form), `base(x) + x A^T`."""

    def __init__(self, base, rank=2):
        super().__init__()
        self.base = base
        self.delta = torch.nn.Linear(base.weight.shape[1], base.weight.shape[0], bias=False)

    def forward(self, x):
        return self.base(x) + self.delta(x)


@pytest.mark.parametrize('in_channels', [5, 40], ids=['separate', 'stacked'])
def test_maps_that_are_more_than_their_weights_are_called(in_channels):
    # Adapters, hooks and pruning on lin_l, lin_r and lin_edge change the layer as they change
    # PyG's: the layer calls those maps, not only reads their weights
    pytest.importorskip('torch_geometric')
    from torch.nn.utils import prune
    x, edge_index = torch.randn(20, in_channels), torch.randint(0, 20, (2, 60))
    edge_attr = torch.randn(60, 3)
    results = []
    for ours in (False, True):
        pyg, conv = make_pair(torch.float64, in_channels=in_channels, edge_dim=3)
        layer = conv if ours else pyg
        called = []
        for name in ('lin_l', 'lin_r', 'lin_edge'):
            torch.manual_seed(5)
            setattr(layer, name, Adapter(getattr(layer, name)).double())
            getattr(layer, name).register_forward_hook(lambda *_, n=name: called.append(n))
        results.append(run(layer, x.double(), edge_index, edge_attr.double()))
        assert sorted(set(called)) == ['lin_edge', 'lin_l', 'lin_r']
        # Pruned maps train: each step uses the mask's current weights
        prune.l1_unstructured(layer.lin_l.base, 'weight', 0.5)
        prune.l1_unstructured(layer.lin_edge.base, 'weight', 0.5)
        for _ in range(2):
            layer(x.double(), edge_index, edge_attr.double()).square().sum().backward()
        results.append((layer.lin_l.base.weight_orig.grad.clone(), layer.state_dict()))
    assert_same(results[2], results[0], 1e-10)
    (grad, state), (grad_p, state_p) = results[3], results[1]
    torch.testing.assert_close(grad, grad_p, atol=1e-10, rtol=1e-10)
    # PyG saves the masked weights, without the masks
    assert state.keys() == state_p.keys()
    torch.testing.assert_close(state['lin_edge.base.weight'], state_p['lin_edge.base.weight'])


def test_maps_are_pygs_linear_not_torchs():
    # Code that picks out nn.Linear modules (to initialise or quantise them) passes over PyG's
    # layer's maps, and so over ours; they have PyG's attributes
    pytest.importorskip('torch_geometric')

    def reinitialise(module):
        if isinstance(module, torch.nn.Linear):
            torch.nn.init.ones_(module.weight)

    x, edge_index = torch.randn(12, 5), torch.randint(0, 12, (2, 40))
    pyg, ours = make_pair(torch.float32, edge_dim=2, residual=True)
    pyg.apply(reinitialise)
    ours.apply(reinitialise)
    edge_attr = torch.randn(40, 2)
    torch.testing.assert_close(ours(x, edge_index, edge_attr), pyg(x, edge_index, edge_attr))
    for name in ('lin_l', 'lin_r', 'lin_edge', 'res'):
        mine, theirs = getattr(ours, name), getattr(pyg, name)
        assert (mine.in_channels, mine.out_channels) == (theirs.in_channels, theirs.out_channels)
        assert repr(mine) == repr(theirs)

@needs_planetoid
def test_matches_pyg_on_cora():
    # The first layer of the GAT paper's Cora model, 1433 features in, 8 heads of 8, with PyG's
    # default self loops and the automatic chunk size
    pytest.importorskip('torch_geometric')
    from labml_gat.datasets import load_planetoid
    cora = load_planetoid('cora', data_dir=PLANETOID, download=False)
    pyg, ours = make_pair(chunk_size=None, in_channels=cora.x.shape[1], out_channels=8, heads=8)
    x = cora.x.double()
    assert_same(run(ours, x, cora.edge_index), run(pyg, x, cora.edge_index), 1e-9)


@pytest.mark.parametrize('config', [dict(), dict(edge_dim=2, residual=True, concat=False),
                                    dict(share_weights=True, dropout=0.3, negative_slope=-0.2),
                                    dict(edge_dim=1, fill_value=0.3, dropout=0.5)], ids=str)
def test_gradcheck(config, threads, reuse):
    # Every input: the features, the edge features and every parameter (a fixed dropout draw)
    conv = GATv2Conv(3, 2, heads=2, chunk_size=4, **config).double()
    conv.train()
    with torch.no_grad():
        for p in conv.parameters():
            p.normal_()
    x, edge_index, _ = graph(n_src=9, n_edges=30)
    x = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    edge_attr = None if 'edge_dim' not in config else \
        torch.randn(edge_index.shape[1], config['edge_dim'], dtype=torch.float64,
                    requires_grad=True)
    params = list(conv.parameters())
    names = [n for n, _ in conv.named_parameters()]

    def function(x, edge_attr, *values):
        torch.manual_seed(0)
        out, (_, alpha) = torch.func.functional_call(conv, dict(zip(names, values)),
                                                     (x, edge_index, edge_attr, True))
        return out, alpha

    assert torch.autograd.gradcheck(function, (x, edge_attr, *params))


def relative_error(out: torch.Tensor, reference: torch.Tensor) -> float:
    return ((out.double() - reference).abs().max() / reference.abs().max()).item()


def hub_and_dense_graphs():
    """A hub with 100k in-edges, and 500 nodes of in-degree 200."""
    n = 100_001
    yield 'hub', n, torch.stack([torch.arange(1, n), torch.zeros(n - 1, dtype=torch.long)])
    generator = torch.Generator().manual_seed(0)
    yield 'degree-200', 500, torch.stack([torch.randint(0, 500, (100_000,), generator=generator),
                                          torch.arange(500).repeat_interleave(200)])


def edge_layers_twin(layer: type, device: str):
    """A drop-in layer (`GATv2Conv` or `GATConv`) and the edge-list layer of the same attention
    with the same parameters, in float64, 16 features into 4 heads of 8."""
    if layer is GATv2Conv:
        conv, edge = GATv2Conv(16, 8, heads=4, add_self_loops=False, bias=False), \
            EdgeGraphAttentionV2Layer(16, 32, 4, dropout=0.0)
        copies = [(conv.lin_l.weight, edge.linear_l.weight),
                  (conv.lin_r.weight, edge.linear_r.weight), (conv.att, edge.attn.view(1, 4, 8))]
    else:
        conv, edge = GATConv(16, 8, heads=4, add_self_loops=False, bias=False), \
            EdgeGraphAttentionLayer(16, 32, 4, dropout=0.0)
        copies = [(conv.lin.weight, edge.linear.weight),
                  (conv.att_dst, edge.attn[:, :8].view(1, 4, 8)),
                  (conv.att_src, edge.attn[:, 8:].view(1, 4, 8))]
    with torch.no_grad():
        for ours, theirs in copies:
            ours.copy_(theirs)
    return conv.to(device).double(), edge.to(device).double()


@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_half_precision_within_the_edge_layers_error(dtype, device, layer):
    # Against a float64 reference, the output and the input's gradient in half precision are as
    # close as the edge-list layer's (which sums in float32 too); a sum of the hub's 100k terms
    # in half precision would be off by far more
    for name, n, edge_index in hub_and_dense_graphs():
        edge_index = edge_index.to(device)
        torch.manual_seed(0)
        x = torch.randn(n, 16, dtype=torch.float64, device=device)
        conv, edge = edge_layers_twin(layer, device)
        # The same function in float64
        assert relative_error(conv(x, edge_index), edge(x, edge_index).double()) < 1e-12
        errors = {}
        for twin in (conv, edge):
            outputs = []
            for t in (torch.float64, dtype):
                h = x.detach().to(t).requires_grad_()
                out = twin.to(t)(h, edge_index)
                out.pow(2).sum().backward() if t == torch.float64 else \
                    out.float().pow(2).sum().backward()
                outputs.append((out.detach(), h.grad))
            (out64, grad64), (out_half, grad_half) = outputs
            assert out_half.dtype == dtype
            errors[twin] = relative_error(out_half, out64), relative_error(grad_half, grad64)
        for ours, theirs in zip(errors[conv], errors[edge]):
            assert ours <= 1.1 * theirs + 1e-4, (name, errors)


AUTOCAST = [('cpu', torch.bfloat16)] + ([('cuda', torch.bfloat16), ('cuda', torch.float16)]
                                         if torch.cuda.is_available() else [])


@pytest.mark.parametrize('bias', [True, False])
@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
@pytest.mark.parametrize('device, dtype', AUTOCAST, ids=str)
def test_autocast(device, dtype, layer, bias):
    # Under autocast the projections run in half precision, the attention in float32 inside; the
    # output and the attention come in PyG's dtypes (its half-precision messages meet a float32
    # `att`: float32, with or without the float32 bias), close to float32's, each node's
    # attention summing to 1 as float32's does, and the gradients reach every parameter in its
    # own dtype
    pyg, conv = make_pair(torch.float32, device, chunk_size=None, in_channels=16,
                          out_channels=8, heads=4, layer=layer, edge_dim=3, bias=bias)
    x = torch.randn(50, 16, device=device)
    edge_index = random_graph(50, 400, self_loops=False).to(device)
    edge_attr = torch.randn(edge_index.shape[1], 3, device=device)
    with torch.autocast(device, dtype):
        out, (used, alpha) = conv(x, edge_index, edge_attr, return_attention_weights=True)
        pyg_out, (_, pyg_alpha) = pyg(x, edge_index, edge_attr, return_attention_weights=True)
    assert (out.dtype, alpha.dtype) == (pyg_out.dtype, pyg_alpha.dtype)
    out.sum().backward()
    reference = conv(x, edge_index, edge_attr)
    assert relative_error(out, reference.double()) < 0.05
    sums = torch.zeros(50, 4, device=device).index_add_(0, used[1], alpha.float())
    assert (sums - 1).abs().max() < 1e-5
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in conv.parameters())


@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
def test_saved_tensors_grow_with_heads_not_features(monkeypatch, layer):
    # What is kept for backward: per edge one byte per head (the dropout mask) and the edge list
    # with its features (and GAT's edges' part of its score, a number per head); no edge-sized
    # tensor grows with F', even with edge features (a graph that is not small)
    monkeypatch.setattr(gatv2_conv, 'SMALL_GRAPH_TENSOR_BYTES', 0)
    n_nodes, heads, edge_dim = 50, 2, 4
    edge_index = random_graph(n_nodes, 20_000, self_loops=False, n_isolated=0)
    n_edges = edge_index.shape[1]
    x = torch.randn(n_nodes, 5, requires_grad=True)
    edge_attr = torch.randn(n_edges, edge_dim, requires_grad=True)
    sizes = {}
    for hidden in (4, 64):
        conv = layer(5, hidden, heads, dropout=0.5, edge_dim=edge_dim, add_self_loops=False,
                     chunk_size=1000)
        conv.train()
        sizes[hidden] = saved_bytes(lambda: conv(x, edge_index, edge_attr))
    scores = heads * 4 if layer is GATConv else 0
    assert sizes[64] - sizes[4] <= 8 * n_nodes * heads * 64 * 4
    assert sizes[4] <= n_edges * (heads + 2 * 8 + edge_dim * 4 + scores) + \
        32 * n_nodes * heads * 64 * 4


def test_only_a_small_graph_in_training_reuses_its_chunks(monkeypatch):
    # A graph whose [E, K F'] tensor is at most SMALL_GRAPH_TENSOR_BYTES keeps its chunks' tensors
    # for the backward pass, and only when there is to be one
    reused = []
    apply = gatv2_conv.LeanAttention.apply
    monkeypatch.setattr(gatv2_conv.LeanAttention, 'apply',
                        lambda *args: reused.append(args[-1]) or apply(*args))
    conv = GATv2Conv(5, 4, heads=3, edge_dim=2, add_self_loops=False)
    x, edge_index, edge_attr = graph(edge_dim=2, dtype=torch.float32)
    per_edge = 3 * 4 * 4
    monkeypatch.setattr(gatv2_conv, 'SMALL_GRAPH_TENSOR_BYTES', edge_index.shape[1] * per_edge)
    conv(x, edge_index, edge_attr)
    with torch.no_grad():
        conv(x, edge_index, edge_attr)
    conv.requires_grad_(False)
    conv(x, edge_index, edge_attr)
    conv(x.requires_grad_(), edge_index, edge_attr)
    monkeypatch.setattr(gatv2_conv, 'SMALL_GRAPH_TENSOR_BYTES', edge_index.shape[1] * per_edge - 1)
    conv(x, edge_index, edge_attr)
    assert reused == [True, False, False, True, False]


def test_backward_twice_gives_the_same_gradients(reuse):
    # With the graph retained, a second backward pass computes the same gradients again (the
    # reused tensors are not overwritten by the first)
    conv = GATv2Conv(5, 4, heads=3, edge_dim=2, dropout=0.5, negative_slope=-0.2)
    x, edge_index, edge_attr = graph(edge_dim=2, dtype=torch.float32)
    x.requires_grad_()
    out = conv(x, edge_index, edge_attr)
    first = torch.autograd.grad(out.pow(2).sum(), [x, *conv.parameters()], retain_graph=True)
    second = torch.autograd.grad(out.pow(2).sum(), [x, *conv.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def saved_bytes(call) -> int:
    """The total size of the distinct tensors autograd keeps for the backward pass."""
    seen = {}

    def pack(tensor):
        seen[(tensor.data_ptr(), tensor.numel(), tensor.dtype)] = tensor.nbytes
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        call().sum().backward()
    return sum(seen.values())


def test_inside_pyg_models():
    # Sequential, HeteroConv and to_hetero take it where they take PyG's layer
    pytest.importorskip('torch_geometric')
    from torch_geometric.data import HeteroData
    from torch_geometric.nn import HeteroConv, Sequential, to_hetero
    x, edge_index = torch.randn(20, 5), random_graph(20, 60, self_loops=False)
    model = Sequential('x, edge_index', [(GATv2Conv(5, 4, heads=2), 'x, edge_index -> x'),
                                         torch.nn.ReLU(), (GATv2Conv(8, 3), 'x, edge_index -> x')])
    assert model(x, edge_index).shape == (20, 3)
    data = HeteroData()
    data['paper'].x, data['author'].x = torch.randn(20, 5), torch.randn(7, 6)
    data['author', 'writes', 'paper'].edge_index = torch.stack([torch.randint(0, 7, (30,)),
                                                                torch.randint(0, 20, (30,))])
    data['paper', 'cites', 'paper'].edge_index = edge_index
    data['paper', 'rev_writes', 'author'].edge_index = \
        data['author', 'writes', 'paper'].edge_index.flip(0)
    sizes = {'paper': 5, 'author': 6}
    hetero = HeteroConv({(src, rel, dst): GATv2Conv((sizes[src], sizes[dst]), 4,
                                                    add_self_loops=False)
                         for src, rel, dst in data.edge_types})
    out = hetero(data.x_dict, data.edge_index_dict)
    assert out['paper'].shape == (20, 4) and out['author'].shape == (7, 4)

    # Lazy sizes, as PyG's examples of to_hetero use them
    lazy = HeteroConv({(src, rel, dst): GATv2Conv((-1, -1), 4, add_self_loops=False,
                                                  residual=True)
                       for src, rel, dst in data.edge_types})
    out = lazy(data.x_dict, data.edge_index_dict)
    assert out['paper'].shape == (20, 4) and out['author'].shape == (7, 4)
    # to_hetero sums the edge types' results only for PyG's MessagePassing modules
    conv_class = message_passing_class()
    assert issubclass(conv_class, GATv2Conv)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv_class((-1, -1), 3, add_self_loops=False)

        def forward(self, x, edge_index):
            return self.conv(x, edge_index)

    data['author'].x = torch.randn(7, 4)
    data['paper'].x = torch.randn(20, 4)
    net = to_hetero(Net(), data.metadata(), aggr='sum')
    out = net(data.x_dict, data.edge_index_dict)
    assert out['paper'].shape == (20, 3) and out['author'].shape == (7, 3)
    out['paper'].sum().backward()



@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
def test_message_passing_class_refuses_what_hooks_into_propagate(layer):
    # Beside PyG's own layers, an explainer's edge mask or a hook into propagate would leave
    # the drop-in's edges out without a word: both are refused in one line
    pytest.importorskip('torch_geometric')
    from torch_geometric.explain import Explainer, GNNExplainer
    from torch_geometric.nn import GCNConv

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gcn, self.conv = GCNConv(5, 8), message_passing_class(layer)(8, 3)

        def forward(self, x, edge_index):
            return self.conv(self.gcn(x, edge_index).relu(), edge_index)

    model = Net()
    x, edge_index = torch.randn(10, 5), random_graph(10, 30, self_loops=False)
    explainer = Explainer(model, GNNExplainer(epochs=2), explanation_type='model',
                          node_mask_type=None, edge_mask_type='object',
                          model_config=dict(mode='multiclass_classification',
                                            task_level='node', return_type='raw'))
    with pytest.raises(RuntimeError, match="PyG's explainers cannot mask its edges"):
        explainer(x, edge_index, index=0)
    with pytest.raises(RuntimeError, match='register_message_forward_hook would never be'):
        model.conv.register_message_forward_hook(lambda *args: None)
    # What PyG's models set otherwise is taken, and the layer runs
    model.conv.explain = False
    model.conv.explain = None
    assert model(x, edge_index).shape == (10, 3)


@pytest.mark.parametrize('v2', [True, False], ids=['GATv2Conv', 'GATConv'])
@pytest.mark.parametrize('config', [dict(), dict(edge_dim=3), dict(heads=2, jk='cat'),
                                    dict(heads=3, concat=False, residual=True)], ids=str)
def test_pygs_gat_model_built_with_the_drop_in_layers(v2, config, monkeypatch):
    # PyG's models.GAT (v2 or not) built on the drop-in layers computes the same function as
    # the one built on PyG's, with its state_dict
    pytest.importorskip('torch_geometric')
    from torch_geometric.nn.models import GAT, basic_gnn
    torch.manual_seed(0)
    x, edge_index = torch.randn(40, 6), random_graph(40, 200, self_loops=True)
    inputs = dict(edge_attr=torch.randn(edge_index.shape[1], 3)) if 'edge_dim' in config else {}
    pygs = GAT(6, 16, 3, out_channels=5, v2=v2, **config)
    monkeypatch.setattr(basic_gnn, 'GATConv', GATConv)
    monkeypatch.setattr(basic_gnn, 'GATv2Conv', GATv2Conv)
    ours = GAT(6, 16, 3, out_channels=5, v2=v2, **config)
    assert type(ours.convs[0]) is (GATv2Conv if v2 else GATConv)
    ours.load_state_dict(pygs.state_dict())
    pygs.eval(), ours.eval()
    torch.testing.assert_close(ours(x, edge_index, **inputs), pygs(x, edge_index, **inputs))


@pytest.mark.slow
def test_message_passing_modules_saved_and_loaded_elsewhere(tmp_path):
    # A to_hetero model holds modules of the MessagePassing class: saved in one process, they
    # load in another that never made the class, with the file alone beside it
    pytest.importorskip('torch_geometric')
    save = ('import torch\nfrom gatv2_conv import message_passing_class\n'
            'conv = message_passing_class()(4, 8, heads=2)\n'
            'x, edge_index = torch.randn(3, 4), torch.tensor([[0, 1, 2], [1, 2, 0]])\n'
            'torch.save((conv, x, edge_index, conv(x, edge_index)), "saved.pt")\n')
    load = ('import torch\nfrom torch_geometric.nn import MessagePassing\n'
            'import gatv2_conv\n'
            'conv, x, edge_index, out = torch.load("saved.pt", weights_only=False)\n'
            'assert isinstance(conv, (gatv2_conv.GATv2Conv, MessagePassing))\n'
            'assert torch.equal(conv(x, edge_index), out)\n'
            'print(type(conv).__name__, isinstance(conv, MessagePassing))\n')
    for script in (save, load):
        result = run_copied_alone(REPO / 'labml_gat' / 'gatv2_conv.py', tmp_path, script)
        assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'GATv2Conv True'

@pytest.mark.parametrize('device', DEVICES)
def test_compile_does_not_recompile_for_new_graph_sizes(device):
    # torch.compile(dynamic=True) compiles the projections, residual and bias once; the chunked
    # attention runs eagerly (one graph break per layer), so new graph sizes reuse the graphs
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    conv1, conv2 = GATv2Conv(5, 4, heads=2, residual=True).to(device), GATv2Conv(8, 3).to(device)

    def forward(x, edge_index):
        return conv2(torch.relu(conv1(x, edge_index)), edge_index)

    compiled = torch.compile(forward, backend=backend, dynamic=True)
    for n_nodes in (20, 37, 55):
        x = torch.randn(n_nodes, 5, device=device)
        edge_index = random_graph(n_nodes, 4 * n_nodes, False).to(device)
        torch.testing.assert_close(compiled(x, edge_index), forward(x, edge_index))
        if n_nodes == 20:
            n_graphs = len(graphs)
    assert len(graphs) == n_graphs
    # Five graphs, none compiled again: each layer's projections, each layer's residual and bias
    # around its eager attention, and the caller's ReLU between the layers
    assert n_graphs == 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason='Inductor is tried on CUDA only')
def test_compile_with_inductor_on_cuda():
    # The default backend generates the projections' kernels; outputs and gradients are eager's
    torch._dynamo.reset()
    conv = GATv2Conv(16, 8, heads=4, edge_dim=3, residual=True).cuda()
    compiled = torch.compile(conv, dynamic=True)
    for n_nodes in (100, 333):
        x = torch.randn(n_nodes, 16, device='cuda', requires_grad=True)
        edge_index = random_graph(n_nodes, 8 * n_nodes, False).cuda()
        edge_attr = torch.randn(edge_index.shape[1], 3, device='cuda')
        results = []
        for module in (compiled, conv):
            out = module(x, edge_index, edge_attr)
            grad, = torch.autograd.grad(out.pow(2).sum(), x)
            results.append((out, grad))
        torch.testing.assert_close(results[0], results[1], rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='host synchronisation is a CUDA matter')
def test_no_host_synchronisation_inside_the_chunk_loop():
    # A training step synchronises with the host a fixed number of times (sorting, the chunks'
    # bounds, self loops), however many chunks it is cut into
    def synchronisations(chunk_size):
        torch.manual_seed(0)
        conv = GATv2Conv(16, 8, heads=4, edge_dim=3, dropout=0.5, chunk_size=chunk_size).cuda()
        x = torch.randn(500, 16, device='cuda', requires_grad=True)
        edge_index = random_graph(500, 5000, False).cuda()
        edge_attr = torch.randn(edge_index.shape[1], 3, device='cuda')
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            torch.cuda.set_sync_debug_mode('warn')
            try:
                conv(x, edge_index, edge_attr).pow(2).sum().backward()
            finally:
                torch.cuda.set_sync_debug_mode('default')
        return sum('synchroniz' in str(w.message) for w in caught)

    # A first step also synchronises for CUDA's lazy initialisation (its handles, the
    # random generator), once per process, so it is not counted
    synchronisations(50)
    few, many = synchronisations(1_000_000), synchronisations(50)
    assert many == few, (few, many)


def test_unsupported_transforms_fail_with_one_clear_line():
    conv = GATv2Conv(5, 4, heads=2)
    x, edge_index = torch.randn(10, 5), random_graph(10, 30, self_loops=False)
    with pytest.raises(RuntimeError, match='cannot be traced by torch.jit.trace'):
        torch.jit.trace(conv, (x, edge_index))
    with pytest.raises(RuntimeError, match='cannot be scripted by torch.jit.script'):
        torch.jit.script(conv)
    # Before PyTorch 2.10 the export and the transforms may stop inside PyTorch, with its error
    ours = torch.__version__ >= '2.10'
    with pytest.raises(RuntimeError, match='cannot be exported by torch.export' if ours else None):
        torch.export.export(conv, (x, edge_index))
    transforms = "do not run under torch.func's transforms" if ours else None
    with pytest.raises(RuntimeError, match=transforms):
        torch.func.vmap(lambda x: conv(x, edge_index))(x.unsqueeze(0).expand(2, -1, -1))
    with pytest.raises(RuntimeError, match=transforms):
        torch.func.grad(lambda x: conv(x, edge_index).sum())(x)
    x.requires_grad_()
    # A loss linear in the output as well: its second derivatives would leave the layer out
    for loss in (lambda out: out.pow(2).sum(), lambda out: out.sum()):
        with pytest.raises(RuntimeError, match='no second derivative'):
            torch.autograd.grad(loss(conv(x, edge_index)), x, create_graph=True)


@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
def test_batched_gradients_fail_with_one_clear_line(layer):
    # A batched backward pass (autograd's jacobian with vectorize=True, is_grads_batched, or
    # torch.func.vmap over torch.autograd.grad) runs the layer's backward under vmap, where
    # PyG's layers give the rows of the Jacobian: the drop-in says in one line that it does
    # not, rather than fail inside its chunks
    conv = layer(5, 4, heads=2)
    x, edge_index = torch.randn(10, 5), random_graph(10, 30, self_loops=False)
    message = r"^the memory-lean layers take no batched gradients \(is_grads_batched"
    with pytest.raises(RuntimeError, match=message):
        torch.autograd.functional.jacobian(lambda x: conv(x, edge_index), x, vectorize=True)
    x.requires_grad_()
    out = conv(x, edge_index)
    with pytest.raises(RuntimeError, match=message):
        torch.autograd.grad(out, x, torch.randn(3, *out.shape), is_grads_batched=True,
                            retain_graph=True)
    with pytest.raises(RuntimeError, match=message):
        torch.func.vmap(lambda v: torch.autograd.grad(out, x, v, retain_graph=True))(
            torch.randn(3, *out.shape))
    # The same gradients one at a time are taken
    assert torch.autograd.functional.jacobian(lambda x: conv(x, edge_index), x).shape == \
        (10, 8, 10, 5)


@pytest.mark.parametrize('layer', [GATv2Conv, GATConv])
def test_forward_mode_derivatives_fail_with_one_clear_line(layer):
    # Forward-mode AD (dual tensors, as torch.autograd.forward_ad makes them), which PyG's layers
    # take, is refused in one line that names it, not with PyTorch's request for a jvp of a
    # Function the user never wrote; a tangent on a parameter alone reaches the layer too
    import torch.autograd.forward_ad as forward_ad
    conv = layer(5, 4, heads=2)
    x, edge_index = torch.randn(10, 5), random_graph(10, 30, self_loops=False)
    message = r'^the memory-lean layers have no forward-mode derivative'
    with forward_ad.dual_level():
        with pytest.raises(RuntimeError, match=message):
            conv(forward_ad.make_dual(x, torch.randn_like(x)), edge_index)
        name = 'att' if layer is GATv2Conv else 'att_src'
        att = getattr(conv, name).detach()
        with pytest.raises(RuntimeError, match=message):
            torch.func.functional_call(conv, {name: forward_ad.make_dual(
                att, torch.randn_like(att))}, (x, edge_index))
        # Without tangents the layer runs inside the dual level
        assert conv(x, edge_index).shape == (10, 8)


@pytest.mark.parametrize('call, error, message', [
    (lambda c, x, e: c((x, None), e), ValueError, r'not \(x, None\)'),
    (lambda c, x, e: c(x[0], e), ValueError, 'x_src must be a 2-d tensor'),
    (lambda c, x, e: c(x, e.float()), ValueError, 'of an integer dtype'),
    (lambda c, x, e: c(x, e > 4), ValueError, 'of an integer dtype'),
    (lambda c, x, e: c(x, e, torch.randn(3, 2)), ValueError, 'edge_attr was given'),
    (lambda c, x, e: c(x, [e]), TypeError, 'edge_index must be a tensor'),
    (lambda c, x, e: c(x, torch.cat([e, torch.tensor([[0], [10]])], 1)), IndexError,
     'target nodes from 0 to 10, but the targets\' features have 10 rows'),
    (lambda c, x, e: c(x, torch.cat([e, torch.tensor([[-1], [0]])], 1).int()), IndexError,
     'source nodes from -1 to 9'),
    (lambda c, x, e: c((x, x[:4]), e), IndexError,
     r"target nodes from 0 to \d, but the targets' features have 4 rows"),
    (lambda c, x, e: c(x, torch.sparse_coo_tensor(torch.tensor([[0, 1], [2, 12]]),
                                                  torch.ones(2), (10, 10),
                                                  check_invariants=False)),
     IndexError, 'source nodes from 2 to 12'),
    (lambda c, x, e: GATv2Conv(-2, 4), ValueError, 'in_channels must be a positive int'),
    (lambda c, x, e: GATv2Conv(5, 4, edge_dim=2, fill_value='median'), ValueError, 'fill_value'),
    (lambda c, x, e: GATv2Conv(5, 4, edge_dim=2, fill_value=[1.0, 2.0]), TypeError, 'fill_value'),
    (lambda c, x, e: GATv2Conv(5, 4, chunk_size=0), ValueError, 'chunk_size'),
    (lambda c, x, e: GATv2Conv(5, 4, aggr='mean'), ValueError, "aggr='add' only"),
    (lambda c, x, e: GATv2Conv(5, 4, flow='target_to_source'), ValueError, 'flow='),
    (lambda c, x, e: GATv2Conv(5, 4, node_dimension=0), TypeError, "'node_dimension'"),
])
def test_bad_input_one_clear_line(call, error, message):
    conv = GATv2Conv(5, 4, heads=2)
    with pytest.raises(error, match=message):
        call(conv, torch.randn(10, 5), random_graph(10, 30, self_loops=False))


def test_chunk_size_per_device():
    # A CPU's chunks keep each [C, K F'] tensor at 2 MiB; half precision is computed in float32
    like = torch.zeros(1)
    assert auto_chunk_size(like, 64) == 2 * 2 ** 20 // (64 * 4)
    assert auto_chunk_size(like.half(), 64) == auto_chunk_size(like, 64)
    assert auto_chunk_size(like.double(), 4096) == 1024
    if torch.cuda.is_available():
        # A GPU's chunks are sized by its free memory: millions of edges
        assert auto_chunk_size(like.cuda(), 64) > 1_000_000


def chunks(sizes):
    """Chunks of one target each with the given numbers of edges."""
    ends = torch.tensor([0] + sizes).cumsum(0).tolist()
    return [(i, i + 1, e0, e1) for i, (e0, e1) in enumerate(zip(ends, ends[1:]))]


@pytest.mark.parametrize('n_threads, n_chunks, device, expected', [
    (2, 8, 'cpu', 2), (2, 7, 'cpu', 1), (3, 100, 'cpu', 3), (16, 100, 'cpu', 4), (1, 100, 'cpu', 1),
    (2, 0, 'cpu', 1), (2, 100, 'meta', 1)], ids=str)
def test_chunk_threads(n_threads, n_chunks, device, expected):
    # One thread per 4 chunks at least, as many as torch's threads, at most 4, on a CPU only
    torch.set_num_threads(n_threads)
    try:
        turns = ChunkTurns(chunks([10] * n_chunks), torch.zeros(1, device=device))
    finally:
        torch.set_num_threads(1)
    assert turns.n_threads == expected


def run_turns(turns, work, ahead=None, timeout=60):
    """`turns.run(work, ahead)` without autograd, as in a layer, in a thread of its own, so that
    a test fails instead of hanging; returns its error, if any."""
    result = []
    thread = threading.Thread(
        target=lambda: result.append(ChunkTurns.call(torch.no_grad()(turns.run), work, ahead)),
        daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), 'the threads hang'
    return result[0]


def test_chunk_turns_share_the_chunks_and_keep_their_order(threads):
    # Every chunk is computed once, in as many threads as there are, without autograd, with one
    # intra-op thread each; the turns come in the chunks' order however long each chunk takes
    parts = chunks([10] * 40)
    turns = ChunkTurns(parts, torch.zeros(1))
    taken, order, delays = [], [], torch.rand(40, generator=torch.Generator().manual_seed(0))

    def work(k, part):
        taken.append((k, part, threading.get_ident(), torch.get_num_threads(),
                      torch.is_grad_enabled()))
        time.sleep(0.01 * delays[k].item())
        turns.in_turn(k, lambda: order.append(k))

    assert run_turns(turns, work) is None
    assert sorted(t[:2] for t in taken) == list(enumerate(parts))
    assert order == list(range(40))
    assert len({t[2] for t in taken}) == threads
    assert {t[3:] for t in taken} == {(1 if threads > 1 else torch.get_num_threads(), False)}
    assert torch.get_num_threads() == threads


def test_a_thread_does_not_wait_for_its_turn():
    # With two threads, while the first chunk takes long the other thread computes the next
    # ones, leaving their additions (at most four) to be made in their turns, in order
    torch.set_num_threads(2)
    try:
        turns = ChunkTurns(chunks([10] * 12), torch.zeros(1))
    finally:
        torch.set_num_threads(1)
    events, lock = [], threading.Lock()

    def work(k, part):
        if k == 0:
            time.sleep(0.5)
        with lock:
            events.append(('computed', k, len(turns.waiting)))
        turns.in_turn(k, lambda: events.append(('added', k)))

    assert run_turns(turns, work) is None
    assert [e[1] for e in events if e[0] == 'added'] == list(range(12))
    first_added = events.index(('added', 0))
    assert [e[1] for e in events[:first_added]] == [1, 2, 3, 4, 0]
    assert max(e[2] for e in events if e[0] == 'computed') == 4


def test_a_chunk_without_its_turn_is_an_error(threads):
    # A chunk whose work never takes its turn leaves the additions after it undone: an error,
    # not sums silently short
    turns = ChunkTurns(chunks([10] * 40), torch.zeros(1))

    def work(k, part):
        if k != 38:
            turns.in_turn(k, lambda: None)

    error = run_turns(turns, work)
    assert isinstance(error, RuntimeError) and 'chunk 38' in str(error)


def test_chunk_turns_take_a_step_ahead_of_each_chunk(threads):
    # `ahead` comes for every chunk, in order, in one thread (of its own with two threads), and
    # each chunk's work begins after its step, however long the steps take
    parts = chunks([10] * 40)
    turns = ChunkTurns(parts, torch.zeros(1))
    events, lock = [], threading.Lock()
    delays = torch.rand(40, generator=torch.Generator().manual_seed(1))

    def ahead(k, part):
        time.sleep(0.005 * delays[k].item())
        with lock:
            events.append(('ahead', k, part, threading.get_ident()))

    def work(k, part):
        with lock:
            events.append(('work', k, part, threading.get_ident()))

    assert run_turns(turns, work, ahead) is None
    steps = [e for e in events if e[0] == 'ahead']
    assert [e[1:3] for e in steps] == list(enumerate(parts))
    assert all(events.index(steps[k]) < events.index(e) for e in events if e[0] == 'work'
               for k in [e[1]])
    workers = {e[3] for e in events if e[0] == 'work'}
    assert len(workers) == threads and len({e[3] for e in steps}) == 1
    assert (steps[0][3] in workers) == (threads == 1)


@pytest.mark.parametrize('where', ['work', 'ahead'])
@pytest.mark.parametrize('failing', [0, 1, 17, 39])
def test_chunk_turns_stop_at_the_first_error(failing, where, threads):
    # The error of the failing chunk, or of its step ahead, reaches the caller, the other threads
    # stop instead of waiting for its turn or its step, and torch's threads are as they were
    turns = ChunkTurns(chunks([10] * 40), torch.zeros(1))

    def fails(name):
        def step(k, part):
            if k == failing and name == where:
                raise ValueError(f'{name} {k} failed')
            if name == 'work':
                turns.in_turn(k, lambda: None)
        return step

    error = run_turns(turns, fails('work'), fails('ahead'))
    assert isinstance(error, ValueError) and str(error) == f'{where} {failing} failed'
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize('config', [dict(), dict(edge_dim=3, share_weights=True),
                                    dict(dropout=0.5, concat=False)], ids=str)
def test_two_threads_compute_what_one_does(config, dtype, monkeypatch, reuse):
    # With two threads the chunks are computed in two threads, and the sums added in the same
    # order: the same output, attention and gradients, to the bit
    # The threads that score a chunk or take the score's gradient (a reused chunk is not
    # scored again in the backward pass)
    scored_in = set()

    def spy(method):
        def spied(self, *args, **kwargs):
            scored_in.add(threading.get_ident())
            return method(self, *args, **kwargs)
        return spied

    monkeypatch.setattr(GATv2Score, 'forward', spy(GATv2Score.forward))
    monkeypatch.setattr(GATv2Score, 'backward', spy(GATv2Score.backward))
    torch.manual_seed(0)
    conv = GATv2Conv(5, 4, heads=3, chunk_size=50, **config).to(dtype).train()
    edge_index = random_graph(300, 3000, self_loops=True)
    x = torch.randn(300, 5, dtype=dtype)
    edge_attr = None if 'edge_dim' not in config else \
        torch.randn(edge_index.shape[1], config['edge_dim'], dtype=dtype)
    results = {}
    for n in (1, 2):
        scored_in.clear()
        torch.set_num_threads(n)
        try:
            results[n] = run(conv, x, edge_index, edge_attr)
        finally:
            torch.set_num_threads(1)
        assert (len(scored_in) > 1) == (n == 2)
    (out, index, alpha, inputs, grads), (out2, index2, alpha2, inputs2, grads2) = results.values()
    assert torch.equal(out, out2) and torch.equal(index, index2) and torch.equal(alpha, alpha2)
    for g, g2 in zip(inputs + list(grads.values()), inputs2 + list(grads2.values())):
        assert torch.equal(g, g2)


@pytest.mark.parametrize('training', [False, True], ids=['eval', 'train'])
def test_inference_mode_with_two_threads(training):
    # Inference mode is set per thread: the threads that compute the chunks and draw the
    # dropout take the caller's, or they could not write into the tensors made in it
    torch.manual_seed(0)
    conv = GATv2Conv(5, 4, heads=3, dropout=0.5, chunk_size=50).train(training)
    x, edge_index = torch.randn(300, 5), random_graph(300, 3000, self_loops=True)
    results = []
    for n, mode in ((1, torch.no_grad), (2, torch.inference_mode)):
        torch.set_num_threads(n)
        torch.manual_seed(1)
        try:
            with mode():
                results.append(conv(x, edge_index, return_attention_weights=True))
        finally:
            torch.set_num_threads(1)
    (out, (index, alpha)), (out2, (index2, alpha2)) = results
    assert out2.is_inference()
    assert torch.equal(out, out2) and torch.equal(index, index2) and torch.equal(alpha, alpha2)


def test_module_imports_only_torch():
    # PyG only inside message_passing_class, when a to_hetero user calls it
    path = REPO / 'labml_gat' / 'gatv2_conv.py'
    standard = {'concurrent', 'contextlib', 'copy', 'functools', 'math', 'numbers', 'threading', 'typing',
                'warnings'}
    assert imported_modules(path) <= standard | {'torch', 'torch_geometric'}
    top_level = {node.names[0].name if isinstance(node, ast.Import) else node.module
                 for node in ast.parse(path.read_text()).body
                 if isinstance(node, (ast.Import, ast.ImportFrom))}
    assert {name.split('.')[0] for name in top_level} <= standard | {'torch'}


@pytest.mark.slow
def test_file_can_be_copied_alone(tmp_path):
    # A researcher copies gatv2_conv.py into a project with torch alone and swaps the import of
    # either layer
    script = ('import sys, torch\nfrom gatv2_conv import GATConv, GATv2Conv\n'
              'assert "torch_geometric" not in sys.modules and "labml_gat" not in sys.modules\n'
              'edge_index = torch.tensor([[0, 1, 2], [1, 2, 0]])\n'
              'for layer in (GATv2Conv, GATConv):\n'
              '    conv = layer(4, 8, heads=2, edge_dim=3)\n'
              '    out = conv(torch.randn(3, 4), edge_index, torch.randn(3, 3))\n'
              '    out.sum().backward()\n'
              '    print(tuple(out.shape))\n')
    result = run_copied_alone(REPO / 'labml_gat' / 'gatv2_conv.py', tmp_path, script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['(3, 16)', '(3, 16)']


@pytest.mark.parametrize('dtype, scale', [(torch.float64, 1000.0), (torch.float32, 100.0)])
def test_large_scores_stay_finite(dtype, scale):
    # Scores far beyond exp's range (hundreds in float32, thousands in float64): the softmax
    # subtracts each target's maximum, as PyG's does, so the output is finite and PyG's
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(dtype)
    x, edge_index, _ = graph(dtype=dtype)
    out, out_p = ours(x * scale, edge_index), pyg(x * scale, edge_index)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, out_p, atol=TOLERANCE[dtype] * scale, rtol=TOLERANCE[dtype])


@pytest.mark.parametrize('p', [0.3, 0.7])
def test_dropout_drawn_chunk_by_chunk_at_any_rate(p):
    # Sorted edges without self loops take the chunk-by-chunk draw: each entry kept with
    # probability 1 - p and scaled by 1 / (1 - p) (at p = 0.5 a swap of p and 1 - p is invisible)
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(chunk_size=10, dropout=p, add_self_loops=False)
    pyg.train(), ours.train()
    x, edge_index, _ = graph()
    edge_index = edge_index[:, torch.argsort(edge_index[1], stable=True)]
    assert_same(run(ours, x, edge_index), run(pyg, x, edge_index), 1e-10)


def test_source_index_equal_to_n_src_is_one_clear_line():
    # The first source past the last row (n_src itself) is refused with the layer's message
    conv = GATv2Conv(5, 4, heads=2)
    edge_index = torch.tensor([[0, 10], [1, 2]])
    with pytest.raises(IndexError, match='source nodes from 0 to 10'):
        conv(torch.randn(10, 5), edge_index)


def test_bipartite_fewer_sources_with_self_loops_matches_pyg():
    # PyG adds min(n_src, n_dst) self loops: with 12 sources and 30 targets, loops of 0 to 11
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(in_channels=(5, 6))
    (x_src, _), edge_index, _ = graph(12, 30)
    x = (x_src, torch.randn(30, 6, dtype=torch.float64))
    assert_same(run(ours, x, edge_index), run(pyg, x, edge_index), 1e-10)


def test_edge_features_get_their_gradient_with_lin_edge_frozen():
    # Learnable edge features into a frozen W_e: the features' gradient is still PyG's
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(edge_dim=3)
    for layer in (pyg, ours):
        layer.lin_edge.requires_grad_(False)
    x, edge_index, edge_attr = graph(edge_dim=3)
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr), 1e-10)


def test_chunk_turns_take_each_chunk_once_when_threads_race():
    # A slow len(parts) lets both threads reach the end of the chunks at once: under the lock only
    # one takes the last chunk, and no thread takes one past the end (and waits for it forever)
    class SlowLen(list):
        def __len__(self):
            time.sleep(0.001)
            return super().__len__()

    torch.set_num_threads(2)
    try:
        turns = ChunkTurns(SlowLen(chunks([10] * 40)), torch.zeros(1))
    finally:
        torch.set_num_threads(1)
    taken = []

    def work(k, part):
        taken.append(k)
        turns.in_turn(k, lambda: None)

    assert run_turns(turns, work, timeout=10) is None
    assert sorted(taken) == list(range(40))


def test_the_memory_quoted_for_ten_million_edges():
    """
    The module docstring: kept for the backward pass per edge, the two indices of the edge sorted
    by target, its place when the edges came unsorted and $K$ bytes of the dropout mask, instead
    of $2 K F' b$ bytes; at 10M edges, $K = 8$, $F' = 8$ in `float32`, at most 320 MB instead of
    5.1 GB (MB and GB of 10^6 and 10^9 bytes). A changed number, size or formula fails.
    """
    indices, place = quoted(r"its two indices, (\d+) bytes in `int64`, and (\d+) more for its "
                            r"place if the edges came unsorted", gatv2_conv.__doc__)
    assert int(indices) == 2 * torch.int64.itemsize
    millions, K, F, dtype, at_most, instead = quoted(
        r"and \$K\$ bytes \(the dropout mask, in training\) instead of about \$2 K F' b\$ bytes "
        r".*? At (\d+)M edges, \$K = (\d+)\$, \$F' = (\d+)\$ in `(\w+)`: at most ([\d.]+) MB "
        r"instead of ([\d.]+) GB\.", gatv2_conv.__doc__)
    edges, K, F, b = int(millions) * 10 ** 6, int(K), int(F), getattr(torch, dtype).itemsize
    assert rounds_to(at_most, (int(indices) + int(place) + K) * edges / 1e6)
    assert rounds_to(instead, 2 * K * F * b * edges / 1e9)
