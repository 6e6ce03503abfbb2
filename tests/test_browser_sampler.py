"""The sampler of the book's pages (book/_static/sampler/sampler.js) in headless
Chromium: it draws the frames that the exported ONNX files give in Python for
the same seed, the same seed gives the same frames, and without its model it
says so in one line.

A small page with the same script and files is served from a temporary folder
on 127.0.0.1 to headless Chromium (``tests/browser.py``).
"""
import base64
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser import Browser, serve

SAMPLER = Path(__file__).resolve().parents[1] / "book" / "_static" / "sampler"
STATIC_LIMIT = 15 * 2**20  # bytes: everything under book/_static
ORT_VERSION = "1.18.0"  # onnxruntime-web, vendored in book/_static/sampler/ort
PAGE = """<!doctype html><html><body>
<div class="srvp-sampler" {attrs}></div>
<script src="sampler/sampler.js"></script>
</body></html>"""


def test_static_files_fit_the_budget():
    total = sum(f.stat().st_size for f in SAMPLER.parent.rglob("*") if f.is_file())
    assert total <= STATIC_LIMIT, f"book/_static holds {total / 2**20:.1f} MiB"
    head = (SAMPLER / "ort" / "ort.wasm.min.js").read_text()[:200]
    assert f"ONNX Runtime Web v{ORT_VERSION}" in head


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder served on 127.0.0.1 with the sampler's files and two pages."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(SAMPLER, root / "sampler")
    attrs = 'data-dt="1,2,4" data-swap="true" data-n="3" data-seed="7" ' \
            'data-video="2" data-autorun="true"'
    (root / "index.html").write_text(PAGE.format(attrs=attrs))
    (root / "missing.html").write_text(PAGE.format(attrs='data-model="nowhere/"'))
    with serve(root) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


STATE = "document.querySelector('.srvp-sampler').dataset.state"
RESULT = """(() => {{
  const r = window.srvpSampler.results[{i}];
  const f = r.frames, bytes = new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {{
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  }}
  return {{frames: btoa(s), nt: r.nt, n: r.n, k: r.k, seed: r.seed, video: r.video,
           content: r.content, ms: r.ms, psnr: r.psnr}};
}})()"""


def _result(browser, i: int) -> dict:
    browser.wait(f"window.srvpSampler.results.length > {i}")
    r = browser.eval(RESULT.format(i=i))
    frames = np.frombuffer(base64.b64decode(r["frames"]), np.float32)
    r["frames"] = frames.reshape(r["nt"], r["n"], 1, 64, 64).transpose(1, 0, 2, 3, 4)
    return r


def _python_frames(r: dict) -> np.ndarray:
    """The same sample from the exported files with onnxruntime in Python."""
    pytest.importorskip("onnxruntime")
    from srvp.export import GaussianStream
    from srvp.export.sampler import Pieces, sample
    from srvp.export.strip import read_strip

    pieces = Pieces(SAMPLER / "model")
    videos = read_strip(SAMPLER / "videos.png").astype(np.float32) / 255
    nt_cond = pieces.manifest["nt_cond"]
    cond = lambda v: videos[v, :nt_cond, None, None]  # noqa: E731  (T, 1, 1, H, W)
    content = None if r["content"] is None else cond(r["content"])
    out = sample(pieces, cond(r["video"]), pieces.manifest["nt_pred"], r["n"],
                 GaussianStream(r["seed"]).next, n_euler_steps=r["k"],
                 intermediate=True, x_content=content)
    return out[:, :, 0]  # (n, T_out, C, H, W)


@pytest.mark.slow
def test_page_draws_the_python_frames(browser, site):
    browser.open(site + "index.html")
    assert browser.wait(f"['done', 'error', 'unavailable'].includes({STATE}) "
                        f"&& {STATE}") == "done"
    first = _result(browser, 0)
    assert (first["seed"], first["video"], first["k"], first["n"]) == (7, 2, 2, 3)
    np.testing.assert_allclose(first["frames"], _python_frames(first), atol=1e-3)
    # the same seed again: the same frames; then a content swap at dt = 1/4
    browser.eval("document.querySelector('.srvp-sampler button').click()")
    again = _result(browser, 1)
    assert np.array_equal(again["frames"], first["frames"])
    browser.eval("""(() => {
        const s = document.querySelectorAll('.srvp-sampler select');
        s[1].value = '5'; s[2].value = '4';
        document.querySelector('.srvp-sampler button').click(); })()""")
    swap = _result(browser, 2)
    assert (swap["content"], swap["k"], swap["frames"].shape[1]) == (5, 4, 80)
    np.testing.assert_allclose(swap["frames"], _python_frames(swap), atol=1e-3)
    status = browser.eval("document.querySelector('.srvp-status').textContent")
    assert status.startswith("seed 7: 3 futures of 20 frames") and "best PSNR" in status


@pytest.mark.slow
def test_missing_model_says_so_in_one_line(browser, site):
    browser.open(site + "missing.html")
    assert browser.wait(f"{STATE} === 'unavailable' && {STATE}")
    text = browser.eval("document.querySelector('.srvp-sampler').textContent")
    assert "unavailable" in text and "\n" not in text.strip()
