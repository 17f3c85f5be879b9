r"""
---
title: Planetoid citation graphs (Cora, CiteSeer)
summary: >
  A small, safe loader for the public Planetoid split of the Cora and CiteSeer citation graphs,
  the split used by the GAT and GATv2 papers, PyG and DGL.
---

# Planetoid citation graphs (Cora, CiteSeer)

The GAT and GATv2 papers evaluate transductive node classification on citation graphs.
Each node is a paper, represented by a binary bag-of-words vector $x_i \in \{0, 1\}^F$,
each edge is a citation, and the task is to predict the topic $y_i \in \{0, \dots, C - 1\}$
of every paper.

| dataset  | nodes $N$ | features $F$ | classes $C$ | undirected edges | train | val | test |
|----------|-----------|--------------|-------------|------------------|-------|-----|------|
| Cora     | 2708      | 1433         | 7           | 5278             | 140   | 500 | 1000 |
| CiteSeer | 3327      | 3703         | 6           | 4552             | 120   | 500 | 1000 |

## The public split

Everybody uses the split published with
[Planetoid](https://github.com/kimiyoung/planetoid) (Yang, Cohen & Salakhutdinov, ICML 2016):
20 labelled nodes per class for training, the next 500 nodes for validation and 1000 fixed
test nodes. The graph is used whole (transductive learning): every node, including the test
nodes, is present with its features; only the labels of the training nodes are used for the loss.

## The files

A dataset `<name>` is eight files `ind.<name>.<kind>`:

* `x`, `y`: features and one-hot labels of the training nodes, the first rows of `allx`, `ally`;
* `allx`, `ally`: features and one-hot labels of all the nodes that are not test nodes;
* `tx`, `ty`: features and one-hot labels of the test nodes;
* `test.index`: a text file, one node index per line; line $k$ is the node of row $k$ of `tx`;
* `graph`: a dict mapping every node to the list of its neighbours.

The node numbering is: the rows of `allx` are nodes $0, \dots, |\text{allx}| - 1$, and the test nodes
follow. In CiteSeer some nodes after `allx` are isolated papers without features or labels; they
are not in `test.index`, so the test indices have gaps. Like PyG, we give those nodes
all-zero features and label $0$, and leave them out of every mask.

All files but `test.index` are pickles written by Python 2 (scipy sparse matrices, numpy arrays
and a `defaultdict`). Unpickling can run arbitrary code, so we

1. check every file against a SHA-256 sum kept in this module before reading it, and read the
   bytes that were checked, not the file again (which could have been replaced meanwhile),
2. unpickle with an unpickler that can only build the few classes these files need; scipy is not
   needed at all, and tiny stand-ins take the sparse matrices and numpy's arrays apart (numpy's
   own unpickling of an array trusts the file: one of objects crashes the process), and
3. check what they hold before anything is made of it: the declared shape of a matrix, the
   columns and rows of its entries, and its values, which must be finite. The published files,
   known by their sums, pass these checks; they guard the files of any sum added to the table
   (`SHA256`), another dataset's, say.

## Where the files are found

1. In the folder passed as `data_dir`, or else in the folder named by the `LABML_GAT_DATA`
   environment variable, or else in `shared/data/planetoid` beside the clone of this
   repository (`../shared/data/planetoid` from its root, where `run.sh` looks too) when that
   folder exists. These folders are yours: they are read, never written to,
   and missing files are an error.
2. Otherwise in a cache folder, `labml.lab.get_data_path() / 'planetoid'`, where missing files are
   downloaded from the Planetoid repository, like PyG does. Call
   `download_planetoid(name, folder)` to fetch the files into a folder of your choice.
"""

import contextvars
import fcntl
import hashlib
import http.client
import io
import math
import os
import pickle
import pickletools
import secrets
import stat
import time
import urllib.request
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np
import torch
from labml import lab, monit

# Where PyG downloads the raw files from; tests point it at a local server.
BASE_URL = 'https://github.com/kimiyoung/planetoid/raw/master/data'
# Environment variable naming a folder that holds the files.
DATA_ENV_VAR = 'LABML_GAT_DATA'
# The eight kinds of file that make up a dataset.
FILE_KINDS = ('x', 'y', 'tx', 'ty', 'allx', 'ally', 'graph', 'test.index')

# SHA-256 sums of the files, from `kimiyoung/planetoid` (`data/`, commit af6abf4).
# These are the only files this module agrees to read.
SHA256: dict[str, dict[str, str]] = {
    'cora': {
        'x': '23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab',
        'y': '94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1',
        'tx': 'b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a',
        'ty': '41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad',
        'allx': '9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543',
        'ally': '2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71',
        'graph': '58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d',
        'test.index': '297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875',
    },
    'citeseer': {
        'x': 'd20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6',
        'y': '8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924',
        'tx': '539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21',
        'ty': '55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce',
        'allx': '2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668',
        'ally': 'f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95',
        'graph': 'd79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7',
        'test.index': '2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4',
    },
}


class DataFileError(ValueError):
    """A data file could not be read, failed its checksum, could not be parsed, or asked to build
    a forbidden object."""


class MissingDataError(FileNotFoundError):
    """Data files are missing and could not be downloaded; the message says what to put where."""


@dataclass
class Planetoid:
    """
    ## A citation graph and its split

    * `name` is the dataset name, `'cora'` or `'citeseer'`
    * `x` is the node features $x_i$, `[n_nodes, n_features]` float32
      (row-normalised unless loaded with `normalize=False`)
    * `y` is the node labels $y_i$, `[n_nodes]` int64
    * `edge_index` is the edges, `[2, n_edges]` int64: column `[j, i]` is a message from the
      source $j$ (row 0) to the target $i$ (row 1). Every edge is there in both directions,
      without self loops or duplicates, sorted by target then source (as PyG)
    * `train_mask`, `val_mask`, `test_mask` are the disjoint node sets of the split, `[n_nodes]` bool
    * `num_classes` is $C$
    """

    name: str
    x: torch.Tensor
    y: torch.Tensor
    edge_index: torch.Tensor
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    num_classes: int

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_features(self) -> int:
        return self.x.shape[1]

    def adjacency(self, self_loops: bool = True) -> torch.Tensor:
        """
        The dense adjacency matrix, `[n_nodes, n_nodes]` bool, in the convention of the
        [GATv2 layer](gatv2.html): `adj[i, j]` is `True` when node $i$ attends to node $j$.
        With `self_loops`, every node also attends to itself, as in the GAT paper.
        """
        adj = torch.zeros(self.num_nodes, self.num_nodes, dtype=torch.bool)
        # The edge column `[j, i]` lets the target $i$ (row of `adj`) see the source $j$ (column).
        adj[self.edge_index[1], self.edge_index[0]] = True
        if self_loops:
            adj.fill_diagonal_(True)
        return adj

    def edge_index_with_self_loops(self) -> torch.Tensor:
        """
        `edge_index` with a self loop $[i, i]$ appended for every node $i$ in order
        (as PyG's `add_self_loops`), `[2, n_edges + n_nodes]`.
        """
        loops = torch.arange(self.num_nodes).expand(2, -1)
        return torch.cat([self.edge_index, loops], dim=1)


def load_planetoid(name: str, data_dir: str | Path | None = None, download: bool = True,
                   normalize: bool = True, base_url: str = BASE_URL) -> Planetoid:
    """
    ## Load a dataset

    * `name` is `'cora'` or `'citeseer'` (any case)
    * `data_dir` is a folder holding the files; if `None`, the folder in `LABML_GAT_DATA`;
      if that is not set either, `shared/data/planetoid` beside the clone when it exists
      (`../shared/data/planetoid` from its root); else the cache folder (`data_folder`)
    * `download` allows downloading missing files into the cache folder (only there)
    * `normalize` divides each feature row by its sum, as the GAT paper does
    * `base_url` is where to download from
    """
    name = _check_name(name)
    folder = _find_folder(name, data_dir, download, base_url)
    # Verify all the checksums first, so that nothing is read from a file set with a bad file.
    files = {kind: _verified_file(folder, name, kind) for kind in FILE_KINDS}
    graph = _assemble(name, files)
    if normalize:
        graph.x = row_normalize(graph.x)
    return graph


def _check_name(name: str) -> str:
    """The file prefix of a dataset name, or a `ValueError` listing the known names."""
    if not isinstance(name, str) or name.lower() not in SHA256:
        raise ValueError(f'Unknown Planetoid dataset {name!r}; '
                         f'known: {", ".join(SHA256)}')
    return name.lower()


def _file_name(name: str, kind: str) -> str:
    """The name of one file, like `ind.cora.graph`."""
    return f'ind.{name}.{kind}'


def row_normalize(x: torch.Tensor) -> torch.Tensor:
    r"""
    ### Row normalisation

    $$x_i \leftarrow \frac{x_i}{\sum_f x_{if}}$$

    so that the features of every node sum to one; for these non-negative features this is
    exactly PyG's `NormalizeFeatures`.
    A row of zeros (CiteSeer's featureless nodes) stays zero instead of becoming NaN.
    """
    row_sum = x.sum(dim=1, keepdim=True)
    return x / torch.where(row_sum == 0, torch.ones_like(row_sum), row_sum)


# ## Finding the files


def shared_dir() -> Path:
    """The folder `shared/data/planetoid` beside the clone of this repository."""
    return Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'planetoid'


def cache_dir() -> Path:
    """The folder where downloaded files are kept: `labml.lab.get_data_path() / 'planetoid'`."""
    return lab.get_data_path() / 'planetoid'


# Where the folder of the files came from, as the messages say it
SOURCES = {
    'data_dir': 'given with --data-dir (data_dir)',
    'env': f'named by {DATA_ENV_VAR}',
    'shared': ('shared/data/planetoid beside the clone, read when neither --data-dir '
               f'(data_dir) nor {DATA_ENV_VAR} names a folder'),
    'cache': 'the download cache',
    'download': 'given to download_planetoid',
}
# What to do instead of filling that folder
_ELSEWHERE = {
    'data_dir': 'or give --data-dir (data_dir) a folder that has them',
    'env': f'or set {DATA_ENV_VAR} to a folder that has them',
}
_ELSEWHERE_DEFAULT = ('or give a folder that has them with --data-dir (data_dir) or '
                      f'{DATA_ENV_VAR}')


def data_folder(data_dir: str | Path | None = None) -> tuple[Path, str]:
    """
    ### The folder of the files

    The folder the files are read from, and where it came from (a key of `SOURCES`):
    `data_dir`, else the folder in `LABML_GAT_DATA`, else `shared_dir()` when it exists,
    else `cache_dir()`. Only the cache is ever downloaded into.
    """
    if data_dir is not None:
        return Path(data_dir).expanduser(), 'data_dir'
    if os.environ.get(DATA_ENV_VAR):
        return Path(os.environ[DATA_ENV_VAR]).expanduser(), 'env'
    with _reading(shared_dir()):
        if shared_dir().is_dir():
            return shared_dir(), 'shared'
    return cache_dir(), 'cache'


def _find_folder(name: str, data_dir: str | Path | None, download: bool,
                 base_url: str) -> Path:
    """The folder that holds all files of `name`, downloading into the cache if allowed."""
    # `Path('')` is the current folder, which nobody means by an empty path
    if data_dir == '':
        raise MissingDataError(f'Planetoid {name!r}: data_dir is empty; give a folder, '
                               f'or None for {DATA_ENV_VAR} or the default')
    folder, source = data_folder(data_dir)
    # The cache folder is ours, and we fill it if allowed; a folder of the user's is only read
    if source == 'cache' and download:
        return download_planetoid(name, base_url=base_url)
    if source in ('data_dir', 'env'):
        with _reading(folder):
            is_folder = folder.is_dir()
        if not is_folder:
            raise MissingDataError(f'Planetoid {name!r}: {folder} ({SOURCES[source]}) '
                                   f'is not a folder; give a folder that has the files')
    reason = ('Nothing is downloaded by this load.' if source == 'cache' else
              'Nothing is downloaded into a folder of yours.')
    missing = _missing_files(name, folder)
    if missing:
        raise MissingDataError(_missing_message(name, folder, source, missing, reason))
    return folder


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """An error of the system while reading `path` or its folder (no permission, a failing
    disk) becomes a `DataFileError` that names the path."""
    try:
        yield
    except OSError as err:
        raise DataFileError(f'cannot read {err.filename or path}: '
                            f'{err.strerror or err}') from err


def _has_file(path: Path) -> bool:
    """Whether the file is there; something else in its place is an error, not a missing file."""
    with _reading(path):
        try:
            mode = path.stat().st_mode
        # Missing, or its folder missing or a file
        except (FileNotFoundError, NotADirectoryError):
            _check_not_a_broken_link(path)
            return False
    _check_regular(path, mode)
    return True


def _check_not_a_broken_link(path: Path) -> None:
    """A link to a file that is missing is there to see, and not a missing file to its maker."""
    with _reading(path):
        if path.is_symlink():
            raise DataFileError(f'{path}: a link to {os.readlink(path)}, which is '
                                f'missing; link it to the Planetoid file {path.name}, or '
                                f'put the file there, from {BASE_URL}.')


# What a path is when it is not a regular file, as a message says it
_NOT_FILES = {stat.S_IFDIR: 'a folder', stat.S_IFIFO: 'a FIFO',
              stat.S_IFCHR: 'a character device', stat.S_IFBLK: 'a block device',
              stat.S_IFSOCK: 'a socket'}


def _check_regular(path: Path, mode: int) -> None:
    """A folder, a FIFO or a device where a file should be is said as what it is."""
    if not stat.S_ISREG(mode):
        what = _NOT_FILES.get(stat.S_IFMT(mode), 'something else')
        raise DataFileError(f'{path}: {what}, not a regular file; put the Planetoid '
                            f'file {path.name} there, from {BASE_URL}.')


def _missing_files(name: str, folder: Path) -> list[str]:
    return [_file_name(name, kind) for kind in FILE_KINDS
            if not _has_file(folder / _file_name(name, kind))]


def _missing_message(name: str, folder: Path, source: str, missing: list[str],
                     reason: str) -> str:
    """One line: what is missing where, why, and what to do."""
    return (f'Planetoid {name!r}: missing in {folder} ({SOURCES[source]}): '
            f'{", ".join(missing)}. {reason} '
            f'Copy the files {_file_name(name, "{" + ",".join(FILE_KINDS) + "}")} from '
            f'{BASE_URL} (the kimiyoung/planetoid repository) into {folder}, '
            f'{_ELSEWHERE.get(source, _ELSEWHERE_DEFAULT)}.')


# ## Checksums

# More than the largest file (CiteSeer's `allx`, 0.6 MB): a file is read whole, once
MAX_BYTES = 1 << 22


def _read_bytes(path: Path) -> bytes:
    """The content of `path`, read once: the bytes that are checked are the bytes parsed."""
    # Checked again on the file opened: one replaced by a FIFO since would wait for a writer
    with _reading(path), open(path, 'rb', opener=_open_nonblocking) as f:
        _check_regular(path, os.fstat(f.fileno()).st_mode)
        content = f.read(MAX_BYTES + 1)
    if len(content) > MAX_BYTES:
        raise DataFileError(f'{path}: larger than {MAX_BYTES} bytes, larger than any '
                            f'Planetoid file; it is not the Planetoid file. '
                            f'Replace it with the original from {BASE_URL}.')
    return content


def _open_nonblocking(path: str, flags: int) -> int:
    """Open without waiting: a FIFO opened to read waits for a writer, but not so."""
    return os.open(path, flags | os.O_NONBLOCK)


def _verified_file(folder: Path, name: str, kind: str) -> tuple[Path, bytes]:
    """The path of one file and its content, after checking its SHA-256 sum."""
    path = folder / _file_name(name, kind)
    content = _read_bytes(path)
    digest = hashlib.sha256(content).hexdigest()
    if digest != SHA256[name][kind]:
        # Files swapped or copied under the wrong name are not corrupt: the message says
        # which file it is
        other = [_file_name(other_name, other_kind) for other_name, sums in SHA256.items()
                 for other_kind, other_digest in sums.items() if other_digest == digest]
        if other:
            raise DataFileError(f'{path}: its SHA-256 {digest} is the file {other[0]}, '
                                f'not {path.name}. Put {path.name} there, '
                                f'from {BASE_URL}.')
        raise DataFileError(f'{path}: SHA-256 {digest} does not match the expected '
                            f'{SHA256[name][kind]}; the file is corrupt, truncated or '
                            f'not the Planetoid file. '
                            f'Replace it with the original from {BASE_URL}.')
    return path, content


# ## Downloading


class _DownloadFailed(Exception):
    """A file could not be fetched; the message says which and why."""


def download_planetoid(name: str, folder: str | Path | None = None,
                       base_url: str = BASE_URL) -> Path:
    """
    ### Download a dataset

    Downloads the files of `name` that are missing in `folder` (default: the cache folder)
    from `base_url` and returns the folder. Each file is checked against its SHA-256 sum
    before it appears under its final name, so no partial or unverified file is ever left.
    A download that fails keeps the files verified before the failure (a later call fetches
    only the others) and removes the folders it made while they are still empty.
    """
    name = _check_name(name)
    source = 'cache' if folder is None else 'download'
    folder = Path(folder).expanduser() if folder is not None else cache_dir()
    # The folders this call made, outermost first: only those may be removed again
    made: list[Path] = []
    try:
        _remove_stale_parts(folder, name)
        for kind in FILE_KINDS:
            path = folder / _file_name(name, kind)
            if not _has_file(path):
                _download_file(name, kind, path, base_url, made)
    except BaseException as err:
        _remove_empty(made)
        if isinstance(err, _DownloadFailed):
            raise MissingDataError(_missing_message(
                name, folder, source, _missing_files(name, folder), str(err))) from err
        if isinstance(err, OSError):
            raise MissingDataError(
                _unwritable_message(name, folder, source, err)) from err
        raise
    return folder


def _unwritable_message(name: str, folder: Path, source: str, err: OSError) -> str:
    # A file where a folder should be is "File exists", which reads as the opposite
    why = ' is a file' if isinstance(err, FileExistsError) else f': {err.strerror or err}'
    return (f'Planetoid {name!r}: cannot write the downloaded files into {folder} '
            f'({SOURCES[source]}): {err.filename or folder}{why}. Put the files into a '
            f'folder yourself and give it with --data-dir (data_dir) or {DATA_ENV_VAR}.')


def _make_folders(folder: Path) -> list[Path]:
    """Make `folder` and its missing parents; the ones made here, outermost first. A folder
    that another process makes at the same moment is theirs."""
    made = []
    for parent in reversed((folder, *folder.parents)):
        if parent.is_dir():
            continue
        try:
            parent.mkdir()
        except FileExistsError:
            if not parent.is_dir():
                raise
        else:
            made.append(parent)
    return made


def _remove_empty(made: list[Path]) -> None:
    """Remove the folders in `made`, innermost first, that are still empty. Another process
    may have put files into one or removed it: that is theirs to keep or to do."""
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            pass


def _download_file(name: str, kind: str, path: Path, base_url: str,
                   made: list[Path]) -> None:
    """Download one file atomically: into a temporary file next to it, renamed once verified."""
    url = f'{base_url.rstrip("/")}/{path.name}'
    fd, tmp_name = _temporary_file(path, made)
    try:
        # Open, and so locked, until it has its name (`_remove_stale_parts`)
        with os.fdopen(fd, 'wb') as out:
            digest = _fetch(url, out, path)
            out.flush()
            os.fsync(out.fileno())
            if digest != SHA256[name][kind]:
                raise DataFileError(f'{path.name} downloaded from {url} has SHA-256 '
                                    f'{digest}, expected {SHA256[name][kind]}; it was '
                                    f'not saved (the files verified before it are kept '
                                    f'in {path.parent}).')
            os.replace(tmp_name, path)
    finally:
        # After a successful `os.replace` there is nothing left to remove.
        Path(tmp_name).unlink(missing_ok=True)


def _new_part(path: Path) -> tuple[int, str]:
    """
    A new file beside `path`, `.<name>.<random>.part`, open to write. A downloaded file is as
    readable as the user's other files, for the others who read a folder filled for them:
    like any new file, it is given the mode `0o666` less the umask (or the folder's default
    ACL). `mkstemp` would make it readable by its owner only, and the umask can be read only
    by setting it, for every thread of the process at once.
    """
    part = path.with_name(f'.{path.name}.{secrets.token_hex(8)}.part')
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    # Where files cannot be locked (NFS without its lock service), no other process can lock
    # this one either, and so none removes it (`_remove_if_stale`)
    with suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd, str(part)


# A `.part` file that nobody holds locked and that has not changed for this long was left by
# a download that was killed
STALE_SECONDS = 60


def _remove_stale_parts(folder: Path, name: str) -> None:
    """
    A download killed (`kill -9`, a machine switched off) leaves its `.part` file; the next
    download of the dataset into the folder removes it. Another process may be downloading
    into the same folder at that moment (each process of a `torchrun` job does): its file is
    its own as long as it holds it locked, which it does from the moment it made it (the
    system lets go of a lock when its process ends, however it ends). Made and locked are
    two steps, so a file is also left until it has not changed for `STALE_SECONDS`.
    """
    for kind in FILE_KINDS:
        for part in folder.glob(f'.{_file_name(name, kind)}.*.part'):
            _remove_if_stale(part)


def _remove_if_stale(part: Path) -> None:
    """Remove `part` if it is a regular file, old, and locked by nobody (`_remove_stale_parts`)."""
    # Not a link (`O_NOFOLLOW`), and never waiting for a FIFO's writer (`O_NONBLOCK`)
    try:
        fd = os.open(part, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    # A file that cannot be locked or removed (another's, in a folder shared) is left: the
    # download needs its own file only
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and time.time() - info.st_mtime > STALE_SECONDS:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Still the file under that name, the one locked
            if os.path.samestat(info, os.lstat(part)):
                part.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


# How often a folder removed by another process is made again for one file
_TRIES = 10


def _temporary_file(path: Path, made: list[Path]) -> tuple[int, str]:
    """A new temporary file beside `path`, after making its folders. Another process whose
    download failed may remove a folder it made just before the file is created; then the
    folder is made again. Once the file is in it, the folder stays."""
    tries = 0
    while True:
        made += _make_folders(path.parent)
        try:
            return _new_part(path)
        except FileNotFoundError:
            tries += 1
            if tries == _TRIES:
                raise


# How long one read waits for the server. A server that sends a byte now and then never
# makes it wait that long: the whole file has its own limit, longer than the largest
# Planetoid file (0.6 MB) takes at 2 kB/s
READ_SECONDS = 60
DOWNLOAD_SECONDS = 300


def _fetch(url: str, out: BinaryIO, path: Path) -> str:
    """Stream `url` into `out` with a progress bar, and return the SHA-256 of what was received.
    What cannot be received, or not within `DOWNLOAD_SECONDS`, is a `_DownloadFailed`; what
    cannot be written (a full disk) stays an `OSError`, about the folder, not the download."""
    deadline = time.monotonic() + DOWNLOAD_SECONDS
    try:
        response = urllib.request.urlopen(url, timeout=READ_SECONDS)
    # Offline or unreachable: the caller says which files to put where instead.
    except (OSError, http.client.HTTPException) as err:
        raise _DownloadFailed(f'Could not download {url} ({err}).') from err
    with response:
        return _copy_with_progress(response, out, url, path.name, deadline)


def _copy_with_progress(response: Any, out: BinaryIO, url: str, label: str,
                        deadline: float) -> str:
    total = _content_length(response)
    digest = hashlib.sha256()
    received = 0
    with monit.section(f'Download {label}', total_steps=max(total or 0, 1)):
        while chunk := _read_chunk(response, url, deadline):
            received += len(chunk)
            # No more than any Planetoid file, announced or sent: a server that sends without
            # end would fill the disk
            if max(received, total or 0) > MAX_BYTES:
                raise _DownloadFailed(f'Could not download {url} (more than {MAX_BYTES} '
                                      f'bytes, more than any Planetoid file).')
            out.write(chunk)
            digest.update(chunk)
            if total:
                monit.progress(received)
    # The connection ended early: said so, rather than as a file of the wrong checksum
    if total is not None and received < total:
        raise _DownloadFailed(f'Could not download {url} (the connection ended after '
                              f'{received} of {total} bytes).')
    return digest.hexdigest()


def _content_length(response: Any) -> int | None:
    """The size the server announces, when it announces one that is a size. Python converts
    no integer of more than 4300 digits: a size of more is larger than any file anyway."""
    length = response.headers.get('Content-Length') or ''
    if not (length.isascii() and length.isdigit()):
        return None
    digits = length.lstrip('0') or '0'
    return int(digits) if len(digits) <= 20 else MAX_BYTES + 1


def _read_chunk(response: Any, url: str, deadline: float) -> bytes:
    """The next bytes of `response`, or `b''` at its end; a failure is the download's, and
    so is a download still going at the `deadline`."""
    if time.monotonic() > deadline:
        raise _DownloadFailed(f'Could not download {url} (not received within '
                              f'{DOWNLOAD_SECONDS} s).')
    try:
        # What has arrived, up to 64 kB: `read` would wait for all 64 kB, past the deadline
        return response.read1(1 << 16)
    except (OSError, http.client.HTTPException) as err:
        raise _DownloadFailed(f'Could not download {url} ({err}).') from err


# ## Safe unpickling
#
# `pickletools.dis` shows that the pickles reference exactly these globals:
# `scipy.sparse.csr.csr_matrix` (features), `numpy.core.multiarray._reconstruct`, `numpy.ndarray`
# and `numpy.dtype` (the arrays inside), and `collections.defaultdict` with `__builtin__.list`
# (the graph). Nothing else can be built while unpickling, and none of numpy's own
# `__setstate__` methods ever sees what a file says: small stand-ins take the arrays and their
# types apart, as `_CsrMatrix` does the sparse matrices, and Python's own `list` and
# `defaultdict` are never called.


# More entries than the largest matrix the files make, CiteSeer's features of its 3327 nodes
# (3327 × 3703 = 12.3 M): a dense matrix is never larger, whatever shape a file declares
MAX_ENTRIES = 1 << 25
# The attributes of a pickled `csr_matrix` that make its matrix
_CSR_KEYS = {'_shape', 'indptr', 'indices', 'data'}


class _CsrMatrix:
    """
    A stand-in for `scipy.sparse.csr_matrix`: the unpickler creates it empty and hands it the
    pickled attributes, from which we build the dense matrix ourselves.
    """

    def __setstate__(self, state: dict) -> None:
        self.state = state

    def to_dense(self) -> np.ndarray:
        """Row $r$ has the values `data[indptr[r]:indptr[r + 1]]` in the columns `indices[...]`.
        Every part is checked before the dense matrix is made: its shape declares its size,
        and a column index outside it would land in another column (a negative one counts
        from the end) or fail deep in numpy."""
        state = getattr(self, 'state', None)
        if not isinstance(state, dict) or not _CSR_KEYS <= state.keys():
            raise ValueError(f'expected the attributes {", ".join(sorted(_CSR_KEYS))}')
        n_rows, n_cols = self._shape()
        indptr, indices, data = (_array(state[key], key)
                                 for key in ('indptr', 'indices', 'data'))
        _check_row_pointers(indptr, n_rows, len(indices))
        if len(indices) != len(data) or indices.ndim != 1 or data.ndim != 1:
            raise ValueError(f'{len(indices)} column indices for {len(data)} values')
        if indices.dtype.kind not in 'iu' or data.dtype.kind not in 'biuf':
            raise ValueError(f'column indices of type {indices.dtype} and values of type '
                             f'{data.dtype}; expected integers and numbers')
        outside = indices[(indices < 0) | (indices >= n_cols)]
        if len(outside):
            raise ValueError(f'column index {outside[0]} outside the {n_cols} columns')
        rows = np.repeat(np.arange(n_rows), np.diff(indptr))
        dense = np.zeros((n_rows, n_cols), dtype=data.dtype)
        # Duplicate entries add up, as in scipy; a sum too large becomes infinity, which
        # `_read_matrix` refuses.
        with np.errstate(over='ignore'):
            np.add.at(dense, (rows, indices), data)
        return dense

    def _shape(self) -> tuple[int, int]:
        """The declared shape: two sizes, of at most `MAX_ENTRIES` entries together."""
        shape = self.state['_shape']
        if not (isinstance(shape, tuple) and len(shape) == 2
                and all(isinstance(n, (int, np.integer)) and n >= 0 for n in shape)):
            raise ValueError(f'its shape {_short(shape)} is not two sizes')
        n_rows, n_cols = int(shape[0]), int(shape[1])
        # Each size first: the product of two sizes of a million digits takes seconds
        if max(n_rows, n_cols) > MAX_ENTRIES or n_rows * n_cols > MAX_ENTRIES:
            raise ValueError(f'its shape {_short(shape)} has more than {MAX_ENTRIES} '
                             f'entries, more than any Planetoid matrix')
        return n_rows, n_cols


def _array(value: Any, name: str) -> np.ndarray:
    """The numpy array of an unpickled `_Array` (or of an array, for the tests)."""
    array = value.array if isinstance(value, _Array) else value
    if not isinstance(array, np.ndarray):
        raise ValueError(f'its {name} is {type(value).__name__}, not an array')
    return array


def _check_row_pointers(indptr: np.ndarray, n_rows: int, n_entries: int) -> None:
    """One pointer per row and one past the last, from 0 to `n_entries`, never going back:
    row $r$'s entries are `indptr[r]` up to `indptr[r + 1]`. Neighbours are compared, not
    subtracted: the difference of unsigned pointers is never negative."""
    if (indptr.shape != (n_rows + 1,) or indptr.dtype.kind not in 'iu'
            or indptr[0] != 0 or indptr[-1] != n_entries
            or (indptr[1:] < indptr[:-1]).any()):
        raise ValueError(f'its row pointers are not {n_rows + 1} integers growing from 0 '
                         f'to its {n_entries} entries')


def _short(value: Any, depth: int = 2) -> str:
    """
    What a file holds, as an error message shows it. A file past its checksum can make values
    whose `repr` is not a line of a message: a list nested deeper than Python's recursion limit
    (a `RecursionError` instead of the message), an integer of more digits than Python writes
    (a `ValueError`), or one list of thousands named thousands of times in another (the pickle's
    memo), a few bytes of the file for gigabytes of text. So a number or a string is shown
    whole only when short, a tuple or list by its first items, and anything else by its type.
    """
    if value is None or isinstance(value, (bool, float)):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else \
            f'an integer of {value.bit_length()} bits'
    if isinstance(value, (str, bytes)):
        return repr(value) if len(value) <= 40 else \
            f'a {type(value).__name__} of {len(value)} characters'
    if isinstance(value, (tuple, list)) and depth:
        items = [_short(item, depth - 1) for item in value[:4]]
        if len(value) > 4:
            items.append(f'... {len(value)} items')
        if isinstance(value, list):
            return f'[{", ".join(items)}]'
        return f'({", ".join(items)}{"," if len(value) == 1 else ""})'
    return f'a {type(value).__name__}'


class _DType:
    """
    A stand-in for `numpy.dtype`: the type of an array's numbers, from its code (`'i4'`, `'f8'`)
    and the byte order in its pickled state. numpy's `dtype.__setstate__` also takes flags from
    the file, which can declare a type of numbers to hold Python objects; an array of such a
    type (or of `object`) is filled from a list, which numpy reads past its end when the shape
    is longer: a crash, or the process's memory in the array. Only numbers are built here,
    and their flags are never read.
    """

    def __init__(self, code: Any, align: Any = False, copy: Any = True) -> None:
        self.dtype = np.dtype(code) if isinstance(code, str) else None
        if self.dtype is None or self.dtype.kind not in 'biuf':
            raise pickle.UnpicklingError(f'array type {_short(code)} is not a number '
                                         f'type')

    def __setstate__(self, state: Any) -> None:
        # `(version, byte order, subarray, names, fields, item size, alignment, flags)`
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if order not in ('<', '>', '=', '|'):
            raise pickle.UnpicklingError(f'array type with byte order {_short(order)}')
        if order in '<>':
            self.dtype = self.dtype.newbyteorder(order)


# The bytes that the arrays of the file being unpickled may still take (`_unpickle` sets it)
_array_bytes_left: contextvars.ContextVar[int] = contextvars.ContextVar(
    '_array_bytes_left', default=MAX_BYTES)


class _Array:
    """
    A stand-in for `numpy.ndarray`: numpy pickles an array as an empty one (`_reconstruct`),
    given `(version, shape, type, is_fortran, bytes)` by `ndarray.__setstate__`. Here the bytes
    become exactly as many numbers of the `_DType` as the shape holds; the array is `array`.
    """
    array = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise pickle.UnpicklingError('an array state of other than 5 parts')
        _, shape, dtype, fortran, data = state
        if not isinstance(dtype, _DType):
            raise pickle.UnpicklingError(f'an array of {type(dtype).__name__}, '
                                         f'not a number type')
        # A `str` of Python 2, which the unpickler decodes as Latin-1
        if isinstance(data, str):
            data = data.encode('latin1')
        # One or two sizes, of no more entries than a matrix may have: the product of a
        # million sizes of thousands of digits each, a few bytes of the file each (the
        # pickle's memo), would take hours and gigabytes.
        if not (isinstance(shape, tuple) and isinstance(data, bytes) and len(shape) <= 2
                and all(type(n) is int and 0 <= n <= MAX_ENTRIES for n in shape)
                and math.prod(shape) * dtype.dtype.itemsize == len(data)):
            raise pickle.UnpicklingError(f'an array of shape {_short(shape)} and type '
                                         f'{dtype.dtype} that its data does not fill')
        # Every array is a copy of its bytes. A file names the bytes of its arrays once each,
        # but could name the same bytes again and again through the pickle's memo, a few
        # bytes of the file for another copy: so the arrays of a file may hold no more bytes
        # together than the file has.
        left = _array_bytes_left.get() - len(data)
        if left < 0:
            raise pickle.UnpicklingError('arrays of more bytes than the file has')
        _array_bytes_left.set(left)
        self.array = np.frombuffer(data, dtype.dtype).reshape(
            shape, order='F' if fortran else 'C').copy()


def _reconstruct(subtype: type, shape: Any, dtype: Any) -> _Array:
    """numpy pickles an array as an empty array, filled in afterwards (`_Array.__setstate__`)."""
    if subtype is not _Array:
        raise pickle.UnpicklingError(f'array subtype {_short(subtype)} is not allowed')
    return _Array()


def _list(*args: Any) -> list:
    """
    Python's `list` as the graph file names it: only the default factory of its `defaultdict`,
    never called (the lists are the pickle's own). Called, `list` copies whatever it is given:
    one list of a million entries written once and copied by every call, five bytes of the
    file each, would make terabytes.
    """
    raise pickle.UnpicklingError('list is only the default factory of the graph')


def _defaultdict(*args: Any) -> dict:
    """
    The graph is pickled as `defaultdict(list)` filled with its items afterwards; a plain dict
    takes them. `defaultdict` also copies a dict or pairs it is given, which a file could name
    again and again as it could a list for `list`. And a `defaultdict` is freed without the
    guard of a dict against nesting: one of thousands nested in each other, a few bytes of the
    file each, overflows the C stack when freed, a crash of the process.
    """
    if len(args) != 1 or args[0] is not _list:
        raise pickle.UnpicklingError('a defaultdict other than defaultdict(list)')
    return {}


# The only globals a file may reference, as written by Python 2, and what they become.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ('scipy.sparse.csr', 'csr_matrix'): _CsrMatrix,
    ('numpy.core.multiarray', '_reconstruct'): _reconstruct,
    ('numpy', 'ndarray'): _Array,
    ('numpy', 'dtype'): _DType,
    ('collections', 'defaultdict'): _defaultdict,
    ('__builtin__', 'list'): _list,
}


def _no_state(state: Any) -> None:
    raise pickle.UnpicklingError('a global given a state')


# BUILD gives an object the state after it, by its `__setstate__`, or else by setting its
# attributes: those of a function above (`__defaults__`, `__qualname__`, any other), which
# would stay for every later file of the process. (On a class above it calls the class's
# `__setstate__` without an instance, an error.)
for _function in (_reconstruct, _list, _defaultdict):
    setattr(_function, '__setstate__', _no_state)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global not in `_ALLOWED_GLOBALS`."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f'forbidden global {module}.{name}')
        return _ALLOWED_GLOBALS[(module, name)]


# Deeper than any object of the files nests: a sparse matrix's attributes hold arrays that hold
# their type and its state, seven levels as counted here
MAX_DEPTH = 32
# The opcodes that name an object in the memo, or name it again
_MEMO_PUT = {'PUT', 'BINPUT', 'LONG_BINPUT', 'MEMOIZE'}
_MEMO_GET = {'GET', 'BINGET', 'LONG_BINGET'}
# The opcodes that fill the object under the others they take, rather than make a new one
_FILLING = {'APPEND', 'APPENDS', 'SETITEM', 'SETITEMS', 'ADDITEMS', 'BUILD'}


def _check_nesting(content: bytes) -> None:
    """
    Refuse a pickle whose objects nest deeper than `MAX_DEPTH`, or that names a memo index
    past its bytes. Python hashes a tuple by hashing its items, in C and without a guard
    against depth: a dictionary key of tuples nested a million deep, one byte of the file
    each, overflows the C stack, a crash of the process that no unpickler's hook can stop.
    So the opcodes are read first, and the stack of the unpickler followed with the depth of
    each object: an object made from others is one deeper than the deepest of them. A list or
    dict filled after it went into another is counted at what it was then; only tuples and
    frozen sets hash their items, and neither changes.
    """
    stack: list[int | None] = []   # the depth of each object, `None` for a mark
    memo: dict[Any, int] = {}
    for op, arg, _ in pickletools.genops(content):
        if op.name in _MEMO_PUT:
            if stack[-1] is None:
                raise pickle.UnpicklingError('a mark put in the memo')
            index = len(memo) if op.name == 'MEMOIZE' else arg
            # Python's unpickler makes room for every index up to the one named, 8 bytes
            # each: an index of four billion, 5 bytes of the file, takes 64 GB. A pickler
            # numbers its objects from 0, so no index is past the bytes of the file.
            if index >= len(content):
                raise pickle.UnpicklingError(f'memo index {_short(index)} past the '
                                             f'{len(content)} bytes of the file')
            memo[index] = stack[-1]
        elif op.name in _MEMO_GET:
            stack.append(memo[arg])
        elif op.name == 'DUP':
            stack.append(stack[-1])
        elif op.name == 'MARK':
            stack.append(None)
        else:
            # The objects it takes, up to the mark if it takes the items after one
            taken: list[int | None] = []
            before = op.stack_before
            if pickletools.markobject in before:
                while (depth := stack.pop()) is not None:
                    taken.append(depth)
                before = before[:before.index(pickletools.markobject)]
            taken += [stack.pop() for _ in before]
            if None in taken:
                raise pickle.UnpicklingError(f'{op.name} takes a mark')
            depth = 1 + max(taken, default=-1)
            if op.name in _FILLING:
                # The object filled, taken last, is as deep as it was or than its new parts
                depth = max(taken[-1], 1 + max(taken[:-1], default=-1))
            if depth > MAX_DEPTH:
                raise pickle.UnpicklingError(f'objects nested more than {MAX_DEPTH} deep')
            stack += [depth] * len(op.stack_after)


def _unpickle(path: Path, content: bytes) -> Any:
    """Unpickle the `content` of one Python 2 file; every failure becomes a `DataFileError`
    naming the file."""
    budget = _array_bytes_left.set(len(content))
    try:
        _check_nesting(content)
        return _RestrictedUnpickler(io.BytesIO(content), encoding='latin1').load()
    except Exception as err:
        raise DataFileError(f'{path}: not a valid Planetoid pickle: {err}') from err
    finally:
        _array_bytes_left.reset(budget)


# ## Reading the files


def _read_matrix(path: Path, content: bytes) -> np.ndarray:
    """A dense numeric matrix from a pickled sparse matrix (features) or array (one-hot labels)."""
    obj = _unpickle(path, content)
    try:
        matrix = obj.to_dense() if isinstance(obj, _CsrMatrix) else \
            obj.array if isinstance(obj, _Array) else obj
    except Exception as err:
        raise DataFileError(f'{path}: not a valid sparse matrix: {err}') from err
    if (not isinstance(matrix, np.ndarray) or matrix.ndim != 2
            or matrix.dtype.kind not in 'biuf'):
        raise DataFileError(f'{path}: expected a numeric 2-d matrix, '
                            f'got {type(matrix).__name__}')
    if 0 in matrix.shape:
        raise DataFileError(f'{path}: an empty matrix, of shape {matrix.shape}')
    # Checked on the matrix, not its entries: duplicate entries can add up to infinity;
    # and in `float32`, the features' type, where a larger `float64` becomes infinity
    with np.errstate(over='ignore', invalid='ignore'):
        finite = np.isfinite(matrix.astype(np.float32)).all()
    if not finite:
        raise DataFileError(f'{path}: has values that are not finite (NaN or infinity) '
                            f'in float32')
    return matrix


def _read_graph(path: Path, content: bytes) -> dict[int, list[int]]:
    """The adjacency lists: node -> list of neighbours."""
    graph = _unpickle(path, content)
    if (not isinstance(graph, dict)
            or not all(isinstance(v, list) for v in graph.values())):
        raise DataFileError(f'{path}: expected a dict of adjacency lists, '
                            f'got {type(graph).__name__}')
    # Every neighbour takes a byte of the file at least, unless the lists are one list,
    # written once and named again (the pickle's memo): a few kilobytes of them would make
    # billions of edges.
    n_neighbours = sum(len(neighbours) for neighbours in graph.values())
    if n_neighbours > len(content):
        raise DataFileError(f'{path}: {n_neighbours} neighbours in {len(content)} bytes; '
                            f'its adjacency lists share their entries')
    return graph


def _read_test_index(path: Path, content: bytes) -> np.ndarray:
    """The test node indices, one integer per line."""
    try:
        index = np.array([int(line) for line in content.decode('ascii').split()],
                         dtype=np.int64)
    except (ValueError, OverflowError) as err:
        raise DataFileError(f'{path}: expected one integer per line: {err}') from err
    if not len(index):
        raise DataFileError(f'{path}: expected one integer per line, found none')
    return index


# ## Building the graph


def _assemble(name: str, files: dict[str, tuple[Path, bytes]]) -> Planetoid:
    """Put the pieces together in the node numbering and split of the Planetoid paper (and PyG)."""
    # `x` is the first rows of `allx` (its checksum was verified, its content is not needed);
    # `y` tells how many rows that is.
    n_train = _read_matrix(*files['y']).shape[0]
    test_index = torch.from_numpy(_read_test_index(*files['test.index']))
    # Nodes are numbered `allx` first, then up to the largest test index.
    n_nodes = int(test_index.max()) + 1
    x = _place_rows(files, 'allx', 'tx', test_index, n_nodes)
    one_hot = _place_rows(files, 'ally', 'ty', test_index, n_nodes)
    # The training and validation nodes are nodes of `allx`, which the test nodes follow:
    # more of them would be test nodes too, or no nodes at all.
    n_all = int(test_index.min())
    if n_train + 500 > n_all:
        raise DataFileError(f'{files["y"][0]}: {n_train} training nodes and 500 '
                            f'validation nodes, more than the {n_all} nodes before the '
                            f'test nodes')
    # The class of each node: a node without a label (an all-zero row) gets class 0, as in
    # PyG. The first `len(y)` nodes are the training nodes, the next 500 the validation nodes.
    return Planetoid(
        name=name,
        x=x,
        y=one_hot.argmax(dim=1),
        edge_index=_edge_index(_read_graph(*files['graph']), n_nodes),
        train_mask=_mask(torch.arange(n_train), n_nodes),
        val_mask=_mask(torch.arange(n_train, n_train + 500), n_nodes),
        test_mask=_mask(test_index, n_nodes),
        num_classes=one_hot.shape[1],
    )


def _place_rows(files: dict[str, tuple[Path, bytes]], all_kind: str, test_kind: str,
                test_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    """
    `[n_nodes, d]`: the rows of `allx` (or `ally`) for the first nodes, row $k$ of `tx` (or `ty`)
    for node `test_index[k]`, and zeros for the nodes in neither (CiteSeer's isolated papers).
    The files are checked to fit together before the matrix of all nodes is made.
    """
    all_rows, test_rows = _read_matrix(*files[all_kind]), _read_matrix(*files[test_kind])
    all_name, index_path = files[all_kind][0].name, files['test.index'][0]
    (n_all, width), n_test = all_rows.shape, len(test_index)
    # The test nodes must come right after `allx`; PyG's numbering assumes the same.
    if int(test_index.min()) != n_all or len(test_index.unique()) != n_test:
        raise DataFileError(f'{index_path}: the test indices must be distinct and start '
                            f'at {n_all}, after the rows of {all_name}')
    if test_rows.shape != (n_test, width):
        raise DataFileError(f'{files[test_kind][0]}: {test_rows.shape[0]} rows of '
                            f'{test_rows.shape[1]} for the {n_test} test nodes of '
                            f'{index_path.name} and the {width} columns of {all_name}')
    # Never larger than the largest matrix of the files, whatever the largest test index
    if n_nodes * width > MAX_ENTRIES:
        raise DataFileError(f'{index_path}: a test index of {n_nodes - 1} makes '
                            f'{n_nodes} nodes of {width} columns, more than '
                            f'{MAX_ENTRIES} entries, more than any Planetoid graph')
    out = torch.zeros(n_nodes, width, dtype=torch.float32)
    out[:all_rows.shape[0]] = torch.from_numpy(all_rows.astype(np.float32))
    out[test_index] = torch.from_numpy(test_rows.astype(np.float32))
    return out


def _edge_index(graph: dict[int, list[int]], n_nodes: int) -> torch.Tensor:
    r"""
    `[2, n_edges]`: every adjacency-list entry in both directions, without self loops and
    duplicates, sorted by target $i$ and then source $j$ (PyG's `coalesce(sort_by_row=False)`).
    Every node is one of $0, \dots, N - 1$: one outside would become another edge.
    """
    for node in (*graph, *(j for neighbours in graph.values() for j in neighbours)):
        # `True` is an `int` to Python, not a node number to the file's writer
        if isinstance(node, bool) or not isinstance(node, (int, np.integer)):
            raise DataFileError(f'the graph has {_short(node)}, which is not a node '
                                f'number')
        if not 0 <= node < n_nodes:
            raise DataFileError(f'the graph has node {_short(node)}, out of range for '
                                f'{n_nodes} nodes')
    source = torch.tensor([node for node, neighbours in graph.items()
                           for _ in neighbours], dtype=torch.long)
    target = torch.tensor([j for neighbours in graph.values() for j in neighbours],
                          dtype=torch.long)
    # Both directions: citations are undirected. (The files already list both.)
    source, target = torch.cat([source, target]), torch.cat([target, source])
    # Drop self loops; the layers add them back when asked to.
    keep = source != target
    # One key $i N + j$ per edge; `unique` sorts the keys and drops duplicates.
    key = torch.unique(target[keep] * n_nodes + source[keep])
    return torch.stack([key % n_nodes, key // n_nodes])


def _mask(index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    mask = torch.zeros(n_nodes, dtype=torch.bool)
    mask[index] = True
    return mask
