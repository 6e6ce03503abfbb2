"""The run folder: every file a run or an official experiment holds, written
and read here and nowhere else (book ch. 4 and 8).

An official experiment folder holds ``config.json`` (the training flags) and
``model.pt`` (a plain state dict), as released with the paper. A run of this
package uses the same layout, so :func:`load_official` reads both, and adds

- ``checkpoint.pt``: everything needed to resume (weights, optimiser, RNG states),
  as tensors, numbers, strings, lists and dicts only (:func:`write_checkpoint`),
- ``model_best.pt``: the weights of the best validation PSNR,
- ``log.jsonl``: one JSON object per logged training step and per validation,
- ``run.json``: how the run was launched (command, options) and the changes
  allowed on resume (``history``),
- ``run.lock``: present while a trainer writes the folder (its pid),
- ``results.json`` + ``results_samples.npz``: an evaluation (:func:`save_results`).

Every file is written atomically: a kill leaves the previous version intact.
Every file is read as data (``weights_only=True``): reading one never runs code.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import random
import shutil
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch

from .config import Config
from .fileio import append_text, atomic_file, atomic_write_text
from .model_registry import build_model

PathLike = Union[str, os.PathLike]

CONFIG = "config.json"
WEIGHTS = "model.pt"
BEST_WEIGHTS = "model_best.pt"
CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"
RUN_INFO = "run.json"
LOCK = "run.lock"
RESULTS = "results.json"


def atomic_torch_save(obj: Any, path: PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename.

    A crash or a kill during the write leaves any previous file intact; a full
    disk raises :class:`srvp.fileio.DiskFullError` naming ``path``.
    """
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)  # through a Python file: a full disk is an OSError


class UnsafeFileError(ValueError):
    """A file that would run code if loaded (it pickles more than data)."""


def _load_data(path: Path, map_location: Any, what: str, allow=()) -> Any:
    """``torch.load`` as data only (``weights_only=True``, plus the ``allow``
    globals); a file that needs other objects is refused without running them."""
    try:
        with (torch.serialization.safe_globals(list(allow)) if allow
              else contextlib.nullcontext()):
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no {what} at {path}") from None
    except Exception as err:  # unpickling errors have several types
        unsafe = _unsafe_globals(path, err)
        if unsafe:
            names = "" if unsafe == ["?"] else f" ({', '.join(unsafe)})"
            raise UnsafeFileError(
                f"{path} is not a readable {what}: refused, it holds objects{names} "
                f"that could run code when loaded (a {what} holds only tensors, "
                "numbers and strings); do not load it unless you trust its "
                "source") from None
        raise ValueError(f"{path} is not a readable {what}: truncated or damaged "
                         f"({type(err).__name__}: {str(err)[:200]})") from None


def _unsafe_globals(path: Path, err: Exception) -> List[str]:
    """The globals, beyond data, that loading ``path`` failed on (none for a
    file that is not a PyTorch zip archive: damaged, or not PyTorch's)."""
    if not zipfile.is_zipfile(path):
        return []
    find = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if find is None:  # an older PyTorch: its message names the global
        return ["?"] if isinstance(err, pickle.UnpicklingError) else []
    try:
        return sorted(find(path))
    except Exception:  # damaged beyond reading its pickle
        return []


def read_state_dict(path: PathLike,
                    map_location: Any = "cpu") -> Dict[str, torch.Tensor]:
    """Load a state dict as data only (``weights_only=True``: never runs code).

    Wrappers are unwrapped: a ``{"model": ...}`` or ``{"state_dict": ...}``
    checkpoint and the ``module.`` prefix of DistributedDataParallel. A file
    that would run code raises :class:`UnsafeFileError` (a ``ValueError``).
    """
    sd = _load_data(Path(path), map_location, "PyTorch state dict")
    for key in ("model", "state_dict"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(f"{path} holds a {type(sd).__name__}, not a state dict")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


# --------------------------------------------------------------- checkpoints
def capture_rng() -> Dict[str, Any]:
    """The global random states a checkpoint keeps (``state["rng"]``): Python's,
    NumPy's, torch's and every CUDA device's."""
    return {"python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available()
            else []}


def restore_rng(rng: Dict[str, Any]) -> None:
    """Set the global random states from a checkpoint's ``rng`` (as
    :func:`read_checkpoint` returns it); the CUDA ones only where the machine
    has as many devices as the one that saved them."""
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"].cpu())
    if rng["cuda"] and len(rng["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([t.cpu() for t in rng["cuda"]])


def write_checkpoint(folder: PathLike, state: Dict[str, Any]) -> None:
    """Write ``checkpoint.pt``, atomically: the trainer's ``state``, its RNG
    states (``state["rng"]``: ``random.getstate()``, ``np.random.get_state()``,
    the torch and CUDA byte tensors) stored as tensors and numbers, so that
    :func:`read_checkpoint` loads it as data."""
    py_version, py_key, py_gauss = state["rng"]["python"]
    kind, key, pos, has_gauss, gauss = state["rng"]["numpy"]
    rng = {"python": {"version": py_version, "gauss_next": py_gauss,
                      "state": torch.tensor(py_key, dtype=torch.int64)},
           "numpy": {"kind": kind, "pos": int(pos), "has_gauss": int(has_gauss),
                     "cached_gaussian": float(gauss),
                     "key": torch.from_numpy(np.asarray(key, dtype=np.int64))},
           "torch": state["rng"]["torch"], "cuda": list(state["rng"]["cuda"])}
    atomic_torch_save({**state, "rng": rng}, Path(folder) / CHECKPOINT)


def write_weights(folder: PathLike, state_dict: Dict[str, torch.Tensor],
                  name: str = WEIGHTS) -> None:
    """Write weights (``model.pt`` or ``model_best.pt``), atomically."""
    atomic_torch_save(state_dict, Path(folder) / name)


def read_checkpoint(folder: PathLike, map_location: Any = "cpu") -> Dict[str, Any]:
    """Read ``checkpoint.pt`` as data (reading it never runs code), its RNG
    states back in the form ``random.setstate`` and ``np.random.set_state`` take.

    A damaged file raises ``ValueError``; one that would run code
    :class:`UnsafeFileError`.
    """
    path = Path(folder) / CHECKPOINT
    ckpt = _load_data(path, map_location, "checkpoint")
    if not isinstance(ckpt, dict) or not {"model", "step", "rng"} <= set(ckpt):
        raise ValueError(f"{path} is not a checkpoint of this package (it lacks "
                         "model, step or rng)")
    _check_checkpoint_fields(path, ckpt)
    rng = ckpt["rng"]
    try:
        py, npy = rng["python"], rng["numpy"]
        rng = {**rng,
               "python": (py["version"], tuple(py["state"].tolist()),
                          py["gauss_next"]),
               "numpy": (npy["kind"], npy["key"].numpy().astype(np.uint32),
                         npy["pos"], npy["has_gauss"], npy["cached_gaussian"])}
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path} holds RNG states this package did not write "
                         f"({type(err).__name__}: {err}): start a new run") from None
    return {**ckpt, "rng": rng}


def _check_checkpoint_fields(path: Path, ckpt: Dict[str, Any]) -> None:
    """The checkpoint's numbers and groups have the types this package writes
    (a hand-made or damaged file is reported here, before it is used)."""
    step = ckpt["step"]
    problem = None
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        problem = f"step={step!r}, not a step number (an integer of 0 or more)"
    elif not isinstance(ckpt.get("best_psnr", 0.0), (int, float)):
        problem = f"best_psnr={ckpt['best_psnr']!r}, not a number"
    else:
        for key in ("model", "optimizer", "config", "options"):
            if key in ckpt and not isinstance(ckpt[key], dict):
                problem = f"{key} is a {type(ckpt[key]).__name__}, not a dict"
    if problem is not None:
        raise ValueError(f"{path} is damaged or not written by this package: its "
                         f"{problem}; start a new run in another --out")


def load_official(xp_dir: PathLike, checkpoint: str = WEIGHTS,
                  map_location: Any = "cpu") -> Tuple[torch.nn.Module, Config]:
    """Build the model of an experiment folder (an :class:`SRVP`, or the
    baseline its ``model`` field names) and load its weights.

    Parameters
    ----------
    xp_dir : folder with ``config.json`` and the checkpoint.
    checkpoint : file name of the weights (``model.pt`` or ``model_best.pt``).
    map_location : passed to ``torch.load``.

    Returns
    -------
    (model, cfg) with the model in evaluation mode. The state dict must match
    the architecture exactly (``strict=True``); a mismatch raises and names the
    offending keys.
    """
    xp_dir = Path(xp_dir)
    cfg_path = xp_dir / CONFIG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{cfg_path} not found: an experiment folder holds "
                                "config.json and model.pt")
    try:
        official = json.loads(cfg_path.read_text())
    except ValueError as err:
        raise ValueError(f"{cfg_path} is not JSON ({err})") from None
    if not isinstance(official, dict):
        raise ValueError(f"{cfg_path} holds a {type(official).__name__}, not the "
                         "JSON object of a config")
    cfg = Config.from_official(official)
    model = build_model(cfg)
    sd = read_state_dict(xp_dir / checkpoint, map_location)
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{xp_dir / checkpoint} does not match its config.json "
                         f"(model={cfg.model}, {cfg.archi}, ny={cfg.ny}, "
                         f"nz={cfg.nz}, nc={cfg.nc}, skipco={cfg.skipco}): "
                         f"{err}") from err
    return model.eval(), cfg


def save_experiment(model: torch.nn.Module, xp_dir: PathLike,
                    checkpoint: str = WEIGHTS) -> None:
    """Write ``config.json`` and the weights in the official layout, atomically."""
    xp_dir = Path(xp_dir)
    xp_dir.mkdir(parents=True, exist_ok=True)
    model.cfg.save(xp_dir / CONFIG)
    atomic_torch_save(model.state_dict(), xp_dir / checkpoint)


# ------------------------------------------------------------------ the log
def append_log(folder: PathLike, record: Dict[str, Any]) -> None:
    """Append one record to the run's ``log.jsonl``."""
    append_text(Path(folder) / LOG, json.dumps(record) + "\n")


def read_log(path: PathLike) -> Dict[str, List[dict]]:
    """Split a run's log (the folder or its ``log.jsonl``) into ``{"train":
    [...], "val": [...]}`` records, by step."""
    path = Path(path)
    if path.is_dir():
        path = path / LOG
    out: Dict[str, List[dict]] = {"train": [], "val": []}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out["val" if "val_psnr" in rec else "train"].append(rec)
    return out


def check_log(folder: PathLike) -> List[Tuple[str, Optional[int]]]:
    """The lines of the run's ``log.jsonl`` and the step of each (None for a
    truncated last line, which a kill or a full disk can leave); empty when
    there is no log. A damaged line before the last, or a record without an
    integer ``step``, raises ``ValueError`` naming the line: the log is
    reported, never emptied."""
    path = Path(folder) / LOG
    if not path.exists():
        return []
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    out: List[Tuple[str, Optional[int]]] = []
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except ValueError:
            if i < len(lines) - 1:
                raise ValueError(f"{path}, line {i + 1}, is not a JSON record: "
                                 "repair or delete that line, then resume") from None
            out.append((line, None))
            continue
        step = rec.get("step") if isinstance(rec, dict) else None
        if isinstance(step, bool) or not isinstance(step, int):
            raise ValueError(f"{path}, line {i + 1}, is no record of a step "
                             f"(step={step!r}): repair or delete that line, then "
                             "resume")
        out.append((line, step))
    return out


def drop_log_after(folder: PathLike, step: int) -> None:
    """Forget log records past ``step``: a resumed run writes them again.

    A truncated last line is dropped with a warning naming the file; a damaged
    line raises (:func:`check_log`); nothing is rewritten when nothing goes.
    """
    path = Path(folder) / LOG
    records = check_log(folder)
    if records and records[-1][1] is None:
        warnings.warn(f"{path}: dropped its truncated last line (the run "
                      "stopped while writing it)", stacklevel=2)
    kept = [line for line, s in records if s is not None and s <= step]
    if len(kept) < len(records):
        atomic_write_text(path, "".join(ln + "\n" for ln in kept))


def write_run_info(folder: PathLike, info: Dict[str, Any]) -> None:
    """Record how a run was launched (``run.json``)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(folder) / RUN_INFO, json.dumps(info, indent=2) + "\n")


def read_run_info(folder: PathLike) -> Dict[str, Any]:
    """The run's ``run.json`` (empty when absent or unreadable)."""
    try:
        info = json.loads((Path(folder) / RUN_INFO).read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


# -------------------------------------------------------------- evaluations
def samples_path(results_path: PathLike) -> Path:
    """``results.json`` -> ``results_samples.npz`` beside it."""
    path = Path(results_path)
    return path.with_name(path.stem + "_samples.npz")


def save_results(result, path: PathLike) -> None:
    """Write an evaluation (an :class:`srvp.evaluate.EvalResult`): the JSON
    report (metrics, intervals, per-video values) at ``path`` and the sample
    arrays in ``<stem>_samples.npz`` beside it.

    Both files are written in full to temporary files before either replaces
    its target, so a failure (a full disk) leaves the previous pair as it was.
    """
    path = Path(path)
    with atomic_file(samples_path(path)) as npz, atomic_file(path) as report:
        with open(npz, "wb") as f:
            np.savez_compressed(f, **result.samples)
        report.write_text(json.dumps(result.report(), indent=1, allow_nan=False)
                          + "\n")


def read_results(path: PathLike) -> Dict[str, Any]:
    """The JSON report of an evaluation (``results.json`` or the run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS
    return json.loads(path.read_text())


# ---------------------------------------------------------- exported weights
def export_run(run: PathLike, dest: PathLike, checkpoint: str = WEIGHTS,
               files=(CONFIG, LOG, RESULTS)) -> Path:
    """Copy a run for shipping: its weights as float16 (half the size;
    :func:`load_official` casts them back to float32), and ``files``; the
    command in ``run.json`` keeps no local path (the MNIST folder becomes
    ``MNIST_DIR``, the run's folder ``runs/<name>``). Returns the exported
    weights' path."""
    run, dest = Path(run), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    sd = read_state_dict(run / checkpoint)
    half = {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}
    atomic_torch_save(half, dest / WEIGHTS)
    for name in files:
        if (run / name).exists():
            with atomic_file(dest / name) as tmp:
                shutil.copyfile(run / name, tmp)
    if (run / RUN_INFO).exists():
        info = json.loads((run / RUN_INFO).read_text())
        info["argv"] = [_portable(a, run) for a in info.get("argv", [])]
        write_run_info(dest, info)
    return dest / WEIGHTS


def _portable(arg: str, run: Path) -> str:
    """A local path in a recorded command becomes a placeholder: the MNIST folder
    ``MNIST_DIR``, the run folder itself ``runs/<its name>``."""
    path = Path(arg)
    if os.sep in arg and path.is_dir() and any(path.glob("*idx*")):
        return "MNIST_DIR"
    if os.sep in arg and path.is_dir() and path.resolve() == run.resolve():
        return f"runs/{run.name}"
    if arg.endswith("__main__.py") or arg.endswith(os.sep + "srvp"):
        return "-m srvp"
    return arg
