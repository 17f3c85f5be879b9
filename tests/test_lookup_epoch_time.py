"""
Tests of experiments/lookup_epoch_time.py: its mistakes are one line before anything runs, and
a run against a revision times both sides and records them only when asked. Nothing is timed.
"""

import importlib.util
import json
import subprocess

import pytest

from conftest import REPO, run_script
from labml_gat.settings import UsageError


def load_script():
    """The script as a module, by its file."""
    path = REPO / 'experiments' / 'lookup_epoch_time.py'
    spec = importlib.util.spec_from_file_location('lookup_epoch_time', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('args, message', [
    (['--repeats', '0'], '--repeats must be at least 1, got 0'),
    (['--graphs', '0'], '--graphs must be at least 1, got 0'),
    (['--against', 'no-such-revision'], '--against no-such-revision: '),
    (['--record', '--results', '.'], "--record writes into the project's records and --results "
                                     "into another folder: give one"),
])
@pytest.mark.slow
def test_usage_errors(args, message):
    process = run_script('lookup_epoch_time', *args)
    assert process.returncode == 2 and 'Traceback' not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith(
        f'lookup_epoch_time.py: error: {message}')
    assert process.stdout == ''


def test_an_epoch_too_large_for_the_memory_is_one_line_before_anything_runs(monkeypatch):
    # It was said after the revision's worker failed, as a fault of --against
    script = load_script()
    monkeypatch.setattr(script, 'worker', lambda *args: pytest.fail('a worker started'))
    with pytest.raises(UsageError, match=r'^--graphs 1000000000000: an epoch of 1000000000000 '
                                         r'graphs of up to 20 keys: about .* GiB for the '
                                         r'examples, but only .*; use fewer --graphs$'):
        script.EpochTimeSettings(graphs=10 ** 12).check()
    with pytest.raises(SystemExit) as exit_info:
        script.main(['--graphs', str(10 ** 12)])
    assert exit_info.value.code == 2


@pytest.mark.slow
def test_results_folder_must_exist(tmp_path):
    process = run_script('lookup_epoch_time', '--results', tmp_path / 'missing' / 'x')
    assert process.returncode == 2 and 'Traceback' not in process.stderr
    assert process.stderr.strip().splitlines()[-1].startswith(
        f'lookup_epoch_time.py: error: --results {tmp_path / "missing" / "x"}: ')


@pytest.mark.slow
def test_times_both_sides_and_records_only_when_asked(tmp_path):
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    process = run_script('lookup_epoch_time', '--against', 'HEAD', '--repeats', '1',
                         '--graphs', '64', '--results', tmp_path)
    assert process.returncode == 0, process.stderr
    record = json.loads((tmp_path / 'dictionary_lookup_epoch.json').read_text())
    values = record['values']
    assert values['before_commit'] == head and values['repeats'] == values['graphs'] // 64 == 1
    assert len(values['rows']) == 8
    for row in values['rows']:
        assert row['before_seconds'] > 0 and row['after_seconds'] > 0
        assert row['after_over_before'] > 0
    # The command to run again, without this machine's folder of the record
    assert record['command'].endswith('--graphs 64') and '--results' not in record['command']
    assert process.stdout.count('ratio') == 8


@pytest.mark.slow
def test_nothing_is_recorded_unless_asked():
    kept = REPO / 'experiments' / 'results' / 'dictionary_lookup_epoch.json'
    before = kept.read_bytes()
    process = run_script('lookup_epoch_time', '--against', 'HEAD', '--repeats', '1',
                         '--graphs', '32')
    assert process.returncode == 0, process.stderr
    assert process.stdout.count('ratio') == 8 and 'recorded' not in process.stdout
    assert kept.read_bytes() == before


def test_rows_are_the_fastest_of_each_side_and_their_ratio(tmp_path, monkeypatch):
    """The table from given measurements: each side's fastest repeat and after over before,
    recorded only when asked, where asked."""
    script = load_script()
    runs = {'before': [{'10/gat/1': 2.0, '20/gatv2/8': 5.0}, {'10/gat/1': 1.0, '20/gatv2/8': 6.0}],
            'after': [{'10/gat/1': 0.5, '20/gatv2/8': 4.0}, {'10/gat/1': 0.75, '20/gatv2/8': 3.0}]}
    monkeypatch.setattr(script, 'measure', lambda s: {'runs': runs, 'commit': 'abc'})
    monkeypatch.setattr(script, 'RESULTS', tmp_path / 'project')
    expected = [{'k': 10, 'layer': 'gat', 'n_heads': 1, 'before_seconds': 1.0,
                 'after_seconds': 0.5, 'after_over_before': 0.5},
                {'k': 20, 'layer': 'gatv2', 'n_heads': 8, 'before_seconds': 5.0,
                 'after_seconds': 3.0, 'after_over_before': 0.6}]
    assert script.main(['--repeats', '2']) == expected
    assert not (tmp_path / 'project').exists()
    for argv, folder in ((['--results', str(tmp_path)], tmp_path),
                         (['--record'], tmp_path / 'project')):
        assert script.main(['--repeats', '2', *argv]) == expected
        values = json.loads((folder / 'dictionary_lookup_epoch.json').read_text())['values']
        assert values['rows'] == expected and values['before_commit'] == 'abc'
        assert values['repeats'] == 2


def test_the_sides_alternate_the_revision_first(monkeypatch, capsys):
    """Each repeat times `--against`'s package, taken from git, then this checkout's, and
    says each side's epochs as it goes, in seconds."""
    script = load_script()
    calls = []

    def worker(root, graphs):
        calls.append(None if root is None else (root / 'labml_gat' / 'lookup.py').is_file())
        return {'10/gat/1': float(len(calls))}

    monkeypatch.setattr(script, 'worker', worker)
    measured = script.measure(script.EpochTimeSettings(against='HEAD', repeats=2, graphs=7))
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=REPO, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert measured['commit'] == head
    assert calls == [True, None, True, None]
    assert measured['runs'] == {'before': [{'10/gat/1': 1.0}, {'10/gat/1': 3.0}],
                                'after': [{'10/gat/1': 2.0}, {'10/gat/1': 4.0}]}
    assert capsys.readouterr().out.splitlines() == [
        '1/2 before: 10/gat/1 1.000 s', '1/2 after: 10/gat/1 2.000 s',
        '2/2 before: 10/gat/1 3.000 s', '2/2 after: 10/gat/1 4.000 s']


STUB = """
import os
import torch


class Task:
    def __init__(self, k):
        self.train = list(range(1000 * k))


def make_task(k, seed):
    return Task(k)


def LookupModel(k, layer, n_heads):
    return torch.nn.Linear(1, 1)


def train_epoch(model, optimizer, perms, batch_size, generator, device, epoch_size=0):
    with open(os.path.join(os.path.dirname(__file__), 'epochs'), 'a') as log:
        log.write(f'{len(perms)} {batch_size} {epoch_size}\\n')
"""


def test_a_worker_times_an_epoch_of_the_package_it_is_given(tmp_path, monkeypatch):
    """The worker imports `labml_gat` from the folder given, even run from the checkout's root,
    which holds one too, and trains every model one epoch of `graphs` graphs in batches of 32."""
    script = load_script()
    monkeypatch.chdir(REPO)
    (tmp_path / 'labml_gat').mkdir()
    (tmp_path / 'labml_gat' / '__init__.py').write_text('')
    (tmp_path / 'labml_gat' / 'lookup.py').write_text(STUB)
    seconds = script.worker(tmp_path, 7)
    assert set(seconds) == {f'{k}/{layer}/{n_heads}' for k, layer, n_heads in script.MODELS}
    epochs = (tmp_path / 'labml_gat' / 'epochs').read_text().splitlines()
    assert epochs == ['7 32 7'] * len(script.MODELS)


def test_a_revision_whose_package_cannot_be_timed_is_one_line(tmp_path, monkeypatch):
    """A revision older than the model and the epoch timed is the user's mistake: one line that
    says why its worker failed, not the worker's command in a traceback."""
    script = load_script()

    def extract(revision, folder):
        (folder / 'labml_gat').mkdir()
        (folder / 'labml_gat' / '__init__.py').write_text('')
        (folder / 'labml_gat' / 'lookup.py').write_text('')
        return 'abc'

    monkeypatch.setattr(script, 'extract', extract)
    with pytest.raises(UsageError, match=r"^--against old: its labml_gat cannot train the epoch "
                                         r"timed \(ImportError: cannot import name 'LookupModel'"):
        script.measure(script.EpochTimeSettings(against='old', repeats=1, graphs=7))
