"""
Tests of the Cora experiment: its settings and flags, its inputs, a training run, the same function
with and without the speed-ups, and the command line end to end (mistakes, parallel seeds).
"""

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import (PLANETOID, REPO, assert_same_runs, dense_adjacency, load_experiment, needs_planetoid,
                      sigint_as_in_a_terminal, small_planetoid, the_mistake)
from labml_gat import fast
from labml_gat.edges import EdgeGraphAttentionLayer, EdgeGraphAttentionV2Layer
from labml_gat.gat import GraphAttentionLayer
from labml_gat.gatv2 import GraphAttentionV2Layer
from labml_gat.model import TwoLayerGAT

cora = load_experiment('cora')
SCRIPT = REPO / 'experiments' / 'cora.py'


# ## Settings and flags

def test_settings_and_flags():
    settings, explicit = cora.CoraSettings.from_command_line(
        ['--layer', 'gat', '--impl', 'dense', '--no-fast', '--threads', '2', '--logs', 'somewhere', '--quiet'])
    assert (settings.layer, settings.impl, settings.fast, settings.threads) == ('gat', 'dense', False, 2)
    assert settings.logs == 'somewhere' and settings.quiet
    assert explicit == {'layer', 'impl', 'fast', 'threads', 'logs', 'quiet'}
    default = cora.CoraSettings()
    assert (default.layer, default.impl, default.fast, default.threads) == ('gatv2', 'edges', True, 1)
    assert default.experiment_name() == 'cora_gatv2' and default.comment(3) == 'edges layer, seed 3'


def test_layers():
    assert cora.LAYERS == {('gatv2', 'dense'): GraphAttentionV2Layer, ('gatv2', 'edges'): EdgeGraphAttentionV2Layer,
                           ('gat', 'dense'): GraphAttentionLayer, ('gat', 'edges'): EdgeGraphAttentionLayer}


def test_graph_of_gives_each_layer_its_graph_with_self_loops(generator):
    data = small_planetoid(generator)
    edge_index, adj = cora.graph_of(data, 'edges'), cora.graph_of(data, 'dense')
    assert edge_index.shape == (2, data.edge_index.shape[1] + data.num_nodes)
    assert torch.equal(adj, dense_adjacency(edge_index, data.num_nodes))
    assert adj.diagonal().all()


def test_inputs_for(generator):
    data = small_planetoid(generator, n_nodes=80, n_edges=60)
    x, graph = fast.to_sparse_csr(data.x), cora.graph_of(data, 'edges')
    nodes = data.train_mask.nonzero().squeeze(1)[:4]
    # The speed-ups with edges: the receptive field of the nodes
    field_x, graphs, index = cora.inputs_for(cora.CoraSettings(), x, graph, nodes)
    assert field_x.shape[0] < data.num_nodes and len(graphs) == 2 and len(index) == 4
    # The dense layer, or no speed-ups: the whole graph, and the nodes' rows
    for settings in (cora.CoraSettings(impl='dense'), cora.CoraSettings(fast=False)):
        assert cora.inputs_for(settings, x, graph, nodes) == (x, graph, nodes)


# ## Training one seed

def train(settings, data, tmp_path, seed=0):
    return cora.train_one_seed(settings, data, seed, tmp_path / f'seed{seed}' / 'best.pt')


def test_train_one_seed(generator, tmp_path):
    data = small_planetoid(generator, n_nodes=60)
    settings = cora.CoraSettings(epochs=6, patience=3, n_heads=2, n_hidden=4)
    result, model = train(settings, data, tmp_path)
    assert result['seed'] == 0 and 1 <= result['epochs'] <= 6 and len(result['history']) == result['epochs']
    assert 0 <= result['best_epoch'] < result['epochs']
    assert 0 <= result['val_accuracy'] <= 1 and 0 <= result['test_accuracy'] <= 1
    assert set(result['history'][0]) == {'loss.train', 'accuracy.train', 'loss.valid', 'accuracy.valid'}
    # The model holds the best weights, those of the checkpoint
    state = torch.load(result['checkpoint'], weights_only=True)
    assert all(torch.equal(state[name], value) for name, value in model.state_dict().items())
    assert isinstance(model, TwoLayerGAT) and isinstance(model.layer1.linear_l, fast.SparseInputLinear)
    # The same seed, the same run
    again, _ = train(settings, data, tmp_path)
    assert again['history'] == result['history']


def test_training_never_reads_the_test_labels(generator, tmp_path):
    # Early stopping chooses on the validation set: with other test labels, training, the epoch
    # kept and its weights are the same; only the test accuracy may change
    data = small_planetoid(generator, n_nodes=60)
    settings = cora.CoraSettings(epochs=12, patience=4, n_heads=2, n_hidden=4)
    result, model = train(settings, data, tmp_path)
    y = data.y.clone()
    y[data.test_mask] = (y[data.test_mask] + 1) % data.num_classes
    again, other = train(settings, dataclasses.replace(data, y=y), tmp_path)
    assert again['history'] == result['history'] and again['best_epoch'] == result['best_epoch']
    assert all(torch.equal(value, other.state_dict()[name]) for name, value in model.state_dict().items())
    assert again['test_accuracy'] != result['test_accuracy']


def test_training_alternates_modes_and_reports_the_best_epoch(generator, tmp_path):
    # Dropout in the training steps, none in validation or the test; the validation accuracy
    # reported is the best epoch's, found again with its weights, which the test then used
    data = small_planetoid(generator, n_nodes=60)
    settings = cora.CoraSettings(epochs=40, patience=3, n_heads=2, n_hidden=4,
                                 early_stopping='accuracy')
    modes = []

    def record_mode(module, args):
        if isinstance(module, TwoLayerGAT):
            modes.append(module.training)
    hook = torch.nn.modules.module.register_module_forward_pre_hook(record_mode)
    try:
        result, model = train(settings, data, tmp_path)
    finally:
        hook.remove()
    assert modes == [True, False] * result['epochs'] + [False]
    best = result['best_epoch']
    # The run is one where the best epoch is not the last, or the test would prove nothing
    assert best < result['epochs'] - 1
    assert result['val_accuracy'] == result['history'][best]['accuracy.valid']
    assert result['val_accuracy'] > result['history'][-1]['accuracy.valid']


@pytest.mark.parametrize('impl', ['edges', 'dense'])
def test_each_step_is_adam_on_the_training_loss(generator, tmp_path, impl):
    # Without dropout the training losses are those of a plain loop written out here: one
    # Adam step on fresh gradients of the cross-entropy of the training nodes, epoch after epoch
    data = small_planetoid(generator, n_nodes=60)
    settings = cora.CoraSettings(epochs=4, patience=10, n_heads=2, n_hidden=4, dropout=0.0,
                                 impl=impl, fast=False)
    result, _ = train(settings, data, tmp_path)
    torch.manual_seed(0)
    model = TwoLayerGAT(cora.LAYERS['gatv2', impl], data.num_features, data.num_classes, 2, 4,
                        0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate,
                                 weight_decay=settings.weight_decay)
    graph = cora.graph_of(data, impl)
    losses = []
    for _ in range(4):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(data.x, graph)[data.train_mask],
                                                 data.y[data.train_mask])
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert [epoch['loss.train'] for epoch in result['history']] == pytest.approx(losses, rel=1e-6)


@pytest.mark.parametrize('layer', ['gatv2', 'gat'])
def test_fast_and_literal_training_are_the_same_function(generator, tmp_path, layer):
    """
    Without dropout nothing is random after the initial weights, so the speed-ups (receptive fields,
    sparse features) and the literal model must give the same losses epoch by epoch; so must the dense
    layer. (With dropout they draw different random numbers: `tests/test_fast.py` compares them
    under the same draws.)
    """
    data = small_planetoid(generator, n_nodes=60, n_edges=70)
    common = dict(layer=layer, epochs=5, patience=10, n_heads=2, n_hidden=4, dropout=0.0)
    runs = {name: train(cora.CoraSettings(**common, **changes), data, tmp_path / name)[0]
            for name, changes in (('fast', {}), ('literal', {'fast': False}),
                                  ('dense', {'impl': 'dense', 'fast': False}),
                                  ('dense fast', {'impl': 'dense'}))}
    expected = runs['literal']
    for name, run in runs.items():
        for key in ('loss.train', 'loss.valid', 'accuracy.train', 'accuracy.valid'):
            assert [epoch[key] for epoch in run['history']] == pytest.approx(
                [epoch[key] for epoch in expected['history']], rel=1e-4, abs=1e-6), (name, key)
        assert (run['best_epoch'], run['test_accuracy']) == (expected['best_epoch'], expected['test_accuracy'])


def test_report_lists_seeds_and_anchors():
    summary = {'settings': {'layer': 'gatv2', 'impl': 'edges', 'dataset': 'cora'},
               'runs': [{'seed': 0, 'epochs': 200, 'best_epoch': 90, 'val_accuracy': 0.81,
                         'test_accuracy': 0.832, 'seconds': 3.0}],
               'test_accuracy': {'mean': 83.2, 'std': 0.0, 'n': 1}, 'seconds': 3.0, 'wall_seconds': 4.5,
               'jobs': 1}
    text = cora.report(summary)
    assert text.startswith('GATv2 (edges layer) on cora')
    assert '83.2' in text and '83.0 ± 0.7' in text and '82.1' in text
    assert '3.0 s of training, 4.5 s in all (1 process)' in text
    summary['settings']['dataset'] = 'citeseer'
    assert 'GAT paper' not in cora.report(summary)


# ## End to end

@needs_planetoid
def test_short_run_writes_summary_and_checkpoints(tmp_path, labml_logs, capsys):
    summary_path, logs = tmp_path / 'summary.json', tmp_path / 'runs'
    returned = cora.main(['--data-dir', str(PLANETOID), '--epochs', '3', '--seeds', '2', '--seed', '5',
                          '--jobs', '1', '--quiet', '--logs', str(logs), '--summary-json', str(summary_path)])
    summary = json.loads(summary_path.read_text())
    assert summary == json.loads(json.dumps(returned))
    assert summary['settings']['layer'] == 'gatv2' and summary['settings']['seeds'] == 2
    assert [run['seed'] for run in summary['runs']] == [5, 6]
    assert all(run['epochs'] == 3 for run in summary['runs'])
    assert summary['test_accuracy']['n'] == 2 and 0 <= summary['test_accuracy']['mean'] <= 100
    checkpoints = sorted(logs.glob('cora_gatv2/*/checkpoints/best.pt'))
    assert sorted(Path(run['checkpoint']) for run in summary['runs']) == checkpoints
    assert (checkpoints[0].parent.parent / 'configs.yaml').is_file()
    state = torch.load(checkpoints[0], weights_only=True)
    assert state['layer1.attn'].shape == (8, 8)
    assert 'GATv2 (edges layer) on cora' in capsys.readouterr().out
    assert not labml_logs.exists()


@pytest.mark.slow
@needs_planetoid
def test_parallel_seeds_match_sequential(tmp_path, labml_logs):
    """Seeds trained side by side in worker processes give the runs of one process, in seed order."""
    args = ['--data-dir', str(PLANETOID), '--epochs', '4', '--seeds', '2', '--quiet']
    sequential, parallel = tmp_path / 'sequential.json', tmp_path / 'parallel.json'
    cora.main(args + ['--jobs', '1', '--logs', str(tmp_path / 'one'), '--summary-json', str(sequential)])
    result = subprocess.run([sys.executable, str(SCRIPT), *args, '--jobs', '2', '--logs', str(tmp_path / 'two'),
                             '--summary-json', str(parallel)], capture_output=True, text=True, timeout=900,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    sequential, parallel = json.loads(sequential.read_text()), json.loads(parallel.read_text())
    assert (sequential['jobs'], parallel['jobs']) == (1, 2)
    assert [run['seed'] for run in parallel['runs']] == [0, 1]
    assert_same_runs(sequential['runs'], parallel['runs'])
    # The workers keep their runs in the parent's `--logs` folder
    assert len(list((tmp_path / 'two').glob('cora_gatv2/*/checkpoints/best.pt'))) == 2
    assert not (tmp_path / 'logs').exists()


# ## Mistakes on the command line: one line, exit status 2, and no run written

MISTAKES = {
    'epochs': ['--epochs', '0'],
    'seeds': ['--seeds', '0'],
    'jobs': ['--jobs', '0'],
    'jobs-without-seeds': ['--jobs', '2'],
    'dropout': ['--dropout', '1.5'],
    'data-dir': ['--data-dir', '{tmp}/no-such-folder'],
    'empty-data-dir': ['--data-dir', '{tmp}/empty'],
    'empty-path-data-dir': ['--data-dir', ''],
    'device': ['--device', 'cuda'],
    'removed-flag': ['--model', 'gat'],
    'share-weights': ['--share-weights', '--layer', 'gat'],
    'dataset': ['--dataset', 'pubmed'],
    'many-seeds': ['--seeds', '100000'],
    'long-name': ['--summary-json', '{tmp}/' + 's' * 300 + '.json'],
}
MESSAGES = {
    'epochs': 'cora.py: error: --epochs must be at least 1, got 0',
    'seeds': 'cora.py: error: --seeds must be at least 1, got 0',
    'jobs': 'cora.py: error: --jobs must be at least 1, got 0',
    'jobs-without-seeds': 'cora.py: error: a run without --seeds trains one seed and does not read --jobs',
    'dropout': 'cora.py: error: --dropout must be a probability in [0, 1), got 1.5',
    'data-dir': 'cora.py: error: --data-dir {tmp}/no-such-folder is not a folder',
    'empty-data-dir': "cora.py: error: Planetoid 'cora': missing in {tmp}/empty (",
    'empty-path-data-dir': 'cora.py: error: --data-dir is empty',
    'device': 'cora.py: error: --device cuda: PyTorch finds no CUDA device here',
    'removed-flag': 'cora.py: error: unrecognized arguments: --model gat',
    'share-weights': 'cora.py: error: --share-weights is an option of the GATv2 layer',
    'dataset': "cora.py: error: argument --dataset: invalid choice: 'pubmed'",
    'many-seeds': 'cora.py: error: --seeds 100000: at most 100 in one command',
    'long-name': 'cora.py: error: --summary-json {tmp}/' + 's' * 300 + '.json: ',
}


@pytest.fixture(scope='module')
def mistakes(tmp_path_factory):
    """Every mistake run at once, as subprocesses, each with its own `--logs` folder."""
    tmp = tmp_path_factory.mktemp('mistakes')
    (tmp / 'empty').mkdir()
    # The runs' folders go into a folder that exists, as any output does
    (tmp / 'logs').mkdir()
    processes = {}
    for name, args in MISTAKES.items():
        if name == 'device' and torch.cuda.is_available():
            continue
        args = [arg.format(tmp=tmp) for arg in args]
        processes[name] = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args, '--logs', str(tmp / 'logs' / name), '--epochs', '2']
            if name != 'epochs' else [sys.executable, str(SCRIPT), *args, '--logs', str(tmp / 'logs' / name)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp)
    results = {name: (process.wait(timeout=600), *process.communicate()) for name, process in processes.items()}
    return tmp, results


@pytest.mark.slow
@pytest.mark.parametrize('name', MISTAKES)
def test_a_mistake_is_one_line_with_exit_status_2(mistakes, name):
    tmp, results = mistakes
    if name not in results:
        pytest.skip('CUDA is available here')
    message = the_mistake(*results[name], 'cora.py')
    assert f'cora.py: error: {message}'.startswith(MESSAGES[name].format(tmp=tmp)), message
    # Nothing was written: no run folder
    assert not (tmp / 'logs' / name).exists()


@pytest.mark.slow
@pytest.mark.parametrize('logs, message', [
    ('a file', 'is a file; give a folder'), ('missing/logs', 'the folder {tmp}/missing does not exist'),
    ('a file/logs', '{tmp}/a file is a file, not a folder')])
def test_logs_must_be_a_folder_there_is_room_for(tmp_path, logs, message):
    (tmp_path / 'a file').write_text('')
    process = subprocess.run([sys.executable, str(SCRIPT), '--logs', str(tmp_path / logs), '--epochs', '1'],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert process.returncode == 2 and 'Traceback' not in process.stderr
    assert process.stderr.splitlines()[-1].startswith(f'cora.py: error: --logs {tmp_path / logs}')
    assert message.format(tmp=tmp_path) in process.stderr.splitlines()[-1]
    assert sorted(path.name for path in tmp_path.iterdir()) == ['a file']


@pytest.mark.slow
@needs_planetoid
def test_features_too_many_for_the_memory_are_refused(tmp_path):
    """An estimate before anything is allocated: one line, and no run left behind."""
    process = subprocess.run([sys.executable, str(SCRIPT), '--n-hidden', '1000000000', '--logs',
                              str(tmp_path / 'logs')], capture_output=True, text=True, timeout=300,
                             cwd=tmp_path)
    assert process.returncode == 2 and 'Traceback' not in process.stderr
    assert process.stderr.splitlines() == [line for line in process.stderr.splitlines()
                                           if line.startswith('cora.py: error: --n-heads 8 x --n-hidden 1000000000')]
    assert not (tmp_path / 'logs').exists()


@pytest.mark.slow
@needs_planetoid
@pytest.mark.parametrize('script', ['cora', 'cora_minibatch'])
def test_ctrl_c_stops_every_seed(tmp_path, script):
    """Ctrl-C in a terminal (SIGINT to the whole process group) while two seeds train side by side."""
    import os
    import signal
    import time
    from labml_gat.runs import read_status
    logs = tmp_path / 'logs'
    process = subprocess.Popen([sys.executable, str(REPO / 'experiments' / f'{script}.py'), '--seeds', '4',
                                '--jobs', '2', '--epochs', '100000', '--patience', '100000', '--logs', str(logs)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               start_new_session=True, preexec_fn=sigint_as_in_a_terminal)
    try:
        deadline = time.monotonic() + 180
        while len(list(logs.glob('*/*/run.yaml'))) < 2:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, 'the seeds did not start'
            time.sleep(0.2)
        time.sleep(2)
        os.killpg(process.pid, signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130 and err == f'{script}.py: stopped\n', err
    assert 'seed' not in out
    runs = sorted(path.parent for path in logs.glob('*/*/run.yaml'))
    assert [read_status(run) for run in runs] == ['interrupted'] * 2


@pytest.mark.parametrize('page', ['experiments/cora.py', 'experiments/gallery/plot_cora_training.py'])
def test_the_pages_quote_the_published_results_the_script_prints(page):
    """The Cora page and its example name the published accuracies that the script prints beside
    its own, so that a reader sees what the recorded mean compares with."""
    text = ' '.join(re.sub(r'\n\s*#', ' ', (REPO / page).read_text(encoding='utf-8')).split())
    assert all(f'{value} %' in text for value in cora.ANCHORS.values()), page
