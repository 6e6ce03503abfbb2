"""Our code against the official code itself, one CPU thread each (CPU or GPU).

Given an export of the official repository (github.com/edouardelasalles/srvp,
e.g. ``git clone`` or ``git archive``; its code is imported from there, never
copied here), this times, interleaved in one process:

- ``train``: one training step of the ``smmnist`` and ``kth`` presets on the
  same random batch: the official ``train.train`` (its forward, loss, backward
  and Adam step) against ``srvp.train.Trainer.train_step`` at default settings;
- ``test``: best of ``--samples`` (20) futures for 16 test videos of Stochastic
  Moving MNIST (5 + 20 frames), PSNR and SSIM: the official ``test.main`` (its
  whole test loop, reading a test-set file and an experiment folder written
  here) against ``srvp.evaluate.evaluate`` (in float32, or in the precision of
  ``--amp``). The official loop also computes LPIPS with a network whose weights
  it downloads; it is replaced by a stand-in returning zeros, and ours runs
  without LPIPS, so both compute the same scores; its FVD module (TensorFlow)
  is never called and is stood in for too;
- ``data``: a training batch of Stochastic Moving MNIST: the official
  ``MovingMNIST`` generator (built on the same MNIST digits) through a
  ``DataLoader`` with its ``collate_fn``, against the batches our trainer reads
  (``srvp.data.batches.StepBatches``).

With ``--device cuda`` the official training step and test loop run on the GPU
as its command lines run them (``test.py --device 0``), ours with ``--device
cuda``; the data part is CPU work and is skipped.

Each repetition times the official call then ours (or the reverse, alternately).
The table gives per call the median and minimum seconds, the ratio of the medians
(ours / official: below 1 is faster) and the share of the machine's CPU time that
other processes took during the timed calls (from ``/proc/stat``; a quiet machine
shows about 0 %).

Usage:
    python benchmarks/bench_official.py --official PATH --data-dir MNIST_DIR
    python benchmarks/bench_official.py --official PATH --device cuda \
        --only train test --batch 128 100 --samples 100 --reps 5
    SRVP_OFFICIAL=PATH python benchmarks/bench_official.py --only train --reps 5

The official code needs nothing beyond torch and numpy for these parts; its
command-line module (configargparse) is not imported.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # one thread each, before torch starts

import argparse  # noqa: E402
import contextlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from srvp import preset  # noqa: E402
from srvp.data import load_mnist  # noqa: E402
from srvp.data.batches import StepBatches  # noqa: E402
from srvp.data.moving_mnist import MovingMNIST  # noqa: E402
from srvp.precision import AMP_MODES  # noqa: E402
from srvp.train import Options, Trainer  # noqa: E402

ENV = "SRVP_OFFICIAL"


class _NoLPIPS:
    """Stand-in for the official LPIPS model (weights fetched at run time): zeros."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, a, b):
        return torch.zeros(a.shape[0])


def import_official(path: Path) -> types.SimpleNamespace:
    """The official modules, imported from ``path``. Stand-ins: ``args`` and
    ``configargparse`` (command lines, not run), the FVD module (TensorFlow,
    not called) and the LPIPS model (weights fetched at run time; see the
    module docstring)."""
    if not (path / "module" / "srvp.py").is_file():
        raise SystemExit(f"{path} holds no module/srvp.py: give the folder of an "
                         "export of github.com/edouardelasalles/srvp")
    sys.path.insert(0, str(path))
    sys.modules.setdefault("args", types.ModuleType("args"))
    sys.modules.setdefault("configargparse", types.ModuleType("configargparse"))
    fvd = types.ModuleType("metrics.fvd.score")
    fvd.fvd = None
    sys.modules["metrics.fvd.score"] = fvd
    lpips = types.ModuleType("metrics.lpips.loss")
    lpips.PerceptualLoss = _NoLPIPS
    sys.modules["metrics.lpips.loss"] = lpips
    import data.base as official_data  # noqa: PLC0415
    import data.mmnist as official_mmnist  # noqa: PLC0415
    import helper  # noqa: PLC0415
    import module.srvp as official_srvp  # noqa: PLC0415
    import test as official_test  # noqa: PLC0415
    import train as official_train  # noqa: PLC0415
    return types.SimpleNamespace(data=official_data, mmnist=official_mmnist,
                                 helper=helper, srvp=official_srvp,
                                 train=official_train, test=official_test)


class CpuShare:
    """Share of the machine's CPU time taken by other processes between
    ``start()`` and ``stop()`` (Linux ``/proc/stat``; None elsewhere)."""

    def __init__(self):
        self.other, self.total = 0.0, 0.0

    @staticmethod
    def _busy_total():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except OSError:
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields) - idle, sum(fields)

    def start(self):
        self._t0, self._own0 = self._busy_total(), time.process_time()

    def stop(self):
        t1, own1 = self._busy_total(), time.process_time()
        if self._t0 is None or t1 is None:
            return
        tick = os.sysconf("SC_CLK_TCK")
        busy = (t1[0] - self._t0[0]) / tick
        total = (t1[1] - self._t0[1]) / tick
        self.other += max(0.0, busy - (own1 - self._own0))
        self.total += total

    @property
    def percent(self):
        return None if self.total <= 0 else 100 * self.other / self.total


def _sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, share: CpuShare) -> float:
    _sync()
    share.start()
    start = time.perf_counter()
    fn()
    _sync()
    seconds = time.perf_counter() - start
    share.stop()
    return seconds


def interleave(official, ours, reps: int, warmup: int = 1):
    """Median/min seconds of each, timed alternately (the first call of each
    is a warm-up)."""
    for _ in range(warmup):
        official()
        ours()
    times = {"official": [], "ours": []}
    shares = {"official": CpuShare(), "ours": CpuShare()}
    for rep in range(reps):
        order = ("official", "ours") if rep % 2 == 0 else ("ours", "official")
        for name in order:
            fn = official if name == "official" else ours
            times[name].append(timed(fn, shares[name]))
    return times, shares


def official_opt(official, cfg):
    return official.helper.DotDict(
        n_euler_steps=cfg.n_euler_steps, obs_scale=cfg.obs_scale, beta_y=cfg.beta_y,
        beta_z=cfg.beta_z, l2_res=cfg.l2_res, torch_amp=False, apex_amp=False)


def train_pair(official, name: str, batch_size: int, data_dir, tmp: Path,
               device: torch.device):
    """The two training steps of preset ``name`` on one random batch."""
    cfg = preset(name, batch_size=batch_size)
    torch.manual_seed(0)
    batch = torch.rand(cfg.seq_len, batch_size, cfg.nc, cfg.nx, cfg.nx)
    model = official.srvp.StochasticLatentResidualVideoPredictor(
        cfg.nx, cfg.nc, cfg.nf, cfg.nhx, cfg.ny, cfg.nz, cfg.skipco, cfg.nt_inf,
        cfg.nh_inf, cfg.nlayers_inf, cfg.nh_res, cfg.nlayers_res, cfg.archi)
    model.init(res_gain=cfg.res_gain)
    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    opt = official_opt(official, cfg)

    def theirs():
        official.train.train(model.forward, optimizer, None, batch, device, opt)

    trainer = _trainer(cfg, tmp / name, data_dir, device)
    return theirs, lambda: trainer.train_step(batch)


def _trainer(cfg, out: Path, data_dir, device: torch.device):
    """Our trainer of ``cfg``; a video preset is built over Moving MNIST, whose
    digits it reads but never uses (each step is given the batch)."""
    if cfg.dataset not in ("smmnist", "mmnist"):
        cfg = cfg.replace(dataset="smmnist")
    return Trainer(cfg, out, data_dir, Options(device=str(device), progress=False))


def test_pair(official, data_dir, n_samples: int, tmp: Path, device: torch.device,
              amp: str = "off"):
    """Best of ``n_samples`` for 16 test videos: ``test.main`` and ``evaluate``."""
    from srvp import SRVP, save_experiment  # noqa: PLC0415
    from srvp.data import build_test_set  # noqa: PLC0415
    from srvp.data.moving_mnist_testset import save_test_set  # noqa: PLC0415
    from srvp.data.registry import test_batches  # noqa: PLC0415
    from srvp.evaluate import Protocol, evaluate  # noqa: PLC0415

    images, labels = load_mnist(data_dir, split="test")
    data = tmp / "testset"
    save_test_set(build_test_set(images, labels, num_videos=16, progress=False),
                  data)
    cfg = preset("smmnist")
    torch.manual_seed(0)
    model = SRVP(cfg).eval()
    xp = tmp / "xp"
    save_experiment(model, xp)
    model.to(device)
    gpu = (device.index or 0) if device.type == "cuda" else None  # its --device
    opt = official.helper.DotDict(
        device=gpu, test_seed=1, lpips_dir=None, xp_dir=str(xp), nt_cond=None,
        nt_gen=cfg.nt_cond + 20, n_euler_steps=None, data_dir=str(data),
        batch_size=16, model_name="model.pt", n_samples=n_samples, fvd=False)
    batches = [x.to(device)
               for x in test_batches(cfg, data, cfg.nt_cond + 20, 16, 16)]
    protocol = Protocol(cfg.nt_cond, 20, n_samples, amp=amp)

    def theirs():
        with torch.enable_grad(), open(os.devnull, "w") as quiet, \
                contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            official.test.main(official.helper.DotDict(opt))  # it turns grads off

    def ours():
        evaluate(model, batches, protocol, progress=False)

    return theirs, ours


def data_pair(official, data_dir, batch_size: int):
    """A training batch of Stochastic Moving MNIST, official and ours."""
    digits, _ = load_mnist(data_dir, split="train")
    cfg = preset("smmnist", batch_size=batch_size)
    np.random.seed(0)
    dataset = official.mmnist.MovingMNIST(list(digits), cfg.nx, cfg.seq_len,
                                          cfg.max_speed, False, cfg.ndigits, True)
    loader = iter(torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, collate_fn=official.data.collate_fn,
        num_workers=0, shuffle=True, drop_last=True))
    ours = StepBatches(MovingMNIST(digits, seq_len=cfg.seq_len), batch_size, seed=1,
                       rank=0, n_steps=10**6)
    step = iter(range(10**6))

    def theirs():  # 20 batches a call: long enough for the CPU-share estimate
        for _ in range(20):
            next(loader)

    def mine():
        for _ in range(20):
            ours[next(step)]

    return theirs, mine


def row(label: str, times, shares) -> str:
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    other = [shares[k].percent for k in ("official", "ours")]
    other = "n/a" if None in other else f"{max(other):.0f} %"
    return (f"| {label} | {med['official']:.4f} | {low['official']:.4f} "
            f"| {med['ours']:.4f} | {low['ours']:.4f} "
            f"| {med['ours'] / med['official']:.2f}x | {other} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, default=os.environ.get(ENV),
                   help=f"export of the official repository (default: ${ENV})")
    p.add_argument("--data-dir", default=None,
                   help="MNIST IDX files (default: $SRVP_MNIST_DIR)")
    p.add_argument("--only", nargs="+", choices=["train", "test", "data"],
                   default=["train", "test", "data"], help="parts to time")
    p.add_argument("--samples", type=int, default=20,
                   help="samples per video of the test loop (default 20)")
    p.add_argument("--presets", nargs="+", default=["smmnist", "kth"],
                   help="training presets (default: smmnist kth)")
    p.add_argument("--batch", type=int, nargs="+", default=[16, 4],
                   help="training batch per preset (default: 16 4)")
    p.add_argument("--reps", type=int, default=10, help="timed calls of each")
    p.add_argument("--amp", default="off", choices=AMP_MODES,
                   help="precision of our test loop (evaluate --amp; default off, "
                        "float32 like the official loop)")
    p.add_argument("--device", default="cpu",
                   help="cpu (default) or cuda: where both models run")
    args = p.parse_args()
    if args.official is None:
        p.error(f"pass --official PATH (or set ${ENV}) to a copy of the official "
                "code: git clone https://github.com/edouardelasalles/srvp")
    if len(args.batch) != len(args.presets):
        p.error("give one --batch per preset")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: this PyTorch sees no CUDA device")
    torch.set_num_threads(1)
    official = import_official(args.official.expanduser().resolve())
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else "CPU")
    print(f"torch {torch.__version__}, {where}, one CPU thread each, {args.reps} "
          "interleaved calls after one warm-up")
    print("| work | official median s | official min s | ours median s "
          "| ours min s | ours / official | CPU taken by others |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        if "train" in args.only:
            for name, batch in zip(args.presets, args.batch):
                pair = train_pair(official, name, batch, args.data_dir, Path(tmp),
                                  device)
                print(row(f"training step, {name}, batch {batch}",
                          *interleave(*pair, args.reps)), flush=True)
        if "test" in args.only:
            pair = test_pair(official, args.data_dir, args.samples, Path(tmp), device,
                             args.amp)
            ours_amp = "" if args.amp == "off" else f", ours in {args.amp}"
            print(row(f"best of {args.samples}, 16 videos, 5 + 20 frames{ours_amp}",
                      *interleave(*pair, max(1, args.reps // 2))), flush=True)
        if "data" in args.only and device.type == "cpu":
            pair = data_pair(official, args.data_dir, 16)
            print(row("20 Moving MNIST training batches of 16", *interleave(
                *pair, args.reps * 4)), flush=True)


if __name__ == "__main__":
    main()
