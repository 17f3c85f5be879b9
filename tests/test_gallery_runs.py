"""
`docs/_ext/gallery_runs.py`: which gallery examples run in a site build. The whole build without
the Planetoid files is in `test_site.py`.
"""

import importlib.util
import re

import pytest

from conftest import REPO


@pytest.fixture(scope='module')
def gallery_runs():
    # A Sphinx extension of the docs, not a package: loaded from its file.
    spec = importlib.util.spec_from_file_location('gallery_runs', REPO / 'docs' / '_ext' / 'gallery_runs.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_examples_that_need_missing_data_are_left_out_of_the_run(gallery_runs):
    pattern = gallery_runs.execution_pattern('/plot_', ['plot_attention.py', 'plot_cora_training.py'])
    runs = lambda path: re.search(pattern, path) is not None  # noqa: E731
    assert not runs('/repo/experiments/gallery/plot_attention.py')
    assert not runs('/repo/experiments/gallery/plot_cora_training.py')
    assert runs('/repo/experiments/gallery/plot_dictionary_lookup.py')
    assert runs('/repo/plot_attention.py/gallery/plot_benchmark.py')
    # The original pattern still decides for the rest.
    assert not runs('/repo/experiments/gallery/helper.py')
    assert gallery_runs.execution_pattern('/plot_', []) == '/plot_'


def test_the_datasets_an_example_needs_are_read_from_its_code(gallery_runs):
    needs = gallery_runs.needed_datasets(REPO / 'experiments' / 'gallery')
    assert needs['plot_cora_training.py'] == {'cora'}
    assert needs['plot_dictionary_lookup.py'] == set()


def fake_repository(root):
    for path, text in {'labml_gat/gatv2.py': 'a = 1\n', 'experiments/cora.py': 'b = 2\n',
                       'docs/_ext/site_gallery.py': 'c = 3\n', 'README.md': 'text\n'}.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_the_hash_follows_the_code_the_examples_import(gallery_runs, tmp_path):
    root = fake_repository(tmp_path)
    first = gallery_runs.dependency_hash(root)
    (root / 'README.md').write_text('other text\n')
    assert gallery_runs.dependency_hash(root) == first
    (root / 'labml_gat' / '__pycache__').mkdir()
    (root / 'labml_gat' / '__pycache__' / 'x.py').write_text('cache')
    assert gallery_runs.dependency_hash(root) == first
    for change in ('labml_gat/gatv2.py', 'experiments/cora.py', 'experiments/results/speed.json',
                   'labml_gat/sub/new.py'):
        (root / change).parent.mkdir(parents=True, exist_ok=True)
        (root / change).write_text('changed\n')
        assert gallery_runs.dependency_hash(root) != first, change
        first = gallery_runs.dependency_hash(root)
    # Finding the data, or losing it, changes what an example may print.
    assert gallery_runs.dependency_hash(root, "datasets ['cora']") != first


def test_changed_dependencies_make_every_example_run_again(gallery_runs, tmp_path):
    generated = tmp_path / 'gallery'
    generated.mkdir()
    for name in ('plot_a.py.md5', 'plot_b.py.md5', 'plot_a.ipynb'):
        (generated / name).write_text('x')
    # Never recorded (a first build, or the last one failed): every example runs.
    assert gallery_runs.forget_runs_if_changed(generated, 'hash 1')
    assert sorted(path.name for path in generated.iterdir()) == ['plot_a.ipynb']
    # Recorded and unchanged: sphinx-gallery's own check decides, example by example.
    (generated / 'plot_a.py.md5').write_text('x')
    (generated / gallery_runs.HASH_FILE).write_text('hash 1\n')
    assert not gallery_runs.forget_runs_if_changed(generated, 'hash 1')
    assert (generated / 'plot_a.py.md5').is_file()
    assert gallery_runs.forget_runs_if_changed(generated, 'hash 2')
    assert not (generated / 'plot_a.py.md5').exists() and not (generated / gallery_runs.HASH_FILE).exists()
