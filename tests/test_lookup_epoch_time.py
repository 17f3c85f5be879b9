"""
Tests of experiments/lookup_epoch_time.py: its mistakes are one line before anything runs, and
a run against a revision times both sides and records them only when asked. Nothing is timed.
"""

import json
import subprocess

import pytest

from conftest import REPO, run_script


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
    assert record['command'].endswith(f'--results {tmp_path}')
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
