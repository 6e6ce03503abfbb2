"""One way to fetch a file: every download of the package goes through :func:`fetch`
(MNIST, KTH, BAIR, the released models, the book's shipped runs; book ch. 1).

A file is streamed into a temporary ``.NAME.XXXX.part`` beside its target and
renamed into place only once it passed every check, so the cache never holds a
partial or wrong file:

- size: at most ``max_bytes`` (a server announcing more is refused before any
  byte is written, an endless answer is cut there), and the whole announced
  ``Content-Length`` (a transfer cut short is refused);
- time: no byte for ``timeout`` seconds (connecting and headers included), or
  the file not complete after ``deadline`` seconds, stops the transfer;
- content: an HTML page (a login, error or "moved" page) where a file was
  expected is refused; then, by the target's name, a zip (``.zip``, ``.npz``)
  or tar archive is read through (CRCs, truncation), a ``.gz`` decompressed to
  its end, a ``.json`` parsed (each line of a ``.jsonl``), a ``.pt`` must start
  as a PyTorch file; an MD5 or SHA-256 the caller knows must match; the
  caller's ``check(path)`` verifies the rest (e.g. that a model loads).

Whatever ends a transfer (an error, Ctrl-C) the temporary file goes; what a
killed process left (``.part`` files, staging folders) is removed by the next
fetch (:func:`clear_stale`). :func:`own_folder` removes a folder created for a
download when the download fails. Errors are :class:`DownloadError`, one line
naming the URL, what failed and what to do.
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.client
import json
import os
import shutil
import socket
import tarfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Optional, Tuple

from tqdm.auto import tqdm

from .fileio import atomic_file

#: Seconds without any byte (connecting included) before a download gives up.
TIMEOUT = 30.0
#: Seconds one file may take in all.
DEADLINE = 3 * 3600.0
#: Size cap of a file whose caller knows no tighter one (bytes).
MAX_BYTES = 1 << 30
#: Most bytes a ``.gz`` may decompress to when checked, and a ``.json`` may have.
MAX_GZIP_BYTES, MAX_JSON_BYTES = 1 << 30, 64 << 20
#: Staging files untouched for this long (seconds, and ``timeout``) were left
#: by a killed download.
STALE_AFTER = 60.0
_CHUNK = 1 << 16
_BAR_FROM = 1 << 20  # bytes: smaller files get no progress bar
_TAR = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


class DownloadError(OSError):
    """A download failed; the message is one line: URL, cause, what to do.

    ``url`` and ``reason`` (the cause alone, e.g. ``"HTTP 404"``) let a caller
    that tries several sources list them; ``missing`` is true when the server
    says the file does not exist (HTTP 404 or 410, no such local file).
    """

    def __init__(self, message: str, url: Optional[str] = None,
                 reason: Optional[str] = None, missing: bool = False):
        super().__init__(message)
        self.url, self.reason, self.missing = url, reason or message, missing


class _Refused(Exception):
    """Why a transfer or a check failed (``fetch`` adds the URL and the fix)."""

    def __init__(self, reason: str, missing: bool = False):
        super().__init__(reason)
        self.missing = missing


def fetch(url: str, target: str | os.PathLike, *, max_bytes: Optional[int] = None,
          digest: Optional[Tuple[str, str]] = None,
          check: Optional[Callable[[Path], None]] = None,
          timeout: Optional[float] = None, deadline: Optional[float] = None,
          progress: bool = True) -> Path:
    """Download ``url`` to ``target``, checked, atomically; return ``target``.

    Parameters
    ----------
    url : str
        ``http(s)://`` or ``file://``.
    target : path-like
        Where the file goes; its name says what it must be (see the module).
    max_bytes : int, optional
        Size cap (default :data:`MAX_BYTES`).
    digest : (algorithm, hex), optional
        E.g. ``("md5", "f68b...")`` or ``("sha256", ...)``.
    check : callable, optional
        ``check(path)`` raises ``ValueError`` or ``OSError`` for a bad file.
    timeout, deadline : float, optional
        Seconds without a byte, and for the whole file (defaults
        :data:`TIMEOUT`, :data:`DEADLINE`).
    progress : bool
        A progress bar (stderr) for files over 1 MiB.

    Raises
    ------
    DownloadError
        Anything that kept the file out; ``target`` is then as it was before,
        and a folder created for it is removed again.
    """
    target = Path(target)
    timeout = TIMEOUT if timeout is None else float(timeout)
    deadline = DEADLINE if deadline is None else float(deadline)
    max_bytes = MAX_BYTES if max_bytes is None else int(max_bytes)
    if target.parent.is_dir():
        clear_stale(target.parent, f".{target.name}.*.part", timeout)
    try:
        with own_folder(target.parent), atomic_file(target) as tmp:
            _transfer(url, tmp, max_bytes, timeout, deadline,
                      progress and target.name)
            _verify(tmp, target.name, digest, check)
    except _Refused as err:
        raise DownloadError(f"cannot download {url}: {err}; fetch the file by hand "
                            f"and put it at {target}", url, str(err),
                            err.missing) from None
    return target


# ------------------------------------------------------------------ transfer
class _Watchdog:
    """Shuts the connection down at the deadline, which wakes a blocked read."""

    def __init__(self, seconds: float):
        self.fired, self.sockets = False, []
        self.end = time.monotonic() + seconds
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def watch(self, sock: socket.socket) -> None:
        self.sockets.append(sock)
        if self.fired:
            self._fire()

    def expired(self) -> bool:
        """Past the deadline (also for a ``file://`` source, which has no socket)."""
        self.fired = self.fired or time.monotonic() > self.end
        return self.fired

    def _fire(self) -> None:
        self.fired = True
        for sock in self.sockets:  # the plain socket's shutdown, even under TLS
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


class _Watched:
    """An HTTP(S) connection that shows its socket to a :class:`_Watchdog`."""

    def __init__(self, *args, watchdog: _Watchdog, **kwargs):
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def connect(self):
        super().connect()
        self._watchdog.watch(self.sock)


class _HTTP(_Watched, http.client.HTTPConnection):
    pass


class _HTTPS(_Watched, http.client.HTTPSConnection):
    pass


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: _Watchdog):
        super().__init__()
        self.connection = functools.partial(_HTTP, watchdog=watchdog)

    def http_open(self, req):
        return self.do_open(self.connection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: _Watchdog):
        super().__init__()
        self.connection = functools.partial(_HTTPS, watchdog=watchdog)

    def https_open(self, req):
        return self.do_open(self.connection, req, context=self._context)


def _transfer(url: str, out: Path, max_bytes: int, timeout: float,
              deadline: float, bar_name) -> None:
    """Stream ``url`` into ``out`` within the size and time limits."""
    with _Watchdog(deadline) as watchdog:
        opener = urllib.request.build_opener(_HTTPHandler(watchdog),
                                             _HTTPSHandler(watchdog))
        try:
            with _open(opener, url, timeout) as response, open(out, "wb") as f:
                _stream(response, f, max_bytes, bar_name, watchdog)
            if watchdog.fired:  # the shutdown ended the stream early
                raise _Refused("")
        except (_Refused, OSError, http.client.HTTPException) as err:
            if watchdog.fired:
                raise _Refused(f"not complete after {deadline:g} s (the deadline; "
                               "a slow server? retry later)") from None
            if isinstance(err, _Refused):
                raise
            if isinstance(err, TimeoutError):
                raise _Refused(f"no byte for {timeout:g} s (a stalled server? retry "
                               "later)") from None
            raise _Refused(f"transfer broken ({_cause(err)})") from None


def _open(opener, url: str, timeout: float):
    """The server's answer to ``url`` (headers read), or :class:`_Refused`."""
    try:
        return opener.open(url, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        raise _Refused(f"HTTP {err.code} ({err.reason})",
                       missing=err.code in (404, 410)) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, FileNotFoundError):
            raise _Refused("no such file", missing=True) from None
        if isinstance(err.reason, TimeoutError):
            raise _Refused(f"no answer within {timeout:g} s") from None
        raise _Refused(_cause(err.reason)) from None
    except TimeoutError:  # connected, but no status line and headers in time
        raise _Refused(f"no answer within {timeout:g} s") from None
    except ValueError as err:  # not a URL urllib knows
        raise _Refused(_cause(err)) from None


def _stream(response, f, max_bytes: int, bar_name, watchdog: _Watchdog) -> None:
    """Copy the body into ``f``; refuse too many bytes, or too few."""
    size = response.headers.get("Content-Length")
    total = int(size) if size and size.isdigit() else None
    if total is not None and total > max_bytes:
        raise _Refused(f"the server announces {total:,} bytes, more than the "
                       f"{max_bytes:,} this file may have")
    read = getattr(response, "read1", response.read)
    done = 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
              desc=bar_name or "", leave=False,
              disable=not bar_name or (total or _BAR_FROM) < _BAR_FROM) as bar:
        while not watchdog.expired() and (chunk := read(_CHUNK)):
            done += len(chunk)
            if done > max_bytes:
                raise _Refused(f"more than the {max_bytes:,} bytes this file may "
                               "have (an endless answer?)")
            f.write(chunk)
            bar.update(len(chunk))
    if total is not None and done != total and not watchdog.fired:
        raise _Refused(f"truncated transfer: {done:,} of {total:,} bytes")


def _cause(err) -> str:
    """A short cause: 'Connection refused', 'IncompleteRead', ..."""
    text = getattr(err, "strerror", None) or str(err) or type(err).__name__
    return " ".join(str(text).split())[:300]


# -------------------------------------------------------------------- checks
def kind(name: str) -> Optional[str]:
    """What a file's name says it is: tar, zip, gzip, json, jsonl, torch, None."""
    name = name.lower()
    for suffixes, what in ((_TAR, "tar"), ((".zip", ".npz"), "zip"), (".gz", "gzip"),
                           (".json", "json"), (".jsonl", "jsonl"),
                           ((".pt", ".pth"), "torch")):
        if name.endswith(suffixes):
            return what
    return None


def _verify(path: Path, name: str, digest, check) -> None:
    """Every check of the module docstring, on the downloaded ``path``."""
    what = kind(name)
    with open(path, "rb") as f:
        head = f.read(512)
    if _is_html(head):
        raise _Refused(f"the server sent an HTML page, not the {what or 'file'} "
                       "expected (a login or error page? check the URL)")
    if digest is not None:
        algorithm, want = digest
        got = file_digest(path, algorithm)
        if got != want.lower():
            raise _Refused(f"{algorithm.upper()} mismatch (got {got}, expected "
                           f"{want}): a corrupt or different file")
    try:
        _CHECKS.get(what, lambda p, h: None)(path, head)
        if check is not None:
            check(path)
    except (ValueError, OSError, EOFError, zlib.error, tarfile.TarError,
            zipfile.BadZipFile) as err:
        raise _Refused(_cause(err)) from None


#: Python's extraction filter that refuses unsafe tar members (3.11.4 and later);
#: older versions rely on :func:`check_member` alone.
TAR_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def check_member(name: str, archive: str) -> None:
    """Refuse (``ValueError``) an archive member whose path would land outside
    the folder it is extracted into: absolute, with a drive, or with ``..``."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or ":" in name:
        raise ValueError(f"{archive}: member {name!r} would be written outside "
                         "the target folder; refused")


def _is_html(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<body"))


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """Hex digest of a file (``"md5"``, ``"sha256"``, ...), read by blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _check_zip(path: Path, head: bytes) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ValueError(f"not a readable zip archive, truncated or corrupt "
                         f"({_cause(err)})") from None
    if bad is not None:
        raise ValueError(f"corrupt zip archive: member {bad} fails its CRC")


def _check_tar(path: Path, head: bytes) -> None:
    try:
        with tarfile.open(path) as archive:
            count = sum(1 for _ in archive)  # reads every header, to the end
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        raise ValueError(f"not a readable tar archive, truncated or corrupt "
                         f"({_cause(err)})") from None
    if count == 0:
        raise ValueError("an empty tar archive")


def _check_gzip(path: Path, head: bytes) -> None:
    if not head.startswith(b"\x1f\x8b"):
        raise ValueError("not a gzip file")
    try:
        with gzip.open(path) as f:
            size = 0
            while block := f.read(1 << 20):
                size += len(block)
                if size > MAX_GZIP_BYTES:
                    raise ValueError(f"decompresses to over {MAX_GZIP_BYTES:,} "
                                     "bytes (a gzip bomb?)")
    except (OSError, EOFError, zlib.error) as err:
        raise ValueError(f"truncated or corrupt gzip ({_cause(err)})") from None


def _check_json(path: Path, head: bytes, lines: bool = False) -> None:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ValueError(f"over {MAX_JSON_BYTES:,} bytes: not the JSON file expected")
    try:
        text = path.read_text(encoding="utf-8")
        for line in (text.splitlines() if lines else [text]):
            if line.strip() or not lines:
                json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not valid JSON ({_cause(err)})") from None


def _check_torch(path: Path, head: bytes) -> None:
    if not head.startswith((b"PK\x03\x04", b"\x80")):  # zip, or legacy pickle
        raise ValueError("not a PyTorch file (neither a zip nor a pickle)")


_CHECKS = {"zip": _check_zip, "tar": _check_tar, "gzip": _check_gzip,
           "json": _check_json, "jsonl": functools.partial(_check_json, lines=True),
           "torch": _check_torch}


# ------------------------------------------------------------------- folders
@contextlib.contextmanager
def own_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Create ``folder`` (and missing parents) for a download; if the block
    fails (any exception, Ctrl-C included), remove those it created that are
    still empty, so that a failed download leaves no empty folder behind."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield folder
    except BaseException:
        for path in created:  # the deepest first
            try:
                path.rmdir()
            except OSError:  # not empty: it holds something else now
                break
        raise


def clear_stale(folder: str | os.PathLike, pattern: str,
                timeout: float = TIMEOUT) -> list:
    """Remove the staging files or folders matching ``pattern`` in ``folder``
    that nothing touched for :data:`STALE_AFTER` seconds (and ``timeout``): a
    killed download left them, as a live one writes more often. Returns them."""
    gone, now = [], time.time()
    for path in Path(folder).glob(pattern):
        inner = path.rglob("*") if path.is_dir() else ()
        with contextlib.suppress(OSError):
            newest = max(p.stat().st_mtime for p in (path, *inner))
            if now - newest > max(STALE_AFTER, timeout):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
                gone.append(path)
    return gone
