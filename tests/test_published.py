"""book/published.csv, the one table of published numbers, and the pages that
show them: the README's results table and chapter 8's tables."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from srvp.book import read_published

ROOT = Path(__file__).resolve().parents[1]
STATUSES = {"confirmed", "disputed", "single source"}
METRICS = ("fvd", "psnr", "ssim", "lpips")
NUMBER = re.compile(r"(\d+(?:\.\d+)?) ± (\d+(?:\.\d+)?)")


def published() -> dict[tuple[str, str, str], dict]:
    return read_published(ROOT / "book")


def test_every_row_is_complete_and_explained():
    rows = published()
    assert len(rows) >= 30
    for key, r in rows.items():
        assert r["status"] in STATUSES, key
        assert r["metric"] in METRICS, key
        float(r["value"]), float(r["ci95"])
        assert set(r["sources"].split(";")) <= {"1", "2", "3"}, key
        if r["status"] != "confirmed":
            assert r["note"], f"{key}: a {r['status']} number says why"


def test_the_readme_shows_the_table_and_labels_it():
    rows = published()
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("|") or "the paper" not in line:
            continue
        method = "SRVP" if "SRVP" in line else "SVG"
        shown = NUMBER.findall(line)
        assert len(shown) == 2, line
        label = line.split("|")[1]
        for (value, ci), metric in zip(shown, ("psnr", "ssim")):
            r = rows[("smmnist", method, metric)]
            assert (value, ci) == (r["value"], r["ci95"]), line
            if r["status"] != "confirmed":
                assert r["status"] in label, f"the README does not say {r['status']}"


def chapter_8_tables() -> dict[str, list[list[str]]]:
    """The Markdown tables of chapter 8's section on published numbers, by
    dataset, as rows of cells."""
    text = (ROOT / "book" / "08_reproducing.md").read_text(encoding="utf-8")
    section = text[text.index("## The published numbers"):]
    section = section[:section.index("\n## ", 5)]
    names = {"KTH": "kth", "BAIR": "bair", "Stochastic Moving MNIST": "smmnist"}
    tables = {}
    for title, dataset in names.items():
        start = section.index(f"**{title}**")
        block = section[start:].split("\n\n")[1]
        tables[dataset] = [[c.strip() for c in line.strip("|").split("|")]
                           for line in block.splitlines()[2:]]
    return tables


@pytest.mark.parametrize("dataset", ["kth", "bair", "smmnist"])
def test_chapter_8_shows_the_table_with_its_doubts(dataset):
    rows = published()
    for cells in chapter_8_tables()[dataset]:
        method = cells[0].split(" {cite")[0]
        for metric, cell in zip(METRICS, cells[1:]):
            key = (dataset, method, metric)
            found = NUMBER.search(cell)
            if key not in rows:
                assert found is None, f"{key}: {cell} is in no source of published.csv"
                continue
            assert found and found.groups() == (rows[key]["value"], rows[key]["ci95"])
            if rows[key]["status"] != "confirmed":
                assert "[^" in cell, f"{key}: {cell} needs its footnote"
