"""Headless Chromium for the tests of pages, driven through the DevTools protocol
over a pipe (``--remote-debugging-pipe``) with the standard library only, and a
static server on 127.0.0.1. Chromium comes from the system (Debian's
``chromium``, installed by scripts/setup_env.sh)."""
from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

#: Chromium resolves no host but 127.0.0.1: a page that needs the network fails
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("needs Chromium (bash scripts/setup_env.sh installs Debian's)")


class Browser:
    """Headless Chromium driven by DevTools commands over fds 3 and 4."""

    def __init__(self, profile: Path, offline: bool = False, width: int = 1280,
                 height: int = 900):
        to_chrome, self._w = os.pipe()
        self._r, from_chrome = os.pipe()

        def pipes():  # in the child: Chromium reads fd 3 and writes fd 4
            # copies first: a pipe that is already fd 3 or 4 would keep its
            # close-on-exec flag through a dup2 onto itself
            read, write = os.dup(to_chrome), os.dup(from_chrome)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen(
            [chromium(), "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
             "--disable-gpu", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={profile}", f"--window-size={width},{height}",
             *([OFFLINE] if offline else []),
             "about:blank"],
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

    def open(self, url: str, timeout: float = 60.0) -> None:
        """Open ``url`` in a new tab and wait until it has loaded."""
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]
        self.wait(f"location.href === {json.dumps(url)} "
                  "&& document.readyState === 'complete'", timeout=timeout)

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


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript"}

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(root: Path):
    """Serve the folder ``root`` on 127.0.0.1; yields its URL (ends with /)."""
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
