"""Tests of DictionaryLookup (`labml_gat.lookup` and `experiments/dictionary_lookup.py`): the
generator and its split, the dense layer on a batch against the edge-list layer, GAT's
static
ranking, a short training run, the command line and its one-line errors, and the sweep's record."""

import copy
import inspect
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO, load_experiment, sigint_as_in_a_terminal
from labml_gat import lookup, training
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer
from labml_gat.lookup import LookupModel, make_task, train, union_edge_index
from labml_gat.settings import UsageError

SCRIPT = REPO / 'experiments' / 'dictionary_lookup.py'
RECORD = REPO / 'experiments' / 'results' / 'dictionary_lookup_sweep.json'

# A small setting in which one GATv2 head fits the training set within a few epochs
# (every epoch one pass, and any gain is progress)
SMOKE = dict(k=8, max_examples=2000, batch_size=64, d_model=64, learning_rate=1e-2, epochs=20,
             seed=0, epoch_size=0, min_progress=0.0, patience=30)


def load_script():
    """The experiment script as a module, by its file (it is a script, not a package),
    registered under its name as an import would (the seeds' summary names its file)."""
    return load_experiment('dictionary_lookup')


def pairs(perms: torch.Tensor) -> set:
    """The (key, value) pairs (i, perm[i]) that occur in the permutations `perms`."""
    return {(i, v) for perm in perms.tolist() for i, v in enumerate(perm)}


# ## The task

@pytest.mark.parametrize('k', [2, 3, 5, 7])
def test_all_permutations_when_few(k):
    task = make_task(k, seed=0)
    perms = torch.cat([task.train, task.test])
    assert len(perms) == math.factorial(k)
    assert {tuple(p) for p in perms.tolist()} == set(itertools.permutations(range(k)))


def test_all_permutations_when_as_many_as_the_limit():
    """k! equal to `max_examples` is few enough: every permutation once, none drawn at random."""
    task = make_task(5, max_examples=120)
    perms = torch.cat([task.train, task.test])
    assert sorted(map(tuple, perms.tolist())) == list(itertools.permutations(range(5)))


@pytest.mark.parametrize('k', [8, 10, 20])
def test_random_permutations_when_many(k):
    task = make_task(k, seed=0)
    perms = torch.cat([task.train, task.test])
    assert perms.shape == (32000, k)
    assert (perms.sort(dim=1).values == torch.arange(k)).all(), 'every row must be a permutation'


@pytest.mark.parametrize('k', [3, 5, 8, 10, 20])
def test_split_never_leaks_a_pair(k):
    task = make_task(k, seed=1)
    assert task.allowed.sum().item() == int(0.8 ** (1 / k) * k * k)
    allowed = {(i, v) for i, v in task.allowed.nonzero().tolist()}
    # Every training graph uses allowed pairs only; every test graph has one that is not
    assert pairs(task.train) <= allowed
    for perm in task.test.tolist():
        assert any((i, v) not in allowed for i, v in enumerate(perm))
    n_examples = math.factorial(k) if math.factorial(k) <= 32000 else 32000
    assert len(task.train) + len(task.test) == n_examples


def test_split_is_about_80_20():
    for k, low, high in ((10, 0.65, 0.8), (20, 0.7, 0.85)):
        task = make_task(k, seed=0)
        share = len(task.train) / (len(task.train) + len(task.test))
        assert low < share < high, (k, share)


def test_deterministic_under_seed():
    a, b, c = make_task(10, seed=3), make_task(10, seed=3), make_task(10, seed=4)
    assert torch.equal(a.train, b.train) and torch.equal(a.allowed, b.allowed)
    assert not torch.equal(a.allowed, c.allowed)


def test_bad_arguments():
    with pytest.raises(ValueError, match='k must be'):
        make_task(1)
    with pytest.raises(ValueError, match='max_examples'):
        make_task(4, max_examples=0)
    with pytest.raises(ValueError, match='layer must be'):
        LookupModel(4, layer='gcn')
    with pytest.raises(ValueError, match='impl must be'):
        LookupModel(4, impl='sparse')
    with pytest.raises(ValueError, match='epochs'):
        train(3, epochs=0)
    with pytest.raises(ValueError, match='both must be non-empty'):
        train(8, max_examples=1)


def test_graph_layouts():
    """The edge list of the union: graph b's edge b k^2 + i k + j is s_j -> q_i."""
    k, n_graphs = 4, 3
    src, dst = union_edge_index(n_graphs, k)
    for b, i, j in itertools.product(range(n_graphs), range(k), range(k)):
        e = b * k * k + i * k + j
        assert (src[e].item(), dst[e].item()) == (2 * k * b + k + j, 2 * k * b + i)


# ## The dense layer on a batch computes the edge-list layer's function

def layer_pair(layer: str, n_heads: int, d: int = 16):
    """A dense layer and its edge-list twin with the same parameters."""
    torch.manual_seed(0)
    options = {'share_weights': True} if layer == 'gatv2' else {}
    dense_class, edge_class = ((GraphAttentionV2Layer, EdgeGraphAttentionV2Layer)
                               if layer == 'gatv2' else
                               (GraphAttentionLayer, EdgeGraphAttentionLayer))
    dense = dense_class(d, d, n_heads, dropout=0.0, **options)
    edges = edge_class(d, d, n_heads, dropout=0.0, **options)
    edges.load_state_dict(dense.state_dict())
    return dense, edges


@pytest.mark.parametrize('layer, n_heads', [('gatv2', 1), ('gatv2', 4), ('gat', 1), ('gat', 4)])
def test_batched_bipartite_layer_matches_each_graph_and_edge_list(layer, n_heads):
    """
    On a batch of complete bipartite graphs, the dense layer called once on the pair (the
    key-value nodes `[B, k, d]`, the queries `[k, d]`), the same layer on each graph of
    2k nodes on its own, and the edge-list layer on the union of the graphs give the same
    outputs, attention and gradients.
    """
    k, n_graphs, d = 5, 6, 16
    dense, edges = layer_pair(layer, n_heads, d)
    h_query = torch.randn(k, d, requires_grad=True)
    h_key = torch.randn(n_graphs, k, d, requires_grad=True)

    out, attention = dense((h_key, h_query), torch.ones(k, k, dtype=torch.bool),
                           return_attention=True)
    assert out.shape == (n_graphs, k, d) and attention.shape == (n_graphs, k, k, n_heads)

    # The dense layer on each graph of 2k nodes, the queries first: query i attends to
    # every key-value node k + j
    h_graphs = torch.cat([h_query.expand(n_graphs, k, d), h_key], dim=1)
    graph_adj = torch.zeros(2 * k, 2 * k, dtype=torch.bool)
    graph_adj[:k, k:] = True
    for b in range(n_graphs):
        one, one_attention = dense(h_graphs[b], graph_adj, return_attention=True)
        torch.testing.assert_close(out[b], one[:k])
        torch.testing.assert_close(attention[b], one_attention[:k, k:])

    # The edge-list twin on the disjoint union of the graphs
    flat, flat_attention = edges(h_graphs.reshape(-1, d), union_edge_index(n_graphs, k),
                                 return_attention=True)
    torch.testing.assert_close(out, flat.view(n_graphs, 2 * k, -1)[:, :k])
    torch.testing.assert_close(attention, flat_attention.view(n_graphs, k, k, -1))

    # Gradients of a loss on the queries, for the inputs and every parameter
    weights = torch.randn_like(out)
    grads = torch.autograd.grad((out * weights).sum(), [h_query, h_key, *dense.parameters()])
    edge_grads = torch.autograd.grad((flat.view(n_graphs, 2 * k, -1)[:, :k] * weights).sum(),
                                     [h_query, h_key, *edges.parameters()])
    for a, b in zip(grads, edge_grads):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('layer', ['gatv2', 'gat'])
def test_training_runs_the_layers_forward(layer, monkeypatch):
    """
    The model has no attention code of its own: training calls the dense layer's
    `forward` on every batch, and a layer that answers differently changes the logits.
    """
    layer_class = {'gatv2': GraphAttentionV2Layer, 'gat': GraphAttentionLayer}[layer]
    calls = []
    forward = layer_class.forward

    def counting_forward(self, h, adj_mat, return_attention=False):
        calls.append((h, adj_mat))
        return forward(self, h, adj_mat, return_attention)

    monkeypatch.setattr(layer_class, 'forward', counting_forward)
    result = train(4, layer, epochs=1, batch_size=4, d_model=16, epoch_size=0)
    # One call per batch: training and testing in the epoch, then the final evaluation
    n_batches = math.ceil(result['n_train'] / 4) + math.ceil(result['n_test'] / 4)
    assert len(calls) == 2 * n_batches
    (h_key, h_query), adj_mat = calls[0]
    assert h_key.shape == (4, 4, 16) and h_query.shape == (4, 16) and adj_mat is None

    # A layer whose output is doubled changes the model's logits
    model, perms = result['model'], result['task'].train
    logits = model(perms)
    monkeypatch.setattr(layer_class, 'forward',
                        lambda self, h, adj, return_attention=False:
                        tuple(2 * x for x in forward(self, h, adj, True)))
    assert not torch.allclose(model(perms), logits)


@pytest.mark.parametrize('layer, n_heads', [('gatv2', 1), ('gat', 8)])
def test_model_dense_and_edges_agree(layer, n_heads):
    """The whole model: the same parameters give the same logits and gradients either way."""
    k = 6
    torch.manual_seed(0)
    dense = LookupModel(k, layer, n_heads, d_model=32, impl='dense')
    edges = LookupModel(k, layer, n_heads, d_model=32, impl='edges')
    edges.load_state_dict(dense.state_dict())
    perms = make_task(k, seed=0).train[:7]
    results = []
    for model in (dense, edges):
        logits, attention = model(perms, return_attention=True)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), perms.flatten())
        results.append((logits, attention, torch.autograd.grad(loss, list(model.parameters()))))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    for a, b in zip(results[0][2], results[1][2]):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize('impl', ['dense', 'edges'])
def test_model_computes_the_documented_function(impl):
    """h = ReLU(E_key[key] + E_value[value]) for every node, the queries' value the empty one, k;
    the layer from the key-value nodes to the queries; the readout U on the queries' outputs."""
    k, d = 5, 16
    torch.manual_seed(0)
    model = LookupModel(k, 'gatv2', 2, d_model=d, impl=impl)
    layer = GraphAttentionV2Layer(d, d, 2, dropout=0.0, share_weights=True)
    layer.load_state_dict(model.attention.state_dict())
    perms = make_task(k, seed=0).train[:3]
    key, value = model.key_embedding.weight, model.value_embedding.weight
    h_query = torch.relu(key[:k] + value[k])
    h_key = torch.relu(key[:k] + value[perms])
    expected = model.readout(layer((h_key, h_query), torch.ones(k, k, dtype=torch.bool)))
    torch.testing.assert_close(model(perms), expected)


def test_attention_grid():
    k = 5
    model = LookupModel(k, 'gat', 4, d_model=16)
    perms = make_task(k, seed=0).train[:6]
    logits, attention = model(perms, return_attention=True)
    assert logits.shape == (6, k, k)
    assert attention.shape == (6, k, k, 4)
    # attention[b, i, j] is query i's share on key-value node j: it sums to one over j
    torch.testing.assert_close(attention.sum(dim=2), torch.ones(6, k, 4))


def test_gat_ranks_the_keys_alike_for_every_query():
    """Static attention (the paper's Theorem 1): with one GAT head, whatever its weights, all
    queries of a graph order the key-value nodes the same way."""
    torch.manual_seed(1)
    k = 6
    model = LookupModel(k, 'gat', 1, d_model=32)
    _, attention = model(make_task(k, seed=0).train[:20], return_attention=True)
    order = attention[..., 0].argsort(dim=-1)
    assert (order == order[:, :1]).all()


# ## Training

def test_training_is_deterministic_under_seed():
    settings = dict(k=4, epochs=3, batch_size=4, d_model=16, seed=5, epoch_size=0)
    a, b = train(**settings), train(**settings)
    assert a['history'] == b['history']
    for (name, x), (_, y) in zip(a['model'].state_dict().items(),
                                 b['model'].state_dict().items()):
        assert torch.equal(x, y), name


@pytest.mark.slow
def test_each_step_is_clipped_adam_on_its_batch():
    # An epoch's running loss is that of a plain loop written out here: one Adam step a batch on
    # fresh gradients of its cross-entropy, their norm clipped to 1, in the batches' shuffled order
    task = make_task(4, seed=0)
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        model = LookupModel(4, 'gatv2', 1, d_model=16)
        models.append((model, torch.optim.Adam(model.parameters(), lr=0.05)))
    (model, optimizer), (reference, reference_optimizer) = models
    loss, _ = lookup.train_epoch(model, optimizer, task.train, 4, torch.Generator().manual_seed(3),
                                 torch.device('cpu'))
    losses = []
    for batch in lookup.batches(task.train, 4, torch.Generator().manual_seed(3)):
        reference_optimizer.zero_grad()
        step_loss = torch.nn.functional.cross_entropy(reference(batch).flatten(0, 1), batch.flatten())
        step_loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 1.0)
        reference_optimizer.step()
        losses.append((step_loss.item(), batch.numel(), norm.item()))
    # The test would prove nothing if no gradient were clipped, or there were one batch
    assert len(losses) >= 3 and max(norm for _, _, norm in losses) > 1
    total = sum(step_loss * n for step_loss, n, _ in losses) / sum(n for _, n, _ in losses)
    assert loss == pytest.approx(total, rel=1e-6)


def test_gatv2_fits_where_gat_cannot():
    """One GATv2 head fits the training graphs and looks up the right key; one GAT head, whose
    attention cannot do that (test above), stays far from fitting them on the same budget."""
    gatv2 = train(layer='gatv2', n_heads=1, **SMOKE)
    gat = train(layer='gat', n_heads=1, **SMOKE)
    assert gatv2['train_accuracy'] == 1.0
    assert gatv2['test_accuracy'] > 0.9
    assert gat['epochs'] == SMOKE['epochs']
    assert gat['train_accuracy'] < 0.5
    with torch.no_grad():
        _, attention = gatv2['model'](gatv2['task'].test[:50], return_attention=True)
    assert (attention[..., 0].argmax(dim=-1) == torch.arange(SMOKE['k'])).all()
    assert [h['epoch'] for h in gatv2['history']] == list(range(gatv2['epochs']))


def test_progress_rule():
    """
    Training stops `patience` epochs after the last epoch that removed `min_progress` of the
    training errors left, and the learning rate is halved after more than `lr_patience`
    epochs without progress: the documented rule, replayed on a run's history.
    """
    patience, lr_patience, min_progress = 4, 2, 0.2
    result = train(k=6, layer='gat', n_heads=1, d_model=16, epochs=40, patience=patience,
                   lr_patience=lr_patience, min_progress=min_progress, epoch_size=0,
                   max_examples=600, batch_size=16, learning_rate=3e-3)
    history = result['history']
    progress_error, progress_epoch, learning_rate = math.inf, 0, 3e-3
    for epoch, record in enumerate(history):
        assert record['learning_rate'] == pytest.approx(learning_rate), epoch
        error = 1 - record['train_accuracy']
        if error < (1 - min_progress) * progress_error:
            progress_error, progress_epoch = error, epoch
        if epoch - progress_epoch > lr_patience and (epoch - progress_epoch) % (
                lr_patience + 1) == 0:
            learning_rate /= 2
        if error == 0 or epoch - progress_epoch >= patience:
            break
    assert epoch == len(history) - 1 < 40
    # The weights kept are those of the best epoch, progress or not
    accuracies = [record['train_accuracy'] for record in history]
    assert result['best_epoch'] == accuracies.index(max(accuracies))


def test_batches_repeat_a_small_set_to_the_epoch_size():
    """Every example equally often, at least `epoch_size` graphs in all, the last batch partial;
    in order without a generator, in the generator's order with one."""
    perms = torch.arange(20).view(10, 2)
    for epoch_size, copies in ((0, 1), (10, 1), (25, 3), (30, 3)):
        batches = list(lookup.batches(perms, 4, torch.Generator().manual_seed(0), epoch_size))
        rows = torch.cat(batches)
        assert len(rows) == 10 * copies >= epoch_size
        assert sorted(rows.tolist()) == sorted(perms.tolist() * copies)
        assert [len(batch) for batch in batches[:-1]] == [4] * (len(batches) - 1)
        assert len(batches) == math.ceil(len(rows) / 4)
    assert torch.equal(torch.cat(list(lookup.batches(perms, 4))), perms)
    shuffled = torch.cat(list(lookup.batches(perms, 4, torch.Generator().manual_seed(1))))
    order = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(shuffled, perms[order]) and not torch.equal(shuffled, perms)


@pytest.mark.parametrize('epoch_size', [0, 10, 25])
def test_an_epoch_tells_wrap_its_number_of_batches(epoch_size):
    """The progress bar's total is the number of batches the epoch trains on."""
    task = make_task(4, seed=0)
    assert len(task.train) % 4, 'a partial last batch must be counted'
    seen = []

    def wrap(batches, n):
        batches = list(batches)
        seen.append((len(batches), n))
        return batches

    model = LookupModel(4, 'gatv2', 1, d_model=8)
    lookup.train_epoch(model, torch.optim.Adam(model.parameters()), task.train, 4,
                       torch.Generator().manual_seed(0), torch.device('cpu'), wrap, epoch_size)
    [(n_batches, n)] = seen
    assert n == n_batches


def test_the_seed_makes_the_split_the_first_weights_and_the_order(monkeypatch):
    """`seed` alone makes the task's split, the initial weights and the batches' order, and the
    caller's random state is left as it was."""
    made, orders = [], []
    model_class, train_epoch = lookup.LookupModel, lookup.train_epoch

    def make_model(*args):
        model = model_class(*args)
        made.append(copy.deepcopy(model.state_dict()))
        return model

    def epoch(model, optimizer, perms, batch_size, generator, *args):
        orders.append(generator.get_state())
        return train_epoch(model, optimizer, perms, batch_size, generator, *args)

    monkeypatch.setattr(lookup, 'LookupModel', make_model)
    monkeypatch.setattr(lookup, 'train_epoch', epoch)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    result = train(k=4, seed=3, epochs=1, d_model=8, batch_size=8, epoch_size=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(result['task'].allowed, make_task(4, seed=3).allowed)
    assert torch.equal(result['task'].train, make_task(4, seed=3).train)
    torch.manual_seed(3)
    for name, tensor in model_class(4, 'gatv2', 1, 8).state_dict().items():
        assert torch.equal(made[0][name], tensor), name
    assert torch.equal(orders[0], torch.Generator().manual_seed(3).get_state())


def scripted_training(monkeypatch, accuracies, **settings):
    """
    `train` with the training accuracy of every epoch given, and the weights after each epoch:
    every epoch still trains the model, so that the weights differ from epoch to epoch.
    """
    train_epoch, weights = lookup.train_epoch, []

    def epoch(model, *args, **kwargs):
        train_epoch(model, *args, **kwargs)
        weights.append(copy.deepcopy(model.state_dict()))
        return 1.0, accuracies[len(weights) - 1]

    monkeypatch.setattr(lookup, 'train_epoch', epoch)
    result = train(k=4, d_model=8, batch_size=8, epoch_size=0, epochs=len(accuracies),
                   **settings)
    return result, weights


def assert_weights(model, weights):
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, weights[name]), name


def test_progress_is_a_fraction_of_the_errors_left(monkeypatch):
    """
    The rule on a scripted run: an epoch makes progress when its training error is below
    (1 - min_progress) times the error of the last epoch that made progress (equal to it is
    not); the learning rate halves once more than `lr_patience` epochs in a row made none;
    training stops `patience` epochs after the last progress and keeps the weights of the first
    epoch with the best training accuracy.
    """
    errors = [0.75, 0.375, 0.25, 0.1875, 0.15625, 0.125, 0.0625, 0.03125, 0.03125, 0.09375,
              0.5, 0.0]
    # Progress at epochs 0, 2 and 6; halvings after epochs 4 and 8; the stop at epoch 10;
    # the best accuracy at epochs 7 and 8
    result, weights = scripted_training(monkeypatch, [1 - error for error in errors],
                                        learning_rate=0.01, min_progress=0.5, patience=4,
                                        lr_patience=1)
    assert result['epochs'] == 11
    assert [h['learning_rate'] for h in result['history']] == pytest.approx(
        [0.01] * 5 + [0.005] * 4 + [0.0025] * 2)
    assert result['best_epoch'] == 7
    assert_weights(result['model'], weights[7])


def test_training_stops_at_a_fitted_training_set(monkeypatch):
    result, weights = scripted_training(monkeypatch, [0.5, 1.0, 1.0], patience=5)
    assert result['epochs'] == 2 and result['best_epoch'] == 1
    assert_weights(result['model'], weights[1])


def test_a_model_that_never_answers_keeps_its_first_epoch(monkeypatch):
    result, weights = scripted_training(monkeypatch, [0.0, 0.0, 0.0, 0.0], patience=2)
    assert result['epochs'] == 3 and result['best_epoch'] == 0
    assert_weights(result['model'], weights[0])


def test_min_progress_must_be_a_fraction():
    with pytest.raises(ValueError, match='min_progress'):
        train(k=3, min_progress=1.0)


# ## The command line

# A sweep of two small models
TINY_SWEEP = ['--ks', '2', '--sweep-heads', '1', '--epochs', '1', '--d-model', '8']


def run_script(args, cwd):
    """
    The script in a subprocess, as `python experiments/dictionary_lookup.py ...` would run
    it, with labml's runs in `cwd/logs` (`LABML_GAT_LOGS`, as a user may set it).
    """
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'LABML_GAT_LOGS': str(cwd / 'logs')}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize('args, message', [
    (['--k', '0'], '--k and --ks must be at least 2'),
    (['--k', '1'], 'nothing to look up'),
    (['--n-heads', '0'], '--n-heads must be at least 1'),
    (['--n-heads', '3'], 'divide --d-model'),
    (['--device', 'cuda:99'], '--device cuda:99'),
    (['--sweep', '--ks', '5', '1'], '--ks must be at least 2'),
    (['--k', '8', '--max-examples', '1'], 'use more examples'),
    (['--min-progress', '1'], '--min-progress must be a fraction in [0, 1)'),
    (['--learning-rate', 'inf'], '--learning-rate must be positive and finite, got inf'),
    # Flags that the run would ignore; small runs, should one start
    (['--sweep', '--which-layer', *TINY_SWEEP], '--sweep and --which-layer are two different'),
    (['--record', '--k', '3', '--epochs', '1', '--d-model', '8', '--epoch-size', '0'],
     'a run of one model does not read --record; it is for --sweep and --which-layer'),
    (['--sweep', '--record', '--results', '.', *TINY_SWEEP],
     "--record writes into the project's records and --results into another folder"),
    (['--sweep', '--summary-json', 's.json', *TINY_SWEEP],
     '--sweep does not read --summary-json; it is for a run of one model'),
    (['--which-layer', '--epochs', '1'],
     '--which-layer does not read --epochs; it is for a run of one model and --sweep'),
    # The seeds, checked as the Cora experiments check them
    (['--seeds', '0'], '--seeds must be at least 1, got 0'),
    (['--seeds', '2', '--jobs', '0'], '--jobs must be at least 1, got 0'),
    (['--jobs', '2'], 'a run without --seeds trains one seed and does not read --jobs'),
    (['--sweep', '--seeds', '2', *TINY_SWEEP], '--sweep does not read --seeds; it is for a run of one model'),
    # Too large for any memory: refused from the sizes, before a task or a run is made
    (['--k', '100000', '--quiet'],
     '--k 100000: a batch of 32 graphs of 100000 x 100000 (query, key) pairs'),
    (['--sweep', '--ks', '5', '100000', '--quiet'], 'k = 100000 of --ks: a batch of 32'),
    (['--k', '20', '--max-examples', '10000000000'],
     '--k 20: 10000000000 examples of 20 keys (--max-examples)'),
])
def test_usage_errors_are_one_line_and_start_no_run(tmp_path, args, message):
    result = run_script(args, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('dictionary_lookup.py: error: ') and message in lines[0]
    assert 'Traceback' not in result.stderr and result.stdout == ''
    # Checked before labml creates a run or anything is written
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_device_cuda_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    result = run_script(['--device', 'cuda'], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'dictionary_lookup.py: error: --device cuda: PyTorch finds no CUDA device here']
    assert not (tmp_path / 'logs').exists()


@pytest.mark.slow
def test_command_line_run_writes_summary_and_labml_run(tmp_path):
    summary_path = tmp_path / 'summary.json'
    result = run_script(['--layer', 'gat', '--n-heads', '2', '--k', '3', '--epochs', '2',
                         '--batch-size', '2', '--d-model', '8', '--quiet',
                         '--epoch-size', '0', '--summary-json', str(summary_path)],
                        tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(summary_path.read_text())
    settings, [run] = summary['settings'], summary['runs']
    assert (settings['k'], settings['layer'], settings['n_heads']) == (3, 'gat', 2)
    assert run['n_train'] + run['n_test'] == 6
    assert 1 <= len(run['history']) <= 2
    # The run and its settings are kept by labml, in the folder `LABML_GAT_LOGS` names
    run_folder = next((tmp_path / 'logs' / 'dictionary_lookup').iterdir())
    assert (run_folder / 'configs.yaml').is_file()


def test_summary_of_a_diverged_model_is_strict_json(tmp_path, labml_logs):
    """A loss that is NaN is written as null, which every JSON reader takes."""
    def refuse(constant):
        raise ValueError(f'{constant} is not JSON')

    path = tmp_path / 'summary.json'
    load_script().main(['--k', '3', '--epochs', '2', '--batch-size', '2', '--d-model', '8',
                        '--epoch-size', '0', '--quiet', '--learning-rate', '1e30',
                        '--summary-json', str(path)])
    summary = json.loads(path.read_text(), parse_constant=refuse)
    assert [epoch['loss'] for epoch in summary['runs'][0]['history']] == [None, None]


def test_the_run_goes_into_logs(tmp_path, labml_logs):
    # `--logs`, as the Cora experiments take it
    load_script().main(['--k', '3', '--epochs', '1', '--batch-size', '2', '--d-model', '8', '--epoch-size', '0',
                        '--quiet', '--logs', str(tmp_path / 'runs')])
    assert len(list((tmp_path / 'runs' / 'dictionary_lookup').glob('*/run.yaml'))) == 1
    assert not labml_logs.exists()


def test_threads_setting(tmp_path, labml_logs):
    script = load_script()
    threads = torch.get_num_threads()
    try:
        script.main(['--k', '3', '--epochs', '1', '--batch-size', '2', '--d-model', '8',
                     '--epoch-size', '0', '--quiet', '--threads', '2'])
        assert torch.get_num_threads() == 2
        script.main(['--k', '3', '--epochs', '1', '--batch-size', '2', '--d-model', '8',
                     '--epoch-size', '0', '--quiet'])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


def test_a_run_is_trained_with_every_setting():
    """Every argument of `train` but the callbacks comes from the settings."""
    script = load_script()
    settings = script.LookupSettings(
        layer='gat', n_heads=2, k=5, epochs=7, patience=3, lr_patience=2, min_progress=0.25,
        learning_rate=0.01, batch_size=16, max_examples=100, epoch_size=10, d_model=8, seed=4,
        impl='edges')
    names = set(inspect.signature(train).parameters) - {'on_epoch', 'wrap_epochs',
                                                         'wrap_batches'}
    assert settings.training() == {name: getattr(settings, name) for name in names}


def test_every_epoch_goes_to_labml(labml_logs, monkeypatch):
    """labml's tracker gets every epoch's numbers, then the final accuracies."""
    script = load_script()
    saved = []
    monkeypatch.setattr(script.tracker, 'save', lambda *args: saved.append(args))
    [summary] = script.main(['--k', '3', '--epochs', '3', '--batch-size', '2', '--d-model', '8',
                             '--epoch-size', '0', '--min-progress', '0', '--quiet'])['runs']
    assert saved[:-1] == [(h['epoch'], {'loss.train': h['loss'],
                                        'accuracy.train': h['train_accuracy'],
                                        'accuracy.test': h['test_accuracy']})
                          for h in summary['history']]
    assert saved[-1] == (summary['epochs'], {'accuracy.final_train': summary['train_accuracy'],
                                             'accuracy.final_test': summary['test_accuracy']})


# ## Many seeds, as the Cora experiments run them

# A model of a few seconds' training
TINY = ['--k', '3', '--epochs', '2', '--batch-size', '2', '--d-model', '8', '--epoch-size', '0', '--quiet']


def same_model(run: dict, other: dict) -> bool:
    """The same model trained: every number but the seconds and where its weights went."""
    def numbers(result):
        return {key: value for key, value in result.items() if key not in ('seconds', 'checkpoint')}
    return numbers(run) == numbers(other)


def test_seeds_train_the_model_once_per_seed_as_the_cora_experiments_do(tmp_path, labml_logs, capsys):
    from labml_gat.lookup import LookupModel
    from labml_gat.seeds import summarize
    script = load_script()
    path, logs = tmp_path / 'summary.json', tmp_path / 'runs'
    summary = script.main([*TINY, '--seed', '5', '--seeds', '2', '--jobs', '1', '--logs', str(logs),
                           '--summary-json', str(path)])
    # The summary of `cora.py`, with the training accuracy where it has the validation accuracy
    assert json.loads(path.read_text()) == json.loads(json.dumps(summary))
    assert sorted(summary) == ['argv', 'jobs', 'load_average', 'runs', 'script', 'seconds', 'settings',
                               'test_accuracy', 'train_accuracy', 'wall_seconds']
    # The command of the run, as `--record` compares it
    assert summary['script'] == 'dictionary_lookup.py' and '--seeds' in summary['argv']
    assert summary['settings'] == script.LookupSettings(
        k=3, epochs=2, batch_size=2, d_model=8, epoch_size=0, quiet=True, seed=5, seeds=2, jobs=1,
        logs=str(logs), summary_json=str(path)).as_dict()
    runs = summary['runs']
    assert [run['seed'] for run in runs] == [5, 6] and summary['jobs'] == 1
    for name in ('train_accuracy', 'test_accuracy'):
        assert summary[name] == summarize([run[name] for run in runs])
    assert summary['seconds'] == round(sum(run['seconds'] for run in runs), 2)
    # Each seed is a labml run in `--logs`: its comment names the seed, which is marked as given,
    # and it keeps the model's weights
    folders = sorted((logs / 'dictionary_lookup').iterdir())
    assert sorted(str(folder / 'checkpoints' / 'best.pt') for folder in folders) == \
        sorted(run['checkpoint'] for run in runs)
    comments = sorted(yaml_value(folder / 'run.yaml', 'comment') for folder in folders)
    assert comments == ['gatv2, 1 head, k = 3, seed 5', 'gatv2, 1 head, k = 3, seed 6']
    for folder in folders:
        seed = yaml_value(folder / 'configs.yaml', 'seed')
        assert seed['is_explicitly_specified'] and seed['value'] in (5, 6)
        state = torch.load(folder / 'checkpoints' / 'best.pt', weights_only=True)
        assert state.keys() == LookupModel(3, 'gatv2', 1, 8).state_dict().keys()
    # The table of the seeds, then the spread of both accuracies
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ['GATv2, 1 head, k = 3', '  seed  epochs  best train %  test %  time s']
    assert out[4].startswith('test accuracy: ') and out[4].endswith('(1 process)')
    assert out[5] == f"train accuracy: {summary['train_accuracy']['mean']:.2f} ± " \
                     f"{summary['train_accuracy']['std']:.2f} % over 2 seeds"
    # and how many graphs each percent stands for, the same in every seed's split
    assert {(run['n_train'], run['n_test']) for run in runs} == {(4, 2)}
    assert out[6] == "each seed's split: 4 training and 2 test graphs"
    # Each seed is the run of one model with that seed, without --seeds
    one = ['--logs', str(tmp_path / 'one')]
    for run in runs:
        assert same_model(run, script.main([*TINY, *one, '--seed', str(run['seed'])])['runs'][0])


def test_one_seed_is_summed_up_as_the_seeds_are(tmp_path, labml_logs, capsys):
    """Without `--seeds` the model is trained as one seed of the seeds' runner, as the Cora
    experiments train theirs: one summary of one shape, which `--record` takes, a labml run
    named for its seed, and the weights kept in it."""
    from labml_gat import results
    script = load_script()
    path, logs = tmp_path / 'summary.json', tmp_path / 'runs'
    summary = script.main([*TINY, '--seed', '3', '--logs', str(logs), '--summary-json', str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(summary))
    seeds = script.main([*TINY, '--seed', '3', '--seeds', '1', '--logs', str(tmp_path / 'seeds')])
    assert sorted(summary) == sorted(seeds) and summary['argv'] != seeds['argv']
    [run], [other] = summary['runs'], seeds['runs']
    assert run['seed'] == 3 and same_model(run, other)
    assert summary['test_accuracy'] == {'mean': round(100 * run['test_accuracy'], 2), 'std': 0.0, 'n': 1}
    assert not results.over_seeds_missing(summary)
    assert results.from_summary(summary)['seeds'] == 1
    [folder] = (logs / 'dictionary_lookup').iterdir()
    assert yaml_value(folder / 'run.yaml', 'comment') == 'gatv2, 1 head, k = 3, seed 3'
    assert run['checkpoint'] == str(folder / 'checkpoints' / 'best.pt')
    assert (folder / 'checkpoints' / 'best.pt').is_file()
    assert capsys.readouterr().out.splitlines()[:2] == [
        'GATv2, 1 head, k = 3', '  seed  epochs  best train %  test %  time s']


def yaml_value(path, key):
    import yaml
    return yaml.safe_load(path.read_text())[key]


@pytest.mark.parametrize('argv, cora', [
    (['--seeds', '0'], {'seeds': 0}),
    (['--seeds', '101'], {'seeds': 101}),
    (['--seeds', '2', '--jobs', '0'], {'seeds': 2, 'jobs': 0}),
    (['--seed', str(2 ** 32 - 1), '--seeds', '2'], {'seed': 2 ** 32 - 1, 'seeds': 2}),
    (['--seed', str(2 ** 32)], {'seed': 2 ** 32}),
    # One seed does not read `--jobs`
    (['--jobs', '2'], {'jobs': 2}),
])
def test_seeds_are_checked_as_the_cora_experiments_check_them(argv, cora, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as theirs:
        settings = training.NodeClassificationSettings(**cora)
        settings.check()
        settings.check_given(set(cora))
    with pytest.raises(UsageError) as ours:
        load_script().parse(argv)
    assert str(ours.value) == str(theirs.value)


@pytest.mark.parametrize('argv, message', [
    (['--jobs', '2'], 'a run without --seeds trains one seed and does not read --jobs'),
    (['--sweep', '--seeds', '2'], '--sweep does not read --seeds; it is for a run of one model$'),
    (['--which-layer', '--seeds', '2'], '--which-layer does not read --seeds; it is for a run of one model$'),
    (['--sweep', '--jobs', '2'],
     '--sweep does not read --jobs; it is for the seeds of a run of one model with --seeds$'),
    (['--which-layer', '--seeds', '2', '--jobs', '2'],
     '--which-layer does not read --jobs; it is for the seeds of a run of one model with --seeds$'),
    (['--seeds', '2', '--record'], 'a run of one model does not read --record; it is for --sweep '
                                   'and --which-layer$'),
    (['--which-layer', '--k', '3'], '--which-layer does not read --k; it is for a run of one model$'),
])
def test_seeds_are_for_runs_of_one_model(argv, message, tmp_path, monkeypatch):
    """The sweep and the layers' timing run one seed; `--jobs` runs seeds side by side."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=f'^{message}'):
        load_script().parse(argv)


def test_seeds_side_by_side_each_need_their_memory(monkeypatch):
    """`--jobs` processes each hold their examples and their step: refused from the sizes."""
    script = load_script()
    needed = (lookup.training_step_bytes(100, 'gatv2', 1, 128, 'dense', 32)
              + lookup.examples_bytes(100, 32000, 5000))
    free = math.ceil(needed / 0.9)
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': free)
    script.LookupSettings(k=100, seeds=4, jobs=1).check()
    with pytest.raises(UsageError, match=r'^--k 100: a batch of 32 graphs .*, in 4 processes at once '
                                         r'\(--jobs\): .* or --d-model, or fewer --jobs$'):
        script.LookupSettings(k=100, seeds=4, jobs=4).check()
    # At most one process per seed, each with its own Python and PyTorch
    workers = math.ceil(2 * (needed + training.WORKER_BYTES) / 0.9)
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': workers)
    script.LookupSettings(k=100, seeds=2, jobs=4).check()


@pytest.mark.slow
def test_seeds_side_by_side_train_what_one_process_trains(tmp_path, labml_logs):
    path = tmp_path / 'summary.json'
    result = run_script([*TINY, '--seeds', '3', '--jobs', '2', '--summary-json', str(path)], tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(path.read_text())
    assert summary['jobs'] == 2 and [run['seed'] for run in summary['runs']] == [0, 1, 2]
    assert len(list((tmp_path / 'logs' / 'dictionary_lookup').glob('*/checkpoints/best.pt'))) == 3
    one = load_script().main([*TINY, '--seeds', '3', '--jobs', '1'])
    assert all(same_model(run, other)
               for run, other in zip(summary['runs'], json.loads(json.dumps(one['runs']))))
    assert '(2 processes)\ntrain accuracy: ' in result.stdout


def test_stopped_by_names_why_training_ended():
    script = load_script()
    settings = script.LookupSettings(epochs=3)

    def ended(*accuracies):
        return script.stopped_by({'epochs': len(accuracies), 'history': [
            {'train_accuracy': accuracy} for accuracy in accuracies]}, settings)

    assert ended(0.5, 1.0) == ended(0.2, 0.5, 1.0) == 'fitted'
    assert ended(0.2, 0.5, 0.999) == 'epochs'
    assert ended(0.2, 0.5) == 'patience'


@pytest.mark.parametrize('argv', [
    ['--k', '3', '--no-record', '--no-sweep', '--no-which-layer'],
    ['--sweep', '--record', '--ks', '3'],
    ['--sweep', '--results', '.', '--ks', '3', '--no-quiet'],
])
def test_flags_the_run_reads_are_taken(argv, tmp_path, monkeypatch):
    """A flag is refused only when the run does not read it: `--no-...` asks for the default."""
    monkeypatch.chdir(tmp_path)
    assert load_script().parse(argv)


@pytest.mark.parametrize('settings, message', [
    ({'epoch_size': -1}, '--epoch-size must be at least 0'),
    ({'sweep': True, 'sweep_heads': [1, 3]},
     r'^--sweep-heads 3: the heads must be at least 1 and divide --d-model \(128\)$'),
    ({'n_heads': 3}, r'^--n-heads 3: the heads must be at least 1 and divide --d-model'),
    ({'n_heads': 0}, r'^--n-heads must be at least 1'),
    ({'sweep': True, 'k': 2, 'ks': [2, 8], 'max_examples': 2, 'seed': 2},
     '--k 8 with --max-examples 2 gives 2 training and 0 test graphs'),
    ({'k': 8, 'max_examples': 1, 'seed': 0}, '1 training and 0 test graphs'),
    ({'k': 8, 'max_examples': 1, 'seed': 1}, '0 training and 1 test graphs'),
    ({'sweep': True, 'results': 'missing/x'}, '^--results missing/x: '),
    # As the benchmark's lists: a model twice would be trained and recorded twice
    ({'sweep': True, 'ks': [2, 5, 2]}, '^--ks names 2 twice$'),
    ({'sweep': True, 'sweep_heads': [8, 1, 8]}, '^--sweep-heads names 8 twice$'),
])
def test_settings_that_cannot_run_are_refused(settings, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': 2 ** 34)
    with pytest.raises(UsageError, match=message):
        load_script().LookupSettings(**settings).check()


def test_a_batch_is_no_larger_than_the_examples(monkeypatch):
    """A `--batch-size` above the examples makes batches of all of them: its memory is theirs."""
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': 2 ** 34)
    load_script().LookupSettings(k=3, batch_size=10 ** 9, epoch_size=0).check()


# ## The memory a task needs, checked before anything is made

def refuse(*args, **kwargs):
    raise AssertionError('the check made a task before it checked the memory')


@pytest.mark.parametrize('settings, message', [
    # The dense layer's grid of 32 x 1000^2 pairs x 128 features, four times
    ({'k': 1000}, r'^--k 1000: a batch of 32 graphs of 1000 x 1000 \(query, key\) pairs, '
                  r'128 features each: about 64\.2 GiB per training step, but only 16\.0 '
                  r'GiB is free on cpu; use a smaller --k, --batch-size or --d-model$'),
    ({'k': 100000}, r'^--k 100000: a batch of 32 graphs of 100000 x 100000 '),
    ({'k': 1000, 'impl': 'edges', 'layer': 'gat'}, r'^--k 1000: a batch of 32 graphs'),
    ({'k': 10 ** 9}, r'^--k 1000000000: a batch of 32 graphs'),
    ({'sweep': True, 'ks': [5, 1000]}, r'^k = 1000 of --ks: a batch of 32 graphs'),
    ({'k': 20, 'max_examples': 10 ** 10},
     r'^--k 20: 10000000000 examples of 20 keys \(--max-examples\) and an epoch of at least '
     r'5000 graphs \(--epoch-size\): about .* use a smaller --max-examples or --epoch-size$'),
    ({'k': 20, 'epoch_size': 10 ** 10}, r'^--k 20: 32000 examples .* --epoch-size'),
])
def test_a_task_too_large_for_the_memory_is_refused_before_it_is_made(settings, message,
                                                                     monkeypatch):
    """One line naming the flag, judged from the sizes alone: no task is made."""
    script = load_script()
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': 2 ** 34)
    monkeypatch.setattr(script, 'make_task', refuse)
    with pytest.raises(UsageError, match=message):
        script.LookupSettings(**settings).check()


@pytest.mark.parametrize('k, message', [
    # A step on the dense grid is most of it, or the examples are
    (100, '^--k 100: a batch of 32 graphs'), (10, '^--k 10: 32000 examples of 10 keys')])
def test_a_task_fits_up_to_the_free_memory(k, message, monkeypatch):
    """The boundary: the estimate within 90 % of the free memory runs, above it is refused."""
    script = load_script()
    settings = script.LookupSettings(k=k)
    needed = (lookup.training_step_bytes(k, 'gatv2', 1, 128, 'dense', 32)
              + lookup.examples_bytes(k, 32000, 5000))
    free = math.ceil(needed / 0.9)
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': free - 2)
    with pytest.raises(UsageError, match=message):
        settings.check()
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': free)
    settings.check()


@pytest.mark.parametrize('layer, impl', list(itertools.product(('gatv2', 'gat'),
                                                               ('dense', 'edges'))))
def test_the_step_estimate_holds_what_autograd_keeps(layer, impl):
    """
    A training step keeps at most the estimate for its backward pass, and the estimate is not
    many times more: a run that fits is not refused.
    """
    k, n_graphs, d_model, n_heads = 12, 6, 16, 2
    model = LookupModel(k, layer, n_heads, d_model, impl)
    perms = torch.stack([torch.randperm(k) for _ in range(n_graphs)])
    saved = {}

    def pack(tensor):
        saved[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(perms).sum()
    estimate = lookup.training_step_bytes(k, layer, n_heads, d_model, impl, n_graphs)
    assert 0 < sum(saved.values()) <= estimate < 4 * sum(saved.values())


def test_the_examples_are_counted_without_the_factorial():
    """`n_examples` stops multiplying once k! passes the limit: a huge k costs nothing."""
    assert [lookup.n_examples(k, 32000) for k in (2, 5, 7, 8)] == [2, 120, 5040, 32000]
    task = make_task(5, max_examples=120)
    assert lookup.n_examples(5, 120) == len(task.train) + len(task.test) == 120
    assert lookup.n_examples(10 ** 9, 32000) == 32000
    # The examples: 8 bytes a number, three times over, and two epochs' worth of rows
    assert lookup.examples_bytes(20, 32000, 5000) == 8 * 20 * (3 * 32000 + 2 * 5000)


# ## The sweep and its record

def test_sweep_writes_a_record_only_when_asked(tmp_path, labml_logs, monkeypatch, capsys):
    script = load_script()
    monkeypatch.setattr(script, 'RESULTS', tmp_path / 'project')
    (tmp_path / 'project').mkdir()
    path = tmp_path / 'new' / f'{script.SWEEP_RECORD}.json'
    threads = torch.get_num_threads()
    argv = ['--sweep', '--ks', '2', '3', '--sweep-heads', '1', '2', '--epochs', '2',
            '--d-model', '8', '--epoch-size', '64', '--quiet']
    try:
        script.main(argv)
        assert not any((tmp_path / 'project').iterdir()) and not path.exists()
        assert 'recorded in' not in capsys.readouterr().out
        # A new folder, as the benchmark's `--results` takes
        script.main([*argv, '--results', str(path.parent)])
    finally:
        torch.set_num_threads(threads)
    assert capsys.readouterr().out.splitlines()[-1] == f'recorded in {path}'
    record = json.loads(path.read_text())
    assert record['command'].startswith('python experiments/dictionary_lookup.py --sweep')
    # The provenance of every record of the project, and the values beside it
    assert set(record) == {'name', 'command', 'date', 'machine', 'versions', 'values'}
    assert record['name'] == script.SWEEP_RECORD
    assert {'cpu', 'cores', 'memory_gib', 'system'} <= set(record['machine'])
    assert {'settings', 'total_seconds'} <= set(record['values'])
    record = record['values']
    # For every k in turn, one head before more, GATv2 before GAT
    runs = [(r['k'], r['n_heads'], r['layer']) for r in record['runs']]
    assert runs == list(itertools.product((2, 3), (1, 2), ('gatv2', 'gat')))
    for run in record['runs']:
        assert {'n_train', 'n_test', 'best_epoch', 'seconds', 'cpu_seconds', 'train_accuracy',
                'test_accuracy'} <= set(run)
        assert len(run['history']['train']) == len(run['history']['test']) == run['epochs']
        assert run['stopped_by'] in ('fitted', 'patience', 'epochs')
        assert run['history']['train'][run['best_epoch']] == max(run['history']['train'])
    # Each run's processor time is its own, not the sweep's so far (each rounded)
    cpu_seconds = sum(run['cpu_seconds'] for run in record['runs'])
    assert cpu_seconds <= record['total_cpu_seconds'] + 0.05 + 0.005 * len(record['runs'])


def test_sweep_records_each_models_numbers_and_curves(tmp_path, labml_logs, monkeypatch):
    """A run of the record is its model's result, with the curves of both splits rounded."""
    script = load_script()

    def trained(**settings):
        history = [{'train_accuracy': 0.25, 'test_accuracy': 1 / 3},
                   {'train_accuracy': 1.0, 'test_accuracy': 0.5}]
        return {**{key: settings[key] for key in ('k', 'layer', 'n_heads')}, 'n_train': 3,
                'n_test': 2, 'epochs': 2, 'best_epoch': 1, 'seconds': 0.5,
                'train_accuracy': 1.0, 'test_accuracy': 0.5, 'history': history}

    monkeypatch.setattr(script, 'train', trained)
    record = script.main(['--sweep', '--ks', '4', '--sweep-heads', '2', '--quiet',
                          '--results', str(tmp_path)])
    written = json.loads((tmp_path / f'{script.SWEEP_RECORD}.json').read_text())
    assert written['values'] == record
    # The sweep's labml run marks the settings given on the command line, as a seed's run does
    run, = (labml_logs / 'dictionary_lookup_sweep').iterdir()
    configs = {name: yaml_value(run / 'configs.yaml', name) for name in record['settings']}
    assert {name for name, config in configs.items() if config['is_explicitly_specified']} == \
        {'sweep', 'ks', 'sweep_heads', 'quiet', 'results'}
    for run, layer in zip(record['runs'], ('gatv2', 'gat'), strict=True):
        assert run.pop('cpu_seconds') >= 0
        assert run == {'k': 4, 'layer': layer, 'n_heads': 2, 'n_train': 3, 'n_test': 2,
                       'epochs': 2, 'best_epoch': 1, 'seconds': 0.5, 'train_accuracy': 1.0,
                       'test_accuracy': 0.5, 'stopped_by': 'fitted',
                       'history': {'train': [0.25, 1.0], 'test': [0.33333, 0.5]}}


def test_the_report_counts_epochs_as_the_seeds_table_does():
    # Epochs are counted from 0 in every experiment's output: the best epoch the report names
    # is the one in the seeds' table
    from labml_gat.seeds import format_summary
    result = {'k': 4, 'layer': 'gatv2', 'n_heads': 1, 'n_train': 3, 'n_test': 2, 'epochs': 5,
              'best_epoch': 3, 'seconds': 0.5, 'train_accuracy': 1.0, 'test_accuracy': 0.5}
    words = load_script().report(result).split()
    table = format_summary({'runs': [{**result, 'seed': 0}], 'jobs': 1, 'seconds': 0.5,
                            'wall_seconds': 0.5,
                            'test_accuracy': {'mean': 50.0, 'std': 0.0, 'n': 1}}, 'x')
    best = table.splitlines()[2].split()[2]
    assert words[words.index('epoch') + 1] == best == '3'


def test_which_layer_records_into_a_new_folder(tmp_path, monkeypatch, capsys):
    script = load_script()
    monkeypatch.setattr(script, 'WHICH_LAYER_GRAPHS', [(4, 2, 1.0)])
    script.main(['--which-layer', '--results', str(tmp_path / 'new')])
    path = tmp_path / 'new' / f'{script.LAYERS_RECORD}.json'
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f'recorded in {path}'
    record = json.loads(path.read_text())
    # Each graph measured is one line in the units of the pages, the record's numbers
    row, = record['values']['rows']
    assert len(out) == 2 and '{' not in out[0] and 'ms' in out[0] and 'MiB' in out[0]
    for key, scale in (('seconds', 1000), ('saved_bytes', 2 ** -20)):
        assert all(f'{value * scale:.2f}' in out[0] for value in row[key].values())
    assert record['name'] == script.LAYERS_RECORD
    assert {'cpu', 'cores', 'memory_gib', 'system'} <= set(record['machine'])
    assert [row['n_nodes'] for row in record['values']['rows']] == [4]


def test_which_layer_draws_its_graphs_from_the_seed(monkeypatch):
    script = load_script()
    monkeypatch.setattr(script, 'WHICH_LAYER_GRAPHS', [(4, 2, 0.5)])
    edges = {seed: lookup.time_layers(4, 2, 0.5, repeats=1, seed=seed)['n_edges']
             for seed in (0, 1)}
    assert edges[0] != edges[1]
    record = script.main(['--which-layer', '--seed', '1'])
    assert [row['n_edges'] for row in record['rows']] == [edges[1]]


@pytest.mark.skipif(not RECORD.is_file(), reason='no recorded sweep')
def test_recorded_sweep_supports_the_papers_claims():
    """
    The claims the experiment's page states, against the recorded sweep: one GAT head does not
    fit the training set for any k > 2 (at k = 2 the training set is one graph) and is at
    chance at the largest k; one GATv2 head fits the training set at every k, and answers at
    least 99.99 % of the test graphs once the training set is large; eight GAT heads stay behind
    eight GATv2 heads on the test graphs.
    """
    record = json.loads(RECORD.read_text())
    assert record['command'].startswith('python experiments/dictionary_lookup.py --sweep')
    runs = {(r['k'], r['layer'], r['n_heads']): r for r in record['values']['runs']}
    ks = sorted({k for k, _, _ in runs})
    assert {2, 5, 10, 20} <= set(ks)
    for k in ks:
        gat, gatv2 = runs[k, 'gat', 1], runs[k, 'gatv2', 1]
        assert gatv2['stopped_by'] == 'fitted' and gatv2['train_accuracy'] == 1, k
        if k > 2:
            assert gat['train_accuracy'] < 1, k
            assert runs[k, 'gat', 8]['test_accuracy'] < runs[k, 'gatv2', 8]['test_accuracy'], k
        # Eight GAT heads fit the training graphs, or come close
        assert runs[k, 'gat', 8]['train_accuracy'] >= 0.9, k
        if gatv2['n_train'] >= 1000:
            assert gatv2['test_accuracy'] >= 0.9999, k
    assert runs[ks[-1], 'gat', 1]['train_accuracy'] <= 1.5 / ks[-1]


# ## Which layer when

WAYS = {'dense_batched', 'dense_single', 'edges', 'lean'}


def test_time_layers():
    from labml_gat.lookup import time_layers
    row = time_layers(4, 3, 0.5, d_model=8, repeats=1)
    assert set(row['seconds']) == set(row['saved_bytes']) == WAYS
    assert row['fastest'] == min(row['seconds'], key=row['seconds'].get)
    assert row['leanest'] == min(row['saved_bytes'], key=row['saved_bytes'].get)
    # A single graph: batching one graph is the dense layer on it, so it is not run twice
    assert set(time_layers(4, 1, 0.5, d_model=8, repeats=1)['seconds']) == WAYS - {
        'dense_batched'}


def test_time_layers_memory_tells_the_layers_apart():
    """
    On a complete graph the edge-list layer keeps several numbers per edge and feature for
    the backward pass, the lean layer a few per edge, the dense layer its grid of pairs.
    """
    from labml_gat.lookup import time_layers
    d_model, n_nodes = 32, 64
    saved = time_layers(n_nodes, 1, 1.0, d_model=d_model, repeats=1)['saved_bytes']
    per_edge_feature = n_nodes ** 2 * d_model * 4
    assert saved['edges'] >= 2 * per_edge_feature
    assert saved['dense_single'] >= per_edge_feature
    assert saved['lean'] < per_edge_feature / 4


def test_time_layers_skips_a_dense_grid_too_large(monkeypatch):
    from labml_gat import lookup
    monkeypatch.setattr(lookup, 'DENSE_LIMIT', 1000)
    row = lookup.time_layers(16, 4, 0.5, d_model=8, repeats=1)
    assert set(row['seconds']) == {'edges', 'lean'}


def test_random_graphs_sampled_without_a_grid():
    """Large sparse graphs are sampled pair by pair: every self loop, no pair twice."""
    from labml_gat.lookup import random_graphs
    n_graphs, n_nodes, density = 2, 3000, 0.001
    graph, target, source = random_graphs(n_graphs, n_nodes, density,
                                          torch.Generator().manual_seed(0))
    pairs = torch.stack([graph, target, source], dim=1)
    assert len(pairs.unique(dim=0)) == len(pairs)
    loops = pairs[target == source]
    assert len(loops) == n_graphs * n_nodes
    expected = density * n_graphs * n_nodes ** 2
    assert abs(len(pairs) - len(loops) - expected) < 0.05 * expected
    assert 0 <= target.min() and target.max() < n_nodes and graph.max() == n_graphs - 1


LAYERS_RECORD = RECORD.with_name('dictionary_lookup_layers.json')


@pytest.mark.skipif(not LAYERS_RECORD.is_file(), reason='no recorded timing')
def test_recorded_layer_timing_supports_the_prose():
    """What the page says about which layer wins, against the record."""
    record = json.loads(LAYERS_RECORD.read_text())
    assert record['command'] == 'python experiments/dictionary_lookup.py --which-layer --record'
    for row in record['values']['rows']:
        assert row['fastest'] == min(row['seconds'], key=row['seconds'].get)
        assert row['leanest'] == min(row['saved_bytes'], key=row['saved_bytes'].get)
        # The union of many graphs as one dense graph is never the fastest
        if row['n_graphs'] > 1:
            assert row['fastest'] != 'dense_single', row
        # Sparse graphs go to an edge list
        if row['density'] <= 0.1:
            assert row['fastest'] in ('edges', 'lean'), row
        # Complete graphs of a few dozen to a few hundred nodes go to the dense layer
        if row['density'] == 1.0 and 16 <= row['n_nodes'] <= 256:
            assert row['fastest'].startswith('dense'), row
        # The lean edge list keeps the least on every graph
        assert row['leanest'] == 'lean', row
        # and from about a hundred thousand edges on it is the fastest
        if row['n_edges'] >= 100_000:
            assert row['fastest'] == 'lean', row
    assert any(row['n_nodes'] >= 100_000 for row in record['values']['rows'])


# ## The gallery example

def test_gallery_example_uses_ordinary_imports():
    source = (REPO / 'experiments' / 'gallery' / 'plot_dictionary_lookup.py').read_text()
    assert 'sys.path' not in source and 'import dictionary_lookup' not in source
    # The thumbnail is chosen by a configuration comment on its own line, not in the prose
    lines = source.splitlines()
    assert '# sphinx_gallery_thumbnail_number = 1' in lines
    assert 'savefig.dpi' in source


# ## The sweep's table

def test_sweep_table_has_a_row_per_model():
    """The table the pages quote shows every model of the record with its numbers."""
    from labml_gat import results
    runs = json.loads(RECORD.read_text())['values']['runs']
    table = results.render('dictionary_lookup')
    # One row per model, with its numbers
    for run in runs:
        assert (f"| {100 * run['train_accuracy']:.1f} % | {100 * run['test_accuracy']:.1f} % "
                f"| {run['epochs']} | {run['stopped_by']} |") in table
    assert len(table.splitlines()) == len(runs) + 4


@pytest.mark.slow
def test_output_names_the_run_and_starts_the_summary_on_its_own_line(tmp_path):
    result = run_script(['--k', '3', '--epochs', '2', '--batch-size', '2', '--d-model', '8',
                         '--epoch-size', '0'], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # One line names the run and its folder; labml's banner with the last commit is gone
    run = next((tmp_path / 'logs' / 'dictionary_lookup').iterdir())
    assert lines[0] == f'dictionary_lookup: gatv2, 1 head, k = 3, seed 0, run logs/{run.parent.name}/{run.name}'
    assert '[clean]' not in result.stdout and '[dirty]' not in result.stdout
    # labml's progress line redraws itself on a terminal only: not into a file or a pipe
    assert '\r' not in result.stdout and '\x1b' not in result.stdout
    assert lines[1:3] == ['GATv2, 1 head, k = 3', '  seed  epochs  best train %  test %  time s']


@pytest.mark.slow
def test_ctrl_c_stops_the_sweep(tmp_path):
    """Ctrl-C during the sweep: one line, exit status 130, the run recorded as interrupted."""
    from labml_gat.runs import read_status
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), '--sweep', '--ks', '20', '--sweep-heads', '1', '--quiet',
         '--results', str(tmp_path), '--logs', str(tmp_path / 'logs')], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, 'PYTHONPATH': str(REPO)},
        start_new_session=True, preexec_fn=sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        while not list((tmp_path / 'logs').glob('dictionary_lookup_sweep/*/run.yaml')):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, 'the sweep did not start'
            time.sleep(0.1)
        time.sleep(1)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert err == 'dictionary_lookup.py: stopped\n' and process.returncode == 130
    [run] = (tmp_path / 'logs' / 'dictionary_lookup_sweep').iterdir()
    assert read_status(run) == 'interrupted'
