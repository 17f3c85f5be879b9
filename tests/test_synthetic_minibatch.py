"""
The million-node script's settings, its timing and its record, on graphs of a few thousand nodes.
"""

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO, load_experiment, the_mistake
from labml_gat import distributed, results, training
from labml_gat.settings import UsageError

sm = load_experiment('synthetic_minibatch')
SCRIPT = REPO / 'experiments' / 'synthetic_minibatch.py'
# A graph of a few thousand nodes, in a test's folder
SMALL = ['--nodes', '2000', '--eval-nodes', '1000']


# ## Settings

@pytest.mark.parametrize('changes, message', [
    ({'learning_rate': -1.0}, '--learning-rate must be positive and finite, got -1.0'),
    ({'learning_rate': 0.0}, '--learning-rate must be positive and finite, got 0.0'),
    ({'learning_rate': float('nan')}, '--learning-rate must be .* got nan'),
    ({'learning_rate': float('inf')}, '--learning-rate must be .* got inf'),
    ({'dropout': 1.0}, r'--dropout must be a probability in \[0, 1\), got 1.0'),
    ({'dropout': float('nan')}, r'--dropout must be a probability in \[0, 1\), got nan'),
    ({'degree': 0.0}, '--degree must be positive and finite, got 0.0'),
    ({'degree': -2.5}, '--degree must be positive and finite, got -2.5'),
    ({'degree': float('nan')}, '--degree must be positive and finite, got nan'),
    ({'degree': float('inf')}, '--degree must be positive and finite, got inf'),
])
def test_bad_settings(changes, message):
    with pytest.raises(UsageError, match=message):
        sm.SyntheticSettings(**changes).check()


# ## The degree: an average, as the benchmark's

def test_the_degree_is_the_benchmarks_average_in_degree(tmp_path):
    """`--degree` takes a fraction, as the benchmark's does, with the same default and help:
    one flag of one meaning in both scripts."""
    from labml_gat.settings import argument_parser
    bm = load_experiment('benchmark')
    s, _ = sm.SyntheticSettings.from_command_line([*SMALL, '--degree', '2.5',
                                                   '--cache', str(tmp_path)])
    assert s.degree == 2.5
    flags = [{action.dest: action for action in argument_parser(cls, '')._actions}['degree']
             for cls in (sm.SyntheticSettings, bm.BenchmarkSettings)]
    assert [(f.type, f.default, f.help) for f in flags] == [(float, None, flags[1].help)] * 2
    assert sm.SyntheticSettings().degree == bm.BenchmarkSettings().degree


@pytest.mark.parametrize('nodes, degree, random', [
    (2000, 2.5, 5000), (2000, 0.3, 600), (2000, 3.0, 6000),
    # Products that floating point puts just below their whole number: 28.999999999999996
    (100, 0.29, 29), (100, 1.15, 115), (1000, 2.01, 2010)])
def test_the_graph_has_the_edges_of_its_degree(nodes, degree, random):
    """`degree` random in-edges per node on average, the whole number nearest to
    `degree * nodes`, and a self loop each: the edges the memory check and the record count
    are the ones drawn."""
    s = sm.SyntheticSettings(nodes=nodes, eval_nodes=nodes // 2, degree=degree)
    _, edge_index = sm.random_graph(s.nodes, s.degree, s.in_features, s.seed)
    assert s.edges() == edge_index.shape[1] == random + nodes
    assert type(s.edges()) is int


def test_each_number_of_edges_has_its_own_graph_in_the_cache(tmp_path):
    """A cached graph is never read for another number of random edges, and is shared by the
    degrees that draw the same graph; a whole degree keeps the name of the folders written
    when the degree was a whole number, which are read again."""
    folders = {degree: sm.SyntheticSettings(cache=str(tmp_path), degree=degree).graph_folder()
               for degree in (10, 10.0, 2.5, 2.4999999999, 2.0, 0.1, 0.3)}
    assert folders[10] == folders[10.0] == tmp_path / 'graph_1000000_10_128_8_0'
    assert folders[2.5] == folders[2.4999999999] == tmp_path / 'graph_1000000_2500000e_128_8_0'
    assert len({folders[d] for d in (10.0, 2.5, 2.0, 0.1, 0.3)}) == 5
    # Two degrees of one folder draw one graph
    assert all(torch.equal(a, b) for a, b in zip(sm.random_graph(1000, 2.5, 4),
                                                 sm.random_graph(1000, 2.4999999999, 4)))
    # A count that differs by one edge is another folder
    small = {d: sm.SyntheticSettings(cache=str(tmp_path), nodes=100, degree=d).graph_folder()
             for d in (0.29, 0.28)}
    assert small[0.29].name == 'graph_100_29e_128_8_0' and small[0.28] != small[0.29]


@pytest.mark.parametrize('changes', [{'degree': 1e300}, {'nodes': 10 ** 300}])
def test_a_graph_too_large_to_name_is_refused_for_its_size(changes, tmp_path):
    """A size whose folder's name is longer than a file name can be is a graph too large for
    any memory, said as such: not an error of --cache, which is fine."""
    s = sm.SyntheticSettings(**{'eval_nodes': 1000, 'cache': str(tmp_path), **changes})
    with pytest.raises(UsageError, match=r'^--nodes \S+: a graph of \S+ edges .* to build '
                                         r'and train on, but only') as error:
        s.check()
    # In a line: the counts in three digits, not in hundreds
    assert len(str(error.value)) < 250


@pytest.mark.slow
def test_a_fractional_degree_runs_and_is_recorded(clock, tmp_path, capsys):
    sm.main([*SMALL, '--degree', '2.5', '--warmup', '0', '--steps', '1',
             '--cache', str(tmp_path / 'cache'), '--results', str(tmp_path)])
    values = results.load('synthetic_minibatch', tmp_path)['values']
    assert values['edges'] == 2000 * 2.5 + 2000 and type(values['edges']) is int
    assert values['runs']['1']['settings']['degree'] == 2.5
    assert [p.name for p in (tmp_path / 'cache').iterdir()] == ['graph_2000_5000e_128_8_0']


@pytest.mark.parametrize('processes', [1, 2])
def test_every_process_has_a_node_to_train(processes, monkeypatch):
    # Under torchrun each process trains at least one of the nodes left for training
    monkeypatch.setattr(sm.distributed, 'world_size', lambda: processes)
    sm.SyntheticSettings(nodes=1000, eval_nodes=1000 - processes).check()
    with pytest.raises(UsageError, match=f'leaves fewer than {processes} of the 1000 nodes'):
        sm.SyntheticSettings(nodes=1000, eval_nodes=1001 - processes).check()


@pytest.mark.parametrize('processes', [1, 2, 3])
def test_every_process_has_a_node_to_evaluate(processes, monkeypatch):
    # Each process evaluates its share of the validation nodes: an empty share would end
    # the job after the training, where the process samples the blocks of no node
    monkeypatch.setattr(sm.distributed, 'world_size', lambda: processes)
    sm.SyntheticSettings(nodes=1000, eval_nodes=processes).check()
    if processes > 1:
        with pytest.raises(UsageError, match=f'^--eval-nodes {processes - 1} leaves a '
                                             f'process without a validation node'):
            sm.SyntheticSettings(nodes=1000, eval_nodes=processes - 1).check()


@pytest.mark.skipif(torch.cuda.is_available(), reason='this machine has a CUDA device')
def test_cuda_without_a_cuda_device():
    with pytest.raises(UsageError, match='--device cuda: PyTorch finds no CUDA device here'):
        sm.SyntheticSettings(device='cuda').check()


def test_a_cache_under_a_file(tmp_path):
    (tmp_path / 'file').write_text('')
    for cache in (tmp_path / 'file', tmp_path / 'file' / 'below'):
        with pytest.raises(UsageError, match=f'--cache {cache}: {tmp_path}/file is a file, '
                                             f'not a folder'):
            sm.SyntheticSettings(cache=str(cache)).check()


@pytest.mark.skipif(not Path('/proc/self').is_dir(), reason='no /proc here')
def test_a_cache_that_cannot_be_written():
    with pytest.raises(UsageError, match='--cache /proc/x: cannot write into /proc$'):
        sm.SyntheticSettings(cache='/proc/x').check()


def test_a_missing_cache_is_made_where_it_can_be(tmp_path):
    """The cache and the folders above it are made by the run, not by the check."""
    sm.SyntheticSettings(cache=str(tmp_path / 'a' / 'b')).check()
    assert list(tmp_path.iterdir()) == []


# ## The memory: a graph too large is refused, and a failed build leaves nothing

def test_a_graph_too_large_for_the_memory_is_refused_from_its_size(tmp_path, monkeypatch):
    """Judged from the settings alone: nothing is built and nothing is written."""
    def refuse(*args):
        raise AssertionError('the check built the graph')
    monkeypatch.setattr(sm, 'random_graph', refuse)
    monkeypatch.setattr(sm, 'build_graph', refuse)
    with pytest.raises(UsageError, match=r'^--nodes 1000000000000: a graph of 11000000000000 '
                                         r'edges and 128 features a node: about .* GiB to '
                                         r'build and train on, but only .* use fewer --nodes'):
        sm.SyntheticSettings(nodes=10 ** 12, cache=str(tmp_path / 'cache')).check()
    assert list(tmp_path.iterdir()) == []


def test_the_graph_fits_up_to_the_free_memory(tmp_path, monkeypatch):
    """The boundary: the estimate within 90 % of the free memory runs, above it is refused."""
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000, cache=str(tmp_path))
    needed = sum(sm.graph_bytes(s, cached=False))
    free = math.ceil(needed / 0.9)
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': free)
    s.check()
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': free - 2)
    with pytest.raises(UsageError, match='^--nodes 2000: .* but only 0.0 GiB is free on cpu'):
        s.check()


def test_the_processes_of_a_machine_need_the_memory_of_each(tmp_path, monkeypatch):
    """
    The processes of one machine map one copy of the graph, but each holds its own orders of
    the nodes and hidden vectors: memory enough for one process is too little for two.
    """
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000, cache=str(tmp_path))
    one = sum(sm.graph_bytes(s, cached=False))
    monkeypatch.setattr(training, 'available_memory_bytes',
                        lambda device='cpu': math.ceil(one / 0.9))
    s.check()
    for name, value in (('RANK', '0'), ('WORLD_SIZE', '2'), ('LOCAL_WORLD_SIZE', '2')):
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match='^--nodes 2000: .* but only 0.0 GiB is free on cpu'):
        s.check()
    # Two machines of one process each: one process's memory on each
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '1')
    s.check()


def test_the_estimate_holds_what_the_build_keeps(tmp_path):
    """The files a run maps are within the estimate of a run from the cache."""
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000, cache=str(tmp_path))
    kept = sum(t.numel() * t.element_size() for t in sm.build_graph(s).values())
    run, _ = sm.graph_bytes(s, cached=True)
    assert kept <= run <= sm.graph_bytes(s, cached=False)[0]


@pytest.mark.parametrize('failure', [MemoryError, KeyboardInterrupt])
def test_a_failed_build_leaves_nothing_in_the_cache(tmp_path, monkeypatch, failure):
    """No `.partial-*` folder, nor the cache folder the run made for it."""
    def build(s):
        raise failure('cannot allocate memory')
    monkeypatch.setattr(sm, 'build_graph', build)
    with pytest.raises(failure):
        sm.main([*SMALL, '--steps', '1', '--cache', str(tmp_path / 'new' / 'cache')])
    assert list(tmp_path.iterdir()) == []


class Unwritable:
    """A tensor whose writing fails, after the tensors before it were written."""

    def __init__(self, failure: BaseException):
        self.failure = failure

    def contiguous(self):
        raise self.failure


@pytest.mark.parametrize('failure', [OSError(28, 'No space left on device'),
                                     KeyboardInterrupt()])
def test_a_failed_write_leaves_nothing_in_the_cache(tmp_path, failure):
    cache = tmp_path / 'cache'
    with pytest.raises(type(failure)):
        sm.distributed.shared_tensors(cache / 'graph', lambda: {'x': torch.zeros(3),
                                                                'y': Unwritable(failure)})
    assert list(tmp_path.iterdir()) == []
    # A cache that was there stays, without the temporary folder
    cache.mkdir()
    with pytest.raises(type(failure)):
        sm.distributed.shared_tensors(cache / 'graph', lambda: {'x': torch.zeros(3),
                                                                'y': Unwritable(failure)})
    assert list(tmp_path.iterdir()) == [cache] and list(cache.iterdir()) == []


# ## A user's mistake, from the command line

MISTAKES = {
    'under-a-file': (['--cache', '{tmp}/file/cache'], '--cache {tmp}/file/cache: {tmp}/file is a file'),
    'proc': (['--cache', '/proc/x'], '--cache /proc/x: cannot write into /proc'),
    'record-twice': (['--record', '--results', '{tmp}/r'], "--record writes into the project's"),
    'results-nowhere': (['--results', '{tmp}/missing/r'], '--results {tmp}/missing/r: the folder'),
    'summary-nowhere': (['--summary-json', '{tmp}/missing/s.json'],
                        '--summary-json {tmp}/missing/s.json: the folder {tmp}/missing does not exist'),
    'summary-a-folder': (['--summary-json', '{tmp}'], '--summary-json {tmp} is a folder; give a file name'),
    # A name longer than the file system takes: the system's reason, not a traceback
    'long-name': (['--cache', '{tmp}/' + 'c' * 300], '--cache {tmp}/' + 'c' * 300 + ': '),
    'learning-rate': (['--learning-rate', '-1'], '--learning-rate must be positive and finite'),
    'dropout': (['--dropout', '1'], '--dropout must be a probability in [0, 1), got 1.0'),
    # A graph of petabytes, refused from its size before any of it is made
    'nodes': (['--nodes', '1000000000000', '--steps', '1'],
              '--nodes 1000000000000: a graph of 11000000000000 edges'),
}
if not torch.cuda.is_available():
    MISTAKES['cuda'] = (['--device', 'cuda'], '--device cuda: PyTorch finds no CUDA device')


@pytest.fixture(scope='module')
def mistakes(tmp_path_factory):
    """Every mistake's script at once, each with a cache of its own unless it names one."""
    tmp = tmp_path_factory.mktemp('mistakes')
    (tmp / 'file').write_text('')
    processes = {name: subprocess.Popen(
        [sys.executable, str(SCRIPT), *SMALL, '--cache', str(tmp / name),
         *[arg.format(tmp=tmp) for arg in args]],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
        for name, (args, _) in MISTAKES.items()}
    return tmp, {name: (process.wait(timeout=600), *process.communicate())
                 for name, process in processes.items()}


@pytest.mark.slow
@pytest.mark.parametrize('name', MISTAKES)
def test_a_mistake_is_one_line_with_exit_status_2(mistakes, name):
    tmp, found = mistakes
    message = the_mistake(*found[name], 'synthetic_minibatch.py')
    assert message.startswith(MISTAKES[name][1].format(tmp=tmp)), message
    # Nothing written: the graph's files are made after the checks
    assert sorted(path.name for path in tmp.iterdir()) == ['file']


@pytest.mark.slow
def test_help():
    found = subprocess.run([sys.executable, str(SCRIPT), '--help'], capture_output=True,
                           text=True, timeout=600)
    assert found.returncode == 0 and '--cache' in found.stdout and found.stderr == ''


# ## Timing: as many steps as asked, and the rate of those timed

@pytest.fixture
def clock(monkeypatch):
    """A clock of the script that moves one second a reading, and the optimizer steps taken."""
    readings = iter(range(1000))
    monkeypatch.setattr(sm, 'time', SimpleNamespace(perf_counter=lambda: float(next(readings))))
    steps = []
    adam_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        steps.append(1)
        return adam_step(self, *args, **kwargs)
    monkeypatch.setattr(torch.optim.Adam, 'step', step)
    return steps


@pytest.mark.slow
@pytest.mark.parametrize('args, steps, targets', [
    # One batch of 1,000 training nodes an epoch, fewer than the warmup
    (['--nodes', '2000', '--warmup', '2', '--steps', '3'], 5, 3 * 1000),
    # Batches of 1024, 1024, 1024 and 928 training nodes: 12 epochs and 2 batches
    (['--nodes', '5000', '--warmup', '0', '--steps', '50'], 50, 12 * 4000 + 2 * 1024),
])
def test_a_graph_of_few_batches_trains_epoch_after_epoch(args, steps, targets, clock, tmp_path,
                                                         capsys):
    """The timed steps take one second on the script's clock: the rate is their targets."""
    sm.main([*args, '--eval-nodes', '1000', '--cache', str(tmp_path / 'cache')])
    assert len(clock) == steps
    assert f': {targets:.1f} targets/s, ' in capsys.readouterr().out


@pytest.mark.slow
def test_results_records_in_the_folder_given_not_the_projects(clock, tmp_path, capsys):
    project = sm.results.RESULTS / 'synthetic_minibatch.json'
    before = project.read_bytes()
    sm.main(['--nodes', '2000', '--warmup', '0', '--steps', '2', '--eval-nodes', '1000',
             '--cache', str(tmp_path / 'cache'), '--results', str(tmp_path)])
    written = json.loads((tmp_path / 'synthetic_minibatch.json').read_text())
    assert list(written['values']['runs']) == ['1'] and written['values']['nodes'] == 2000
    out = capsys.readouterr().out
    assert f'recorded in {tmp_path}' in out
    # The memory as the page's table writes it, not as a Python dict
    [memory] = written['values']['runs']['1']['memory_mib_per_rank']
    assert f"{memory['rss']} / {memory['pss']} / {memory['private']};" in out and '{' not in out
    assert project.read_bytes() == before


# ## The summary: the numbers of the run, in the shape of the Cora experiments' summaries

@pytest.mark.slow
def test_summary_json_writes_the_numbers_of_the_run(clock, tmp_path, capsys):
    path = tmp_path / 'summary.json'
    project = sm.results.RESULTS / 'synthetic_minibatch.json'
    before = project.read_bytes()
    sm.main(['--nodes', '2000', '--warmup', '0', '--steps', '2', '--eval-nodes', '1000',
             '--cache', str(tmp_path / 'cache'), '--summary-json', str(path)])
    summary = json.loads(path.read_text())
    # The keys of `cora_minibatch.py`'s summary, but the test accuracy: no model is tested
    assert sorted(summary) == ['argv', 'jobs', 'load_average', 'runs', 'script', 'seconds', 'settings',
                               'val_accuracy', 'wall_seconds']
    assert summary['settings'] == {**sm.SyntheticSettings().as_dict(), 'nodes': 2000, 'warmup': 0,
                                   'steps': 2, 'eval_nodes': 1000, 'cache': str(tmp_path / 'cache'),
                                   'summary_json': str(path)}
    [run] = summary['runs']
    assert run['seed'] == 0 and run['steps'] == 2 and run['processes'] == summary['jobs'] == 1
    # Two steps timed in one second of the script's clock: the 1,000 training nodes twice
    assert run['seconds'] == summary['seconds'] == 1.0 and run['targets_per_second'] == 2000.0
    assert 0 <= run['val_accuracy'] <= 1 and 'val_accuracy_after_steps' not in run
    assert summary['val_accuracy'] == {'mean': round(100 * run['val_accuracy'], 2), 'std': 0.0, 'n': 1}
    assert summary['wall_seconds'] >= summary['seconds'] + run['eval_seconds']
    assert isinstance(summary['load_average'], float) and 'torchrun' not in summary
    # The output says the same rate; the file is whole, with nothing beside it, and no record
    assert ': 2000.0 targets/s, ' in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cache', 'summary.json']
    assert project.read_bytes() == before


def test_the_summary_under_torchrun_counts_the_processes():
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000)
    values = {**run_values(2, s), 'val_accuracy_after_steps': 0.25}
    summary = sm.summary(values, s, seconds=3.0, wall_seconds=9.0, load=1.26)
    assert summary['jobs'] == 2 and summary['torchrun'] is True
    assert summary['val_accuracy'] == {'mean': 25.0, 'std': 0.0, 'n': 1}
    assert (summary['seconds'], summary['wall_seconds'], summary['load_average']) == (3.0, 9.0, 1.3)
    assert summary['runs'] == [{'seed': 0, 'val_accuracy': 0.25, 'seconds': 3.0, 'processes': 2,
                                'targets_per_second': 2000.0,
                                'memory_mib_per_rank': [{'rss': 100}] * 2, 'command': 'run 2'}]


def test_the_summary_says_its_command_as_the_cora_experiments_summaries_do():
    """The script's file name and the words after it, which `results --record` reads."""
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000)
    values = {**run_values(1, s), 'val_accuracy_after_steps': 0.25}
    argv = ['--nodes', '2000', '--eval-nodes', '1000']
    summary = sm.summary(values, s, seconds=3.0, wall_seconds=9.0, load=1.0, argv=argv)
    assert summary['script'] == 'synthetic_minibatch.py' and summary['argv'] == argv
    cora = {'script', 'argv', 'settings', 'runs', 'val_accuracy', 'seconds', 'jobs',
            'wall_seconds', 'load_average'}
    assert cora <= set(summary)


def test_a_summary_that_cannot_be_written_is_refused_before_the_graph(tmp_path, monkeypatch, capsys):
    def refuse(*args):
        raise AssertionError('the graph was built')
    monkeypatch.setattr(sm, 'build_graph', refuse)
    missing = tmp_path / 'missing' / 'summary.json'
    with pytest.raises(SystemExit) as exit_info:
        sm.main([*SMALL, '--cache', str(tmp_path / 'cache'), '--summary-json', str(missing)])
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    assert out == '' and len(err.splitlines()) == 1
    assert err.rstrip().endswith(f'error: --summary-json {missing}: the folder {missing.parent} '
                                 f'does not exist')
    assert list(tmp_path.iterdir()) == []


# ## Training: the steps of a plain loop

@pytest.mark.slow
def test_each_step_is_adam_on_the_mean_loss_of_its_global_batch(tmp_path, monkeypatch, capsys):
    # Without dropout the trained model is that of a plain loop written out here: one Adam step on
    # fresh gradients of each global batch's mean cross-entropy, on its targets' logits, the
    # batches drawn epoch after epoch (2,000 training nodes: 700, 700 and 600, then a new epoch)
    from labml_gat.lean import LeanTwoLayerGAT
    from labml_gat.sampling import NeighbourSampler
    trained = []

    class Kept(LeanTwoLayerGAT):
        def __init__(self, *args):
            super().__init__(*args)
            trained.append(self)
    monkeypatch.setattr(sm, 'LeanTwoLayerGAT', Kept)
    args = ['--nodes', '3000', '--eval-nodes', '1000', '--batch-size', '700', '--warmup', '1',
            '--steps', '3', '--dropout', '0', '--in-features', '16', '--n-heads', '2',
            '--n-hidden', '4', '--fanouts', '3', '2', '--cache', str(tmp_path)]
    sm.main(args)
    s, _ = sm.SyntheticSettings.from_command_line(args, '')
    data = sm.build_graph(s)
    sampler = NeighbourSampler.from_csr(data['ptr'], data['sources'])
    train_nodes = torch.randperm(3000, generator=torch.Generator().manual_seed(0))[:2000]
    torch.manual_seed(0)
    reference = LeanTwoLayerGAT(16, 8, 2, 4, 0.0)
    initial = {name: value.clone() for name, value in reference.state_dict().items()}
    optimizer = torch.optim.Adam(reference.parameters(), lr=0.005)
    order = torch.Generator().manual_seed(0)
    batches = [distributed.epoch_shares(train_nodes, 700, order) for _ in range(2)]
    samples = distributed.sample_generator(0)
    for seeds, size in [*batches[0], batches[1][0]]:
        assert size == len(seeds)
        batch = sampler.sample(seeds, [3, 2], samples)
        optimizer.zero_grad()
        logits = reference(data['x'][batch.n_id], [block.edge_index for block in batch.blocks])
        torch.nn.functional.cross_entropy(logits[:len(seeds)], data['y'][seeds]).backward()
        optimizer.step()
    model, = trained
    assert not all(torch.equal(value, initial[name]) for name, value in model.state_dict().items())
    for (name, value), expected in zip(model.named_parameters(), reference.parameters()):
        assert torch.allclose(value, expected, rtol=1e-5, atol=1e-7), name


# ## The record: one date, machine and set of versions for all its entries

def run_values(processes: int, s) -> dict:
    return {'processes': processes, 'targets_per_second': 1000.0 * processes,
            'memory_mib_per_rank': [{'rss': 100}] * processes, 'command': f'run {processes}',
            'settings': sm.measured_settings(s)}


def record_one_process(folder: Path, s, **changes) -> None:
    """A record of a run with one process, measured today on this machine, then `changes`."""
    sm.record(run_values(1, s), s, folder)
    path = folder / 'synthetic_minibatch.json'
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def test_the_command_recorded_under_torchrun(monkeypatch):
    for name, value in (('RANK', '0'), ('WORLD_SIZE', '2'), ('LOCAL_WORLD_SIZE', '2'),
                        ('GROUP_WORLD_SIZE', '1')):
        monkeypatch.setenv(name, value)
    assert sm.command_line(['--record'], 2) == \
        'OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 -- experiments/synthetic_minibatch.py --record'
    # Two machines of one process each
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '1')
    monkeypatch.setenv('GROUP_WORLD_SIZE', '2')
    assert sm.command_line(['--record'], 2) == ('OMP_NUM_THREADS=1 torchrun --nnodes 2 --nproc-per-node 1 '
                                                '-- experiments/synthetic_minibatch.py --record')


def test_the_command_recorded_leaves_out_where_the_files_go(monkeypatch):
    """The entries' commands, as the record's, say no folder or file of this machine."""
    for name, value in (('RANK', '0'), ('WORLD_SIZE', '2'), ('LOCAL_WORLD_SIZE', '2'),
                        ('GROUP_WORLD_SIZE', '1')):
        monkeypatch.setenv(name, value)
    argv = ['--cache', '/some/dir', '--steps', '5', '--peer-timeout=60', '--record',
            '--summary-json', 's.json']
    assert sm.command_line(argv, 2) == ('OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 -- '
                                        'experiments/synthetic_minibatch.py --steps 5 --record')


def test_runs_measured_alike_are_compared(tmp_path):
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000)
    record_one_process(tmp_path, s)
    sm.record(run_values(2, s), s, tmp_path)
    values = results.load('synthetic_minibatch', tmp_path)['values']
    assert sorted(values['runs']) == ['1', '2'] and values['speedup_2_over_1'] == 2.0


@pytest.mark.parametrize('changes, settings', [
    ({'date': '2000-01-01'}, {}),
    ({'versions': {'torch': '0.1'}}, {}),
    ({}, {'steps': 7}),
])
def test_runs_measured_otherwise_are_dropped(tmp_path, changes, settings, capsys):
    """Another day, other versions or other settings: the new run alone, and no ratio."""
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000)
    record_one_process(tmp_path, s, **changes)
    other = sm.SyntheticSettings(nodes=2000, eval_nodes=1000, **settings)
    sm.record(run_values(2, other), other, tmp_path)
    values = results.load('synthetic_minibatch', tmp_path)['values']
    assert list(values['runs']) == ['2'] and 'speedup_2_over_1' not in values
    assert 'dropped from the record: the run with 1 process of' in capsys.readouterr().out


# ## A cache that is not the graph of the settings

def _damaged(data, damage):
    """The graph's tensors, damaged as a folder changed by hand or from another version."""
    if damage == 'no labels':
        del data['y']
    elif damage == 'fewer nodes':
        data['x'] = data['x'][:1000]
    elif damage == 'sources':
        data['sources'][0] = 10 ** 9
    elif damage == 'offsets':
        data['ptr'][1:] = data['ptr'][-1]
        data['ptr'][1] = -1
    elif damage == 'classes':
        data['y'][0] = 99
    return data


@pytest.mark.parametrize('damage', ['no labels', 'fewer nodes', 'sources', 'offsets', 'classes'])
def test_a_cached_graph_not_of_the_settings_is_a_data_error(damage):
    """Without the check, a graph of other nodes trains, or ends in a traceback of indexing."""
    from labml_gat.datasets import DataFileError
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000, cache='cache')
    sm.check_graph(sm.build_graph(s), s)
    with pytest.raises(DataFileError, match='remove the folder'):
        sm.check_graph(_damaged(sm.build_graph(s), damage), s)


def test_a_folder_there_that_is_not_a_graph_is_a_data_error(tmp_path):
    """Said with the settings, before the graph is built for minutes and then not written."""
    from labml_gat.datasets import DataFileError
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000, cache=str(tmp_path))
    s.graph_folder().mkdir()
    (s.graph_folder() / 'mine').write_text('')
    with pytest.raises(DataFileError, match=f'{s.graph_folder()}: not the files of a graph '
                                            f'as written here .*remove the folder'):
        s.check()


@pytest.mark.slow
def test_a_folder_there_that_is_not_a_graph_ends_in_one_line_with_exit_status_2(tmp_path):
    s = sm.SyntheticSettings(nodes=2000, eval_nodes=1000, cache=str(tmp_path / 'cache'))
    s.graph_folder().mkdir(parents=True)
    (s.graph_folder() / 'mine').write_text('mine')
    found = subprocess.run([sys.executable, str(SCRIPT), *SMALL, '--steps', '1', '--warmup', '0',
                            '--cache', s.cache], capture_output=True, text=True, timeout=600)
    message = the_mistake(found.returncode, found.stdout, found.stderr, 'synthetic_minibatch.py')
    assert message.startswith(f'{s.graph_folder()}: not the files of a graph'), message
    # Nothing written: no temporary folder beside it, nothing in it
    assert list((tmp_path / 'cache').iterdir()) == [s.graph_folder()]
    assert [p.name for p in s.graph_folder().iterdir()] == ['mine']


@pytest.mark.slow
def test_a_damaged_cache_ends_in_one_line_with_exit_status_2(tmp_path):
    cache = tmp_path / 'cache'
    args = [sys.executable, str(SCRIPT), *SMALL, '--steps', '1', '--warmup', '0',
            '--cache', str(cache)]
    assert subprocess.run(args, capture_output=True, timeout=600).returncode == 0
    (tensors,) = cache.glob('*/tensors.json')
    shapes = json.loads(tensors.read_text())
    shapes['x']['shape'] = [3_000_000_000, 128]
    tensors.write_text(json.dumps(shapes))
    found = subprocess.run(args, capture_output=True, text=True, timeout=600)
    message = the_mistake(found.returncode, found.stdout, found.stderr, 'synthetic_minibatch.py')
    assert message.startswith(f'{tensors.parent}: not the files of a graph'), message
