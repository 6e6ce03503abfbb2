"""The SRVP model: inference, learned prior, residual dynamics (book ch. 2 and 3).

Tensors are time first, as in the official code: videos are (T, B, C, H, W) with
values in [0, 1], latent sequences (T, B, n). The paper's y_1 is ``y[0]`` here.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import Config, check_euler_steps
from .nets import (
    MLP,
    check_video,
    init_encdec_,
    init_orthogonal_,
    make_decoder,
    make_encoder,
)

Skips = Optional[List[torch.Tensor]]


class Output(NamedTuple):
    """What :meth:`SRVP.forward` returns (shapes for ``T`` frames, ``K`` sub-steps).

    ``x_hat`` (T', B, C, H, W) decoded frames and ``y`` (T', B, ny) states, with
    T' = T, or (T - 1) K + 1 with intermediate states; ``z`` (T - 1, B, nz);
    ``w`` (B, nh_inf), or (B, 0) without a content variable; ``q_y1_params``
    (B, 2 ny) of q(y_1); ``q_z_params`` (T_obs - 1, B, 2 nz) for the observed
    transitions; ``p_z_params`` (T - 1, B, 2 nz);
    ``res`` ((T - 1) K, B, ny) every residual dt * f(y, z).
    """

    x_hat: torch.Tensor
    y: torch.Tensor
    z: torch.Tensor
    w: torch.Tensor
    q_y1_params: torch.Tensor
    q_z_params: Optional[torch.Tensor]
    p_z_params: torch.Tensor
    res: torch.Tensor


def normal_scale(raw: torch.Tensor) -> torch.Tensor:
    """Standard deviation from a raw parameter: softplus(raw) + 1e-8."""
    return F.softplus(raw) + 1e-8


def rsample_normal(params: torch.Tensor) -> torch.Tensor:
    """Reparameterised sample of N(loc, scale) from ``params = [loc, raw_scale]``."""
    loc, raw = params.chunk(2, -1)
    return loc + normal_scale(raw) * torch.randn_like(loc)


class SRVP(nn.Module):
    """Stochastic Latent Residual Video Prediction (Franceschi et al., 2020).

    Parameters
    ----------
    cfg : Config
        Architecture and sizes (``archi, nc, nf, nhx, ny, nz, skipco, nt_inf,
        nh_inf, nlayers_inf, nh_res, nlayers_res, res_gain``).

    Submodules keep the official names, so official state dicts load strictly.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.ny, self.nz, self.nhx, self.nh_inf = cfg.ny, cfg.nz, cfg.nhx, cfg.nh_inf
        self.nt_inf, self.skipco = cfg.nt_inf, cfg.skipco
        # Frames <-> vectors
        self.encoder = make_encoder(cfg.archi, cfg.nc, cfg.nhx, cfg.nf)
        self.nw = cfg.nh_inf if cfg.content else 0  # size of w (0: no content)
        self.decoder = make_decoder(cfg.archi, cfg.nc, self.nw + cfg.ny, cfg.nf,
                                    cfg.skipco)
        # Content variable w: permutation-invariant over frame codes
        if cfg.content:
            self.w_proj = nn.Sequential(nn.Linear(cfg.nhx, cfg.nh_inf), nn.ReLU(True))
            self.w_inf = nn.Sequential(nn.Linear(cfg.nh_inf, cfg.nh_inf), nn.Tanh())
        # q(y_1 | x_1:k), q(z_t | x_1:t), p(z_t+1 | y_t), and the residual f
        self.q_y = MLP(cfg.nhx * cfg.nt_inf, cfg.nh_inf, 2 * cfg.ny, cfg.nlayers_inf)
        self.inf_z = nn.LSTM(cfg.nhx, cfg.nh_inf, 1)
        self.q_z = nn.Linear(cfg.nh_inf, 2 * cfg.nz)
        self.p_z = MLP(cfg.ny, cfg.nh_res, 2 * cfg.nz, cfg.nlayers_res)
        self.dynamics = MLP(cfg.ny + cfg.nz, cfg.nh_res, cfg.ny, cfg.nlayers_res)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation: N(0, 0.02) for the convolutional networks,
        orthogonal with gain ``res_gain`` for the residual MLP, PyTorch's default
        elsewhere."""
        init_encdec_(self.encoder)
        init_encdec_(self.decoder)
        init_orthogonal_(self.dynamics, self.cfg.res_gain)

    # ------------------------------------------------------------ frames
    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, Skips]:
        """Encode frames (T, B, C, H, W) into codes ``hx`` (T, B, nhx).

        Skip connections come from one random frame per video in training mode
        and from the last frame in evaluation mode (``None`` without skips).
        """
        nt, bsz = x.shape[:2]
        hx, feats = self.encoder(x.reshape(nt * bsz, *x.shape[2:]))  # (T B, C, H, W)
        if not self.skipco:
            return hx.view(nt, bsz, -1), None  # (T, B, nhx)
        if self.training:
            t = torch.randint(nt, (bsz,), device=x.device)
            idx = torch.arange(bsz, device=x.device)
            # each (T B, c, h, w) -> (T, B, c, h, w) -> frame t[b] of video b
            skips = [f.view(nt, bsz, *f.shape[1:])[t, idx] for f in feats]  # (B, ..)
        else:
            skips = [f.view(nt, bsz, *f.shape[1:])[-1] for f in feats]  # (B, c, h, w)
        return hx.view(nt, bsz, -1), skips  # (T, B, nhx)

    def decode(self, w: torch.Tensor, y: torch.Tensor, skips: Skips,
               fused: bool = False) -> torch.Tensor:
        """Decode states ``y`` (T, B, ny) with content ``w`` (B, nh_inf) into
        frames (T, B, C, H, W); the same skips serve every time step.
        ``fused``: evaluation-mode fast path (see :meth:`Decoder.forward`)."""
        nt, bsz = y.shape[:2]
        # (T, B, nh_inf + ny) -> (T B, nh_inf + ny): one decoder batch
        h = torch.cat([w.expand(nt, *w.shape), y], -1).view(nt * bsz, -1)
        if skips is not None:
            # each (B, c, h, w) -> (T, B, c, h, w) -> (T B, c, h, w)
            skips = [s.expand(nt, *s.shape).reshape(nt * bsz, *s.shape[1:])
                     for s in skips]
        x_hat = self.decoder(h, skips, fused=fused)
        return x_hat.view(nt, bsz, *x_hat.shape[1:])  # (T, B, C, H, W)

    # --------------------------------------------------------- inference
    def infer_w(self, hx: torch.Tensor) -> torch.Tensor:
        """Content w (B, nh_inf) from ``nt_inf`` codes: random frames of the clip
        in training, the last ones in evaluation. Without a content variable
        (``cfg.content=False``), an empty (B, 0) tensor."""
        nt, bsz = hx.shape[:2]
        if not self.cfg.content:
            return hx.new_zeros(bsz, 0)
        if self.training:
            # nt_inf distinct random frames per video, drawn in one batched op
            t = torch.rand(nt, bsz, device=hx.device).argsort(0)[: self.nt_inf]
            h = hx[t, torch.arange(bsz, device=hx.device)]
        else:
            h = hx[-self.nt_inf:]
        return self.w_inf(self.w_proj(h).sum(0))

    def q_y1_params(self, hx: torch.Tensor) -> torch.Tensor:
        """Parameters (B, 2 ny) of q(y_1 | x_1:k) from the first k = nt_inf codes
        (k, B, nhx), concatenated per video."""
        if hx.shape[0] != self.nt_inf:
            raise ValueError(f"q(y_1) needs exactly nt_inf={self.nt_inf} codes, "
                             f"got {hx.shape[0]}")
        return self.q_y(hx.transpose(0, 1).reshape(hx.shape[1], -1))  # (B, k nhx)

    def infer_y(self, hx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sample y_1 (B, ny) from q(y_1 | x_1:k), given the first k codes
        (k, B, nhx); also return its parameters (B, 2 ny)."""
        params = self.q_y1_params(hx)
        return rsample_normal(params), params

    def _residual_step(self, y_t: torch.Tensor, z_tp1: torch.Tensor,
                       dt: float) -> Tuple[torch.Tensor, torch.Tensor]:
        """One Euler step y_t+dt = y_t + dt f(y_t, z_t+1) (book ch. 3).

        Returns the new state and the residual ``dt * f(y_t, z_t+1)``. With
        ``cfg.dynamics="direct"`` (an ablation, book ch. 8) the network's output
        is the next state, y_t+1 = f(y_t, z_t+1), and the "residual" returned
        (penalised by the loss's L2 term, as the residual is) is the change of
        state y_t+1 - y_t.
        """
        out = self.dynamics(torch.cat([y_t, z_tp1], -1))
        if self.cfg.dynamics == "direct":
            return out, out - y_t
        res = dt * out
        return y_t + res, res

    def infer_z_states(self, hx: torch.Tensor) -> Optional[torch.Tensor]:
        """LSTM states (T_obs, B, nh_inf) behind q(z_t | x_1:t), from codes
        (T_obs, B, nhx); None for a single frame (no observed transition)."""
        return self.inf_z(hx)[0] if len(hx) > 1 else None

    def generate(self, y1: torch.Tensor, hx: Optional[torch.Tensor], nt: int,
                 n_euler_steps: int, intermediate: bool = False, *,
                 h_z: Optional[torch.Tensor] = None, repeat: int = 1,
                 n_euler_steps_cond: Optional[int] = None):
        """Integrate the latent ODE from ``y1`` over ``nt - 1`` frame intervals.

        Interval t -> t+1 draws one z_t+1, from q(z | x_1:t+1) while codes ``hx``
        (T_obs, B, nhx) are available and from the prior p(z | y_t) after, then
        makes ``K = n_euler_steps`` Euler sub-steps of dt = 1/K that share it.

        Keyword arguments serve prediction: ``h_z``, the LSTM states of
        :meth:`infer_z_states` computed once, in place of ``hx``; ``repeat``,
        the number of samples stacked sample-major in ``y1`` (R B, ny), each
        drawing its own z from the shared posterior; ``n_euler_steps_cond``,
        the Euler steps of the observed intervals (default ``n_euler_steps``).

        Returns ``(y, z, q_z_params, p_z_params, res)``: states at integer times
        (nt, B, ny) or every sub-step if ``intermediate``; z (nt - 1, B, nz);
        posterior parameters of the observed transitions (or None); prior
        parameters (nt - 1, B, 2 nz); residuals, one per sub-step (.., B, ny).
        """
        k_pred = check_euler_steps(n_euler_steps, self.cfg.dynamics)
        k_cond = k_pred if n_euler_steps_cond is None else \
            check_euler_steps(n_euler_steps_cond, self.cfg.dynamics)
        if h_z is None and hx is not None:
            h_z = self.infer_z_states(hx)
        n_obs = 0 if h_z is None else len(h_z)
        y, ys, zs, q_params, p_params, res = y1, [y1], [], [], [], []
        for t in range(nt - 1):
            p_params.append(self.p_z(y))
            observed = t + 1 < n_obs
            if observed:
                q = self.q_z(h_z[t + 1])  # (B, 2 nz)
                q_params.append(q.repeat(repeat, 1) if repeat > 1 else q)
                z = rsample_normal(q_params[-1])
            elif self.training:
                raise ValueError("training needs observed frames for every step")
            else:
                z = rsample_normal(p_params[-1])
            zs.append(z)
            k = k_cond if observed else k_pred
            for j in range(k):
                y, r = self._residual_step(y, z, 1.0 / k)
                res.append(r)
                if intermediate or j == k - 1:
                    ys.append(y)
        stack = lambda v: torch.stack(v) if v else None  # noqa: E731
        return (torch.stack(ys), stack(zs), stack(q_params), stack(p_params),
                stack(res))

    def forward(self, x: torch.Tensor, nt: Optional[int] = None,
                n_euler_steps: Optional[int] = None,
                intermediate: bool = False) -> Output:
        """Infer, integrate and decode: the path of training (book ch. 4).

        Parameters
        ----------
        x : Tensor (T, B, C, H, W) in [0, 1].
        nt : frames to produce (default T); beyond T the prior drives z
            (evaluation mode only).
        n_euler_steps : Euler steps K per frame interval, dt = 1/K (default
            ``cfg.n_euler_steps``).
        intermediate : also decode the states between integer times.
        """
        # values are read back on the CPU only: on a GPU that would be a sync
        check_video(x, self.cfg, min_frames=self.nt_inf, values=x.device.type == "cpu")
        nt = x.shape[0] if nt is None else nt
        k = self.cfg.n_euler_steps if n_euler_steps is None else n_euler_steps
        hx, skips = self.encode(x)
        w = self.infer_w(hx)
        y1, q_y1 = self.infer_y(hx[: self.nt_inf])
        y, z, q_z, p_z, res = self.generate(y1, hx, nt, k, intermediate)
        return Output(self.decode(w, y, skips), y, z, w, q_y1, q_z, p_z, res)

    # ------------------------------------------------------- prediction
    @torch.no_grad()
    def predict(self, x_cond: torch.Tensor, nt_pred: int, n_samples: int = 1,
                n_euler_steps: Optional[int] = None, intermediate: bool = False,
                chunk_size: int = 256,
                n_euler_steps_cond: Optional[int] = None) -> torch.Tensor:
        """Sample ``n_samples`` futures of ``nt_pred`` frames (book ch. 5 and 6).

        The conditioning frames are encoded once; every sample redraws y_1 and
        the posterior z of the conditioning frames, then the prior z of the
        future, exactly as the official test loop, but all samples of a chunk
        run as one batch and only the predicted frames are decoded.

        As in the official test loop, the states of the conditioning frames are
        inferred with the *training* Euler step and only the prediction uses
        ``n_euler_steps`` (book ch. 6); ``n_euler_steps_cond`` sets another for
        the conditioning frames (equal values: one step size throughout).

        Parameters
        ----------
        x_cond : Tensor (T_cond, B, C, H, W) in [0, 1], T_cond >= nt_inf.
        nt_pred : number of future frames.
        n_samples : futures per video.
        n_euler_steps : Euler steps K per predicted frame, dt = 1/K (default:
            the training value); any integer K >= 1 works.
        intermediate : also return the K - 1 frames between two integer times.
        chunk_size : largest number of videos x samples decoded at once.
        n_euler_steps_cond : Euler steps per conditioning frame (default: the
            training value).

        Returns
        -------
        Tensor (n_samples, T_out, B, C, H, W) in [0, 1], T_out = nt_pred, or
        nt_pred K with ``intermediate``.
        """
        was_training = self.training
        self.eval()
        try:
            check_video(x_cond, self.cfg, min_frames=self.nt_inf)
            k = self.cfg.n_euler_steps if n_euler_steps is None else n_euler_steps
            k_cond = (self.cfg.n_euler_steps if n_euler_steps_cond is None
                      else n_euler_steps_cond)
            nt_cond, bsz = x_cond.shape[:2]
            hx, skips = self.encode(x_cond)  # (T_cond, B, nhx)
            h_z = self.infer_z_states(hx)  # (T_cond, B, nh_inf) or None
            q_y1 = self.q_y1_params(hx[: self.nt_inf])  # (B, 2 ny)
            w = self.infer_w(hx)  # (B, nh_inf)
            per_chunk = max(1, chunk_size // bsz)
            out = []
            for s in range(0, n_samples, per_chunk):
                n = min(per_chunk, n_samples - s)
                y1 = rsample_normal(q_y1.repeat(n, 1))  # (n B, ny), sample-major
                y = self.generate(y1, None, nt_cond + nt_pred, k, intermediate,
                                  h_z=h_z, repeat=n, n_euler_steps_cond=k_cond)[0]
                n_past = 1 + (nt_cond - 1) * (k_cond if intermediate
                                              else 1)  # states up to frame T_cond
                x = self.decode(w.repeat(n, 1), y[n_past:], _repeat(skips, n),
                                fused=True).clamp_(0, 1)  # (T_out, n B, C, H, W)
                # (T_out, n B, ...) -> (T_out, n, B, ...) -> (n, T_out, B, ...)
                out.append(x.view(x.shape[0], n, bsz, *x.shape[2:]).transpose(0, 1))
            return torch.cat(out, 0)  # (n_samples, T_out, B, C, H, W)
        finally:
            self.train(was_training)

    # ------------------------------------------------------ content swap
    @torch.no_grad()
    def swap_content(self, x_dynamics: torch.Tensor,
                     x_content: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Decode the dynamics of one video with the content of another.

        States y are inferred from all frames of ``x_dynamics`` (T, B, ...); the
        content w (and the skip connections) from the last frames of
        ``x_content`` (T', B, ...). Returns frames (T, B, C, H, W) and the
        states y (T, B, ny), which do not depend on ``x_content``.
        """
        was_training = self.training
        self.eval()
        try:
            check_video(x_dynamics, self.cfg, min_frames=self.nt_inf)
            check_video(x_content, self.cfg, min_frames=self.nt_inf)
            if x_dynamics.shape[1] != x_content.shape[1]:
                raise ValueError("x_dynamics and x_content need the same batch size")
            hx, _ = self.encode(x_dynamics)
            y1, _ = self.infer_y(hx[: self.nt_inf])
            y = self.generate(y1, hx, len(hx), self.cfg.n_euler_steps)[0]
            hx_c, skips_c = self.encode(x_content)
            return self.decode(self.infer_w(hx_c), y, skips_c), y
        finally:
            self.train(was_training)


def _repeat(skips: Skips, n: int) -> Skips:
    """Skip features (B, ...) repeated sample-major for n samples (n B, ...)."""
    return None if skips is None else [s.repeat(n, *[1] * (s.dim() - 1)) for s in skips]

