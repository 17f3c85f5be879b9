"""
Tests of "Making it fast": every speed-up computes the same function with the same gradients,
so each test compares a sped-up computation with the literal one.
"""

import warnings

import pytest
import torch
from torch import nn

from conftest import PLANETOID, needs_planetoid, random_edge_index, small_planetoid
from labml_gat import fast
from labml_gat.datasets import load_planetoid
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer
from labml_gat.model import TwoLayerGAT

LAYERS = {'gatv2': EdgeGraphAttentionV2Layer, 'gat': EdgeGraphAttentionLayer}
ALL_LAYERS = [EdgeGraphAttentionV2Layer, EdgeGraphAttentionLayer, GraphAttentionV2Layer,
              GraphAttentionLayer]


def model_pair(layer: type, dropout: float, share_weights: bool = False, seed: int = 0):
    """A model as built, and a sped-up copy with the same weights."""
    torch.manual_seed(seed)
    plain = TwoLayerGAT(layer, 20, 3, 2, 4, dropout, share_weights=share_weights)
    with torch.no_grad():
        for module in (plain.layer1, plain.output):
            module.bias.normal_()
    torch.manual_seed(seed)
    sped_up = fast.speed_up(TwoLayerGAT(layer, 20, 3, 2, 4, dropout, share_weights=share_weights))
    sped_up.load_state_dict(plain.state_dict())
    return plain, sped_up


def graph_for(layer: type, data) -> torch.Tensor:
    if issubclass(layer, (EdgeGraphAttentionV2Layer, EdgeGraphAttentionLayer)):
        return data.edge_index_with_self_loops()
    return data.adjacency(self_loops=True)


def gradients(model: nn.Module) -> dict:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


# ## `speed_up`

@pytest.mark.parametrize('layer, share_weights', [(EdgeGraphAttentionV2Layer, False),
                                                  (EdgeGraphAttentionV2Layer, True),
                                                  (EdgeGraphAttentionLayer, False),
                                                  (GraphAttentionV2Layer, False)])
def test_speed_up_swaps_modules_and_keeps_the_weights(layer, share_weights):
    torch.manual_seed(0)
    model = TwoLayerGAT(layer, 20, 3, 2, 4, 0.6, share_weights=share_weights)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    parameters = dict(model.named_parameters())
    rng = torch.get_rng_state()
    assert fast.speed_up(model) is model
    # No random numbers drawn, the same parameters (the very same tensors), the same state_dict
    assert torch.equal(torch.get_rng_state(), rng)
    assert dict(model.named_parameters()).keys() == parameters.keys()
    assert all(p is parameters[name] for name, p in model.named_parameters())
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[name], value) for name, value in state.items())
    # Dropout everywhere is the fast kind, with the same p
    assert type(model.input_dropout) is fast.SparseInputDropout
    for module in (model.dropout, model.layer1.dropout, model.output.dropout):
        assert type(module) is fast.FastDropout and module.p == 0.6
    # Only the first layer's linear maps take sparse input; shared weights stay one module
    maps = [m for m in model.layer1.children() if isinstance(m, nn.Linear)]
    assert maps and all(isinstance(m, fast.SparseInputLinear) for m in maps)
    assert not any(isinstance(m, fast.SparseInputLinear) for m in model.output.modules())
    if share_weights:
        assert model.layer1.linear_l is model.layer1.linear_r


@pytest.mark.parametrize('layer', ALL_LAYERS, ids=lambda c: c.__name__)
def test_speed_up_without_dropout_is_the_same_function(generator, layer):
    """Dropout off (p = 0 or eval mode): the same outputs and gradients, sparse features or dense."""
    data = small_planetoid(generator)
    graph = graph_for(layer, data)
    plain, sped_up = model_pair(layer, dropout=0.0)
    out = plain(data.x, graph)
    out_fast = sped_up(fast.to_sparse_csr(data.x), graph)
    torch.testing.assert_close(out_fast, out)
    weight = torch.randn(out.shape, generator=generator)
    (out * weight).sum().backward()
    (out_fast * weight).sum().backward()
    expected = gradients(plain)
    for name, grad in gradients(sped_up).items():
        torch.testing.assert_close(grad, expected[name], msg=name)
    # In eval mode, with p > 0, it draws nothing at all
    plain, sped_up = model_pair(layer, dropout=0.6)
    plain.eval(), sped_up.eval()
    rng = torch.get_rng_state()
    with torch.no_grad():
        torch.testing.assert_close(sped_up(fast.to_sparse_csr(data.x), graph), plain(data.x, graph))
    assert torch.equal(torch.get_rng_state(), rng)


class Recording(nn.Module):
    """Wraps a dropout module and records the factor it applied to every entry, as a dense tensor."""

    def __init__(self, dropout: nn.Module):
        super().__init__()
        self.inner = dropout
        self.masks = []

    def forward(self, x):
        out = self.inner(x)
        if x.layout == torch.sparse_csr:
            assert torch.equal(out.col_indices(), x.col_indices())
            mask = torch.sparse_csr_tensor(x.crow_indices(), x.col_indices(), out.values() / x.values(),
                                           x.shape, check_invariants=False).to_dense()
        else:
            mask = torch.where(x != 0, out / x, 0.0)
        self.masks.append(mask.detach())
        return out


class Replaying(nn.Module):
    """Applies recorded dropout factors, in order."""

    def __init__(self, masks: list):
        super().__init__()
        self.masks = list(masks)

    def forward(self, x):
        return x * self.masks.pop(0)


DROPOUT_PLACES = [(), ('layer1',), ('output',)]


@pytest.mark.filterwarnings('ignore:Sparse CSR tensor support is in beta')
@pytest.mark.parametrize('layer', ALL_LAYERS, ids=lambda c: c.__name__)
def test_speed_up_with_dropout_is_the_same_function_under_the_same_draws(generator, layer):
    """
    In training, with dropout: the sped-up model's dropout draws its own random numbers, so the two
    models are compared under the *same* draws: those of the fast dropout, recorded, then replayed
    in the model as built. Outputs and gradients agree over two steps (the second reuses the sorted
    transpose of the sparse features).
    """
    data = small_planetoid(generator)
    graph = graph_for(layer, data)
    plain, sped_up = model_pair(layer, dropout=0.5)
    places = {'input_dropout': (sped_up, plain), 'dropout': (sped_up, plain),
              'layer1.dropout': (sped_up.layer1, plain.layer1),
              'output.dropout': (sped_up.output, plain.output)}
    x = fast.to_sparse_csr(data.x)
    for step in range(2):
        recorders = {}
        for name, (fast_owner, _) in places.items():
            attribute = name.split('.')[-1]
            inner = getattr(fast_owner, attribute)
            inner = inner.inner if isinstance(inner, Recording) else inner
            recorders[name] = Recording(inner)
            setattr(fast_owner, attribute, recorders[name])
        sped_up.zero_grad(), plain.zero_grad()
        torch.manual_seed(step)
        out_fast = sped_up(x, graph)
        for name, (_, plain_owner) in places.items():
            setattr(plain_owner, name.split('.')[-1], Replaying(recorders[name].masks))
        out = plain(data.x, graph)
        # Dropout did drop something
        assert any((mask == 0).any() for recorder in recorders.values() for mask in recorder.masks)
        torch.testing.assert_close(out_fast, out)
        weight = torch.randn(out.shape, generator=generator)
        (out * weight).sum().backward()
        (out_fast * weight).sum().backward()
        expected = gradients(plain)
        for name, grad in gradients(sped_up).items():
            torch.testing.assert_close(grad, expected[name], msg=name)


# ## Dropout from random bits

def test_fast_dropout_keeps_one_minus_p():
    """The keep rate is 1 - round(p 2^15) / 2^15, kept entries are scaled by 1 / (1 - p), eval is the identity."""
    torch.manual_seed(0)
    dropout = fast.FastDropout(0.6)
    assert dropout.threshold == round(0.6 * 2 ** 15) and 'p=0.6' in repr(dropout)
    x = torch.ones(1_000_000)
    dropout.eval()
    assert dropout(x) is x
    dropout.train()
    out = dropout(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert set(out.unique().tolist()) == {0.0, 2.5}
    keep = 1 - round(0.6 * 2 ** 15) / 2 ** 15
    assert abs(keep - 0.4) < 2 ** -16
    # 1e6 draws: the standard deviation of the rate is 0.0005
    assert (out != 0).float().mean().item() == pytest.approx(keep, abs=0.002)
    assert fast.FastDropout(0.0).train()(x) is x
    assert (fast.FastDropout(0.1).train()(x) != 0).float().mean().item() == pytest.approx(0.9, abs=0.002)
    # A rate below half a step of 2^-15 rounds to a threshold of 0: every entry is kept
    assert torch.count_nonzero(fast.FastDropout(1e-6).train()(torch.ones(2 ** 20))) == 2 ** 20


def test_fast_dropout_is_unbiased_and_has_dropout_gradients():
    torch.manual_seed(1)
    x = torch.rand(1000, 1000, requires_grad=True)
    out = fast.FastDropout(0.6).train()(x)
    # The mean is kept: E[out] = x
    assert out.sum().item() == pytest.approx(x.sum().item(), rel=0.01)
    out.sum().backward()
    # The gradient is the mask itself: 0 where dropped, 1 / (1 - p) where kept
    torch.testing.assert_close(x.grad, (out != 0) * 2.5)
    # Independent draws along every dimension, on float64 too
    y = fast.FastDropout(0.5).train()(torch.ones(4, 3, 1000, dtype=torch.float64))
    assert y.dtype == torch.float64 and not torch.equal(y[0], y[1])


@pytest.mark.filterwarnings('ignore:Sparse CSR tensor support is in beta')
def test_sparse_input_dropout_is_dropout(generator):
    data = small_planetoid(generator, n_nodes=200, n_features=50)
    x = fast.to_sparse_csr(data.x)
    dropout = fast.SparseInputDropout(0.5)
    dropout.eval()
    assert dropout(x) is x
    assert fast.SparseInputDropout(0.0).train()(x) is x
    dropout.train()
    dropped = dropout(x)
    # The sparsity pattern is shared, not copied
    assert dropped.layout == torch.sparse_csr and dropped.col_indices() is not None
    assert torch.equal(dropped.crow_indices(), x.crow_indices())
    dropped = dropped.to_dense()
    dense = data.x
    # Zeros stay zeros; every non-zero is dropped or scaled by 1 / (1 - p).
    assert torch.all(dropped[dense == 0] == 0)
    kept = dropped[dense != 0] / dense[dense != 0]
    assert set(kept.unique().tolist()) <= {0.0, 2.0}
    assert 0.4 < (kept == 0).float().mean().item() < 0.6


# ## A faster gradient for the sparse input

@pytest.mark.filterwarnings('ignore:Sparse CSR tensor support is in beta')
@pytest.mark.parametrize('bias', [False, True])
def test_sparse_input_linear_matches_linear(generator, bias):
    """Same output and gradients as `nn.Linear`, through three sparsity patterns and back: the
    third has empty last columns, words that no node of a receptive field holds."""
    linear = nn.Linear(20, 6, bias=bias)
    sparse = fast.SparseInputLinear(linear)
    assert sparse.weight is linear.weight and sparse.bias is linear.bias
    assert sparse.in_features == 20 and sparse.out_features == 6
    features = [small_planetoid(generator, n_nodes=n).x for n in (30, 45, 30)]
    features[2][:, -3:] = 0
    patterns = [fast.to_sparse_csr(x) for x in features]
    for x in patterns + patterns[:1]:
        g = torch.randn(x.shape[0], 6, generator=generator)
        expected_out = linear(x.to_dense())
        linear.zero_grad()
        (expected_out * g).sum().backward()
        expected = {name: p.grad.clone() for name, p in linear.named_parameters()}
        linear.zero_grad()
        out = sparse(x)
        (out * g).sum().backward()
        torch.testing.assert_close(out, expected_out)
        for name, p in linear.named_parameters():
            torch.testing.assert_close(p.grad, expected[name], msg=name)
        assert sparse.pattern[1].data_ptr() == x.col_indices().data_ptr()
        # The pattern kept is that of X^T, whole: a crow_indices one short per empty last
        # column would be read past its end, with whatever lies there
        _, _, order, crow_t, col_t = sparse.pattern
        x_t = torch.sparse_csr_tensor(crow_t, col_t, x.values()[order], x.shape[::-1],
                                      check_invariants=True)
        assert torch.equal(x_t.to_dense(), x.to_dense().T)
    # Dropout keeps the pattern, so the sorted transpose is reused
    pattern = sparse.pattern
    sparse(fast.SparseInputDropout(0.5).train()(patterns[0]))
    assert sparse.pattern is pattern
    # Without gradients, and for a dense input, it is the plain `nn.Linear`
    with torch.no_grad():
        torch.testing.assert_close(sparse(patterns[1]), linear(patterns[1].to_dense()))
    assert sparse.pattern is pattern
    dense = torch.randn(5, 20, generator=generator)
    torch.testing.assert_close(sparse(dense), linear(dense))


@pytest.mark.filterwarnings('ignore:Sparse CSR tensor support is in beta')
def test_sparse_matmul_gradient_is_checked_numerically(generator):
    x = (torch.rand(7, 5, generator=generator) < 0.4).double() * torch.rand(7, 5, generator=generator)
    x_csr = x.to_sparse_csr()
    weight = torch.randn(3, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda w: fast.SparseMatmul.apply(x_csr, x.T.to_sparse_csr(), w), (weight,))
    torch.testing.assert_close(fast.SparseMatmul.apply(x_csr, x.T.to_sparse_csr(), weight), x @ weight.T)


def test_to_sparse_csr_is_silent(generator):
    x = (torch.rand(6, 4, generator=generator) < 0.5).float()
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        csr = fast.to_sparse_csr(x)
    assert csr.layout == torch.sparse_csr and torch.equal(csr.to_dense(), x)


def test_csr_rows_gathers_rows(generator):
    x = (torch.rand(12, 7, generator=generator) < 0.3).float() * torch.rand(12, 7, generator=generator)
    x[4] = 0
    rows = torch.tensor([4, 0, 11, 0, 5])
    gathered = fast.csr_rows(fast.to_sparse_csr(x), rows)
    assert gathered.layout == torch.sparse_csr and gathered.shape == (5, 7)
    assert torch.equal(gathered.to_dense(), x[rows])
    assert fast.csr_rows(fast.to_sparse_csr(x), torch.arange(0)).shape == (0, 7)


# ## Receptive fields

def test_receptive_field_layers(generator):
    """The last layer's edges end at the targets; each layer's sources are the next layer's outputs."""
    edge_index = random_edge_index(50, 120, generator)
    targets = torch.tensor([7, 3, 40])
    field = fast.receptive_field(edge_index, targets, 50, n_layers=3)
    assert torch.equal(field.nodes[field.targets], targets)
    assert torch.equal(field.nodes, field.nodes.unique())
    first, second, last = field.edges
    assert set(last[1].tolist()) <= set(field.targets.tolist())
    assert set(second[1].tolist()) == set(last[0].tolist()) | set(field.targets.tolist())
    assert set(first[1].tolist()) == set(second[0].tolist()) | set(second[1].tolist())
    # Every edge into a needed node is kept: the in-degrees match the full graph's
    in_degree = torch.bincount(edge_index[1], minlength=50)
    for edges in field.edges:
        targets_here = field.nodes[edges[1].unique()]
        assert torch.equal(torch.bincount(field.nodes[edges[1]], minlength=50)[targets_here],
                           in_degree[targets_here])


@pytest.mark.parametrize('layer', ['gatv2', 'gat'])
@pytest.mark.parametrize('speed_up', [False, True])
def test_receptive_field_gives_the_full_graph_outputs_and_gradients(generator, layer, speed_up):
    """At the targets, the receptive field computes what the whole graph computes, gradients included."""
    data = small_planetoid(generator, n_nodes=80, n_edges=80)
    edge_index = data.edge_index_with_self_loops()
    x = fast.to_sparse_csr(data.x)
    # Some training nodes, not in order
    targets = data.train_mask.nonzero().squeeze(1)[[7, 2, 11, 0, 20]]
    field_x, field_graphs, index = fast.receptive_field_inputs(x, edge_index, targets)
    assert field_x.layout == torch.sparse_csr and field_x.shape[0] < data.num_nodes
    assert len(field_graphs) == 2 and field_graphs[1].shape[1] < field_graphs[0].shape[1]
    # Dropout off, so that neither computation draws anything random
    full, part = model_pair(LAYERS[layer], dropout=0.0)
    if speed_up:
        full = fast.speed_up(full)
    else:
        part = TwoLayerGAT(LAYERS[layer], 20, 3, 2, 4, 0.0)
        part.load_state_dict(full.state_dict())
        x, field_x = data.x, field_x.to_dense()
    full_logits = full(x, edge_index)[targets]
    part_logits = part(field_x, field_graphs)[index]
    torch.testing.assert_close(part_logits, full_logits)
    full_logits.square().sum().backward()
    part_logits.square().sum().backward()
    for (name, a), b in zip(full.named_parameters(), part.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


@needs_planetoid
def test_receptive_field_sizes_on_cora():
    """The sizes quoted in `ReceptiveField`'s documentation."""
    data = load_planetoid('cora', PLANETOID)
    edge_index = data.edge_index_with_self_loops()
    assert edge_index.shape[1] == 13264
    assert round(100 * (data.x != 0).float().mean().item(), 1) == 1.3
    sizes = {}
    for split, mask in (('train', data.train_mask), ('valid', data.val_mask)):
        field = fast.receptive_field(edge_index, mask.nonzero().squeeze(1), data.num_nodes, n_layers=2)
        sizes[split] = (len(field.nodes), field.edges[0].shape[1], field.edges[1].shape[1])
    assert sizes['train'] == (1664, 4478, 778)
    assert sizes['valid'][1:] == (8614, 2448)
