r"""
When the gallery's examples run during a build, and where their labml runs go.

**Re-running only what changed.** sphinx-gallery skips an example whose own file has not changed
since it last ran (it keeps an `.md5` of the file beside the generated page). An example's output
also depends on the code it imports, so this extension adds a second check: a hash of every file
in `DEPENDENCIES`, of PyTorch's version and of the datasets found. When that hash differs from the
one of the last build that ran the examples, the `.md5` files are deleted and every example runs
again; when it is the same, an unchanged example is not run, and its page keeps the output of its
last run.
The hash is only recorded by a build that ran the examples with none failing.

**Without the Planetoid files.** An example that calls `load_planetoid('<name>')` needs that
dataset's files. When they are not found where the loader looks (`LABML_GAT_DATA`, else
`../shared/data/planetoid` beside the clone, else the download cache; a site build never
downloads), those examples are not run: their pages are built without output, with a note
saying why, and the build says in one line which examples were skipped and how to get the files.

**labml runs.** Examples that train start labml runs. They go to the folder in `LABML_GAT_LOGS`
when it is set (the tests set it), else to `gallery-logs/` beside the HTML output folder
(`docs/_build/gallery-logs`), not to the repository's `logs/`, which holds a user's own runs.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

# What the examples' output depends on besides their own file, relative to the repository.
DEPENDENCIES = ('labml_gat/**/*.py', 'experiments/*.py', 'experiments/results/*.json',
                'docs/_ext/site_gallery.py')
# The hash of the dependencies at the last build that ran the examples, in the gallery's folder.
HASH_FILE = '.dependencies.sha256'
# A dataset an example loads: `load_planetoid('cora')`.
LOADS_DATASET = re.compile(r'''load_planetoid\(\s*['"](\w+)['"]''')


def dependency_hash(repository: Path, context: str = '') -> str:
    """SHA-256 over the names and contents of the dependencies, PyTorch's version and
    `context` (which datasets the examples can read: an example may print more with them)."""
    import torch

    digest = hashlib.sha256(f'torch {torch.__version__}\n{context}\n'.encode())
    files = sorted({path for pattern in DEPENDENCIES for path in repository.glob(pattern)
                    if path.is_file() and '__pycache__' not in path.parts})
    for path in files:
        digest.update(str(path.relative_to(repository)).encode() + b'\0')
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def needed_datasets(examples: Path) -> dict[str, set[str]]:
    """Example file name -> the Planetoid datasets it loads."""
    return {path.name: set(LOADS_DATASET.findall(path.read_text(encoding='utf-8')))
            for path in sorted(examples.glob('*.py'))}


def planetoid_folder() -> tuple[Path, str]:
    """Where the examples' loader will look, and how that folder was chosen: the loader's
    own rule (`labml_gat.datasets.data_folder`)."""
    from labml_gat.datasets import SOURCES, data_folder

    folder, source = data_folder()
    return folder, SOURCES[source]


def has_dataset(folder: Path, name: str) -> bool:
    from labml_gat.datasets import FILE_KINDS

    return all((folder / f'ind.{name}.{kind}').is_file() for kind in FILE_KINDS)


def execution_pattern(pattern: str, skipped: list[str]) -> str:
    """
    sphinx-gallery runs the examples whose path `re.search`es `filename_pattern`. This is
    `pattern` with the files in `skipped` left out: anchored at the start, so that the
    exclusion is tried once for the whole path rather than at every position.
    """
    if not skipped:
        return pattern
    names = '|'.join(re.escape(name) for name in skipped)
    return rf'^(?!.*[/\\](?:{names})$)(?=.*(?:{pattern}))'


def gallery_folders(app: Sphinx) -> list[tuple[Path, Path]]:
    """(examples folder, generated folder) pairs of the gallery configuration."""
    conf = app.config.sphinx_gallery_conf
    sources, targets = conf['examples_dirs'], conf['gallery_dirs']
    if isinstance(sources, str):
        sources, targets = [sources], [targets]
    srcdir = Path(app.srcdir)
    return [((srcdir / source).resolve(), srcdir / target)
            for source, target in zip(sources, targets)]


def skip_message(skipped: list[str], datasets: set[str], folder: Path, how: str) -> str:
    from labml_gat.datasets import BASE_URL, DATA_ENV_VAR

    files = ', '.join(f'ind.{name}.*' for name in sorted(datasets))
    return (f'Planetoid files not found in {folder} ({how}): not running {", ".join(skipped)}, '
            f'whose pages show no new output. To run them, set {DATA_ENV_VAR} to a folder with '
            f'{files} from {BASE_URL} (see labml_gat/datasets.py).')


def prepare(app: Sphinx) -> None:
    """Before sphinx-gallery generates the pages: skip what needs missing data, and forget the
    examples' last runs if their dependencies changed."""
    conf = app.config.sphinx_gallery_conf
    app.gallery_hash = None
    app.gallery_skip_message = None
    folders = gallery_folders(app)
    folder, how = planetoid_folder()
    skipped, missing, present = [], set(), set()
    for examples, _ in folders:
        for example, datasets in needed_datasets(examples).items():
            absent = {name for name in datasets if not has_dataset(folder, name)}
            present |= datasets - absent
            if absent:
                skipped.append(example)
                missing |= absent
    if skipped:
        conf['filename_pattern'] = execution_pattern(conf['filename_pattern'], skipped)
        app.gallery_skip_message = skip_message(skipped, missing, folder, how)
        logger.info(app.gallery_skip_message)
    app.gallery_skipped = {generated_doc(app, generated, example)
                           for _, generated in folders for example in skipped}

    if not conf['plot_gallery']:
        return  # nothing runs: the pages keep what the last build that ran them wrote
    logs = os.environ.get('LABML_GAT_LOGS') or str(Path(app.outdir).parent / 'gallery-logs')
    os.environ['LABML_GAT_LOGS'] = logs
    from labml_gat.runs import use_logs_from_environment
    use_logs_from_environment()

    repository = Path(app.srcdir).resolve().parent
    app.gallery_hash = dependency_hash(repository, f'datasets {sorted(present)}')
    for _, generated in folders:
        forget_runs_if_changed(generated, app.gallery_hash)


def forget_runs_if_changed(generated: Path, current: str) -> bool:
    """
    When the dependencies' hash is not the one recorded in the generated folder, delete the
    examples' `.md5` files, so that sphinx-gallery runs every example again. Returns whether
    it did.
    """
    recorded = generated / HASH_FILE
    if recorded.is_file() and recorded.read_text().strip() == current:
        return False
    for md5 in generated.glob('*.py.md5'):
        md5.unlink()
    # Recorded again only by a build that ran the examples without a failure.
    recorded.unlink(missing_ok=True)
    return True


def generated_doc(app: Sphinx, generated: Path, example: str) -> str:
    """The docname of an example's page: `experiments/gallery/plot_attention`."""
    return (generated.relative_to(app.srcdir) / Path(example).stem).as_posix()


def outdated(app: Sphinx, env: Any, added: set, changed: set, removed: set) -> list[str]:
    """The pages whose note must come or go: examples skipped now and not before, or the
    other way round. Their generated source may not have changed, so Sphinx would not
    read them again by itself."""
    before = getattr(env, 'gallery_skipped', set())
    env.gallery_skipped = set(app.gallery_skipped)
    return sorted(doc for doc in before ^ app.gallery_skipped if doc in env.found_docs)


def note_skipped(app: Sphinx, docname: str, source: list[str]) -> None:
    """A page of an example that was not run says so at its top."""
    if docname not in getattr(app, 'gallery_skipped', ()):
        return
    source[0] = ('.. note::\n\n   This example was not run in this build: it needs the Planetoid '
                 'files, which were not found. Any output below is from an earlier build.\n\n'
                 + source[0])


def record(app: Sphinx, exception: Exception | None) -> None:
    """After a build that ran the examples and none failed, remember their dependencies."""
    if getattr(app, 'gallery_skip_message', None):
        logger.info(app.gallery_skip_message)
    conf = app.config.sphinx_gallery_conf
    if exception is not None or not app.gallery_hash or conf.get('failing_examples'):
        return
    for _, generated in gallery_folders(app):
        if generated.is_dir():
            (generated / HASH_FILE).write_text(app.gallery_hash + '\n')


def setup(app: Sphinx) -> dict[str, Any]:
    # After sphinx-gallery has filled in its configuration (priority 10), before it generates
    # and runs the examples (priority 500).
    app.connect('builder-inited', prepare, priority=200)
    app.connect('env-get-outdated', outdated)
    app.connect('source-read', note_skipped)
    # Before sphinx-gallery's own handler, which raises when an example failed.
    app.connect('build-finished', record, priority=200)
    return {'parallel_read_safe': True, 'parallel_write_safe': True}
