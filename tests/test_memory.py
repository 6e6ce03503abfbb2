"""`evaluate --release-memory`: the C heap's free pages go back to the system
after each batch (glibc), and only when asked."""
import sys

import pytest
from helpers import tiny, video

import srvp.cli.evaluate as ev_cli
from srvp.cli import main
from srvp.evaluate import Protocol, evaluate
from srvp.run_folder import save_experiment


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_release_hands_freed_heap_pages_back():
    """Free many heap blocks of 200 KB (below glibc's mmap threshold once it has
    risen), then trim: the resident size must drop."""
    if ev_cli._glibc_trim() is None:
        pytest.skip("not glibc")
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    libc.mallopt(-3, 64 * 2**20)  # M_MMAP_THRESHOLD: blocks come from the heap
    libc.mallopt(-1, 2**30)  # M_TRIM_THRESHOLD: free() alone keeps the pages
    try:
        blocks = [libc.malloc(200_000) for _ in range(500)]  # 100 MB
        for b in blocks:
            ctypes.memset(b, 1, 200_000)  # make the pages resident
        before = _rss_mb()
        for b in blocks[1:]:  # the first stays: the heap top is not freed
            libc.free(b)
        after_free = _rss_mb()
        assert ev_cli.release_free_memory() is True
        after_trim = _rss_mb()
        libc.free(blocks[0])
    finally:
        libc.mallopt(-1, 128 * 1024)
        libc.mallopt(-3, 128 * 1024)
    assert after_free > before - 20  # free() kept the pages
    assert after_trim < after_free - 50  # malloc_trim gave them back


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_release_is_a_no_op_without_glibc(monkeypatch):
    ev_cli._glibc_trim.cache_clear()
    monkeypatch.setattr(ev_cli.sys, "platform", "darwin")
    try:
        assert ev_cli.release_free_memory() is False  # nothing to call: no error
    finally:
        ev_cli._glibc_trim.cache_clear()


def test_evaluate_calls_after_batch_once_per_batch():
    calls = []
    model, cfg = tiny()
    x = video(cfg, nt=cfg.nt_gen, bsz=2)
    evaluate(model, [x, x, x], Protocol(cfg.nt_cond, cfg.nt_gen - cfg.nt_cond, 2),
             progress=False, after_batch=lambda: calls.append(1))
    assert len(calls) == 3


@pytest.mark.parametrize("flag, expected", [([], 0), (["--release-memory"], 2)])
def test_cli_releases_memory_only_when_asked(tmp_path, monkeypatch, tiny_mnist_dir,
                                            flag, expected):
    calls = []
    monkeypatch.setattr(ev_cli, "release_free_memory", lambda: calls.append(1))
    model, _ = tiny()
    save_experiment(model, tmp_path / "run")
    code = main(["evaluate", str(tmp_path / "run"), "--data-dir", str(tiny_mnist_dir),
                 "--n-videos", "4", "--batch-size", "2", "--n-samples", "2",
                 "--no-lpips", *flag])
    assert code == 0 and len(calls) == expected
