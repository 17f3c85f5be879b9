"""Tests of what the node-classification experiments share: settings, early stopping, accuracy, memory."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from labml_gat import training
from labml_gat.settings import UsageError
from labml_gat.training import (EarlyStopping, NodeClassificationSettings, accuracy, check_dense_fits,
                                dense_training_bytes)


# ## Settings

def test_defaults_are_the_gat_papers():
    settings = NodeClassificationSettings()
    assert (settings.layer, settings.dataset, settings.n_heads, settings.n_hidden) == ('gatv2', 'cora', 8, 8)
    assert (settings.dropout, settings.learning_rate, settings.weight_decay) == (0.6, 0.005, 5e-4)
    assert (settings.epochs, settings.patience, settings.early_stopping) == (1000, 100, 'gat')
    assert (settings.seed, settings.seeds, settings.jobs, settings.threads) == (0, 1, None, 1)
    settings.check()
    assert settings.experiment_name() == 'cora_gatv2'
    assert settings.comment(3) == 'seed 3'
    assert NodeClassificationSettings(layer='gat', dataset='citeseer').experiment_name() == 'citeseer_gat'


@pytest.mark.parametrize('changes, message', [
    ({'epochs': 0}, '--epochs must be at least 1, got 0'),
    ({'seeds': 0}, '--seeds must be at least 1, got 0'),
    ({'jobs': 0}, '--jobs must be at least 1, got 0'),
    ({'threads': 0}, '--threads must be at least 1, got 0'),
    ({'n_heads': 0}, '--n-heads must be at least 1, got 0'),
    ({'n_hidden': -2}, '--n-hidden must be at least 1, got -2'),
    ({'patience': 0}, '--patience must be at least 1, got 0'),
    ({'seed': -1}, r'--seed must be in \[0, 2\*\*32\), got -1'),
    ({'dropout': 1.0}, r'--dropout must be a probability in \[0, 1\), got 1.0'),
    ({'dropout': 1.5}, r'--dropout must be a probability in \[0, 1\), got 1.5'),
    ({'dropout': -0.1}, r'--dropout must be a probability in \[0, 1\), got -0.1'),
    ({'learning_rate': 0.0}, '--learning-rate must be positive and finite, got 0.0'),
    ({'learning_rate': math.inf}, '--learning-rate must be positive and finite, got inf'),
    ({'learning_rate': math.nan}, '--learning-rate must be positive and finite, got nan'),
    ({'weight_decay': -1e-3}, '--weight-decay must be at least 0 and finite, got -0.001'),
    ({'weight_decay': math.inf}, '--weight-decay must be at least 0 and finite, got inf'),
    ({'share_weights': True, 'layer': 'gat'}, '--share-weights is an option of the GATv2 layer'),
    ({'layer': 'gcn'}, "--layer must be one of gatv2, gat, got 'gcn'"),
    ({'dataset': 'pubmed'}, "--dataset must be one of cora, citeseer, got 'pubmed'"),
    ({'early_stopping': 'loss'}, "--early-stopping must be one of gat, accuracy, got 'loss'"),
    ({'device': 'cuda:7' if torch.cuda.is_available() else 'cuda'}, '--device cuda'),
    ({'device': 'tpu'}, '--device tpu: not a device'),
    ({'data_dir': '/nonexistent/planetoid'}, '--data-dir /nonexistent/planetoid is not a folder'),
    # Not the current folder, as `Path('')` would have it
    ({'data_dir': ''}, '--data-dir is empty'),
    ({'summary_json': '/nonexistent/folder/summary.json'},
     '--summary-json /nonexistent/folder/summary.json: the folder /nonexistent/folder does not exist'),
])
def test_bad_settings_are_usage_errors(changes, message):
    settings = NodeClassificationSettings(**changes)
    with pytest.raises(UsageError, match=f'^{message}'):
        settings.check()


def test_good_settings_pass(tmp_path):
    NodeClassificationSettings(data_dir=str(tmp_path), summary_json=str(tmp_path / 'summary.json'),
                               share_weights=True, dropout=0.0, jobs=2, weight_decay=0.0).check()


JOBS_WITHOUT_SEEDS = 'a run without --seeds trains one seed and does not read --jobs'


@pytest.mark.parametrize('argv, refused', [
    (['--jobs', '2'], True), (['--jobs', '1'], True), (['--seeds', '1', '--jobs', '2'], False),
    (['--seeds', '3', '--jobs', '2'], False), (['--seeds', '3'], False), ([], False)])
def test_jobs_is_read_with_seeds_alone(argv, refused, capsys):
    """Without `--seeds` one seed trains in this process: a `--jobs` given would be ignored,
    and is refused in one line, with exit status 2, as any flag the run does not read."""
    if not refused:
        NodeClassificationSettings.from_command_line(argv)
        return
    with pytest.raises(SystemExit) as exit_info:
        NodeClassificationSettings.from_command_line(argv)
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.endswith(f'error: {JOBS_WITHOUT_SEEDS}; it is for the seeds of --seeds, side by side')


def test_a_data_dir_in_the_home_folder(monkeypatch, tmp_path):
    """`~` is the home folder for the check as for the loader."""
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / 'planetoid').mkdir()
    NodeClassificationSettings(data_dir='~/planetoid').check()


def test_every_setting_has_a_help():
    for field in dataclasses.fields(NodeClassificationSettings):
        assert field.metadata['help'], field.name


# ## Accuracy

def test_accuracy():
    logits = torch.tensor([[0.1, 0.9], [2.0, -1.0], [0.0, 3.0], [5.0, 4.0]])
    assert accuracy(logits, torch.tensor([1, 0, 0, 1])) == 0.5
    assert accuracy(logits, torch.tensor([1, 0, 1, 0])) == 1.0
    assert isinstance(accuracy(logits, torch.tensor([1, 0, 1, 0])), float)


# ## Early stopping

def test_early_stopping_gat_criterion():
    """The GAT paper's rule: improving either metric resets the patience; weights are kept only when both are best."""
    stopping = EarlyStopping('gat', patience=2)
    # (accuracy, loss) -> (keep, stop)
    steps = [((0.5, 1.0), (True, False)),    # first epoch: best on both
             ((0.6, 1.1), (False, False)),   # accuracy improves, loss does not: patience reset, weights not kept
             ((0.6, 0.9), (True, False)),    # both at their best: kept
             ((0.5, 1.2), (False, False)),   # neither: 1 bad epoch
             ((0.55, 1.0), (False, True))]   # neither: 2 bad epochs, stop
    for (acc, loss), expected in steps:
        assert stopping.step(acc, loss) == expected


@pytest.mark.parametrize('steps', [
    # A tie with the best accuracy improves, though the loss is worse: no stop after two more
    [((0.5, 1.0), (True, False)), ((0.5, 1.1), (False, False)), ((0.4, 1.2), (False, False))],
    # A tie with the lowest loss improves too, and keeps the weights only if the accuracy ties too
    [((0.5, 1.0), (True, False)), ((0.4, 1.0), (False, False)), ((0.4, 1.2), (False, False))],
    # The best accuracy stays the best after an epoch that improved only the loss
    [((0.6, 1.0), (True, False)), ((0.5, 0.9), (False, False)), ((0.55, 1.2), (False, False)),
     ((0.55, 1.2), (False, True))],
], ids=['accuracy-tie', 'loss-tie', 'best-of-each'])
def test_early_stopping_gat_criterion_ties_and_bests(steps):
    stopping = EarlyStopping('gat', patience=2)
    for (acc, loss), expected in steps:
        assert stopping.step(acc, loss) == expected


def test_early_stopping_accuracy_criterion():
    stopping = EarlyStopping('accuracy', patience=2)
    steps = [((0.5, 1.0), (True, False)),
             ((0.5, 0.9), (True, False)),    # same accuracy, lower loss: kept
             ((0.5, 0.95), (False, False)),
             ((0.7, 2.0), (True, False)),    # higher accuracy whatever the loss
             ((0.6, 0.1), (False, False)),
             ((0.7, 2.0), (False, True))]
    for (acc, loss), expected in steps:
        assert stopping.step(acc, loss) == expected


def test_early_stopping_keeps_and_restores_the_best_weights(tmp_path):
    model = nn.Linear(3, 2)
    stopping = EarlyStopping('gat', patience=3)
    best = None
    for epoch, (acc, loss) in enumerate([(0.5, 1.0), (0.7, 0.8), (0.6, 0.9), (0.6, 0.95), (0.65, 0.85)]):
        with torch.no_grad():
            model.weight.fill_(epoch)
        stop = stopping.update(epoch, model, acc, loss)
        if epoch == 1:
            best = {name: value.clone() for name, value in model.state_dict().items()}
        assert stop == (epoch == 4)
    assert stopping.best_epoch == 1
    # The copy is a copy: later epochs did not change it
    assert torch.equal(stopping.best_state['weight'], best['weight'])
    checkpoint = tmp_path / 'run' / 'checkpoints' / 'best.pt'
    stopping.restore_best(model, checkpoint)
    assert checkpoint.is_file()
    assert torch.equal(model.weight, best['weight'])
    assert torch.equal(torch.load(checkpoint, weights_only=True)['bias'], best['bias'])
    # Without a checkpoint (a run that keeps no files), from memory
    with torch.no_grad():
        model.weight.fill_(9)
    stopping.restore_best(model, None)
    assert torch.equal(model.weight, best['weight'])



@pytest.mark.parametrize('criterion', ['gat', 'accuracy'])
def test_early_stopping_keeps_the_first_epoch_of_a_diverged_run(criterion, tmp_path):
    # A loss that is NaN from the first epoch on improves nothing, yet there are weights to test
    model = nn.Linear(3, 2)
    stopping = EarlyStopping(criterion, patience=2)
    for epoch in range(3):
        stopping.update(epoch, model, 0.1, math.nan)
    assert stopping.best_epoch == 0 and stopping.best_state is not None
    stopping.restore_best(model, tmp_path / 'best.pt')

# ## The cost of the dense layer

def test_dense_training_bytes():
    assert dense_training_bytes('gatv2', 10, 2, 3) == 5 * 100 * 2 * 3 * 4
    assert dense_training_bytes('gat', 10, 2, 3) == 10 * 100 * 2 * 4
    assert (dense_training_bytes('gatv2', 10, 2, 3, bytes_per_float=8)
            == 2 * dense_training_bytes('gatv2', 10, 2, 3))
    # Cora with the paper's 8 heads of 8 features: about 8.7 GiB a step for GATv2
    assert round(dense_training_bytes('gatv2', 2708, 8, 8) / 2 ** 30, 1) == 8.7


def test_dense_estimate_bounds_the_saved_tensors():
    """The estimate is at least what autograd keeps for a dense GATv2 step (a deterministic
    lower bound of the peak: the tensors saved for the backward pass)."""
    import torch
    from labml_gat.gatv2 import GraphAttentionV2Layer
    n, heads, hidden = 60, 2, 4
    layer = GraphAttentionV2Layer(8, heads * hidden, heads, dropout=0.5)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: saved.append(t.numel() * t.element_size()) or t, lambda t: t):
        layer(torch.randn(n, 8), torch.ones(n, n, dtype=torch.bool)).sum()
    assert sum(saved) <= dense_training_bytes('gatv2', n, heads, hidden)


def test_available_memory_bytes():
    assert training.available_memory_bytes() > 2 ** 20


def test_dense_refused_when_too_big(monkeypatch):
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': 2 ** 30)
    with pytest.raises(UsageError, match=r'--impl dense needs 2708\^2 node pairs x 8 heads x 8 features: '
                                         r'about 8.7 GiB per training step, but only 1.0 GiB is free '
                                         r'on cpu; use --impl edges'):
        check_dense_fits(NodeClassificationSettings(), 2708)
    # It fits: a warning to print, not an error
    warning = check_dense_fits(NodeClassificationSettings(), 100)
    assert warning.startswith('--impl dense computes all 100^2 node pairs') and 'O(edges)' in warning
    assert '\n' not in warning


def test_the_dense_warning_counts_one_head_in_the_singular():
    """A count in words is singular for one, here as in every output: `1 head`, `1 feature`."""
    warning = check_dense_fits(NodeClassificationSettings(n_heads=1, n_hidden=1), 100)
    assert warning.startswith('--impl dense computes all 100^2 node pairs x 1 head x 1 feature:')


@pytest.mark.parametrize('impl', ['edges', 'dense'])
def test_seeds_side_by_side_each_need_their_memory(impl, monkeypatch):
    """`--jobs` workers each hold their step and their own Python and PyTorch: a hundred of
    them are refused from the sizes, before anything runs, as one process is not."""
    # Room for a few processes of Cora, each with its own PyTorch
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': 2 ** 31)

    def check(**given):
        settings = NodeClassificationSettings(**given)
        if impl == 'dense':
            check_dense_fits(settings, 100)
        else:
            training.check_edges_fit(settings, 2708, 13264, 1433, 7)
    check(seeds=100, jobs=1)
    check(seeds=2, jobs=100)  # at most one process per seed
    for seeds in (8, 100):
        with pytest.raises(UsageError, match=rf'^{seeds} processes training seeds side by side '
                                             r'\(--jobs\): .*; use fewer --jobs$'):
            check(seeds=seeds, jobs=seeds)


def test_the_memory_refused_for_seeds_side_by_side_is_said_for_all_their_processes(monkeypatch):
    """The GiB a refusal gives are those of all the `--jobs` processes together: said as the
    need of each process, four times the real one would send the reader the wrong way."""
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': 2 ** 30)
    settings = NodeClassificationSettings(seeds=4, jobs=4, n_hidden=256)
    step = training.edges_training_bytes(2708, 13264, 1433, 7, 8, 256)
    assert step >= training.WORKER_BYTES
    total = 4 * (step + training.WORKER_BYTES) / 2 ** 30
    with pytest.raises(UsageError, match=rf'features on 2708 nodes and 13264 edges, in 4 '
                                         rf'processes at once \(--jobs\): about {total:.1f} '
                                         rf'GiB per training step, with their Python'):
        training.check_edges_fit(settings, 2708, 13264, 1433, 7)


@pytest.mark.parametrize('device', ['cuda', 'cuda:0'])
def test_seeds_side_by_side_on_a_gpu_share_its_memory(device, monkeypatch):
    """On a CUDA device the processes' steps are in the device's memory, and only their own
    Python and PyTorch in the host's: each memory is refused for what it holds."""
    free = {'cuda': 2 ** 30, 'cpu': 3 * 2 ** 30}
    monkeypatch.setattr(training, 'available_memory_bytes',
                        lambda device='cpu': free[torch.device(device).type])

    def check(needed):
        training.check_seeds_fit(NodeClassificationSettings(seeds=8, jobs=8, device=device),
                                 needed, device, 'the work', 'use less')
    # 8 steps of 100 MiB fit the device, and 8 workers the host, which could not hold both
    check(100 * 2 ** 20)
    with pytest.raises(UsageError, match=rf'^the work, in 8 processes at once \(--jobs\): .* on '
                                         rf'{device}; use less, or fewer --jobs$'):
        check(200 * 2 ** 20)


def test_seeds_under_torchrun_are_one_process(monkeypatch):
    """Under torchrun the ranks train each seed together: one process of the seeds, however
    many cores and seeds, so no workers are counted."""
    from labml_gat import distributed, seeds
    monkeypatch.setattr(training, 'available_memory_bytes', lambda device='cpu': 2 ** 31)
    monkeypatch.setattr(seeds, 'available_cores', lambda: 100)
    settings = NodeClassificationSettings(seeds=100)
    with pytest.raises(UsageError, match='processes training seeds side by side'):
        training.check_edges_fit(settings, 2708, 13264, 1433, 7)
    monkeypatch.setattr(distributed, 'world_size', lambda: 2)
    training.check_edges_fit(settings, 2708, 13264, 1433, 7)


def test_summary_json_must_not_be_a_folder(tmp_path):
    """Refused before training, rather than a traceback when the summary is written."""
    with pytest.raises(UsageError, match=f'^--summary-json {tmp_path}'):
        NodeClassificationSettings(summary_json=str(tmp_path)).check()


def test_free_memory_is_the_devices(monkeypatch):
    """For a CUDA device, the device's free memory, not the host's."""
    monkeypatch.setattr(torch.cuda, 'mem_get_info', lambda device: (3 * 2 ** 20, 2 ** 40))
    assert training.available_memory_bytes('cuda') == 3 * 2 ** 20
    assert training.available_memory_bytes('cuda:1') == 3 * 2 ** 20
    assert training.available_memory_bytes('cpu') > 2 ** 20
    with pytest.raises(UsageError, match='only 0.0 GiB is free on cuda;'):
        check_dense_fits(NodeClassificationSettings(device='cuda'), 2708)


def test_edges_training_bytes_grow_with_the_features():
    from labml_gat.training import edges_training_bytes
    cora = edges_training_bytes(2708, 13264, 1433, 7, 8, 8)
    # The paper's model on Cora: tens of megabytes
    assert 2 ** 20 < cora < 2 ** 27
    assert edges_training_bytes(2708, 13264, 1433, 7, 8, 16) > 1.9 * cora


def test_too_many_features_are_refused_before_anything_runs():
    from labml_gat.training import check_edges_fit
    settings = NodeClassificationSettings(n_hidden=1_000_000_000)
    with pytest.raises(UsageError, match=r'^--n-heads 8 x --n-hidden 1000000000 features on 2708 '
                                         r'nodes and 13264 edges: about \d+\.\d GiB per training step'):
        check_edges_fit(settings, 2708, 13264, 1433, 7)
    check_edges_fit(NodeClassificationSettings(), 2708, 13264, 1433, 7)


def test_seeds_are_bounded():
    from labml_gat.training import MAX_SEEDS
    NodeClassificationSettings(seeds=MAX_SEEDS).check()
    with pytest.raises(UsageError, match=f'^--seeds 100000: at most {MAX_SEEDS} in one command.*'
                                         f'--seed {MAX_SEEDS + 5}$'):
        NodeClassificationSettings(seeds=100000, seed=5).check()
