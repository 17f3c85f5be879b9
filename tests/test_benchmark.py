"""
Tests of labml_gat/benchmarking.py and the appendix script experiments/benchmark.py:
the machinery on tiny sizes, the errors, the schema of the records, and that the README's
performance table is the rendering of the records. Nothing here is timed.
"""

import json
import math
import mmap
import pathlib
import signal
import subprocess
from types import SimpleNamespace

import pytest
import torch

from conftest import PLANETOID, load_experiment, needs_planetoid, run_script
from labml_gat import benchmarking, results
from labml_gat.settings import prog

TINY = dict(level='layer', graph='random', n_nodes=60, degree=3.0, in_features=12, n_heads=2,
            n_hidden=4, threads=1, rounds=2, warmup=0, steps=1)


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


@pytest.mark.parametrize('n_nodes', [1, 7, 100, 10 ** 5, 10 ** 6, 10 ** 7, 2 ** 40])
@pytest.mark.parametrize('degree', [1.0, 3.0, 10.0, 64.0])
def test_a_whole_degree_draws_its_product(n_nodes, degree):
    """A whole degree draws `degree * n_nodes` random edges exactly: the same count, so
    the same random draws, whatever rounds a fractional product."""
    assert benchmarking.random_edges(n_nodes, degree) == int(degree) * n_nodes


def test_a_fractional_degree_draws_the_nearest_count():
    # 0.29 * 100 is 28.999999999999996 in floating point
    assert benchmarking.random_edges(100, 0.29) == 29
    assert benchmarking.random_graph(100, 0.29, in_features=3)[1].shape == (2, 129)
    assert benchmarking.random_edges(100, 0.294) == 29
    assert benchmarking.random_edges(100, 0.296) == 30


@pytest.mark.parametrize('impl', benchmarking.LAYER_IMPLS)
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
        assert all(value > 0 for key, value in row.items()
                   if not key.endswith(('_faults', '_system_ms')))
        assert all(row[f'{kind}_system_ms'] >= 0 for kind in ('step', 'eval'))
        assert all(row[f'{kind}_faults'] >= 0 if benchmarking.counts_page_faults()
                   else f'{kind}_faults' not in row for kind in ('step', 'eval'))
    assert 'step_ratio' not in result['impls']['pyg']
    # What fresh memory cost, before and after the rounds
    assert len(result['fresh_memory_s_per_gib']) == 2
    # A difference of two times: its sign is the machine's business, not a test's
    assert all(math.isfinite(cost) for cost in result['fresh_memory_s_per_gib'])


@pytest.mark.slow
def test_worker_peak_and_error():
    result = benchmarking.run_worker(dict(TINY, mode='peak', impl='lean', level='model'))
    assert {'setup_bytes', 'peak_train_bytes', 'peak_eval_bytes', 'step_ms', 'step_cpu_ms'} \
        <= set(result)
    assert result['setup_bytes'] > 0 and result['peak_train_bytes'] >= 0
    error = benchmarking.run_worker(dict(TINY, mode='peak', impl='dense'))
    assert error == {'error': "ValueError: unknown implementation 'dense', "
                              "expected one of edges, lean, dropin, pyg"}


@pytest.mark.slow
def test_figure_records_and_rendering(tmp_path):
    pytest.importorskip('torch_geometric')
    figure = benchmarking.measure_figure('layer_60', dict(TINY, impls=['lean', 'pyg']))
    assert figure['impls']['lean']['peak_ratio'] > 0
    assert 'peak_train_bytes' in figure['impls']['pyg']
    path = benchmarking.save_figure(figure, 'python experiments/benchmark.py --tiny', 1, tmp_path)
    assert path == tmp_path / 'benchmark_layer_60.json'
    loaded = results.load_figures(tmp_path)
    check_schema(loaded)
    assert loaded[0]['impls'] == json.loads(json.dumps(figure['impls']))
    # A new measurement of the same figure replaces the old record and keeps the others
    benchmarking.save_figure(dict(figure, figure='layer_61'), 'python experiments/benchmark.py'
                             ' --tiny', 1, tmp_path)
    benchmarking.save_figure(dict(figure, figure='cora'), 'python experiments/benchmark.py', 1,
                             tmp_path)
    benchmarking.save_figure(figure, 'python experiments/benchmark.py --again', 1, tmp_path)
    assert [(r['figure'], r['command'][-5:]) for r in results.load_figures(tmp_path)] == \
        [('cora', 'rk.py'), ('layer_60', 'again'), ('layer_61', '-tiny')]

    table = results.figures_table(loaded)
    assert table.startswith(results.FIGURES_HEADER)
    assert '| layer_60 | lean |' in table and '| layer_60 | pyg |' in table
    report = results.benchmark_table(tmp_path)
    assert 'python experiments/benchmark.py --again' in report
    fig = benchmarking.plot(loaded, str(tmp_path / 'plot.png'))
    assert (tmp_path / 'plot.png').stat().st_size > 0
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_a_task_run_in_this_process_leaves_its_threads_as_they_were():
    # An example that measures in its own process (the gallery's benchmark page) leaves the
    # examples after it the threads they had
    before = torch.get_num_threads()
    benchmarking.run_task(dict(TINY, mode='alternate', impls=['lean'], threads=before + 1))
    assert torch.get_num_threads() == before


def test_the_plot_names_the_layer_its_ratios_are_to():
    # GAT's figures are measured against PyG's GATConv, the others against its GATv2Conv
    import matplotlib.pyplot as plt
    row = {'step_ratio': 0.5, 'eval_ratio': 0.5, 'peak_ratio': 0.2}
    v2 = {'figure': 'layer_10', 'impls': {'dropin': row, 'pyg': {}}}
    gat = {**v2, 'figure': 'layer_10_gat', 'gat': True}
    for records, named, not_named in (([v2], "PyG's GATv2Conv", 'GATConv'),
                                      ([gat], "PyG's GATConv", 'GATv2Conv'),
                                      ([v2, gat], 'GATConv in the gat figures', None)):
        fig = benchmarking.plot(records)
        label = fig.axes[0].get_xlabel()
        plt.close(fig)
        assert named in label and (not_named is None or not_named not in label), label


def test_bad_records(tmp_path):
    (tmp_path / 'benchmark_x.json').write_text(json.dumps({'name': 'benchmark_x',
                                                           'values': {'level': 'layer'}}))
    with pytest.raises(ValueError, match="benchmark record 'benchmark_x' lacks command, date, "
                                         "machine, versions, values.graph"):
        results.load_figures(tmp_path)
    assert results.load_figures(tmp_path / 'none') == []


def test_failed_implementation_is_a_row_of_the_table():
    records = [{'figure': 'scale_9', 'command': 'c', 'date': 'd', 'machine': {}, 'versions': {},
                'threads': 1, 'level': 'model', 'graph': 'random', 'n_heads': 8, 'n_hidden': 8,
                'impls': {'lean': {'peak_train_bytes': 2 ** 30, 'step_cpu_ms': 12_000.0},
                          'pyg': {'error': 'RuntimeError: not enough memory'},
                          'edges': {'error': "RuntimeError: [enforce fail at alloc_cpu.cpp:127]"
                                             " err == 0. DefaultCPUAllocator: can't allocate "
                                             "memory: you tried to allocate 2816000000 bytes."}}}]
    table = results.figures_table(records).splitlines()
    assert table[2] == '| scale_9 | lean | 12.0 s |  |  |  | 1.00 GiB |  |  |'
    assert table[3].startswith('| scale_9 | pyg | RuntimeError: not enough memory |')
    assert table[4].startswith('| scale_9 | edges | out of memory (an allocation of 2.62 GiB '
                               'failed) |')


@pytest.mark.slow
@pytest.mark.parametrize('args, message', [
    (['--figures', 'nope'], "--figures takes cora, layer, scale, got 'nope'"),
    (['--n-heads', '0'], '--n-heads must be at least 1, got 0'),
    (['--impls', 'dense'], "--impls takes edges, lean, dropin, pyg, got 'dense'"),
    (['--layer-nodes', '1'], '--layer-nodes must be at least 2'),
    (['--degree', '0'], '--degree must be positive and finite, got 0.0'),
    (['--repeats', '0'], '--repeats must be at least 1, got 0'),
    (['--figures', 'layer', '--gat', '--impls', 'edges', 'lean'],
     '--gat: none of --impls edges lean has a GAT layer; only dropin and pyg do'),
    (['--figures', 'layer', '--layer-nodes', '50', '--degree', 'nan'],
     '--degree must be positive and finite, got nan'),
    (['--figures', 'cora', '--gat'], '--gat measures the layer figures; --figures cora has none'),
    (['--record', '--results', '.'],
     "--record writes into the project's records and --results into another folder: give one"),
    (['--figures', 'layer', '--plot', 'ratios.txt'],
     '--plot ratios.txt: an image is written as one of '),
    (['--device', 'mps' if torch.backends.mps.is_available() else 'cuda:99'],
     '--device mps: the benchmark measures cpu or cuda' if torch.backends.mps.is_available()
     else '--device cuda:99: ' + (f'there are {torch.cuda.device_count()} CUDA devices'
                                  if torch.cuda.is_available()
                                  else 'PyTorch finds no CUDA device here')),
])
def test_usage_errors(args, message):
    process = run_script('benchmark', *args)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines()[-1].startswith(f'benchmark.py: error: {message}')
    assert 'Traceback' not in process.stderr and process.stdout == ''


def benchmark_mistake(capsys, *argv) -> str:
    """The one line the benchmark's settings say of `argv`, with exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        load_experiment('benchmark').BenchmarkSettings.from_command_line(list(argv))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and len(err.splitlines()) == 1, err
    return err.strip()


@pytest.mark.parametrize('args, message', [
    (['--impls', 'pyg', 'dropin', 'pyg'], '--impls names pyg twice'),
    (['--figures', 'layer', '--layer-nodes', '50', '50'], '--layer-nodes names 50 twice'),
    (['--figures', 'layer', '--edge-dims', '0', '16', '0'], '--edge-dims names 0 twice'),
    (['--results', ''], '--results is empty; give a folder'),
    # `--record` replaces a record the pages quote: not by another graph, nor without some rows
    (['--figures', 'layer', '--degree', '3', '--record'],
     '--record would replace benchmark_layer_100000.json, measured with --degree 10.0, by one with '
     '--degree 3.0'),
    (['--figures', 'layer', '--n-heads', '4', '--record'],
     '--record would replace benchmark_layer_100000.json, measured with --n-heads 8, by one with '
     '--n-heads 4'),
    (['--figures', 'layer', '--impls', 'dropin', 'pyg', '--record'],
     '--record would replace benchmark_layer_100000.json without its rows of edges and lean'),
    # As every `must be at least`, with the value given
    (['--figures', 'layer', '--layer-nodes', '50', '1'], '--layer-nodes must be at least 2, got 1'),
    # A flag of figures not measured would be ignored: said, as the experiments say theirs
    (['--figures', 'layer', '--cora-rounds', '3'],
     '--figures layer does not read --cora-rounds; it is for --figures cora'),
    (['--figures', 'layer', '--scale-nodes', '5000'],
     '--figures layer does not read --scale-nodes; it is for --figures scale'),
    (['--figures', 'scale', '--rounds', '3'],
     '--figures scale does not read --rounds; it is for --figures layer'),
    (['--figures', 'scale', '--warmup', '0'],
     '--figures scale does not read --warmup; it is for --figures cora or layer'),
    # A plot of the ratios to PyG needs PyG and another implementation in some figure
    (['--figures', 'layer', '--impls', 'pyg', '--plot', 'ratios.png'],
     '--plot draws the ratios to pyg, and no figure measures pyg beside another'),
    (['--figures', 'layer', 'scale', '--impls', 'dropin', '--scale-impls', 'lean',
      '--plot', 'ratios.png'],
     '--plot draws the ratios to pyg, and no figure measures pyg beside another'),
])
def test_mistakes_found_before_anything_runs(capsys, args, message):
    assert benchmark_mistake(capsys, *args).startswith(f'{prog()}: error: {message}')


def test_pyg_is_asked_for_before_anything_runs(monkeypatch, capsys):
    # Without torch_geometric (it is not a dependency of the package), PyG's rows cannot run:
    # said at once, not after the workers have started
    script = load_experiment('benchmark')
    find_spec = script.importlib.util.find_spec
    monkeypatch.setattr(script.importlib.util, 'find_spec',
                        lambda name: None if name == 'torch_geometric' else find_spec(name))
    assert 'needs torch_geometric, which is not installed' in benchmark_mistake(capsys, '--figures', 'layer')
    settings, _ = script.BenchmarkSettings.from_command_line(['--figures', 'layer', '--impls', 'dropin'])
    assert [name for name, *_ in script.tasks(settings)] == ['layer_100000']


def test_a_cpu_device_with_an_index_is_the_cpu():
    script = load_experiment('benchmark')
    settings, _ = script.BenchmarkSettings.from_command_line(['--figures', 'layer', '--device', 'cpu:0',
                                                              '--threads', '2'])
    assert [name for name, *_ in script.tasks(settings)] == ['layer_100000_threads2']


@pytest.mark.slow
def test_edge_features_need_an_implementation_that_takes_them(tmp_path):
    process = run_script('benchmark', '--figures', 'layer', '--layer-nodes', '50',
                         '--edge-dims', '16', '--impls', 'edges', 'lean',
                         '--results', tmp_path / 'r')
    assert process.returncode == 2 and process.stdout == ''
    assert process.stderr.strip().splitlines() == [
        'benchmark.py: error: --edge-dims 16: none of --impls edges lean takes edge '
        'features; only dropin and pyg do']
    assert not (tmp_path / 'r').exists()


def test_a_failed_measurement_is_never_recorded(tmp_path, monkeypatch, capsys):
    """
    A figure whose worker failed, or one of whose implementations failed for another reason
    than a lack of memory, is not recorded, and the script ends with an error; one that ran
    out of memory is recorded, as the scale figures record it.
    """
    out_of_memory = ("RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0. "
                     "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes.")
    peak_errors = {60: 'ValueError: a bug', 70: out_of_memory}

    def worker(task):
        if task['mode'] == 'alternate':
            if task['n_nodes'] == 50:
                return {'error': 'ZeroDivisionError: integer modulo by zero'}
            times = dict.fromkeys(('step_ms', 'step_cpu_ms', 'eval_ms', 'eval_cpu_ms'), 1.0)
            return {'rounds': 1, 'impls': {impl: dict(times) for impl in task['impls']}}
        if task['impl'] == 'lean' and task['n_nodes'] in peak_errors:
            return {'error': peak_errors[task['n_nodes']]}
        return {'impl': task['impl'], 'setup_bytes': 1, 'peak_train_bytes': 1,
                'peak_eval_bytes': 1, 'memory_limit_bytes': None,
                **dict.fromkeys(('step_ms', 'step_cpu_ms', 'eval_ms', 'eval_cpu_ms'), 1.0)}

    monkeypatch.setattr(benchmarking, 'run_worker', worker)
    with pytest.raises(SystemExit) as stopped:
        load_experiment('benchmark').main(['--figures', 'layer', '--layer-nodes', '50', '60',
                                           '70', '--impls', 'lean', 'pyg',
                                           '--results', str(tmp_path)])
    assert str(stopped.value).endswith(
        'error: the measurement failed, nothing recorded of it: layer_50 (ZeroDivisionError: '
        'integer modulo by zero); layer_60 (ValueError: a bug)')
    assert [path.name for path in tmp_path.iterdir()] == ['benchmark_layer_70.json']
    # The figure recorded says where it went
    assert capsys.readouterr().out.splitlines()[-1] == \
        f"recorded in {tmp_path / 'benchmark_layer_70.json'}"


@pytest.mark.slow
def test_empty_data_dir_is_a_usage_error(tmp_path):
    process = run_script('benchmark', '--data-dir', tmp_path, '--results', tmp_path / 'r')
    assert process.returncode == 2
    last = process.stderr.strip().splitlines()[-1]
    assert last.startswith('benchmark.py: error: cannot load Cora for the cora figure')
    assert last.endswith('; or leave the figure out with --figures layer')
    assert 'Traceback' not in process.stderr and not (tmp_path / 'r').exists()


@pytest.mark.slow
def test_script_writes_records(tmp_path):
    pytest.importorskip('torch_geometric')
    script = load_experiment('benchmark')
    script.main(['--figures', 'layer', 'scale', '--layer-nodes', '50', '--scale-nodes', '40',
                 '--in-features', '8', '--n-heads', '2', '--n-hidden', '2', '--rounds', '1',
                 '--warmup', '0', '--results', str(tmp_path), '--scale-impls', 'lean'])
    records = results.load_figures(tmp_path)
    assert [r['figure'] for r in records] == ['layer_50', 'scale_40']
    check_schema(records)
    assert records[0]['command'].startswith('python experiments/benchmark.py --figures layer')
    assert set(records[1]['impls']) == {'lean'}


@pytest.mark.slow
def test_nothing_is_recorded_unless_asked(tmp_path, monkeypatch, capsys):
    """A user's quick run leaves the project's records alone, and prints its table once."""
    monkeypatch.setattr(results, 'RESULTS', tmp_path / 'records')
    (tmp_path / 'records').mkdir()
    script = load_experiment('benchmark')
    quick = ['--figures', 'layer', '--layer-nodes', '30', '40', '--in-features', '8',
             '--n-heads', '2', '--n-hidden', '2', '--rounds', '1', '--warmup', '0',
             '--impls', 'edges', 'lean']
    script.main(quick)
    assert list((tmp_path / 'records').iterdir()) == []
    out = capsys.readouterr().out
    assert out.count(results.FIGURES_HEADER) == 1
    assert sum(line.startswith('| layer_30 | edges |') for line in out.splitlines()) == 1
    # `--record` writes the project's records (one figure: `test_script_writes_records` writes two)
    script.main(quick[:4] + quick[5:] + ['--record'])
    assert [path.name for path in (tmp_path / 'records').iterdir()] == ['benchmark_layer_30.json']


@pytest.mark.slow
@pytest.mark.parametrize('flag', ['--results', '--plot'])
def test_output_paths_follow_one_rule(tmp_path, flag):
    """A missing folder, or a file where a folder is wanted: one line, before anything runs."""
    (tmp_path / 'a file').write_text('')
    for path in (tmp_path / 'missing' / 'x', tmp_path / 'a file' / 'x'):
        process = run_script('benchmark', '--figures', 'layer', flag, path)
        assert process.returncode == 2 and 'Traceback' not in process.stderr
        last = process.stderr.strip().splitlines()[-1]
        assert last.startswith(f'benchmark.py: error: {flag} {path}: ')
        assert process.stdout == ''
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a file']


@pytest.mark.slow
def test_help_is_short_and_says_each_default_once():
    process = run_script('benchmark', '--help')
    assert process.returncode == 0
    assert '```' not in process.stdout and '](' not in process.stdout
    assert 'default: none) (default' not in ' '.join(process.stdout.split())


@pytest.mark.slow
def test_drop_in_and_edge_feature_figures(tmp_path):
    # The drop-in GATv2Conv beside PyG's, with and without edge features, and figures of more
    # than one thread named for it
    pytest.importorskip('torch_geometric')
    script = load_experiment('benchmark')
    script.main(['--figures', 'layer', '--layer-nodes', '50', '--edge-dims', '0', '3',
                 '--impls', 'lean', 'dropin', 'pyg', '--in-features', '8', '--n-heads', '2',
                 '--n-hidden', '2', '--rounds', '1', '--warmup', '0', '--threads', '2',
                 '--results', str(tmp_path)])
    records = results.load_figures(tmp_path)
    check_schema(records)
    assert [r['figure'] for r in records] == ['layer_50_edge3_threads2', 'layer_50_threads2']
    assert set(records[0]['impls']) == {'dropin', 'pyg'} and records[0]['edge_dim'] == 3
    assert set(records[1]['impls']) == {'lean', 'dropin', 'pyg'}
    assert records[0]['threads'] == 2
    assert '3 edge features' in results.figures_provenance(records)
    with pytest.raises(ValueError, match="'lean' takes no edge features"):
        benchmarking.make_layer('lean', 8, 2, 2, edge_dim=3)


def test_gat_figures(tmp_path):
    # GAT's layers, the drop-in GATConv beside PyG's, with and without edge features, in figures
    # of their own; the other implementations have none
    pytest.importorskip('torch_geometric')
    script = load_experiment('benchmark')
    script.main(['--figures', 'layer', '--layer-nodes', '50', '--edge-dims', '0', '3', '--gat',
                 '--impls', 'lean', 'dropin', 'pyg', '--in-features', '8', '--n-heads', '2',
                 '--n-hidden', '2', '--rounds', '1', '--warmup', '0',
                 '--results', str(tmp_path)])
    records = results.load_figures(tmp_path)
    check_schema(records)
    assert [r['figure'] for r in records] == ['layer_50_gat', 'layer_50_gat_edge3']
    assert all(set(r['impls']) == {'dropin', 'pyg'} and r['gat'] for r in records)
    assert "one GAT layer (PyG's GATConv" in results.figures_provenance(records)
    for impl, name in (('dropin', 'labml_gat.gatv2_conv'), ('pyg', 'torch_geometric')):
        layer = benchmarking.make_layer(impl, 8, 2, 2, gat=True)
        assert type(layer).__name__ == 'GATConv' and type(layer).__module__.startswith(name)
    with pytest.raises(ValueError, match="'lean' has no GAT layer"):
        benchmarking.make_layer('lean', 8, 2, 2, gat=True)


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
        assert {'figure', 'command', 'date', 'machine', 'versions', 'threads', 'impls',
                *results.FIGURE_KEYS} <= set(r)
        assert {'cpu', 'cores', 'memory_gib'} <= set(r['machine'])
        assert {'torch', 'torch_geometric', 'python'} <= set(r['versions'])
        assert r['command'].startswith('python experiments/benchmark.py')
        for row in r['impls'].values():
            assert 'error' in row or 'peak_train_bytes' in row or 'step_cpu_ms' in row


def test_recorded_results():
    records = results.load_figures()
    check_schema(records)
    names = {r['figure'] for r in records}
    assert {'cora', 'layer_100000'} <= names


def test_gpu_figures_are_named_timed_and_described_as_such():
    # On a GPU a figure is named for its device, its table shows wall-clock times (the process's
    # CPU time says nothing of the kernels) and its provenance names the GPU
    settings = load_experiment('benchmark').BenchmarkSettings(figures=['cora', 'layer', 'scale'],
                                                              edge_dims=[0, 16], device='cuda:1')
    named = {name: task['device'] for name, task, _, _ in load_experiment('benchmark').tasks(settings)}
    assert named == dict.fromkeys(['cora_cuda1', 'layer_100000_cuda1', 'layer_100000_edge16_cuda1',
                                   'scale_1000000_cuda1'], 'cuda:1')
    record = {'figure': 'layer_9_cuda', 'device': 'cuda', 'threads': 1, 'level': 'layer',
              'graph': 'random', 'n_nodes': 9, 'degree': 1.0, 'in_features': 4, 'n_heads': 2,
              'n_hidden': 2, 'command': 'c', 'date': 'd', 'versions': {'torch': 't'},
              'machine': {'cpu': 'x', 'cores': 16, 'memory_gib': 128, 'gpu': 'NVIDIA H200',
                          'gpu_memory_gib': 140},
              'impls': {'lean': {'step_ms': 2.0, 'step_cpu_ms': 9.0, 'eval_ms': 1.0,
                                 'eval_cpu_ms': 9.0, 'step_ratio': 0.5, 'eval_ratio': 0.25}}}
    assert results.figures_table([record]).splitlines()[2] == \
        '| layer_9_cuda | lean | 2.0 ms | 1.0 ms | 0.50x | 0.25x |  |  |  |'
    assert results.describe_figure(record).endswith('2 heads x 2 on cuda')
    assert 'with an NVIDIA H200 (140 GiB)' in results.figures_provenance([record])


def test_several_runs_give_their_medians_and_each_runs_ratio(monkeypatch, capsys):
    """With `repeats`, each run of the alternating rounds is a fresh worker; the figure's
    times and ratios are the medians of the runs, and every run's ratio is kept and
    rendered. A run that fails is the figure's error, and no run follows it."""
    runs = [(0.3, 30.0), (0.1, 10.0), (0.2, 40.0)]
    calls = []

    def worker(task):
        if task['mode'] == 'peak':
            return {'impl': task['impl'], 'setup_bytes': 1, 'peak_train_bytes': 1,
                    'peak_eval_bytes': 1, 'memory_limit_bytes': None,
                    **dict.fromkeys(('step_ms', 'step_cpu_ms', 'eval_ms', 'eval_cpu_ms'), 1.0)}
        calls.append(task)
        if task.get('fail_at') == len(calls):
            return {'error': 'ValueError: a bug'}
        ratio, step = runs[len(calls) - 1]
        return {'rounds': 2, 'fresh_memory_s_per_gib': [len(calls), len(calls) + 0.5],
                'impls': {'dropin': {'step_ms': step, 'step_ratio': ratio},
                          'pyg': {'step_ms': 100.0}}}

    monkeypatch.setattr(benchmarking, 'run_worker', worker)
    task = dict(TINY, impls=['dropin', 'pyg'], repeats=3, threads=2)
    figure = benchmarking.measure_figure('layer_60', task)
    assert len(calls) == 3 and all(t['mode'] == 'alternate' for t in calls)
    assert capsys.readouterr().err.splitlines() == [f'  run {k} of 3' for k in (1, 2, 3)]
    assert figure['impls']['dropin']['step_ratio'] == 0.2
    assert figure['impls']['dropin']['step_ms'] == 30.0
    assert figure['run_step_ratios'] == {'dropin': [0.3, 0.1, 0.2]}
    assert figure['fresh_memory_s_per_gib'] == [1, 1.5, 2, 2.5, 3, 3.5]
    record = dict(figure, command='c', date='d', versions={'torch': 't'},
                  machine={'cpu': 'x', 'cores': 2, 'memory_gib': 24})
    assert results.figures_table([record]).splitlines()[2].startswith(
        '| layer_60 | dropin | 30.0 ms |  | 0.20x |')
    assert ', fresh memory 1.00 to 3.50 s/GiB; the median of 3 runs, step / PyG in each: ' \
        'dropin 0.30x, 0.10x, 0.20x; peak / PyG in each: dropin 1.00x, 1.00x, 1.00x. ' in \
        results.figures_provenance([record])
    # One run is a figure as before: no runs to tell of
    calls.clear()
    single = benchmarking.measure_figure('layer_60', dict(task, repeats=1))
    assert 'runs' not in single and single['impls']['dropin']['step_ratio'] == 0.3
    calls.clear()
    failed = benchmarking.measure_figure('layer_60', dict(task, fail_at=2))
    assert failed['error'] == 'ValueError: a bug' and len(calls) == 2


def test_several_runs_measure_each_peak_as_often_and_keep_the_median(monkeypatch):
    """With `repeats`, each implementation's peak is measured in as many fresh processes:
    one process's peak varies from run to run (where the allocator's heap stands when the
    step ends), and one sample would make the ratio. The median is kept, and each run's
    `peak / PyG` is recorded and rendered."""
    peaks = {'dropin': [130, 100, 110], 'pyg': [950, 1000, 900]}
    calls = []

    def worker(task):
        if task['mode'] == 'alternate':
            return {'rounds': 2, 'impls': {'dropin': {'step_ratio': 0.5}, 'pyg': {}}}
        calls.append(task['impl'])
        train = peaks[task['impl']][calls.count(task['impl']) - 1]
        return {'impl': task['impl'], 'setup_bytes': 1, 'peak_train_bytes': train,
                'peak_eval_bytes': train // 10, 'memory_limit_bytes': None,
                **dict.fromkeys(('step_ms', 'step_cpu_ms', 'eval_ms', 'eval_cpu_ms'), 1.0)}

    monkeypatch.setattr(benchmarking, 'run_worker', worker)
    figure = benchmarking.measure_figure('layer_60', dict(TINY, impls=['dropin', 'pyg'],
                                                          repeats=3))
    assert sorted(calls) == ['dropin'] * 3 + ['pyg'] * 3
    rows = figure['impls']
    assert (rows['dropin']['peak_train_bytes'], rows['pyg']['peak_train_bytes']) == (110, 950)
    assert rows['dropin']['peak_ratio'] == 110 / 950
    assert figure['run_peak_ratios'] == {'dropin': [130 / 950, 100 / 1000, 110 / 900]}
    record = dict(figure, figure='layer_60', command='c', date='d', versions={'torch': 't'},
                  machine={'cpu': 'x', 'cores': 2, 'memory_gib': 24}, runs=3,
                  run_step_ratios={'dropin': [0.5, 0.5, 0.5]})
    assert '; peak / PyG in each: dropin 0.14x, 0.10x, 0.12x' in \
        results.figures_provenance([record])
    # One run: one peak each, as before
    calls.clear()
    single = benchmarking.measure_figure('layer_60', dict(TINY, impls=['dropin', 'pyg']))
    assert calls == ['dropin', 'pyg'] and 'run_peak_ratios' not in single


def test_page_faults_count_fresh_memory():
    # A call that writes 64 MiB of fresh memory maps its pages in (at least one fault per huge
    # page); one that writes a tensor it already has maps in nothing new. A system that counts
    # no page faults (some sandboxes) gives no count rather than a count of none. The memory is
    # mapped by the call itself, as an allocator that kept a freed block might not; the process's
    # other threads may fault meanwhile: the fewest of a few calls is the call's own
    def write_fresh_memory():
        with mmap.mmap(-1, 2 ** 26) as fresh:
            torch.frombuffer(fresh, dtype=torch.float32).fill_(1.0)

    old = torch.zeros(2 ** 16)
    fresh = benchmarking.timed(write_fresh_memory)[3]
    again = [benchmarking.timed(lambda: old.fill_(1.0))[3] for _ in range(5)]
    if benchmarking.counts_page_faults():
        assert fresh >= 32 and min(again) < 32
    else:
        assert fresh is None and again == [None] * 5
    assert math.isfinite(benchmarking.fresh_memory_seconds_per_gib(2 ** 24))


@pytest.fixture
def no_page_faults_counted(monkeypatch):
    """The system as a sandbox that counts no page faults shows it to the process."""
    real = benchmarking.resource.getrusage
    monkeypatch.setattr(benchmarking.resource, 'getrusage', lambda who: SimpleNamespace(
        ru_stime=real(who).ru_stime, ru_minflt=0, ru_maxrss=real(who).ru_maxrss))
    benchmarking.counts_page_faults.cache_clear()
    yield
    benchmarking.counts_page_faults.cache_clear()


def test_a_system_that_counts_no_page_faults_records_no_count(monkeypatch,
                                                               no_page_faults_counted):
    class Fake:
        def __init__(self, impl):
            self.step = self.evaluate = lambda: torch.empty(2 ** 22).fill_(1.0)

    monkeypatch.setattr(benchmarking, 'make_runner', lambda task, impl: Fake(impl))
    assert not benchmarking.counts_page_faults()
    assert benchmarking.timed(lambda: torch.empty(2 ** 22).fill_(1.0))[3] is None
    rows = benchmarking.alternate(dict(TINY, impls=['lean', 'pyg']))['impls']
    assert rows['lean']['step_ms'] > 0 and 'step_ratio' in rows['lean']
    assert not any(key.endswith('_faults') for row in rows.values() for key in row)


def test_page_faults_and_the_cost_of_fresh_memory_are_rendered():
    record = {'figure': 'layer_9', 'threads': 2, 'level': 'layer', 'graph': 'random',
              'n_nodes': 9, 'degree': 1.0, 'in_features': 4, 'n_heads': 2, 'n_hidden': 2,
              'command': 'c', 'date': 'd', 'versions': {'torch': 't'},
              'machine': {'cpu': 'x', 'cores': 2, 'memory_gib': 24},
              'fresh_memory_s_per_gib': [0.3312, 0.95],
              'impls': {'dropin': {'step_ms': 2.0, 'eval_ms': 1.0, 'step_ratio': 0.5,
                                   'eval_ratio': 0.25, 'step_faults': 6253.0},
                        'pyg': {'step_ms': 4.0, 'eval_ms': 4.0, 'step_faults': 1005485.0}}}
    table = results.figures_table([record]).splitlines()
    assert table[2].endswith('| 0.50x | 0.25x |  |  | 6.3k |')
    assert table[3].endswith('|  |  |  |  | 1.01M |')
    assert 'fresh memory 0.33 then 0.95 s/GiB' in results.figures_provenance([record])


def test_the_ratio_uses_the_wall_clock_on_a_gpu(monkeypatch):
    # Times of one round: CPU time says the layer is 4x PyG's, the wall clock 0.5x; on a GPU the
    # wall clock is the one that counts
    clocks = {'lean': (1.0, 4.0, 0.0, 0), 'pyg': (2.0, 1.0, 0.0, 0)}

    class Fake:
        def __init__(self, impl):
            self.step = self.evaluate = lambda: impl

    monkeypatch.setattr(benchmarking, 'make_runner', lambda task, impl: Fake(impl))
    monkeypatch.setattr(benchmarking, 'timed', lambda function, device: clocks[function()])
    task = dict(TINY, impls=['lean', 'pyg'], rounds=1)
    assert benchmarking.alternate(task)['impls']['lean']['step_ratio'] == 4.0
    monkeypatch.setattr(benchmarking, 'on_gpu', lambda task: True)
    assert benchmarking.alternate(task)['impls']['lean']['step_ratio'] == 0.5


def test_a_missing_ratio_says_why():
    # The plot writes this where a figure's bars would be
    pyg_oom = {'error': "RuntimeError: DefaultCPUAllocator: can't allocate memory"}
    assert benchmarking.no_ratio({'peak_train_bytes': 1}, pyg_oom) == \
        'no ratio: PyG ran out of memory'
    assert benchmarking.no_ratio({}, {'error': 'ValueError: bad'}) == 'no ratio: PyG failed'
    assert benchmarking.no_ratio({'error': 'MemoryError'}, {}) == \
        'no ratio: it ran out of memory'


def test_pygs_failure_is_the_reason_when_both_failed():
    # Without PyG's row there is no ratio, whatever became of the implementation's own
    assert benchmarking.no_ratio({'error': 'MemoryError'}, {'error': 'ValueError: bad'}) == \
        'no ratio: PyG failed'


def test_an_empty_data_dir_is_refused():
    """An empty --data-dir is a mistake, not the current folder."""
    from labml_gat.settings import UsageError
    with pytest.raises(UsageError, match='--data-dir is empty'):
        load_experiment('benchmark').BenchmarkSettings(figures=['cora'], data_dir='').check()


def test_a_failed_peak_keeps_the_implementations_times():
    # The alternating rounds ran; only the peak's own process ran out of memory
    record = {'figure': 'layer_9', 'threads': 1, 'impls': {'dropin': {
        'step_cpu_ms': 5.0, 'eval_cpu_ms': 2.0, 'step_ratio': 0.5, 'eval_ratio': 0.25,
        'error': 'MemoryError'}}}
    assert results.figures_table([record]).splitlines()[2] == \
        '| layer_9 | dropin | 5.0 ms | 2.0 ms | 0.50x | 0.25x | MemoryError |  |  |'


def test_a_figure_that_failed_is_a_row_with_its_error():
    record = {'figure': 'layer_50', 'threads': 1,
              'error': 'ZeroDivisionError: integer modulo by zero'}
    assert results.figures_table([record]).splitlines()[2:] == [
        '| layer_50 | | ZeroDivisionError: integer modulo by zero | | | | | | |']


@pytest.mark.parametrize('error, short', [
    ('CUDA out of memory. Tried to allocate 26.23 GiB. GPU 0 has a total capacity of 139.80 GiB',
     'out of memory (an allocation of 26.23 GiB failed)'),
    ('CUDA out of memory. Tried to allocate 512.00 MiB. GPU 0 has a total capacity of 79.10 GiB',
     'out of memory (an allocation of 512.00 MiB failed)'),
    ("DefaultCPUAllocator: can't allocate memory: you tried to allocate 536870912 bytes.",
     'out of memory (an allocation of 0.50 GiB failed)'),
    ('RuntimeError: the graph has 0 edges, expected at least 1', None)])
def test_a_short_error_says_how_much_memory_was_asked_for(error, short):
    # Any other error of a line is kept whole
    assert results.short_error(error) == (short or error)


@pytest.mark.parametrize('error, lack_of_memory', [
    ("RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes.",
     True),
    ('MemoryError', True),
    ('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 26.23 GiB.', True),
    (f'killed by signal {signal.SIGKILL.value} (out of memory?)', True),
    (f'killed by signal {signal.SIGSEGV.value} (out of memory?)', False),
    ('RuntimeError: unable to open shared memory object </torch_1> in read-write mode', False),
    ('ValueError: a bug', False)])
def test_a_lack_of_memory_is_a_result_and_any_other_error_a_failure(error, lack_of_memory):
    figure = {'impls': {'lean': {'error': error}, 'pyg': {'peak_train_bytes': 1}}}
    assert benchmarking.out_of_memory(error) is lack_of_memory
    assert benchmarking.failure(figure) == (None if lack_of_memory else error)


def test_a_figure_where_every_implementation_ran_out_of_memory_failed():
    # Nothing of it was measured (the graph itself did not fit): not a record to keep
    error = "RuntimeError: DefaultCPUAllocator: can't allocate memory: you tried to allocate 9"
    figure = {'impls': {'lean': {'error': error}, 'pyg': {'error': 'MemoryError'}}}
    assert benchmarking.failure(figure) == error


def test_a_worker_the_system_killed_ran_out_of_memory(monkeypatch):
    # The kernel's out-of-memory killer sends SIGKILL; another signal is a failure
    for sig, lack_of_memory in ((signal.SIGKILL, True), (signal.SIGSEGV, False)):
        monkeypatch.setattr(benchmarking.subprocess, 'run', lambda *args, **kwargs:
                            subprocess.CompletedProcess(args, -sig.value, '', ''))
        error = benchmarking.run_worker(dict(TINY, mode='peak', impl='lean'))['error']
        assert benchmarking.out_of_memory(error) is lack_of_memory, error


def scripted_rounds(monkeypatch, cpu, wall):
    """`alternate` with implementations whose calls take the given seconds, round by round
    (the same for a step and an evaluation, and again from the first round in the next call of
    `alternate`); returns the calls, in the order they were made."""
    calls = []

    class Fake:
        def __init__(self, impl):
            self.step, self.evaluate = (lambda: (impl, 'step')), (lambda: (impl, 'eval'))

    def timed(function, device):
        calls.append(function())
        impl = calls[-1][0]
        k = (calls.count(calls[-1]) - 1) % len(cpu[impl])
        return wall[impl][k], cpu[impl][k], 0.0, 0

    monkeypatch.setattr(benchmarking, 'make_runner', lambda task, impl: Fake(impl))
    monkeypatch.setattr(benchmarking, 'timed', timed)
    monkeypatch.setattr(benchmarking, 'fresh_memory_seconds_per_gib', lambda: 0.0)
    return calls


# A warm-up round, then three rounds: CPU time says lean is 0.5x, 4x and 0.25x PyG's in the
# rounds, the wall clock 2x in each
ROUNDS_CPU = {'lean': [100.0, 1.0, 8.0, 3.0], 'pyg': [100.0, 2.0, 2.0, 12.0]}
ROUNDS_WALL = {'lean': [100.0, 2.0, 2.0, 2.0], 'pyg': [100.0, 1.0, 1.0, 1.0]}


def test_the_ratio_is_the_median_of_each_rounds_ratio(monkeypatch):
    # Not the mean of the rounds' ratios (1.58x), nor the ratio of the median times (1.5x)
    scripted_rounds(monkeypatch, ROUNDS_CPU, ROUNDS_WALL)
    task = dict(TINY, impls=['lean', 'pyg'], warmup=1, rounds=3)
    rows = benchmarking.alternate(task)['impls']
    for kind in ('step', 'eval'):
        assert rows['lean'][f'{kind}_ratio'] == rows['lean'][f'{kind}_ratio_cpu'] == 0.5
        assert rows['lean'][f'{kind}_ratio_wall'] == 2.0
        # The times are the medians of the rounds kept
        assert (rows['lean'][f'{kind}_cpu_ms'], rows['pyg'][f'{kind}_cpu_ms']) == (3000, 2000)
        assert (rows['lean'][f'{kind}_ms'], rows['pyg'][f'{kind}_ms']) == (2000, 1000)


def test_the_ratio_uses_the_wall_clock_with_several_threads_or_on_a_gpu(monkeypatch):
    scripted_rounds(monkeypatch, ROUNDS_CPU, ROUNDS_WALL)
    task = dict(TINY, impls=['lean', 'pyg'], warmup=1, rounds=3)
    row = benchmarking.alternate(dict(task, threads=2))['impls']['lean']
    assert row['step_ratio'] == row['step_ratio_wall'] == 2.0 and row['step_ratio_cpu'] == 0.5
    # On a GPU the process's CPU time says nothing of the kernels: no ratio of it is kept
    monkeypatch.setattr(benchmarking, 'on_gpu', lambda task: True)
    row = benchmarking.alternate(task)['impls']['lean']
    assert row['step_ratio'] == row['step_ratio_wall'] == 2.0 and 'step_ratio_cpu' not in row


def test_rounds_rotate_the_order_of_the_implementations(monkeypatch):
    calls = scripted_rounds(monkeypatch, ROUNDS_CPU, ROUNDS_WALL)
    benchmarking.alternate(dict(TINY, impls=['lean', 'pyg'], warmup=1, rounds=3))
    firsts = [calls[k][0] for k in range(0, len(calls), 2)]
    assert firsts == ['lean', 'lean', 'pyg', 'pyg', 'lean', 'lean', 'pyg', 'pyg']
    assert calls[:4] == [('lean', 'step'), ('pyg', 'step'), ('lean', 'eval'), ('pyg', 'eval')]


def test_the_peak_is_the_memory_above_data_and_model(monkeypatch):
    # Data and model hold 100 bytes; a step needs 50 more at its peak and keeps 10 (gradients,
    # Adam's state), an evaluation 20 more; of two steps, the first takes 3 s and the second 1 s
    memory = {'now': 100, 'mark': 100}
    durations = iter([(3.0, 3.0, 0.0, 0), (1.0, 1.0, 0.0, 0), (2.0, 2.0, 0.0, 0),
                      (2.0, 2.0, 0.0, 0)])

    def use(extra, kept):
        memory['mark'] = max(memory['mark'], memory['now'] + extra)
        memory['now'] += kept

    def reset():
        memory['mark'] = memory['now']
        return memory['now']

    runner = SimpleNamespace(step=lambda: use(50, 10), evaluate=lambda: use(20, 0))
    monkeypatch.setattr(benchmarking, 'make_runner', lambda task, impl: runner)
    monkeypatch.setattr(benchmarking, 'peak_resident_bytes', lambda: memory['mark'])
    monkeypatch.setattr(benchmarking, 'reset_peak', reset)
    monkeypatch.setattr(benchmarking, 'timed', lambda function, device: (function(),
                                                                          next(durations))[1])
    result = benchmarking.peak(dict(TINY, impl='lean', steps=2))
    assert (result['setup_bytes'], result['peak_train_bytes'], result['peak_eval_bytes']) == \
        (100, 60, 40)
    assert (result['step_ms'], result['step_cpu_ms'], result['eval_ms']) == (1000, 1000, 2000)


def test_the_page_fault_probe_is_not_inside_the_peak(monkeypatch):
    # The probe's 8 MiB of fresh memory are written before the high-water mark is reset, once
    mapped, at_reset = [], []
    real_mmap = benchmarking.mmap.mmap

    def mmap(*args, **kwargs):
        mapped.append(args)
        return real_mmap(*args, **kwargs)

    def reset():
        at_reset.append(len(mapped))
        return 0

    runner = SimpleNamespace(step=lambda: None, evaluate=lambda: None)
    monkeypatch.setattr(benchmarking, 'make_runner', lambda task, impl: runner)
    monkeypatch.setattr(benchmarking.mmap, 'mmap', mmap)
    monkeypatch.setattr(benchmarking, 'reset_peak', reset)
    monkeypatch.setattr(benchmarking, 'peak_resident_bytes', lambda: 0)
    benchmarking.counts_page_faults.cache_clear()
    try:
        benchmarking.peak(dict(TINY, impl='lean', steps=2))
    finally:
        benchmarking.counts_page_faults.cache_clear()
    assert len(mapped) == 1 and at_reset == [1, 1]


def test_the_high_water_mark_outlives_freed_memory_until_it_is_reset():
    if not pathlib.Path('/proc/self/clear_refs').exists():
        pytest.skip('the system keeps no high-water mark to reset')
    # 128 MiB mapped, written and unmapped here: memory no allocator kept from before
    setup = benchmarking.reset_peak()
    with mmap.mmap(-1, 2 ** 27) as block:
        torch.frombuffer(block, dtype=torch.float32).fill_(1.0)
    assert benchmarking.peak_resident_bytes() - setup >= 2 ** 27 * 0.9
    assert benchmarking.reset_peak() - setup < 2 ** 26
    assert benchmarking.peak_resident_bytes() - setup < 2 ** 26


def test_the_peak_ratio_is_the_training_peak_over_pygs(monkeypatch):
    # Without alternating rounds (the scale figures), the peak's own times are the ones kept
    peaks = {'lean': (50, 10), 'pyg': (200, 80)}

    def worker(task):
        train, evaluation = peaks[task['impl']]
        return {'impl': task['impl'], 'setup_bytes': 1, 'peak_train_bytes': train,
                'peak_eval_bytes': evaluation, 'memory_limit_bytes': None,
                'step_ms': 7.0, 'step_cpu_ms': 6.0, 'eval_ms': 3.0, 'eval_cpu_ms': 2.0}

    monkeypatch.setattr(benchmarking, 'run_worker', worker)
    figure = benchmarking.measure_figure('scale_60', dict(TINY, impls=['lean', 'pyg']),
                                         alternating=False)
    assert figure['impls']['lean']['peak_ratio'] == 0.25
    assert 'peak_ratio' not in figure['impls']['pyg']
    assert figure['impls']['lean']['step_cpu_ms'] == 6.0


def test_a_figure_is_recorded_with_its_threads_load_and_machine(tmp_path, monkeypatch):
    # The load average of the last minute; on a GPU the machine with its GPU
    monkeypatch.setattr(results, 'machine', lambda device='cpu': {'device': device})
    monkeypatch.setattr(benchmarking.os, 'getloadavg', lambda: (1.26, 2.0, 3.0))
    figure = {'figure': 'layer_9_cuda', 'device': 'cuda', 'level': 'layer', 'graph': 'random',
              'n_heads': 2, 'n_hidden': 2, 'threads': 8, 'impls': {}}
    path = benchmarking.save_figure(figure, 'python experiments/benchmark.py --device cuda', 8,
                                    tmp_path)
    record = results.load(path.stem, tmp_path)
    assert record['machine'] == {'device': 'cuda'} and record['name'] == 'benchmark_layer_9_cuda'
    assert record['values']['load_average'] == 1.3 and record['values']['threads'] == 8
    assert record['command'] == 'python experiments/benchmark.py --device cuda'


def test_a_call_is_charged_its_system_time_and_page_faults(monkeypatch):
    usage = iter([SimpleNamespace(ru_utime=5.0, ru_stime=1.0, ru_minflt=10),
                  SimpleNamespace(ru_utime=7.0, ru_stime=1.25, ru_minflt=30)])
    monkeypatch.setattr(benchmarking, 'counts_page_faults', lambda: True)
    monkeypatch.setattr(benchmarking.resource, 'getrusage', lambda who: next(usage))
    assert benchmarking.timed(lambda: None)[2:] == (0.25, 20)


def test_fresh_memory_costs_the_first_write_less_the_second(monkeypatch):
    # A first write of 3 s and a second of 1 s to 1 MiB: 2 s per MiB, 2048 s per GiB
    clock = iter([10.0, 13.0, 20.0, 21.0])
    monkeypatch.setattr(benchmarking.time, 'perf_counter', lambda: next(clock))
    assert benchmarking.fresh_memory_seconds_per_gib(2 ** 20) == 2048.0


def test_each_figure_is_asked_for_its_rounds_and_runs():
    script = load_experiment('benchmark')
    settings = script.BenchmarkSettings(figures=['cora', 'layer', 'scale'], rounds=3,
                                        cora_rounds=7, warmup=2, repeats=4)
    tasks = {name: task for name, task, _, _ in script.tasks(settings)}
    assert (tasks['cora']['rounds'], tasks['layer_100000']['rounds']) == (7, 3)
    assert all(task['repeats'] == 4 and task['warmup'] == 2 for task in tasks.values())


def test_the_plots_labels_are_inside_the_figure():
    # The axis label names both of PyG's layers when the records mix GAT's figures with the
    # others: the whole of it is drawn, "(lower is better)" included, not cut at the edge
    import matplotlib.pyplot as plt
    row = {'step_ratio': 0.5, 'eval_ratio': 0.5, 'peak_ratio': 0.2}
    v2 = {'figure': 'layer_1000000_edge16_threads2', 'impls': {'dropin': row, 'pyg': {}}}
    gat = {**v2, 'figure': 'layer_100000_gat_edge16', 'gat': True}
    fig = benchmarking.plot([v2, gat])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    texts = [fig.axes[0].xaxis.label, fig.axes[0].title, *fig.axes[0].get_yticklabels()]
    outside = [text.get_text() for text in texts
               if not (box.x0 - 1 <= text.get_window_extent(renderer).x0
                       and text.get_window_extent(renderer).x1 <= box.x1 + 1)]
    plt.close(fig)
    assert not outside, outside


def test_a_tall_plot_shows_its_key_and_scale_above_the_first_bars():
    # The recorded figures make a chart taller than a screen: a reader at its first bars sees
    # which colour is which ratio, and the scale, without scrolling to its foot
    import matplotlib.pyplot as plt
    row = {'step_ratio': 0.5, 'eval_ratio': 0.5, 'peak_ratio': 0.2}
    fig = benchmarking.plot([{'figure': f'layer_{n}', 'impls': {'dropin': row, 'pyg': {}}}
                             for n in range(20)])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    legend, axes = fig.legends[0].get_window_extent(renderer), ax.get_window_extent(renderer)
    top_labels = [tick.label2.get_visible() for tick in ax.xaxis.get_major_ticks()]
    plt.close(fig)
    assert legend.y0 >= axes.y1 and all(top_labels)
