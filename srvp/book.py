"""Small helpers the book's chapters share: where the book, MNIST and the model
trained for the book are, on a build machine, a laptop or Colab."""
from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

#: Where a chapter run on its own (Colab) fetches the book's files.
RAW_URL = "https://raw.githubusercontent.com/srvp-book/srvp/main/book/"
RUN = ("_static", "runs", "cpu")


def find_book(start=None) -> Path:
    """The ``book/`` folder, from the working directory or one of its parents.

    Chapters run from ``book/`` (papermill) or from a copy elsewhere (nbval);
    a notebook on its own (Colab) gets its working directory back.
    """
    here = Path.cwd() if start is None else Path(start)
    for folder in (here, *here.parents):
        for book in (folder, folder / "book"):
            if (book / "_static" / "runs").is_dir():
                return book
    return here


def find_mnist(book: Path, download: bool = True) -> Path:
    """The MNIST IDX files: ``$SRVP_MNIST_DIR``, the offline copy beside the
    repository (``../shared/data/mnist``), or ``data/mnist``, downloaded there
    when ``download`` (needs the internet)."""
    from .data.mnist import load_mnist

    for folder in (os.environ.get("SRVP_MNIST_DIR"),
                   Path(book) / ".." / ".." / "shared" / "data" / "mnist"):
        if folder and Path(folder).is_dir():
            return Path(folder).resolve()
    if download:
        for split in ("train", "test"):
            load_mnist("data/mnist", split=split, download=True)
    return Path("data/mnist").resolve()


def shipped_run(book: Path, names: Sequence[str] = ("config.json", "model.pt"),
                optional: Sequence[str] = ()) -> Path:
    """The folder of the model trained for the book; files missing there (a
    chapter on Colab) are fetched from the repository. Files in ``optional``
    may not exist upstream."""
    folder = Path(book).joinpath(*RUN)
    folder.mkdir(parents=True, exist_ok=True)
    for name in (*names, *optional):
        if (folder / name).exists():
            continue
        try:
            urllib.request.urlretrieve(RAW_URL + "/".join(RUN) + "/" + name,
                                       folder / name)
        except urllib.error.HTTPError:
            if name not in optional:
                raise
    return folder
