"""
Tests of the settings convention: flags from a dataclass, the settings given explicitly, one line and
exit status 2 for a user's mistake, and the exit statuses of an interrupted run.
"""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

import pytest
import torch

from conftest import PLANETOID, REPO, needs_planetoid, sigint_as_in_a_terminal
from labml_gat.datasets import DataFileError, MissingDataError
from labml_gat.settings import (Settings, UsageError, argument_parser, check_at_least, check_device,
                                check_probability, command, describe_default, flag, prog, setting)


@dataclasses.dataclass
class ExampleSettings(Settings):
    n_heads: int = setting(8, 'attention heads')
    layer: str = setting('gatv2', 'the layer', choices=('gatv2', 'gat'))
    dropout: float = setting(0.6, 'dropout')
    fast: bool = setting(True, 'speed-ups')
    quiet: bool = setting(False, 'no progress')
    fanouts: List[int] = setting([10, 10], 'per hop')
    jobs: Optional[int] = setting(None, 'processes')
    rate: Optional[float] = setting(None, 'a rate')
    data_dir: Optional[str] = setting(None, 'a folder')

    def check(self) -> None:
        super().check()
        check_at_least(self, 1, ('n_heads', 'jobs'))
        check_probability('dropout', self.dropout)


# ## Flags from the dataclass

def test_a_flag_per_field():
    assert flag('n_heads') == '--n-heads' and flag('seed') == '--seed'
    settings, explicit = ExampleSettings.from_command_line(
        ['--n-heads', '4', '--layer', 'gat', '--no-fast', '--quiet', '--fanouts', '5', '-1', '--jobs', '2',
         '--rate', '0.5', '--data-dir', 'somewhere'])
    assert settings == ExampleSettings(n_heads=4, layer='gat', fast=False, quiet=True, fanouts=[5, -1],
                                       jobs=2, rate=0.5, data_dir='somewhere')
    assert explicit == {'n_heads', 'layer', 'fast', 'quiet', 'fanouts', 'jobs', 'rate', 'data_dir'}


def test_defaults_come_from_the_dataclass_and_are_not_explicit():
    settings, explicit = ExampleSettings.from_command_line([])
    assert settings == ExampleSettings() and explicit == set()
    # A flag given with its default value is still explicit
    settings, explicit = ExampleSettings.from_command_line(['--n-heads', '8', '--fast'])
    assert settings == ExampleSettings() and explicit == {'n_heads', 'fast'}


def test_list_defaults_are_not_shared():
    one, other = ExampleSettings(), ExampleSettings()
    one.fanouts.append(3)
    assert other.fanouts == [10, 10] and ExampleSettings().fanouts == [10, 10]


def test_help_lists_every_flag_with_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        ExampleSettings.from_command_line(['--help'], 'An example.')
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert 'An example.' in text
    for part in ('--n-heads', '--layer {gatv2,gat}', '--fast, --no-fast', '--fanouts', '--data-dir',
                 '(default: 8)', '(default: 10 10)', '(default: none)', '(default: True)'):
        assert part in text, part
    assert describe_default([1, 2]) == '1 2' and describe_default(None) == 'none'


def test_no_abbreviations():
    with pytest.raises(SystemExit):
        argument_parser(ExampleSettings, '').parse_args(['--n-head', '3'])


@pytest.mark.parametrize('argv, message', [
    (['--n-heads', '0'], 'error: --n-heads must be at least 1, got 0'),
    (['--jobs', '0'], 'error: --jobs must be at least 1, got 0'),
    (['--dropout', '1.5'], r'error: --dropout must be a probability in [0, 1), got 1.5'),
    (['--layer', 'gcn'], "error: argument --layer: invalid choice: 'gcn'"),
    (['--n-heads', 'x'], "error: argument --n-heads: invalid int value: 'x'"),
    (['--fanouts', '5', 'x'], "error: argument --fanouts: invalid int value: 'x'"),
    (['--no-such-flag'], 'error: unrecognized arguments: --no-such-flag'),
])
def test_a_mistake_is_one_line_and_exit_status_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        ExampleSettings.from_command_line(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    # Exactly one line, without argparse's usage before it
    assert len(err.splitlines()) == 1 and err.startswith(f'{prog()}: error: ')
    assert message in err


def test_a_path_starts_at_home_where_it_starts_with_a_tilde(monkeypatch, tmp_path, capsys):
    # As the shell would have it where it did not expand it (quoted, or after `=`); every use of
    # the setting then writes where it was checked
    from labml_gat.training import NodeClassificationSettings
    monkeypatch.setenv('HOME', str(tmp_path))
    settings, _ = NodeClassificationSettings.from_command_line(['--summary-json=~/s.json', '--logs', '~/runs'])
    assert (settings.summary_json, settings.logs) == (str(tmp_path / 's.json'), str(tmp_path / 'runs'))
    # The home of a user who does not exist is a mistake, not a traceback; an empty path too
    for argv, message in ((['--summary-json', '~no_such_user_here/s.json'], 'argument --summary-json: '),
                          (['--summary-json='], '--summary-json is empty; give a file name'),
                          (['--logs', ''], '--logs is empty; give a folder')):
        with pytest.raises(SystemExit) as exit_info:
            NodeClassificationSettings.from_command_line(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and len(err.splitlines()) == 1 and message in err, err


@pytest.mark.parametrize('seed, seeds, ok', [(0, 1, True), (2 ** 32 - 1, 1, True), (2 ** 32 - 2, 2, True),
                                             (-1, 1, False), (2 ** 32, 1, False), (2 ** 32 - 1, 2, False),
                                             (2 ** 64, 1, False)])
def test_check_seed(seed, seeds, ok):
    # Seeds are below 2**32: the seeds derived from them for each process stay within 64 bits
    from labml_gat.settings import check_seed
    if ok:
        check_seed(seed, seeds)
    else:
        with pytest.raises(UsageError, match='--seed'):
            check_seed(seed, seeds)


def test_choices_are_checked_for_settings_built_in_code():
    with pytest.raises(UsageError, match="^--layer must be one of gatv2, gat, got 'gcn'$"):
        ExampleSettings(layer='gcn').check()


# ## Checks

def test_check_at_least():
    check_at_least(ExampleSettings(jobs=None), 1, ('jobs',))
    with pytest.raises(UsageError, match='^--jobs must be at least 1, got 0$'):
        check_at_least(ExampleSettings(jobs=0), 1, ('jobs',))


@pytest.mark.parametrize('value, ok', [(0.0, True), (0.6, True), (0.999, True), (1.0, False), (-0.1, False),
                                       (1.5, False), (float('nan'), False)])
def test_check_probability(value, ok):
    if ok:
        check_probability('dropout', value)
    else:
        with pytest.raises(UsageError, match=r'^--dropout must be a probability in \[0, 1\)'):
            check_probability('dropout', value)


def test_check_device():
    check_device('cpu')
    with pytest.raises(UsageError, match='^--device gpu0: not a device'):
        check_device('gpu0')
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match='^--device cuda: PyTorch finds no CUDA device here$'):
            check_device('cuda')
        with pytest.raises(UsageError, match='^--device cuda:1: PyTorch finds no CUDA device'):
            check_device('cuda:1')
    else:
        with pytest.raises(UsageError, match='CUDA devices'):
            check_device(f'cuda:{torch.cuda.device_count()}')
    if not torch.backends.mps.is_available():
        with pytest.raises(UsageError, match='no MPS device'):
            check_device('mps')
    with pytest.raises(UsageError, match='only cpu, cuda and mps are supported'):
        check_device('meta')


# ## `command`: exit statuses

def run_command(monkeypatch, main, argv=()):
    monkeypatch.setattr(sys, 'argv', ['example.py', *argv])
    with pytest.raises(SystemExit) as exit_info:
        command(main)()
    return exit_info.value.code


@pytest.mark.parametrize('error', [UsageError('--epochs must be at least 1, got 0'),
                                   MissingDataError('put the files in data/'),
                                   DataFileError('ind.cora.graph is corrupt')])
def test_user_mistakes_are_one_line_and_status_2(monkeypatch, capsys, error):
    def main(argv):
        raise error
    assert run_command(monkeypatch, main) == 2
    captured = capsys.readouterr()
    assert captured.err == f'example.py: error: {error}\n' and captured.out == ''


def test_the_arguments_reach_main(monkeypatch):
    received = []
    monkeypatch.setattr(sys, 'argv', ['example.py', '--epochs', '3'])
    command(received.append)()
    assert received == [['--epochs', '3']]


def test_the_runs_go_where_the_environment_says(monkeypatch, tmp_path):
    # `LABML_GAT_LOGS` names the folder of the runs of a script started from anywhere (the tests'
    # subprocesses, the site's build); without it labml keeps its own `logs/` of the clone
    from labml import lab
    seen = []
    monkeypatch.setattr(sys, 'argv', ['example.py'])
    monkeypatch.setenv('LABML_GAT_LOGS', str(tmp_path / 'elsewhere'))
    command(lambda argv: seen.append(Path(lab.get_experiments_path())))()
    assert seen == [(tmp_path / 'elsewhere').resolve()]


def test_torchrun_runs_only_the_scripts_made_for_it(monkeypatch, capsys):
    """Several torchrun processes of a script of one process are one line and status 2 before
    `main` runs (each would train and write alone); a script made for torchrun runs there, and
    torchrun of one process is the script's plain run."""
    ran = []
    for name, value in {'RANK': '0', 'LOCAL_RANK': '0', 'WORLD_SIZE': '2'}.items():
        monkeypatch.setenv(name, value)
    assert run_command(monkeypatch, ran.append) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith('example.py: error: torchrun started 2 processes')
    assert captured.err.count('\n') == 1 and captured.out == '' and ran == []
    command(ran.append, torchrun=True)()
    monkeypatch.setenv('WORLD_SIZE', '1')
    command(ran.append)()
    assert ran == [[], []]


def test_ctrl_c_is_status_130(monkeypatch, capsys):
    def main(argv):
        raise KeyboardInterrupt
    assert run_command(monkeypatch, main) == 130
    assert capsys.readouterr().err == 'example.py: stopped\n'


def test_stopped_is_said_by_the_machines_first_process(monkeypatch, capsys):
    """torchrun's processes are stopped together: the first of each machine says so."""
    def main(argv):
        raise KeyboardInterrupt
    monkeypatch.setenv('LOCAL_RANK', '1')
    assert run_command(monkeypatch, main) == 130
    assert capsys.readouterr().err == ''
    monkeypatch.setenv('LOCAL_RANK', '0')
    assert run_command(monkeypatch, main) == 130
    assert capsys.readouterr().err == 'example.py: stopped\n'


def test_a_bug_keeps_its_traceback(monkeypatch):
    def main(argv):
        raise RuntimeError('a bug')
    monkeypatch.setattr(sys, 'argv', ['example.py'])
    with pytest.raises(RuntimeError, match='a bug'):
        command(main)()


@pytest.mark.slow
def test_sigterm_is_status_143(tmp_path):
    """`SIGTERM` ends the script as Ctrl-C does (labml sees a `KeyboardInterrupt`), with status 143."""
    script = ('import time\nfrom labml_gat.settings import command\n'
              'def main(argv):\n    print("started", flush=True)\n    time.sleep(60)\n'
              'command(main)()\n')
    path = tmp_path / 'sleeper.py'
    path.write_text(script)
    process = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    assert process.stdout.readline() == 'started\n'
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert err == 'sleeper.py: stopped\n'


# A script whose labml run is closed while a stop signal arrives, as torchrun sends one to
# its processes when the terminal's Ctrl-C has stopped them, or when another process failed
CLOSED_WHILE_STOPPED = """
import os, signal, time
from labml import tracker
from labml.internal.experiment import Experiment
from labml.internal.tracker.writers import file
from labml_gat.distributed import LostPeer
from labml_gat.runs import labml_run, use_logs_from_environment
from labml_gat.settings import command

file.FREQUENCY = 0  # labml's writer thread starts with the first record
finish = Experiment.finish

def finish_and_stop(self, *args, **kwargs):
    os.kill(os.getpid(), signal.{signal_in_close})
    finish(self, *args, **kwargs)

Experiment.finish = finish_and_stop

def main(argv):
    use_logs_from_environment()
    with labml_run('closing', 'a run', {{}}, screen=False, quiet=True):
        tracker.save(0, {{'loss': 1.0}})
        {end}

command(main)()
"""


@pytest.mark.slow
@pytest.mark.parametrize('end, signal_in_close, status', [
    ('os.kill(os.getpid(), signal.SIGINT); time.sleep(60)', 'SIGINT', 130),
    ('raise LostPeer("rank 0 of 2: another process of the job failed")', 'SIGTERM', 143),
], ids=['stopped', 'failed'])
def test_a_stop_while_the_run_closes_ends_the_process(tmp_path, end, signal_in_close, status):
    """
    A stop signal while labml closes the run, after a Ctrl-C or a failure, leaves the run
    closed (labml's writer thread told to finish) and the process ends at once, with one line.
    """
    path = tmp_path / 'closing.py'
    path.write_text(CLOSED_WHILE_STOPPED.format(end=end, signal_in_close=signal_in_close))
    logs = tmp_path / 'logs'
    process = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=REPO,
                               env={**os.environ, 'LABML_GAT_LOGS': str(logs)},
                               preexec_fn=sigint_as_in_a_terminal)
    try:
        # A process left waiting for labml's writer thread would never end
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == status, err
    assert err == 'closing.py: stopped\n'
    [run] = logs.glob('closing/*')
    statuses = [json.loads(line)['status'] for line in (run / 'run_log.jsonl').read_text().splitlines()]
    assert statuses[-1] in ('interrupted', 'crashed')


@pytest.mark.slow
@needs_planetoid
def test_sigterm_marks_the_labml_run_interrupted(tmp_path):
    """A Cora run killed with `SIGTERM` after it started: status 143, and labml's run log says 'interrupted'."""
    logs = tmp_path / 'logs'
    process = subprocess.Popen(
        [sys.executable, str(REPO / 'experiments' / 'cora.py'), '--data-dir', str(PLANETOID), '--logs', str(logs),
         '--epochs', '100000', '--patience', '100000', '--quiet'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        # Wait until the run has tracked an epoch
        deadline = time.monotonic() + 300
        while not any(path.stat().st_size > 0 for path in logs.glob('cora_gatv2/*/log.jsonl')):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, 'the run did not start'
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, err
    assert err.strip().splitlines()[-1] == 'cora.py: stopped' and 'Traceback' not in err
    [run] = logs.glob('cora_gatv2/*')
    statuses = [json.loads(line)['status'] for line in (run / 'run_log.jsonl').read_text().splitlines()]
    assert statuses[-1] == 'interrupted'


# ## One rule for every output path, and one default per flag

def test_check_output(tmp_path):
    from labml_gat.settings import check_output
    (tmp_path / 'a file').write_text('')
    check_output('--out', None)
    check_output('--out', str(tmp_path / 'new.json'))
    check_output('--out', str(tmp_path / 'a file'))
    check_output('--logs', str(tmp_path), folder=True)
    check_output('--logs', str(tmp_path / 'new folder'), folder=True)
    mistakes = [('--out', tmp_path, False, 'is a folder; give a file name'),
                ('--out', f'{tmp_path / "new"}/', False, 'is a folder; give a file name'),
                ('--logs', tmp_path / 'a file', True, 'is a file; give a folder'),
                ('--out', tmp_path / 'missing' / 'x.json', False, 'does not exist'),
                ('--logs', tmp_path / 'missing' / 'x', True, 'does not exist'),
                ('--logs', tmp_path / 'a file' / 'x', True, 'is a file, not a folder')]
    if Path('/proc/self').is_dir():
        mistakes.append(('--logs', Path('/proc/x'), True, 'cannot write into /proc'))
    for name, path, folder, message in mistakes:
        with pytest.raises(UsageError, match=message):
            check_output(name, str(path), folder=folder)
    # Checking made nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a file']


# A name longer than a file system takes (255 bytes on Linux, macOS and Windows)
LONG = 'n' * 300


@pytest.mark.parametrize('path', [LONG, f'{LONG}/x', f'x/{LONG}'])
def test_a_path_the_system_refuses_is_a_mistake(tmp_path, path):
    from labml_gat.settings import check_folder, check_output
    path = str(tmp_path / path)
    for check in (lambda: check_output('--out', path), lambda: check_folder('--in', path),
                  lambda: check_output('--logs', path, folder=True)):
        with pytest.raises(UsageError):
            check()
    assert list(tmp_path.iterdir()) == []


def test_the_folder_of_the_runs_in_the_environment_is_checked(monkeypatch, tmp_path):
    """`LABML_GAT_LOGS` is checked where `--logs` is not given: labml makes the folder and
    those above it, so they need not exist, but the nearest that does must be a folder that takes
    files; `--logs` wins over it."""
    from labml_gat.settings import check_logs
    (tmp_path / 'a file').write_text('')
    for fine in (tmp_path, tmp_path / 'new' / 'logs'):
        monkeypatch.setenv('LABML_GAT_LOGS', str(fine))
        check_logs(None)
    wrongs = [tmp_path / 'a file' / 'logs', tmp_path / LONG]
    if Path('/proc/self').is_dir():
        wrongs.append(Path('/proc/x'))
    for wrong in wrongs:
        monkeypatch.setenv('LABML_GAT_LOGS', str(wrong))
        with pytest.raises(UsageError, match='LABML_GAT_LOGS'):
            check_logs(None)
        check_logs(str(tmp_path))
    monkeypatch.delenv('LABML_GAT_LOGS')
    check_logs(None)
    with pytest.raises(UsageError):
        check_logs(str(tmp_path / 'a file'))
    # Checking made nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a file']


def test_a_script_checks_the_folder_of_the_runs_in_the_environment(monkeypatch, capsys, tmp_path):
    from labml_gat.training import NodeClassificationSettings
    (tmp_path / 'a file').write_text('')
    monkeypatch.setenv('LABML_GAT_LOGS', str(tmp_path / 'a file' / 'logs'))
    assert run_command(monkeypatch, NodeClassificationSettings.from_command_line) == 2
    assert capsys.readouterr().err.startswith('example.py: error: $LABML_GAT_LOGS ')


@pytest.mark.parametrize('script, settings', [
    ('cora', 'CoraSettings'), ('cora_minibatch', 'MiniBatchSettings'),
    ('dictionary_lookup', 'LookupSettings'), ('benchmark', 'BenchmarkSettings')])
def test_help_says_each_default_once(script, settings):
    from conftest import load_experiment
    parser = argument_parser(getattr(load_experiment(script), settings), '')
    for action in parser._actions:
        assert (action.help or '').count('(default') <= 1, action.help


def test_the_flags_the_pages_name_exist():
    """A flag named in the layers', the model's or the Cora experiment's text is a flag of cora.py."""
    import re
    from conftest import load_experiment
    parser = argument_parser(load_experiment('cora').CoraSettings, '')
    flags = {option for action in parser._actions for option in action.option_strings}
    for name in ('labml_gat/gat.py', 'labml_gat/gatv2.py', 'labml_gat/model.py', 'labml_gat/training.py',
                 'labml_gat/fast.py', 'labml_gat/seeds.py', 'experiments/cora.py'):
        for named in re.findall(r'`(--[a-z][a-z-]*)', (REPO / name).read_text()):
            assert named in flags, f'{name} names {named}, which cora.py does not take'


def test_the_package_names_its_modules():
    import labml_gat
    modules = {path.stem for path in (REPO / 'labml_gat').glob('*.py')} - {'__init__'}
    assert {module for module in modules if f'`{module}`' not in labml_gat.__doc__
            and f'`labml_gat.{module}`' not in labml_gat.__doc__} == set()


# ## Stop signals: the first counts, and a process started ignoring Ctrl-C keeps ignoring it

def test_after_the_first_stop_signal_both_are_ignored(monkeypatch):
    # A SIGTERM after a Ctrl-C (or the other way round) must not break off the closing of the run
    from labml_gat import settings
    monkeypatch.setattr(settings, '_terminated', False)
    before = {signum: signal.signal(signum, settings._interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
        assert settings._terminated
        assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


SLEEPER = """
import sys, time
from pathlib import Path
from labml_gat.settings import command

def main(argv):
    Path(argv[0]).touch()
    time.sleep(60)

command(main)()
"""


@pytest.mark.slow
def test_a_command_started_with_ctrl_c_ignored_keeps_ignoring_it(tmp_path):
    # As a shell's background job (`cmd &`): the terminal's Ctrl-C is not for it; SIGTERM still stops it
    script, started = tmp_path / 'sleeper.py', tmp_path / 'started'
    script.write_text(SLEEPER)
    process = subprocess.Popen([sys.executable, str(script), str(started)], stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert (process.returncode, err) == (143, 'sleeper.py: stopped\n')


@pytest.mark.parametrize('script, settings, others', [
    ('cora', 'CoraSettings', {}), ('cora_minibatch', 'MiniBatchSettings', {}),
    ('synthetic_minibatch', 'SyntheticSettings', {}), ('dictionary_lookup', 'LookupSettings', {}),
    ('benchmark', 'BenchmarkSettings', {'figures': ['layer']})])
def test_threads_by_the_thousand_are_a_mistake(script, settings, others):
    # `--threads 5000` ended the Cora experiment with a segmentation fault after its run began
    from conftest import load_experiment
    from labml_gat.settings import MAX_THREADS
    cls = getattr(load_experiment(script), settings)
    from labml_gat.seeds import available_cores
    threads = max(MAX_THREADS, available_cores()) + 1
    with pytest.raises(UsageError, match=f'^--threads {threads}: at most {threads - 1} '):
        cls(threads=threads, **others).check()
    cls(threads=2, **others).check()


@pytest.mark.parametrize('script, settings, file, folder', [
    ('cora', 'CoraSettings', 'summary_json', 'logs'),
    ('cora_minibatch', 'MiniBatchSettings', 'summary_json', 'logs'),
    ('dictionary_lookup', 'LookupSettings', 'summary_json', 'logs'),
    ('synthetic_minibatch', 'SyntheticSettings', 'summary_json', 'results'),
    ('synthetic_minibatch', 'SyntheticSettings', 'summary_json', 'cache'),
    ('benchmark', 'BenchmarkSettings', 'plot', 'results')])
def test_a_file_is_not_where_a_folder_of_the_run_goes(tmp_path, script, settings, file, folder):
    # The run made the folder, then ended in a traceback as it wrote the file there
    from conftest import load_experiment
    cls = getattr(load_experiment(script), settings)
    others = {'figures': ['layer']} if script == 'benchmark' else {}
    path = str(tmp_path / 'out.png')
    message = (f'^{flag(file)} {path} is also {flag(folder)}, a folder the run makes; '
               f'give each its own path$')
    with pytest.raises(UsageError, match=message.replace('.', r'\.')):
        cls(**{file: path, folder: path}, **others).check()
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize('script, settings, others, output', [
    ('benchmark', 'BenchmarkSettings', {'figures': ['layer']}, 'results'),
    ('dictionary_lookup', 'LookupSettings', {'which_layer': True}, 'results'),
    ('lookup_epoch_time', 'EpochTimeSettings', {}, 'results'),
    ('synthetic_minibatch', 'SyntheticSettings', {}, 'results'),
    ('synthetic_minibatch', 'SyntheticSettings', {}, 'summary_json'),
    ('cora', 'CoraSettings', {}, 'summary_json'),
    ('cora_minibatch', 'MiniBatchSettings', {}, 'logs'),
    ('dictionary_lookup', 'LookupSettings', {}, 'summary_json'),
    ('benchmark', 'BenchmarkSettings', {'figures': ['layer']}, 'plot')])
def test_only_record_writes_into_the_projects_records(tmp_path, monkeypatch, script, settings,
                                                      others, output):
    # `--results experiments/results` replaced the project's records without the checks of
    # `--record`, and their commands said neither flag; `--summary-json` there replaced a
    # record with a summary, or left a file that is not one
    from conftest import load_experiment
    from labml_gat.results import RESULTS
    cls = getattr(load_experiment(script), settings)
    monkeypatch.chdir(REPO / 'experiments')
    name = {'summary_json': 'cora_seeds10.json', 'plot': 'ratios.png'}.get(output)
    # A folder below the records' (a file's folder must exist: none is made there)
    below = [] if name else ['results/more']
    for folder in (str(RESULTS), 'results/', './results/../results', *below):
        path = str(Path(folder) / name) if name else folder
        given = cls(**{output: path}, **others)
        where = 'is in' if name or folder in below else 'is'
        with pytest.raises(UsageError, match=f"^{flag(output)} {re.escape(path)} {where} the "
                                             f"folder of the project's records, which only "
                                             f"--record writes into: give another folder$"):
            given.check()
    path = str(tmp_path / name) if name else str(tmp_path)
    cls(**{output: path}, **others).check()


@pytest.mark.parametrize('script, settings, output', [
    ('cora', 'CoraSettings', '$LABML_GAT_LOGS'),
    ('dictionary_lookup', 'LookupSettings', '$LABML_GAT_LOGS'),
    ('synthetic_minibatch', 'SyntheticSettings', '--cache')])
def test_a_folder_made_when_needed_is_not_the_projects_records(monkeypatch, script, settings,
                                                               output):
    # `--logs experiments/results` is refused; the folder of the same runs given by
    # `$LABML_GAT_LOGS`, or the synthetic graph's `--cache`, would fill the records' folder too
    from conftest import load_experiment
    from labml_gat.results import RESULTS
    cls = getattr(load_experiment(script), settings)
    if output == '--cache':
        given = cls(cache=str(RESULTS))
    else:
        monkeypatch.setenv('LABML_GAT_LOGS', str(RESULTS))
        given = cls()
    with pytest.raises(UsageError, match=f"^{re.escape(output)} {re.escape(str(RESULTS))} is the "
                                         f"folder of the project's records"):
        given.check()


@pytest.mark.parametrize('given', ['link', '~/link'])
def test_the_records_are_found_through_a_link_and_the_home_folder(tmp_path, monkeypatch, given):
    """A link to the records' folder, or a path from `~`, names the records all the same."""
    from conftest import load_experiment
    from labml_gat.results import RESULTS
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / 'link').symlink_to(RESULTS)
    path = given if given.startswith('~') else str(tmp_path / given)
    with pytest.raises(UsageError, match="is the folder of the project's records"):
        load_experiment('synthetic_minibatch').SyntheticSettings(results=path).check()


@pytest.mark.parametrize('script, settings', [
    ('cora', 'CoraSettings'), ('cora_minibatch', 'MiniBatchSettings'),
    ('dictionary_lookup', 'LookupSettings')])
def test_a_summary_is_not_where_labml_keeps_its_runs(tmp_path, monkeypatch, script, settings):
    # `--summary-json logs` without `--logs` or `$LABML_GAT_LOGS`: labml made its `logs/`
    # there, and the summary ended in a traceback after the seeds had trained
    from conftest import load_experiment
    from labml import lab
    cls = getattr(load_experiment(script), settings)
    monkeypatch.delenv('LABML_GAT_LOGS')
    lab.configure({'experiments_path': str(tmp_path / 'logs')})
    path = str(tmp_path / 'logs')
    with pytest.raises(UsageError, match=f"^--summary-json {path} is also labml's logs/, "):
        cls(summary_json=path).check()
    cls(summary_json=str(tmp_path / 'summary.json')).check()
    # Nor where it keeps the runs of the experiment, once its `logs/` is there
    (tmp_path / 'logs').mkdir()
    experiment = str(tmp_path / 'logs' / cls().experiment_name())
    for logs in (None, str(tmp_path / 'logs')):
        with pytest.raises(UsageError, match=f'^--summary-json {experiment} is also '
                                             f'{cls().experiment_name()}/ in '):
            cls(summary_json=experiment, logs=logs).check()
    (tmp_path / 'logs').rmdir()
    # `$LABML_GAT_LOGS` elsewhere: labml's own folder is not used
    monkeypatch.setenv('LABML_GAT_LOGS', str(tmp_path / 'runs'))
    cls(summary_json=path).check()
    assert not any(tmp_path.iterdir())
