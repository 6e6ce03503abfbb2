"""srvp.book: how chapters find the book folder, MNIST and the shipped model."""
from pathlib import Path

from srvp.book import find_book, find_mnist, shipped_run

REPO = Path(__file__).resolve().parents[1]


def test_find_book_from_the_repo_and_from_a_copy(tmp_path):
    assert find_book(REPO) == REPO / "book"
    assert find_book(REPO / "book" / "_static") == REPO / "book"
    assert find_book(tmp_path) == tmp_path  # a lone notebook keeps its folder


def test_find_mnist_prefers_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SRVP_MNIST_DIR", str(tmp_path))
    assert find_mnist(REPO / "book", download=False) == tmp_path.resolve()


def test_shipped_run_uses_local_files(tmp_path):
    run = tmp_path / "_static" / "runs" / "cpu"
    run.mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "model.pt").write_bytes(b"")
    assert shipped_run(tmp_path) == run  # nothing to fetch: no network used
