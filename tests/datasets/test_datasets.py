"""Data sets: the embedded MNIST subset, scikit-learn's digits, IDX files, MD5 checks, the fetcher.

* mnist5k: 500 per class; the split is stratified (360 / 40 / 100 per class), disjoint, covers
  every image once and is the same on every call;
* digits loads with the same conventions;
* IDX files round-trip (plain and gzip, every type), damaged ones give one-line errors;
* full MNIST loads from small IDX files the tests write (MD5 table patched for them), rejects a
  corrupted file with a one-line error that says what to run;
* the fetcher downloads those files from a server on loopback with a progress bar, writes them
  atomically, rejects a corrupt download, and reports being offline in one line; so does the CLI.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from biosim.cli import main
from biosim.datasets import Dataset, fetch_mnist, load, read_idx, stratified_split, write_idx
from biosim.datasets.mnist import MNIST_FILES, MNIST_MD5
from biosim.datasets.paths import embedded_dir
from biosim.errors import BiosimError

N_TRAIN, N_TEST = 48, 20


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert "\n" not in message
    return message


# -- embedded MNIST subset and digits -------------------------------------------------------------

@pytest.fixture(scope="module")
def mnist5k() -> Dataset:
    return load("mnist5k")


def test_mnist5k_has_500_per_class_and_fixed_stratified_split(mnist5k):
    d = mnist5k
    assert d.describe() == "mnist5k: 3600 train / 400 val / 1000 test, 28x28, 10 classes"
    assert d.name == "mnist5k" and d.n_classes == 10 and d.image_shape == (28, 28)
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == np.uint8 and y.dtype == np.int64 and x.shape[1:] == (28, 28)
    assert np.bincount(d.y_train, minlength=10).tolist() == [360] * 10
    assert np.bincount(d.y_val, minlength=10).tolist() == [40] * 10
    assert np.bincount(d.y_test, minlength=10).tolist() == [100] * 10
    assert d.x_train.max() == 255 and d.x_train.min() == 0
    assert len(set(d.y_test[:50].tolist())) > 5  # shuffled: a prefix mixes the classes


def _sorted_rows(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(len(x), -1)
    return flat[np.lexsort(flat.T[::-1])]


def test_mnist5k_split_is_disjoint_complete_and_deterministic(mnist5k):
    with np.load(embedded_dir() / "mnist5k.npz") as archive:
        images, labels = archive["images"], archive["labels"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    train, val, test = stratified_split(labels, seed=0)
    assert len(np.intersect1d(train, val)) == len(np.intersect1d(train, test)) == 0
    assert len(np.intersect1d(val, test)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(5000))
    assert np.array_equal(mnist5k.x_test, images[test]) and np.array_equal(mnist5k.y_val, labels[val])
    # the same images as the file, each exactly once
    together = np.concatenate([mnist5k.x_train, mnist5k.x_val, mnist5k.x_test])
    assert np.array_equal(_sorted_rows(together), _sorted_rows(images))
    again = load("mnist5k")
    for part in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert np.array_equal(getattr(again, part), getattr(mnist5k, part))
    other = load("mnist5k", split_seed=1)
    assert not np.array_equal(other.y_test, mnist5k.y_test)
    assert np.bincount(other.y_test).tolist() == [100] * 10


def test_digits_loads_with_the_same_conventions():
    d = load("digits")
    n = d.sizes
    assert sum(n.values()) == 1797 and d.image_shape == (8, 8) and d.n_classes == 10
    assert d.describe() == f"digits: {n['train']} train / {n['val']} val / {n['test']} test, 8x8, 10 classes"
    assert abs(n["test"] - 0.2 * 1797) <= 10 and abs(n["val"] - 0.08 * 1797) <= 10
    assert d.x_train.dtype == np.uint8 and d.x_train.max() == 255 and d.y_test.dtype == np.int64
    counts = np.bincount(np.concatenate([d.y_train, d.y_val, d.y_test]))
    assert np.all(np.abs(np.bincount(d.y_test) - 0.2 * counts) <= 1)  # stratified
    assert np.array_equal(load("digits").y_val, d.y_val)


def test_unknown_dataset_names_the_closest_match():
    with pytest.raises(BiosimError, match=r"unknown dataset 'mnist6k'; did you mean 'mnist5k'\?") as info:
        load("mnist6k")
    _one_line(info)


# -- IDX files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_idx_round_trip(tmp_path, name, dtype):
    rng = np.random.default_rng(3)
    array = (rng.normal(size=(5, 4, 3)) * 50).astype(dtype)
    path = write_idx(tmp_path / name, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == name.endswith(".gz")
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == (5, 4, 3)
    assert np.array_equal(back, array)
    back[0] = 0  # a writable copy in native byte order
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_idx_header_layout(tmp_path):
    path = write_idx(tmp_path / "labels", np.array([7, 2, 1], np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])


def test_damaged_idx_files_give_one_line_errors(tmp_path):
    good = write_idx(tmp_path / "x-idx3-ubyte", np.zeros((4, 28, 28), np.uint8)).read_bytes()
    (tmp_path / "short").write_bytes(good[:-5])
    with pytest.raises(BiosimError, match="truncated") as info:
        read_idx(tmp_path / "short")
    _one_line(info)
    (tmp_path / "magic").write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(BiosimError, match="not an IDX file"):
        read_idx(tmp_path / "magic")
    (tmp_path / "cut.gz").write_bytes(write_idx(tmp_path / "g.gz", np.zeros(100, np.uint8)).read_bytes()[:15])
    with pytest.raises(BiosimError, match="damaged gzip"):
        read_idx(tmp_path / "cut.gz")
    with pytest.raises(BiosimError, match="dtype"):
        write_idx(tmp_path / "bad", np.zeros(3, np.uint64))


# -- full MNIST from small IDX files --------------------------------------------------------------

def _write_small_mnist(folder: Path, gz: bool = True) -> dict[str, Path]:
    """Four small MNIST-shaped IDX files; returns role -> path."""
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
        "train_labels": (np.arange(N_TRAIN) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
        "test_labels": (np.arange(N_TEST) % 10).astype(np.uint8),
    }
    suffix = ".gz" if gz else ""
    return {role: write_idx(folder / (MNIST_FILES[role] + suffix), a) for role, a in arrays.items()}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _patch_md5(monkeypatch, paths):
    for path in paths:
        monkeypatch.setitem(MNIST_MD5, path.name, _md5(path))


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("layout", ["mnist-subfolder", "flat"])
def test_full_mnist_loads_from_idx_files(tmp_path, monkeypatch, gz, layout):
    folder = tmp_path / "mnist" if layout == "mnist-subfolder" else tmp_path
    folder.mkdir(exist_ok=True)
    paths = _write_small_mnist(folder, gz=gz)
    _patch_md5(monkeypatch, paths.values())
    monkeypatch.setenv("BIOSIM_DATA", str(tmp_path))
    d = load("mnist")
    n_val = N_TRAIN // 12
    assert d.describe() == f"mnist: {N_TRAIN - n_val} train / {n_val} val / {N_TEST} test, 28x28, 10 classes"
    train_images = read_idx(paths["train_images"])
    assert np.array_equal(d.x_val, train_images[-n_val:])  # validation: the end of the official train set
    assert np.array_equal(d.x_test, read_idx(paths["test_images"]))
    assert d.y_train.dtype == np.int64 and np.array_equal(d.y_test, np.arange(N_TEST) % 10)


def test_full_mnist_rejects_a_corrupted_file(tmp_path, monkeypatch):
    paths = _write_small_mnist(tmp_path / "mnist")
    _patch_md5(monkeypatch, paths.values())
    monkeypatch.setenv("BIOSIM_DATA", str(tmp_path))
    load("mnist")
    data = bytearray(paths["test_labels"].read_bytes())
    data[-3] ^= 0xFF
    paths["test_labels"].write_bytes(bytes(data))
    with pytest.raises(BiosimError, match=r"t10k-labels-idx1-ubyte\.gz: MD5 .* does not match") as info:
        load("mnist")
    assert "biosim data fetch mnist" in _one_line(info)


def test_real_mnist_md5_table_matches_design():
    assert MNIST_MD5["train-images-idx3-ubyte.gz"] == "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert MNIST_MD5["train-labels-idx1-ubyte.gz"] == "d53e105ee54ea40749a09fcbcd1e9432"
    assert MNIST_MD5["t10k-images-idx3-ubyte.gz"] == "9fb629c4189551a2d022fa330f9573f3"
    assert MNIST_MD5["t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"


def test_missing_mnist_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOSIM_DATA", str(tmp_path))
    with pytest.raises(BiosimError, match="full MNIST not found") as info:
        load("mnist")
    assert "`biosim data fetch mnist`" in _one_line(info)
    (tmp_path / "mnist").mkdir()
    write_idx(tmp_path / "mnist" / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(BiosimError, match="lacks train-images-idx3-ubyte.gz, t10k-images"):
        load("mnist")


# -- the fetcher, against a server on loopback ----------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path, monkeypatch):
    """Small MNIST .gz files served over HTTP on 127.0.0.1; yields (base URL, role -> path)."""
    _no_proxy(monkeypatch)
    root = tmp_path / "www"
    root.mkdir()
    paths = _write_small_mnist(root)
    _patch_md5(monkeypatch, paths.values())
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", paths
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _assert_no_temporaries(folder: Path):
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"]


def test_fetch_downloads_verifies_and_skips_present_files(served, tmp_path, capsys):
    url, paths = served
    dest = tmp_path / "got"
    assert fetch_mnist(dest, base_url=url, progress=True) == dest
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "100%" in err  # the progress bar ran
    for path in paths.values():
        assert (dest / path.name).read_bytes() == path.read_bytes()
    _assert_no_temporaries(dest)
    said = []
    fetch_mnist(dest, base_url=url.rstrip("/"), progress=True, log=said.append)  # base without the slash
    assert sum("already present and verified" in line for line in said) == 4
    assert "already present" not in capsys.readouterr().err  # the library prints nothing itself
    (dest / "train-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    said.clear()
    fetch_mnist(dest, base_url=url, progress=True, log=said.append)  # a bad local copy is downloaded again
    assert (dest / "train-labels-idx1-ubyte.gz").read_bytes() == paths["train_labels"].read_bytes()
    assert sum("already present and verified" in line for line in said) == 3


def test_fetch_rejects_a_corrupt_download_and_writes_nothing(served, tmp_path, monkeypatch):
    url, paths = served
    monkeypatch.setitem(MNIST_MD5, "t10k-images-idx3-ubyte.gz", "0" * 32)
    dest = tmp_path / "got"
    with pytest.raises(BiosimError, match=r"t10k-images-idx3-ubyte\.gz: MD5 .* not saved") as info:
        fetch_mnist(dest, base_url=url, progress=False)
    assert "no network" not in _one_line(info)
    names = sorted(p.name for p in dest.iterdir())
    assert names == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    _assert_no_temporaries(dest)


def test_fetch_reports_a_missing_file_on_the_server(served, tmp_path):
    url, paths = served
    paths["test_labels"].unlink()
    with pytest.raises(BiosimError, match="HTTP 404"):
        fetch_mnist(tmp_path / "got", base_url=url, progress=False)
    assert not (tmp_path / "got" / "t10k-labels-idx1-ubyte.gz").exists()


def _no_proxy(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)


class _CutHandler(_QuietHandler):
    """Announces more bytes than it sends, then hangs up: a download cut short."""

    def do_GET(self):
        body = b"x" * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + 5000))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


def test_fetch_cut_short_leaves_no_file(tmp_path, monkeypatch):
    _no_proxy(monkeypatch)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with pytest.raises(BiosimError, match="cannot download train-images-idx3-ubyte.gz") as info:
            fetch_mnist(tmp_path / "got", base_url=f"http://127.0.0.1:{server.server_address[1]}/",
                        progress=True, timeout=5)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert "no network" not in _one_line(info)
    assert not list((tmp_path / "got").iterdir())


def test_fetch_offline_is_one_clear_line(tmp_path, monkeypatch):
    _no_proxy(monkeypatch)
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BiosimError, match="cannot download train-images-idx3-ubyte.gz: no network") as info:
        fetch_mnist(tmp_path / "got", base_url=f"http://127.0.0.1:{port}/", progress=False, timeout=5)
    assert "--url" in _one_line(info)
    assert not list((tmp_path / "got").iterdir())


def test_cli_data_fetch_and_list(served, tmp_path, monkeypatch, capsys):
    url, paths = served
    dest = tmp_path / "cli"
    assert main(["data", "fetch", "mnist", "--url", url, "--dest", str(dest)]) == 0
    out, err = capsys.readouterr()
    assert f"MNIST files verified in {dest}" in out and "100%" in err
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in paths.values())
    monkeypatch.setenv("BIOSIM_DATA", str(tmp_path / "nowhere"))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert {line.split()[0] for line in out.strip().splitlines()} == {"mnist5k", "digits", "mnist", "mnist1d", "xor"}
    assert "[not downloaded]" in out
    monkeypatch.setenv("BIOSIM_DATA", str(tmp_path))
    dest.rename(tmp_path / "mnist")
    assert main(["data", "list"]) == 0
    assert f"[files in {tmp_path / 'mnist'}]" in capsys.readouterr().out
    assert load("mnist").sizes == {"train": N_TRAIN - N_TRAIN // 12, "val": N_TRAIN // 12, "test": N_TEST}


def test_cli_data_errors_are_one_line(tmp_path, monkeypatch, capsys):
    _no_proxy(monkeypatch)
    with pytest.raises(SystemExit) as info:
        main(["data", "fetch", "mnsit"])
    assert info.value.code == 2
    assert "did you mean 'mnist'?" in capsys.readouterr().err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["data", "fetch", "mnist", "--url", f"http://127.0.0.1:{port}", "--dest", str(tmp_path),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("biosim: error: cannot download") and err.count("\n") == 1
