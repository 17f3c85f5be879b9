"""
Tests of the mini-batch route on several processes (`labml_gat/distributed.py` and the mini-batch
script under torchrun): two CPU processes with gloo on the loopback address, each test bounded in time.
One and two processes take the same steps; evaluation counts are the same; only rank 0 writes; a killed
rank ends the job; bad combinations are refused; the documented torchrun commands work as written.
"""

import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Optional, Tuple

import psutil
import pytest
import torch

from conftest import (PLANETOID, REPO, load_experiment, needs_planetoid, sigint_as_in_a_terminal,
                      small_planetoid)
from labml_gat import distributed, fast
from labml_gat.lean import LeanTwoLayerGAT
from labml_gat.sampling import NeighbourSampler
from labml_gat.settings import UsageError

mb = load_experiment('cora_minibatch')
TORCHRUN = Path(sys.executable).with_name('torchrun')
# Every process of a test ends within this many seconds, or the test fails
LIMIT = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def job_environment(rank: int, world_size: int, port: int) -> dict:
    """What torchrun sets for a process of a job on this machine."""
    return {'RANK': str(rank), 'WORLD_SIZE': str(world_size), 'LOCAL_RANK': str(rank),
            'LOCAL_WORLD_SIZE': str(world_size), 'MASTER_ADDR': '127.0.0.1',
            'MASTER_PORT': str(port)}


# ## One process and two take the same steps

SETTINGS = dict(batch_size=9, fanouts=[-1, -1], n_heads=2, n_hidden=4, dropout=0.0)


def train_and_evaluate(data, epochs: int = 2) -> dict:
    """
    Two epochs of the experiment's `train_epoch`, in this process's job, with the parameters after
    every optimiser step, and the validation numbers of `evaluate` after each epoch. In float64, so
    that Adam, which divides small gradients by their small root mean square, does not turn the
    rounding of a sum taken in two parts into visible differences.
    """
    settings = mb.MiniBatchSettings(**SETTINGS)
    torch.manual_seed(0)
    module = fast.speed_up(mb.MiniBatchGAT(mb.LAYERS['gatv2'], data.num_features, data.num_classes,
                                           2, 4, 0.0)).double()
    model = distributed.wrap(module)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    steps, evaluations = [], []
    step = optimizer.step

    def recorded_step(*args, **kwargs):
        step(*args, **kwargs)
        steps.append([p.detach().clone() for p in module.parameters()])
    optimizer.step = recorded_step
    sampler = NeighbourSampler(data.edge_index, data.num_nodes)
    x = fast.to_sparse_csr(data.x.double())
    order, samples = torch.Generator().manual_seed(0), distributed.sample_generator(0)
    # What the epochs give labml's tracker, as numbers
    tracked, tracker = [], mb.tracker
    mb.tracker = SimpleNamespace(add=lambda values: tracked.append(
        {name: float(value) for name, value in values.items()}))
    try:
        for _ in range(epochs):
            train = mb.train_epoch(model, optimizer, sampler, x, data.y,
                                   data.train_mask.nonzero().squeeze(1), settings, order, samples)
            evaluations.append((train, mb.evaluate(module, sampler, x, data.y,
                                                   data.val_mask.nonzero().squeeze(1), 4)))
    finally:
        mb.tracker = tracker
    return {'steps': steps, 'evaluations': evaluations, 'tracked': tracked}


def lean_layer_by_layer(data) -> tuple:
    """The lean model's scores of the validation nodes, layer by layer, in batches of 7."""
    torch.manual_seed(1)
    model = LeanTwoLayerGAT(data.num_features, data.num_classes, 2, 4, 0.6)
    sampler = NeighbourSampler(data.edge_index, data.num_nodes)
    return model, distributed.layer_by_layer(model, sampler, data.x, data.val_mask.nonzero().squeeze(1), 7)


def worker(rank: int, port: int, out: str) -> None:
    """A rank of a two-process job, started by `multiprocessing` as torchrun would start it."""
    torch.set_num_threads(1)
    os.environ.update(job_environment(rank, 2, port))
    data = small_planetoid(torch.Generator().manual_seed(0), n_nodes=60)
    with distributed.job('cpu', LIMIT):
        result = train_and_evaluate(data)
        result['layer_by_layer'] = lean_layer_by_layer(data)[1]
    torch.save(result, Path(out) / f'rank{rank}.pt')


def run_workers(tmp_path: Path) -> list:
    context = multiprocessing.get_context('spawn')
    port = free_port()
    processes = [context.Process(target=worker, args=(rank, port, str(tmp_path))) for rank in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(LIMIT)
    for process in processes:
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in processes] == [0, 0]
    return [torch.load(tmp_path / f'rank{rank}.pt', weights_only=False) for rank in (0, 1)]


@pytest.fixture(scope='module')
def ranks(tmp_path_factory):
    """What the two ranks of `worker` computed, once for the tests that read it."""
    return run_workers(tmp_path_factory.mktemp('ranks'))


def test_a_lost_peer_is_said_once_through_nested_watches():
    """A peer lost inside a seed's watch passes the job's watch as it is: one line, the
    error's words once."""
    with pytest.raises(distributed.LostPeer) as lost:
        with distributed.peers_watched(), distributed.peers_watched():
            raise RuntimeError('[gloo] Connection closed by peer')
    assert str(lost.value).count('another process of the job') == 1, lost.value


@pytest.mark.slow
def test_one_and_two_processes_take_the_same_steps(ranks):
    """
    Without dropout and with all neighbours, a global batch of 9 trained as slices of 5 and 4 on two
    processes gives the parameters of one process after every step, and the same evaluation counts.
    """
    data = small_planetoid(torch.Generator().manual_seed(0), n_nodes=60)
    one = train_and_evaluate(data)
    # 20 training nodes in global batches of 9, 9 and 2: 3 steps an epoch, on both ranks
    assert len(one['steps']) == 6 and all(len(r['steps']) == 6 for r in ranks)
    for step, expected in enumerate(one['steps']):
        for rank in ranks:
            for got, want in zip(rank['steps'][step], expected):
                torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-12)
    for epoch, (train, (loss, accuracy)) in enumerate(one['evaluations']):
        for rank in ranks:
            rank_train, (rank_loss, rank_accuracy) = rank['evaluations'][epoch]
            # Counts summed over the ranks: the same accuracy exactly, the same loss up to rounding
            assert rank_accuracy == accuracy and rank_train['accuracy'] == train['accuracy']
            assert rank_loss == pytest.approx(loss, rel=1e-9)
            assert rank_train['loss'] == pytest.approx(train['loss'], rel=1e-9)


@pytest.mark.slow
def test_the_run_tracks_each_global_batch(ranks):
    """
    The labml run, written by rank 0, tracks the loss of each step's global batch, the same as
    one process's, and its nodes summed over the ranks' slices: not rank 0's slice alone.
    """
    data = small_planetoid(torch.Generator().manual_seed(0), n_nodes=60)
    one = train_and_evaluate(data)['tracked']
    assert len(one) == 6 and all(r['tracked'] == ranks[0]['tracked'] for r in ranks)
    for step, (mine, expected) in enumerate(zip(ranks[0]['tracked'], one)):
        assert mine['loss.train'] == pytest.approx(expected['loss.train'], rel=1e-9), step
        # A node sampled for both slices counts in each
        assert mine['batch.nodes'] >= expected['batch.nodes']


def test_layer_by_layer_is_the_full_graph_model(ranks):
    """
    In one process and split over two, the scores of layer-by-layer evaluation are those of the
    model on the whole graph with its self loops.
    """
    data = small_planetoid(torch.Generator().manual_seed(0), n_nodes=60)
    model, (nodes, scores) = lean_layer_by_layer(data)
    val = data.val_mask.nonzero().squeeze(1)
    expected = model(data.x, data.edge_index_with_self_loops())[val]
    assert torch.equal(nodes, val)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-6)
    shares = [rank['layer_by_layer'] for rank in ranks]
    assert torch.equal(torch.cat([nodes for nodes, _ in shares]), val)
    torch.testing.assert_close(torch.cat([scores for _, scores in shares]), expected,
                               rtol=1e-5, atol=1e-6)


def test_a_sampler_from_its_lists(generator):
    data = small_planetoid(generator, n_nodes=40)
    sampler = NeighbourSampler(data.edge_index, data.num_nodes)
    again = NeighbourSampler.from_csr(sampler.ptr, sampler.sources)
    assert again.num_nodes == 40 and torch.equal(again.in_degree, sampler.in_degree)
    seeds = torch.tensor([3, 9, 0])
    one = sampler.sample(seeds, [2, 2], torch.Generator().manual_seed(1))
    two = again.sample(seeds, [2, 2], torch.Generator().manual_seed(1))
    assert torch.equal(one.n_id, two.n_id)
    with pytest.raises(ValueError, match='ptr must hold num_nodes \\+ 1 offsets'):
        NeighbourSampler.from_csr(sampler.ptr[:-1], sampler.sources)


def test_shared_tensors_are_written_once_and_mapped(tmp_path):
    built = []

    def build():
        built.append(1)
        return {'x': torch.arange(12.).view(3, 4), 'ptr': torch.tensor([0, 2, 5])}
    first = distributed.shared_tensors(tmp_path / 'graph', build)
    second = distributed.shared_tensors(tmp_path / 'graph', build)
    assert built == [1] and sorted(p.name for p in tmp_path.iterdir()) == ['graph']
    assert torch.equal(second['x'], torch.arange(12.).view(3, 4)) and second['ptr'].dtype == torch.int64
    # A process that writes to its tensors changes neither the files nor the others' tensors
    first['x'][0, 0] = 100.
    assert distributed.shared_tensors(tmp_path / 'graph', build)['x'][0, 0] == 0 == second['x'][0, 0]


def test_a_second_writer_of_the_shared_tensors_keeps_the_first_ones(tmp_path):
    """
    Two machines sharing the folder, or two launches on one, both build the tensors: the one that
    finishes second finds the folder written, drops its own copy and maps the first one's files.
    """
    folder = tmp_path / 'graph'
    tensors = {'x': torch.arange(12.).view(3, 4), 'ptr': torch.tensor([0, 2, 5])}

    def build():
        # The other writer finishes while this one builds
        distributed.write_tensors(folder, lambda: tensors)
        return tensors
    found = distributed.shared_tensors(folder, build)
    assert torch.equal(found['x'], tensors['x']) and torch.equal(found['ptr'], tensors['ptr'])
    assert [p.name for p in tmp_path.iterdir()] == ['graph']


def _something_there(folder: Path, there: str) -> None:
    if there == 'file':
        folder.write_text('mine')
    else:
        folder.mkdir()
        (folder / 'mine').write_text('mine')


def _as_it_was(tmp_path: Path, folder: Path, there: str) -> bool:
    """Only `folder` in `tmp_path` (no temporary folder beside it), holding what it held."""
    return ([p.name for p in tmp_path.iterdir()] == [folder.name]
            and (folder / 'mine' if there == 'folder' else folder).read_text() == 'mine')


@pytest.mark.parametrize('there', ['folder', 'file'])
def test_what_is_not_the_tensors_is_neither_replaced_nor_written_into(tmp_path, there):
    """
    A folder without `tensors.json` (made by hand or by another program), or a file, where the
    tensors go: one error that says to remove it, before the build (minutes, for a big graph),
    not a traceback of the rename after it, and nothing written.
    """
    from labml_gat.datasets import DataFileError
    folder, built = tmp_path / 'graph', []
    _something_there(folder, there)
    with pytest.raises(DataFileError, match=rf'^{folder}: not the files of a graph as written '
                                            rf'here \(.*\); remove ') as err:
        distributed.shared_tensors(folder, lambda: built.append(1))
    assert built == [] and '\n' not in str(err.value) and _as_it_was(tmp_path, folder, there)


@pytest.mark.parametrize('there', ['folder', 'file'])
def test_what_comes_there_during_the_build_is_not_taken_for_the_tensors(tmp_path, there):
    from labml_gat.datasets import DataFileError
    folder = tmp_path / 'graph'

    def build():
        _something_there(folder, there)
        return {'x': torch.arange(12.).view(3, 4)}
    with pytest.raises(DataFileError, match=f'^{folder}: not the files of a graph'):
        distributed.write_tensors(folder, build)
    assert _as_it_was(tmp_path, folder, there)


def test_an_empty_folder_there_is_replaced_by_the_tensors(tmp_path):
    """An empty folder holds nothing to keep: made by hand for the cache, say."""
    (tmp_path / 'graph').mkdir()
    found = distributed.shared_tensors(tmp_path / 'graph', lambda: {'x': torch.arange(3.)})
    assert torch.equal(found['x'], torch.arange(3.))
    assert [p.name for p in tmp_path.iterdir()] == ['graph']


def test_each_process_and_seed_draws_its_own_samples_and_dropout(monkeypatch):
    # The processes of a job share the model and the order of the epoch, not their random draws: a
    # sampler's stream, and the dropout masks of every process but the first, differ by seed and rank
    streams, dropouts = {}, {}
    for rank in range(3):
        monkeypatch.setattr(distributed, '_job', distributed.Job(rank, 3))
        for seed in range(3):
            streams[seed, rank] = tuple(torch.rand(4, generator=distributed.sample_generator(seed)).tolist())
            torch.manual_seed(seed)
            distributed.own_dropout(seed)
            dropouts[seed, rank] = tuple(torch.rand(4).tolist())
    assert len(set(streams.values())) == len(streams)
    assert len(set(dropouts.values())) == len(dropouts)
    # A rank's dropout stream is not its sampler's, so the two draws are not the same numbers
    assert not set(streams.values()) & set(dropouts.values())


def test_one_process_keeps_the_global_random_stream(monkeypatch):
    # The first process (and so a run of one) draws its dropout masks from `torch.manual_seed`'s
    # stream, as a run without torchrun does
    monkeypatch.setattr(distributed, '_job', distributed.Job(0, 1))
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    distributed.own_dropout(5)
    assert torch.equal(torch.rand(4), expected)


def test_the_collectives_of_one_process_need_no_process_group(monkeypatch):
    """A job of one process waits for no one and gathers its own value: `barrier` and `gather`
    call no collective, which would need a process group."""
    monkeypatch.setattr(distributed, '_job', distributed.Job(0, 1))
    assert not torch.distributed.is_initialized()
    distributed.barrier()
    assert distributed.gather({'rss': 1}) == [{'rss': 1}]


def test_epoch_shares_are_disjoint_equal_in_number_and_cover_the_epoch(monkeypatch):
    nodes = torch.arange(100, 123)
    shares = []
    for rank in range(3):
        monkeypatch.setattr(distributed, '_job', distributed.Job(rank, 3))
        shares.append(distributed.epoch_shares(nodes, 10, torch.Generator().manual_seed(4)))
    # Batches of 10, 10 and 3: three steps on every rank
    assert [len(s) for s in shares] == [3, 3, 3]
    for step in range(3):
        parts = [s[step][0] for s in shares]
        assert all(len(part) >= 1 and s[step][1] == sum(map(len, parts)) for part, s in zip(parts, shares))
        assert len(torch.cat(parts).unique()) == len(torch.cat(parts))
    assert sorted(torch.cat([part for s in shares for part, _ in s]).tolist()) == nodes.tolist()
    # Each epoch in a new order, drawn by the generator
    monkeypatch.setattr(distributed, '_job', distributed.Job(0, 1))
    generator = torch.Generator().manual_seed(4)
    first, second = (torch.cat([part for part, _ in distributed.epoch_shares(nodes, 10, generator)])
                     for _ in range(2))
    assert not torch.equal(first, second) and torch.equal(first.sort()[0], second.sort()[0])
    # A last batch smaller than the ranks is filled up: 21 nodes in batches of 10, 10 and 1
    monkeypatch.setattr(distributed, '_job', distributed.Job(2, 3))
    last, size = distributed.epoch_shares(nodes[:21], 10, torch.Generator())[-1]
    assert len(last) == 1 and size == 3
    with pytest.raises(ValueError, match='2 target nodes cannot be shared by 3 processes'):
        distributed.epoch_shares(nodes[:2], 10, torch.Generator())


@pytest.mark.parametrize('n_nodes, batch_size', [(23, 10), (4, 4), (30, 4), (9, 9)])
def test_the_slices_of_a_batch_differ_by_one_at_most(monkeypatch, n_nodes, batch_size):
    nodes = torch.arange(n_nodes)
    sizes = []
    for rank in range(3):
        monkeypatch.setattr(distributed, '_job', distributed.Job(rank, 3))
        sizes.append([len(part) for part, _ in distributed.epoch_shares(nodes, batch_size, torch.Generator())])
    for step in zip(*sizes):
        assert max(step) - min(step) <= 1 and min(step) >= 1


# ## Bad combinations are refused before anything starts

@pytest.mark.parametrize('changes, message', [
    ({'jobs': 2}, '--jobs 2 trains seeds in a pool of processes; under torchrun the 2 processes'),
    ({'batch_size': 1}, '--batch-size 1 is smaller than the 2 processes'),
    ({'peer_timeout': 0}, '--peer-timeout must be at least 1, got 0'),
])
def test_bad_combinations(monkeypatch, changes, message):
    monkeypatch.setenv('RANK', '0')
    monkeypatch.setenv('WORLD_SIZE', '2')
    with pytest.raises(UsageError, match=message):
        mb.MiniBatchSettings(**changes).check()
    # One process accepts a pool of seeds and batches of one
    monkeypatch.delenv('RANK')
    if 'peer_timeout' not in changes:
        mb.MiniBatchSettings(**changes).check()


@pytest.mark.parametrize('script', ['cora_minibatch', 'synthetic_minibatch'])
@pytest.mark.parametrize('processes', [1, 2])
def test_a_peer_timeout_beyond_the_process_groups_clock_is_refused(monkeypatch, script, processes):
    """torch's process group fails in Python (`timedelta`), at once or hangs with a wait of
    more than a few billion seconds: one line instead, in one process as under torchrun."""
    if processes > 1:
        monkeypatch.setenv('RANK', '0')
        monkeypatch.setenv('WORLD_SIZE', str(processes))
    settings = getattr(load_experiment(script), 'MiniBatchSettings' if script == 'cora_minibatch'
                       else 'SyntheticSettings')
    with pytest.raises(UsageError, match=r'^--peer-timeout must be at most 1000000000 seconds '
                                         r'\(about 31 years\), got 100000000000000$'):
        settings(peer_timeout=10 ** 14).check()


def test_every_script_waits_as_long_for_a_peer_by_default():
    """One default `--peer-timeout`, with one help, in both scripts that run under torchrun:
    a job of either ends as late after a process hangs. The pages state the same default."""
    import re
    from labml_gat.settings import argument_parser
    classes = (mb.MiniBatchSettings, load_experiment('synthetic_minibatch').SyntheticSettings)
    timeouts = [cls().peer_timeout for cls in classes]
    assert timeouts[0] == timeouts[1], timeouts
    assert timeouts[0] == distributed.PEER_TIMEOUT
    helps = {action.help for cls in classes for action in argument_parser(cls, '')._actions
             if action.dest == 'peer_timeout'}
    assert len(helps) == 1
    stated = [int(n) for name in ('docs/usage.md', 'labml_gat/distributed.py')
              for n in re.findall(r'`--peer-timeout` seconds\s+\((\d+) by default',
                                  (REPO / name).read_text(encoding='utf-8'))]
    assert len(stated) == 2 and set(stated) == {distributed.PEER_TIMEOUT}


def test_too_few_gpus_found_by_every_process_of_the_machine(monkeypatch):
    # The first process of a machine finds too few GPUs for its processes, so that it says it
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 1)
    for name, value in (('RANK', '0'), ('WORLD_SIZE', '2'), ('LOCAL_RANK', '0'),
                        ('LOCAL_WORLD_SIZE', '2')):
        monkeypatch.setenv(name, value)
    with pytest.raises(UsageError, match='each of the 2 processes of this machine needs a GPU'):
        mb.MiniBatchSettings(device='cuda').check()
    # Two machines of one process each
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '1')
    mb.MiniBatchSettings(device='cuda').check()


def test_settings_that_differ_between_processes_are_refused(monkeypatch):
    """
    Every process compares its settings with everyone's as the job starts: one that trains
    otherwise than rank 0 (the learning rate, the epochs) is a mistake said in one line on every
    process; where each machine reads and writes its files, and its threads, may differ.
    """
    given = {0: mb.MiniBatchSettings(), 1: mb.MiniBatchSettings(logs='elsewhere', threads=2,
                                                               data_dir='data', peer_timeout=9)}

    def all_gather_object(out, _):
        out[:] = [{name: value for name, value in given[rank].as_dict().items()
                   if name not in distributed.LOCAL_SETTINGS} for rank in (0, 1)]
    monkeypatch.setattr(distributed.dist, 'all_gather_object', all_gather_object)
    monkeypatch.setenv('LOCAL_RANK', '0')
    for rank in (0, 1):
        monkeypatch.setattr(distributed, '_job', distributed.Job(rank, 2))
        distributed.check_same_settings(given[rank])
    given[1] = mb.MiniBatchSettings(learning_rate=0.5, epochs=4)
    with pytest.raises(UsageError, match=r'^the processes of the job were given different '
                                         r'settings: --learning-rate 0.005 on rank 0, 0.5 on rank 1; '
                                         r'--epochs 1000 on rank 0, 4 on rank 1; give every launch '
                                         r'the same flags after --$'):
        distributed.check_same_settings(given[1])
    assert distributed.by_rank(['gat', 'gatv2', 'gat']) == "'gat' on ranks 0, 2, 'gatv2' on rank 1"


def test_a_mistake_is_said_by_the_machines_first_process(monkeypatch, capsys):
    """
    Another process of the machine that finds the mistake (an error, or the parser's exit) holds
    back what it printed and waits for torchrun to stop it (here a signal raises the
    `KeyboardInterrupt` that `SIGTERM` raises in a script); one not stopped in time found a
    mistake the first did not, and says it. An exit without a mistake does not wait.
    """
    def stop(signum, frame):
        raise KeyboardInterrupt

    def checked(mistake: BaseException, wait: float, signal_after: float = None):
        monkeypatch.setattr(distributed, 'SAID_ONCE_WAIT_SECONDS', wait)
        if signal_after is not None:
            signal.setitimer(signal.ITIMER_REAL, signal_after)
        start = time.monotonic()
        with pytest.raises(type(mistake)) as raised:
            with distributed.checks_said_once():
                print('what it printed', file=sys.stderr)
                raise mistake
        shown = capsys.readouterr().err
        return raised.value, shown, time.monotonic() - start

    previous = signal.signal(signal.SIGALRM, stop)
    try:
        monkeypatch.setenv('LOCAL_RANK', '1')
        error, shown, _ = checked(UsageError('--jobs 2 ...'), wait=60, signal_after=0.2)
        assert error.said_elsewhere and shown == ''
        error, shown, _ = checked(UsageError('--jobs 2 ...'), wait=0.1)
        assert not error.said_elsewhere and shown == 'what it printed\n'
        error, shown, _ = checked(SystemExit(2), wait=60, signal_after=0.2)
        assert error.code == 2 and shown == ''
        _, shown, _ = checked(SystemExit(2), wait=0.1)
        assert shown == 'what it printed\n'
        _, shown, took = checked(SystemExit(0), wait=60)
        assert shown == '' and took < 30
        monkeypatch.setenv('LOCAL_RANK', '0')
        error, shown, took = checked(UsageError('--jobs 2 ...'), wait=60)
        assert not getattr(error, 'said_elsewhere', False) and took < 30
        assert shown == 'what it printed\n'
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_torchrun_takes_only_logs_for_its_own():
    """
    torchrun reads the script's flags as abbreviations of its own when they are the start of one:
    of the experiment's flags only `--logs` is, which is why the documented commands put `--`
    before the script. Everything after `--` reaches the script.
    """
    from torch.distributed.run import get_args_parser
    from labml_gat.settings import argument_parser
    flags = [option for action in argument_parser(mb.MiniBatchSettings, '')._actions
             for option in action.option_strings if option.startswith('--')]
    parser = get_args_parser()
    parser.exit = parser.error = lambda *args, **kwargs: (_ for _ in ()).throw(ValueError(args))

    def collides(flag):
        try:
            return parser.parse_args(['script.py', flag, '1']).training_script_args != [flag, '1']
        except ValueError:
            return True
    assert [flag for flag in flags if collides(flag)] == ['--logs']
    assert parser.parse_args(['--', 'script.py', '--logs', 'x']).training_script_args == ['--logs', 'x']


def documented_torchrun_commands() -> list:
    """Every `torchrun` command line that the README, the pages in `docs/` and the annotated
    files (the modules' and the scripts' pages) show."""
    import re
    import shlex
    sources = [REPO / 'README.md', *sorted(REPO.glob('docs/*.md')),
               *sorted(REPO.glob('labml_gat/*.py')), *sorted(REPO.glob('experiments/*.py'))]
    texts = [path.read_text(encoding='utf-8') for path in sources]
    commands = []
    for text in texts:
        for block in re.findall(r'```bash\n(.*?)```', text, flags=re.DOTALL):
            for line in block.replace('\\\n', ' ').splitlines():
                words = shlex.split(line, comments=True)
                while words and '=' in words[0]:  # environment variables before the command
                    words.pop(0)
                if words[:1] == ['torchrun']:
                    commands.append(words[1:])
    return commands


def test_documented_torchrun_commands_reach_the_script_whole():
    """
    Each documented `torchrun` line, parsed by torchrun's own parser, starts an experiment script
    and hands it every flag after `--`; the script's own parser accepts them.
    """
    from torch.distributed.run import get_args_parser
    from labml_gat.settings import argument_parser
    commands = documented_torchrun_commands()
    assert len(commands) >= 4
    settings = {'cora_minibatch': mb.MiniBatchSettings,
                'synthetic_minibatch': load_experiment('synthetic_minibatch').SyntheticSettings}
    for words in commands:
        script = words.index('--') + 1
        args = get_args_parser().parse_args(words)
        assert args.training_script == words[script], words
        assert args.training_script_args == words[script + 1:], words
        name = Path(args.training_script).stem
        argument_parser(settings[name], '').parse_args(args.training_script_args)


# ## torchrun end to end

def torchrun(args: list, cwd: Path, timeout: float = LIMIT, **env) -> subprocess.CompletedProcess:
    """`torchrun ARGS` in `cwd`, where `experiments/` is the repository's, on a free port."""
    if not (cwd / 'experiments').exists():
        (cwd / 'experiments').symlink_to(REPO / 'experiments')
    environment = {**os.environ, 'OMP_NUM_THREADS': '1', 'LABML_GAT_DATA': str(PLANETOID),
                   'PET_MASTER_PORT': str(free_port()), **env}
    # Its own session, so that a job past its time is ended with every process it started
    launch = subprocess.Popen([str(TORCHRUN), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=cwd, env=environment,
                              start_new_session=True)
    try:
        stdout, stderr = launch.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(launch.pid, signal.SIGKILL)
        launch.communicate()
        raise
    return subprocess.CompletedProcess(launch.args, launch.returncode, stdout, stderr)


def errors(stderr: str) -> list:
    return [line for line in stderr.splitlines() if 'cora_minibatch.py: error:' in line]


@pytest.mark.slow
@needs_planetoid
def test_two_processes_on_one_machine_as_documented(tmp_path):
    """The documented command, with fewer seeds and epochs: only rank 0 prints and writes."""
    result = torchrun(['--nproc-per-node', '2', '--', 'experiments/cora_minibatch.py', '--seeds', '2',
                       '--logs', 'runs', '--epochs', '3', '--summary-json', 'summary.json'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # One report, from rank 0; one labml run and one checkpoint per seed
    assert result.stdout.count('Mini-batches of 35 training nodes') == 1
    assert 'test accuracy:' in result.stdout and '(2 processes)' in result.stdout
    assert "summed over the 2 processes' slices" in result.stdout
    assert len(list((tmp_path / 'runs' / 'cora_gatv2_minibatch').iterdir())) == 2
    assert len(list(tmp_path.glob('runs/cora_gatv2_minibatch/*/checkpoints/best.pt'))) == 2
    summary = json.loads((tmp_path / 'summary.json').read_text())
    assert summary['jobs'] == 2 and [run['seed'] for run in summary['runs']] == [0, 1]
    # The command of the run, which a record of it must give, torchrun's words aside
    assert summary['torchrun'] and summary['script'] == 'cora_minibatch.py'
    assert summary['argv'] == ['--seeds', '2', '--logs', 'runs', '--epochs', '3', '--summary-json',
                               'summary.json']
    assert not (tmp_path / 'logs').exists() and 'Traceback' not in result.stderr


@pytest.mark.slow
@needs_planetoid
def test_two_launches_on_loopback_as_documented(tmp_path):
    """The two-machine commands, both on this machine: `--nnodes 2`, machine 0 at the address
    and port both are given, started last so that it cannot be rank 0 by arriving first."""
    port = free_port()
    command = [str(TORCHRUN), '--nnodes', '2', '--nproc-per-node', '1', '--node-rank', '{rank}',
               '--master-addr', '127.0.0.1', '--master-port', str(port), '--',
               'experiments/cora_minibatch.py', '--epochs', '3', '--logs', 'runs']
    (tmp_path / 'experiments').symlink_to(REPO / 'experiments')
    environment = {**os.environ, 'OMP_NUM_THREADS': '1', 'LABML_GAT_DATA': str(PLANETOID)}
    outputs = two_launches(command, tmp_path, environment, first=1)
    # The report comes from the launch of node 0, which holds rank 0
    assert 'test accuracy:' in outputs[0][0] and '(2 processes)' in outputs[0][0]
    assert 'test accuracy:' not in outputs[1][0]
    assert len(list(tmp_path.glob('runs/cora_gatv2_minibatch/*/checkpoints/best.pt'))) == 1


def first_process_slow(tmp_path: Path, seconds: float = 3.0) -> dict:
    """The environment in which local rank 0 starts `seconds` later than the others (a
    `sitecustomize` that sleeps), as it may on a busy machine."""
    folder = tmp_path / 'slow_first'
    folder.mkdir()
    (folder / 'sitecustomize.py').write_text(
        'import os, time\n'
        f'if os.environ.get("LOCAL_RANK") == "0":\n    time.sleep({seconds})\n')
    return {'PYTHONPATH': os.pathsep.join([str(folder), os.environ.get('PYTHONPATH', '')])}


@pytest.mark.slow
@needs_planetoid
@pytest.mark.parametrize('first_slow', [False, True], ids=['as_started', 'first_slow'])
def test_jobs_under_torchrun_is_one_line(tmp_path, first_slow):
    """
    The mistake is said once for the machine, before any process group or run starts, also when
    the first process finds it last; then torchrun reports the failed processes (with a
    traceback of its own).
    """
    env = first_process_slow(tmp_path) if first_slow else {}
    result = torchrun(['--nproc-per-node', '2', '--', 'experiments/cora_minibatch.py', '--jobs', '2',
                       '--logs', 'runs'], tmp_path, **env)
    assert result.returncode != 0
    lines = errors(result.stderr)
    assert len(lines) == 1 and '--jobs 2 trains seeds in a pool of processes' in lines[0]
    ours = result.stderr.split('torch/distributed/elastic')[0]
    assert 'Traceback' not in ours and 'exitcode  : 2' in result.stderr
    assert not (tmp_path / 'runs').exists()



@pytest.mark.slow
@needs_planetoid
def test_a_script_of_one_process_under_torchrun_is_one_line(tmp_path):
    """The full-batch experiment given to torchrun with two processes would train and write
    twice: it is refused once for the machine, before any run or summary is written."""
    result = torchrun(['--nproc-per-node', '2', '--', 'experiments/cora.py', '--epochs', '3',
                       '--logs', 'runs', '--summary-json', 'summary.json'], tmp_path)
    assert result.returncode != 0 and result.stdout == ''
    lines = [line for line in result.stderr.splitlines() if 'cora.py: error:' in line]
    assert len(lines) == 1 and 'torchrun started 2 processes' in lines[0]
    ours = result.stderr.split('torch/distributed/elastic')[0]
    assert 'Traceback' not in ours and 'exitcode  : 2' in result.stderr
    assert not (tmp_path / 'runs').exists() and not (tmp_path / 'summary.json').exists()


@pytest.mark.slow
@needs_planetoid
@pytest.mark.parametrize('first_slow', [False, True], ids=['as_started', 'first_slow'])
def test_a_corrupt_data_file_under_torchrun_is_one_line(tmp_path, first_slow):
    """A data file that fails its checksum is said once for the machine as well, though the
    processes find it while loading the data, after the settings are checked."""
    data = tmp_path / 'planetoid'
    shutil.copytree(PLANETOID, data)
    graph = data / 'ind.cora.graph'
    graph.write_bytes(graph.read_bytes()[:100])
    env = first_process_slow(tmp_path) if first_slow else {}
    result = torchrun(['--nproc-per-node', '2', '--', 'experiments/cora_minibatch.py',
                       '--logs', 'runs'], tmp_path, LABML_GAT_DATA=str(data), **env)
    assert result.returncode != 0
    lines = errors(result.stderr)
    assert len(lines) == 1 and 'ind.cora.graph' in lines[0], result.stderr[-3000:]
    assert 'exitcode  : 2' in result.stderr and not (tmp_path / 'runs').exists()

@pytest.mark.slow
@needs_planetoid
@pytest.mark.parametrize('stop', [signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP],
                         ids=['killed', 'terminated', 'hung'])
def test_a_killed_or_hung_rank_ends_the_job(tmp_path, stop):
    """
    Two processes started as torchrun starts them, but with no agent to stop the survivor: rank 1 is
    killed or stopped alone (its connections close) or hangs (they stay open, and the timeout of the
    process group ends the wait) mid-run, and rank 0 ends with one line and a non-zero status, long
    before its epochs are done. Its labml run was stopped by another process, not crashed: labml
    records it as interrupted, with the line's reason.
    """
    port = free_port()
    processes = [subprocess.Popen(
        [sys.executable, str(REPO / 'experiments' / 'cora_minibatch.py'), '--data-dir', str(PLANETOID),
         '--epochs', '100000', '--patience', '100000', '--logs', str(tmp_path / 'runs'), '--peer-timeout', '10'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, 'OMP_NUM_THREADS': '1', **job_environment(rank, 2, port)}) for rank in (0, 1)]
    try:
        # Mid-run: rank 0 has created its labml run and trained for a while
        deadline = time.monotonic() + LIMIT
        while not list(tmp_path.glob('runs/*/*/log.jsonl')) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)
        assert processes[0].poll() is None and processes[1].poll() is None
        processes[1].send_signal(stop)
        start = time.monotonic()
        _, stderr = processes[0].communicate(timeout=LIMIT)
        assert time.monotonic() - start < 60
    finally:
        for process in processes:
            process.kill()
    assert processes[0].returncode == 1, stderr[-2000:]
    assert errors(stderr) == [stderr.strip().splitlines()[-1]]
    assert 'rank 0 of 2: another process of the job failed or stopped answering' in stderr
    assert 'Traceback' not in stderr
    [run] = (tmp_path / 'runs').glob('cora_gatv2_minibatch/*')
    closed = json.loads((run / 'run_log.jsonl').read_text().splitlines()[-1])
    assert closed['status'] == 'interrupted' and closed['details'] in errors(stderr)[0]


@pytest.mark.slow
@needs_planetoid
@pytest.mark.parametrize('rank, stop, status', [(0, signal.SIGINT, 130), (1, signal.SIGTERM, 143)],
                         ids=['rank0_ctrl_c', 'rank1_sigterm'])
def test_a_stop_signal_while_waiting_for_the_others_to_join(tmp_path, rank, stop, status):
    """
    One process of a job of two, started alone as torchrun would start it, waits for the other to
    join: rank 0 for it to connect to the port rank 0 listens on; rank 1 here for an answer from a
    port that accepts and says nothing (a rank 0 that hangs). A Ctrl-C, or the `SIGTERM` torchrun
    stops its processes with, stops it at once with one line and its status, not when
    `--peer-timeout` ends the wait; and nothing is written.
    """
    port, connection = free_port(), None
    with socket.socket() as silent:
        if rank == 1:
            silent.bind(('127.0.0.1', port))
            silent.listen()
            silent.settimeout(LIMIT)
        process = subprocess.Popen(
            [sys.executable, str(REPO / 'experiments' / 'cora_minibatch.py'), '--data-dir', str(PLANETOID),
             '--epochs', '2', '--logs', str(tmp_path / 'runs'), '--peer-timeout', '300'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env={**os.environ, 'OMP_NUM_THREADS': '1', **job_environment(rank, 2, port), 'LOCAL_RANK': '0',
                 'LOCAL_WORLD_SIZE': '1'}, preexec_fn=sigint_as_in_a_terminal)
        try:
            # Until it waits: rank 0 listens on the port, rank 1 has connected to it
            if rank == 0:
                deadline = time.monotonic() + LIMIT
                while not any(c.status == psutil.CONN_LISTEN and c.laddr.port == port
                              for c in psutil.Process(process.pid).net_connections()):
                    assert process.poll() is None and time.monotonic() < deadline, process.communicate()
                    time.sleep(0.2)
            else:
                # Held open, unanswered, until the process has ended
                connection, _ = silent.accept()
            time.sleep(1)
            process.send_signal(stop)
            start = time.monotonic()
            _, stderr = process.communicate(timeout=30)
            took = time.monotonic() - start
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
            if connection is not None:
                connection.close()
    assert process.returncode == status and took < 10, stderr[-2000:]
    assert stderr == 'cora_minibatch.py: stopped\n'
    assert not (tmp_path / 'runs').exists()


def held_at(tmp_path: Path, rank: int, name: str) -> Tuple[dict, Path, Path]:
    """
    The environment in which rank `rank`, as it calls `distributed.NAME`, makes the file
    `held` and waits until the file `go` is made (a `sitecustomize`). Returns the
    environment, `held` and `go`.
    """
    folder, held, go = tmp_path / 'held_at', tmp_path / 'held', tmp_path / 'go'
    folder.mkdir()
    (folder / 'sitecustomize.py').write_text(
        'import os, time\n'
        f'if os.environ.get("RANK") == "{rank}":\n'
        '    from labml_gat import distributed\n'
        f'    function = distributed.{name}\n'
        '    def held(*args):\n'
        f'        open({str(held)!r}, "w").close()\n'
        f'        while not os.path.exists({str(go)!r}):\n'
        '            time.sleep(0.001)\n'
        '        return function(*args)\n'
        f'    distributed.{name} = held\n')
    return ({'PYTHONPATH': os.pathsep.join([str(folder), os.environ.get('PYTHONPATH', '')])},
            held, go)


def stopped_while_held(tmp_path: Path, held: int, name: str, command: list, ready: Callable,
                       stop: int, go_after: Optional[float] = 0.0) -> Tuple[int, str, float]:
    """
    The two ranks of `command` (a script and its flags, `{rank}` in them the rank's), as
    torchrun starts them on two machines, rank `held` held at `distributed.<name>`
    (`held_at`): once `ready(processes, held_file, port)`, the other rank is sent `stop`,
    and `go_after` seconds later (`None`: never) the held rank goes on. The stopped rank's status, its `stderr`, and the seconds it took
    to end.
    """
    environment, held_file, go = held_at(tmp_path, held, name)
    port = free_port()
    processes = [subprocess.Popen(
        [sys.executable, str(REPO / 'experiments' / command[0]),
         *(word.format(rank=rank) for word in command[1:])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, 'OMP_NUM_THREADS': '1', **environment, **job_environment(rank, 2, port),
             'LOCAL_RANK': '0', 'LOCAL_WORLD_SIZE': '1'}, preexec_fn=sigint_as_in_a_terminal)
        for rank in (0, 1)]
    stopped = processes[1 - held]
    try:
        deadline = time.monotonic() + LIMIT
        while not ready(processes, held_file, port):
            assert all(p.poll() is None for p in processes) and time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1)
        stopped.send_signal(stop)
        start = time.monotonic()
        if go_after is not None:
            time.sleep(go_after)
            go.touch()
        _, stderr = stopped.communicate(timeout=30)
        return stopped.returncode, stderr, time.monotonic() - start
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.communicate()


@pytest.mark.slow
@needs_planetoid
@pytest.mark.parametrize('stop, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=['ctrl_c', 'sigterm'])
def test_a_stop_signal_as_the_others_join(tmp_path, stop, status):
    """
    Rank 0 waits for rank 1 to join, and rank 1, held until then, joins as rank 0 is
    stopped: the thread of rank 0's join ends its wait in a process that is ending, which
    must not abort it (`terminate called without an active exception`). Rank 0 ends with
    one line and its status, and nothing written.
    """
    def listening(processes, held, port):
        # Rank 1 is held and rank 0 listens on the port for it
        return held.exists() and any(
            c.status == psutil.CONN_LISTEN and c.laddr.port == port
            for c in psutil.Process(processes[0].pid).net_connections())
    returncode, stderr, took = stopped_while_held(
        tmp_path, 1, 'joined', ['cora_minibatch.py', '--data-dir', str(PLANETOID), '--epochs', '2',
                                '--logs', str(tmp_path / 'runs'), '--peer-timeout', '300'],
        listening, stop)
    assert returncode == status and took < 5, stderr[-2000:]
    assert stderr == 'cora_minibatch.py: stopped\n'
    assert not (tmp_path / 'runs').exists()


# When the held rank of `test_a_stop_signal_while_waiting_in_a_collective` goes on after
# the signal, in seconds: never, at once, or while the stopped process would still be
# shutting down Python
PEER_COMES = {'peer_hangs': None, 'peer_comes_at_once': 0.0, 'peer_comes_later': 0.3}


@pytest.mark.slow
@pytest.mark.parametrize('stop, status', [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=['ctrl_c', 'sigterm'])
@pytest.mark.parametrize('peer', list(PEER_COMES))
def test_a_stop_signal_while_waiting_in_a_collective(tmp_path, stop, status, peer):
    """
    Two processes of the synthetic script, started as torchrun starts them on two machines:
    rank 0 is held before it builds the graph, as a build of minutes holds it, and rank 1,
    whose own build was quick, waits for it at the barrier after the build. A Ctrl-C or a
    `SIGTERM` stops rank 1 at once with one line and its status, not when `--peer-timeout`
    ends the wait; also when rank 0 comes to the barrier as the signal arrives, or while
    rank 1 ends: the thread of the wait then ends in a process that is ending, which must
    not abort it (`terminate called without an active exception`).
    """
    def built(processes, held, port):
        # Rank 0 is held and rank 1 has written its graph, just before the barrier
        return held.exists() and bool(list(tmp_path.glob('cache1/*/tensors.json')))
    returncode, stderr, took = stopped_while_held(
        tmp_path, 0, 'write_tensors',
        ['synthetic_minibatch.py', '--nodes', '3000', '--eval-nodes', '500', '--steps', '2',
         '--batch-size', '64', '--cache', 'cache{rank}', '--peer-timeout', '300'],
        built, stop, PEER_COMES[peer])
    assert returncode == status and took < 5, stderr[-2000:]
    assert stderr == 'synthetic_minibatch.py: stopped\n'


@pytest.mark.slow
@needs_planetoid
def test_a_stop_signal_while_waiting_in_a_collective_of_a_run(tmp_path):
    """
    Rank 0 waits in the sum over the ranks of its first epoch, inside its labml run, for
    rank 1, held there: a `SIGTERM` stops it at once, and its run is closed as one that
    was interrupted, with the records of labml's writer, before the process ends.
    """
    returncode, stderr, took = stopped_while_held(
        tmp_path, 1, 'sum_over_ranks',
        ['cora_minibatch.py', '--data-dir', str(PLANETOID), '--epochs', '2',
         '--logs', str(tmp_path / 'runs'), '--peer-timeout', '300'],
        lambda processes, held, port: held.exists(), signal.SIGTERM, None)
    assert returncode == 143 and took < 5, stderr[-2000:]
    assert stderr == 'cora_minibatch.py: stopped\n'
    [run] = (tmp_path / 'runs').glob('cora_gatv2_minibatch/*')
    statuses = [json.loads(line)['status'] for line in
                (run / 'run_log.jsonl').read_text().splitlines()]
    assert statuses[-1] == 'interrupted'
    assert (run / 'log.jsonl').read_text().endswith('\n')


@pytest.mark.slow
@needs_planetoid
def test_launches_given_different_settings_end_before_training(tmp_path):
    """
    Two machines of one process each (here two processes on this machine, as torchrun starts
    them), whose command lines differ in the learning rate: each says so in one line and exits
    with status 2, before any labml run, instead of training apart from what rank 0 records.
    """
    port = free_port()
    environment = {**os.environ, 'OMP_NUM_THREADS': '1'}
    processes = [subprocess.Popen(
        [sys.executable, str(REPO / 'experiments' / 'cora_minibatch.py'), '--data-dir', str(PLANETOID),
         '--epochs', '2', '--logs', str(tmp_path / 'runs'), '--peer-timeout', '30', *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**environment, **job_environment(rank, 2, port), 'LOCAL_RANK': '0', 'LOCAL_WORLD_SIZE': '1'})
        for rank, extra in ((0, []), (1, ['--learning-rate', '0.5']))]
    try:
        outputs = [process.communicate(timeout=LIMIT) for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [2, 2], outputs
    for _, stderr in outputs:
        assert errors(stderr) == [stderr.strip()] == [
            'cora_minibatch.py: error: the processes of the job were given different settings: '
            '--learning-rate 0.005 on rank 0, 0.5 on rank 1; give every launch the same flags after --']
    assert not (tmp_path / 'runs').exists()


@pytest.mark.slow
@needs_planetoid
def test_ctrl_c_in_the_terminal_stops_the_job_with_one_line(tmp_path):
    """
    Ctrl-C reaches torchrun and its processes, and torchrun passes it on to them once more: one
    process says `stopped`, and none is left for torchrun to kill after its 30 s of grace.
    """
    (tmp_path / 'experiments').symlink_to(REPO / 'experiments')
    launch = subprocess.Popen(
        [str(TORCHRUN), '--nproc-per-node', '2', '--', 'experiments/cora_minibatch.py', '--epochs', '100000',
         '--patience', '100000', '--logs', 'runs'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env={**os.environ, 'OMP_NUM_THREADS': '1', 'LABML_GAT_DATA': str(PLANETOID),
                           'PET_MASTER_PORT': str(free_port())}, start_new_session=True)
    try:
        deadline = time.monotonic() + LIMIT
        while not list(tmp_path.glob('runs/*/*/log.jsonl')) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        assert launch.poll() is None
        # The terminal's Ctrl-C: SIGINT to the whole process group
        os.killpg(launch.pid, signal.SIGINT)
        start = time.monotonic()
        _, stderr = launch.communicate(timeout=LIMIT)
        assert time.monotonic() - start < 25
    finally:
        if launch.poll() is None:
            os.killpg(launch.pid, signal.SIGKILL)
            launch.communicate()
    assert launch.returncode != 0
    assert [line for line in stderr.splitlines() if line.startswith('cora_minibatch.py:')] == \
        ['cora_minibatch.py: stopped']
    # torchrun's own traceback of the signal it got, and none of the processes'
    assert stderr.count('Traceback') <= 1 and 'KeyboardInterrupt' not in stderr


@pytest.mark.slow
def test_the_synthetic_graph_under_torchrun(tmp_path):
    """The million-node script on a small graph: two processes, one copy of the graph, one report."""
    result = torchrun(['--nproc-per-node', '2', '--', 'experiments/synthetic_minibatch.py',
                       '--nodes', '3000', '--eval-nodes', '500', '--steps', '2', '--batch-size', '64',
                       '--cache', 'cache'], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('2 processes, 1 thread each:')
    assert [p.name for p in (tmp_path / 'cache').iterdir()] == ['graph_3000_10_128_8_0']
    # Progress on the standard error, from the first process only
    progress = [line for line in result.stderr.splitlines() if not line.startswith(('W', '[W', '*'))]
    assert progress[0].startswith('building the graph of 3000 nodes into ') and progress[-1] == \
        'validation of 500 nodes, layer by layer' and progress.count('step 1 of 4') == 1, result.stderr


@pytest.mark.slow
def test_the_synthetic_graph_from_two_launches_sharing_a_cache(tmp_path):
    """
    The two-machine commands on this machine, with one cache: both launches build the graph
    at once, one keeps the other's files, and the job runs.
    """
    port = free_port()
    command = [str(TORCHRUN), '--nnodes', '2', '--nproc-per-node', '1', '--node-rank', '{rank}',
               '--master-addr', '127.0.0.1', '--master-port', str(port), '--',
               'experiments/synthetic_minibatch.py', '--nodes', '3000', '--eval-nodes', '500',
               '--steps', '2', '--batch-size', '64', '--cache', 'cache']
    (tmp_path / 'experiments').symlink_to(REPO / 'experiments')
    environment = {**os.environ, 'OMP_NUM_THREADS': '1'}
    outputs = two_launches(command, tmp_path, environment, first=0)
    assert outputs[0][0].startswith('2 processes, 1 thread each:')
    assert [p.name for p in (tmp_path / 'cache').iterdir()] == ['graph_3000_10_128_8_0']


@pytest.mark.slow
@needs_planetoid
def test_a_killed_rank_ends_the_torchrun_job(tmp_path):
    """Under torchrun: a process killed mid-run, and torchrun ends the job with a non-zero status."""
    (tmp_path / 'experiments').symlink_to(REPO / 'experiments')
    launch = subprocess.Popen(
        [str(TORCHRUN), '--nproc-per-node', '2', '--', 'experiments/cora_minibatch.py', '--epochs', '100000',
         '--patience', '100000', '--logs', 'runs'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env={**os.environ, 'OMP_NUM_THREADS': '1', 'LABML_GAT_DATA': str(PLANETOID),
                           'PET_MASTER_PORT': str(free_port())})
    try:
        deadline = time.monotonic() + LIMIT
        while not list(tmp_path.glob('runs/*/*/log.jsonl')) and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3)
        workers = psutil.Process(launch.pid).children()
        assert len(workers) == 2 and launch.poll() is None
        workers[1].kill()
        start = time.monotonic()
        _, stderr = launch.communicate(timeout=LIMIT)
        assert time.monotonic() - start < 60
    finally:
        launch.kill()
    assert launch.returncode != 0
    assert 'exitcode  : -9' in stderr and 'Root Cause' in stderr


def two_launches(command: list, folder, environment: dict, first: int) -> list:
    """Runs `command` twice at once, with `{rank}` 0 and 1 (the launch of rank `first` started
    first), in `folder`; both must succeed in `LIMIT` seconds. Their (stdout, stderr), rank 0's
    first."""
    ranks = (first, 1 - first)
    launches = [subprocess.Popen([arg.format(rank=rank) for arg in command], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, cwd=folder, env=environment)
                for rank in ranks]
    try:
        outputs = [launch.communicate(timeout=LIMIT) for launch in launches]
    finally:
        for launch in launches:
            launch.kill()
    assert [launch.returncode for launch in launches] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    return outputs if first == 0 else outputs[::-1]


@pytest.mark.parametrize('damage', [
    'tensors.json:{', 'tensors.json:', 'tensors.json:[]',
    'tensors.json:{"x": {"shape": [-1, 4], "dtype": "float32"}}',
    'tensors.json:{"x": {"shape": [3000000000, 4], "dtype": "float32"}}',
    'tensors.json:{"x": {"shape": [3, 4], "dtype": "load"}}',
    'tensors.json:{"../x": {"shape": [3, 4], "dtype": "float32"}}',
    'x.bin:', 'ptr.bin:-'])
def test_a_damaged_cache_is_one_data_error(tmp_path, damage):
    """A cache changed by hand, cut short or from another version: one clear error, not a
    traceback of torch or json, and no tensor mapped from what the file does not hold."""
    from labml_gat.datasets import DataFileError
    tensors = {'x': torch.arange(12.).view(3, 4), 'ptr': torch.tensor([0, 2, 5])}
    folder = tmp_path / 'graph'
    distributed.write_tensors(folder, lambda: tensors)
    name, text = damage.split(':', 1)
    (folder / name).unlink()
    if text != '-':
        (folder / name).write_text(text)
    with pytest.raises(DataFileError, match='remove the folder') as err:
        distributed.shared_tensors(folder, lambda: tensors)
    assert str(folder) in str(err.value) and '\n' not in str(err.value)
