"""Tests of the two-layer model: its shape, and the same function with every attention layer."""

import pytest
import torch

from conftest import small_planetoid
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer
from labml_gat.model import TwoLayerGAT

DENSE_AND_EDGES = {'gatv2': (GraphAttentionV2Layer, EdgeGraphAttentionV2Layer),
                   'gat': (GraphAttentionLayer, EdgeGraphAttentionLayer)}


def test_the_papers_model():
    """K heads of F' features concatenated, then one averaged head with a score per class."""
    model = TwoLayerGAT(EdgeGraphAttentionV2Layer, 20, 3, n_heads=2, n_hidden=4, dropout=0.6)
    assert model.layer1.n_heads == 2 and model.layer1.out_features == 8 and model.layer1.is_concat
    assert model.layer1.in_features == 20 and model.layer1.bias is not None
    assert model.output.n_heads == 1 and not model.output.is_concat and model.output.out_features == 3
    assert model.output.in_features == 8 and model.output.bias is not None
    assert isinstance(model.activation, torch.nn.ELU)
    # The same dropout on the inputs of both layers and on both layers' attention
    assert {model.input_dropout.p, model.dropout.p, model.layer1.dropout.p, model.output.dropout.p} == {0.6}


def test_shapes(generator):
    data = small_planetoid(generator)
    model = TwoLayerGAT(EdgeGraphAttentionV2Layer, 20, 3, n_heads=2, n_hidden=4, dropout=0.6)
    assert model(data.x, data.edge_index_with_self_loops()).shape == (30, 3)
    dense = TwoLayerGAT(GraphAttentionV2Layer, 20, 3, n_heads=2, n_hidden=4, dropout=0.6)
    assert dense(data.x, data.adjacency()).shape == (30, 3)


def test_share_weights_only_for_gatv2():
    model = TwoLayerGAT(EdgeGraphAttentionV2Layer, 5, 3, 2, 4, 0.6, share_weights=True)
    assert model.layer1.share_weights and model.output.share_weights
    assert model.layer1.linear_l is model.layer1.linear_r
    # GAT has no such option: it is not passed on
    model = TwoLayerGAT(EdgeGraphAttentionLayer, 5, 3, 2, 4, 0.6, share_weights=True)
    assert not hasattr(model.layer1, 'share_weights')


@pytest.mark.parametrize('layer', ['gatv2', 'gat'])
def test_dense_and_edge_layers_give_the_same_model(generator, layer):
    """The same weights give the same logits and gradients with the dense and the edge-list layers."""
    data = small_planetoid(generator)
    dense_cls, edges_cls = DENSE_AND_EDGES[layer]
    torch.manual_seed(0)
    dense = TwoLayerGAT(dense_cls, 20, 3, 2, 4, 0.6).eval()
    edges = TwoLayerGAT(edges_cls, 20, 3, 2, 4, 0.6).eval()
    assert dense.state_dict().keys() == edges.state_dict().keys()
    edges.load_state_dict(dense.state_dict())
    out_dense = dense(data.x, data.adjacency(self_loops=True))
    out_edges = edges(data.x, data.edge_index_with_self_loops())
    torch.testing.assert_close(out_dense, out_edges)
    out_dense.square().sum().backward()
    out_edges.square().sum().backward()
    for (name, a), b in zip(dense.named_parameters(), edges.parameters()):
        torch.testing.assert_close(b.grad, a.grad, msg=name)


def test_one_graph_or_one_per_layer(generator):
    """A pair of graphs gives each layer its own; the same graph twice is the single graph."""
    data = small_planetoid(generator)
    model = TwoLayerGAT(EdgeGraphAttentionV2Layer, 20, 3, 2, 4, 0.6).eval()
    graph = data.edge_index_with_self_loops()
    out = model(data.x, graph)
    torch.testing.assert_close(model(data.x, (graph, graph)), out)
    torch.testing.assert_close(model(data.x, [graph, graph]), out)
    # Self loops only in the second layer: a different function
    loops = torch.arange(data.num_nodes).expand(2, -1)
    assert not torch.allclose(model(data.x, (loops, graph)), out)


def test_dropout_only_in_training(generator):
    data = small_planetoid(generator)
    model = TwoLayerGAT(EdgeGraphAttentionLayer, 20, 3, 2, 4, 0.5)
    graph = data.edge_index_with_self_loops()
    model.eval()
    torch.testing.assert_close(model(data.x, graph), model(data.x, graph))
    model.train()
    assert not torch.allclose(model(data.x, graph), model(data.x, graph))


@pytest.mark.parametrize('training', [False, True])
def test_the_layers_in_the_papers_order(generator, training):
    """The model is dropout, the first layer on the first graph, ELU, dropout, the output layer on
    the second graph, in that order: the ELU comes before the dropout (it does not commute with the
    dropout's scale 1 / (1 - p)), and each layer gets its own graph of a pair."""
    data = small_planetoid(generator)
    model = TwoLayerGAT(EdgeGraphAttentionV2Layer, 20, 3, 2, 4, 0.5).train(training)
    graph = data.edge_index_with_self_loops()
    loops = torch.arange(data.num_nodes).expand(2, -1)
    dropout = torch.nn.functional.dropout
    for first, second in ((graph, loops), (loops, graph)):
        torch.manual_seed(1)
        out = model(data.x, (first, second))
        torch.manual_seed(1)
        h = model.layer1(dropout(data.x, 0.5, training), first)
        h = dropout(torch.nn.functional.elu(h), 0.5, training)
        torch.testing.assert_close(out, model.output(h, second))
