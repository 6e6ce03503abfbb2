"""Small builders shared by the tests."""
import torch

from srvp import SRVP, preset


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
