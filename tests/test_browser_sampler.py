"""The sampler of the book's pages (book/_static/sampler/sampler.js) in headless
Chromium: it draws the frames that the exported ONNX files give in Python for
the same seed, the same seed gives the same frames, and without its model it
says so in one line.

A small page with the same script and files is served from a temporary folder
on 127.0.0.1; Chromium is driven through the DevTools protocol over a pipe
(``--remote-debugging-pipe``), with the standard library only. Chromium comes
from the system (Debian's ``chromium``, installed by scripts/setup_env.sh).
"""
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

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


# ------------------------------------------------------------ the browser
def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("needs Chromium (bash scripts/setup_env.sh installs Debian's)")


class Browser:
    """Headless Chromium driven by DevTools commands over fds 3 and 4."""

    def __init__(self, profile: Path):
        to_chrome, self._w = os.pipe()
        self._r, from_chrome = os.pipe()

        def pipes():  # in the child: Chromium reads fd 3 and writes fd 4
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)

        self.proc = subprocess.Popen(
            [_chromium(), "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={profile}", "about:blank"],
            preexec_fn=pipes, close_fds=False, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._id, self.session = b"", 0, None

    def send(self, method: str, session=None, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._w, json.dumps(message).encode() + b"\0")
        while True:  # skip events until the answer to this command
            reply = self._read()
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def eval(self, expression: str):
        result = self.send("Runtime.evaluate", self.session, expression=expression,
                           awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def wait(self, expression: str, timeout: float = 240.0):
        end = time.monotonic() + timeout
        guarded = f"(() => {{ try {{ return {expression}; }} " \
                  "catch (e) { return null; } })()"
        while time.monotonic() < end:
            value = self.eval(guarded)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(expression)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self._w)
        os.close(self._r)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder served on 127.0.0.1 with the sampler's files and two pages."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(SAMPLER, root / "sampler")
    attrs = 'data-dt="1,2,4" data-swap="true" data-n="3" data-seed="7" ' \
            'data-video="2" data-autorun="true"'
    (root / "index.html").write_text(PAGE.format(attrs=attrs))
    (root / "missing.html").write_text(PAGE.format(attrs='data-model="nowhere/"'))
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript"}

    def log_message(self, *args):
        pass


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
