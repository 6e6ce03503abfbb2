"""scripts/build_book.py settles MNIST once, before any chapter runs."""
import os
import shutil
from pathlib import Path

import pytest
from helpers import build_book_script

import srvp.data.mnist_idx as mnist_idx

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def script(tmp_path, monkeypatch):
    """The build script with no MNIST beside the repository, its download folder
    in ``tmp_path``, and chapters that only record that they ran."""
    module = build_book_script()
    for name in ("SRVP_MNIST_DIR", "SRVP_BOOK_DIR"):  # main() sets both: restored
        monkeypatch.setenv(name, "unset-by-the-test")
        monkeypatch.delenv(name)
    monkeypatch.setattr(module, "MNIST_BESIDE", tmp_path / "beside")
    monkeypatch.setattr(module, "MNIST_DOWNLOAD", tmp_path / "download")
    module.ran = []
    monkeypatch.setattr(module, "run_chapter",
                        lambda md, *_: module.ran.append(md.stem) or 0.0)
    return module


def test_the_folder_the_user_names_is_used(script, tiny_mnist_dir, monkeypatch):
    monkeypatch.setenv("SRVP_MNIST_DIR", str(tiny_mnist_dir))
    assert script.chapter_env() == {"SRVP_BOOK_DIR": str(REPO / "book"),
                                    "SRVP_MNIST_DIR": str(tiny_mnist_dir)}


def test_a_named_folder_without_the_files_stops_with_one_message(script, tmp_path,
                                                                  monkeypatch):
    monkeypatch.setenv("SRVP_MNIST_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="SRVP_MNIST_DIR=.* lacks MNIST"):
        script.chapter_env()


def test_offline_without_mnist_no_chapter_runs(script, monkeypatch, capsys):
    def offline(folder, **_):
        raise mnist_idx.MNISTNotFoundError("no route to host")

    monkeypatch.setattr(mnist_idx, "download_mnist", offline)
    with pytest.raises(SystemExit) as stop:
        script.main(["--no-render"])
    message = str(stop.value)
    assert message.count("\n") == 0 and "SRVP_MNIST_DIR" in message
    assert "MNIST" in message and "internet" in message
    assert script.ran == []  # stopped before the first chapter


def test_mnist_is_downloaded_once_then_reused(script, tiny_mnist_dir, monkeypatch,
                                              capsys):
    calls = []

    def download(folder, **_):
        calls.append(folder)
        shutil.copytree(tiny_mnist_dir, folder)

    monkeypatch.setattr(mnist_idx, "download_mnist", download)
    assert script.main(["--no-render"]) == 0
    os.environ.pop("SRVP_MNIST_DIR")  # set for the chapters by the first build
    assert script.main(["--no-render"]) == 0
    assert calls == [script.MNIST_DOWNLOAD]
    out = capsys.readouterr().out
    assert "(downloaded now)" in out and "(downloaded before)" in out
    assert len(script.ran) == 2 * len(script.notebook_chapters(REPO))


# ------------------------------------------------------- MathJax served offline
def make_tarball(path: Path, files: dict[str, bytes]) -> str:
    """A .tgz with ``files`` (name -> bytes); returns npm's integrity string."""
    import base64
    import hashlib
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


@pytest.fixture
def assets():
    build_book_script()  # puts scripts/ on sys.path
    import offline_assets

    return offline_assets


def test_mathjax_is_fetched_once_and_only_what_pages_load_is_kept(assets, tmp_path):
    tgz = tmp_path / "mathjax.tgz"
    sha = make_tarball(tgz, {
        "package/LICENSE": b"license",
        "package/es5/tex-mml-chtml.js": b"// page script",
        "package/es5/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff": b"font",
        "package/es5/tex-svg.js": b"// another component",
        "package/es5/ui/../../../escape.js": b"outside"})
    cache = tmp_path / "cache"
    folder = assets.mathjax_folder(cache, url=tgz.as_uri(), sha512=sha)
    kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert kept == ["LICENSE", "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
                    "tex-mml-chtml.js"]
    assert not (tmp_path / "escape.js").exists()
    tgz.unlink()  # the second build reads the cache
    assert assets.mathjax_folder(cache, url=tgz.as_uri(), sha512=sha) == folder


@pytest.mark.parametrize("case", ["wrong checksum", "no page script"])
def test_a_bad_mathjax_tarball_leaves_nothing(assets, tmp_path, case):
    tgz = tmp_path / "mathjax.tgz"
    files = {"package/es5/tex-svg.js": b"x"} if case == "no page script" else \
        {"package/es5/tex-mml-chtml.js": b"x"}
    sha = make_tarball(tgz, files)
    with pytest.raises(OSError, match="SHA512 mismatch" if case == "wrong checksum" else
                       "no es5/tex-mml-chtml.js"):
        assets.mathjax_folder(tmp_path / "cache", url=tgz.as_uri(),
                              sha512=sha if case == "no page script" else "AAAA")
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(cache.iterdir())


def test_executed_chapters_keep_no_widget_state(tmp_path, monkeypatch):
    """A page whose notebook holds widget state loads scripts from CDNs: the
    executed copies drop it."""
    import nbformat

    module = build_book_script()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {}}
    monkeypatch.setattr(module.jupytext, "read", lambda md: nb)
    monkeypatch.setattr(module.papermill, "execute_notebook",
                        lambda source, target, **_: nbformat.from_dict(nb))
    module.run_chapter(tmp_path / "01_x.md", "smoke", tmp_path)
    executed = nbformat.read(tmp_path / "01_x.ipynb", as_version=4)
    assert "widgets" not in executed.metadata
