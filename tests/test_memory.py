"""srvp.memory: the C heap's free pages go back to the system (glibc)."""
import sys

from helpers import tiny, video

import srvp.evaluate as ev
from srvp import memory


def test_release_free_memory_runs_where_glibc_is_and_is_a_no_op_elsewhere(monkeypatch):
    released = memory.release_free_memory()
    if sys.platform.startswith("linux") and memory._glibc_trim() is not None:
        assert released is True
    memory._glibc_trim.cache_clear()
    monkeypatch.setattr(memory.sys, "platform", "darwin")
    assert memory.release_free_memory() is False  # nothing to call: no error
    memory._glibc_trim.cache_clear()


def test_evaluate_releases_the_heap_after_every_batch(monkeypatch):
    calls = []
    monkeypatch.setattr(ev, "release_free_memory", lambda: calls.append(1))
    model, cfg = tiny()
    x = video(cfg, nt=cfg.nt_gen, bsz=2)
    ev.evaluate(model, [x, x, x], cfg.nt_cond, cfg.nt_gen - cfg.nt_cond, n_samples=2,
                progress=False)
    assert len(calls) == 3
