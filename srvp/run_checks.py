"""Whether a run folder can take a run, and holding it while a trainer writes
(book ch. 4). :mod:`srvp.run_folder` reads and writes the files; this module
decides, before any write, whether a new run may start in a folder or a
stopped one may resume there, and with which recorded changes.

A folder holding a checkpoint or weights is never overwritten; a resumed run
must have the saved config, seed and precision, except the fields allowed to
change (``--allow-change``), each recorded as ``{"field", "old", "new"}``.
"""
from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path
from typing import (
    Any,
    Callable,
    Collection,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
)

import torch

from . import run_folder as rf
from .config import Config
from .fileio import FolderLock, FolderLockedError, folder_problem, remove_partials

Note = Callable[[str], None]  # prints a one-line note for the user


class RunFolderError(ValueError):
    """The output folder cannot take this run: it holds another run, nothing to
    resume, a run with other settings, or another trainer."""


def checkpoint_id(out: Path) -> Optional[Tuple[int, int, int]]:
    """Identity of ``checkpoint.pt`` (inode, size, mtime), None when absent:
    a trainer compares it before it writes, to see whether another wrote."""
    try:
        st = os.stat(Path(out) / rf.CHECKPOINT)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def check_folder(out: Path, cfg: Config, options: Dict[str, Any], resume: bool,
                 allow: Collection[str], note: Note
                 ) -> Tuple[Optional[dict], List[dict]]:
    """Check that ``out`` can take this run, reading only.

    Returns the checkpoint to resume from (None: start from step 0) and the
    allowed changes of a resumed run (``field``, ``old``, ``new``); raises
    :class:`RunFolderError` naming the fix. ``options`` holds the run's
    ``seed`` and ``amp``.
    """
    _check_free(out)
    out = Path(out)
    trained = [n for n in (rf.CHECKPOINT, rf.WEIGHTS, rf.BEST_WEIGHTS)
               if (out / n).exists()]
    if not resume:
        _check_new(out, trained, note)
        return None, []
    if not out.is_dir():
        raise RunFolderError(f"--resume: {out} does not exist, so holds no "
                             "checkpoint to resume: start the run without --resume")
    if not trained:
        changes = check_config(out, cfg, allow)
        note(f"--resume: {out} holds no checkpoint.pt (the run stopped before its "
             "first one): starting it from step 0")
        return None, changes
    if rf.CHECKPOINT not in trained:
        raise RunFolderError(f"--resume: {out} holds {', '.join(trained)} but no "
                             "checkpoint.pt (an exported or official run): it "
                             "cannot be resumed; train into a new --out")
    ckpt = rf.read_checkpoint(out, "cpu")
    changes = check_config(out, cfg, allow, ckpt.get("config"))
    if ckpt["step"] > cfg.n_iter:
        raise RunFolderError(f"--resume: {out / rf.CHECKPOINT} is at step "
                             f"{ckpt['step']:,}, past the schedule's "
                             f"{cfg.n_iter:,} steps: the file is damaged or from "
                             "another run")
    try:
        rf.check_log(out)
    except ValueError as err:
        raise RunFolderError(f"--resume: {err}") from None
    recorded = ckpt.get("options", {})
    return ckpt, changes + _check_options(out, recorded, options, allow)


def _check_free(out) -> None:
    """A folder (or a path that can become one) that no trainer holds."""
    problem = folder_problem(out)
    if problem is not None:
        raise RunFolderError(f"--out {problem}")
    out = Path(out)
    holder = FolderLock(out / rf.LOCK).holder()
    if holder is not None:
        raise RunFolderError(f"{out} is in use by another trainer (pid "
                             f"{holder or 'unknown'}): wait for it to end or stop "
                             "it, or choose another --out")


def _check_new(out: Path, trained: List[str], note: Note) -> None:
    """A new run: nothing trained in ``out`` (a run stopped before its first
    checkpoint is replaced)."""
    if trained:
        raise RunFolderError(f"{out} already holds a run ({', '.join(trained)}): "
                             "pass --resume to continue it, or choose a new --out "
                             "folder")
    if (out / rf.CONFIG).exists() or (out / rf.RUN_INFO).exists():
        note(f"{out} holds a run that stopped before its first checkpoint "
             "(nothing trained): a new run replaces it")


def _check_options(out: Path, recorded: Dict[str, Any], given: Dict[str, Any],
                   allow: Collection[str]) -> List[dict]:
    """The seed must be the recorded one; the precision too, unless ``amp``
    may change. Returns the allowed changes."""
    seed = recorded.get("seed", given["seed"])
    if seed != given["seed"]:
        raise RunFolderError(f"--resume: {out} was trained with --seed {seed}, not "
                             f"--seed {given['seed']}: resume with --seed {seed} "
                             "(it fixes every step's batch and noise)")
    amp = recorded.get("amp", given["amp"])
    if amp == given["amp"]:
        return []
    if "amp" not in allow:
        raise RunFolderError(f"--resume: {out} was trained with --amp {amp}, not "
                             f"--amp {given['amp']}: resume with --amp {amp}, or add "
                             "--allow-change amp to switch (recorded in run.json)")
    return [{"field": "amp", "old": amp, "new": given["amp"]}]


def check_config(out: Path, cfg: Config, allow: Collection[str],
                 trained: Optional[dict] = None) -> List[dict]:
    """Compare ``cfg`` with the run's: the checkpoint's own config
    (``trained``), which ``config.json`` must match, else ``config.json``.
    Only fields in ``allow`` may differ. Returns the changes (``field``,
    ``old``, ``new``)."""
    path = out / rf.CONFIG
    saved = _read_config(path, Config.load, path) if path.exists() else None
    if trained is not None:
        kept = _read_config(trained, Config.from_dict, out / rf.CHECKPOINT)
        edited = _not_allowed(_diff(kept, saved) if saved else {}, allow)
        if edited:
            raise RunFolderError(
                f"--resume: {path} differs from the config that "
                f"{out / rf.CHECKPOINT} was trained with (checkpoint, "
                f"config.json): {edited}; the file was changed after the run "
                "stopped: put the checkpoint's values back")
        saved = kept
    if saved is None:
        return []
    diff = _diff(saved, cfg)
    bad = _not_allowed(diff, allow)
    if bad:
        hint = ("; to resume with another learning rate add --allow-change lr"
                if "lr" in bad else "")
        raise RunFolderError(f"--resume: {out} holds a run with another config "
                             f"(saved, given): {bad}{hint}")
    return [{"field": k, "old": old, "new": new} for k, (old, new) in diff.items()]


def _read_config(source, read, where: Path) -> Config:
    try:
        return read(source)
    except (TypeError, ValueError, AttributeError) as err:
        raise RunFolderError(f"--resume: {where} holds no readable config "
                             f"({err})") from None


def _diff(old: Config, new: Config) -> Dict[str, Tuple[Any, Any]]:
    """``{field: (old value, new value)}`` where the configs differ."""
    given = new.to_dict()
    return {k: (v, given[k]) for k, v in old.to_dict().items() if given[k] != v}


def _not_allowed(diff: Dict[str, Tuple[Any, Any]], allow: Collection[str]
                 ) -> Dict[str, Tuple[Any, Any]]:
    return {k: v for k, v in diff.items() if k not in allow}


@contextlib.contextmanager
def holding_folder(out: Path, seen, step: int, note: Note) -> Iterator[None]:
    """Hold the folder's lock, and prepare the folder: check that nobody wrote
    a checkpoint since ``seen`` (:func:`checkpoint_id` when the run was
    checked), remove a killed writer's temporaries, and drop the log records
    after ``step``."""
    lock, made = FolderLock(out / rf.LOCK), not out.exists()
    try:
        lock.acquire()
    except FolderLockedError as err:
        raise RunFolderError(str(err)) from None
    try:
        if checkpoint_id(out) != seen:
            raise RunFolderError(f"{out / rf.CHECKPOINT} changed while this trainer "
                                 "was starting (another trainer?): start it again")
        removed = remove_partials(out)
        if removed:
            note(f"removed {len(removed)} temporary file(s) of a stopped run from "
                 f"{out}: {', '.join(removed)}")
        try:
            rf.drop_log_after(out, step)
        except ValueError as err:
            raise RunFolderError(str(err)) from None
        yield
    finally:
        lock.release()
        if made and not any(out.iterdir()):  # stopped before its first write
            out.rmdir()


def record_launch(out: Path, launch: Optional[dict], options: Dict[str, Any],
                  used: Dict[str, Any], changes: List[dict], step: int,
                  resume: bool) -> None:
    """Write ``run.json``: the launch (``launch``, e.g. the command line), the
    ``options``, what they resolved to (``used``) and the history of changes
    allowed on resume (step, field, old, new), kept across resumes."""
    info = rf.read_run_info(out) if resume else {}
    history = info.get("history", [])
    # once per change: a run killed before its next checkpoint records it again
    history += [h for h in ({"step": step, **c} for c in changes)
                if h not in history]
    if launch is None and not info and not history:
        return
    rf.write_run_info(out, {**info, **(launch or {}), "options": options,
                            "used": used, "history": history})


def non_finite(named: Iterable[Tuple[str, torch.Tensor]], device) -> List[str]:
    """The names of the floating-point tensors in ``named`` that hold a NaN or an
    infinity, found with one synchronisation of ``device``."""
    named = [(k, v) for k, v in named if v.is_floating_point()]
    if not named:
        return []
    finite = torch.stack([torch.isfinite(v).all().to(device)  # Adam's step
                          for _, v in named])  # counts stay on the CPU
    if bool(finite.all()):
        return []
    return [named[i][0] for i in (~finite).nonzero().flatten().tolist()]


def divergence_advice(out: Path, saved_step: Optional[int], lr: float,
                      amp: str) -> str:
    """What to do after a divergence: which checkpoint is kept, and the resume
    command with a ten times lower learning rate (and without mixed precision)."""
    kept = (f"The last good checkpoint ({Path(out) / rf.CHECKPOINT}, step "
            f"{saved_step}) is kept" if saved_step is not None
            else "No checkpoint was written")
    lr = lr / 10 if math.isfinite(lr) else 1e-4
    off = (", or without mixed precision: --amp off --allow-change amp"
           if amp != "off" else "")
    return (f"{kept}. Resume with a lower learning rate: "
            f"--resume --set lr={lr:.2g} --allow-change lr (in Python: "
            f"cfg.replace(lr={lr:.2g}), resume=True, allow_changes=['lr']){off}")
