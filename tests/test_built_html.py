"""The rendered book as a reader meets it: what ``make test`` built into
``_build/smoke_html`` (``make book``: ``_build/html``) before the tests run.

Run alone, without a built book, these tests skip locally and fail under CI
(``$CI`` set), where ``make test`` always renders first.
"""
from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILT = [ROOT / "_build" / "smoke_html", ROOT / "_build" / "html"]
#: A Markdown table's separator row (``| --- |``, ``|:---:|``) left as text.
TABLE_AS_TEXT = re.compile(r"\|\s*:?-{3,}:?\s*\|")


def built_pages() -> list[Path]:
    for folder in BUILT:
        pages = sorted((folder / "book").glob("*.html"))
        if pages:
            return pages
    if os.environ.get("CI"):
        pytest.fail("no rendered book under _build/: `make test` renders it first")
    pytest.skip("no rendered book under _build/ (run `make test` or `make book`)")


class PageText(HTMLParser):
    """The text a reader sees in the outputs and prose of a page: scripts,
    styles and the code of the cells (the ``cell_input`` blocks) left out."""

    def __init__(self):
        super().__init__()
        self.stack: list[bool] = []  # per open element: does it hide its text?
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        hidden = tag in ("script", "style") or "cell_input" in classes
        if tag not in ("br", "img", "meta", "link", "input", "hr", "source"):
            self.stack.append(hidden)

    def handle_endtag(self, tag):
        if self.stack and tag not in ("br", "img", "meta", "link", "input", "hr"):
            self.stack.pop()

    def handle_data(self, data):
        if not any(self.stack):
            self.parts.append(data)


def page_text(page: Path) -> str:
    parser = PageText()
    parser.feed(page.read_text(encoding="utf-8"))
    return "".join(parser.parts)


@pytest.fixture(scope="module")
def pages():
    return {page.stem: page_text(page) for page in built_pages()}


def test_the_text_filter_sees_outputs_and_not_code():
    parser = PageText()
    parser.feed('<div class="cell_input"><pre>"| --- |"</pre></div>'
                '<div class="cell_output"><pre>| a |\n| --- |</pre></div><p>prose</p>')
    assert "".join(parser.parts) == "| a |\n| --- |prose"


def test_every_table_renders_as_a_table(pages):
    """A table printed by a cell (Markdown output) is an HTML table on the page,
    not run-on text full of bars."""
    left = {name: TABLE_AS_TEXT.findall(text) for name, text in pages.items()}
    assert not {name: found for name, found in left.items() if found}
    assert len(pages) >= 9


def test_no_nbval_marker_on_the_page():
    """nbval's markers are cell tags, not comments shown in the code."""
    shown = [p.stem for p in built_pages() if "NBVAL" in p.read_text(encoding="utf-8")]
    assert not shown


def test_no_page_loads_a_remote_script():
    """Scripts (MathJax among them) are served from the book, so that its pages
    read offline."""
    remote = re.compile(r"<script[^>]*\ssrc=\"(?:https?:)?//", re.IGNORECASE)
    assert not [p.stem for p in built_pages() if remote.search(p.read_text("utf-8"))]


@pytest.mark.slow
def test_equations_render_with_the_network_cut(tmp_path):
    """In headless Chromium that resolves no host but 127.0.0.1, the chapter of
    the derivation shows its equations typeset, none as raw TeX or an error."""
    from browser import Browser, serve

    page = next(p for p in built_pages() if p.stem == "03_residual_update")
    browser = Browser(tmp_path / "profile", offline=True)
    try:
        with serve(page.parents[1]) as url:
            browser.open(url + "book/" + page.name)
            typeset = browser.wait(
                "window.MathJax && MathJax.startup && MathJax.startup.promise"
                ".then(() => document.querySelectorAll('mjx-container').length)",
                timeout=60)
            maths = browser.eval("document.querySelectorAll('.math').length")
            errors = browser.eval("document.querySelectorAll('mjx-merror').length")
    finally:
        browser.close()
    assert maths >= 10 and typeset >= maths and errors == 0


CLIPPED = """Array.from(document.querySelectorAll('div.cell_output pre'))
  .filter(e => e.scrollWidth > e.clientWidth + 1).length"""


@pytest.mark.slow
def test_no_printed_output_is_clipped(tmp_path):
    """At a laptop's width, no printed output is wider than its box (a reader
    would have to scroll it sideways to read it)."""
    from browser import Browser, serve

    pages = built_pages()
    browser = Browser(tmp_path / "profile", offline=True, width=1280)
    clipped = {}
    try:
        with serve(pages[0].parents[1]) as url:
            for page in pages:
                browser.open(url + "book/" + page.name)
                browser.wait("document.readyState === 'complete'", timeout=60)
                clipped[page.stem] = browser.eval(CLIPPED)
    finally:
        browser.close()
    assert not {name: n for name, n in clipped.items() if n}
