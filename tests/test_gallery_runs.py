"""
`docs/_ext/gallery_runs.py`: which gallery examples run in a site build. The whole build without
the Planetoid files is in `test_site.py`.
"""

import importlib.util
import re

import pytest

from conftest import REPO

# The slow tier (`pytest -m "not slow"` leaves it out): builds gallery pages with Sphinx in a subprocess
pytestmark = pytest.mark.slow


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


# ## A small gallery, built for real

MINI_CONF = """
project = 'mini'
extensions = ['sphinx_gallery.gen_gallery', 'gallery_runs']
sphinx_gallery_conf = {
    'examples_dirs': '../examples', 'gallery_dirs': 'gallery', 'filename_pattern': '/plot_',
    'run_stale_examples': False, 'only_warn_on_example_error': False,
    'write_computation_times': False, 'download_all_examples': False,
}
"""
COUNTING_EXAMPLE = '''"""
Counts its runs
===============
"""
import os

with open(os.environ['MINI_GALLERY_RUNS'], 'a') as runs:
    runs.write('ran\\n')
'''
CORA_EXAMPLE = '''"""
Needs Cora
==========
"""
from labml_gat.datasets import load_planetoid

data = load_planetoid('cora')
'''


def mini_build(root, data):
    import os
    import subprocess
    import sys
    # The site's glue (`gallery_runs`) is found on the path the build is given
    path = os.pathsep.join(filter(None, [str(REPO / 'docs' / '_ext'), str(REPO),
                                         os.environ.get('PYTHONPATH')]))
    env = {**os.environ, 'LABML_GAT_DATA': str(data), 'MINI_GALLERY_RUNS': str(root / 'runs.txt'),
           'PYTHONPATH': path}
    result = subprocess.run([sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html',
                             str(root / 'src'), str(root / 'out')], env=env, capture_output=True,
                            text=True, timeout=600)
    runs = (root / 'runs.txt').read_text().count('ran') if (root / 'runs.txt').exists() else 0
    return result, runs


def test_a_real_build_skips_what_needs_data_and_reruns_only_after_a_change(tmp_path):
    """The build a user gets without the Planetoid files: no failure, one line, and a rebuild
    runs nothing until the code the examples depend on changes."""
    (tmp_path / 'src').mkdir()
    (tmp_path / 'src' / 'conf.py').write_text(MINI_CONF)
    (tmp_path / 'src' / 'index.rst').write_text('Mini\n====\n\n.. toctree::\n\n   gallery/index\n')
    (tmp_path / 'examples').mkdir()
    (tmp_path / 'examples' / 'GALLERY_HEADER.rst').write_text('Examples\n========\n')
    (tmp_path / 'examples' / 'plot_count.py').write_text(COUNTING_EXAMPLE)
    (tmp_path / 'examples' / 'plot_cora.py').write_text(CORA_EXAMPLE)
    (tmp_path / 'labml_gat').mkdir()
    (tmp_path / 'labml_gat' / 'layer.py').write_text('version = 1\n')
    empty = tmp_path / 'no-data'
    empty.mkdir()

    result, runs = mini_build(tmp_path, empty)
    log = result.stdout + result.stderr
    assert result.returncode == 0 and 'Extension error' not in log, log[-4000:]
    assert runs == 1
    [message] = {line for line in log.splitlines() if line.startswith('Planetoid files not found')}
    assert 'not running plot_cora.py' in message and 'LABML_GAT_DATA' in message
    assert 'was not run in this build' in (tmp_path / 'out' / 'gallery' / 'plot_cora.html').read_text()

    # Nothing changed: nothing runs. The code it depends on changed: it runs again.
    assert mini_build(tmp_path, empty)[1] == 1
    (tmp_path / 'labml_gat' / 'layer.py').write_text('version = 2\n')
    result, runs = mini_build(tmp_path, empty)
    assert result.returncode == 0 and runs == 2, result.stdout[-3000:] + result.stderr[-3000:]


def test_the_build_looks_for_the_data_where_the_loader_does(gallery_runs, monkeypatch, tmp_path):
    """The folder beside the clone, with LABML_GAT_DATA unset, as the examples' loader."""
    from labml_gat import datasets
    monkeypatch.delenv('LABML_GAT_DATA', raising=False)
    monkeypatch.setattr(datasets, 'shared_dir', lambda: tmp_path)
    assert gallery_runs.planetoid_folder()[0] == tmp_path
    monkeypatch.setenv('LABML_GAT_DATA', str(tmp_path / 'elsewhere'))
    assert gallery_runs.planetoid_folder()[0] == tmp_path / 'elsewhere'
