"""
Recorded results: the README, CONTRIBUTING.md and the site's pages quote them, and a test fails
when a quote and its record disagree.
"""

import json
import math
import os
import re
import pathlib
import shlex
from datetime import date

import pytest
import torch

from conftest import REPO, imported_modules, needs_planetoid, run_script
from labml_gat import results


def test_quoted_tables_match_their_records():
    """Every marked block of every quoting file is exactly what its records render."""
    files = results.quoting_files()
    assert REPO / 'README.md' in files, 'the README quotes no recorded result'
    for path in files:
        text = path.read_text(encoding='utf-8')
        assert text == results.update(text), (
            f'{path.relative_to(REPO)} and experiments/results/ disagree: '
            'run python -m labml_gat.results')


@pytest.mark.parametrize('layer, n_heads, name', [
    ('gatv2', 1, 'GATv2, 1 head'), ('gat', 8, 'GAT, 8 heads'), ('gatv2', 2, 'GATv2, 2 heads')])
def test_a_model_is_named_with_its_head_count_in_words(layer, n_heads, name):
    """The titles and legends of the runs: one head is `1 head`, more are `heads`."""
    assert results.model_name(layer, n_heads) == name


def test_a_number_of_things_is_singular_for_one():
    assert [results.number_of(n, 'thread') for n in (1, 2)] == ['1 thread', '2 threads']
    assert [results.number_of(n, 'process', 'processes') for n in (1, 4)] == \
        ['1 process', '4 processes']
    # The benchmark's records, as the usage page lists them
    assert ', 1 thread, ' in results.render('benchmark') and 'thread(s)' not in results.render('benchmark')


def test_a_figure_of_one_head_is_described_in_the_singular():
    # A count in words is singular for one, in the figures' descriptions as in every output
    record = {'graph': 'random', 'n_nodes': 1000, 'degree': 10, 'in_features': 128,
              'edge_dim': 1, 'level': 'layer', 'n_heads': 1, 'n_hidden': 8}
    assert results.describe_figure(record).endswith(', 1 edge feature; one layer, 1 head x 8')


def test_every_table_is_quoted_somewhere():
    quoted = {m.group('name') for path in results.quoting_files()
              for m in results.MARKERS.finditer(path.read_text(encoding='utf-8'))}
    assert set(results.TABLES) <= quoted <= set(results.TABLES) | set(results.SENTENCES)


def test_quoting_files_are_found_in_the_pages(tmp_path):
    (tmp_path / 'docs' / 'sub').mkdir(parents=True)
    (tmp_path / 'docs' / '_build').mkdir()
    block = '<!-- results: cora -->\n<!-- end results -->\n'
    for name in ('README.md', 'docs/sub/page.md', 'docs/_build/copy.md'):
        (tmp_path / name).write_text(block, encoding='utf-8')
    (tmp_path / 'docs' / 'plain.md').write_text('no numbers\n', encoding='utf-8')
    found = [p.relative_to(tmp_path).as_posix() for p in results.quoting_files(tmp_path)]
    assert found == ['README.md', 'docs/sub/page.md']


def test_every_table_names_records_that_exist():
    for name, table in results.TABLES.items():
        assert re.search(r'\d', table(results.RESULTS)), name


def test_a_changed_record_changes_the_readme(tmp_path):
    """The check above would see a stale number: edit a record and the rendering changes."""
    for path in results.RESULTS.glob('*.json'):
        (tmp_path / path.name).write_text(path.read_text(encoding='utf-8'), encoding='utf-8')
    text = '<!-- results: cora -->\n<!-- end results -->'
    before = results.update(text, tmp_path)
    record = json.loads((tmp_path / 'cora_seeds10.json').read_text(encoding='utf-8'))
    record['values']['test_mean'] += 1
    (tmp_path / 'cora_seeds10.json').write_text(json.dumps(record), encoding='utf-8')
    assert results.update(text, tmp_path) != before


def test_records_say_how_they_were_made():
    """Every record has the one layout `results.record` writes: its name, the command, the
    date, the machine and the versions, and the measured values apart from them."""
    for path in results.RESULTS.glob('*.json'):
        record = json.loads(path.read_text(encoding='utf-8'))
        assert set(record) == {'name', 'command', 'date', 'machine', 'versions', 'values'}, \
            path.name
        assert record['name'] == path.stem
        assert {'cpu', 'cores', 'memory_gib', 'system'} <= set(record['machine']), path.name
        assert {'python', 'torch'} <= set(record['versions']), path.name
        assert re.fullmatch(r'\d{4}-\d{2}-\d{2}', record['date']), path.name
        # A command may set environment variables first (`OMP_NUM_THREADS=1 python ...`)
        command = re.sub(r'^([A-Z_]+=\S+ )+', '', record['command'])
        assert command.startswith(('python ', 'bash ', 'torchrun ')), path.name


# An experiment's `--summary-json`, as `seeds.run_seeds` writes it, of a run of
# `python experiments/cora.py --seeds 2 --summary-json summary.json`
SUMMARY = {'settings': {'device': 'cpu', 'seeds': 2}, 'script': 'cora.py',
           'argv': ['--seeds', '2', '--summary-json', 'summary.json'],
           'test_accuracy': {'mean': 82.5, 'std': 0.5, 'n': 2},
           'val_accuracy': {'mean': 81.0, 'std': 0.1, 'n': 2},
           'seconds': 10.0, 'wall_seconds': 6.0, 'jobs': 2, 'load_average': 0.5,
           'runs': [{'seed': s, 'epochs': 5, 'best_epoch': 3, 'val_accuracy': 0.81,
                     'test_accuracy': 0.825, 'history': []} for s in (0, 1)]}


def test_record_from_a_summary(tmp_path):
    path = results.record('x', 'python experiments/cora.py --seeds 2',
                          results.from_summary(SUMMARY), tmp_path)
    record = results.load('x', tmp_path)
    assert path.name == 'x.json' and record['values']['test_mean'] == 82.5
    assert [r['seed'] for r in record['values']['per_seed']] == [0, 1]
    assert 'history' not in record['values']['per_seed'][0]


# The `--summary-json` of `python experiments/dictionary_lookup.py --seeds 2`: the task has no
# validation set, and its summary gives the training accuracy in the validation's place
LOOKUP_SUMMARY = {
    **{key: value for key, value in SUMMARY.items() if key != 'val_accuracy'},
    'script': 'dictionary_lookup.py', 'argv': ['--seeds', '2'],
    'train_accuracy': {'mean': 99.0, 'std': 1.0, 'n': 2},
    'runs': [{'seed': s, 'epochs': 5, 'best_epoch': 3, 'train_accuracy': 0.99,
              'test_accuracy': 0.825, 'history': []} for s in (0, 1)]}


def test_a_summary_without_a_validation_set_is_recorded(tmp_path, monkeypatch, capsys):
    """DictionaryLookup's seeds: the training accuracy is recorded as what it is, and the
    command is checked against the run's, as for the Cora experiments."""
    path = tmp_path / 'summary.json'
    path.write_text(json.dumps(LOOKUP_SUMMARY))
    monkeypatch.setattr(results, 'RESULTS', tmp_path / 'records')
    with pytest.raises(SystemExit) as exit:
        results.main(['--record', 'x', str(path), 'python experiments/cora.py --seeds 2'])
    assert exit.value.code == 2 and capsys.readouterr().err == (
        f"python -m labml_gat.results: error: --record: {path} was run with "
        f"'dictionary_lookup.py --seeds 2'; the command runs cora.py\n")
    results.main(['--record', 'x', str(path),
                  'python experiments/dictionary_lookup.py --seeds 2'])
    values = results.load('x', tmp_path / 'records')['values']
    assert (values['test_mean'], values['train_mean'], values['seeds']) == (82.5, 99.0, 2)
    assert 'val_mean' not in values
    assert values['per_seed'][0] == {'seed': 0, 'epochs': 5, 'best_epoch': 3,
                                     'train_accuracy': 0.99, 'test_accuracy': 0.825}
    # A summary's record is measured again under its name
    newer = {**LOOKUP_SUMMARY, 'test_accuracy': {**LOOKUP_SUMMARY['test_accuracy'], 'mean': 90.0}}
    path.write_text(json.dumps(newer))
    results.main(['--record', 'x', str(path),
                  'python experiments/dictionary_lookup.py --seeds 2'])
    assert results.load('x', tmp_path / 'records')['values']['test_mean'] == 90.0


def test_a_record_without_a_validation_set_is_rendered_with_its_training_accuracy(tmp_path):
    """A record of DictionaryLookup's seeds under a name a table quotes renders, its training
    accuracy in the validation's column said to be the training set's."""
    values = results.from_summary(LOOKUP_SUMMARY)
    command = 'python experiments/dictionary_lookup.py --seeds 2'
    results.record('cora_seeds10', command, values, tmp_path)
    assert f'| `{command}` | 82.50 ± 0.50 % over 2 seeds | 99.0 % (training) | 6 s |' in \
        results.experiments_table(['cora_seeds10'], tmp_path)
    assert '(mean ± sample standard deviation; training 99.0 %)' in \
        results.experiment_result('cora_seeds10', tmp_path)


@pytest.mark.parametrize('summary, script', [
    # The million-node script's: a few steps timed, no model tested
    ({'settings': {'device': 'cpu'}, 'script': 'synthetic_minibatch.py', 'argv': [],
      'runs': [{'seed': 0, 'val_accuracy': 0.1, 'seconds': 1.0}],
      'val_accuracy': {'mean': 10.0, 'std': 0.0, 'n': 1}, 'seconds': 1.0, 'jobs': 1,
      'wall_seconds': 2.0, 'load_average': 0.5}, 'synthetic_minibatch.py'),
    # The numbers of one trained model, as `labml_gat.lookup.train` returns them: not a summary of seeds
    ({'layer': 'gat', 'n_heads': 8, 'k': 10, 'train_accuracy': 0.75, 'test_accuracy': 0.63,
      'history': []}, 'dictionary_lookup.py'),
    # The summary of one model by an older dictionary_lookup.py, whose summaries are of seeds
    ({'script': 'dictionary_lookup.py', 'argv': ['--k', '4'], 'layer': 'gat', 'n_heads': 1,
      'k': 4, 'train_accuracy': 0.75, 'test_accuracy': 0.63, 'history': []},
     'dictionary_lookup.py --k 4'),
])
def test_a_summary_without_a_test_accuracy_over_seeds_is_refused_in_words(
        summary, script, tmp_path, monkeypatch, capsys):
    path = tmp_path / 'summary.json'
    path.write_text(json.dumps(summary))
    monkeypatch.setattr(results, 'RESULTS', tmp_path / 'records')
    with pytest.raises(SystemExit) as exit:
        results.main(['--record', 'x', str(path), f'python experiments/{script}'])
    error = capsys.readouterr().err
    assert exit.value.code == 2 and len(error.splitlines()) == 1, error
    assert error.startswith(f'python -m labml_gat.results: error: --record: {path} has no '
                            f'test accuracy over seeds to record'), error
    # A summary of the scripts that sum up seeds is of an older version, to run again
    older = summary.get('script') in results.SEEDS_SCRIPTS
    assert ('older dictionary_lookup.py: run it again' in error) == older, error
    assert not (tmp_path / 'records').exists()


@pytest.mark.parametrize('device', ['cpu', 'cuda:1'])
def test_a_summary_is_recorded_with_the_machine_of_its_device(tmp_path, monkeypatch, device):
    (tmp_path / 'summary.json').write_text(json.dumps(
        {**SUMMARY, 'settings': {**SUMMARY['settings'], 'device': device},
         'argv': [*SUMMARY['argv'], '--device', device]}))
    monkeypatch.setattr(results, 'RESULTS', tmp_path)
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(results, 'machine', lambda found='cpu': {'device': found})
    results.main(['--record', 'x', str(tmp_path / 'summary.json'),
                  f'python experiments/cora.py --seeds 2 --device {device}'])
    assert results.load('x', tmp_path)['machine'] == {'device': device}


@pytest.mark.parametrize('argv, message', [
    (['missing.md'], 'missing.md: no such file'),
    (['--record', 'x'], 'argument --record: expected 3 arguments'),
    (['--record', 'x', 'missing.json', 'cmd'], '--record: missing.json: no such file'),
    (['--record', 'a b', 'summary.json', 'cmd'], "--record a b: a record's name is letters"),
    (['--record', 'x', 'not_a_summary.json', 'cmd'],
     "--record: not_a_summary.json is not an experiment's --summary-json (KeyError"),
    (['--record', 'x', 'summary.json', 'cmd', 'README.md'], '--record records a summary; it '),
    # The command not quoted: its words after the first are taken for files or flags
    (['--record', 'x', 'summary.json', 'python', 'experiments/cora.py', '--seeds', '2'],
     "--record takes the command as one argument: quote it, --record x summary.json "
     "'python experiments/cora.py --seeds 2'\n"),
    (['--record', 'x', 'summary.json', 'python', 'experiments/cora.py'],
     "--record takes the command as one argument: quote it, --record x summary.json "
     "'python experiments/cora.py'\n"),
    (['--unknown'], 'unrecognized arguments: --unknown'),
    (['--record', 'x', 'on_a_gpu.json', 'cmd'], '--record: on_a_gpu.json was measured on cuda:7'),
    # A command that is not the one of the summary's run
    (['--record', 'x', 'two_seeds.json', 'python experiments/cora.py --seeds 10'],
     "--record: two_seeds.json was run with 'python experiments/cora.py --seeds 2'; the command "
     "says --seeds 10 but not --seeds 2\n"),
    (['--record', 'x', 'two_seeds.json', 'python experiments/cora_minibatch.py --seeds 2'],
     "--record: two_seeds.json was run with 'cora.py --seeds 2'; the command runs "
     "cora_minibatch.py\n"),
    (['--record', 'x', 'older.json', 'python experiments/cora.py --seeds 2'],
     '--record: older.json does not say the command of its run (a summary of an older '
     'version?): run the experiment again\n'),
    # The shell's syntax, which the record would keep, or lose with a flag it leaves out
    (['--record', 'x', 'two_seeds.json',
      'python experiments/cora.py --seeds 2 --summary-json s.json 2>&1 | tee log.txt'],
     "--record: two_seeds.json takes the command of its run alone, in plain words: the "
     "shell's '>' (a redirection, pipe, second command or expansion) cannot be recorded\n"),
    (['--record', 'x', 'two_seeds.json',
      'OMP_NUM_THREADS=$(nproc) python experiments/cora.py --seeds 2'],
     "--record: two_seeds.json takes the command of its run alone, in plain words: the "
     "shell's '$' (a redirection"),
    (['--record', 'x', 'two_seeds.json',
      'python experiments/cora.py --seeds 2 --data-dir "$HOME/planetoid"'],
     "--record: two_seeds.json takes the command of its run alone, in plain words: the "
     "shell's '$' (a redirection"),
    (['--record', 'x', 'two_seeds.json', 'python experiments/cora.py --seeds 2; ls'],
     "--record: two_seeds.json takes the command of its run alone, in plain words: the "
     "shell's ';' (a redirection"),
    (['--record', 'x', 'two_seeds.json', 'python experiments/cora.py --seeds 2 > out.txt'],
     "--record: two_seeds.json takes the command of its run alone, in plain words: the "
     "shell's '>' (a redirection"),
    # A summary of the version that kept the script's defaults, not its words
    (['--record', 'x', 'defaults.json', 'python experiments/cora.py --seeds 2'],
     '--record: defaults.json does not say the command of its run'),
    # A name the pages read as another kind of record
    (['--record', 'benchmark_x', 'two_seeds.json', 'python experiments/cora.py --seeds 2'],
     "--record benchmark_x: the names benchmark_... are the benchmark's figures; choose "),
    (['--record', 'sweep', 'two_seeds.json', 'python experiments/cora.py --seeds 2'],
     '--record sweep: it is the record of another kind of result'),
    (['--record', 'broken', 'two_seeds.json', 'python experiments/cora.py --seeds 2'],
     '--record broken: the file of that record, '),
])
def test_command_line_mistakes_are_one_line_and_write_nothing(argv, message, tmp_path, monkeypatch,
                                                             capsys):
    (tmp_path / 'summary.json').write_text('{"test_accuracy": {}}')
    (tmp_path / 'not_a_summary.json').write_text('{"accuracy": 1}')
    on_a_gpu = {**SUMMARY, 'settings': {'device': 'cuda:7'}}
    (tmp_path / 'on_a_gpu.json').write_text(json.dumps(on_a_gpu))
    (tmp_path / 'two_seeds.json').write_text(json.dumps(SUMMARY))
    older = {key: value for key, value in SUMMARY.items() if key not in ('script', 'argv')}
    (tmp_path / 'older.json').write_text(json.dumps(older))
    (tmp_path / 'defaults.json').write_text(json.dumps(
        {**older, 'script': 'cora.py', 'defaults': {'seeds': 1}}))
    (tmp_path / 'records').mkdir()
    (tmp_path / 'records' / 'sweep.json').write_text('{"values": {"runs": []}}')
    (tmp_path / 'records' / 'broken.json').write_text('{"values"')
    made = sorted(p.name for p in tmp_path.rglob('*'))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(results, 'RESULTS', tmp_path / 'records')
    with pytest.raises(SystemExit) as exit:
        results.main(argv)
    error = capsys.readouterr().err
    assert exit.value.code == 2 and len(error.strip().splitlines()) == 1
    assert error.startswith(f'python -m labml_gat.results: error: {message}'), error
    assert sorted(p.name for p in tmp_path.rglob('*')) == made


def run_of(flags: str, script: str = 'cora.py', torchrun: int = 0) -> dict:
    """The summary of a run of `script FLAGS`, under torchrun with that many processes, if
    any: what `command_mismatch` reads of it."""
    summary = {'script': script, 'argv': shlex.split(flags), 'jobs': 1}
    return {**summary, 'jobs': torchrun, 'torchrun': True} if torchrun else summary


@pytest.mark.parametrize('command, flags', [
    ('python experiments/cora.py --seeds 10', '--seeds 10'),
    ('python experiments/cora.py', ''),
    # The flags in any order
    ('python experiments/cora.py --layer gat --seeds 10 --no-fast',
     '--seeds 10 --no-fast --layer gat'),
    # `--name=value` as `--name value`, on either side, a list's values too
    ('python experiments/cora.py --seeds=10 --fanouts 5 5', '--seeds 10 --fanouts=5 5'),
    # Where files go, and how long a process waits for the others, on either side
    ('OMP_NUM_THREADS=1 python3 cora.py --seeds 10 --data-dir=elsewhere --logs runs',
     '--data-dir data --seeds 10 --summary-json s.json --peer-timeout 60'),
])
def test_a_command_with_the_flags_of_the_run_is_its_command(command, flags):
    """The flags are compared as groups, a flag and its values, in any order: the same run
    whichever way its flags are written. One flag more is the one difference found."""
    summary = run_of(flags)
    assert results.command_mismatch(command, summary) is None
    assert results.command_mismatch(command + ' --epochs 7', summary).endswith(
        '; the command says --epochs 7')


@pytest.mark.parametrize('command, flags, mismatch', [
    ('python experiments/cora.py --seeds 10', '--seeds 2',
     "was run with 'python experiments/cora.py --seeds 2'; the command says --seeds 10 but not "
     "--seeds 2"),
    # The run's command, as the command would say it, without where its files went
    ('OMP_NUM_THREADS=1 python experiments/cora.py --seeds 3 --data-dir d',
     '--summary-json s.json --seeds 10 --layer gat --logs runs',
     "was run with 'OMP_NUM_THREADS=1 python experiments/cora.py --seeds 10 --layer gat'; the "
     "command says --seeds 3 but not --seeds 10 --layer gat"),
    # A flag the run did not give is not read as its default
    ('python experiments/cora.py --seeds 10 --fast', '--seeds 10',
     "was run with 'python experiments/cora.py --seeds 10'; the command says --fast"),
    ('python experiments/cora.py --seeds 10', '--seeds 10 --quiet',
     "was run with 'python experiments/cora.py --seeds 10 --quiet'; the command does not say "
     "--quiet"),
    # A flag at its default still says something: without --seeds 1, --jobs is refused
    ('python experiments/cora.py --jobs 1', '--seeds 1 --jobs 1',
     "was run with 'python experiments/cora.py --seeds 1 --jobs 1'; the command does not say "
     "--seeds 1"),
    ('python experiments/cora.py --seeds 10 --seeds 10', '--seeds 10',
     "was run with 'python experiments/cora.py --seeds 10'; the command says --seeds 10"),
    ('python experiments/cora.py --fanouts 5 5', '--fanouts 5',
     "was run with 'python experiments/cora.py --fanouts 5'; the command says --fanouts 5 5 but "
     "not --fanouts 5"),
    ('python experiments/cora.py 10', '', "was run with 'python experiments/cora.py'; the "
                                          "command says 10"),
    ("python 'experiments/cora.py", '', 'cannot be checked against the command '
                                        '"python \'experiments/cora.py": No closing quotation'),
    ('python experiments/train.py --seeds 10', '--seeds 10 --logs runs',
     "was run with 'cora.py --seeds 10'; the command runs train.py"),
    ('echo done', '', "was run with 'cora.py'; the command runs no script"),
    ('torchrun --nproc-per-node 2 -- experiments/cora.py', '',
     'was run without torchrun; the command runs torchrun'),
    ('torchrun --nnodes 2 --nproc-per-node 1 -- experiments/cora.py', '',
     'was run without torchrun; the command runs torchrun'),
    # torchrun of one process runs the script as python does, and its summary is the same
    ('torchrun --nproc-per-node 1 -- experiments/cora.py --seeds 10', '--seeds 10', None),
    ('torchrun --standalone --nproc_per_node=1 experiments/cora.py', '', None),
    ('torchrun -- experiments/cora.py', '', None),
])
def test_the_command_of_a_record_is_the_one_of_its_summary(command, flags, mismatch):
    """A summary says its script and the words after it: a command given for it runs that
    script with the same flags, or `command_mismatch` says how it differs, with the run's."""
    assert results.command_mismatch(command, run_of(flags)) == mismatch


@pytest.mark.parametrize('command, mismatch', [
    ('torchrun --nproc-per-node 2 -- experiments/cora_minibatch.py --seeds 10', None),
    ('torchrun --nnodes 2 --nproc-per-node 1 --node-rank 0 --master-addr HOST -- '
     'experiments/cora_minibatch.py --seeds 10', None),
    # Elastic bounds say no number of processes
    ('torchrun --nnodes=1:2 --nproc_per_node=2 -- experiments/cora_minibatch.py --seeds 10', None),
    ('torchrun --nproc-per-node 4 -- experiments/cora_minibatch.py --seeds 10',
     'was run by 2 processes; the command starts 4'),
    ('python experiments/cora_minibatch.py --seeds 10',
     'was run under torchrun, by 2 processes; the command does not run torchrun'),
    ('torchrun --nproc-per-node 2 -- experiments/cora_minibatch.py --seeds 10 --fanouts 5 5',
     "was run with 'torchrun --nproc-per-node 2 -- experiments/cora_minibatch.py --seeds 10'; "
     "the command says --fanouts 5 5"),
])
def test_the_command_of_a_torchrun_summary_runs_as_many_processes(command, mismatch):
    summary = run_of('--seeds 10 --peer-timeout 60', 'cora_minibatch.py', torchrun=2)
    assert results.command_mismatch(command, summary) == mismatch
    # The same command but for the number of seeds is refused
    if mismatch is None:
        assert results.command_mismatch(command.replace('10', '3'), summary).endswith(
            '; the command says --seeds 3 but not --seeds 10')


def test_the_usage_pages_record_has_the_command_of_its_summary():
    """The usage page runs an experiment with --summary-json, then records the summary with a
    command: the command its check takes for the run's."""
    # A command continued on the next line (`\`) is one line
    text = (REPO / 'docs' / 'usage.md').read_text(encoding='utf-8').replace('\\\n', '')
    run = re.search(r'^python experiments/(cora\.py) (.*--summary-json summary\.json)$', text,
                    re.M)
    record = re.search(r'^python -m labml_gat\.results --record \w+ summary\.json (.*)$', text,
                       re.M)
    summary = run_of(run.group(2), run.group(1))
    command = shlex.split(record.group(1))[0]
    assert results.command_mismatch(command, summary) is None
    assert results.command_mismatch(command, run_of('--seeds 3', run.group(1))) is not None


@needs_planetoid
def test_a_summary_is_recorded_only_with_its_command(tmp_path, monkeypatch, capsys):
    """The usage page's two commands: an experiment's --summary-json recorded with the command
    that made it; another command is refused in one line, with status 2, and writes nothing."""
    from conftest import PLANETOID, load_experiment
    summary = tmp_path / 'summary.json'
    argv = ['--seeds', '2', '--epochs', '2', '--jobs', '1', '--quiet', '--data-dir',
            str(PLANETOID), '--logs', str(tmp_path / 'runs'), '--summary-json', str(summary)]
    load_experiment('cora').main(argv)
    assert {key: value for key, value in json.loads(summary.read_text()).items()
            if key in ('script', 'argv')} == {'script': 'cora.py', 'argv': argv}
    monkeypatch.setattr(results, 'RESULTS', tmp_path / 'records')
    for command, differs in (('python experiments/cora.py --seeds 2 --epochs 2 --jobs 1',
                              'does not say --quiet'),
                             ('python experiments/cora.py --seeds 10', 'says --seeds 10 but not '
                              '--seeds 2 --epochs 2 --jobs 1 --quiet')):
        with pytest.raises(SystemExit) as exit:
            results.main(['--record', 'x', str(summary), command])
        error = capsys.readouterr().err
        assert exit.value.code == 2 and len(error.splitlines()) == 1, error
        assert error == (f'python -m labml_gat.results: error: --record: {summary} was run '
                         f"with 'python experiments/cora.py --seeds 2 --epochs 2 --jobs 1 "
                         f"--quiet'; the command {differs}\n"), error
    assert not (tmp_path / 'records').exists()
    command = 'python experiments/cora.py --seeds 2 --epochs 2 --jobs 1 --quiet'
    results.main(['--record', 'x', str(summary), command])
    assert results.load('x', tmp_path / 'records')['command'] == command


@pytest.mark.parametrize('command, kept', [
    # Where the files were, in either spelling, the last word too
    ('python experiments/cora.py --seeds 2 --data-dir /home/me/planetoid '
     '--summary-json=/tmp/x.json', 'python experiments/cora.py --seeds 2'),
    ('python experiments/cora.py --logs=/tmp/runs --seeds 2 --summary-json',
     'python experiments/cora.py --seeds 2'),
    # The words before the script are kept: the environment, torchrun and its options
    ('OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 -- experiments/cora_minibatch.py '
     '--peer-timeout 600 --seeds 10 --logs /tmp/runs',
     'OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 -- experiments/cora_minibatch.py --seeds 10'),
    # The synthetic graph's cache, out of each command of a line
    ('OMP_NUM_THREADS=1 python experiments/synthetic_minibatch.py --record --cache /some/dir ; '
     'OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 -- experiments/synthetic_minibatch.py '
     '--cache=/some/dir --record',
     'OMP_NUM_THREADS=1 python experiments/synthetic_minibatch.py --record ; '
     'OMP_NUM_THREADS=1 torchrun --nproc-per-node 2 -- experiments/synthetic_minibatch.py '
     '--record'),
    # The folder a record went to instead of the project's records
    ('python experiments/benchmark.py --figures layer --results /home/me/records --threads 1',
     'python experiments/benchmark.py --figures layer --threads 1'),
    ('python experiments/dictionary_lookup.py --sweep --results=/home/me/records',
     'python experiments/dictionary_lookup.py --sweep'),
    # A quoted folder is one value, whatever it holds
    ("python experiments/cora.py --data-dir '/my data; old' --seeds 2",
     'python experiments/cora.py --seeds 2'),
    # Nothing to leave out (a flag only named like one is another): the command as written
    ('python experiments/cora.py  --seeds=2 --data-dirs x',
     'python experiments/cora.py  --seeds=2 --data-dirs x'),
    ('bash run.sh setup; bash run.sh test', 'bash run.sh setup; bash run.sh test'),
])
def test_a_record_keeps_the_command_to_run_again(command, kept, tmp_path):
    """A record's command is the one its page gives to run again, on any machine: without the
    flags that name this machine's folders and files, or its patience, and their values."""
    results.record('x', command, {}, tmp_path)
    assert results.load('x', tmp_path)['command'] == kept


def test_a_summary_is_recorded_with_its_command_as_typed(tmp_path, monkeypatch):
    """The command of the run may be given as it was typed, where its files went and all; its
    record keeps it without them."""
    typed = ('python experiments/cora.py --seeds 2 --data-dir /home/me/planetoid '
             '--summary-json=/tmp/x.json')
    path = tmp_path / 'summary.json'
    path.write_text(json.dumps({**SUMMARY, 'argv': shlex.split(typed)[2:]}))
    monkeypatch.setattr(results, 'RESULTS', tmp_path / 'records')
    results.main(['--record', 'x', str(path), typed])
    assert results.load('x', tmp_path / 'records')['command'] == \
        'python experiments/cora.py --seeds 2'


def test_the_synthetic_graphs_cache_is_not_measured():
    """`--cache` says only where the graph's files are, as `--data-dir` does for Cora's."""
    summary = run_of('--steps 5 --cache /some/dir', 'synthetic_minibatch.py')
    assert results.command_mismatch('python experiments/synthetic_minibatch.py --steps 5',
                                    summary) is None


def test_the_recorded_commands_run_on_any_machine():
    """No record's command, nor the command of any of its entries, names the folders and files
    of the machine that made it."""
    def commands(data):
        if isinstance(data, dict):
            for key, value in data.items():
                yield from [value] if key == 'command' else commands(value)
        elif isinstance(data, list):
            for value in data:
                yield from commands(value)
    for path in sorted(results.RESULTS.glob('*.json')):
        for command in commands(json.loads(path.read_text(encoding='utf-8'))):
            assert results.rerun_command(command) == command, path.name


def test_help_says_what_the_command_does(capsys):
    with pytest.raises(SystemExit) as exit:
        results.main(['--help'])
    assert exit.value.code == 0 and '--record NAME SUMMARY COMMAND' in capsys.readouterr().out


def test_a_page_fills_its_empty_markers_from_the_record(tmp_path):
    """A page's empty markers become the rendering of the record, markers and all; a block with
    text between its markers (the README's, an example in a docstring) is left alone."""
    for path in results.RESULTS.glob('*.json'):
        (tmp_path / path.name).write_text(path.read_text(encoding='utf-8'), encoding='utf-8')
    page = 'Before.\n\n<!-- results: cora_seeds10 -->\n<!-- end results -->\n\nAfter.'
    example = '<!-- results: cora -->\n...\n<!-- end results -->'
    filled = results.fill(page, tmp_path)
    assert '<!--' not in filled and filled.startswith('Before.') and filled.endswith('After.')
    assert f"{results.load('cora_seeds10', tmp_path)['values']['test_mean']:.2f}" in filled
    assert results.fill(example, tmp_path) == example
    record = json.loads((tmp_path / 'cora_seeds10.json').read_text(encoding='utf-8'))
    record['values']['test_mean'] += 1
    (tmp_path / 'cora_seeds10.json').write_text(json.dumps(record), encoding='utf-8')
    assert results.fill(page, tmp_path) != filled


def test_results_import_nothing_of_the_package():
    # The records are read and rendered here; the modules that make them import this one, and
    # nothing here imports them back
    assert not any(name == 'labml_gat' for name in imported_modules(REPO / 'labml_gat' / 'results.py'))


def test_figures_compare_the_clock_of_their_threads():
    # The ratio that counts is CPU time with one CPU thread, else the wall clock; the records that
    # keep both clocks' ratios say which one it is
    checked = 0
    for figure in results.load_figures():
        one_cpu_thread = not figure.get('device') and figure['threads'] == 1
        for impl, row in figure['impls'].items():
            if 'step_ratio_wall' not in row or (one_cpu_thread and 'step_ratio_cpu' not in row):
                continue
            clock = '_cpu' if one_cpu_thread else '_wall'
            for kind in ('step', 'eval'):
                assert row[f'{kind}_ratio'] == row[f'{kind}_ratio{clock}'], (figure['figure'], impl)
            checked += 1
    assert checked >= 10


def test_second_thread_sentence_is_computed_from_both_figures(tmp_path):
    # One thread: CPU times; two threads: wall-clock, and the CPU time outside the system
    def figure(name, rows):
        record = {'name': results.benchmark_record_name(name), 'command': 'c', 'date': 'd',
                  'machine': {}, 'versions': {},
                  'values': {'threads': 2 if name.endswith('threads2') else 1, 'impls': rows}}
        path = tmp_path / f"{record['name']}.json"
        path.write_text(json.dumps(record), encoding='utf-8')

    def row(wall, cpu, system):
        return {'step_ms': wall, 'step_cpu_ms': cpu, 'step_system_ms': system}

    figure('layer_100000', {'dropin': row(999, 800, 0), results.PEER: row(999, 3000, 1000)})
    figure('layer_100000_threads2', {'dropin': row(400, 880, 0),
                                     results.PEER: row(2000, 3500, 1000)})
    measured = re.findall(r'\d+\.\d+x|\d+ ms', results.second_thread(tmp_path))
    assert measured == ['800 ms', '400 ms', '2.00x', '800 ms', '880 ms', '1.10x',
                        '3000 ms', '2000 ms', '1.50x', '2000 ms', '2500 ms', '1.25x']


def test_json_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    # A stop between writing and replacing leaves the old file as it was, and nothing beside it
    path = tmp_path / 'summary.json'
    results.write_json(path, {'a': 1})
    assert json.loads(path.read_text()) == {'a': 1}

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(results.os, 'replace', stopped)
    with pytest.raises(KeyboardInterrupt):
        results.write_json(path, {'a': 2})
    assert json.loads(path.read_text()) == {'a': 1}
    assert [p.name for p in tmp_path.iterdir()] == ['summary.json']


def test_json_follows_a_link_and_writes_into_what_is_not_a_file(tmp_path):
    import threading

    target = tmp_path / 'target.json'
    (tmp_path / 'link.json').symlink_to(target)
    results.write_json(tmp_path / 'link.json', {'a': 1})
    assert (tmp_path / 'link.json').is_symlink() and json.loads(target.read_text()) == {'a': 1}
    # A pipe, as /dev/stdout may be: written into, not replaced by a file
    pipe = tmp_path / 'pipe'
    os.mkfifo(pipe)
    read = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_text()))
    reader.start()
    results.write_json(pipe, {'b': 2})
    reader.join(timeout=10)
    assert json.loads(read[0]) == {'b': 2} and not pipe.is_file()


def test_strict_json_writes_null_for_numbers_that_are_not_finite():
    def refuse(constant):
        raise ValueError(f'{constant} is not JSON')

    data = {'a': [1.0, math.nan, {'b': math.inf}], 'c': (2, -math.inf), 'd': 'nan'}
    text = results.strict_json(data, indent=2)
    assert json.loads(text, parse_constant=refuse) == {'a': [1.0, None, {'b': None}],
                                                      'c': [2, None], 'd': 'nan'}


def test_a_misspelt_marker_or_block_is_one_line_and_writes_nothing(tmp_path, capsys):
    """A marker the renderer would skip, or a block it does not know, would leave a stale number
    behind: both are one line, and no file is written."""
    good = tmp_path / 'good.md'
    good.write_text('<!-- results: cora -->\nstale\n<!-- end results -->\n', encoding='utf-8')
    for name, text, message in [
            ('spaces.md', '<!-- results:  cora -->\nold\n<!-- end results -->\n',
             'line 1: a marker must be'),
            ('later.md', 'Intro.\n\n<!--results: cora-->\nold\n<!-- end results -->\n',
             'line 3: a marker must be'),
            ('unknown.md', '<!-- results: cora_seed10 -->\n<!-- end results -->\n',
             '<!-- results: cora_seed10 -->: no such block')]:
        bad = tmp_path / name
        bad.write_text(text, encoding='utf-8')
        with pytest.raises(SystemExit) as exit:
            results.main([str(good), str(bad)])
        error = capsys.readouterr().err
        assert exit.value.code == 2 and len(error.strip().splitlines()) == 1, error
        assert f'error: {bad}: {message}' in error, error
        assert bad.read_text(encoding='utf-8') == text
        assert 'stale' in good.read_text(encoding='utf-8')


def test_a_file_that_quotes_no_record_is_one_line(tmp_path, capsys):
    """A file given that has no marked block (a record's JSON, a misnamed page) rewrote
    nothing and said nothing: it is a mistake, said in one line before any file is written."""
    good = tmp_path / 'good.md'
    good.write_text('<!-- results: cora -->\nstale\n<!-- end results -->\n', encoding='utf-8')
    for name in ('notes.md', 'cora_seeds10.json'):
        quoting_none = tmp_path / name
        quoting_none.write_text('{"values": {}}\n', encoding='utf-8')
        with pytest.raises(SystemExit) as exit:
            results.main([str(good), str(quoting_none)])
        error = capsys.readouterr().err
        assert exit.value.code == 2 and len(error.strip().splitlines()) == 1, error
        assert f'error: {quoting_none}: it quotes no record' in error, error
        assert 'stale' in good.read_text(encoding='utf-8')


@pytest.mark.parametrize('damage, message', [
    (FileNotFoundError(2, 'No such file or directory'), 'No such file or directory'),
    (KeyError('values'), "a record it quotes has no 'values'")])
def test_a_missing_or_incomplete_record_is_one_line(tmp_path, monkeypatch, capsys, damage, message):
    page = tmp_path / 'page.md'
    page.write_text('<!-- results: cora -->\nstale\n<!-- end results -->\n', encoding='utf-8')

    def load(name, folder=results.RESULTS):
        raise damage

    monkeypatch.setattr(results, 'load', load)
    with pytest.raises(SystemExit) as exit:
        results.main([str(page)])
    error = capsys.readouterr().err
    assert exit.value.code == 2 and len(error.strip().splitlines()) == 1 and message in error, error
    assert 'stale' in page.read_text(encoding='utf-8')


def load_values(name):
    return results.load(name)['values']


def step_work(row):
    return row['step_cpu_ms'] - row['step_system_ms']


def sweep_run(k, layer, heads):
    runs = load_values('dictionary_lookup_sweep')['runs']
    return next(r for r in runs if (r['k'], r['layer'], r['n_heads']) == (k, layer, heads))


def k2_run(layer, heads):
    return sweep_run(2, layer, heads)


def sweep_ks(skip_first=0):
    """The recorded sweep's k, smallest first."""
    return sorted({r['k'] for r in load_values('dictionary_lookup_sweep')['runs']})[skip_first:]


def gap(run):
    return run['train_accuracy'] - run['test_accuracy']


def layer_row(figure, impl='dropin'):
    return load_values(results.benchmark_record_name(figure))['impls'][impl]


def test_a_record_of_one_seed_has_no_spread(tmp_path):
    # One seed has no standard deviation to show: its accuracy alone, in the table and the sentence
    record = json.loads((results.RESULTS / 'cora_seeds10.json').read_text(encoding='utf-8'))
    record['values'].update(seeds=1, test_std=0.0)
    (tmp_path / 'cora_seeds10.json').write_text(json.dumps(record), encoding='utf-8')
    table = results.experiments_table(['cora_seeds10'], tmp_path)
    sentence = results.experiment_result('cora_seeds10', tmp_path)
    for text in (table, sentence):
        assert '82.57 %' in text and 'with one seed' in text, text
        assert '82.57 ±' not in text and '1 seeds' not in text and 'deviation' not in text, text


# What the prose beside the records says in words, and what their numbers must then be
CLAIMS = [
    ('docs/usage.md', 'Neither layer gets twice the speed from a second thread',
     lambda: all(layer_row('layer_100000', impl)['step_cpu_ms'] <
                 2 * layer_row('layer_100000_threads2', impl)['step_ms']
                 for impl in ('dropin', results.PEER))),
    ('docs/usage.md', "The drop-in layer's two threads are busy for nearly all of the step",
     lambda: layer_row('layer_100000_threads2')['step_cpu_ms'] >=
     0.8 * 2 * layer_row('layer_100000_threads2')['step_ms']),
    ('docs/usage.md', "both layers' work grows when it is shared, PyG's more than ours",
     lambda: 1 < step_work(layer_row('layer_100000_threads2')) /
     step_work(layer_row('layer_100000')) <
     step_work(layer_row('layer_100000_threads2', results.PEER)) /
     step_work(layer_row('layer_100000', results.PEER))),
    ('docs/usage.md', 'about a million fresh pages a step at 100k nodes',
     lambda: 0.5e6 <= layer_row('layer_100000', results.PEER)['step_faults'] <= 2e6),
    ('docs/usage.md', "at 100k nodes the whole graph is one chunk and its peak is near PyG's; "
                      "its training step is a little slower than PyG's there",
     lambda: 0.75 <= layer_row('layer_100000_cuda')['peak_ratio'] <= 1.25
     and 1 < layer_row('layer_100000_cuda')['step_ratio'] <= 1.5),
    ('labml_gat/lean.py', 'at ten million nodes the leaner model fits where PyG runs out of memory',
     lambda: all('out of memory' in results.short_error(layer_row(figure, results.PEER)['error'])
                 and layer_row(figure, 'lean').get('error') is None
                 and layer_row(figure, 'lean')['step_ms'] > 0
                 for figure in ('scale_10000000', 'scale_10000000_cuda'))),
    ('labml_gat/gatv2_conv.py', "a larger one is cut, and the peak falls well below PyG's",
     lambda: layer_row('layer_1000000_cuda')['peak_ratio'] <= 0.6),
    ('labml_gat/gatv2_conv.py', 'at ten million nodes the [leaner two-layer model]'
                                '(lean.html#the-two-layer-model-leaner) of the next page (the same '
                                'chunks) fits where PyG runs out of memory',
     lambda: 'out of memory' in layer_row('scale_10000000_cuda', results.PEER)['error']
     and layer_row('scale_10000000_cuda', 'lean').get('error') is None
     and layer_row('scale_10000000_cuda', 'lean')['step_ms'] > 0),
    ('labml_gat/gatv2_conv.py', "a training step takes somewhat longer than PyG's, an "
                                'evaluation about as long',
     lambda: all(1 < layer_row(f)['step_ratio'] <= 1.5 and layer_row(f)['eval_ratio'] <= 1.2
                 for f in ('layer_100000_cuda', 'layer_1000000_cuda'))),
    ('docs/usage.md', 'one GAT head fits the training set at no $k$, not even the single '
                      'training graph of $k = 2$, and at the largest $k$ it stays at chance',
     lambda: k2_run('gat', 1)['n_train'] == 1
     and all(sweep_run(k, 'gat', 1)['train_accuracy'] < 1 for k in sweep_ks())
     and abs(sweep_run(sweep_ks(-1)[0], 'gat', 1)['train_accuracy'] - 1 / sweep_ks(-1)[0]) < 0.01),
    ('docs/usage.md', 'it answers the queries of the test graphs, whose key-value combinations it '
                      'never saw, with almost no error over the whole test set',
     lambda: all(sweep_run(k, 'gatv2', 1)['test_accuracy'] >= 0.9999
                 for k in sweep_ks() if k >= 10)),
    ('experiments/gallery/plot_dictionary_lookup.py',
     'gets every test answer wrong (0 %): both models with eight heads did just that',
     lambda: all(k2_run(layer, 8)['train_accuracy'] == 1 and
                 k2_run(layer, 8)['test_accuracy'] == 0 for layer in ('gat', 'gatv2'))),
    ('experiments/gallery/plot_dictionary_lookup.py',
     'One GAT head cannot fit even the training graph',
     lambda: k2_run('gat', 1)['train_accuracy'] < 1),
    ('experiments/gallery/plot_dictionary_lookup.py',
     'one GAT head stays far from fitting the training graphs once there is more than one '
     'training graph to fit. One GATv2 head fits them at every',
     lambda: all(sweep_run(k, 'gat', 1)['train_accuracy'] < 0.5 for k in sweep_ks(1))
     and all(sweep_run(k, 'gatv2', 1)['train_accuracy'] == 1 for k in sweep_ks())),
    ('experiments/gallery/plot_dictionary_lookup.py',
     'Eight GAT heads get further than one, and beyond k = 2 stay behind GATv2 on the test graphs',
     lambda: all(sweep_run(k, 'gat', 1)['test_accuracy'] < sweep_run(k, 'gat', 8)['test_accuracy']
                 < min(sweep_run(k, 'gatv2', h)['test_accuracy'] for h in (1, 8))
                 for k in sweep_ks(1))),
    ('experiments/gallery/plot_dictionary_lookup.py',
     'GATv2 fits within a few epochs, on the training and the test graphs together',
     lambda: all(sweep_run(k, 'gatv2', h)['stopped_by'] == 'fitted'
                 and sweep_run(k, 'gatv2', h)['epochs'] <= 5 and gap(sweep_run(k, 'gatv2', h)) < 0.05
                 for k in sweep_ks(-2) for h in (1, 8))),
    ('experiments/gallery/plot_dictionary_lookup.py', 'One GAT head stays at chance',
     lambda: all(max(sweep_run(k, 'gat', 1)['history']['train']) <= 1 / k + 0.01
                 for k in sweep_ks(-2))),
    ('experiments/gallery/plot_dictionary_lookup.py',
     'their test accuracy levels off far below their training accuracy',
     lambda: gap(sweep_run(sweep_ks(-2)[0], 'gat', 8)) > 0.2),
    ('experiments/gallery/plot_dictionary_lookup.py',
     'At the larger, both still rise together when the epochs run out, the test accuracy a few '
     'points behind',
     lambda: sweep_run(sweep_ks(-1)[0], 'gat', 8)['stopped_by'] == 'epochs'
     and 0 < gap(sweep_run(sweep_ks(-1)[0], 'gat', 8)) < 0.1
     and all(history[-1] > history[len(history) // 2] for history in
             sweep_run(sweep_ks(-1)[0], 'gat', 8)['history'].values())),
    ('labml_gat/fast.py', 'Work this small gains little from a second thread, and on a busy '
                          "machine PyTorch's threads spin waiting for each other",
     lambda: load_values('cora_threads')['before_quiet_seconds'] * 1.5 >
     load_values('cora_threads')['after_quiet_seconds']
     and load_values('cora_threads')['before_busy_seconds'] >
     2 * load_values('cora_threads')['after_busy_seconds']),
]


@pytest.mark.parametrize('path, words, holds', CLAIMS, ids=[c[1][:40] for c in CLAIMS])
def test_the_words_beside_the_records_hold(path, words, holds):
    """A sentence that states a recorded result in words is only as true as its record: each one
    is here with what its record must say, so that a new record that contradicts it fails."""
    text = ' '.join(re.sub(r'\s*\n\s*#?\s*', ' ', (REPO / path).read_text(encoding='utf-8'))
                    .split())
    assert words in text, f'{path} no longer says: {words}'
    assert holds(), f'{path} says "{words}", and its record does not'


def recorded_commands():
    """Each record's name, and each experiment script its command runs with the flags it gives
    (after `torchrun`'s own flags, without the environment): `(name, script, {flag: value})`."""
    for path in sorted(results.RESULTS.glob('*.json')):
        record = json.loads(path.read_text(encoding='utf-8'))
        for part in record['command'].split(';'):
            words = [w for w in shlex.split(part) if not re.fullmatch(r'[A-Z_]+=\S*', w)]
            if words[0] == 'torchrun':
                words = ['python', *words[words.index('--') + 1:]]
            if words[0] != 'python' or not words[1].startswith('experiments/'):
                continue
            flags, flag = {}, None
            for word in words[2:]:
                if word.startswith('--'):
                    flag, _, value = word.partition('=')
                    flags[flag] = [value] if value else []
                else:
                    flags[flag].append(word)
            yield path.stem, words[1], flags


@pytest.mark.slow
def test_record_commands_are_commands_their_scripts_take():
    """A record's command is how to make it again: every flag is one its script takes, and the
    settings the record states (threads, rounds, runs) are the command's."""
    helps, checked = {}, 0
    for name, script, flags in recorded_commands():
        if script not in helps:
            done = run_script(pathlib.Path(script).stem, '--help', timeout=300)
            assert done.returncode == 0, done.stderr
            helps[script] = done.stdout
        for flag in flags:
            assert re.search(rf'(?<![\w-]){re.escape(flag)}(?![\w-])', helps[script]), \
                f'{name}: {script} takes no {flag}'
        values = results.load(name).get('values', {})
        for flag, key in (('--threads', 'threads'), ('--rounds', 'rounds'), ('--repeats', 'runs')):
            if flag in flags and key in values:
                assert [str(values[key])] == flags[flag], f'{name}: {flag} {flags[flag]}'
        checked += 1
    assert checked >= 20 and {'benchmark.py', 'cora.py', 'cora_minibatch.py',
                               'dictionary_lookup.py', 'lookup_epoch_time.py',
                               'synthetic_minibatch.py'} <= {pathlib.Path(s).name for s in helps}


def test_a_summary_records_each_value_under_its_name():
    values = results.from_summary(SUMMARY)
    assert {key: values[key] for key in ('seeds', 'test_mean', 'test_std', 'val_mean',
                                         'train_seconds', 'wall_seconds', 'jobs',
                                         'load_average')} == \
        {'seeds': 2, 'test_mean': 82.5, 'test_std': 0.5, 'val_mean': 81.0, 'train_seconds': 10.0,
         'wall_seconds': 6.0, 'jobs': 2, 'load_average': 0.5}


def test_a_record_is_dated_the_day_it_is_written(tmp_path):
    before = date.today().isoformat()
    results.record('x', 'python experiments/cora.py', {}, tmp_path)
    assert results.load('x', tmp_path)['date'] in {before, date.today().isoformat()}


def test_every_block_of_a_file_is_rendered_anew(tmp_path):
    for path in results.RESULTS.glob('*.json'):
        (tmp_path / path.name).write_text(path.read_text(encoding='utf-8'), encoding='utf-8')
    text = ''.join(f'<!-- results: {name} -->\nstale\n<!-- end results -->\n\nProse.\n\n'
                   for name in ('quickstart', 'lookup_epoch', 'cora'))
    updated = results.update(text, tmp_path)
    assert 'stale' not in updated and updated.count('Prose.') == 3
    assert updated == results.update(updated, tmp_path)


def test_a_filled_sentence_stays_in_its_paragraph():
    page = 'Before:\n<!-- results: cora_seeds10 -->\n<!-- end results -->\nafter.'
    filled = results.fill(page)
    assert filled.startswith('Before:\nTest accuracy ') and filled.endswith('.\nafter.')
    assert '\n\n' not in filled


@pytest.mark.parametrize('device, exists', [('cuda', True), ('cuda:0', True), ('cuda:1', True),
                                            ('cuda:2', False), ('mps', False), ('gpu0', False)])
def test_a_summary_is_recorded_only_on_a_machine_with_its_device(tmp_path, monkeypatch, device,
                                                                   exists):
    # The device a summary's run used is tested as the experiments test their --device
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    monkeypatch.setattr(torch.backends.mps, 'is_available', lambda: False)
    monkeypatch.setattr(results, 'machine', lambda found='cpu': {'device': found})
    (tmp_path / 'summary.json').write_text(json.dumps(
        {**SUMMARY, 'settings': {**SUMMARY['settings'], 'device': device}}))
    found = []
    results.summary_values(tmp_path / 'summary.json', found.append)
    assert (found == []) is exists, found


def test_a_figure_record_needs_its_threads(tmp_path):
    record = {'name': 'benchmark_x', 'command': 'c', 'date': 'd', 'machine': {}, 'versions': {},
              'values': {'level': 'layer', 'graph': 'random', 'n_heads': 2, 'n_hidden': 2}}
    (tmp_path / 'benchmark_x.json').write_text(json.dumps(record), encoding='utf-8')
    with pytest.raises(ValueError, match="'benchmark_x' lacks values.threads"):
        results.load_figures(tmp_path)


@pytest.mark.parametrize('render, value, shown', [
    ('ms', 9_999.0, '9999.0 ms'), ('ms', 10_000.0, '10.0 s'), ('count', 999.0, '999'),
    ('count', 1_000.0, '1.0k'), ('count', 999_000.0, '999.0k'), ('count', 1e6, '1.00M'),
    ('gib', 2 ** 30, '1.00 GiB')])
def test_units_change_at_their_thresholds(render, value, shown):
    assert getattr(results, render)(value) == shown
