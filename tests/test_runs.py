"""`labml_gat.runs` on synthetic run folders laid out as labml writes them."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO
from labml_gat import runs
from labml_gat.runs import UsageError


def make_run(logs: Path, uuid: str, seed: int, valid: list[float], status: str = 'completed',
             truncated: bool = False) -> Path:
    """A run folder as labml leaves it: run.yaml, configs.yaml, log.jsonl, run_log.jsonl."""
    folder = logs / 'cora_gatv2' / uuid
    folder.mkdir(parents=True)
    (folder / 'run.yaml').write_text(f"name: cora_gatv2\nuuid: {uuid}\ncomment: seed {seed}\n"
                                     f"trial_date: '2026-11-30'\ntrial_time: '10:0{seed}:00'\n")
    record = ("{name}:\n  computed: {value}\n  is_explicitly_specified: false\n  name: {name}\n"
              "  options: []\n  order: 1\n  type: <class 'int'>\n  value: {value}\n")
    (folder / 'configs.yaml').write_text(record.format(name='seed', value=seed)
                                         + record.format(name='epochs', value=len(valid))
                                         + record.format(name='dropout', value=0.6))
    lines = [json.dumps({'track': {'loss.train': [[step, [1.0 - step / 10, 1.0 - step / 10]]],
                                   'accuracy.valid': [[step, [value]]],
                                   'time.loop': [[step, [0.1]]]}, 'time': 1.0 + step})
             for step, value in enumerate(valid)]
    lines.append(json.dumps({'track': {'accuracy.test': [[len(valid), [0.8]]]}, 'time': 9.0}))
    text = '\n'.join(lines) + '\n'
    (folder / 'log.jsonl').write_text(text + ('{"track": {"loss.tr' if truncated else ''))
    (folder / 'run_log.jsonl').write_text(json.dumps({'status': 'running'}) + '\n'
                                          + json.dumps({'status': status}) + '\n')
    return folder


@pytest.fixture
def logs(tmp_path) -> Path:
    make_run(tmp_path / 'logs', 'aaaa1111', 0, [0.2, 0.5, 0.7])
    make_run(tmp_path / 'logs', 'bbbb2222', 1, [0.3, 0.6], status='crashed', truncated=True)
    return tmp_path / 'logs'


def test_a_run_is_read_whole(logs):
    run = runs.read_run(logs / 'cora_gatv2' / 'aaaa1111')
    assert (run.experiment, run.uuid, run.comment, run.status) == \
        ('cora_gatv2', 'aaaa1111', 'seed 0', 'completed')
    assert run.settings == {'seed': 0, 'epochs': 3, 'dropout': 0.6}
    assert run.metrics['accuracy.valid'] == [(0, 0.2), (1, 0.5), (2, 0.7)]
    # Several values for one step are averaged.
    assert run.metrics['loss.train'][1] == (1, pytest.approx(0.9))
    assert runs.final_metrics(run) == {'accuracy.test': 0.8, 'accuracy.valid': 0.7,
                                       'loss.train': pytest.approx(0.8)}


def test_a_setting_that_holds_itself_is_one_line(logs):
    # YAML's anchors can make a list that holds itself: printing or comparing it would recurse
    configs = logs / 'cora_gatv2' / 'aaaa1111' / 'configs.yaml'
    configs.write_text('seed: &a [*a]\n')
    with pytest.raises(UsageError, match=r'configs\.yaml: a value in it holds itself'):
        runs.read_run(configs.parent)
    process = subprocess.run([sys.executable, '-m', 'labml_gat.runs', 'list', str(logs)],
                             capture_output=True, text=True, timeout=60, cwd=REPO)
    assert process.returncode == 2 and 'Traceback' not in process.stderr
    assert process.stderr.strip().splitlines()[-1].endswith('a value in it holds itself, '
                                                            'which no setting does')


def test_a_half_written_last_line_is_left_out(logs):
    run = runs.read_run(logs / 'cora_gatv2' / 'bbbb2222')
    assert run.status == 'crashed'
    assert run.metrics['accuracy.valid'] == [(0, 0.3), (1, 0.6)]


@pytest.mark.parametrize('line', ['{"track": [1, 2]}', '{"track": {"loss.train": [1, 2]}}',
                                  '{"track": {"loss.train": [[0, 0.5]]}}', '{"track": {"loss.train": [[[0], [0.5]]]}}',
                                  '{"track": {"loss.train": [[0, [0.5], 3]]}}'])
def test_a_line_not_of_labmls_shape_is_left_out(logs, line):
    # A damaged log: the line is left out, as a half-written one, and the rest is read
    folder = logs / 'cora_gatv2' / 'aaaa1111'
    with open(folder / 'log.jsonl', 'a', encoding='utf-8') as log:
        log.write(line + '\n')
    assert runs.read_run(folder).metrics['accuracy.valid'] == [(0, 0.2), (1, 0.5), (2, 0.7)]
    assert 'aaaa1111' in runs.list_runs(runs.find_runs(logs))


def test_list_takes_the_runs_of_one_experiment_or_one_run(logs):
    everything = [run.uuid for run in runs.find_runs(logs)]
    assert everything == ['aaaa1111', 'bbbb2222']
    assert [run.uuid for run in runs.find_runs(logs / 'cora_gatv2')] == everything
    assert [run.uuid for run in runs.find_runs(logs / 'cora_gatv2' / 'bbbb2222')] == ['bbbb2222']


def test_list_shows_shared_settings_once_and_what_differs_per_run(logs):
    text = runs.list_runs(runs.find_runs(logs))
    lines = text.splitlines()
    assert lines[0] == 'cora_gatv2: 2 runs'
    assert lines[1].split() == ['settings:', 'dropout=0.6']
    header = lines[2].split()
    assert header[:5] == ['run', 'started', 'status', 'epochs', 'seed']
    assert 'accuracy.valid' in header and 'time.loop' not in header
    first, second = lines[3].split(), lines[4].split()
    assert first[0] == 'aaaa1111'[:8] and 'completed' in first and '0.7' in first
    assert 'crashed' in second and '0.6' in second


def test_plot_writes_an_image(logs, tmp_path):
    pytest.importorskip('matplotlib')
    out = runs.plot_runs([runs.read_run(path) for path in sorted(logs.glob('*/*'))],
                         tmp_path / 'curves.png')
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_ten_runs_read_at_a_glance(tmp_path):
    """Ten seeds: their mean and spread in a short legend under the panels, not 30 entries over them."""
    pytest.importorskip('matplotlib')
    for seed in range(10):
        make_run(tmp_path, f'{seed:04d}cccc', seed, [0.2 + seed / 100, 0.5, 0.7 - seed / 100])
    figure = runs.draw_runs([runs.read_run(path) for path in sorted(tmp_path.glob('*/*'))])
    figure.canvas.draw()
    [legend] = figure.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert len(labels) <= 4 and all('10 runs' in label for label in labels), labels
    # The legend is outside the panels, and each panel keeps a third of the figure's width at least
    box = legend.get_window_extent()
    for panel in figure.axes:
        assert not panel.legend_
        assert box.y1 <= panel.get_window_extent().y0
        assert panel.get_position().width > 0.3
        # Each run faint, and the mean over the runs drawn boldly over them
        faint = [line for line in panel.get_lines() if (line.get_alpha() or 1) < 0.5]
        assert len(faint) >= 10
    valid = next(line for line in figure.axes[0].get_lines() if line.get_label().startswith('valid'))
    assert list(valid.get_ydata()) == pytest.approx([0.245, 0.5, 0.655])


def test_plot_writes_into_a_folder_that_exists(logs, tmp_path):
    result = subprocess.run([sys.executable, '-m', 'labml_gat.runs', 'plot', *map(str, sorted(logs.glob('*/*'))),
                             '--out', str(tmp_path / 'missing' / 'curves.png')], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, env={'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin'})
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().endswith(f'the folder {tmp_path / "missing"} does not exist')
    assert not (tmp_path / 'missing').exists()


def test_an_image_under_the_home_folder(logs, tmp_path):
    # `~` is the home folder, where the shell left it (quoted, or after `=`): checked and written alike
    pytest.importorskip('matplotlib')
    command = [sys.executable, '-m', 'labml_gat.runs', 'plot', *map(str, sorted(logs.glob('*/*'))),
               '--out=~/curves.png']
    env = {'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path / 'home')}
    (tmp_path / 'home').mkdir()
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'home' / 'curves.png').read_bytes()[:4] == b'\x89PNG' and not (tmp_path / '~').exists()


def test_plot_goes_beside_the_logs_and_an_image_needs_its_suffix(logs, tmp_path):
    # Without --out, the image goes into the folder of the experiments (logs/), not the folder the
    # command runs in; an --out matplotlib cannot write is one line before any run is read
    pytest.importorskip('matplotlib')
    here = tmp_path / 'here'
    here.mkdir()
    command = [sys.executable, '-m', 'labml_gat.runs', 'plot', *map(str, sorted(logs.glob('*/*')))]
    env = {'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin'}
    result = subprocess.run(command, cwd=here, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert (logs / 'curves.png').read_bytes()[:4] == b'\x89PNG' and not any(here.iterdir())
    result = subprocess.run(command + ['--out', 'curves.txt'], cwd=here, capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert '--out curves.txt: an image is written as one of ' in result.stderr
    assert not any(here.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize('arguments, message', [
    (['plot', 'missing'], 'missing: no such folder'),
    (['plot', '.'], 'is not a labml run: no run.yaml'),
    (['list', 'missing'], 'missing: no such folder'),
    # A file where a folder is wanted is said to be one
    (['list', 'file.txt'], 'file.txt: a file, not a folder'),
    (['plot', 'file.txt'], 'file.txt: a file, not a folder'),
])
def test_a_wrong_folder_is_one_line_and_status_2(tmp_path, arguments, message):
    (tmp_path / 'file.txt').write_text('not a run\n')
    result = subprocess.run([sys.executable, '-m', 'labml_gat.runs', *arguments], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120,
                            env={'PYTHONPATH': str(REPO), 'PATH': '/usr/bin:/bin'})
    assert result.returncode == 2 and result.stderr.startswith('python -m labml_gat.runs: error: ')
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_a_flag_of_a_command_is_not_abbreviated(logs, tmp_path, capsys):
    # As every other flag of the project: `--o` is not taken for `--out`, and writes nothing
    with pytest.raises(SystemExit) as exit_info:
        runs.main(['plot', *map(str, sorted(logs.glob('*/*'))), '--o', str(tmp_path / 'o.png')])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().endswith('error: unrecognized arguments: --o '
                                                    f'{tmp_path / "o.png"}')
    assert not (tmp_path / 'o.png').exists() and not (logs / 'curves.png').exists()


@pytest.mark.parametrize('arguments', [['list', 'r' * 300], ['plot', 'r' * 300],
                                       ['plot', '.', '--out', 'r' * 300 + '.png']])
def test_a_name_the_system_refuses_is_a_mistake(tmp_path, monkeypatch, arguments):
    # Longer than a file system takes: the system's reason in one line, not a traceback
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError):
        runs.main(arguments)
    assert not any(tmp_path.iterdir())


def test_a_run_without_metrics_cannot_be_plotted(tmp_path):
    folder = make_run(tmp_path, 'cccc3333', 0, [])
    (folder / 'log.jsonl').unlink()
    with pytest.raises(UsageError, match='nothing to plot'):
        runs.plot_runs([runs.read_run(folder)], tmp_path / 'curves.png')


def test_the_logs_folder_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(runs.LOGS_ENV_VAR, str(tmp_path / 'elsewhere'))
    assert runs.logs_folder() == tmp_path / 'elsewhere'
    monkeypatch.delenv(runs.LOGS_ENV_VAR)
    assert runs.logs_folder() == Path('logs')


@pytest.mark.parametrize('stop_early', [False, True])
def test_epochs_leave_the_log_open_for_what_comes_after_them(labml_logs, stop_early):
    # A real labml run that uses all its epochs, or stops early, still records what it saves
    # after them (a run's test accuracy) in its log.jsonl
    from labml import tracker
    with runs.labml_run('epochs_test', 'a comment', {}, screen=False, quiet=True) as folder:
        # Names of its own: labml's tracker is one per process, shared with other tests
        for epoch in runs.epochs(3):
            tracker.save(epoch, {'epochs_test.train': float(epoch)})
            if stop_early and epoch == 1:
                break
        tracker.save(epoch + 1, {'epochs_test.test': 0.5})
    # labml's writer thread writes the log in the background: wait for it, a while
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 'epochs_test.test' not in runs.read_metrics(folder):
        time.sleep(0.05)
    metrics = runs.read_metrics(folder)
    assert metrics['epochs_test.train'] == [(step, float(step)) for step in range(epoch + 1)]
    assert metrics['epochs_test.test'] == [(epoch + 1, 0.5)]



def test_a_run_stopped_elsewhere_is_recorded_as_interrupted(labml_logs):
    # Another process of a job stopped this one: labml records the run as interrupted, with
    # why, not as a crash of its own
    with pytest.raises(runs.StoppedElsewhere):
        with runs.labml_run('stopped_test', 'a comment', {}, screen=False, quiet=True) as folder:
            raise runs.StoppedElsewhere('another process stopped')
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and 'interrupted' not in \
            (folder / 'run_log.jsonl').read_text():
        time.sleep(0.05)
    closed = json.loads((folder / 'run_log.jsonl').read_text().splitlines()[-1])
    assert (closed['status'], closed['details']) == ('interrupted', 'another process stopped')


@pytest.mark.skipif(not hasattr(__import__('signal'), 'pthread_sigmask'), reason='POSIX signal masks')
@pytest.mark.parametrize('taken_by', ['this thread', 'another thread'])
def test_a_stop_signal_in_a_held_block_is_handled_after_it(taken_by):
    # A Ctrl-C in the block, whichever thread takes it, waits for the block's end; a process started
    # in the block starts with the stop signals blocked
    import signal
    import threading
    handled = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: handled.append('handled'))
    # A thread started before the block: it does not block the signal
    done = threading.Event()
    other = threading.Thread(target=done.wait)
    other.start()
    blocked = 'import signal; print(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))'
    try:
        with runs.stop_signals_held():
            if taken_by == 'this thread':
                signal.raise_signal(signal.SIGINT)
            else:
                signal.pthread_kill(other.ident, signal.SIGINT)
            child = subprocess.run([sys.executable, '-c', blocked], capture_output=True, text=True)
            handled.append('block ended')
        handled.append('after')
    finally:
        done.set()
        other.join()
        signal.signal(signal.SIGINT, previous)
    assert handled == ['block ended', 'handled', 'after']
    assert child.stdout == 'True\n'
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, [])


def test_a_run_leaves_the_signal_mask_as_it_found_it(labml_logs):
    # A worker blocks the stop signals between seeds: a run lets them in only while it lasts
    import signal
    before = signal.pthread_sigmask(signal.SIG_BLOCK, runs.STOP_SIGNALS)
    try:
        with runs.labml_run('mask_test', 'a comment', {}, screen=False, quiet=True):
            assert not runs.STOP_SIGNALS & signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert runs.STOP_SIGNALS <= signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def test_of_the_stop_signals_noted_the_first_is_handled():
    # A Ctrl-C then a SIGTERM while a run closes: the Ctrl-C's handler runs, once
    import signal
    handled = []
    before = {signum: signal.signal(signum, lambda signum, frame: handled.append(signum))
              for signum in runs.STOP_SIGNALS}
    try:
        deferred = runs._StopsDeferred()
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGTERM)
        assert handled == []
        deferred.release()
        assert handled == [signal.SIGINT]
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def test_a_run_closed_in_another_thread_defers_nothing():
    # Handlers are the main thread's: a run closed in another thread sets none and fails nothing
    import threading
    errors = []

    def close():
        try:
            runs._StopsDeferred().release()
        except Exception as error:
            errors.append(error)
    thread = threading.Thread(target=close)
    thread.start()
    thread.join()
    assert errors == []


def test_holding_the_stop_signals_keeps_the_others_blocked():
    import signal
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
    try:
        with runs.stop_signals_held():
            assert signal.SIGUSR1 in signal.pthread_sigmask(signal.SIG_BLOCK, [])
        assert signal.SIGUSR1 in signal.pthread_sigmask(signal.SIG_BLOCK, [])
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def test_values_of_one_step_are_averaged(tmp_path):
    (tmp_path / 'log.jsonl').write_text(json.dumps({'track': {'loss.train': [[1, [1.0, 4.0]], [2, [2.0]]]}}) + '\n')
    assert runs.read_metrics(tmp_path) == {'loss.train': [(1, 2.5), (2, 2.0)]}


def test_the_band_of_a_plot_is_the_sample_standard_deviation():
    assert runs._std([1.0, 3.0]) == pytest.approx(2 ** 0.5)
    assert runs._std([5.0]) == 0.0
