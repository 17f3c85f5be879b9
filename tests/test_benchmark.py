"""Tests of experiments/benchmark.py: the labml_nn peer, the graphs, the slope fit and the report (no timing)."""

import json
import math
import resource

import pytest
import torch

from conftest import PLANETOID, dense_adjacency, load_experiment, needs_planetoid, random_edge_index
from labml_gat.gatv2 import GraphAttentionV2Layer

benchmark = load_experiment('benchmark')

# The keys of one isolated measurement
MEASURE_KEYS = {'impl', 'graph', 'n_nodes', 'n_edges', 'step_ms', 'eval_ms', 'steps', 'evals', 'peak_train_bytes',
                'peak_eval_bytes', 'setup_bytes', 'faults_per_step', 'kernel_ms_per_step', 'threads', 'allocator'}


def peer_with_our_weights(ours: GraphAttentionV2Layer) -> 'benchmark.LabmlNnGATv2Layer':
    """A labml_nn layer with the weights of `ours`, whose heads must share one attention vector."""
    assert torch.equal(ours.attn, ours.attn[:1].expand_as(ours.attn))
    peer = benchmark.LabmlNnGATv2Layer(ours.in_features, ours.out_features, ours.n_heads, ours.is_concat,
                                       dropout=0.0, leaky_relu_negative_slope=ours.activation.negative_slope,
                                       share_weights=ours.share_weights, bias=ours.bias is not None)
    peer = peer.to(ours.attn.dtype)
    with torch.no_grad():
        peer.linear_l.weight.copy_(ours.linear_l.weight)
        peer.linear_r.weight.copy_(ours.linear_r.weight)
        peer.attn.weight.copy_(ours.attn[:1])
        if ours.bias is not None:
            peer.bias.copy_(ours.bias)
    return peer.eval()


def our_layer(n_heads: int, is_concat: bool, share_weights: bool) -> GraphAttentionV2Layer:
    """Our dense layer in float64 with one attention vector repeated for every head and a random bias."""
    torch.manual_seed(0)
    layer = GraphAttentionV2Layer(5, 6, n_heads, is_concat=is_concat, dropout=0.0, share_weights=share_weights,
                                  bias=True).double().eval()
    with torch.no_grad():
        layer.attn.copy_(layer.attn[:1].expand_as(layer.attn))
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize('n_heads, is_concat', [(1, True), (1, False), (3, True), (2, False)])
def test_labml_nn_peer_computes_our_function(generator, n_heads, is_concat):
    """With W_l = W_r and a shared attention vector, labml_nn's formulation is our dense layer."""
    n_nodes = 12
    adj = dense_adjacency(random_edge_index(n_nodes, 40, generator), n_nodes)
    ours = our_layer(n_heads, is_concat, share_weights=True)
    peer = peer_with_our_weights(ours)
    h = torch.randn(n_nodes, 5, dtype=torch.float64, generator=generator)
    torch.testing.assert_close(peer(h, adj), ours(h, adj), atol=1e-12, rtol=0)


def test_labml_nn_peer_sends_w_r_messages(generator):
    """Without shared weights, the peer aggregates W_r h_j with our attention, as its docstring says."""
    n_nodes = 10
    adj = dense_adjacency(random_edge_index(n_nodes, 30, generator), n_nodes)
    ours = our_layer(2, True, share_weights=False)
    peer = peer_with_our_weights(ours)
    h = torch.randn(n_nodes, 5, dtype=torch.float64, generator=generator)
    _, attention = ours(h, adj, return_attention=True)
    messages = ours.linear_r(h).view(n_nodes, 2, 3)
    expected = torch.einsum('ijh,jhf->ihf', attention, messages).reshape(n_nodes, 6) + ours.bias
    torch.testing.assert_close(peer(h, adj), expected, atol=1e-12, rtol=0)
    assert not torch.allclose(peer(h, adj), ours(h, adj))


def test_random_graph():
    graph = benchmark.random_graph(500, 5, in_features=16, seed=3)
    src, dst = graph.edge_index
    assert graph.x.shape == (500, 16) and graph.y.shape == (500,) and graph.num_classes == 7
    assert bool(graph.train_mask.all()) and not graph.val_mask.any() and not graph.test_mask.any()
    # No self loops, no duplicates, sorted by target then source; about 5 edges per node
    assert not (src == dst).any()
    key = dst * 500 + src
    assert torch.equal(key, torch.unique(key))
    assert 0.95 * 2500 < graph.edge_index.shape[1] <= 2500
    assert benchmark.graph_edges(graph) == graph.edge_index.shape[1] + 500
    assert torch.equal(benchmark.random_graph(500, 5, 16, seed=3).edge_index, graph.edge_index)


@pytest.mark.parametrize('impl', ['edges', 'dense', 'labml_nn', 'pyg', 'pyg_no_input_dropout'])
def test_every_implementation_trains_and_evaluates(impl):
    if impl in benchmark.PYG_IMPLS:
        pytest.importorskip('torch_geometric')
    data = benchmark.random_graph(60, 4, in_features=12)
    runner = benchmark.Runner(impl, data)
    before = [p.detach().clone() for p in runner.model.parameters()]
    runner.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, runner.model.parameters()))
    runner.evaluate()
    assert not runner.model.training
    runner.model.train()
    assert runner.model(runner.x, runner.graph).shape == (60, 7)


def test_edges_and_dense_models_agree():
    """The edge-list and the dense models of the benchmark are the same function of the same weights."""
    data = benchmark.random_graph(40, 4, in_features=12)
    edges, dense = benchmark.Runner('edges', data), benchmark.Runner('dense', data)
    edges.model.load_state_dict(dense.model.state_dict())
    edges.model.eval(), dense.model.eval()
    torch.testing.assert_close(edges.model(edges.x, edges.graph), dense.model(dense.x, dense.graph))


@pytest.mark.parametrize('power', [1.0, 2.0, 0.5])
def test_fit_slope_recovers_power_laws(power):
    sizes = [100, 300, 1000, 3000]
    assert math.isclose(benchmark.fit_slope(sizes, [7.0 * n ** power for n in sizes]), power, rel_tol=1e-12)


def test_fit_slope_is_least_squares():
    # log-log points (0, 0), (1, 1), (2, 3): least-squares slope 1.5
    sizes = [1, math.e, math.e ** 2]
    values = [1, math.e, math.e ** 3]
    assert math.isclose(benchmark.fit_slope(sizes, values), 1.5, rel_tol=1e-12)


@pytest.mark.parametrize('sizes, values, message', [
    ([100], [1.0], 'at least two different sizes'),
    ([100, 100], [1.0, 2.0], 'at least two different sizes'),
    ([100, 200], [1.0], 'as many values as sizes'),
    ([100, 200], [0.0, 1.0], 'positive'),
])
def test_fit_slope_refuses_bad_input(sizes, values, message):
    with pytest.raises(ValueError, match=message):
        benchmark.fit_slope(sizes, values)


def fake_row(impl: str, n: int, power: float, **extra) -> dict:
    return {'impl': impl, 'n_nodes': n, 'n_edges': 6 * n, 'step_ms': 1e-3 * n ** power,
            'eval_ms': 1e-4 * n ** power, 'peak_train_bytes': int(100 * n ** power),
            'peak_eval_bytes': int(50 * n ** power), 'setup_bytes': 10 ** 8, 'faults_per_step': 0.0,
            'kernel_ms_per_step': 0.0, **extra}


def test_slopes_use_the_largest_sizes_and_skip_failures():
    rows = [fake_row('dense', n, 2) for n in (200, 400, 800)] + [fake_row('dense', 100, 3)]
    rows += [fake_row('edges', n, 1) for n in (10, 100, 1000)] + [{'impl': 'edges', 'n_nodes': 5, 'error': 'x'}]
    rows += [fake_row('pyg', 100, 1)]
    fitted = benchmark.slopes(rows)
    assert set(fitted) == {'dense', 'edges'}
    assert fitted['dense']['sizes'] == [200, 400, 800]
    assert math.isclose(fitted['dense']['time'], 2) and math.isclose(fitted['dense']['memory'], 2)
    assert math.isclose(fitted['edges']['time'], 1) and math.isclose(fitted['edges']['memory'], 1, rel_tol=1e-6)


def test_too_big_extrapolates(monkeypatch):
    monkeypatch.setattr(benchmark.cora, 'available_memory_bytes', lambda: 10 * 2 ** 30)
    rows = [{'impl': 'dense', 'n_nodes': 1000, 'peak_train_bytes': 2 ** 30, 'setup_bytes': 0},
            {'impl': 'edges', 'n_nodes': 1000, 'peak_train_bytes': 2 ** 30, 'setup_bytes': 0}]
    assert not benchmark.too_big(rows, 'labml_nn', 10 ** 6)  # nothing measured yet
    assert not benchmark.too_big(rows, 'dense', 2900)  # 8.4 GiB
    assert benchmark.too_big(rows, 'dense', 3100)  # 9.6 GiB
    assert not benchmark.too_big(rows, 'edges', 8000)
    assert benchmark.too_big(rows, 'edges', 10000)


def test_measure_in_process():
    result = benchmark.measure({'impl': 'edges', 'repeats': 2, 'budget': 0.5, 'threads': None,
                                'graph': {'kind': 'random', 'n_nodes': 200, 'degree': 5, 'in_features': 16}})
    assert set(result) == MEASURE_KEYS
    assert result['n_nodes'] == 200 and result['steps'] >= 1 and result['evals'] >= 1
    assert result['step_ms'] > 0 and result['peak_train_bytes'] >= 0 and result['setup_bytes'] > 0


def test_worker_process_reports_result_and_failure():
    task = {'mode': 'measure', 'impl': 'dense', 'repeats': 1, 'budget': 0.1, 'threads': 1,
            'graph': {'kind': 'random', 'n_nodes': 30, 'degree': 3, 'in_features': 8}}
    result = benchmark.run_worker(task)
    assert set(result) == MEASURE_KEYS and result['threads'] == 1
    assert benchmark.run_worker({**task, 'allocator': 'thp'})['allocator'] == 'thp'
    failed = benchmark.run_worker({**task, 'impl': 'no_such_impl'})
    assert set(failed) == {'error'} and 'no_such_impl' in failed['error']


@pytest.fixture
def in_process(monkeypatch):
    """
    Run the workers in this process: the same measurements, without the cost of starting Python.
    The address-space cap stays off: it would outlive the test and starve later subprocesses (Chromium).
    """
    def run_worker(task):
        task = {**task, 'limit_memory': False}
        return benchmark.measure(task) if task['mode'] == 'measure' else benchmark.alternate(task)
    monkeypatch.setattr(benchmark, 'run_worker', run_worker)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    assert resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY


def test_quick_run_report_json_and_plot(tmp_path, in_process):
    json_path, plot_path = tmp_path / 'bench.json', tmp_path / 'bench.png'
    results = benchmark.main(['--quick', '--no-cora', '--no-pyg', '--sizes', '100,200,400', '--dense-sizes',
                              '20,40', '--alternate-nodes', '30', '--dense-rounds', '2', '--repeats', '1',
                              '--budget', '0.01', '--threads', '1', '--quiet', '--scale',
                              '--scale-nodes', '300', '--scale-steps', '1', '--json', str(json_path),
                              '--plot', str(plot_path)])
    saved = json.loads(json_path.read_text())
    assert set(saved) == {'meta', 'dense_alternating', 'synthetic', 'slopes', 'dense_memory', 'scale'}
    assert saved['dense_alternating']['n_nodes'] == 30
    assert set(saved['dense_alternating']['impls']['dense']) == {'step_ms', 'eval_ms', 'peer', 'step_ratio',
                                                                'eval_ratio'}
    assert saved['meta']['torch_geometric'] is None and saved['meta']['degree'] == 5 and saved['meta']['threads'] == 1
    assert [(r['impl'], r['n_nodes']) for r in saved['synthetic']] == [
        ('dense', 20), ('dense', 40), ('labml_nn', 20), ('labml_nn', 40),
        ('edges', 100), ('edges', 200), ('edges', 400)]
    assert all(set(r) == MEASURE_KEYS for r in saved['synthetic'] + saved['scale'])
    assert set(saved['slopes']) == {'dense', 'labml_nn', 'edges'}
    assert [(r['impl'], r['allocator']) for r in saved['scale']] == [
        ('edges', 'default'), ('edges', 'thp'), ('edges', 'mmap_1g'), ('edges', 'malloc')]
    assert all(r['steps'] == 1 for r in saved['scale'])
    assert saved['dense_memory']['n_nodes'] == 40
    assert plot_path.stat().st_size > 0

    text = benchmark.format_report(results)
    assert 'Random graphs' in text and 'slope against N' in text and 'labml_nn' in text
    assert 'edges malloc' in text and 'bytes per node pair' in text and 'dense layers, one process' in text


@needs_planetoid
def test_alternating_on_cora(in_process):
    pytest.importorskip('torch_geometric')
    result = benchmark.alternate({'impls': ['edges', 'pyg'], 'rounds': 2, 'warmup': 1, 'threads': 1,
                                  'graph': {'kind': 'cora', 'data_dir': str(PLANETOID)}})
    assert result['n_nodes'] == 2708 and result['n_edges'] == 10556 + 2708
    assert set(result['impls']['edges']) == {'step_ms', 'eval_ms', 'peer', 'step_ratio', 'eval_ratio'}
    assert set(result['impls']['pyg']) == {'step_ms', 'eval_ms'}
    assert result['impls']['edges']['peer'] == 'pyg'
    assert 'Cora, one process, alternating' in benchmark.format_alternating(result, 'Cora')


def test_worker_env_sets_exactly_the_variant():
    shell = {'PATH': '/bin', 'MALLOC_MMAP_MAX_': '0', 'THP_MEM_ALLOC_ENABLE': '1', 'OMP_NUM_THREADS': '2'}
    # Without a variant the environment is inherited, threads apart
    assert benchmark.worker_env(shell) == shell
    assert benchmark.worker_env(shell, threads=1) == {**shell, 'OMP_NUM_THREADS': '1'}
    # A variant replaces whatever allocator settings the shell had
    assert benchmark.worker_env(shell, allocator='default') == {'PATH': '/bin', 'OMP_NUM_THREADS': '2'}
    assert benchmark.worker_env(shell, 1, 'thp') == {'PATH': '/bin', 'OMP_NUM_THREADS': '1',
                                                     'THP_MEM_ALLOC_ENABLE': '1'}
    malloc = benchmark.worker_env({}, allocator='malloc')
    assert malloc['MALLOC_MMAP_MAX_'] == '0' and int(malloc['MALLOC_TRIM_THRESHOLD_']) >= 2 ** 40
    assert benchmark.worker_env({}, allocator='mmap_1g')['MALLOC_MMAP_THRESHOLD_'] == str(2 ** 30)
    assert set(benchmark.ALLOCATOR_ENV) == {name for env in benchmark.ALLOCATORS.values() for name in env}
    assert set(benchmark.ALLOCATOR_ENV) <= set(benchmark.SPEED_ENV)
    with pytest.raises(ValueError, match='unknown allocator variant'):
        benchmark.worker_env(shell, allocator='jemalloc')


def test_allocator_rows_compare_with_the_default():
    rows = [fake_row('edges', 100, 1, allocator='default'), fake_row('edges', 100, 1, allocator='thp'),
            fake_row('pyg', 100, 1, allocator='default'), fake_row('pyg', 200, 1, allocator='malloc'),
            fake_row('pyg', 300, 1)]
    rows[1]['step_ms'] /= 2
    assert benchmark.peer_key(rows[1]) == ('edges', 100, 600, 'default')
    assert benchmark.peer_key(rows[0]) == ('pyg', 100, 600, 'default')
    assert benchmark.peer_key(rows[4]) == (None, 300, 1800, None)
    lines = benchmark.format_isolated(rows, 'title').splitlines()
    assert lines[3].startswith('edges thp') and lines[3].endswith('default  0.50x   1.00x')
    assert lines[2].endswith('pyg  1.00x   1.00x')  # the default rows compare with the peer implementation
    assert lines[5].startswith('pyg malloc') and not lines[5].endswith('x')  # no default row to compare with
    assert lines[6].startswith('pyg ') and 'None' not in lines[6]


def test_failures_show_in_the_tables():
    rows = [fake_row('edges', 100, 1), {'impl': 'edges', 'n_nodes': 10 ** 7, 'error': 'killed by signal 9'}]
    text = benchmark.format_isolated(rows, 'title')
    assert 'killed by signal 9' in text and '10,000,000' in text
    assert 'failed: no data' in benchmark.format_alternating({'error': 'no data'}, 'Cora')


def test_bad_flags():
    for argv in (['--sizes', 'a,b'], ['--sizes', '1'], ['--repeats', '0'], ['--threads', '0'], ['--degree', '0'],
                 ['--alternate-nodes', '1'], ['--dense-rounds', '0'], ['--scale-allocators', 'default,tcmalloc'],
                 ['--scale-allocators', ','], ['--scale-steps', '0'], ['--scale-pyg-degree', '0']):
        with pytest.raises(SystemExit):
            benchmark.parse_args(argv)
    assert benchmark.parse_sizes('1e3, 3000') == [1000, 3000]
    assert benchmark.parse_allocators('thp, malloc') == ['thp', 'malloc']
