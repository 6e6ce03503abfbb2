"""srvp.book: how chapters find the book folder, MNIST and the shipped model."""
from pathlib import Path

import pytest
from helpers import dead_url

from srvp import book
from srvp.book import find_book, find_mnist, shipped_run

REPO = Path(__file__).resolve().parents[1]


def test_find_book_is_the_setting_else_the_working_directory(tmp_path,
                                                            monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SRVP_BOOK_DIR", raising=False)
    assert find_book() == tmp_path  # a chapter run on its own: its folder
    (tmp_path / "runs").mkdir()  # no marker file is looked for
    monkeypatch.setenv("SRVP_BOOK_DIR", str(REPO / "book"))
    assert find_book() == REPO / "book"


def test_find_mnist_is_the_setting_else_a_local_download(tmp_path, monkeypatch):
    monkeypatch.setenv("SRVP_MNIST_DIR", str(tmp_path))
    assert find_mnist(download=False) == tmp_path.resolve()
    monkeypatch.delenv("SRVP_MNIST_DIR")
    monkeypatch.chdir(tmp_path)
    assert find_mnist(download=False) == tmp_path / "data" / "mnist"


def test_shipped_run_uses_local_files(tmp_path):
    run = tmp_path / "runs" / "cpu"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "model.pt").write_bytes(b"")
    assert shipped_run(tmp_path) == run  # nothing to fetch: no network used


def test_shipped_run_fetches_another_run_from_its_own_folder(tmp_path, monkeypatch,
                                                            serve):
    upstream = tmp_path / "upstream"
    (upstream / "runs" / "svg_cpu").mkdir(parents=True)
    (upstream / "runs" / "svg_cpu" / "config.json").write_text("{}")
    server = serve(upstream)
    monkeypatch.setattr(book, "RAW_URL", server.url)
    run = shipped_run(tmp_path / "book", ("config.json",), optional=("results.json",),
                      run="svg_cpu")
    assert run == tmp_path / "book" / "runs" / "svg_cpu"
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    assert server.requests == ["/runs/svg_cpu/config.json",
                               "/runs/svg_cpu/results.json"]


def test_shipped_run_offline_raises_and_leaves_no_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(book, "RAW_URL", dead_url())
    with pytest.raises(OSError, match="put it at .*svg_cpu/config.json"):
        shipped_run(tmp_path / "book", run="svg_cpu")
    assert not (tmp_path / "book").exists()


def test_a_widget_without_kernel_shows_its_fallback_text():
    """A saved notebook opened without a kernel shows the output's plain text:
    the sentence given, not the widget's repr."""
    widgets = pytest.importorskip("ipywidgets")
    from IPython.core.formatters import DisplayFormatter

    from srvp.book import Interactive

    box = widgets.VBox([widgets.IntSlider()])
    data, _ = DisplayFormatter().format(Interactive(box, "Run the cell to choose."))
    assert data["text/plain"] == "Run the cell to choose."
    assert "application/vnd.jupyter.widget-view+json" in data
    assert "VBox" in DisplayFormatter().format(box)[0]["text/plain"]


def test_published_numbers_come_with_their_status():
    from srvp.book import published_cell, read_published

    rows = read_published(REPO / "book")
    assert published_cell(rows, "smmnist", "SRVP", "psnr") == "16.93 ± 0.07"
    assert published_cell(rows, "smmnist", "SVG", "psnr") == \
        "14.50 ± 0.04 (single source)"
    assert published_cell(rows, "kth", "SV2P", "ssim").endswith("(disputed)")
    assert published_cell(rows, "smmnist", "SRVP", "lpips") == "(not found)"


def test_history_configs_are_the_shipped_runs_configs():
    """history_config rebuilds a run's config from its chain of --set changes:
    for every shipped run it is the config.json the run was trained with."""
    from srvp import Config
    from srvp.book import history_config, read_history

    history = read_history(REPO / "book")
    shipped = [name for name in history
               if (REPO / "book" / "runs" / name / "config.json").exists()]
    assert "cpu" in shipped and "cpu_direct" in shipped
    for name in shipped:
        expected = Config.load(REPO / "book" / "runs" / name / "config.json")
        assert history_config(history, name) == expected, name
    assert history_config(history, "cpu_direct").dynamics == "direct"


def test_read_history_fetches_the_table_a_lone_chapter_lacks(tmp_path, monkeypatch,
                                                             serve):
    upstream = tmp_path / "upstream"
    (upstream / "runs").mkdir(parents=True)
    (upstream / "runs" / "history.csv").write_text(
        "run,parent,preset,changes\nroot,,cpu,--set nf=8\nchild,root,,--set nz=3\n")
    server = serve(upstream)
    monkeypatch.setattr(book, "RAW_URL", server.url)
    history = book.read_history(tmp_path / "book")
    assert list(history) == ["root", "child"]
    assert server.requests == ["/runs/history.csv"]
    cfg = book.history_config(history, "child")
    assert (cfg.nf, cfg.nz) == (8, 3)
