"""Safe writes: every file the package produces appears whole or not at all, a
full disk is reported as such, and a folder has at most one writer."""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path
from typing import Iterator, List, Optional

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; FolderLock does nothing there
    fcntl = None


def folder_problem(folder: str | os.PathLike) -> Optional[str]:
    """Why ``folder`` cannot be made or written, reading only (None: it can).

    ``folder`` itself, or the nearest of its parents that exists, must be a
    folder this process can write in. The message names no option: each
    command adds its own.
    """
    if not str(folder).strip():
        return ("'' is an empty path: name a folder (. for the current one)")
    folder = Path(folder).expanduser()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        where = "" if existing == folder else f": {existing}"
        return f"{folder}{where} is a file, not a folder: choose a folder path"
    if not os.access(existing, os.W_OK | os.X_OK):
        return (f"{folder}: cannot write in {existing} (permission denied): "
                "choose another folder")
    return None


#: The errors of a full disk: no space left, or the user's quota reached.
FULL_DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(OSError):
    """A write failed for want of space; the message names the file."""

    def __str__(self) -> str:
        return self.strerror


def full_disk_cause(err: BaseException) -> Optional[OSError]:
    """The ``OSError`` of a full disk (ENOSPC, EDQUOT) that ``err`` is or was
    raised from (its ``__cause__`` or ``__context__``), or None. A full disk
    under ``torch.save`` surfaces as a ``RuntimeError`` raised while handling
    the ``OSError``."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in FULL_DISK_ERRNOS:
            return err
        err = err.__cause__ or err.__context__
    return None


@contextlib.contextmanager
def reporting_full_disk(target: str | os.PathLike) -> Iterator[None]:
    """Turn a full disk met in the block (an ``OSError`` ENOSPC or EDQUOT, or an
    error raised from one) into a :class:`DiskFullError` saying "no space left
    on device while writing ``target``"."""
    try:
        yield
    except DiskFullError:
        raise
    except Exception as err:
        cause = full_disk_cause(err)
        if cause is None:
            raise
        why = ("disk quota exceeded" if cause.errno == errno.EDQUOT
               else "no space left on device")
        raise DiskFullError(cause.errno, f"{why} while writing {target}") from err


@contextlib.contextmanager
def atomic_file(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``, renamed to it if the block succeeds.

    On any exception (or a kill) the temporary file goes and ``target`` keeps its
    previous content. The temporary file is named ``.NAME.XXXX.part``
    (:func:`remove_partials` clears those a kill left behind).
    """
    target = Path(target)
    with reporting_full_disk(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                   suffix=".part")
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)


def append_text(path: str | os.PathLike, text: str) -> None:
    """Append ``text`` to ``path`` (a full disk may leave a truncated last line)."""
    with reporting_full_disk(path), open(path, "a") as f:
        f.write(text)


def remove_partials(folder: str | os.PathLike) -> List[str]:
    """Delete the temporary files (``.NAME.XXXX.part``) that a killed writer left
    in ``folder``; return their names. Call it only while holding the folder's
    :class:`FolderLock`: another writer's temporaries would go too."""
    names = sorted(p.name for p in Path(folder).glob(".*.part") if p.is_file())
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.remove(Path(folder) / name)
    return names


class FolderLockedError(RuntimeError):
    """Another live process holds the lock."""


class FolderLock:
    """One writer per folder: an exclusive ``flock`` on the file ``path``, which
    holds the owner's pid (for the message of the next one).

    The operating system releases the lock when its process ends, however it
    ends, so a lock file left by a killed process blocks nobody.
    """

    def __init__(self, path: str | os.PathLike):
        self.path, self._fd = Path(path), None

    def holder(self) -> Optional[int]:
        """The pid of the live process holding the lock (0 if unknown), or None."""
        if fcntl is None or not self.path.is_file():
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            return _read_pid(fd)
        finally:
            os.close(fd)  # also drops the shared lock, if taken

    def acquire(self) -> None:
        """Take the lock, or raise :class:`FolderLockedError` naming its holder."""
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise FolderLockedError(
                    f"{self.path.parent} is in use by another trainer (pid "
                    f"{pid or 'unknown'}, holding {self.path.name}): wait for it to "
                    "end or stop it, or choose another --out") from None
            try:  # the previous holder may have removed the file meanwhile
                if os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and release the lock (a no-op if not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)
        os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (OSError, ValueError):
        return 0
