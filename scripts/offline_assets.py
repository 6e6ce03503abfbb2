"""The JavaScript the rendered book needs, served from the book itself.

Sphinx points every page at MathJax on a CDN; without the network the equations
then show as raw TeX. :func:`mathjax_folder` fetches MathJax once, at a pinned
version, from the npm registry (through the package's one download path,
:func:`srvp.download.fetch`: size cap, timeouts, SHA-512 checked before anything is
kept), into ``_build/vendor/``; ``scripts/build_book.py`` copies it into the site's
``_static/`` and points ``mathjax_path`` at it. Kept: the combined TeX + MathML
component with its CommonHTML fonts, the TeX extensions it loads on demand, and
the menu's accessibility components. Where the registry cannot be reached, the
book falls back to the CDN and says so.
"""
from __future__ import annotations

import base64
import shutil
import tarfile
import tempfile
from pathlib import Path

from srvp.download import fetch

MATHJAX_VERSION = "3.2.2"
MATHJAX_URL = f"https://registry.npmjs.org/mathjax/-/mathjax-{MATHJAX_VERSION}.tgz"
#: npm's ``dist.integrity`` of that tarball
MATHJAX_SHA512 = ("Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsj"
                  "KPZGJvtRZM1vO+geW0OhGw==")
MATHJAX_MAX_BYTES = 16 * 2**20  # the tarball is about 6 MB
#: What the pages load, relative to the package's ``es5/`` folder
MATHJAX_KEEP = ("tex-mml-chtml.js", "output/chtml/fonts/", "input/tex/extensions/",
                "ui/", "a11y/")
#: The page script, relative to the folder :func:`mathjax_folder` returns
MATHJAX_ENTRY = "tex-mml-chtml.js"


def unpack(tarball: Path, keep: tuple[str, ...], prefix: str, out: Path) -> int:
    """Write the regular files of ``tarball`` under ``prefix`` whose path (after
    the prefix) starts with one of ``keep`` into ``out``; return their count."""
    count = 0
    with tarfile.open(tarball, mode="r:gz") as archive:
        for member in archive.getmembers():
            if not member.isfile() or not member.name.startswith(prefix):
                continue
            rel = member.name[len(prefix):]
            parts = Path(rel).parts
            if ".." in parts or Path(rel).is_absolute() or not rel.startswith(keep):
                continue
            target = out.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.extractfile(member).read())
            count += 1
    return count


def mathjax_folder(cache: Path, url: str = MATHJAX_URL,
                   sha512: str = MATHJAX_SHA512) -> Path:
    """The folder holding MathJax's page script (:data:`MATHJAX_ENTRY`) and what
    it loads, fetched into ``cache`` the first time. Raises ``OSError`` (a
    :class:`srvp.download.DownloadError` for the transfer and its checks) when it
    cannot be had; nothing is then left in ``cache``."""
    folder = cache / f"mathjax-{MATHJAX_VERSION}"
    if (folder / MATHJAX_ENTRY).is_file():
        return folder
    staging = Path(tempfile.mkdtemp(prefix=".mathjax-", dir=_made(cache)))
    try:
        tarball = fetch(url, staging / "mathjax.tgz", max_bytes=MATHJAX_MAX_BYTES,
                        digest=("sha512", base64.b64decode(sha512).hex()),
                        progress=False)
        unpack(tarball, MATHJAX_KEEP, "package/es5/", staging / "es5")
        if not (staging / "es5" / MATHJAX_ENTRY).is_file():
            raise OSError(f"{url} holds no es5/{MATHJAX_ENTRY}")
        unpack(tarball, ("LICENSE",), "package/", staging / "es5")
        (staging / "es5").rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
