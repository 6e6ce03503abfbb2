"""Training: the official loop, resumable, on CPU, one GPU or many (book ch. 4).

The trainer writes a run folder (:mod:`srvp.run_folder` describes its files).
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from . import run_folder as rf
from .config import Config
from .data.batches import StepBatches
from .data.registry import training_sources, validation_batches
from .metrics.pixel import psnr
from .model_registry import build_model, compute_loss


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunFolderError(ValueError):
    """The output folder holds another run, or nothing to resume."""


@dataclass
class Options:
    """How to run (not what to learn: that is the :class:`Config`)."""

    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    amp: str = "off"  # "off", "bf16" or "fp16"
    compile: bool = False  # torch.compile the model
    seed: int = 1
    workers: int = 0  # DataLoader processes that prefetch batches
    log_interval: int = 10
    ckpt_interval: int = 100  # steps between resumable checkpoints
    max_steps: Optional[int] = None  # stop (resumably) after this step
    time_limit: Optional[float] = None  # stop (resumably) after this many seconds
    progress: bool = True


def lr_at(cfg: Config, step: int) -> float:
    """Learning rate of (1-based) ``step``: constant for the burn-in, then a
    linear decay to zero over ``lr_scheduling_n_iter`` steps."""
    past = step - cfg.lr_scheduling_burnin
    if past <= 0:
        return cfg.lr
    n = cfg.lr_scheduling_n_iter
    return cfg.lr * max(0.0, (n - past) / n)


def kl_weight(cfg: Config, step: int) -> float:
    """Factor on the KL terms at (1-based) ``step``: ``step / kl_warmup`` during
    a warm-up of ``kl_warmup`` steps, then 1 (the official loss; always 1 when
    ``kl_warmup`` is 0)."""
    return 1.0 if step >= cfg.kl_warmup else step / cfg.kl_warmup


def loss_config(cfg: Config, step: int) -> Config:
    """``cfg`` with its KL weights (``beta_y``, ``beta_z``; ``beta`` for SVG)
    scaled by :func:`kl_weight` at ``step``."""
    w = kl_weight(cfg, step)
    if w == 1.0:
        return cfg
    return cfg.replace(beta_y=cfg.beta_y * w, beta_z=cfg.beta_z * w,
                       beta=cfg.svg.beta * w)


def step_seed(seed: int, rank: int, step: int) -> int:
    """Seed of the model's noise at ``step``: resuming replays the same draws."""
    return (seed * 1_000_003 + rank * 10_007 + step) % (2**63 - 1)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _dist_info():
    env = os.environ
    return (int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0")),
            int(env.get("LOCAL_RANK", "0")))


class Trainer:
    """Owns the model, optimiser and run folder of one training run.

    Parameters
    ----------
    cfg : what to train (a preset, possibly with overrides).
    out : run folder.
    data_dir : dataset folder (MNIST IDX files for Moving MNIST).
    opts : :class:`Options`.
    resume : continue the run in ``out``; without it ``out`` must hold no run.
    """

    def __init__(self, cfg: Config, out, data_dir=None,
                 opts: Optional[Options] = None, resume: bool = False):
        opts = Options() if opts is None else opts
        self.cfg, self.opts, self.out = cfg, opts, Path(out)
        self.world, self.rank, local = _dist_info()
        if self.world > 1 and cfg.batch_size % self.world:
            raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the "
                             f"{self.world} processes")
        self.device = _device(opts.device)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", local)
        _check_amp(opts.amp, self.device)
        self._check_folder(resume)
        self.train_source, self.val_source = training_sources(cfg, data_dir)
        self._setup_distributed()
        torch.manual_seed(opts.seed)  # the same initial weights on every rank
        self.model = build_model(cfg).to(self.device)
        self.net = self._wrap(self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=opts.amp == "fp16")
        self.step, self.best_psnr, self.elapsed = 0, -math.inf, 0.0
        if resume:
            self._load_checkpoint()
        self._stop_signal = None

    # ------------------------------------------------------------- setup
    def _check_folder(self, resume: bool) -> None:
        cfg_path = self.out / rf.CONFIG
        if resume:
            if not (self.out / rf.CHECKPOINT).exists():
                raise RunFolderError(f"--resume: {self.out} holds no checkpoint.pt; "
                                     "start a new run without --resume")
            saved = Config.load(cfg_path)
            if saved != self.cfg:
                diff = {k: (v, getattr(self.cfg, k)) for k, v in saved.to_dict().items()
                        if getattr(self.cfg, k) != v}
                raise RunFolderError(f"--resume: {self.out} holds a run with another "
                                     f"config (saved, given): {diff}")
        elif cfg_path.exists():
            raise RunFolderError(f"{self.out} already holds a run: pass --resume to "
                                 "continue it, or choose a new --out folder")

    def _setup_distributed(self) -> None:
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True

    def _wrap(self, model: torch.nn.Module):
        net = model
        if self.world > 1:
            if self.device.type == "cuda":
                net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = torch.nn.parallel.DistributedDataParallel(net, device_ids=ids)
        if self.opts.compile:
            net = torch.compile(net)
        return net

    # ----------------------------------------------------- checkpointing
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "step": self.step,
            "best_psnr": self.best_psnr, "elapsed": self.elapsed,
            "config": self.cfg.to_dict(), "options": asdict(self.opts),
            "rng": {"python": random.getstate(), "numpy": np.random.get_state(),
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all()
                    if torch.cuda.is_available() else []},
        }

    def save_checkpoint(self) -> None:
        """Write the resumable state and the latest weights, atomically."""
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.cfg.save(self.out / rf.CONFIG)
        rf.atomic_torch_save(self.state(), self.out / rf.CHECKPOINT)
        rf.atomic_torch_save(self.model.state_dict(), self.out / rf.WEIGHTS)

    def _load_checkpoint(self) -> None:
        ckpt = torch.load(self.out / rf.CHECKPOINT, map_location=self.device,
                          weights_only=False)  # our own file: holds RNG states
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.step, self.best_psnr = ckpt["step"], ckpt["best_psnr"]
        self.elapsed = ckpt.get("elapsed", 0.0)
        random.setstate(ckpt["rng"]["python"])
        np.random.set_state(ckpt["rng"]["numpy"])
        torch.set_rng_state(ckpt["rng"]["torch"].cpu())
        if self.rank == 0:
            rf.drop_log_after(self.out, self.step)

    # ----------------------------------------------------------- logging
    def log(self, record: dict) -> None:
        if self.rank == 0:
            rf.append_log(self.out, record)

    # ---------------------------------------------------------- training
    def train_step(self, x: torch.Tensor):
        """One optimisation step on the batch ``x`` (T, B, C, H, W)."""
        self.net.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr_at(self.cfg, self.step + 1)
        torch.manual_seed(step_seed(self.opts.seed, self.rank, self.step + 1))
        x = x.to(self.device, non_blocking=True)
        with self._autocast():
            terms = compute_loss(self.net(x), x, loss_config(self.cfg, self.step + 1))
        if not torch.isfinite(terms.loss):
            raise TrainingDiverged(
                f"loss is {terms.loss.item()} at step {self.step + 1}; the last "
                f"good checkpoint ({self.out / rf.CHECKPOINT}) is kept. Lower the "
                "learning rate or disable AMP, then --resume")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return terms

    def _autocast(self):
        if self.opts.amp == "off":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.opts.amp == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    @torch.no_grad()
    def validate(self, batches) -> float:
        """Mean over videos of the best-of-``val_samples`` prediction PSNR."""
        cfg, scores = self.cfg, []
        for x in batches:
            x = x.to(self.device)
            pred = self.model.predict(x[: cfg.nt_cond], len(x) - cfg.nt_cond,
                                      cfg.val_samples)
            target = x[cfg.nt_cond:]
            per_sample = torch.stack([psnr(p, target).mean(0) for p in pred])  # (S, B)
            scores.append(per_sample.max(0).values.cpu())
        return torch.cat(scores).mean().item()

    def _loader(self):
        batch = self.cfg.batch_size // self.world
        steps = StepBatches(self.train_source, batch, self.opts.seed, self.rank,
                            self.cfg.n_iter + 1)
        order = range(self.step + 1, self.cfg.n_iter + 1)
        return torch.utils.data.DataLoader(
            steps, batch_size=None, sampler=order, num_workers=self.opts.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False, prefetch_factor=4 if self.opts.workers else None)

    def fit(self) -> int:
        """Train until the schedule ends, a limit is reached or a signal arrives.

        Returns 0 when the schedule is complete, 1 when stopped early (resumable).
        """
        if self.step == 0:
            self.save_checkpoint()  # the run folder exists from the first step on
        val = validation_batches(self.val_source, self.cfg, self.opts.seed)
        bar = tqdm(total=self.cfg.n_iter, initial=self.step, disable=not (
            self.opts.progress and self.rank == 0), dynamic_ncols=True)
        start, t_log, n_log = time.time() - self.elapsed, time.time(), 0
        with _catch_signals(self):
            for x in self._loader():
                terms = self.train_step(x)
                self.elapsed, n_log = time.time() - start, n_log + 1
                bar.update()
                if self.step % self.opts.log_interval == 0 or self.step == 1:
                    rec = {k: round(v.item(), 4) for k, v in terms._asdict().items()}
                    if self.cfg.kl_warmup:
                        rec["kl_weight"] = round(kl_weight(self.cfg, self.step), 6)
                    rec.update(step=self.step, lr=lr_at(self.cfg, self.step),
                               time=round(self.elapsed, 1),
                               it_s=round(n_log / max(time.time() - t_log, 1e-9), 3))
                    t_log, n_log = time.time(), 0
                    self.log(rec)
                    bar.set_postfix({k: rec[k] for k in terms._fields[:3]},
                                    refresh=False)
                last = self.step == self.cfg.n_iter  # so model_best.pt sees the end
                if (self.step % self.cfg.val_interval == 0 or last) and self.rank == 0:
                    self._validate_and_keep_best(val)
                if self.step % self.opts.ckpt_interval == 0:
                    self.save_checkpoint()
                if self._should_stop():
                    break
        bar.close()
        self.save_checkpoint()
        return 0 if self.step >= self.cfg.n_iter else 1

    def _validate_and_keep_best(self, val) -> None:
        score = self.validate(val)
        better = score > self.best_psnr
        if better:
            self.best_psnr = score
            rf.atomic_torch_save(self.model.state_dict(), self.out / rf.BEST_WEIGHTS)
        self.log({"step": self.step, "val_psnr": round(score, 4),
                  "best_psnr": round(self.best_psnr, 4),
                  "time": round(self.elapsed, 1)})

    def _should_stop(self) -> bool:
        o = self.opts
        return (self._stop_signal is not None
                or (o.max_steps is not None and self.step >= o.max_steps)
                or (o.time_limit is not None and self.elapsed >= o.time_limit))


@contextlib.contextmanager
def _catch_signals(trainer: Trainer):
    """SIGINT/SIGTERM finish the current step, then checkpoint and stop."""
    def handler(signum, frame):
        trainer._stop_signal = signum
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _check_amp(amp: str, device: torch.device) -> None:
    if amp not in ("off", "bf16", "fp16"):
        raise ValueError(f"amp={amp!r}: choose off, bf16 or fp16")
    if amp == "fp16" and device.type == "cpu":
        warnings.warn("amp=fp16 on CPU runs (the gradient scaler included) but is "
                      "slower than float32 there; use it to test, and bf16 to train",
                      stacklevel=3)


def train(cfg: Config, out, data_dir=None, resume: bool = False, **options) -> Trainer:
    """Train ``cfg`` into the run folder ``out`` and return the trainer."""
    trainer = Trainer(cfg, out, data_dir, Options(**options), resume=resume)
    trainer.fit()
    return trainer
