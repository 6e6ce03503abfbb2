"""Every downloader of the package against a hostile server on 127.0.0.1.

The server (started here, port 0) answers ``/<behaviour>[@<name>]/<path>``: the
file ``path`` as ``behaviour`` says (for every file, or only for the file called
``name``). Each downloader (MNIST, KTH, BAIR, the released models, the book's
shipped runs) is called for real, its URL pointed at the server, with small
limits (a stall timeout of 0.3 s, a deadline of 0.8 s, a cap of 1 MiB): it must
fail with one clear line and leave nothing behind (no partial or unchecked file,
no empty folder); a good server must work once and then be served from the
cache.
"""
import gzip
import http.server
import io
import os
import signal
import tarfile
import threading
import time
import zipfile

import pytest
import torch
from helpers import dead_url

from srvp import SRVP, book, download, preset, save_experiment
from srvp import official_weights as weights
from srvp.data import bair, kth
from srvp.data import mnist_idx as mnist

TIMEOUT, DEADLINE, CAP = 0.3, 0.8, 1 << 20
HTML = b"<!DOCTYPE html>\n<html><body>This page has moved.</body></html>\n"


class Hostile(http.server.BaseHTTPRequestHandler):
    """The behaviours: good, drip (one byte, then silence), slow (a byte every
    50 ms, forever), endless (no length, no end), html, half (the first half,
    honestly announced), cut (the whole announced, half sent), wrong (bytes
    changed in the middle), missing (404), interrupt (half, Ctrl-C in the
    main thread, then a slow drip)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 (the http.server name)
        self.server.requests.append(self.path)
        _, spec, path = self.path.split("/", 2)
        behaviour, _, only = spec.partition("@")
        data = self.server.files.get(path)
        if data is None or (only and not path.endswith("/" + only) and path != only):
            behaviour = "good" if data is not None else "missing"
        try:
            getattr(self, "_" + behaviour)(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, as it should

    def _head(self, length, kind="application/octet-stream", status=200):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()

    def _good(self, data):
        self._head(len(data))
        self.wfile.write(data)

    def _drip(self, data):
        self._head(len(data))
        self.wfile.write(data[:1])
        self.wfile.flush()
        time.sleep(3 * TIMEOUT)

    def _trickle(self):
        for _ in range(200):  # 10 s at most
            self.wfile.write(b"\0")
            self.wfile.flush()
            time.sleep(0.05)

    def _slow(self, data):
        self._head(None)
        self._trickle()

    def _endless(self, data):
        self._head(None)
        while True:
            self.wfile.write(bytes(1 << 16))

    def _html(self, data):
        self._head(len(HTML), "text/html")
        self.wfile.write(HTML)

    def _half(self, data):
        self._good(data[: len(data) // 2])

    def _cut(self, data):
        self._head(len(data))
        self.wfile.write(data[: len(data) // 2])

    def _wrong(self, data):
        middle = len(data) // 2
        self._good(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 8])
                   + data[middle + 8:])

    def _missing(self, data):
        self._head(0, status=404)

    def _interrupt(self, data):
        self._head(len(data))
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        time.sleep(0.1)
        # Ctrl-C, while the client reads the body: a real SIGINT, which breaks the
        # client's blocking read at once (interrupt_main only sets a flag, seen
        # after the read returns: under load, after the deadline)
        os.kill(os.getpid(), signal.SIGINT)
        self._trickle()

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile():
    """``hostile(files)``: a running server of ``files`` ({path: bytes})."""
    servers = []

    def start(files):
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
        httpd.files, httpd.requests, httpd.block_on_close = files, [], False
        httpd.url = f"http://127.0.0.1:{httpd.server_port}/"
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        servers.append(httpd)
        return httpd

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


# --- the files each downloader fetches ------------------------------------------
def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # stored: a changed byte fails
        for name, data in members.items():     # its CRC
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar_bytes(members):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    """config.json and model.pt of a smoke model, as released and shipped."""
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    save_experiment(SRVP(preset("smoke")), folder)
    return {name: (folder / name).read_bytes() for name in ("config.json", "model.pt")}


@pytest.fixture
def downloaders(tiny_mnist_dir, model_files, monkeypatch, tmp_path):
    """name -> (files served, get(base_url) -> the downloaded path, the folder
    under ``tmp_path`` that it writes); the limits are small, the built-in
    sources (and MD5s) are those of the test."""
    for module in (mnist, kth, bair, weights, download):
        monkeypatch.setattr(module, "MAX_BYTES", CAP)
    monkeypatch.setattr(download, "TIMEOUT", TIMEOUT)
    monkeypatch.setattr(download, "DEADLINE", DEADLINE)
    monkeypatch.setattr(weights, "AUTHORS_URL", dead_url())
    monkeypatch.setattr(weights, "MIRROR_URL", dead_url())
    limits = {"timeout": TIMEOUT, "deadline": DEADLINE, "progress": False}
    mnist_files = {}
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        mnist_files[name] = (tiny_mnist_dir / name).read_bytes()
        monkeypatch.setitem(mnist.MD5, name, mnist.md5sum(tiny_mnist_dir / name))
    avi = {"person01_boxing_d1_uncomp.avi": bytes(range(256)) * 40}
    records = {"softmotion30_44k/train/a.tfrecords": b"x" * 20000,
               "softmotion30_44k/test/b.tfrecords": b"y" * 100}

    def shipped(url):
        monkeypatch.setattr(book, "RAW_URL", url)
        return book.shipped_run(tmp_path / "book")

    return {
        "mnist": (mnist_files, lambda url: mnist.download_mnist(
            tmp_path / "mnist", splits=("test",), mirrors=(url,), **limits)[0]),
        "kth": ({"boxing.zip": _zip_bytes(avi)}, lambda url: kth.download_kth(
            tmp_path / "kth", ("boxing",), (url + "{action}.zip",), **limits)[0]),
        "bair": ({bair.ARCHIVE: _tar_bytes(records)}, lambda url: bair.download_bair(
            tmp_path / "bair", url + bair.ARCHIVE, **limits)),
        "weights": ({f"mmnist/stochastic/{k}": v for k, v in model_files.items()},
                    lambda url: weights.download_official(
                        "smmnist", tmp_path / "xp", (url + "mmnist/stochastic/",),
                        **limits).folder),
        "shipped": ({f"runs/cpu/{k}": v for k, v in model_files.items()}, shipped),
    }


# --- hostile servers --------------------------------------------------------------
FAILURES = [  # (downloader, behaviour, what the error says)
    *[(name, "drip", f"no byte for {TIMEOUT:g} s") for name in
      ("mnist", "kth", "bair", "weights", "shipped")],
    *[(name, "slow", f"not complete after {DEADLINE:g} s") for name in
      ("mnist", "kth", "bair", "weights", "shipped")],
    *[(name, "endless", f"more than the {CAP:,} bytes") for name in
      ("mnist", "kth", "bair", "weights", "shipped")],
    *[(name, "html", "sent an HTML page") for name in
      ("mnist", "kth", "bair", "weights", "shipped")],
    *[(name, "cut", "truncated transfer") for name in
      ("mnist", "kth", "bair", "weights", "shipped")],
    *[(name, "missing", "HTTP 404") for name in
      ("mnist", "kth", "bair", "weights", "shipped")],
    ("mnist", "half", "MD5 mismatch"),
    ("kth", "half", "not a readable zip archive"),
    ("bair", "half", "not a readable tar archive"),
    ("weights", "half@config.json", "not valid JSON"),
    ("weights", "half@model.pt", "truncated or damaged"),
    ("shipped", "half@config.json", "not valid JSON"),
    ("shipped", "half@model.pt", "truncated or damaged"),
    ("shipped", "html@model.pt", "sent an HTML page"),
    ("mnist", "wrong", "MD5 mismatch"),
    ("kth", "wrong", "fails its CRC"),
]


@pytest.mark.parametrize("name,behaviour,says", FAILURES,
                         ids=[f"{n}-{b}" for n, b, _ in FAILURES])
def test_a_hostile_server_fails_clearly_and_leaves_nothing(
        name, behaviour, says, downloaders, hostile, tmp_path):
    files, get = downloaders[name]
    server = hostile(files)
    start = time.perf_counter()
    with pytest.raises(OSError) as caught:
        get(f"{server.url}{behaviour}/")
    assert time.perf_counter() - start < 5  # the limits hold (loaded CPUs: slack)
    message = str(caught.value)
    assert "\n" not in message and says in message
    assert f"{server.url}{behaviour}/" in message  # the URL
    assert "by hand" in message  # what to do
    assert_nothing_unchecked(tmp_path, files)


def assert_nothing_unchecked(folder, files):
    """No partial, staging or unchecked file and no empty folder under
    ``folder``: what stays is a file served whole (fetched before the one that
    failed: a cache of checked files)."""
    for path in folder.rglob("*"):
        assert not path.name.startswith("."), path
        if path.is_dir():
            assert any(path.iterdir()), f"empty folder {path}"
        else:
            assert path.read_bytes() in files.values(), path


@pytest.mark.parametrize("name", ["mnist", "kth", "bair", "weights", "shipped"])
def test_a_good_server_works_once_then_the_cache_serves(name, downloaders, hostile,
                                                        tmp_path):
    files, get = downloaders[name]
    server = hostile(files)
    got = get(server.url + "good/")
    assert got.exists() and got.is_relative_to(tmp_path)
    asked = len(server.requests)
    assert asked >= 1
    assert get(server.url + "good/") == got
    assert len(server.requests) == asked  # cached: no request
    assert not list(tmp_path.rglob(".*"))  # no staging file left


@pytest.mark.parametrize("name", ["mnist", "kth", "bair", "weights", "shipped"])
def test_ctrl_c_mid_download_leaves_nothing(name, downloaders, hostile, tmp_path,
                                            monkeypatch):
    monkeypatch.setattr(download, "DEADLINE", 30.0)
    # Python's own Ctrl-C, whatever handler an earlier test left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    files, get = downloaders[name]
    server = hostile(files)
    try:
        with pytest.raises(KeyboardInterrupt):
            get(f"{server.url}interrupt/")
            time.sleep(5)  # not reached: the interrupt comes during the transfer
    finally:
        signal.signal(signal.SIGINT, previous)
    assert list(tmp_path.iterdir()) == []


# --- the download function itself ----------------------------------------------
def test_a_killed_download_is_cleared_by_the_next_one(hostile, tmp_path):
    server = hostile({"a.json": b'{"a": 1}'})
    old, live = tmp_path / ".a.json.x1.part", tmp_path / ".a.json.x2.part"
    old.write_bytes(b"left by a killed process")
    live.write_bytes(b"another process, still writing")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    staging = tmp_path / "xp" / ".download-x3"
    staging.mkdir(parents=True)
    (staging / "model.pt").write_bytes(b"half")
    for path in (staging / "model.pt", staging):
        os.utime(path, (an_hour_ago, an_hour_ago))
    download.fetch(server.url + "good/a.json", tmp_path / "a.json", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "a.json", "xp"]
    assert download.clear_stale(tmp_path / "xp", ".download-*") == [staging]


def test_a_stalled_header_is_a_timeout(tmp_path):
    """A server that accepts the connection and then says nothing."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/a.json"
        with pytest.raises(download.DownloadError, match="no answer within 0.3 s"):
            download.fetch(url, tmp_path / "a" / "a.json", timeout=0.3)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,data,says", [
    ("a.json", b"{'not': json}", "not valid JSON"),
    ("log.jsonl", b'{"step": 1}\n{"step": 2\n', "not valid JSON"),
    ("a.gz", gzip.compress(b"x" * 5000)[:-20], "truncated or corrupt gzip"),
    ("a.gz", b"plain text", "not a gzip file"),
    ("a.tar", _tar_bytes({}), "an empty tar archive"),
    ("model.pt", b"weights", "not a PyTorch file"),
    ("per_video.npz", b"PK\x03\x04 cut", "not a readable zip archive"),
    ("a.bin", b"  \n<html><head></head></html>", "sent an HTML page"),
], ids=["json", "jsonl", "gzip-cut", "gzip-not", "tar-empty", "torch", "npz",
        "html-any-file"])
def test_content_is_checked_by_the_file_name(name, data, says, hostile, tmp_path):
    server = hostile({name: data})
    with pytest.raises(download.DownloadError, match=says):
        download.fetch(server.url + "good/" + name, tmp_path / "out" / name,
                       progress=False)
    assert list(tmp_path.iterdir()) == []


def test_sha256_is_checked(hostile, tmp_path):
    server = hostile({"a.bin": b"data"})
    good = download.file_digest(__file__)  # any other file's digest
    with pytest.raises(download.DownloadError, match="SHA256 mismatch"):
        download.fetch(server.url + "good/a.bin", tmp_path / "a.bin",
                       digest=("sha256", good), progress=False)
    assert not (tmp_path / "a.bin").exists()


def test_the_cli_takes_the_limits(downloaders, hostile, tmp_path, capsys,
                                  monkeypatch):
    from srvp import cli

    files, _ = downloaders["mnist"]
    server = hostile(files)
    assert cli.main(["data", "mnist-download", "--out", str(tmp_path / "m"),
                     "--split", "test", "--timeout", "0.3", "--no-progress"]) == 2
    assert "--timeout 0.3: must be at least 1" in capsys.readouterr().err
    monkeypatch.setattr(mnist, "MIRRORS", (server.url + "slow/",))
    assert cli.main(["data", "mnist-download", "--out", str(tmp_path / "m"),
                     "--split", "test", "--deadline", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not complete after 1 s" in err
    assert list(tmp_path.iterdir()) == []
