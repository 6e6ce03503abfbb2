"""The released SRVP models: download one into an experiment folder (book ch. 8).

The official README links the trained models to the authors' server,
https://data.lip6.fr/srvp/. A copy of the same files is kept on the Hugging Face
Hub (``nkiyohara/srvp-pretrained-model-mirror``), one folder per model holding
``config.json`` and ``model.pt``: ``mmnist/stochastic``, ``mmnist/deterministic``,
``kth``, ``human`` and ``bair``. One model per dataset is known; the KTH model
trained with Δt = 1 (paper, Table 8) is not in the mirror.

:func:`download_official` tries its sources in turn and writes the folder that
:func:`srvp.load_official` reads. A source is the URL of a folder (ending with
``/``; ``file://`` works too) holding those files, or of a ``.zip`` / ``.tar``
(``.gz``, ``.bz2``, ``.xz``) archive holding such a folder. The authors' server is
assumed to lay its files out as the mirror does; that was not checked here
(no internet), so when it does not, the mirror serves them.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Dict, NamedTuple, Optional, Sequence, Tuple

from . import download
from .run_folder import BEST_WEIGHTS, CONFIG, WEIGHTS, load_official

#: The authors' server, linked from the official README.
AUTHORS_URL = "https://data.lip6.fr/srvp/"
#: A public copy of the released files on the Hugging Face Hub.
MIRROR_URL = ("https://huggingface.co/nkiyohara/srvp-pretrained-model-mirror/"
              "resolve/main/")
ARCHIVES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
#: Size caps (bytes): a ``config.json``; a model or an archive of models.
MAX_CONFIG_BYTES, MAX_BYTES = 1 << 20, 4 << 30


class Release(NamedTuple):
    """One released model: where it sits on the servers, and what it is."""

    path: str  # folder under each server, e.g. "mmnist/stochastic"
    description: str
    optional: Tuple[str, ...] = ()  # files fetched when the source has them

    @property
    def urls(self) -> Tuple[str, ...]:
        """Sources tried in order: the authors' server, then the mirror."""
        return tuple(base + self.path + "/" for base in (AUTHORS_URL, MIRROR_URL))


#: The released models, by the dataset name of :class:`srvp.Config`. The README
#: evaluates KTH and Human3.6M with ``model_best.pt``, fetched where present.
RELEASES: Dict[str, Release] = {
    "smmnist": Release("mmnist/stochastic", "Stochastic Moving MNIST"),
    "mmnist": Release("mmnist/deterministic", "deterministic Moving MNIST"),
    "kth": Release("kth", "KTH (trained with dt = 1/2)", (BEST_WEIGHTS,)),
    "human": Release("human", "Human3.6M (trained with dt = 1/2)", (BEST_WEIGHTS,)),
    "bair": Release("bair", "BAIR robot pushing (trained with dt = 1/2)"),
}


class DownloadError(download.DownloadError):
    """No source gave a model that loads (offline, moved, or corrupt files)."""


class OtherModelError(ValueError):
    """The folder holds the released model of another dataset."""


class Fetched(NamedTuple):
    """What :func:`download_official` did."""

    folder: Path
    url: Optional[str]  # the source used; None when the folder was already there


def download_official(dataset: str, out, urls: Sequence[str] = (),
                      force: bool = False, progress: bool = True,
                      timeout: Optional[float] = None,
                      deadline: Optional[float] = None) -> Fetched:
    """Download the released model of ``dataset`` into the folder ``out``.

    Parameters
    ----------
    dataset : a key of :data:`RELEASES` (smmnist, mmnist, kth, human, bair).
    out : the experiment folder written (created if needed).
    urls : extra sources, tried before the release's own (:attr:`Release.urls`).
    force : download again even if ``out`` already holds the model.
    progress : show a progress bar on files over 1 MiB.
    timeout, deadline : seconds without a byte, and for each whole file
        (defaults of :mod:`srvp.download`).

    Returns
    -------
    :class:`Fetched`. A folder that already holds a model of ``dataset`` that
    loads is kept as is, without any request (unless ``force``). Files are
    fetched by :func:`srvp.download.fetch` (size caps :data:`MAX_CONFIG_BYTES`
    and :data:`MAX_BYTES`, no HTML page, ``config.json`` parses, archives
    whole) into a hidden ``.download-*`` folder inside ``out``, loaded with
    :func:`~srvp.load_official`, and only then renamed into place: ``out``
    never holds a partial or unchecked file. The staging folder goes on every
    exit (one a killed process left goes on the next call), and an ``out``
    created here is removed again when no source worked.

    Raises
    ------
    ValueError : unknown dataset, or ``out`` holds another dataset's model.
    DownloadError : no source worked; the message names each URL and why.
    """
    if dataset not in RELEASES:
        raise ValueError(f"dataset {dataset!r}: no released model; choose one of "
                         f"{', '.join(RELEASES)}")
    release, out = RELEASES[dataset], Path(out).expanduser()
    if not force and _holds(out, dataset):
        return Fetched(out, None)
    limits = {"progress": progress, "timeout": timeout, "deadline": deadline}
    tried = []
    with download.own_folder(out):
        download.clear_stale(out, ".download-*", timeout or download.TIMEOUT)
        for url in (*urls, *release.urls):
            staging = Path(tempfile.mkdtemp(dir=out, prefix=".download-"))
            try:
                folder = _get(url, staging, release, limits)
                _check(folder, dataset)
                _install(folder, out)
                return Fetched(out, url)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile,
                    tarfile.TarError) as err:
                tried.append(f"{url} ({_reason(err)})")
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        raise DownloadError(
            f"could not download the released {release.description} model; tried "
            f"{'; '.join(tried)}. Offline? Fetch {CONFIG} and {WEIGHTS} by hand "
            f"from one of these sources into {out}")


def _install(folder: Path, out: Path) -> None:
    """Rename the checked files into ``out``, ``config.json`` last; a
    ``model_best.pt`` the new model lacks goes (it belonged to the old one)."""
    for name in (WEIGHTS, BEST_WEIGHTS, CONFIG):
        if (folder / name).is_file():
            os.replace(folder / name, out / name)
        elif name == BEST_WEIGHTS and (out / name).exists():
            (out / name).unlink()


def _holds(out: Path, dataset: str) -> bool:
    """True if ``out`` holds a loadable model of ``dataset``; a model of another
    dataset raises (it is not overwritten without ``force``)."""
    if not ((out / CONFIG).is_file() and (out / WEIGHTS).is_file()):
        return False
    try:
        _check(out, dataset)
    except OtherModelError:
        raise
    except ValueError:
        return False  # unreadable or mismatched files: fetch them again
    return True


def _check(folder: Path, dataset: str) -> None:
    """Load the folder as :func:`~srvp.load_official` does (``model_best.pt``
    too, where present); check its dataset."""
    _, cfg = load_official(folder)
    if (folder / BEST_WEIGHTS).is_file():
        load_official(folder, checkpoint=BEST_WEIGHTS)
    if cfg.dataset != dataset:
        raise OtherModelError(f"{folder} holds a model of {cfg.dataset!r}, "
                         f"not {dataset!r}; choose another folder or force a new "
                         "download")


def _get(url: str, staging: Path, release: Release, limits: dict) -> Path:
    """Fetch one source into ``staging``; return the folder holding the files."""
    if url.lower().endswith(ARCHIVES):
        archive = staging / PurePosixPath(url.split("?")[0]).name
        download.fetch(url, archive, max_bytes=MAX_BYTES, **limits)
        _extract(archive, staging / "x")
        return _find_experiment(staging / "x", release.path)
    base = url if url.endswith("/") else url + "/"
    for name in (CONFIG, WEIGHTS, *release.optional):
        cap = MAX_CONFIG_BYTES if name == CONFIG else MAX_BYTES
        try:
            download.fetch(base + name, staging / name, max_bytes=cap, **limits)
        except download.DownloadError as err:
            if not (err.missing and name in release.optional):
                raise
    return staging


def _extract(archive: Path, dest: Path) -> None:
    """Unpack a zip or tar archive into ``dest``, refusing any member that would
    land outside it (absolute paths, ``..``, links, devices)."""
    dest.mkdir()
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                download.check_member(name, archive.name)
            z.extractall(dest)
        return
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            download.check_member(m.name, archive.name)
            if not (m.isfile() or m.isdir()):
                raise ValueError(f"{archive.name}: member {m.name!r} is a link or "
                                 "a special file; refused")
        tar.extractall(dest, members=members, **download.TAR_FILTER)


def _find_experiment(root: Path, release_path: str) -> Path:
    """The folder of an unpacked archive that holds ``config.json``: the only
    one, or the one under the release's own path (an archive of all models)."""
    folders = sorted(p.parent for p in root.rglob(CONFIG))
    if len(folders) > 1:
        folders = [f for f in folders if f.as_posix().endswith("/" + release_path)]
    if len(folders) != 1:
        raise ValueError(f"the archive holds {len(folders) or 'no'} folder(s) with "
                         f"{CONFIG} for {release_path}")
    return folders[0]


def _reason(err: BaseException) -> str:
    """A short, one-line cause: 'HTTP 404', 'Connection refused', ..."""
    if isinstance(err, download.DownloadError):
        return err.reason
    return " ".join(str(err).split())[:300] or type(err).__name__
