"""Tests of the DictionaryLookup experiment: the generator's invariants, the split, the batch layout,
GAT's static ranking, and a short training run where GATv2 fits the task and GAT does not."""

import itertools
import json
import math

import pytest
import torch
from labml import lab

from conftest import load_experiment

lookup = load_experiment('dictionary_lookup')
LookupModel, make_graphs, make_task, run = lookup.LookupModel, lookup.make_graphs, lookup.make_task, lookup.run

# A small setting in which one GATv2 head fits the training set within a few epochs (about a second)
SMOKE = dict(k=8, max_examples=2000, batch_size=64, d_model=64, learning_rate=1e-2, epochs=20, seed=0)


def pairs(perms: torch.Tensor) -> set:
    """The (key, value) pairs (i, perm[i]) that occur in the permutations `perms`."""
    return {(i, v) for perm in perms.tolist() for i, v in enumerate(perm)}


@pytest.mark.parametrize('k', [2, 3, 5, 7])
def test_all_permutations_when_few(k):
    task = make_task(k, seed=0)
    perms = torch.cat([task.train, task.test])
    assert len(perms) == math.factorial(k)
    assert {tuple(p) for p in perms.tolist()} == set(itertools.permutations(range(k)))


@pytest.mark.parametrize('k', [8, 10, 20])
def test_random_permutations_when_many(k):
    task = make_task(k, seed=0)
    perms = torch.cat([task.train, task.test])
    assert perms.shape == (32000, k)
    assert (perms.sort(dim=1).values == torch.arange(k)).all(), 'every row must be a permutation'


@pytest.mark.parametrize('k', [3, 5, 8, 10, 20])
def test_split_never_leaks_a_pair(k):
    task = make_task(k, seed=1)
    # floor(0.8^(1/k) k^2) allowed (key, value) pairs
    assert task.allowed.sum().item() == int(0.8 ** (1 / k) * k * k)
    allowed = {(i, v) for i, v in task.allowed.nonzero().tolist()}
    # Every training graph uses allowed pairs only ...
    assert pairs(task.train) <= allowed
    # ... and every test graph has at least one pair that no training graph has
    for perm in task.test.tolist():
        assert any((i, v) not in allowed for i, v in enumerate(perm))
    # Nothing is lost or duplicated between the two sides
    assert len(task.train) + len(task.test) == (math.factorial(k) if math.factorial(k) <= 32000 else 32000)


def test_split_is_about_80_20():
    for k, low, high in ((10, 0.65, 0.8), (20, 0.7, 0.85)):
        task = make_task(k, seed=0)
        share = len(task.train) / (len(task.train) + len(task.test))
        assert low < share < high, (k, share)


def test_deterministic_under_seed():
    a, b, c = make_task(10, seed=3), make_task(10, seed=3), make_task(10, seed=4)
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test) and torch.equal(a.allowed, b.allowed)
    assert not torch.equal(a.allowed, c.allowed)
    assert not torch.equal(a.train[:100], c.train[:100])


def test_bad_arguments():
    with pytest.raises(ValueError, match='k must be'):
        make_task(1)
    with pytest.raises(ValueError, match='k must be'):
        make_task(4.0)
    with pytest.raises(ValueError, match='max_examples'):
        make_task(4, max_examples=0)
    with pytest.raises(ValueError, match='model must be'):
        LookupModel(4, model='gcn')
    with pytest.raises(ValueError, match='divisible'):
        LookupModel(4, model='gat', heads=3, d_model=16)
    with pytest.raises(ValueError, match='epochs'):
        run(3, epochs=0)
    with pytest.raises(ValueError, match='both must be non-empty'):
        run(8, max_examples=1)


def test_training_is_deterministic_under_seed():
    settings = dict(k=4, epochs=3, batch_size=4, d_model=16, seed=5)
    a, b = run(**settings), run(**settings)
    assert a['history'] == b['history']
    for (name, x), (_, y) in zip(a['network'].state_dict().items(), b['network'].state_dict().items()):
        assert torch.equal(x, y), name


def test_graph_batch_layout():
    k = 4
    perms = torch.tensor([[2, 0, 3, 1], [0, 1, 2, 3], [3, 2, 1, 0]])
    graphs = make_graphs(perms)
    n_graphs = len(perms)
    assert graphs.keys.shape == graphs.values.shape == (n_graphs * 2 * k,)
    assert graphs.edge_index.shape == (2, n_graphs * k * k)
    src, dst = graphs.edge_index
    for b, perm in enumerate(perms.tolist()):
        node = b * 2 * k
        # Queries: keys 0..k-1 with the empty value k; key-value nodes: keys 0..k-1 with the values pi(j)
        assert graphs.keys[node:node + 2 * k].tolist() == list(range(k)) * 2
        assert graphs.values[node:node + 2 * k].tolist() == [k] * k + perm
        # Queries are the first k nodes, labelled pi(i)
        assert graphs.queries[b * k:(b + 1) * k].tolist() == list(range(node, node + k))
        assert graphs.labels[b * k:(b + 1) * k].tolist() == perm
        # Edge b k^2 + i k + j is s_j -> q_i: complete bipartite, inside graph b, no self loops
        for i, j in itertools.product(range(k), range(k)):
            e = b * k * k + i * k + j
            assert (src[e].item(), dst[e].item()) == (node + k + j, node + i)
    assert len(set(zip(src.tolist(), dst.tolist()))) == n_graphs * k * k


@pytest.mark.parametrize('model, heads', [('gatv2', 1), ('gat', 1), ('gat', 4)])
def test_attention_grid(model, heads):
    torch.manual_seed(0)
    k = 5
    net = LookupModel(k, model, heads, d_model=16)
    graphs = make_graphs(make_task(k, seed=0).train[:6])
    logits, attention = net(graphs, return_attention=True)
    assert logits.shape == (6 * k, k)
    assert attention.shape == (6, k, k, heads)
    # attention[b, i, j] is query i's share on key-value node j: it sums to one over j
    assert torch.allclose(attention.sum(dim=2), torch.ones(6, k, heads))
    # ... and is the edge s_j -> q_i of the flat edge list
    _, flat = net.attention(torch.relu(net.key_embedding(graphs.keys) + net.value_embedding(graphs.values)),
                            graphs.edge_index, return_attention=True)
    b, i, j = 4, 2, 3
    assert attention[b, i, j].tolist() == flat[b * k * k + i * k + j].tolist()


def test_gat_ranks_the_keys_alike_for_every_query():
    """Static attention (the paper's Theorem 1): with one GAT head, whatever its weights, all queries
    of a graph order the key-value nodes the same way, so they cannot each pick their own key."""
    torch.manual_seed(1)
    k = 6
    net = LookupModel(k, 'gat', 1, d_model=32)
    graphs = make_graphs(make_task(k, seed=0).train[:20])
    _, attention = net(graphs, return_attention=True)
    order = attention[..., 0].argsort(dim=-1)
    assert (order == order[:, :1]).all()


def test_gatv2_fits_where_gat_cannot():
    """A short run: one GATv2 head fits the training graphs and looks up the right key;
    one GAT head, whose attention cannot do that (test above), stays far from fitting them."""
    gatv2 = run(model='gatv2', heads=1, **SMOKE)
    gat = run(model='gat', heads=1, **SMOKE)
    assert gatv2['train_accuracy'] == 1.0
    assert gatv2['test_accuracy'] > 0.9
    # The same budget leaves one GAT head far from fitting the training set
    assert gat['epochs'] == SMOKE['epochs']
    assert gat['train_accuracy'] < 0.5
    # The trained GATv2 head puts most of each query's attention on the key-value node with its key
    test = make_graphs(gatv2['task'].test[:50])
    with torch.no_grad():
        _, attention = gatv2['network'](test, return_attention=True)
    assert (attention[..., 0].argmax(dim=-1) == torch.arange(SMOKE['k'])).all()
    # The history has one entry per epoch
    assert [h['epoch'] for h in gatv2['history']] == list(range(gatv2['epochs']))


@pytest.fixture
def labml_logs(tmp_path):
    """Keep the test's labml runs in a temporary folder instead of the repository's `logs/`."""
    lab.configure({'experiments_path': str(tmp_path / 'logs')})
    yield tmp_path / 'logs'
    lab.configure({'experiments_path': 'logs'})


def test_command_line_writes_summary(tmp_path, labml_logs):
    summary_path = tmp_path / 'summary.json'
    lookup.main(['--k', '3', '--epochs', '2', '--batch-size', '2', '--quiet', '--summary-json', str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert summary['k'] == 3 and summary['model'] == 'gatv2' and summary['heads'] == 1
    assert summary['n_train'] + summary['n_test'] == 6
    assert 0 <= summary['train_accuracy'] <= 1 and 0 <= summary['test_accuracy'] <= 1
    assert 1 <= len(summary['history']) <= 2
    # The run and its settings are kept by labml
    assert (next(labml_logs.glob('dictionary_lookup/*')) / 'configs.yaml').is_file()
