"""
Tests of labml_gat/benchmarking.py and the appendix script experiments/benchmark.py:
the machinery on tiny sizes, the errors, the schema of the records, and that the README's
performance table is the rendering of the records. Nothing here is timed.
"""

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from conftest import PLANETOID, REPO, needs_planetoid
from labml_gat import benchmarking

SCRIPT = REPO / 'experiments' / 'benchmark.py'
TINY = dict(level='layer', graph='random', n_nodes=60, degree=3.0, in_features=12, n_heads=2,
            n_hidden=4, threads=1, rounds=2, warmup=0, steps=1)


def load_script():
    """experiments/benchmark.py as a module, without putting its folder on the path."""
    spec = importlib.util.spec_from_file_location('benchmark_appendix', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_random_graph():
    x, edge_index = benchmarking.random_graph(100, 4.0, in_features=7, seed=3)
    assert x.shape == (100, 7) and edge_index.shape == (2, 500)
    src, dst = edge_index
    # Every node has its self loop; the edges are sorted by target
    loops = src == dst
    assert torch.equal(torch.unique(src[loops]), torch.arange(100))
    assert torch.equal(dst, torch.sort(dst).values)
    x2, edge_index2 = benchmarking.random_graph(100, 4.0, in_features=7, seed=3)
    assert torch.equal(x, x2) and torch.equal(edge_index, edge_index2)


@pytest.mark.parametrize('impl', benchmarking.IMPLS)
def test_layers_compute_the_same_shape_and_step(impl):
    if impl == 'pyg':
        pytest.importorskip('torch_geometric')
    x, edge_index = benchmarking.random_graph(40, 3.0, in_features=12)
    layer = benchmarking.make_layer(impl, 12, n_heads=2, n_hidden=4)
    runner = benchmarking.Runner(layer, x, edge_index)
    before = [p.detach().clone() for p in layer.parameters()]
    runner.step()
    runner.evaluate()
    assert layer(x, edge_index).shape == (40, 8)
    assert any(not torch.equal(b, p) for b, p in zip(before, layer.parameters()))


def test_unknown_layer():
    with pytest.raises(ValueError, match="unknown implementation 'dense'"):
        benchmarking.make_layer('dense', 12, 2, 4)


def test_alternate_in_process():
    pytest.importorskip('torch_geometric')
    result = benchmarking.run_task(dict(TINY, mode='alternate', impls=['edges', 'lean', 'pyg']))
    assert result['rounds'] == 2 and set(result['impls']) == {'edges', 'lean', 'pyg'}
    for impl in ('edges', 'lean'):
        row = result['impls'][impl]
        assert {'step_ms', 'step_cpu_ms', 'eval_ms', 'eval_cpu_ms', 'step_ratio', 'eval_ratio',
                'step_ratio_wall', 'eval_ratio_wall'} <= set(row)
        assert all(value > 0 for value in row.values())
    assert 'step_ratio' not in result['impls']['pyg']


def test_worker_peak_and_error():
    result = benchmarking.run_worker(dict(TINY, mode='peak', impl='lean', level='model'))
    assert {'setup_bytes', 'peak_train_bytes', 'peak_eval_bytes', 'step_ms', 'step_cpu_ms'} \
        <= set(result)
    assert result['setup_bytes'] > 0 and result['peak_train_bytes'] >= 0
    error = benchmarking.run_worker(dict(TINY, mode='peak', impl='dense'))
    assert error == {'error': "ValueError: unknown implementation 'dense', "
                              "expected one of edges, lean, pyg"}


def test_figure_records_and_rendering(tmp_path):
    pytest.importorskip('torch_geometric')
    figure = benchmarking.measure_figure('layer_60', dict(TINY, impls=['lean', 'pyg']))
    assert figure['impls']['lean']['peak_ratio'] > 0
    assert 'peak_train_bytes' in figure['impls']['pyg']
    records = [benchmarking.record(figure, 'python experiments/benchmark.py --tiny', 1)]
    path = tmp_path / 'results' / 'benchmark.json'
    benchmarking.save_results(records, path)
    loaded = benchmarking.load_results(path)
    assert loaded == json.loads(json.dumps(records))
    check_schema(loaded)
    # A new measurement of the same figure replaces the old record and keeps the others
    other = dict(records[0], figure='layer_61')
    benchmarking.save_results([other], path)
    benchmarking.save_results([dict(records[0], command='again')], path)
    assert [(r['figure'], r['command'][-5:]) for r in benchmarking.load_results(path)] == \
        [('layer_61', '-tiny'), ('layer_60', 'again')]

    table = benchmarking.format_table(loaded)
    assert table.startswith(benchmarking.TABLE_HEADER)
    assert '| layer_60 | lean |' in table and '| layer_60 | pyg |' in table
    assert 'python experiments/benchmark.py --tiny' in benchmarking.format_provenance(loaded)
    fig = benchmarking.plot(loaded, str(tmp_path / 'plot.png'))
    assert (tmp_path / 'plot.png').stat().st_size > 0
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_bad_records(tmp_path):
    path = tmp_path / 'benchmark.json'
    path.write_text(json.dumps([{'figure': 'x'}]))
    with pytest.raises(ValueError, match="benchmark record 'x' lacks command, date"):
        benchmarking.load_results(path)
    record = {key: 1 for key in benchmarking.RECORD_KEYS}
    path.write_text(json.dumps([record, record]))
    with pytest.raises(ValueError, match='recorded twice'):
        benchmarking.load_results(path)
    assert benchmarking.load_results(tmp_path / 'none.json') == []


def test_failed_implementation_is_a_row_of_the_table():
    records = [{'figure': 'scale_9', 'command': 'c', 'date': 'd', 'machine': {}, 'versions': {},
                'threads': 1, 'level': 'model', 'graph': 'random', 'n_heads': 8, 'n_hidden': 8,
                'impls': {'lean': {'peak_train_bytes': 2 ** 30, 'step_cpu_ms': 12_000.0},
                          'pyg': {'error': 'RuntimeError: not enough memory'}}}]
    table = benchmarking.format_table(records).splitlines()
    assert table[2] == '| scale_9 | lean | 12.0 s |  |  |  | 1.00 GiB |  |'
    assert table[3].startswith('| scale_9 | pyg | RuntimeError: not enough memory |')


def run_script(*args, **kwargs):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          **kwargs)


@pytest.mark.parametrize('args, message', [
    (['--figures', 'nope'], "--figures takes cora, layer, scale, got 'nope'"),
    (['--n-heads', '0'], '--n-heads must be at least 1, got 0'),
    (['--impls', 'dense'], "--impls takes edges, lean, pyg, got 'dense'"),
    (['--layer-nodes', '1'], '--layer-nodes must be at least 2'),
    (['--degree', '0'], '--degree must be positive'),
])
def test_usage_errors(args, message):
    process = run_script(*args)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[-1] == f'benchmark.py: error: {message}'
    assert 'Traceback' not in process.stderr


def test_empty_data_dir_is_a_usage_error(tmp_path):
    process = run_script('--data-dir', str(tmp_path), '--results', str(tmp_path / 'r.json'))
    assert process.returncode == 2
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith('benchmark.py: error: cannot load Cora for the cora figure')
    assert 'Traceback' not in process.stderr and not (tmp_path / 'r.json').exists()


def test_script_writes_records(tmp_path):
    pytest.importorskip('torch_geometric')
    script = load_script()
    path = tmp_path / 'benchmark.json'
    script.main(['--figures', 'layer', 'scale', '--layer-nodes', '50', '--scale-nodes', '40',
                 '--in-features', '8', '--n-heads', '2', '--n-hidden', '2', '--rounds', '1',
                 '--warmup', '0', '--results', str(path), '--scale-impls', 'lean'])
    records = benchmarking.load_results(path)
    assert [r['figure'] for r in records] == ['layer_50', 'scale_40']
    check_schema(records)
    assert records[0]['command'].startswith('python experiments/benchmark.py --figures layer')
    assert set(records[1]['impls']) == {'lean'}


@needs_planetoid
def test_cora_runner():
    pytest.importorskip('torch_geometric')
    for impl in benchmarking.IMPLS:
        runner = benchmarking.make_runner(dict(graph='cora', data_dir=str(PLANETOID), n_heads=2,
                                               n_hidden=2, level='model'), impl)
        assert runner.x.shape == (2708, 1433) and runner.edge_index.shape == (2, 13264)
        runner.step()


def check_schema(records):
    for r in records:
        assert set(benchmarking.RECORD_KEYS) <= set(r)
        assert {'cpu', 'cores', 'ram_bytes'} <= set(r['machine'])
        assert {'torch', 'torch_geometric', 'python'} <= set(r['versions'])
        assert r['command'].startswith('python experiments/benchmark.py')
        for row in r['impls'].values():
            assert 'error' in row or 'peak_train_bytes' in row or 'step_cpu_ms' in row


def test_recorded_results():
    records = benchmarking.load_results()
    check_schema(records)
    names = {r['figure'] for r in records}
    assert {'cora', 'layer_100000'} <= names


def test_readme_performance_table_is_the_record():
    # The performance section quotes the table rendered from the records, character for
    # character; rerun the benchmark and paste `format_report(load_results())` to update it.
    text = (REPO / 'README-performance.md').read_text()
    start = text.index('<!-- benchmark-table -->') + len('<!-- benchmark-table -->')
    end = text.index('<!-- /benchmark-table -->')
    assert text[start:end].strip() == benchmarking.format_report(benchmarking.load_results())
