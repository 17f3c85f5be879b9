"""
Tests for the drop-in GATConv of labml_gat/gatv2_conv.py, GAT's layer on the same chunks as
GATv2Conv: the same function as PyG's GATConv (outputs, attention, every gradient) for each
option, PyG's `size` and `(x_src, None)`, a PyG state_dict loaded unchanged, gradcheck, inside
PyG's models, and clear errors. What the two layers share (a torch.sparse adjacency, half
precision, autocast, what is kept for the backward pass, the file alone) is tested in
test_gatv2_conv.py, on both.
"""

import itertools
import pickle

import pytest
import torch
from torch import Tensor

from labml_gat import gatv2_conv
from labml_gat.gatv2_conv import GATConv, GATScore, GATv2Conv, message_passing_class
import test_gatv2_conv
from test_gatv2_conv import (DEVICES, FILL_VALUES, TOLERANCE, assert_same, graph, reuse,
                             run)  # noqa: F401

CONFIGS = ([dict(), dict(add_self_loops=False), dict(concat=False), dict(residual=True),
            dict(bias=False), dict(negative_slope=-0.3),
            dict(residual=True, concat=False, bias=False)]
           + [dict(edge_dim=3, fill_value=f) for f in FILL_VALUES]
           + [dict(edge_dim=3, add_self_loops=False), dict(edge_dim=1, residual=True, concat=False)])


def make_pair(*args, **kwargs):
    """PyG's GATConv with random parameters (biases included) and ours with its state_dict."""
    return test_gatv2_conv.make_pair(*args, layer=GATConv, **kwargs)


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('config', CONFIGS, ids=str)
def test_matches_pyg(config, dtype, device, threads, reuse):
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(dtype, device, **config)
    x, edge_index, edge_attr = graph(edge_dim=config.get('edge_dim'), dtype=dtype, device=device)
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr),
                TOLERANCE[dtype])


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32])
@pytest.mark.parametrize('sizes, in_channels, config', [
    ((30, 12), (5, 6), dict()), ((30, 12), (5, 6), dict(residual=True, edge_dim=2)),
    # One map for both node sets, as PyG's with an int in_channels and a pair of inputs
    ((30, 12), 5, dict(concat=False)),
    # With fewer sources than targets PyG's self loops need targets below n_src; without self
    # loops any bipartite graph
    ((12, 30), (5, 6), dict()),
    ((12, 30), (5, 6), dict(add_self_loops=False, edge_dim=2, residual=True))], ids=str)
def test_bipartite_matches_pyg(sizes, in_channels, config, dtype):
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(dtype, in_channels=in_channels, **config)
    (x_src, _), edge_index, edge_attr = graph(*sizes, edge_dim=config.get('edge_dim'), dtype=dtype)
    n_dst_features = in_channels[1] if isinstance(in_channels, tuple) else in_channels
    x = (x_src, torch.randn(sizes[1], n_dst_features, dtype=dtype))
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr),
                TOLERANCE[dtype])


@pytest.mark.parametrize('add_self_loops', [True, False])
def test_targets_without_features_match_pyg(add_self_loops):
    # (x_src, None): the targets' half of the score is left out; their number comes from size,
    # else it is the number of sources, as in PyG
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(in_channels=(5, 6), residual=True, add_self_loops=add_self_loops)
    (x_src, _), edge_index, _ = graph(30, 12)
    # (PyG's self loops take min(size), so a size with a None only without them)
    partial = [] if add_self_loops else [(None, 20), (30, None)]
    for size in [(30, 12), (30, 20), None] + partial:
        out, out_p = ours((x_src, None), edge_index, size=size), \
            pyg((x_src, None), edge_index, size=size)
        assert out.shape == out_p.shape
        torch.testing.assert_close(out, out_p, atol=1e-10, rtol=1e-10)
    # With all features, a size that agrees with them changes nothing
    x = (x_src, torch.randn(12, 6, dtype=torch.float64))
    torch.testing.assert_close(ours(x, edge_index, size=(30, 12)), pyg(x, edge_index))


def test_dropout_is_pygs():
    # The same random stream as PyG's dropout on the coefficients, chunk by chunk or at once
    pytest.importorskip('torch_geometric')
    for add_self_loops in (True, False):
        pyg, ours = make_pair(dropout=0.4, add_self_loops=add_self_loops, edge_dim=2)
        pyg.train(), ours.train()
        x, edge_index, edge_attr = graph(edge_dim=2)
        edge_index = edge_index[:, torch.argsort(edge_index[1], stable=True)]
        assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr),
                    1e-10)


@pytest.mark.parametrize('config', [dict(), dict(edge_dim=2, residual=True, concat=False),
                                    dict(add_self_loops=False, negative_slope=-0.5)], ids=str)
def test_gradcheck(config, threads, reuse):
    # float64 gradients against finite differences, through the parameters too (inputs of a
    # functional call), with edge features and with the targets' features left out
    torch.manual_seed(0)
    conv = GATConv((5, 6), 3, heads=2, chunk_size=5, **config).double()
    with torch.no_grad():
        for p in conv.parameters():
            p.normal_()
    (x_src, _), edge_index, edge_attr = graph(12, 9, 40, edge_dim=config.get('edge_dim'))
    x_dst = torch.randn(9, 6, dtype=torch.float64)
    names, params = zip(*conv.named_parameters())

    def function(x_src, x_dst, edge_attr, *values):
        out = torch.func.functional_call(conv, dict(zip(names, values)),
                                         ((x_src, x_dst), edge_index, edge_attr))
        return out

    inputs = (x_src, x_dst, edge_attr, *params)
    inputs = tuple(None if t is None else t.detach().clone().requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(function, inputs)
    assert torch.autograd.gradcheck(
        lambda x_src, *values: torch.func.functional_call(
            conv, dict(zip(names, values)), ((x_src, None), edge_index, edge_attr),
            dict(size=(12, 9))), (inputs[0], *inputs[3:]))


def test_state_dict_repr_and_lazy_sizes():
    # PyG's parameter names and shapes both ways, its repr, and lazy input sizes
    pytest.importorskip('torch_geometric')
    from torch_geometric.nn import GATConv as PyGConv
    for args, kwargs in [((8, 32), dict(heads=2)), (((8, 16), 4), dict(edge_dim=3, residual=True)),
                         ((8, 4), dict(bias=False, concat=False, edge_dim=1))]:
        pyg, ours = PyGConv(*args, **kwargs), GATConv(*args, **kwargs)
        assert str(ours) == str(pyg)
        assert {k: v.shape for k, v in ours.state_dict().items()} == \
            {k: v.shape for k, v in pyg.state_dict().items()}
        pyg.load_state_dict(ours.state_dict())
    lazy, lazy_p = GATConv(-1, 4, heads=2), PyGConv(-1, 4, heads=2)
    x, edge_index, _ = graph(dtype=torch.float32)
    assert lazy(x, edge_index).shape == lazy_p(x, edge_index).shape == (30, 8)
    lazy_p.load_state_dict(lazy.state_dict())
    torch.testing.assert_close(lazy(x, edge_index), lazy_p(x, edge_index))


def test_inside_pyg_models():
    # HeteroConv takes it where it takes PyG's layer; to_hetero its MessagePassing class
    pytest.importorskip('torch_geometric')
    from torch_geometric.data import HeteroData
    from torch_geometric.nn import HeteroConv, to_hetero
    data = HeteroData()
    data['paper'].x, data['author'].x = torch.randn(20, 4), torch.randn(7, 4)
    data['author', 'writes', 'paper'].edge_index = torch.stack([torch.randint(0, 7, (30,)),
                                                                torch.randint(0, 20, (30,))])
    data['paper', 'rev_writes', 'author'].edge_index = \
        data['author', 'writes', 'paper'].edge_index.flip(0)
    hetero = HeteroConv({edge_type: GATConv((-1, -1), 4, add_self_loops=False)
                         for edge_type in data.edge_types})
    out = hetero(data.x_dict, data.edge_index_dict)
    assert out['paper'].shape == (20, 4) and out['author'].shape == (7, 4)
    conv_class = message_passing_class(GATConv)
    assert issubclass(conv_class, GATConv) and conv_class is message_passing_class(GATConv)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv_class((-1, -1), 3, add_self_loops=False)

        def forward(self, x, edge_index):
            return self.conv(x, edge_index)

    net = to_hetero(Net(), data.metadata(), aggr='sum')
    out = net(data.x_dict, data.edge_index_dict)
    assert out['paper'].shape == (20, 3) and out['author'].shape == (7, 3)


@pytest.mark.parametrize('call, error, message', [
    (lambda: GATConv(5, 4, aggr='mean'), ValueError, 'GATConv sums its messages chunk by chunk'),
    (lambda: GATConv(5, 4, normalize=True), TypeError, "unexpected keyword argument 'normalize'"),
    (lambda: GATConv(0, 4), ValueError, 'in_channels must be a positive int'),
    (lambda: GATConv(5, 4)(torch.randn(4, 5), torch.tensor([[0], [1]]), size=(4, 3)),
     ValueError, r'size must be \(n_src, n_dst\) = \(4, 4\), got \(4, 3\)'),
    (lambda: GATConv(5, 4)(torch.randn(4, 5), torch.tensor([[0], [4]])),
     IndexError, "target nodes from 4 to 4, but the targets' features have 4 rows"),
])
def test_bad_input_one_clear_line(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_the_score_adds_the_edges_part():
    # GAT's score with an edge's part: LeakyReLU of the three sums, and the edges' gradient
    # written back in their given order
    from labml_gat.gatv2_conv import ChunkInputs, TargetChunks
    src, dst = torch.tensor([2, 0, 1]), torch.tensor([1, 0, 1])
    edges = TargetChunks(src, dst, 2, 8)
    query, key = torch.randn(2, 2, dtype=torch.float64), torch.randn(3, 2, dtype=torch.float64)
    part = torch.randn(3, 2, dtype=torch.float64)
    t = ChunkInputs(torch.float64, torch.randn(3, 2, 1, dtype=torch.float64), query, key, None,
                    part, None, edges)
    score = GATScore(0.1, torch.float64)
    e, _, pre = score.forward(t, edges.src, edges.dst, 0, 3)
    expected = torch.nn.functional.leaky_relu(query[dst] + key[src] + part, 0.1)
    torch.testing.assert_close(e, expected[edges.order])
    grad_part = torch.zeros_like(part)
    score.backward(torch.ones_like(e), pre, t, edges.dst, 0, 3, None, grad_part)
    torch.testing.assert_close(grad_part, torch.where(query[dst] + key[src] + part > 0, 1.0, 0.1)
                               .double())


def test_maps_that_are_more_than_their_weights_are_called():
    # A hook on lin_edge (an adapter, pruning) is called as PyG calls it, not bypassed by the
    # per-edge part made from its weight: the same function as PyG's with the same hook
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(edge_dim=3)
    for layer in (pyg, ours):
        layer.lin_edge.register_forward_hook(lambda module, inputs, out: 2 * out)
    x, edge_index, edge_attr = graph(edge_dim=3)
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr), 1e-10)


def test_dropout_only_in_training():
    # In eval mode the coefficients are not dropped, as PyG's F.dropout(training=False)
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(dropout=0.6, edge_dim=2)
    pyg.eval(), ours.eval()
    x, edge_index, edge_attr = graph(edge_dim=2)
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr), 1e-10)


def test_pair_of_sizes_as_pygs():
    # A list of sizes is a pair, as in PyG (lin_src and lin_dst); with a pair of equal sizes and
    # one node set, the targets go through lin_dst, not lin_src
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(in_channels=[5, 6], residual=True)
    assert ours.lin is None and ours.lin_src is not None
    (x_src, _), edge_index, _ = graph(30, 12)
    x = (x_src, torch.randn(12, 6, dtype=torch.float64))
    assert_same(run(ours, x, edge_index), run(pyg, x, edge_index), 1e-10)
    pyg, ours = make_pair(in_channels=(5, 5))
    x, edge_index, _ = graph()
    assert_same(run(ours, x, edge_index), run(pyg, x, edge_index), 1e-10)


@pytest.mark.parametrize('layer', [GATConv, GATv2Conv])
def test_lazy_edge_dim_matches_pyg(layer):
    # edge_dim=-1: lin_edge takes its size at the first call, as PyG's lazy Linear
    pytest.importorskip('torch_geometric')
    import torch_geometric.nn
    PyGConv = getattr(torch_geometric.nn, layer.__name__)
    x, edge_index, edge_attr = graph(edge_dim=3)
    torch.manual_seed(0)
    ours = layer(5, 4, heads=3, edge_dim=-1).double()
    out = ours(x, edge_index, edge_attr)
    pyg = PyGConv(5, 4, heads=3, edge_dim=-1).double()
    pyg(x, edge_index, edge_attr)
    pyg.load_state_dict(ours.state_dict())
    torch.testing.assert_close(out, pyg(x, edge_index, edge_attr), atol=1e-10, rtol=1e-10)
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr), 1e-10)


@pytest.mark.parametrize('layout', ['coo', 'csc', 'csr'])
def test_targets_without_features_count_the_adjacencys_rows(layout):
    # (x_src, None) with a sparse adjacency and no size: the targets are its rows, any layout
    (x_src, _), edge_index, _ = graph(30, 12)
    conv = GATConv((5, 6), 4, heads=2, add_self_loops=False).double()
    adj_t = torch.sparse_coo_tensor(edge_index.flip(0), torch.ones(edge_index.shape[1],
                                    dtype=torch.float64), (12, 30)).coalesce()
    adj_t = {'coo': adj_t, 'csc': adj_t.to_sparse_csc(), 'csr': adj_t.to_sparse_csr()}[layout]
    out = conv((x_src, None), adj_t)
    assert out.shape == (12, 8)
    torch.testing.assert_close(out, conv((x_src, None), edge_index, size=(30, 12)),
                               atol=1e-10, rtol=0)


@pytest.mark.parametrize('call', [
    lambda: GATConv((5, 6, 7), 4),
    lambda: GATConv(5, 4)(torch.randn(4, 5), torch.tensor([[0], [1]]), size=(4, 4, 4)),
])
def test_malformed_sizes_are_refused(call):
    with pytest.raises(ValueError, match='in_channels must be|size must be'):
        call()


def test_message_passing_class_pickles_by_its_name():
    # to_hetero's modules of GATConv's MessagePassing class pickle: the module finds the class
    # under its name, MessagePassingGATConv, and it is the class itself
    pytest.importorskip('torch_geometric')
    conv_class = message_passing_class(GATConv)
    assert conv_class.__qualname__ == 'MessagePassingGATConv'
    assert gatv2_conv.MessagePassingGATConv is conv_class
    assert gatv2_conv.MessagePassingGATv2Conv is message_passing_class()
    conv = conv_class(4, 8, heads=2)
    x, edge_index = torch.randn(3, 4), torch.tensor([[0, 1, 2], [1, 2, 0]])
    loaded = pickle.loads(pickle.dumps(conv))
    assert type(loaded) is conv_class
    torch.testing.assert_close(loaded(x, edge_index), conv(x, edge_index))
    with pytest.raises(AttributeError, match='MessagePassingGCNConv'):
        gatv2_conv.MessagePassingGCNConv


@pytest.mark.parametrize('sign', [1.0, -1.0])
@pytest.mark.parametrize('edge_dim', [None, 4])
@pytest.mark.parametrize('layer', [GATConv, GATv2Conv])
def test_float16_scores_beyond_its_range(layer, edge_dim, sign):
    # Scores of about 1e5, beyond float16's largest number, with outputs that fit: the
    # node-level halves of GAT's score (and its edge features' part) are summed in float32, as
    # GATv2's scores are, so the result is the float64 one of the same rounded inputs and
    # weights (summed in float16 they were infinite, and the outputs NaN)
    generator = torch.Generator().manual_seed(0)
    edge_index = torch.randint(0, 12, (2, 40), generator=generator)
    x = (torch.rand(12, 8, generator=generator) * 3000).half()
    edge_attr = None if edge_dim is None else \
        (torch.rand(40, edge_dim, generator=generator) * 3000).half()
    torch.manual_seed(0)
    conv = layer(8, 64, heads=1, edge_dim=edge_dim)
    with torch.no_grad():
        for name, p in conv.named_parameters():
            p.abs_()
            if name.startswith('att'):
                p.fill_(sign * 0.5)
    out = conv.half()(x, edge_index, edge_attr)
    expected = conv.double()(x.double(), edge_index,
                             None if edge_attr is None else edge_attr.double())
    assert out.dtype == torch.float16
    assert (out.double() - expected).abs().max() <= 1e-2 * expected.abs().max()


def test_edge_features_without_edge_dim_are_not_read_as_pygs():
    # A model that passes data.edge_attr to every layer: PyG's GATConv without edge_dim ignores it
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair()
    x, edge_index, edge_attr = graph(edge_dim=3)
    assert_same(run(ours, x, edge_index, edge_attr), run(pyg, x, edge_index, edge_attr), 1e-10)
    torch.testing.assert_close(ours(x, edge_index, edge_attr), ours(x, edge_index), rtol=0, atol=0)


@pytest.mark.parametrize('self_loops', [False, True])
def test_a_graph_without_edges_gives_the_edge_parameters_pygs_gradients(self_loops):
    # Without an edge PyG leaves the edge features out: its edge parameters get no gradient, and
    # an optimiser leaves them as they are (momentum and weight decay included); with self loops
    # the loops' features are read, and every parameter gets one
    pytest.importorskip('torch_geometric')
    pyg, ours = make_pair(edge_dim=2, add_self_loops=self_loops)
    x, edge_index = torch.randn(5, 5, dtype=torch.float64), torch.empty(2, 0, dtype=torch.long)
    edge_attr = torch.empty(0, 2, dtype=torch.float64)
    grads = {}
    for name, conv in (('pyg', pyg), ('ours', ours)):
        conv(x, edge_index, edge_attr).sum().backward()
        grads[name] = {n: None if q.grad is None else q.grad.clone()
                       for n, q in conv.named_parameters()}
    assert {n for n, g in grads['ours'].items() if g is None} == \
        {n for n, g in grads['pyg'].items() if g is None}
    assert self_loops or {'att_edge', 'lin_edge.weight'} <= \
        {n for n, g in grads['ours'].items() if g is None}


@pytest.mark.parametrize('layer', [GATConv, GATv2Conv])
@pytest.mark.parametrize('p', [1.5, -0.1, None, True, '0.5'])
def test_dropout_that_is_not_a_probability_is_refused(layer, p):
    # As PyG's F.dropout, in training and in evaluation; never a silent "drop all" or "drop none"
    conv = layer(5, 4, dropout=p)
    x, edge_index = torch.randn(6, 5), torch.tensor([[0, 1, 2], [1, 2, 3]])
    for mode in (True, False):
        with pytest.raises(ValueError, match='dropout probability has to be between 0 and 1'):
            conv.train(mode)(x, edge_index)


@pytest.mark.parametrize('add_self_loops', [True, False])
@pytest.mark.parametrize('layer', [GATConv, GATv2Conv])
def test_the_sizes_of_pygs_edge_index_are_read(layer, add_self_loops):
    # PyG counts the targets from a PyG EdgeIndex's own sizes (not from size, which then only
    # says for how many nodes self loops are added), grown by the loops; else from size, the
    # targets' features, or the sources: the same rows, attention and errors, each way
    pytest.importorskip('torch_geometric')
    from torch_geometric import EdgeIndex
    import torch_geometric.nn
    torch.manual_seed(0)
    pairs = torch.stack([torch.randint(0, 20, (50,)), torch.randint(0, 7, (50,))])
    x_src, x_dst = torch.randn(20, 5), torch.randn(7, 5)
    inputs = [x_src, (x_src, x_dst)] + ([(x_src, None)] if layer is GATConv else [])
    indices = [pairs] + [EdgeIndex(pairs, sparse_size=s) for s in
                         [(20, 7), None, (20, None), (None, 7)]]
    indices.append(EdgeIndex(pairs, sparse_size=(20, 7)).sort_by('col')[0])
    # A sparse adjacency's shape says the sizes, whatever size says
    adj_t = torch.sparse_coo_tensor(pairs.flip(0), torch.ones(50), (7, 20)).coalesce()
    indices += [adj_t, adj_t.to_sparse_csr()]
    # (PyG's self loops take min(size), so a size with a None only without them)
    sizes = [None] if layer is GATv2Conv else \
        [None, (20, 7), (20, 20)] + ([] if add_self_loops else [(20, None)])
    pyg = getattr(torch_geometric.nn, layer.__name__)(5, 4, heads=2,
                                                      add_self_loops=add_self_loops)
    ours = layer(5, 4, heads=2, add_self_loops=add_self_loops, chunk_size=8)
    ours.load_state_dict(pyg.state_dict())
    for x, edge_index, size in itertools.product(inputs, indices, sizes):
        kwargs = dict(return_attention_weights=True)
        if size is not None:
            kwargs['size'] = size
        try:
            out_p, (index_p, alpha_p) = pyg(x, edge_index, **kwargs)
        except (ValueError, IndexError):
            with pytest.raises((ValueError, IndexError)):
                ours(x, edge_index, **kwargs)
            continue
        out, (index, alpha) = ours(x, edge_index, **kwargs)
        torch.testing.assert_close(out, out_p)
        if index.layout == torch.strided:
            assert torch.equal(index, index_p)
        else:
            # An adjacency comes back holding the attention
            torch.testing.assert_close(index.to_dense(), index_p.to_dense())
        torch.testing.assert_close(alpha, alpha_p)
    # Self loops (min(size)) for more nodes than there are, which PyG finds out of range
    if add_self_loops and layer is GATConv:
        with pytest.raises(ValueError, match='self loops of 30 nodes, but there are 20'):
            ours(x_src, EdgeIndex(pairs), size=(30, 30))


@pytest.mark.parametrize('layer', [GATConv, GATv2Conv])
def test_jittable_is_pygs_no_op(layer):
    # PyG's jittable, which old code still calls, warns and gives the module itself
    pytest.importorskip('torch_geometric')
    import torch_geometric.nn
    for conv in (getattr(torch_geometric.nn, layer.__name__)(5, 4), layer(5, 4),
                 message_passing_class(layer)(5, 4)):
        with pytest.warns(UserWarning, match='jittable'):
            assert conv.jittable() is conv


@pytest.mark.parametrize('add_self_loops', [True, False])
@pytest.mark.parametrize('layer', [GATConv, GATv2Conv])
def test_edge_features_of_another_dtype_are_refused_as_pyg_refuses_them(layer, add_self_loops):
    # PyG's lin_edge takes only the layer's dtype (integers made float by the self loops' mean
    # included), and under autocast float32 and half precision: ours takes the same, no more
    pytest.importorskip('torch_geometric')
    import torch_geometric.nn
    torch.manual_seed(0)
    pyg = getattr(torch_geometric.nn, layer.__name__)(5, 4, heads=2, edge_dim=3,
                                                      add_self_loops=add_self_loops)
    ours = layer(5, 4, heads=2, edge_dim=3, add_self_loops=add_self_loops)
    ours.load_state_dict(pyg.state_dict())
    x, edge_index = torch.randn(10, 5), torch.randint(0, 10, (2, 30))
    for dtype, autocast in itertools.product(
            [torch.float32, torch.float64, torch.bfloat16, torch.int64], [False, True]):
        edge_attr = (torch.randn(30, 3) * 3).to(dtype)
        with torch.autocast('cpu', enabled=autocast):
            try:
                out_p = pyg(x, edge_index, edge_attr)
            except RuntimeError:
                with pytest.raises(ValueError, match=f'edge_attr is {dtype}'):
                    ours(x, edge_index, edge_attr)
                continue
            torch.testing.assert_close(ours(x, edge_index, edge_attr), out_p,
                                       atol=2e-2 if autocast else 1e-5, rtol=1e-2)


@pytest.mark.parametrize('layer', [GATConv, GATv2Conv])
def test_edge_features_of_another_width_are_refused(layer):
    conv = layer(5, 4, heads=2, edge_dim=3)
    x, edge_index = torch.randn(6, 5), torch.tensor([[0, 1, 2], [1, 2, 3]])
    for edge_attr, width in ((torch.randn(3, 2), 2), (torch.randn(3), 1)):
        with pytest.raises(ValueError, match=f"edge_attr has {width} features per edge, but "
                                             "the layer's edge_dim is 3"):
            conv(x, edge_index, edge_attr)
    # Edge features with a dimension too many (which PyG's layers take where the middle one
    # is 1) are named by their shape, not by the width of a dimension
    with pytest.raises(ValueError, match=r'^edge_attr must be \[n_edges, edge_dim\] \(or '
                                         r'\[n_edges\] with edge_dim 1\), got a tensor of '
                                         r'shape \[3, 1, 3\]$'):
        conv(x, edge_index, torch.randn(3, 1, 3))


def test_size_given_as_a_tensor_matches_pyg():
    # PyG's size may be a tensor [2] (or NumPy's numbers): read as the pair of ints it holds
    pytest.importorskip('torch_geometric')
    import numpy
    pyg, ours = make_pair(in_channels=(5, 6), residual=True)
    (x_src, _), edge_index, _ = graph(30, 12)
    for size in (torch.tensor([30, 12]), numpy.array([30, 12])):
        out, out_p = ours((x_src, None), edge_index, size=size), \
            pyg((x_src, None), edge_index, size=size)
        torch.testing.assert_close(out, out_p, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize('layer', [GATConv, GATv2Conv])
def test_dropout_given_as_a_tensor_is_its_number(layer):
    # PyG's F.dropout takes a tensor of one number: the same dropout, in training as in PyG
    pytest.importorskip('torch_geometric')
    pyg, ours = test_gatv2_conv.make_pair(layer=layer, dropout=torch.tensor(0.4))
    x, edge_index, _ = graph()
    alphas = []
    for conv in (pyg, ours):
        torch.manual_seed(5)
        alphas.append(conv(x, edge_index, return_attention_weights=True)[1][1])
    torch.testing.assert_close(alphas[1], alphas[0])
