"""Small builders shared by the tests."""
import functools
import http.server
import importlib.util
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp import SRVP, preset


def build_book_script():
    """``scripts/build_book.py``, imported as a module (scripts is no package)."""
    path = Path(__file__).resolve().parents[1] / "scripts" / "build_book.py"
    spec = importlib.util.spec_from_file_location("build_book", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny(name="smoke", **overrides):
    """A model of the ``smoke`` preset (or another preset shrunk to seconds)."""
    if name != "smoke":
        overrides = {"nf": 4, "nhx": 8, "nh_inf": 8, "nh_res": 8, **overrides}
    cfg = preset(name, **overrides)
    return SRVP(cfg), cfg


def video(cfg, nt=None, bsz=2):
    """A random video (T, B, C, 64, 64) in [0, 1]."""
    nt = cfg.seq_len if nt is None else nt
    return torch.rand(nt, bsz, cfg.nc, cfg.nx, cfg.nx)


class Server:
    """A folder served over HTTP in a thread; ``requests`` lists the paths asked."""

    def __init__(self, root):
        self.requests = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the http.server name)
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        root.mkdir(parents=True, exist_ok=True)
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def dead_url():
    """A port nothing listens on: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def write_avi(path, levels, width=160, height=120):
    """An MPEG-4 AVI (as KTH's) whose frame t is uniformly gray at ``levels[t]``."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for level in levels:
            frame = np.full((height, width, 3), level, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
