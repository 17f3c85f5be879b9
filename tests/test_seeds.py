"""Tests of running many seeds: one labml run each, results in seed order, the summary and its table."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from conftest import sigint_as_in_a_terminal
from labml_gat import runs, seeds
from labml_gat.seeds import format_summary, run_seeds, summarize
from labml_gat.training import NodeClassificationSettings


def fake_train(settings, data, seed, checkpoint):
    """Trains nothing: records what it was given, and saves a checkpoint where it is asked to."""
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    torch.save({'seed': torch.tensor(seed)}, checkpoint)
    print(f'training seed {seed}')
    result = {'seed': seed, 'data': data, 'epochs': 10 + seed, 'best_epoch': seed, 'seconds': 0.25,
              'val_accuracy': 0.5 + seed / 100, 'test_accuracy': 0.8 + seed / 100,
              'checkpoint': str(checkpoint)}
    return result, None


def test_run_seeds_runs_each_seed_as_a_labml_run(tmp_path, labml_logs, capsys):
    settings = NodeClassificationSettings(seed=4, seeds=3, quiet=True, logs=str(tmp_path / 'runs'),
                                          n_heads=2, jobs=1)
    argv = ['--seed', '4', '--seeds=3', '--n-heads', '2', '--logs', str(tmp_path / 'runs')]
    summary = run_seeds(settings, {'seed', 'seeds', 'n_heads'}, 'the data', fake_train, argv)
    # The results in seed order, each with the data it was given
    assert [run['seed'] for run in summary['runs']] == [4, 5, 6]
    assert all(run['data'] == 'the data' for run in summary['runs'])
    assert summary['settings'] == settings.as_dict() and summary['jobs'] == 1
    # With the command of the run, to check a record's command by: the file name of the
    # script its settings are of, and the words after it
    assert summary['script'] == 'training.py' and summary['argv'] == argv
    assert summary['test_accuracy'] == {'mean': 85.0, 'std': 1.0, 'n': 3}
    assert summary['val_accuracy'] == {'mean': 55.0, 'std': 1.0, 'n': 3}
    assert summary['seconds'] == 0.75 and summary['wall_seconds'] >= 0
    # Every run is in the `--logs` folder, with its checkpoint and its settings
    runs = sorted((tmp_path / 'runs' / 'cora_gatv2').iterdir())
    assert len(runs) == 3
    checkpoints = sorted(str(run / 'checkpoints' / 'best.pt') for run in runs)
    assert sorted(run['checkpoint'] for run in summary['runs']) == checkpoints
    for run in runs:
        configs = yaml.safe_load((run / 'configs.yaml').read_text())
        assert configs['n_heads']['value'] == 2 and configs['n_heads']['is_explicitly_specified']
        assert not configs['dropout']['is_explicitly_specified']
        assert (run / 'run.yaml').is_file()
    seeds_recorded = sorted(yaml.safe_load((run / 'configs.yaml').read_text())['seed']['value'] for run in runs)
    assert seeds_recorded == [4, 5, 6]
    # `--quiet`: nothing printed but what the training function printed (no labml banner)
    out = capsys.readouterr().out
    assert out.splitlines() == ['training seed 4', 'training seed 5', 'training seed 6']
    # Nothing went into the default logs folder
    assert not labml_logs.exists()


def test_a_stopped_run_says_which_seeds_finished(tmp_path, labml_logs, capsys):
    # Seeds 4 and 5 finish, seed 6 is stopped: the two finished ones are said, and the stop goes on
    def stopped_at_6(settings, data, seed, checkpoint):
        if seed == 6:
            raise KeyboardInterrupt
        return fake_train(settings, data, seed, checkpoint)

    settings = NodeClassificationSettings(seed=4, seeds=4, quiet=True, logs=str(tmp_path / 'runs'),
                                          jobs=1)
    with pytest.raises(KeyboardInterrupt):
        run_seeds(settings, set(), None, stopped_at_6)
    assert capsys.readouterr().err == (f'2 of 4 seeds finished (seeds 4, 5): test accuracy 84.50 ± 0.71 % '
                                       f'over 2 seeds; their runs are in {tmp_path / "runs"}\n')
    # Stopped before any seed finished: nothing to say
    with pytest.raises(KeyboardInterrupt):
        run_seeds(NodeClassificationSettings(seed=6, seeds=2, quiet=True, logs=str(tmp_path), jobs=1),
                  set(), None, stopped_at_6)
    assert capsys.readouterr().err == ''


def test_every_runs_seed_is_marked_as_given(tmp_path, labml_logs):
    # Each run has its own seed, given to it whether or not `--seed` was on the command line
    settings = NodeClassificationSettings(seeds=2, quiet=True, logs=str(tmp_path), jobs=1)
    run_seeds(settings, {'seeds'}, None, fake_train)
    configs = [yaml.safe_load((run / 'configs.yaml').read_text()) for run in (tmp_path / 'cora_gatv2').iterdir()]
    assert sorted(c['seed']['value'] for c in configs) == [0, 1]
    assert all(c['seed']['is_explicitly_specified'] for c in configs)
    assert not any(c['dropout']['is_explicitly_specified'] for c in configs)


def test_the_seeds_finished_are_said_in_order(labml_logs, capsys):
    seeds.say_finished({5: {'test_accuracy': 0.8}, 4: {'test_accuracy': 0.82}}, 3)
    assert capsys.readouterr().err.startswith('2 of 3 seeds finished (seeds 4, 5): test accuracy 81.00 ± 1.41 % ')


@pytest.mark.slow
def test_seeds_side_by_side_say_each_as_it_ends(tmp_path, labml_logs, capsys):
    summary = run_seeds(NodeClassificationSettings(seeds=2, jobs=2, logs=str(tmp_path)), set(), None, fake_train)
    assert summary['jobs'] == 2 and [run['seed'] for run in summary['runs']] == [0, 1]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.startswith('seed ') for line in lines)
    assert [line.split('(')[1].split(' seeds')[0] for line in lines] == ['1/2', '2/2']


def test_stopping_the_workers_leaves_the_stop_signals_as_they_were():
    # The stop ignores a second Ctrl-C while the workers record their runs, then hands the signals back
    import multiprocessing
    import signal
    from concurrent.futures import ProcessPoolExecutor

    def mine(signum, frame):
        pass
    before = {signum: signal.signal(signum, mine) for signum in runs.STOP_SIGNALS}
    try:
        seeds.stop_workers(ProcessPoolExecutor(1), multiprocessing.get_context('spawn').Event())
        assert all(signal.getsignal(signum) is mine for signum in runs.STOP_SIGNALS)
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_workers_first_ctrl_c_interrupts_and_the_next_are_ignored():
    import signal
    before = signal.signal(signal.SIGINT, seeds._interrupt_once)
    try:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)


def test_one_seed_needs_one_process(tmp_path, labml_logs, monkeypatch):
    settings = NodeClassificationSettings(seeds=1, jobs=4, quiet=True, logs=str(tmp_path))
    # No words given, the run's are the process's, as for argparse
    monkeypatch.setattr(sys, 'argv', ['experiments/cora.py', '--seeds', '1', '--jobs', '4'])
    summary = run_seeds(settings, set(), None, fake_train)
    assert summary['jobs'] == 1 and summary['test_accuracy']['std'] == 0.0
    assert summary['argv'] == ['--seeds', '1', '--jobs', '4']


def test_the_summary_gives_the_accuracies_the_results_hold(tmp_path, labml_logs):
    """A task without a validation set (DictionaryLookup) chooses on the training accuracy: its
    summary gives that accuracy's mean and spread beside the test's, and no validation's."""
    def without_validation(settings, data, seed, checkpoint):
        result, model = fake_train(settings, data, seed, checkpoint)
        del result['val_accuracy']
        return {**result, 'train_accuracy': 0.9 + seed / 100}, model

    settings = NodeClassificationSettings(seeds=2, jobs=1, quiet=True, logs=str(tmp_path))
    summary = run_seeds(settings, set(), None, without_validation)
    assert summary['train_accuracy'] == {'mean': 90.5, 'std': 0.71, 'n': 2}
    assert summary['test_accuracy'] == {'mean': 80.5, 'std': 0.71, 'n': 2}
    assert 'val_accuracy' not in summary
    # The Cora experiments' results have no training accuracy, and their summaries none
    assert 'train_accuracy' not in run_seeds(settings, set(), None, fake_train)


def test_summarize():
    assert summarize([0.8, 0.84]) == {'mean': 82.0, 'std': 2.83, 'n': 2}
    assert summarize([0.81234, 0.81234]) == {'mean': 81.23, 'std': 0.0, 'n': 2}
    assert summarize([0.8]) == {'mean': 80.0, 'std': 0.0, 'n': 1}


def test_format_summary():
    summary = {'runs': [{'seed': 0, 'epochs': 200, 'best_epoch': 90, 'val_accuracy': 0.81,
                         'test_accuracy': 0.832, 'seconds': 3.0},
                        {'seed': 1, 'epochs': 150, 'best_epoch': 40, 'val_accuracy': 0.8,
                         'test_accuracy': 0.824, 'seconds': 2.0}],
               'test_accuracy': {'mean': 82.8, 'std': 0.57, 'n': 2}, 'seconds': 5.0, 'wall_seconds': 3.5,
               'jobs': 2}
    lines = format_summary(summary, 'A title').splitlines()
    assert lines[0] == 'A title'
    assert lines[1].split() == ['seed', 'epochs', 'best', 'val', '%', 'test', '%', 'time', 's']
    assert lines[2].split() == ['0', '200', '90', '81.0', '83.2', '3.0']
    assert lines[-1] == ('test accuracy: 82.80 ± 0.57 % over 2 seeds; 5.0 s of training, '
                         '3.5 s in all (2 processes)')
    summary['jobs'] = 1
    assert format_summary(summary, 'x').endswith('(1 process)')
    # One seed: its accuracy, with no spread of zero
    summary.update(runs=summary['runs'][:1], test_accuracy={'mean': 83.2, 'std': 0.0, 'n': 1})
    assert format_summary(summary, 'x').splitlines()[-1].startswith(
        'test accuracy: 83.20 % with one seed; ')
    # Runs without a validation set: the training accuracy beside the test's
    for run in summary['runs']:
        run['train_accuracy'] = run.pop('val_accuracy') + 0.1
    lines = format_summary(summary, 'x').splitlines()
    assert lines[1].split() == ['seed', 'epochs', 'best', 'train', '%', 'test', '%', 'time', 's']
    assert lines[2].split() == ['0', '200', '90', '91.0', '83.2', '3.0']


def test_available_cores():
    assert 1 <= seeds.available_cores() <= (__import__('os').cpu_count() or 1)


@pytest.mark.slow
def test_a_worker_prints_nothing_and_uses_its_threads(tmp_path):
    """`start_worker` in a fresh process: its threads, the parent's logs folder, and a silent stdout."""
    script = ('import sys, torch\nfrom labml import lab\nfrom labml_gat.seeds import start_worker\n'
              f'start_worker(1, {str(tmp_path)!r})\nprint("hidden")\n'
              'sys.stderr.write(f"{torch.get_num_threads()} {lab.get_experiments_path()}")\n')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ''
    threads, path = result.stderr.split()
    assert threads == '1' and path == str(tmp_path)


@pytest.mark.parametrize('quiet', [True, False])
def test_run_seed_returns_the_result(tmp_path, labml_logs, capsys, quiet):
    settings = NodeClassificationSettings(quiet=quiet)
    seeds.lab.configure({'experiments_path': str(tmp_path)})
    result = seeds.run_seed(settings, set(), 'data', 7, fake_train)
    assert result['seed'] == 7 and result['checkpoint'].startswith(str(tmp_path / 'cora_gatv2'))
    out = capsys.readouterr().out
    if quiet:
        assert out == 'training seed 7\n'
    else:
        # labml's banner names the run
        assert 'cora_gatv2' in out or 'seed 7' in out


def test_a_workers_run_prints_nothing_and_keeps_the_settings_given(tmp_path, labml_logs, capsys):
    # A worker's seed is silent whatever `--quiet` says; its run records `--quiet` as given
    settings = NodeClassificationSettings(quiet=False)
    seeds.lab.configure({'experiments_path': str(tmp_path)})
    seeds.run_seed(settings, set(), 'data', 7, fake_train, shown=False)
    assert capsys.readouterr().out == 'training seed 7\n'
    [run] = runs.find_runs(tmp_path)
    assert run.settings['quiet'] is False and run.settings['seed'] == 7


# ## Ctrl-C and SIGTERM stop every seed at once
#
# A script that trains slow fake seeds, each a labml run, with `command` as its entry point; a
# seed marks in `data` when it starts, so that the test interrupts only once seeds are running.
SLOW_SEEDS = '''
import sys, time
from pathlib import Path
from labml import tracker
from labml_gat.seeds import run_seeds
from labml_gat.settings import command
from labml_gat.training import NodeClassificationSettings


def train(settings, data, seed, checkpoint):
    (Path(data) / f'started-{seed}').touch()
    for step in range(1200):
        time.sleep(0.05)
        tracker.save(step, {'loss.train': 1.0})
    (Path(data) / f'finished-{seed}').touch()
    return {'seed': seed, 'epochs': 1, 'best_epoch': 0, 'seconds': 1.0, 'val_accuracy': 0.5,
            'test_accuracy': 0.5}, None


def main(argv):
    seeds, jobs, logs, data = argv
    settings = NodeClassificationSettings(seeds=int(seeds), jobs=int(jobs), logs=logs)
    run_seeds(settings, set(), data, train)


if __name__ == '__main__':
    command(main)()
'''


def interrupt_when_running(command, folder, started, signum, whole_group, timeout=120):
    """
    Start `command`, wait until `started` seeds have begun, then send `signum` to the process
    alone, or to its whole process group as a terminal's Ctrl-C does. Returns the exit status,
    the standard error and how long the process took to stop.
    """
    import os
    import signal
    import time
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, cwd=folder,
                               preexec_fn=sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + timeout
        while len(list(folder.glob('started-*'))) < started:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, 'the seeds did not start'
            time.sleep(0.1)
        time.sleep(0.5)
        sent = time.monotonic()
        if whole_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        _, err = process.communicate(timeout=60)
        return process.returncode, err, time.monotonic() - sent
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def statuses(logs):
    """The last status of every labml run in `logs`."""
    from labml_gat.runs import read_status
    return [read_status(run) for run in sorted(logs.glob('*/*')) if run.is_dir()]


@pytest.mark.slow
@pytest.mark.parametrize('signum, whole_group, jobs', [
    ('SIGINT', True, 2), ('SIGINT', False, 2), ('SIGTERM', False, 2), ('SIGTERM', True, 2),
    ('SIGINT', True, 1)])
def test_a_stop_signal_stops_every_seed(tmp_path, signum, whole_group, jobs):
    import signal
    script = tmp_path / 'slow_seeds.py'
    script.write_text(SLOW_SEEDS)
    logs = tmp_path / 'logs'
    status, err, seconds = interrupt_when_running(
        [sys.executable, str(script), '5', str(jobs), str(logs), str(tmp_path)], tmp_path,
        started=jobs, signum=getattr(signal, signum), whole_group=whole_group)
    # One line, the exit status of the signal, and no traceback
    assert err == 'slow_seeds.py: stopped\n', err
    assert status == (143 if signum == 'SIGTERM' else 130)
    # Every seed that started was interrupted at once (a seed trains for a minute) and
    # recorded as such; no other seed started
    assert seconds < 30
    assert len(list(tmp_path.glob('started-*'))) == jobs
    assert not list(tmp_path.glob('finished-*'))
    assert statuses(logs) == ['interrupted'] * jobs


def children(pid: int) -> list:
    """The processes whose parent is `pid` (Linux: read from /proc)."""
    found = []
    for stat in Path('/proc').glob('[0-9]*/stat'):
        try:
            fields = stat.read_text().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path('/proc/self/stat').is_file(), reason='reads the processes from /proc')
def test_a_ctrl_c_while_the_workers_start_stops_without_a_traceback(tmp_path):
    # The terminal's Ctrl-C reaches the workers too, while they still import torch: they hold it
    # (blocked, as the parent had it when it spawned them), and the parent stops them. It comes
    # while the parent still spawns workers (four, one by one): the parent must not lose it
    import os
    import signal
    import time
    script = tmp_path / 'slow_seeds.py'
    script.write_text(SLOW_SEEDS)
    process = subprocess.Popen([sys.executable, str(script), '8', '4', str(tmp_path / 'logs'), str(tmp_path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               cwd=tmp_path, preexec_fn=sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 120
        # Multiprocessing's resource tracker and the pool's first worker
        while len(children(process.pid)) < 2:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert (process.returncode, err) == (130, 'slow_seeds.py: stopped\n'), err
    assert not list(tmp_path.glob('started-*'))


FAILING_SEEDS = SLOW_SEEDS.replace(
    "    (Path(data) / f'started-{seed}').touch()\n",
    "    (Path(data) / f'started-{seed}').touch()\n"
    "    if seed == 1:\n"
    "        raise RuntimeError('seed 1 failed')\n").replace('range(1200)', 'range(40)')


FAILING_LATER = SLOW_SEEDS.replace(
    "    (Path(data) / f'started-{seed}').touch()\n",
    "    (Path(data) / f'started-{seed}').touch()\n"
    "    if seed == 1:\n"
    "        while not (Path(data) / 'finished-0').exists():\n"
    "            time.sleep(0.05)\n"
    "        time.sleep(1)\n"
    "        raise RuntimeError('seed 1 failed')\n").replace('range(1200)', 'range(10 if seed == 0 else 1200)')


@pytest.mark.slow
def test_seeds_side_by_side_say_which_finished_before_one_failed(tmp_path):
    # Seed 0 finishes (in half a second), then seed 1 fails while seed 2 trains: the error goes on,
    # after the line that names seed 0
    script = tmp_path / 'failing_later.py'
    script.write_text(FAILING_LATER)
    logs = tmp_path / 'logs'
    process = subprocess.run([sys.executable, str(script), '6', '2', str(logs), str(tmp_path)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert process.returncode != 0 and 'seed 1 failed' in process.stderr, process.stderr
    said = f'1 of 6 seeds finished (seed 0): test accuracy 50.00 % with one seed; its run is in {logs}\n'
    assert said in process.stderr, process.stderr


@pytest.mark.slow
def test_a_failed_seed_stops_the_others_as_in_one_process(tmp_path):
    # Seeds side by side: when one fails, no other seed starts (a seed already taken by a worker is
    # interrupted), and its error ends the process, as it would in one process
    script = tmp_path / 'failing_seeds.py'
    script.write_text(FAILING_SEEDS)
    process = subprocess.run([sys.executable, str(script), '6', '2', str(tmp_path / 'logs'), str(tmp_path)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert process.returncode != 0 and 'seed 1 failed' in process.stderr, process.stderr
    assert len(list(tmp_path.glob('started-*'))) <= 3
    assert not list(tmp_path.glob('finished-*'))
