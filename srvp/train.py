"""Training: the official loop, resumable, on CPU, one GPU or many (book ch. 4).

The trainer writes a run folder (:mod:`srvp.run_folder` describes its files).
It checks its options before any work or write, holds the folder's lock while
it writes, never saves a non-finite weight, and leaves, however it stops (a
signal, kill -9, a full disk), a folder that ``resume=True`` continues.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from . import run_checks as rc
from . import run_folder as rf
from .config import MAX_SEED, Config
from .data.batches import StepBatches
from .data.registry import training_sources, validation_batches
from .devices import device_for, resolve_amp, resolve_memory_format, resolve_workers
from .metrics.pixel import psnr
from .model_registry import build_model, compute_loss
from .precision import autocast


class TrainingDiverged(RuntimeError):
    """The loss or the weights became NaN or infinite; the last good files are
    kept (nothing non-finite is ever saved)."""


#: What ``allow_changes`` (``--allow-change``) may let a resumed run change.
CHANGEABLE = ("lr", "amp")


@dataclass
class Options:
    """How to run (not what to learn: that is the :class:`Config`)."""

    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", ...
    amp: str = "off"  # "off", "bf16", "fp16", or "auto" (srvp.precision.auto_amp)
    compile: bool = False  # torch.compile the model
    memory_format: str = "auto"  # "auto", "channels_last" or "contiguous"
    seed: int = 1
    workers: Optional[int] = None  # DataLoader processes; None: see resolve_workers
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


def check_options(cfg: Config, opts: Options, world: int = 1) -> torch.device:
    """Refuse what cannot work, before any work or write: a ``ValueError`` names
    the value and the fix. Returns the device."""
    for name, flag, value, what in (
            ("log_interval", "--log-interval", opts.log_interval,
             "steps between log records"),
            ("ckpt_interval", "--ckpt-interval", opts.ckpt_interval,
             "steps between checkpoints"),
            ("max_steps", "--max-steps", opts.max_steps, "the step to stop after")):
        if value is not None and value < 1:
            raise ValueError(f"{name}={value} ({flag}): must be at least 1, {what}")
    if opts.workers is not None and opts.workers < 0:
        raise ValueError(f"workers={opts.workers} (--workers): must be 0 (batches "
                         "made in the training process) or more")
    if not 0 <= opts.seed <= MAX_SEED:
        raise ValueError(f"seed={opts.seed} (--seed): must be an integer from 0 to "
                         f"{MAX_SEED} (2**63 - 1)")
    if opts.time_limit is not None and not opts.time_limit > 0:
        raise ValueError(f"time_limit={opts.time_limit} (--time-limit): must be a "
                         "positive number of seconds")
    if cfg.nt_cond >= cfg.val_seq_len:
        raise ValueError(f"nt_cond={cfg.nt_cond} leaves no frame to predict in the "
                         f"validation clips of val_seq_len={cfg.val_seq_len} frames: "
                         f"--set val_seq_len=N with N > {cfg.nt_cond}, or a smaller "
                         "nt_cond")
    if world > 1 and cfg.batch_size % world:
        raise ValueError(f"batch_size={cfg.batch_size} is not divisible by the "
                         f"{world} processes")
    _check_memory(cfg)
    device = device_for(opts.device, opts.amp)
    resolve_memory_format(opts.memory_format, device, opts.amp)
    return device


def _check_memory(cfg: Config) -> None:
    """Refuse a batch or validation set (float32 frames, held in memory) that
    alone would take more than half of this machine's memory."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return
    frame = 4 * cfg.nc * cfg.nx * cfg.nx
    for what, n, fields in (
            ("a training batch", cfg.batch_size * cfg.seq_len,
             "batch_size x seq_len"),
            ("the validation set", cfg.val_batches * cfg.val_batch_size
             * cfg.val_seq_len, "val_batches x val_batch_size x val_seq_len")):
        if n * frame > memory / 2:
            raise ValueError(f"{what} ({fields} = {n:,} frames, "
                             f"{n * frame / 2**30:.1f} GiB) would take more than "
                             f"half of this machine's {memory / 2**30:.1f} GiB of "
                             "memory: lower them with --set")


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
    resume : continue the run in ``out`` (from step 0 if it stopped before its
        first checkpoint); without it ``out`` must hold no checkpoint or weights.
    allow_changes : names of :data:`CHANGEABLE` (``lr``, ``amp``) that a
        resumed run may change; each change goes into ``run.json``'s history.
    run_info : how the run was launched (command line), for ``run.json``.

    The constructor reads and checks (options, folder, data) but writes
    nothing; :meth:`fit` takes the folder's lock, then writes.
    """

    def __init__(self, cfg: Config, out, data_dir=None,
                 opts: Optional[Options] = None, resume: bool = False,
                 allow_changes: Iterable[str] = (), run_info: Optional[dict] = None):
        opts = Options() if opts is None else opts
        self.world, self.rank, local = _dist_info()
        amp, chosen = resolve_amp(opts.device, opts.amp)
        if chosen:  # "auto": the run records (and resumes with) what it chose
            opts = dataclasses.replace(opts, amp=amp)
            self._note(chosen)
        self.cfg, self.opts, self.out = cfg, opts, Path(out)
        self.resume, self.run_info = resume, run_info
        self.device = check_options(cfg, opts, self.world)
        if self.world > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", local)
        unknown = sorted(set(allow_changes) - set(CHANGEABLE))
        if unknown:
            raise ValueError(f"allow_changes {unknown} (--allow-change): only "
                             f"{', '.join(CHANGEABLE)} may change on resume")
        ckpt, self.changes = rc.check_folder(out, cfg, asdict(opts), resume,
                                             set(allow_changes), self._note)
        self._seen = rc.checkpoint_id(self.out)  # fit() checks nobody wrote since
        self.train_source, self.val_source = training_sources(cfg, data_dir)
        self._setup_distributed()
        torch.manual_seed(opts.seed)  # the same initial weights on every rank
        random.seed(opts.seed)  # the global generators too: a run is reproducible
        np.random.seed(opts.seed % 2**32)
        self.memory_format = resolve_memory_format(opts.memory_format, self.device,
                                                   opts.amp)
        self.workers = resolve_workers(opts.workers, self.device, self.world)
        self.model = build_model(cfg).to(self.device, memory_format=self.memory_format)
        self.net = self._wrap(self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=opts.amp == "fp16")
        self.step, self.best_psnr, self.elapsed = 0, -math.inf, 0.0
        self._saved_step = None  # the step of the last checkpoint written or read
        if ckpt is not None:
            self._restore(ckpt)
        self._stop_signal = None

    # ------------------------------------------------------------- setup
    def _note(self, message: str) -> None:
        if self.rank == 0:
            print(f"note: {message}", file=sys.stderr)

    def _setup_distributed(self) -> None:
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        if self.device.type == "cuda":
            if self.device.index is None:  # "cuda": the current device, named
                self.device = torch.device("cuda", torch.cuda.current_device())
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
            # Inductor draws its own random numbers unless told to fall back to
            # PyTorch's: with the fallback, a compiled run samples the noise of an
            # eager one (the same curve, and the RNG states a checkpoint keeps)
            import torch._inductor.config as inductor_config

            inductor_config.fallback_random = True
            net = torch.compile(net)
        return net

    # ----------------------------------------------------- checkpointing
    def state(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(), "step": self.step,
            "best_psnr": self.best_psnr, "elapsed": self.elapsed,
            "config": self.cfg.to_dict(), "options": asdict(self.opts),
            "rng": rf.capture_rng(),
        }

    def save_checkpoint(self, state: Optional[dict] = None) -> None:
        """Write the resumable state (``state``: an earlier :meth:`state`, else
        the current one) and its weights, atomically, after checking the
        current ones are finite (else :class:`TrainingDiverged`)."""
        if state is None:
            self._check_finite()
        if self.rank != 0:
            return
        state = self.state() if state is None else state
        self.out.mkdir(parents=True, exist_ok=True)
        self.cfg.save(self.out / rf.CONFIG)
        rf.write_checkpoint(self.out, state)
        rf.write_weights(self.out, state["model"])
        self._saved_step, self._seen = state["step"], rc.checkpoint_id(self.out)

    def _restore(self, ckpt: dict) -> None:
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if ckpt.get("scaler"):  # empty when saved without fp16 (amp changed)
                self.scaler.load_state_dict(ckpt["scaler"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            first = " ".join(str(err).split())[:200]
            raise rc.RunFolderError(
                f"--resume: {self.out / rf.CHECKPOINT} does not fit its config "
                f"({type(err).__name__}: {first}): the file is damaged or from "
                "another run; train into a new --out") from None
        self.step, self.best_psnr = ckpt["step"], ckpt["best_psnr"]
        self.elapsed, self._saved_step = ckpt.get("elapsed", 0.0), ckpt["step"]
        rf.restore_rng(ckpt["rng"])

    def _check_finite(self) -> None:
        """Raise :class:`TrainingDiverged` unless every weight, buffer and
        optimiser state is finite."""
        named = list(self.model.state_dict().items())
        named += [(f"optimizer {k} of parameter {i}", v)
                  for i, st in enumerate(self.optimizer.state.values())
                  for k, v in st.items() if torch.is_tensor(v)]
        bad = rc.non_finite(named, self.device)
        if bad:
            more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
            raise TrainingDiverged(f"non-finite values at step {self.step} in "
                                   f"{', '.join(bad[:3])}{more}; nothing was saved. "
                                   + self._advice())

    def _advice(self) -> str:
        return rc.divergence_advice(self.out, self._saved_step, self.cfg.lr,
                                    self.opts.amp)

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
        with autocast(self.opts.amp, self.device):
            terms = compute_loss(self.net(x), x, loss_config(self.cfg, self.step + 1))
        if not torch.isfinite(terms.loss):
            raise TrainingDiverged(f"loss is {terms.loss.item()} at step "
                                   f"{self.step + 1}. " + self._advice())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(terms.loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        return terms

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
        # its own generator: drawing its base seed leaves the global one, which
        # the checkpoint saves, as the last step left it
        return torch.utils.data.DataLoader(
            steps, batch_size=None, sampler=order, num_workers=self.workers,
            generator=torch.Generator().manual_seed(self.opts.seed),
            pin_memory=self.device.type == "cuda",
            persistent_workers=False, prefetch_factor=4 if self.workers else None)

    def fit(self) -> int:
        """Train until the schedule ends, a limit is reached or a signal arrives.

        Nothing is written before the data gave its first batch and, for a new
        run, the first step ran: then ``config.json``, ``run.json`` and the
        checkpoint of step 0 (the state before that step). Returns 0 when the
        schedule is complete, 1 when stopped early (resumable).
        """
        held = (rc.holding_folder(self.out, self._seen, self.step, self._note)
                if self.rank == 0 else contextlib.nullcontext())
        with _catch_signals(self), held:
            return self._fit()

    def _begin(self, start: Optional[dict]) -> None:
        """The run folder's first writes: the launch, and for a new run the
        checkpoint of step 0 (``start``)."""
        if self.rank == 0:
            self._record_launch(self.step if start is None else start["step"])
        if start is not None:
            self.save_checkpoint(start)

    def _fit(self) -> int:
        val = validation_batches(self.val_source, self.cfg, self.opts.seed)
        steps = iter(self._loader())
        first = next(steps, None)  # the data works before anything is written
        start = None
        if self.step == 0:
            self._check_finite()
            start = copy.deepcopy(self.state())  # the state before step 1
        else:
            self._begin(None)
        if self.opts.progress and first is not None:
            self._note(f"step {self.step + 1:,} of {self.cfg.n_iter:,} starts; the "
                       "first is the slowest (" + ("torch.compile compiles the "
                       "model: a minute or more" if self.opts.compile else
                       "the convolution kernels are chosen") + ")")
        bar = tqdm(total=self.cfg.n_iter, initial=self.step, disable=not (
            self.opts.progress and self.rank == 0), dynamic_ncols=True)
        start_time, t_log, n_log = time.time() - self.elapsed, time.time(), 0
        if self._stop_signal is None and first is not None:
            for x in itertools.chain([first], steps):
                terms = self.train_step(x)
                if start is not None:  # the first step ran: the run begins
                    self._begin(start)
                    start = None
                self.elapsed, n_log = time.time() - start_time, n_log + 1
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
        if start is not None:  # stopped before its first step: nothing to keep
            return 1
        self.save_checkpoint()
        return 0 if self.step >= self.cfg.n_iter else 1

    def _record_launch(self, step: int) -> None:
        """``config.json`` and ``run.json``: the launch, the options, what they
        resolved to, and the changes allowed on resume."""
        self.cfg.save(self.out / rf.CONFIG)
        layout = ("channels_last" if self.memory_format == torch.channels_last
                  else "contiguous")
        used = {"device": str(self.device), "memory_format": layout,
                "workers": self.workers}
        rc.record_launch(self.out, self.run_info, asdict(self.opts), used,
                         self.changes, step, self.resume)

    def _validate_and_keep_best(self, val) -> None:
        self._check_finite()
        score = self.validate(val)
        better = score > self.best_psnr
        if better:
            self.best_psnr = score
            rf.write_weights(self.out, self.model.state_dict(), rf.BEST_WEIGHTS)
        self.log({"step": self.step, "val_psnr": round(score, 4),
                  "best_psnr": round(self.best_psnr, 4),
                  "time": round(self.elapsed, 1)})

    def _should_stop(self) -> bool:
        o = self.opts
        if o.max_steps is not None and self.step >= o.max_steps:
            return True  # the same step on every rank
        stop = (self._stop_signal is not None
                or (o.time_limit is not None and self.elapsed >= o.time_limit))
        if self.world > 1:  # a signal or the clock may reach the ranks a step apart:
            # they agree, so that all stop after the same step; on GPUs only every
            # log_interval steps, since reading the flag waits for the GPU
            if self.device.type == "cuda" and self.step % o.log_interval:
                return False
            flag = torch.tensor([float(stop)], device=self.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop


#: Seconds within which a second signal counts as the first one.
_SAME_SIGNAL_S = 1.0


@contextlib.contextmanager
def _catch_signals(trainer: Trainer):
    """SIGINT/SIGTERM finish the current step (or validation), then checkpoint and
    stop; a second one stops at once, keeping the last checkpoint written. Signals
    within a second of the first count as that one (a launcher such as torchrun
    may pass on the Ctrl-C that the terminal also sent)."""
    first = []

    def handler(signum, frame):
        if trainer._stop_signal is not None:
            if time.monotonic() - first[0] < _SAME_SIGNAL_S:
                return
            raise KeyboardInterrupt(f"second signal {signum}: stopped at once")
        trainer._stop_signal = signum
        first.append(time.monotonic())
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def train(cfg: Config, out, data_dir=None, resume: bool = False,
          allow_changes: Iterable[str] = (), **options) -> Trainer:
    """Train ``cfg`` into the run folder ``out`` and return the trainer."""
    trainer = Trainer(cfg, out, data_dir, Options(**options), resume=resume,
                      allow_changes=allow_changes)
    trainer.fit()
    return trainer
