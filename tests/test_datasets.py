"""Tests for `labml_gat.datasets`: counts, equality with PyG, downloading, and untrusted files."""

import errno
import fcntl
import functools
import hashlib
import pickle
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import PLANETOID, REPO, needs_planetoid
from labml_gat import datasets
from labml_gat.datasets import DataFileError, FILE_KINDS, MissingDataError, Planetoid, load_planetoid

DATA = PLANETOID
# The real rule, before the tests point it elsewhere
SHARED_DIR = datasets.shared_dir
needs_data = needs_planetoid


@pytest.fixture(autouse=True)
def _no_env_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test chooses its folder explicitly; requests to the local server never go through a proxy."""
    monkeypatch.delenv('LABML_GAT_DATA', raising=False)
    monkeypatch.setattr(datasets, 'shared_dir', lambda: Path('/nonexistent/shared/data/planetoid'))
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    monkeypatch.setenv('NO_PROXY', '127.0.0.1')


@pytest.fixture(scope='module')
def cora() -> Planetoid:
    return load_planetoid('cora', data_dir=DATA)


@pytest.fixture(scope='module')
def citeseer() -> Planetoid:
    return load_planetoid('CiteSeer', data_dir=DATA)


def _copy_cora(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for kind in FILE_KINDS:
        shutil.copy(DATA / f'ind.cora.{kind}', folder)
    return folder


def _sparse_pickle(shape: tuple, indptr: list, indices: list, data: list,
                   index_type: type = np.int32, data_type: type = np.float32) -> bytes:
    """A sparse matrix pickled as the Planetoid files have them (a `scipy.sparse.csr.csr_matrix`
    whose attributes are numpy arrays), of whatever shape and entries a test gives it."""
    state = {'_shape': shape, 'indptr': np.array(indptr, dtype=index_type),
             'indices': np.array(indices, dtype=index_type),
             'data': np.array(data, dtype=data_type)}
    body = _numpy_pickle(state)
    # The class, made empty (NEWOBJ) and given the state (BUILD), as scipy pickles it
    return b'\x80\x02cscipy.sparse.csr\ncsr_matrix\n)\x81' + body[2:-1] + b'b.'


def _numpy_pickle(obj: object) -> bytes:
    """`obj` pickled with its arrays under the name of numpy's module that Python 2's numpy
    wrote (numpy 2 writes `numpy._core`)."""
    return pickle.dumps(obj, protocol=3).replace(b'numpy._core.', b'numpy.core.')


def _cora_with(folder: Path, kind: str, content: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Cora's file `kind` in `folder` replaced by `content`, with its SHA-256 in the table, as
    for files of one's own: what it holds is read."""
    (folder / f'ind.cora.{kind}').write_bytes(content)
    monkeypatch.setitem(datasets.SHA256['cora'], kind, hashlib.sha256(content).hexdigest())


def _evil_pickle(marker: Path) -> bytes:
    """A protocol-0 pickle that calls `os.system('touch <marker>')` when loaded."""
    return b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."


# ## Counts and split


@needs_data
def test_cora_counts(cora: Planetoid) -> None:
    assert (cora.name, cora.num_nodes, cora.num_features, cora.num_classes) == ('cora', 2708, 1433, 7)
    assert cora.x.dtype == torch.float32 and cora.y.dtype == torch.int64 and cora.edge_index.dtype == torch.int64
    assert cora.edge_index.shape == (2, 10556)
    assert cora.edge_index_with_self_loops().shape == (2, 13264)
    assert (int(cora.train_mask.sum()), int(cora.val_mask.sum()), int(cora.test_mask.sum())) == (140, 500, 1000)
    assert int(cora.y.max()) == 6


@needs_data
def test_citeseer_counts(citeseer: Planetoid) -> None:
    assert (citeseer.num_nodes, citeseer.num_features, citeseer.num_classes) == (3327, 3703, 6)
    assert citeseer.edge_index.shape == (2, 9104)
    masks = citeseer.train_mask, citeseer.val_mask, citeseer.test_mask
    assert [int(m.sum()) for m in masks] == [120, 500, 1000]
    # The 15 isolated papers that fill the gaps in the test indices: no features, in no mask.
    featureless = citeseer.x.sum(dim=1) == 0
    assert int(featureless.sum()) == 15
    assert not (featureless & (masks[0] | masks[1] | masks[2])).any()


@needs_data
@pytest.mark.parametrize('name', ['cora', 'citeseer'])
def test_split(name: str, cora: Planetoid, citeseer: Planetoid) -> None:
    graph = {'cora': cora, 'citeseer': citeseer}[name]
    n_train = int(graph.train_mask.sum())
    # Training nodes are the first ones, validation the next 500, and the sets are disjoint.
    assert graph.train_mask[:n_train].all() and graph.val_mask[n_train:n_train + 500].all()
    total = graph.train_mask.int() + graph.val_mask.int() + graph.test_mask.int()
    assert int(total.max()) == 1
    # Every class has 20 training nodes.
    assert torch.bincount(graph.y[graph.train_mask]).tolist() == [20] * graph.num_classes


# ## Graph structure


@needs_data
@pytest.mark.parametrize('name', ['cora', 'citeseer'])
def test_edges(name: str, cora: Planetoid, citeseer: Planetoid) -> None:
    graph = {'cora': cora, 'citeseer': citeseer}[name]
    source, target = graph.edge_index
    n = graph.num_nodes
    assert (source != target).all()
    # Sorted by target then source, hence no duplicates.
    key = target * n + source
    assert (key[1:] > key[:-1]).all()
    # Undirected: the reversed edges are the same set.
    assert torch.equal(torch.sort(source * n + target).values, key)


@needs_data
def test_adjacency_convention(cora: Planetoid) -> None:
    adj = cora.adjacency(self_loops=False)
    assert adj.shape == (2708, 2708) and adj.dtype == torch.bool
    assert int(adj.sum()) == 10556 and not adj.diagonal().any()
    # Edge column [j, i] (source j, target i) means i attends to j: adj[i, j].
    j, i = cora.edge_index[:, 0]
    assert adj[i, j]
    assert int(cora.adjacency().sum()) == 13264 and cora.adjacency().diagonal().all()
    # The dense and the edge-list forms with self loops agree.
    with_loops = cora.edge_index_with_self_loops()
    dense = torch.zeros(2708, 2708, dtype=torch.bool)
    dense[with_loops[1], with_loops[0]] = True
    assert torch.equal(dense, cora.adjacency())
    assert torch.equal(with_loops[:, -2708:], torch.arange(2708).expand(2, -1))


# ## Features


@needs_data
def test_features_row_normalized(citeseer: Planetoid) -> None:
    raw = load_planetoid('citeseer', data_dir=DATA, normalize=False).x
    assert set(raw.unique().tolist()) == {0.0, 1.0}
    row_sum = citeseer.x.sum(dim=1)
    nonzero = raw.sum(dim=1) > 0
    torch.testing.assert_close(row_sum[nonzero], torch.ones(int(nonzero.sum())))
    assert (row_sum[~nonzero] == 0).all() and not citeseer.x.isnan().any()
    torch.testing.assert_close(citeseer.x[nonzero], raw[nonzero] / raw[nonzero].sum(dim=1, keepdim=True))


def test_row_normalize_zero_row() -> None:
    x = torch.tensor([[1.0, 3.0], [0.0, 0.0]])
    assert torch.equal(datasets.row_normalize(x), torch.tensor([[0.25, 0.75], [0.0, 0.0]]))


def test_sparse_stand_in_matches_scipy() -> None:
    scipy_sparse = pytest.importorskip('scipy.sparse')
    # Rows 0 and 2 have entries, row 1 is empty, and (2, 1) appears twice (duplicates add up).
    indptr, indices, data = np.array([0, 2, 2, 5]), np.array([0, 3, 1, 1, 2]), np.arange(1.0, 6.0)
    matrix = datasets._CsrMatrix()
    matrix.__setstate__({'_shape': (3, 4), 'indptr': indptr, 'indices': indices, 'data': data})
    expected = scipy_sparse.csr_matrix((data, indices, indptr), shape=(3, 4)).toarray()
    assert np.array_equal(matrix.to_dense(), expected)


# ## Equality with PyG


@needs_data
@pytest.mark.parametrize('name, prefix', [('cora', 'Cora'), ('citeseer', 'CiteSeer')])
def test_matches_pyg(name: str, prefix: str, cora: Planetoid, citeseer: Planetoid) -> None:
    planetoid = pytest.importorskip('torch_geometric.io.planetoid')
    from torch_geometric.transforms import NormalizeFeatures

    graph = {'cora': cora, 'citeseer': citeseer}[name]
    ref = NormalizeFeatures()(planetoid.read_planetoid_data(str(DATA), prefix))
    assert torch.equal(graph.x, ref.x)
    assert torch.equal(graph.y, ref.y)
    assert torch.equal(graph.edge_index, ref.edge_index)
    for mask in ('train_mask', 'val_mask', 'test_mask'):
        assert torch.equal(getattr(graph, mask), getattr(ref, mask)), mask


# ## Finding the files


def test_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"'pubmed'.*cora, citeseer"):
        load_planetoid('pubmed')
    with pytest.raises(ValueError, match='known'):
        datasets.download_planetoid('cora2')


@needs_data
def test_env_var_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv('LABML_GAT_DATA', str(_copy_cora(tmp_path / 'data')))
    # The variable comes before the shared folder beside the clone, here one without the files
    (tmp_path / 'shared').mkdir()
    monkeypatch.setattr(datasets, 'shared_dir', lambda: tmp_path / 'shared')
    assert load_planetoid('cora').num_nodes == 2708


@needs_data
@pytest.mark.parametrize('via_env', [False, True])
def test_missing_files_in_given_folder(via_env: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    folder = _copy_cora(tmp_path / 'data')
    (folder / 'ind.cora.graph').unlink()
    (folder / 'ind.cora.ty').unlink()
    if via_env:
        monkeypatch.setenv('LABML_GAT_DATA', str(folder))
    with pytest.raises(MissingDataError) as err:
        load_planetoid('cora', data_dir=None if via_env else folder)
    message = str(err.value)
    # A `FileNotFoundError` still, and one line for the command line
    assert isinstance(err.value, FileNotFoundError) and '\n' not in message
    # It names where the folder came from, and the advice is about that
    assert str(folder) in message and ('LABML_GAT_DATA' if via_env else '--data-dir') in message
    assert 'ind.cora.ty' in message and 'ind.cora.graph' in message and 'ind.cora.x,' not in message
    # A folder given by the user is never written to.
    assert len(list(folder.iterdir())) == len(FILE_KINDS) - 2


def test_missing_files_without_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, 'cache_dir', lambda: tmp_path / 'cache')
    with pytest.raises(MissingDataError, match='download cache') as err:
        load_planetoid('citeseer', download=False)
    assert all(f'ind.citeseer.{kind}' in str(err.value) for kind in FILE_KINDS)
    assert str(tmp_path / 'cache') in str(err.value) and not (tmp_path / 'cache').exists()


@needs_data
def test_the_advice_fits_where_the_folder_came_from(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """--data-dir wins over LABML_GAT_DATA: the message speaks of --data-dir, and setting
    LABML_GAT_DATA, which would change nothing, is not suggested."""
    monkeypatch.setenv('LABML_GAT_DATA', str(_copy_cora(tmp_path / 'good')))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(MissingDataError) as err:
        load_planetoid('cora', data_dir=tmp_path / 'empty')
    message = str(err.value)
    assert '--data-dir' in message and 'LABML_GAT_DATA' not in message
    assert '\n' not in message


@pytest.mark.parametrize('what', ['a file', 'nothing'])
def test_labml_gat_data_that_is_not_a_folder(what: str, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    given = tmp_path / 'data'
    if what == 'a file':
        given.write_text('')
    monkeypatch.setenv('LABML_GAT_DATA', str(given))
    with pytest.raises(MissingDataError, match='is not a folder') as err:
        load_planetoid('cora')
    # Said once, not as eight missing files
    message = str(err.value)
    assert str(given) in message and 'LABML_GAT_DATA' in message and 'ind.cora.x' not in message


def test_an_empty_data_dir_is_not_the_current_folder(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.chdir(_copy_cora(tmp_path / 'here') if DATA.is_dir() else tmp_path)
    with pytest.raises(MissingDataError, match='empty'):
        load_planetoid('cora', data_dir='')


@needs_data
@pytest.mark.parametrize('unreadable', ['file', 'folder'])
def test_an_unreadable_file_or_folder_is_a_data_error(unreadable: str,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """Root reads everything whatever its mode, so the refusal is the system's answer,
    made up: to open the file, or to look into the folder."""
    folder = _copy_cora(tmp_path / 'data')
    refused = folder / 'ind.cora.tx' if unreadable == 'file' else folder

    def refuse(path: Path) -> None:
        if path == refused or (unreadable == 'folder' and path.parent == refused):
            raise PermissionError(13, 'Permission denied', str(path))

    real_open, real_stat = open, Path.stat
    monkeypatch.setattr(datasets, 'open', lambda path, *args, **kwargs: refuse(Path(path))
                        or real_open(path, *args, **kwargs), raising=False)
    monkeypatch.setattr(Path, 'stat', lambda path, **kwargs: refuse(path) or real_stat(path, **kwargs))
    with pytest.raises(DataFileError, match='cannot read') as err:
        load_planetoid('cora', data_dir=folder)
    assert str(refused) in str(err.value) and '\n' not in str(err.value)


@needs_data
@pytest.mark.parametrize('what', ['folder', 'FIFO', 'device'])
def test_something_else_where_a_file_should_be(what: str, tmp_path: Path) -> None:
    """Said as what it is, not as a missing file; and never downloaded over."""
    folder = _copy_cora(tmp_path / 'data')
    path = folder / 'ind.cora.tx'
    path.unlink()
    {'folder': path.mkdir, 'FIFO': lambda: os.mkfifo(path),
     'device': lambda: path.symlink_to(os.devnull)}[what]()
    with pytest.raises(DataFileError, match='not a regular file') as err:
        load_planetoid('cora', data_dir=folder)
    assert str(path) in str(err.value) and '\n' not in str(err.value)
    with pytest.raises(DataFileError, match='not a regular file'):
        datasets.download_planetoid('cora', folder, base_url=f'http://127.0.0.1:{_closed_port()}')


@needs_data
def test_a_link_to_a_missing_file(tmp_path: Path) -> None:
    """A link whose file is missing is there to see in the folder: it is said as a link, with
    where it points, not as a missing file."""
    folder = _copy_cora(tmp_path / 'data')
    link = folder / 'ind.cora.tx'
    link.unlink()
    link.symlink_to(tmp_path / 'moved' / 'ind.cora.tx')
    with pytest.raises(DataFileError, match='a link to') as err:
        load_planetoid('cora', data_dir=folder)
    assert str(link) in str(err.value) and str(tmp_path / 'moved') in str(err.value)
    assert '\n' not in str(err.value)


def test_a_fifo_put_in_place_after_the_check_is_not_waited_on(tmp_path: Path) -> None:
    """A file replaced by a FIFO between the check and the reading: opened to read, a FIFO
    waits for a writer, for ever."""
    fifo = tmp_path / 'ind.cora.tx'
    os.mkfifo(fifo)
    raised = []

    def read() -> None:
        with pytest.raises(DataFileError, match='not a regular file') as err:
            datasets._read_bytes(fifo)
        raised.append(err)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        open(fifo, 'wb').close()  # the writer it waits for
    assert raised


# ## Downloading


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and records the requested paths in `server.requested`."""

    def do_GET(self) -> None:
        self.server.requested.append(self.path)
        super().do_GET()

    def log_message(self, *args) -> None:
        pass


@contextmanager
def _serve(folder: Path) -> Iterator[tuple[str, list[str]]]:
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Handler, directory=str(folder)))
    server.requested = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}', server.requested
    finally:
        server.shutdown()
        server.server_close()


@needs_data
def test_download_into_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                             capfd: pytest.CaptureFixture, cora: Planetoid) -> None:
    cache = tmp_path / 'cache'
    monkeypatch.setattr(datasets, 'cache_dir', lambda: cache)
    with _serve(_copy_cora(tmp_path / 'remote')) as (url, requested):
        graph = load_planetoid('cora', base_url=url + '/')
        assert sorted(requested) == sorted(f'/ind.cora.{kind}' for kind in FILE_KINDS)
        # A second load reads the cache only.
        load_planetoid('cora', base_url=url)
        assert len(requested) == len(FILE_KINDS)
    assert 'Download ind.cora.allx' in capfd.readouterr().out
    # Exactly the eight verified files, no temporary file left behind.
    assert sorted(p.name for p in cache.iterdir()) == sorted(f'ind.cora.{kind}' for kind in FILE_KINDS)
    assert all((cache / p.name).read_bytes() == p.read_bytes() for p in DATA.glob('ind.cora.*'))
    assert torch.equal(graph.x, cora.x) and torch.equal(graph.edge_index, cora.edge_index)


@needs_data
def test_download_wrong_file(tmp_path: Path) -> None:
    remote = _copy_cora(tmp_path / 'remote')
    (remote / 'ind.cora.tx').write_bytes((remote / 'ind.cora.allx').read_bytes())
    target = tmp_path / 'target'
    with _serve(remote) as (url, _):
        with pytest.raises(DataFileError, match=r'ind\.cora\.tx.*SHA-256') as err:
            datasets.download_planetoid('cora', target, base_url=url)
    # The files before it in FILE_KINDS arrived and are kept (a later run fetches only the
    # others); the bad one and everything after it did not, and no partial file is left
    assert sorted(p.name for p in target.iterdir()) == ['ind.cora.x', 'ind.cora.y']
    assert 'nothing was written' not in str(err.value)


def _closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_download_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(datasets, 'cache_dir', lambda: tmp_path / 'cache')
    url = f'http://127.0.0.1:{_closed_port()}'
    with pytest.raises(FileNotFoundError) as err:
        load_planetoid('cora', base_url=url)
    message = str(err.value)
    assert f'Could not download {url}/ind.cora.x' in message
    assert str(tmp_path / 'cache') in message and 'LABML_GAT_DATA' in message
    assert all(f'ind.cora.{kind}' in message for kind in FILE_KINDS)
    # The failed download leaves no empty folder behind
    assert not (tmp_path / 'cache').exists()


def test_a_failed_download_removes_only_the_folders_it_made(tmp_path: Path) -> None:
    url = f'http://127.0.0.1:{_closed_port()}'
    (tmp_path / 'kept').mkdir()
    with pytest.raises(MissingDataError):
        datasets.download_planetoid('cora', tmp_path / 'kept' / 'data' / 'planetoid', base_url=url)
    assert sorted(path.name for path in tmp_path.iterdir()) == ['kept']
    assert list((tmp_path / 'kept').iterdir()) == []


@pytest.mark.parametrize('obstacle', ['a file', 'no permission'])
def test_a_cache_folder_that_cannot_be_made(obstacle: str, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    """A file where the cache folder goes, or a parent folder that takes no new folder."""
    (tmp_path / 'data').write_text('mine')
    cache = tmp_path / 'data' / 'planetoid'
    if obstacle == 'no permission':
        (tmp_path / 'data').unlink()

        def refuse(path: Path, *args, **kwargs) -> None:
            raise PermissionError(13, 'Permission denied', str(path))
        monkeypatch.setattr(Path, 'mkdir', refuse)
    monkeypatch.setattr(datasets, 'cache_dir', lambda: cache)
    with pytest.raises(MissingDataError) as err:
        load_planetoid('cora', base_url=f'http://127.0.0.1:{_closed_port()}')
    message = str(err.value)
    assert str(cache) in message and '--data-dir' in message and 'LABML_GAT_DATA' in message
    assert '\n' not in message
    if obstacle == 'a file':
        assert (tmp_path / 'data').read_text() == 'mine'


@pytest.mark.parametrize('other', ['makes the folder', 'removes its folder', 'fills the folder'])
def test_a_download_beside_another_process(other: str, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    """
    Every process of a torchrun job downloads into the same fresh cache. Offline, each ends
    with the data error, and keeps out of the other's folders, whatever the other does at the
    worst moment: makes the cache folder just before this process does, removes the folder
    it made (its download failed) just before this one puts a file in it, or puts a file into
    the folder this one made just before this one removes it.
    """
    outer, cache = tmp_path / 'cache', tmp_path / 'cache' / 'planetoid'
    monkeypatch.setattr(datasets, 'cache_dir', lambda: cache)
    real_mkdir, real_rmdir, real_new_part = Path.mkdir, Path.rmdir, datasets._new_part
    others = tmp_path / 'cache' / 'planetoid' / '.the other process'

    def mkdir(path: Path, *args, **kwargs) -> None:
        if other == 'makes the folder' and path == outer and not outer.exists():
            real_mkdir(path)
        real_mkdir(path, *args, **kwargs)

    def new_part(*args, **kwargs):
        if other == 'removes its folder' and not others.exists():
            real_rmdir(cache)
            others.touch()  # (outside the folder: only marks that it happened once)
        return real_new_part(*args, **kwargs)

    def rmdir(path: Path) -> None:
        if other == 'fills the folder' and path == cache:
            others.touch()
        real_rmdir(path)

    if other == 'removes its folder':
        others = tmp_path / '.the other process'
        real_mkdir(cache, parents=True)
    monkeypatch.setattr(Path, 'mkdir', mkdir)
    monkeypatch.setattr(Path, 'rmdir', rmdir)
    monkeypatch.setattr(datasets, '_new_part', new_part)
    with pytest.raises(MissingDataError, match='Could not download'):
        load_planetoid('cora', base_url=f'http://127.0.0.1:{_closed_port()}')
    # The other process's folder and file are still there; this one's are gone
    if other == 'makes the folder':
        assert list(tmp_path.iterdir()) == [outer] and list(outer.iterdir()) == []
    elif other == 'removes its folder':
        assert sorted(p.name for p in tmp_path.iterdir()) == ['.the other process', 'cache']
        assert list(outer.iterdir()) == []
    else:
        assert list(cache.iterdir()) == [others]


@contextmanager
def _serve_replies(reply) -> Iterator[str]:
    """A server whose `reply(handler, body)` answers each request, `body` the file of
    `DATA` it names; the connection closes after each reply."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            try:
                reply(self, (DATA / self.path.lstrip('/')).read_bytes())
            except OSError:
                pass  # the client stopped reading

        def log_message(self, *args) -> None:
            pass
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_address[1]}'
    finally:
        server.shutdown()
        server.server_close()


def _headers(handler: http.server.BaseHTTPRequestHandler, length: str | None) -> None:
    handler.send_response(200)
    if length is not None:
        handler.send_header('Content-Length', length)
    handler.end_headers()


@needs_data
def test_a_content_length_that_is_not_a_size(tmp_path: Path) -> None:
    """A server's header is not trusted either: a length that is no number is no length."""
    def reply(handler, body: bytes) -> None:
        _headers(handler, 'abc')
        handler.wfile.write(body)
    with _serve_replies(reply) as url:
        datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
    assert all((tmp_path / 'data' / path.name).read_bytes() == path.read_bytes()
               for path in DATA.glob('ind.cora.*'))


@needs_data
@pytest.mark.parametrize('zeros', [False, True])
def test_a_content_length_of_thousands_of_digits(zeros: bool, tmp_path: Path) -> None:
    """Python converts no integer of more than 4300 digits: a length of more is larger than
    any Planetoid file, unless its digits are zeros in front of its size."""
    def reply(handler, body: bytes) -> None:
        _headers(handler, '0' * 5000 + str(len(body)) if zeros else '9' * 5000)
        handler.wfile.write(body)
    with _serve_replies(reply) as url:
        if zeros:
            datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
        else:
            with pytest.raises(MissingDataError, match=r'ind\.cora\.x \(more than \d+ bytes'):
                datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
    assert zeros == (tmp_path / 'data').exists()


@needs_data
def test_a_content_length_of_zeros_is_an_empty_file(tmp_path: Path) -> None:
    """`Content-Length: 000` announces an empty file: the download fails as for any wrong
    file, without a traceback."""
    def reply(handler, body: bytes) -> None:
        _headers(handler, '000')
        handler.wfile.write(body)
    with _serve_replies(reply) as url:
        with pytest.raises(DataFileError, match=r'ind\.cora\.x downloaded from .* has SHA-256'):
            datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)


@needs_data
def test_a_stale_part_that_is_not_a_file_is_left(tmp_path: Path) -> None:
    """Only regular `.part` files are a killed download's: a FIFO of that name is left."""
    folder = tmp_path / 'data'
    folder.mkdir()
    fifo = folder / '.ind.cora.x.fifo.part'
    os.mkfifo(fifo)
    old = time.time() - datasets.STALE_SECONDS - 10
    os.utime(fifo, (old, old))
    with _serve(DATA) as (url, _):
        datasets.download_planetoid('cora', folder, base_url=url)
    assert fifo.exists()


@needs_data
def test_a_part_file_replaced_while_it_is_locked_is_left(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """A stale `.part` file that another process replaces between its check and its removal:
    the file now under that name is not the one checked, and is left."""
    folder = tmp_path / 'data'
    folder.mkdir()
    part = folder / '.ind.cora.x.killed.part'
    part.write_bytes(b'part of a file')
    old = time.time() - datasets.STALE_SECONDS - 10
    os.utime(part, (old, old))
    real_flock = fcntl.flock

    def flock(fd, operation) -> None:
        if operation & fcntl.LOCK_NB:
            (folder / 'new').write_bytes(b'a new download')
            os.replace(folder / 'new', part)
        real_flock(fd, operation)
    monkeypatch.setattr(datasets.fcntl, 'flock', flock)
    with _serve(DATA) as (url, _):
        datasets.download_planetoid('cora', folder, base_url=url)
    assert part.read_bytes() == b'a new download'


@needs_data
def test_a_download_holds_its_part_file_locked_until_it_has_its_name(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Renamed while still locked: another process never takes a finished file for a killed
    download's."""
    real_replace = os.replace
    locked = []

    def replace(source, target) -> None:
        with open(source, 'rb') as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked.append(False)
            except BlockingIOError:
                locked.append(True)
        real_replace(source, target)
    monkeypatch.setattr(datasets.os, 'replace', replace)
    with _serve(DATA) as (url, _):
        datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
    assert locked == [True] * len(FILE_KINDS)


@needs_data
@pytest.mark.parametrize('announced', [True, False])
def test_a_response_larger_than_any_planetoid_file(announced: bool,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    """Announced or not, no more than `MAX_BYTES` are received: a server that sends without
    end would fill the disk of the cache."""
    monkeypatch.setattr(datasets, 'MAX_BYTES', 1 << 20)

    def reply(handler, body: bytes) -> None:
        _headers(handler, str(16 << 20) if announced else None)
        for _ in range(16):
            handler.wfile.write(bytes(1 << 20))
    target = tmp_path / 'data'
    with _serve_replies(reply) as url:
        with pytest.raises(MissingDataError, match=r'ind\.cora\.x \(more than 1048576 bytes'):
            datasets.download_planetoid('cora', target, base_url=url)
    assert not target.exists()


@needs_data
def test_a_download_cut_short(tmp_path: Path) -> None:
    """A connection that ends before the announced length: said so, not a wrong file."""
    def reply(handler, body: bytes) -> None:
        _headers(handler, str(len(body)))
        handler.wfile.write(body[:len(body) // 2])
    with _serve_replies(reply) as url:
        with pytest.raises(MissingDataError, match=r'ind\.cora\.x \(the connection ended '
                                                   r'after 11059 of 22119 bytes\)'):
            datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
    assert not (tmp_path / 'data').exists()


@needs_data
def test_a_download_that_trickles_ends_at_its_deadline(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """A server that sends a byte now and then, each within the timeout of one read: the whole
    file has a deadline, and it ends the download then, not when the last byte comes."""
    monkeypatch.setattr(datasets, 'DOWNLOAD_SECONDS', 1)
    trickle = 20  # bytes, one every 0.25 s: 5 s

    def reply(handler, body: bytes) -> None:
        _headers(handler, str(len(body)))
        for byte in body[:trickle]:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            time.sleep(0.25)
        handler.wfile.write(body[trickle:])
    start = time.monotonic()
    with _serve_replies(reply) as url:
        with pytest.raises(MissingDataError, match=r'ind\.cora\.x \(not received within 1 s\)'):
            datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
    assert time.monotonic() - start < trickle * 0.25
    assert not (tmp_path / 'data').exists()


@needs_data
def test_a_full_disk_is_not_a_failed_download(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """The file was received but cannot be written: the advice is another folder, not to
    copy the files into the one that is full."""
    class Full:
        def __init__(self, fd: int) -> None:
            self.fd = fd

        def __enter__(self) -> 'Full':
            return self

        def __exit__(self, *args) -> None:
            os.close(self.fd)

        def fileno(self) -> int:
            return self.fd

        def write(self, data: bytes) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(datasets.os, 'fdopen', lambda fd, *args: Full(fd))
    with _serve(DATA) as (url, _):
        with pytest.raises(MissingDataError) as err:
            datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
    message = str(err.value)
    assert 'cannot write the downloaded files into' in message
    assert 'No space left on device' in message and 'Could not download' not in message
    assert not (tmp_path / 'data').exists()


@needs_data
def test_the_part_file_of_a_killed_download_is_removed_by_the_next(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    """A download killed (kill -9) leaves its `.part` file. The next download of the dataset
    removes it; but not the file of a download still going in another process (which holds it
    locked, as a download does while it writes), one just made, or another dataset's."""
    folder = tmp_path / 'data'
    folder.mkdir()
    killed, going, young, other = (folder / f'.ind.{file}.part' for file in
                                   ('cora.x.killed', 'cora.allx.going', 'cora.tx.young',
                                    'citeseer.x.killed'))
    for part in (killed, going, young, other):
        part.write_bytes(b'part of a file')
    old = time.time() - datasets.STALE_SECONDS - 10
    for part in (killed, going, other):
        os.utime(part, (old, old))
    real_fetch = datasets._fetch

    def fetch(url: str, out, path: Path) -> str:
        # Every download holds its own file locked
        mine, = (part for part in folder.glob(f'.{path.name}.*.part') if part not in (going, young))
        with open(mine, 'rb') as file, pytest.raises(BlockingIOError):
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return real_fetch(url, out, path)
    monkeypatch.setattr(datasets, '_fetch', fetch)
    with open(going, 'rb') as held, _serve(DATA) as (url, _):
        fcntl.flock(held, fcntl.LOCK_EX)
        datasets.download_planetoid('cora', folder, base_url=url)
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [going.name, young.name, other.name, *(f'ind.cora.{kind}' for kind in FILE_KINDS)])


@needs_data
def test_a_download_where_files_cannot_be_locked(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    """On a file system without locks (NFS without its lock service) a download still works,
    and removes no `.part` file: it cannot tell whether another process is writing it."""
    def no_locks(*args) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))
    monkeypatch.setattr(datasets.fcntl, 'flock', no_locks)
    part = tmp_path / 'data' / '.ind.cora.x.another.part'
    part.parent.mkdir()
    part.touch()
    old = time.time() - datasets.STALE_SECONDS - 10
    os.utime(part, (old, old))
    with _serve(DATA) as (url, _):
        datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
    assert sorted(path.name for path in part.parent.iterdir()) == sorted(
        [part.name, *(f'ind.cora.{kind}' for kind in FILE_KINDS)])


@needs_data
@pytest.mark.parametrize('mask', [0o022, 0o027])
def test_downloaded_files_are_as_readable_as_the_umask_allows(mask: int,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    """A folder filled for others (given to download_planetoid, then to them with
    LABML_GAT_DATA) has files they can read, not files only their downloader reads. The
    umask is never changed, not even for an instant: it is the whole process's, and a file
    another thread made then would have the wrong mode."""
    real_umask = os.umask
    before = real_umask(mask)
    try:
        monkeypatch.setattr(os, 'umask', lambda *args: pytest.fail('the umask was changed'))
        with _serve(DATA) as (url, _):
            datasets.download_planetoid('cora', tmp_path / 'data', base_url=url)
    finally:
        real_umask(before)
    assert {oct(path.stat().st_mode & 0o777) for path in (tmp_path / 'data').iterdir()} \
        == {oct(0o666 & ~mask)}


@needs_data
def test_the_shared_folder_beside_the_clone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without data_dir or LABML_GAT_DATA, ../shared/data/planetoid beside the clone, as run.sh."""
    shared = _copy_cora(tmp_path / 'shared' / 'data' / 'planetoid')
    monkeypatch.setattr(datasets, 'shared_dir', lambda: shared)
    monkeypatch.setattr(datasets, 'cache_dir', lambda: tmp_path / 'cache')
    assert load_planetoid('cora').num_nodes == 2708
    # It is the user's folder: a missing file is an error, and nothing is downloaded
    with pytest.raises(MissingDataError, match=str(shared)):
        load_planetoid('citeseer')
    assert not (tmp_path / 'cache').exists()


def test_shared_folder_is_beside_the_repository() -> None:
    """The folder that run.sh and the tests' data finder name too."""
    from conftest import REPO
    assert SHARED_DIR() == REPO.parent / 'shared' / 'data' / 'planetoid'
    assert '../shared/data/planetoid' in (REPO / 'run.sh').read_text()


# ## Untrusted files


def test_forbidden_global_is_not_run(tmp_path: Path) -> None:
    marker = tmp_path / 'executed'
    path = tmp_path / 'ind.cora.graph'
    path.write_bytes(_evil_pickle(marker))
    with pytest.raises(DataFileError, match=r'ind\.cora\.graph.*forbidden global os\.system'):
        datasets._unpickle(path, path.read_bytes())
    assert not marker.exists()


@pytest.mark.parametrize('module, name', [('__builtin__', 'eval'), ('numpy', 'load'),
                                          ('collections', 'OrderedDict')])
def test_only_the_named_globals_of_an_allowed_module(tmp_path: Path, module: str, name: str) -> None:
    # A module the files use (Python 2's builtins, NumPy) is no licence for its other names
    marker = tmp_path / 'executed'
    path = tmp_path / 'ind.cora.graph'
    call = f"open({str(marker)!r}, 'w')" if name == 'eval' else 'x'
    path.write_bytes(f"c{module}\n{name}\n(S{call!r}\ntR.".encode())
    with pytest.raises(DataFileError, match=rf'forbidden global {module}\.{name}'):
        datasets._unpickle(path, path.read_bytes())
    assert not marker.exists()


def test_truncated_pickle(tmp_path: Path) -> None:
    path = tmp_path / 'ind.cora.graph'
    # The start of a dict of lists, cut off before its end.
    path.write_bytes(b'\x80\x02}q\x00(K\x00]q\x01')
    with pytest.raises(DataFileError, match=r'ind\.cora\.graph.*not a valid Planetoid pickle'):
        datasets._unpickle(path, path.read_bytes())


@needs_data
def test_tampered_file_rejected_before_unpickling(tmp_path: Path) -> None:
    folder = _copy_cora(tmp_path / 'data')
    marker = tmp_path / 'executed'
    (folder / 'ind.cora.graph').write_bytes(_evil_pickle(marker))
    with pytest.raises(DataFileError, match=r'ind\.cora\.graph.*SHA-256'):
        load_planetoid('cora', data_dir=folder)
    assert not marker.exists()


@needs_data
@pytest.mark.parametrize('kind', ['allx', 'test.index', 'x'])
def test_truncated_file(kind: str, tmp_path: Path) -> None:
    folder = _copy_cora(tmp_path / 'data')
    path = folder / f'ind.cora.{kind}'
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    with pytest.raises(DataFileError, match=rf'ind\.cora\.{kind}.*corrupt, truncated'):
        load_planetoid('cora', data_dir=folder)


@needs_data
@pytest.mark.parametrize('given', ['ind.cora.y', 'ind.citeseer.x'])
def test_a_planetoid_file_under_another_name(given: str, tmp_path: Path) -> None:
    """Files swapped or copied under the wrong name: the message says which file it is,
    not that it is corrupt."""
    folder = _copy_cora(tmp_path / 'data')
    shutil.copy(DATA / given, folder / 'ind.cora.x')
    with pytest.raises(DataFileError, match=rf'ind\.cora\.x: .*is the file {given}, not '
                                            rf'ind\.cora\.x\.') as err:
        load_planetoid('cora', data_dir=folder)
    assert 'corrupt' not in str(err.value)


@needs_data
def test_real_truncated_pickle_names_file(tmp_path: Path) -> None:
    path = tmp_path / 'ind.cora.allx'
    path.write_bytes((DATA / 'ind.cora.allx').read_bytes()[:1000])
    with pytest.raises(DataFileError, match=r'ind\.cora\.allx'):
        datasets._read_matrix(path, path.read_bytes())


@needs_data
def test_the_bytes_verified_are_the_bytes_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A file replaced after its checksum passed (by another process, in a folder others can
    write to) is not read: what is parsed is what was verified."""
    folder = _copy_cora(tmp_path / 'data')
    real_assemble = datasets._assemble

    def swap_then_assemble(*args, **kwargs):
        (folder / 'ind.cora.graph').write_bytes(pickle.dumps({0: [1], 1: [0]}, protocol=2))
        return real_assemble(*args, **kwargs)
    monkeypatch.setattr(datasets, '_assemble', swap_then_assemble)
    graph = load_planetoid('cora', data_dir=folder)
    assert graph.edge_index.shape == (2, 10556)


@needs_data
def test_a_file_larger_than_any_planetoid_file_is_not_read_whole(tmp_path: Path) -> None:
    folder = _copy_cora(tmp_path / 'data')
    with open(folder / 'ind.cora.allx', 'r+b') as f:
        f.truncate(datasets.MAX_BYTES + 1)
    with pytest.raises(DataFileError, match=r'ind\.cora\.allx.*larger than'):
        load_planetoid('cora', data_dir=folder)


@pytest.mark.parametrize('graph, why', [({0: [1], 1: [-1]}, 'out of range'),
                                        ({0: [1], 1: [2708]}, 'out of range'),
                                        ({0: [1], 1: ['0']}, 'not a node'),
                                        ({0: [True], 1: [False]}, 'not a node')])
def test_graph_nodes_out_of_range(graph: dict, why: str) -> None:
    """Never a silent wrong graph: a node outside 0..N-1 wrapped into another edge."""
    with pytest.raises(DataFileError, match=why):
        datasets._edge_index(graph, 2708)


def _nested(depth: int) -> list:
    nested: list = []
    for _ in range(depth):
        nested = [nested]
    return nested


@pytest.mark.parametrize('node, shown', [
    # Deeper than Python's recursion limit: its `repr` is a `RecursionError`
    (_nested(100_000), r'\[\[a list\]\]'),
    # More digits than Python writes: a `ValueError`
    (10 ** 5000, 'an integer of 16610 bits'),
    # One list named in another a thousand times: megabytes of text, gigabytes when larger
    ([list(range(1000))] * 1000,
     r'\[\[0, 1, 2, 3, \.\.\. 1000 items\], .* 1000 items\]'),
], ids=['deep', 'long', 'shared'])
def test_graph_nodes_shown_in_a_line(node: object, shown: str) -> None:
    """What a file holds is shown short in the message, whatever its `repr` would be."""
    with pytest.raises(DataFileError, match=rf'^the graph has (node )?{shown}, ') as err:
        datasets._edge_index({0: [node]}, 2708)
    assert len(str(err.value)) < 200


@pytest.mark.parametrize('content', [b'\xff\xfe', b'99999999999999999999', b''])
def test_test_index_that_is_not_node_numbers(content: bytes, tmp_path: Path) -> None:
    path = tmp_path / 'ind.cora.test.index'
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=r'ind\.cora\.test\.index'):
        datasets._read_test_index(path, content)


def test_a_sparse_matrix_pickled_as_the_files_have_it(tmp_path: Path) -> None:
    """The pickles the next tests damage are read as the files are, when sound."""
    path = tmp_path / 'ind.cora.allx'
    content = _sparse_pickle((2, 3), [0, 1, 3], [2, 0, 0], [1.0, 2.0, 0.5])
    assert np.array_equal(datasets._read_matrix(path, content), [[0, 0, 1], [2.5, 0, 0]])


@pytest.mark.parametrize('shape, indptr, indices, data, why', [
    # A shape far larger than any Planetoid matrix: refused from the shape, before its zeros
    ((1, 1 << 40), [0, 0], [], [], r'shape \(1, 1099511627776\) has more than'),
    ((1 << 14, 1 << 14), [0] * ((1 << 14) + 1), [], [], r'shape \(16384, 16384\) has more'),
    ((-1, 3), [0], [], [], r'shape \(-1, 3\) is not two sizes'),
    # Columns outside the shape: a negative one would count from the end, in another column
    ((2, 3), [0, 1, 2], [0, -1], [1.0, 1.0], 'column index -1 outside the 3 columns'),
    ((2, 3), [0, 1, 2], [0, 3], [1.0, 1.0], 'column index 3 outside the 3 columns'),
    # Rows: the row pointers start at 0 and never go back
    ((2, 3), [1, 1, 2], [0, 1], [1.0, 1.0], 'row pointers'),
    ((2, 3), [0, 2, 1], [0], [1.0], 'row pointers'),
    ((2, 3), [0, -1, 2], [0, 1], [1.0, 1.0], 'row pointers'),
    # Values that are no numbers, or add up to none
    ((2, 3), [0, 1, 2], [0, 1], [float('nan'), 1.0], 'not finite'),
    ((2, 3), [0, 1, 2], [0, 1], [float('-inf'), 1.0], 'not finite'),
    ((1, 1), [0, 2], [0, 0], [3e38, 3e38], 'not finite'),
])
def test_a_sparse_matrix_that_is_not_a_matrix(shape: tuple, indptr: list, indices: list,
                                             data: list, why: str, tmp_path: Path) -> None:
    """A file past its checksum (one of a table extended for other files) is still checked:
    never a matrix of terabytes of zeros, a value in another column, or NaN features."""
    path = tmp_path / 'ind.cora.allx'
    with pytest.raises(DataFileError, match=rf'^{tmp_path}/ind\.cora\.allx: .*{why}'):
        datasets._read_matrix(path, _sparse_pickle(shape, indptr, indices, data))


def test_values_beyond_float32_are_not_finite_features(tmp_path: Path) -> None:
    """A `float64` value past `float32`'s range would become an infinite feature."""
    content = _sparse_pickle((2, 3), [0, 1, 2], [0, 1], [1e300, 1.0], data_type=np.float64)
    with pytest.raises(DataFileError, match='not finite'):
        datasets._read_matrix(tmp_path / 'ind.cora.allx', content)


def test_unsigned_row_pointers_that_go_back(tmp_path: Path) -> None:
    """Their differences wrap around to four billion entries in a row, not below zero."""
    content = _sparse_pickle((2, 3), [0, 2, 1], [0], [1.0], index_type=np.uint32)
    with pytest.raises(DataFileError, match='row pointers'):
        datasets._read_matrix(tmp_path / 'ind.cora.allx', content)


def test_a_sparse_matrix_without_its_attributes(tmp_path: Path) -> None:
    content = b'\x80\x02cscipy.sparse.csr\ncsr_matrix\n)\x81}b.'
    with pytest.raises(DataFileError, match='expected the attributes _shape, data'):
        datasets._read_matrix(tmp_path / 'ind.cora.allx', content)


@needs_data
def test_a_file_of_ones_own_checksum_is_checked_too(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    """The SHA-256 table names the files that are read; a file added to it is not trusted."""
    folder = _copy_cora(tmp_path / 'data')
    _cora_with(folder, 'allx', _sparse_pickle((1, 1 << 40), [0, 0], [], []), monkeypatch)
    with pytest.raises(DataFileError, match=r'ind\.cora\.allx: .*has more than'):
        load_planetoid('cora', data_dir=folder)


def test_an_array_pickled_as_numpy_pickles_it(tmp_path: Path) -> None:
    """The stand-ins for numpy's arrays and types take the byte order and the order of the
    dimensions from the pickle, as numpy does."""
    labels = np.asfortranarray(np.array([[1, 0, 0], [0, 1, 0]], dtype='>i4'))
    content = _numpy_pickle(labels)
    read = datasets._read_matrix(tmp_path / 'ind.cora.ally', content)
    assert np.array_equal(read, labels) and read.dtype == labels.dtype



def _pickled_arrays(n_arrays: int, shape: bytes, data: bytes) -> bytes:
    """A list of `n_arrays` arrays of float64 of the pickled `shape` (a tuple), all of the
    same `data`, written once and named again through the pickle's memo."""
    dtype = (b'cnumpy\ndtype\n(U\x02f8K\x00K\x01tR(K\x03U\x01<NNNJ\xff\xff\xff\xff'
             b'J\xff\xff\xff\xffK\x00tb')
    state = b'(K\x01' + shape + dtype + b'\x89B' + len(data).to_bytes(4, 'little') + data
    return (b'\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nq\x02'
            b'K\x00\x85U\x01b\x87q\x03](h\x01h\x03R' + state + b'tq\x04b'
            + b'h\x01h\x03Rh\x04b' * (n_arrays - 1) + b'e.')


def test_arrays_of_the_same_bytes(tmp_path: Path) -> None:
    """Every array is a copy of its bytes: one array of 2 MB named a million times, a few
    bytes of the file each, would make terabytes."""
    path = tmp_path / 'ind.cora.ally'
    content = _pickled_arrays(2, b'K\x08\x85', bytes(64))
    assert len(datasets._unpickle(path, content)) == 2
    with pytest.raises(DataFileError, match='arrays of more bytes than the file has'):
        datasets._unpickle(path, _pickled_arrays(100, b'K\x08\x85', bytes(64)))


@pytest.mark.parametrize('shape, data', [
    # No entries, of a size no array has: numpy's error, and of sizes of a thousand digits
    # named many times, a product that takes longer the more of them there are
    (b'(\x8b\x09\x00\x00\x00' + b'\x7f' * 9 + b'K\x00t', b''),
    (b'(K\x01K\x01K\x01t', bytes(8)),
], ids=['no entries of a size no array has', 'three dimensions'])
def test_array_shapes_of_one_or_two_sizes(shape: bytes, data: bytes, tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match='that its data does not fill'):
        datasets._unpickle(tmp_path / 'ind.cora.ally', _pickled_arrays(1, shape, data))


class _PickledArray:
    """Pickles as numpy pickles an array: an empty one (`_reconstruct`), given `state` by
    `ndarray.__setstate__`, `(version, shape, dtype, is_fortran, data)`."""

    def __init__(self, state: tuple) -> None:
        self.state = state

    def __reduce__(self) -> tuple:
        return np.array(0).__reduce__()[0], (np.ndarray, (0,), b'b'), self.state


def _flagged_as_objects(dtype: np.dtype) -> np.dtype:
    """`dtype` pickled with the flags of a type that holds Python objects."""
    class Flagged:
        def __reduce__(self) -> tuple:
            made, args, state = dtype.__reduce__()
            return made, args, (*state[:-1], 63)
    return Flagged()


# Arrays of Python objects, filled from a list shorter than their shape: numpy reads past the
# list's end, which crashes the process or shows its memory in the array. What is said of them:
OBJECT_ARRAYS = {
    'object type': (_PickledArray((1, (100000,), np.dtype(object), False, [1])),
                    "array type 'O8' is not a number type"),
    # The flags are not read: numbers, of which the list is not the bytes
    'number type flagged as objects': (
        _PickledArray((1, (100000,), _flagged_as_objects(np.dtype('i8')), False, [1])),
        'an array of shape (100000,) and type int64 that its data does not fill'),
}


def test_arrays_are_only_of_numbers(tmp_path: Path) -> None:
    """In a process of its own: numpy crashes on what the unpickler once let through."""
    for name, (array, _) in OBJECT_ARRAYS.items():
        content = _numpy_pickle(array)
        (tmp_path / f'{name}.pickle').write_bytes(content)
    said = _errors_in_a_process(sorted(tmp_path.glob('*.pickle')), '_read_matrix')
    assert said == {f'{name}.pickle':
                    f'{tmp_path / name}.pickle: not a valid Planetoid pickle: {why}'
                    for name, (_, why) in OBJECT_ARRAYS.items()}


def _errors_in_a_process(paths: list, read: str) -> dict:
    """`datasets.<read>(path, its bytes)` for each of `paths` in a process of its own, where
    a crash is that process's, not the tests': the `DataFileError` each raised, by file name."""
    code = (f'from pathlib import Path\n'
            f'from labml_gat import datasets\n'
            f'for path in map(Path, {[str(path) for path in paths]!r}):\n'
            f'    try:\n'
            f'        datasets.{read}(path, path.read_bytes())\n'
            f'    except datasets.DataFileError as error:\n'
            f'        print(path.name, error, sep="\\t")\n')
    found = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                           timeout=120, env={**os.environ, 'PYTHONPATH': str(REPO)})
    assert found.returncode == 0, found.stderr[-2000:]
    return dict(line.split('\t', 1) for line in found.stdout.splitlines())


def test_graph_lists_that_share_their_entries(tmp_path: Path) -> None:
    """One list written once and named by every node (through the pickle's memo): a file of
    a few kilobytes would make as many edges as the square of its nodes."""
    shared = list(range(1000))
    content = pickle.dumps({node: shared for node in range(1000)}, protocol=2)
    with pytest.raises(DataFileError, match=r'ind\.cora\.graph: 1000000 neighbours in '):
        datasets._read_graph(tmp_path / 'ind.cora.graph', content)


# The globals of the graph file, kept in the pickle's memo as it keeps them
_DEFAULTDICT, _LIST = b'ccollections\ndefaultdict\nq\x01', b'c__builtin__\nlist\nq\x02'


@pytest.mark.parametrize('content, why', [
    # `list` called on one list of the file: a copy for every five bytes of the file
    (b'\x80\x02' + _LIST + b']q\x03(K\x00K\x01eh\x02h\x03\x85R' + b'0h\x02h\x03\x85R' * 3 + b'.',
     'list is only the default factory'),
    # `defaultdict` given a dict to copy, or a factory other than `list`
    (b'\x80\x02' + _DEFAULTDICT + _LIST + b'h\x01h\x02}\x86R.', r'other than defaultdict\(list\)'),
    (b'\x80\x02' + _DEFAULTDICT + b'N\x85R.', r'other than defaultdict\(list\)'),
], ids=['list copies', 'defaultdict copies', 'other factory'])
def test_list_and_defaultdict_are_not_called_to_copy(content: bytes, why: str,
                                                    tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=why):
        datasets._unpickle(tmp_path / 'ind.cora.graph', content)


@pytest.mark.parametrize('module, name', [('numpy.core.multiarray', '_reconstruct'),
                                          ('collections', 'defaultdict'),
                                          ('__builtin__', 'list')])
def test_the_allowed_globals_take_no_state(module: str, name: str, tmp_path: Path) -> None:
    """BUILD on a function sets its attributes (`__defaults__`, `__qualname__`, any other),
    which would stay for every later file of the process."""
    state = b'N}(X\x0c\x00\x00\x00__qualname__X\x01\x00\x00\x00xu\x86b.'
    content = b'\x80\x02c' + f'{module}\n{name}\n'.encode() + state
    allowed = datasets._ALLOWED_GLOBALS[(module, name)]
    qualname = allowed.__qualname__
    with pytest.raises(DataFileError, match='a global given a state'):
        datasets._unpickle(tmp_path / 'ind.cora.graph', content)
    assert allowed.__qualname__ == qualname


def test_the_graph_is_read_into_a_plain_dict(tmp_path: Path) -> None:
    content = b'\x80\x02' + _DEFAULTDICT + _LIST + b'\x85R(K\x00]K\x01aK\x01]K\x00au.'
    graph = datasets._unpickle(tmp_path / 'ind.cora.graph', content)
    assert type(graph) is dict and graph == {0: [1], 1: [0]}


def test_defaultdicts_nested_in_each_other(tmp_path: Path) -> None:
    """In a process of its own: freeing a `defaultdict` nested a million deep crashed it."""
    step = b'h\x01h\x02\x85RK\x00j\x04\x00\x00\x00sr\x04\x00\x00\x000'
    content = (b'\x80\x02' + _DEFAULTDICT + _LIST + b'h\x01h\x02\x85Rr\x04\x00\x00\x00'
               + step * 1_000_000 + b'j\x04\x00\x00\x00.')
    path = tmp_path / 'ind.cora.graph'
    path.write_bytes(content)
    assert 'ind.cora.graph' in _errors_in_a_process([path], '_read_graph')[path.name]


@pytest.mark.parametrize('content', [
    # A dict keyed by a tuple nested a million deep, one byte each: hashing it overflowed
    # the C stack
    b'\x80\x02}N' + b'\x85' * 1_000_000 + b'Ns.',
    # The same through the memo, and a frozen set of it
    b'\x80\x02}N' + b'q\x01h\x01\x86' * 300_000 + b'Ns.',
    b'\x80\x04(N' + b'\x85' * 1_000_000 + b'\x91.',
], ids=['tuple', 'memo', 'frozenset'])
def test_objects_nested_too_deep(content: bytes, tmp_path: Path) -> None:
    """In a process of its own: the crash was of the process."""
    path = tmp_path / 'ind.cora.graph'
    path.write_bytes(content)
    said = _errors_in_a_process([path], '_unpickle')[path.name]
    assert said.endswith('objects nested more than 32 deep')


@pytest.mark.parametrize('content', [
    b'\x80\x02Nr\x40\x42\x0f\x00.',
    b'\x80\x02Np1000000\n.',
], ids=['LONG_BINPUT', 'PUT'])
def test_a_memo_index_past_the_file(content: bytes, tmp_path: Path) -> None:
    """Python's unpickler makes room in its memo for every index up to the one named: an
    index of four billion, a few bytes of the file, would take 64 GB. (A million here.)"""
    with pytest.raises(DataFileError, match='memo index 1000000 past the'):
        datasets._unpickle(tmp_path / 'ind.cora.graph', content)


@needs_data
def test_the_real_files_nest_seven_deep(monkeypatch: pytest.MonkeyPatch) -> None:
    """`MAX_DEPTH`'s comment: the features' sparse matrices nest seven levels as
    `_check_nesting` counts them, the deepest of the files; 32 leaves room."""
    def nests_within(content: bytes, depth: int) -> bool:
        monkeypatch.setattr(datasets, 'MAX_DEPTH', depth)
        try:
            datasets._check_nesting(content)
        except pickle.UnpicklingError:
            return False
        return True
    deepest = 0
    for path in sorted(PLANETOID.glob('ind.*')):
        if path.suffix != '.index':
            content = path.read_bytes()
            deepest = max(deepest, min(d for d in range(33) if nests_within(content, d)))
    assert deepest == 7 < 32


def _largest_test_index_far_away(content: bytes) -> bytes:
    return content.replace(b'\n2707\n', b'\n1000000000000\n')


@needs_data
@pytest.mark.parametrize('kind, content, why', [
    # Features of other columns than those of the other nodes
    ('tx', lambda _: _sparse_pickle((1000, 1000), [0] * 1001, [], []),
     r'ind\.cora\.tx: 1000 rows of 1000 for the 1000 test nodes .* 1433 columns'),
    ('ty', lambda _: _numpy_pickle(np.zeros((999, 7), dtype=np.int64)),
     r'ind\.cora\.ty: 999 rows of 7 for the 1000 test nodes'),
    # A test node of that index makes a trillion nodes, of terabytes of features
    ('test.index', _largest_test_index_far_away,
     r'ind\.cora\.test\.index: a test index of 1000000000000 makes 1000000000001'),
    # More training nodes than fit before the validation and test nodes: the masks overlapped
    ('y', lambda _: _numpy_pickle(np.zeros((1300, 7), dtype=np.int64)),
     r'ind\.cora\.y: 1300 training nodes and 500 validation nodes, more than the 1708'),
    # Labels of no class
    ('ally', lambda _: _numpy_pickle(np.zeros((1708, 0), dtype=np.int64)),
     r'ind\.cora\.ally: an empty matrix'),
])
def test_files_that_do_not_fit_together(kind: str, content, why: str,
                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each file may be sound alone and the set not: one clear error, not a tensor error, an
    allocation of terabytes, or masks that overlap."""
    folder = _copy_cora(tmp_path / 'data')
    _cora_with(folder, kind, content((folder / f'ind.cora.{kind}').read_bytes()), monkeypatch)
    with pytest.raises(DataFileError, match=why):
        load_planetoid('cora', data_dir=folder)
