"""Configurations and the paper's presets (book ch. 2 and 4).

A :class:`Config` is a frozen dataclass. Its field names are the official flag
names of the SRVP training script, except the validation settings, which are
named as such here (``val_seq_len`` for the official ``seq_len_test``, see
:data:`OFFICIAL_NAMES`): every official command line maps one to one onto a
preset, an official ``config.json`` maps onto a ``Config``
(:meth:`Config.from_official`) and back (:meth:`Config.to_official`).
"""
from __future__ import annotations

import dataclasses
import json
import math
import numbers
import os
import warnings
from dataclasses import dataclass, fields
from typing import Any, Dict, NamedTuple

from .fileio import atomic_write_text

ARCHITECTURES = ("dcgan", "vgg")
#: Latent transitions: the paper's residual Euler step, or the ablation that
#: takes the transition network's output as the next state (book ch. 8).
DYNAMICS = ("residual", "direct")


#: Upper bound of the Euler steps per frame interval: more would run for hours
#: per video without changing the prediction (book ch. 6).
MAX_EULER_STEPS = 1000


def check_euler_steps(n_euler_steps: Any, dynamics: str = "residual") -> int:
    """Return ``n_euler_steps``, the Euler steps K per frame interval (the step
    is dt = 1 / K, book ch. 6), after checking it: an integer from 1 to
    :data:`MAX_EULER_STEPS`, and 1 for ``dynamics="direct"``, which has no step
    to refine. Raises a one-line ``ValueError`` naming the value and the fix."""
    k = n_euler_steps
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or \
            not 1 <= k <= MAX_EULER_STEPS:
        raise ValueError(f"n_euler_steps={k!r}: the Euler steps per frame "
                         f"interval must be an integer K from 1 to "
                         f"{MAX_EULER_STEPS} (dt = 1/K)")
    if dynamics == "direct" and k != 1:
        raise ValueError(f"n_euler_steps={k}: direct dynamics "
                         "(y_t+1 = f(y_t, z_t+1)) have no Euler step to refine; "
                         "use n_euler_steps=1, or dynamics=residual")
    return int(k)


class Range(NamedTuple):
    """The values a number field may take: ``low`` to ``high``, ``low``
    excluded when ``open_low``; ``what`` the field is, for the message."""

    low: float
    high: float
    what: str
    open_low: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise ``ValueError`` naming ``name``, ``value`` and the range when
        ``value`` is outside it (NaN and infinities always are)."""
        finite = isinstance(value, numbers.Integral) or math.isfinite(value)
        inside = finite and value <= self.high and (
            value > self.low if self.open_low else value >= self.low)
        if inside:
            return
        if isinstance(value, float) or isinstance(self.low, float):
            rule = (f"a finite number in {'(' if self.open_low else '['}"
                    f"{self.low:g}, {self.high:g}]")
        else:
            rule = f"an integer from {self.low:,} to {self.high:,}"
        shown = repr(value) if len(repr(value)) < 40 else f"{repr(value)[:12]}..."
        raise ValueError(f"{name}={shown}: {self.what} must be {rule}")


MAX_SEED = 2**63 - 1  # the largest seed of training and test (torch takes it)
_BIG = 10**9  # steps: a bound that only a mistyped value reaches
MAX_FRAMES, MAX_BATCH, MAX_WIDTH = 1000, 16384, 4096

#: The range of every number field of :class:`Config`; the upper bounds stop
#: values that would exhaust memory or run for ever, well above the presets.
CONFIG_RANGES: Dict[str, Range] = {
    "seq_len": Range(1, MAX_FRAMES, "the training clip length"),
    "val_seq_len": Range(1, MAX_FRAMES, "the validation clip length"),
    "ndigits": Range(1, 10, "the digits per Moving MNIST video"),
    "max_speed": Range(0, 32, "the largest Moving MNIST speed (pixels per frame)"),
    "subsampling": Range(1, 1000, "the Human3.6M frame subsampling"),
    "nf": Range(1, 512, "the filters of the first convolution"),
    **{k: Range(1, MAX_WIDTH, f"the layer size {k}")
       for k in ("nhx", "ny", "nz", "nh_inf", "nh_res")},
    "nt_inf": Range(1, MAX_FRAMES, "the frames that infer y1 and w"),
    "nlayers_inf": Range(2, 32, "the layers of the inference network"),
    "nlayers_res": Range(2, 32, "the layers of the residual network"),
    "res_gain": Range(0.0, 100.0, "the residual network's initial gain", True),
    "obs_scale": Range(0.0, 1e6, "the observation scale", True),
    "beta_y": Range(0.0, 1e6, "a loss weight"),
    "beta_z": Range(0.0, 1e6, "a loss weight"),
    "l2_res": Range(0.0, 1e6, "a loss weight"),
    "kl_warmup": Range(0, _BIG, "the KL warm-up (0: off, else steps)"),
    "batch_size": Range(1, MAX_BATCH, "the training batch size"),
    "lr": Range(0.0, 10.0, "the learning rate", True),
    "lr_scheduling_burnin": Range(0, _BIG, "the steps at a constant rate"),
    "lr_scheduling_n_iter": Range(0, _BIG, "the steps of the linear decay"),
    "val_interval": Range(1, _BIG, "the steps between validations"),
    "val_batch_size": Range(1, MAX_BATCH, "the validation batch size"),
    "val_batches": Range(1, 10**5, "the validation batches"),
    "val_samples": Range(1, 10**4, "the samples per validation video"),
    "nt_cond": Range(1, MAX_FRAMES, "the conditioning frames"),
    "nt_gen": Range(1, MAX_FRAMES, "the test frames"),
    "n_samples": Range(1, 10**4, "the samples per test video"),
}
SVG_RANGES: Dict[str, Range] = {
    **{k: Range(1, MAX_WIDTH, f"the SVG layer size {k}")
       for k in ("g_dim", "z_dim", "rnn_size")},
    **{k: Range(1, 16, f"the SVG {k}") for k in
       ("predictor_rnn_layers", "prior_rnn_layers", "posterior_rnn_layers")},
    "beta": Range(0.0, 1e6, "the SVG KL weight", True),
}


def _check_types(cfg) -> None:
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        if str(f.type) == "SVGSettings":
            if not isinstance(v, SVGSettings):
                raise TypeError(f"{f.name}={v!r}: expected SVGSettings")
            continue
        t = {"int": int, "float": float, "bool": bool, "str": str}[str(f.type)]
        ok = isinstance(v, t) and not (t is int and isinstance(v, bool))
        if t is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            raise TypeError(f"{f.name}={v!r}: expected {t.__name__}, got "
                            f"{type(v).__name__}")


@dataclass(frozen=True)
class SVGSettings:
    """The SVG-LP baseline's own settings (official ``train_svg_lp.py`` flag names
    and defaults), held in ``Config.svg``; SRVP ignores them."""

    g_dim: int = 128  # frame code size (encoder output, predictor output)
    z_dim: int = 10
    rnn_size: int = 256
    predictor_rnn_layers: int = 2
    prior_rnn_layers: int = 1
    posterior_rnn_layers: int = 1
    beta: float = 1e-4  # weight of KL(q || p)

    def __post_init__(self):
        _check_types(self)
        for name, allowed in SVG_RANGES.items():
            allowed.check(name, getattr(self, name))


SVG_FIELDS = tuple(f.name for f in fields(SVGSettings))


@dataclass(frozen=True)
class Config:
    """Every hyperparameter of a model, its loss, its data and its training.

    The defaults are the official defaults; :data:`PRESETS` holds the per-dataset
    values of the paper.
    """

    # -- Data
    dataset: str = "smmnist"  # a name of srvp.data.registry.DATASETS
    nx: int = 64  # frame width and height
    nc: int = 1  # channels
    seq_len: int = 15  # training clip length
    val_seq_len: int = 15  # validation clip length (official: seq_len_test)
    ndigits: int = 2  # Moving MNIST only
    max_speed: int = 4  # Moving MNIST only
    deterministic: bool = False  # Moving MNIST only: deterministic bounces
    subsampling: int = 8  # Human3.6M only: keep one frame in `subsampling`
    # -- Model
    model: str = "srvp"  # a name of srvp.model_registry.MODELS (srvp, svg)
    archi: str = "dcgan"
    skipco: bool = False
    nf: int = 64
    nhx: int = 128
    ny: int = 20
    nz: int = 20
    nt_inf: int = 5
    nh_inf: int = 256
    nlayers_inf: int = 3
    nh_res: int = 512
    nlayers_res: int = 4
    res_gain: float = 1.41
    n_euler_steps: int = 1  # training Euler steps per frame: dt = 1 / n_euler_steps
    # -- Ablations (not official; the defaults are the paper's model)
    dynamics: str = "residual"  # "direct": y_t+1 = f(y_t, z_t+1), no Euler step
    content: bool = True  # False: no content network; the decoder sees y alone
    # -- The SVG-LP baseline's settings (model="svg"); SVG fields such as g_dim
    # are also accepted flat by replace(), --set and official configs
    svg: SVGSettings = SVGSettings()
    # -- Loss
    obs_scale: float = 1.0
    beta_y: float = 1.0
    beta_z: float = 1.0
    l2_res: float = 1.0
    kl_warmup: int = 0  # not official: KL weights rise linearly over these steps
    # -- Optimisation
    batch_size: int = 128
    lr: float = 3e-4
    lr_scheduling_burnin: int = 1_000_000
    lr_scheduling_n_iter: int = 100_000
    # -- Validation during training (official flags: batch_size_test,
    # n_iter_test, n_samples_test)
    val_interval: int = 20_000  # steps between validations
    val_batch_size: int = 16
    val_batches: int = 25  # the fixed validation set: val_batches x val_batch_size
    val_samples: int = 100  # best of val_samples futures per validation video
    # -- Test
    nt_cond: int = 5  # conditioning frames at test time
    nt_gen: int = 25  # total test frames (conditioning + predicted)
    n_samples: int = 100  # samples per test video

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field when a value cannot work."""
        _check_types(self)
        if self.archi not in ARCHITECTURES:
            raise ValueError(f"archi={self.archi!r}: expected one of {ARCHITECTURES}")
        if self.dynamics not in DYNAMICS:
            raise ValueError(f"dynamics={self.dynamics!r}: expected one of {DYNAMICS}")
        check_euler_steps(self.n_euler_steps, self.dynamics)
        if self.nx != 64:
            raise ValueError(f"nx={self.nx}: the DCGAN and VGG networks take 64x64 "
                             "frames")
        if self.nc not in (1, 3):
            raise ValueError(f"nc={self.nc}: expected 1 (grayscale) or 3 (RGB)")
        for name, allowed in CONFIG_RANGES.items():
            allowed.check(name, getattr(self, name))
        if self.nt_inf > self.nt_cond:
            raise ValueError(f"nt_inf={self.nt_inf} exceeds nt_cond={self.nt_cond}: "
                             "y1 and w are inferred from the conditioning frames")
        if self.nt_inf > self.seq_len:
            raise ValueError(f"nt_inf={self.nt_inf} exceeds seq_len={self.seq_len}")
        if self.nt_gen <= self.nt_cond:
            raise ValueError(f"nt_gen={self.nt_gen} must exceed nt_cond={self.nt_cond}")
        if self.n_iter < 1:
            raise ValueError("lr_scheduling_burnin=0 and lr_scheduling_n_iter=0: the "
                             "schedule needs at least one step")

    # ------------------------------------------------------------- conversion
    @property
    def dt(self) -> float:
        """Training Euler step size, ``1 / n_euler_steps``, to display or
        compute with; the model's methods take ``n_euler_steps``."""
        return 1.0 / self.n_euler_steps

    def __getattr__(self, name: str):
        # official flag names read as attributes: the validation settings and,
        # flat, the SVG settings (cfg.g_dim is cfg.svg.g_dim)
        if name in OFFICIAL_NAMES:
            return getattr(self, OFFICIAL_NAMES[name])
        if name in SVG_FIELDS:
            return getattr(self.svg, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute "
                             f"{name!r}")

    @property
    def n_iter(self) -> int:
        """Total number of optimisation steps (burn-in plus linear decay)."""
        return self.lr_scheduling_burnin + self.lr_scheduling_n_iter

    def replace(self, **changes: Any) -> "Config":
        """Return a copy with ``changes`` applied (unknown keys raise; the official
        names of the validation settings are accepted, see :data:`OFFICIAL_NAMES`)."""
        changes = {OFFICIAL_NAMES.get(k, k): v for k, v in changes.items()}
        svg = changes.pop("svg", {})
        if isinstance(svg, SVGSettings):
            svg = dataclasses.asdict(svg)
        svg = {**svg, **{k: changes.pop(k) for k in SVG_FIELDS if k in changes}}
        if svg:
            changes["svg"] = dataclasses.replace(self.svg, **svg)
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; known fields: "
                             f"{', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_official(self) -> Dict[str, Any]:
        """The fields under the official flag names (``seq_len_test``, ...; the
        SVG settings flat, as ``train_svg_lp.py`` names them)."""
        back = {v: k for k, v in OFFICIAL_NAMES.items()}
        d = self.to_dict()
        d.update(d.pop("svg"))
        return {back.get(k, k): v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Config":
        """Build from a dict written by :meth:`to_dict`; unknown keys raise."""
        return cls().replace(**d) if d else cls()

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as JSON, atomically."""
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Config":
        with open(path) as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def from_official(cls, d: Dict[str, Any]) -> "Config":
        """Map an official ``config.json`` (the training flags) onto a ``Config``.

        Model fields are required: a missing one raises ``ValueError`` naming it.
        Fields this package does not use (devices, paths, Apex options) are
        ignored; unknown fields give a warning.
        """
        missing = [k for k in OFFICIAL_REQUIRED if k not in d]
        if missing:
            raise ValueError(f"official config lacks the model field(s) {missing}")
        dataset = d.get("dataset")
        base = PRESETS.get(_preset_name(d), cls())
        known = {f.name for f in fields(cls)} | set(SVG_FIELDS)
        d = {OFFICIAL_NAMES.get(k, k): v for k, v in d.items()}
        changes = {k: v for k, v in d.items() if k in known and v is not None}
        if dataset == "smmnist" and d.get("deterministic"):
            changes["dataset"] = "mmnist"
        unknown = sorted(set(d) - known - OFFICIAL_IGNORED)
        if unknown:
            warnings.warn(f"official config: ignoring unknown field(s) {unknown}",
                          stacklevel=2)
        try:
            return base.replace(**_coerce(changes))
        except (TypeError, ValueError) as err:
            raise ValueError(f"official config is inconsistent: {err}") from err


#: Official flag name -> field name, where this package names a field otherwise.
OFFICIAL_NAMES = {"seq_len_test": "val_seq_len", "batch_size_test": "val_batch_size",
                  "n_iter_test": "val_batches", "n_samples_test": "val_samples"}
# Fields an official config.json must hold to rebuild the network.
OFFICIAL_REQUIRED = ("nc", "ny", "nz", "nt_inf", "archi", "skipco")
# Official training flags that describe the run, not the model.
OFFICIAL_IGNORED = frozenset({
    "seed", "save_path", "torch_amp", "apex_amp", "amp_opt_lvl", "keep_batchnorm_fp32",
    "apex_verbose", "local_rank", "device", "n_gpu", "n_workers", "data_dir",
    "chkpt_interval", "n_iter", "train",
})


def _preset_name(d: Dict[str, Any]) -> str:
    if d.get("dataset") == "smmnist" and d.get("deterministic"):
        return "mmnist"
    return d.get("dataset", "")


def _coerce(changes: Dict[str, Any]) -> Dict[str, Any]:
    """Cast JSON numbers to the field types (JSON may store 1 for 1.0)."""
    types = {f.name: f.type for f in (*fields(Config), *fields(SVGSettings))}
    out = {}
    for k, v in changes.items():
        t = types[k]
        if t in ("float", float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out[k] = v
    return out


_MNIST = dict(dataset="smmnist", nc=1, archi="dcgan", skipco=False, ny=20, nz=20,
              nt_inf=5, nt_cond=5, seq_len=15, val_seq_len=15, n_euler_steps=1,
              res_gain=1.41, obs_scale=1.0, beta_y=1.0, beta_z=2.0, batch_size=128,
              lr_scheduling_burnin=1_000_000, lr_scheduling_n_iter=100_000,
              val_interval=20_000, nt_gen=25, n_samples=100)
_VGG = dict(archi="vgg", skipco=True, ny=50, nz=50, n_euler_steps=2, beta_z=1.0)

#: The paper's presets: official README commands and ``args.py`` defaults.
PRESETS: Dict[str, Config] = {
    "smmnist": Config(**_MNIST),
    "mmnist": Config(**{**_MNIST, "dataset": "mmnist", "deterministic": True,
                        "lr_scheduling_burnin": 800_000, "nt_gen": 100,
                        "n_samples": 1}),
    "kth": Config(**{**_VGG, "dataset": "kth", "nc": 1, "nt_inf": 3, "nt_cond": 10,
                     "seq_len": 20, "val_seq_len": 30, "res_gain": 1.2,
                     "obs_scale": 0.2, "batch_size": 100,
                     "lr_scheduling_burnin": 150_000, "lr_scheduling_n_iter": 50_000,
                     "val_interval": 5_000, "nt_gen": 40}),
    "human": Config(**{**_VGG, "dataset": "human", "nc": 3, "nt_inf": 3,
                       "nt_cond": 8, "seq_len": 16, "val_seq_len": 53,
                       "res_gain": 1.2, "obs_scale": 0.2, "batch_size": 100,
                       "lr_scheduling_burnin": 325_000,
                       "lr_scheduling_n_iter": 25_000, "nt_gen": 53,
                       "val_batch_size": 8}),
    "bair": Config(**{**_VGG, "dataset": "bair", "nc": 3, "nt_inf": 2, "nt_cond": 2,
                      "seq_len": 12, "val_seq_len": 12, "res_gain": 1.41,
                      "obs_scale": 0.71, "batch_size": 192,
                      "lr_scheduling_burnin": 1_000_000,
                      "lr_scheduling_n_iter": 500_000, "nt_gen": 30}),
}
# The model the book trains on a CPU (book ch. 4): smmnist with a quarter of the
# filters (nf=16), batches of 64, a higher constant rate, then a linear decay.
# kl_warmup (not in the official code) raises the KL weights over the first 2,000
# steps, against posterior collapse (a small model that uses neither y1 nor z).
# beta_z=5 (the paper has 2) puts less into z and beta_y=0.5 (the paper has 1)
# more into y1. Train it with `--amp bf16` where the CPU has bf16 instructions.
PRESETS["cpu"] = PRESETS["smmnist"].replace(
    nf=16, batch_size=64, lr=6e-4, lr_scheduling_burnin=7_000,
    lr_scheduling_n_iter=1_400, kl_warmup=2_000, beta_z=5.0, beta_y=0.5,
    val_interval=500, val_batches=4, val_samples=20)
# SVG-LP (Denton & Fergus, 2018) on SM-MNIST: the official train_svg_lp.py
# defaults and README command (5 + 10 frames, batch 100, Adam lr 2e-3 with betas
# (0.9, 0.999)); a constant rate for 300 epochs of 600 steps.
PRESETS["svg"] = PRESETS["smmnist"].replace(
    model="svg", nf=64, g_dim=128, z_dim=10, rnn_size=256, predictor_rnn_layers=2,
    prior_rnn_layers=1, posterior_rnn_layers=1, beta=1e-4, nt_cond=5, seq_len=15,
    batch_size=100, lr=2e-3, lr_scheduling_burnin=180_000, lr_scheduling_n_iter=0)
# SVG-LP for the book's CPU comparison (book ch. 9): half the filters, batch 16,
# lr 1e-3 (the official 2e-3 is for batch 100), validation like "cpu", and the same
# shape of schedule: constant rate, then a linear decay.
PRESETS["svg_cpu"] = PRESETS["svg"].replace(
    nf=32, batch_size=16, lr=1e-3, lr_scheduling_burnin=1_700,
    lr_scheduling_n_iter=800, val_interval=500, val_batches=4, val_samples=20)
# A tiny model for the tests and the smoke profile of the book.
PRESETS["smoke"] = PRESETS["smmnist"].replace(
    nf=8, nhx=16, ny=4, nz=4, nt_inf=2, nt_cond=2, nh_inf=16, nh_res=16,
    seq_len=6, val_seq_len=6, nt_gen=6, batch_size=4, lr_scheduling_burnin=8,
    lr_scheduling_n_iter=2, val_interval=5, val_batch_size=2, val_batches=1,
    val_samples=3, n_samples=3)


def preset(name: str, **overrides: Any) -> Config:
    """Return the named preset, with ``overrides`` applied.

    >>> preset("kth").obs_scale
    0.2
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]
