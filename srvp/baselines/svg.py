"""SVG-LP: Stochastic Video Generation with a Learned Prior (Denton & Fergus,
ICML 2018), the baseline of the SRVP paper, as its official code trains and
samples it.

The model works in frame space, one frame at a time. For t = 1 .. T-1:

    h_t-1 = Enc(x_t-1)                          frame code, (B, g_dim)
    z_t ~ q(z_t | x_1:t)   posterior LSTM fed Enc(x_t)       (training)
    z_t ~ p(z_t | x_1:t-1) learned-prior LSTM fed h_t-1       (prediction)
    g_t = Pred(h_t-1, z_t) frame-predictor LSTM, tanh output  (B, g_dim)
    x_hat_t = Dec(g_t, skips)                   sigmoid frame

Training is teacher forced: h_t-1 always encodes the true frame. Prediction
feeds every predicted frame back through the encoder. The loss is the summed
per-frame MSE plus beta KL(q || p).

Skip connections follow the official code (``last_frame_skip=False``): step t
uses the encoder features of x_t-1 while t < n_past, then keeps those of
x_n_past-2, the second-to-last conditioning frame (an off-by-one of the
official code, edenton/svg issue #1, kept so that results stay comparable).

Tensors are time first: videos (T, B, C, H, W) in [0, 1]. Module and parameter
names are the official ones (``encoder.c1.main.0.weight``, ``prior.mu_net``...).
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import nn

from ..config import Config
from ..nets import check_video, init_encdec_

Hidden = List[Tuple[torch.Tensor, torch.Tensor]]  # (h, c) per LSTM layer


class SVGOutput(NamedTuple):
    """What :meth:`SVG.forward` returns for a clip of T frames.

    Every field covers the predicted frames 1 .. T-1: ``x_hat`` (T-1, B, C, H,
    W); ``z`` (T-1, B, z_dim) posterior samples; ``mu_q, logvar_q`` posterior
    and ``mu_p, logvar_p`` learned-prior parameters, each (T-1, B, z_dim).
    """

    x_hat: torch.Tensor
    z: torch.Tensor
    mu_q: torch.Tensor
    logvar_q: torch.Tensor
    mu_p: torch.Tensor
    logvar_p: torch.Tensor


class SVGLoss(NamedTuple):
    """``loss = mse + beta kl_z``, as the official ``train`` function.

    ``mse`` sums over the T-1 predicted frames the MSE averaged over (B, C, H,
    W); ``kl_z`` sums KL(q || p) over frames and dimensions, divided by the
    batch size. (The official script prints both divided by T.)
    """

    loss: torch.Tensor
    mse: torch.Tensor
    kl_z: torch.Tensor


# ----------------------------------------------------------------- networks
class _Stage(nn.Module):
    """(transposed) convolution -> BatchNorm -> LeakyReLU(0.2), in ``main``."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.main = nn.Sequential(conv, nn.BatchNorm2d(conv.out_channels),
                                  nn.LeakyReLU(0.2, inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class SVGEncoder(nn.Module):
    """SVG's DCGAN-64 encoder: four stride-2 stages, then a 4x4 convolution,
    BatchNorm and tanh. Unlike :class:`srvp.nets.DCGANEncoder`, convolutions
    have biases and every stage, the first and the last included, has a
    BatchNorm.

    ``forward(x)`` maps frames (N, C, 64, 64) to codes (N, g_dim) and the four
    stage outputs, shallowest first (N, nf 2^k, 32 / 2^k, 32 / 2^k).
    """

    def __init__(self, nc: int, g_dim: int, nf: int = 64):
        super().__init__()
        self.c1 = _Stage(nn.Conv2d(nc, nf, 4, 2, 1))
        self.c2 = _Stage(nn.Conv2d(nf, nf * 2, 4, 2, 1))
        self.c3 = _Stage(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1))
        self.c4 = _Stage(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1))
        self.c5 = nn.Sequential(nn.Conv2d(nf * 8, g_dim, 4, 1, 0),
                                nn.BatchNorm2d(g_dim), nn.Tanh())

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        feats, h = [], x
        for stage in (self.c1, self.c2, self.c3, self.c4):
            h = stage(h)
            feats.append(h)
        return self.c5(h).flatten(1), feats


class SVGDecoder(nn.Module):
    """Mirror of :class:`SVGEncoder`; each stage after the first concatenates
    the encoder features of the same resolution; sigmoid output.

    ``forward(g, skips)``: codes (N, g_dim) and the encoder's four feature maps
    give frames (N, C, 64, 64) in [0, 1].
    """

    def __init__(self, nc: int, g_dim: int, nf: int = 64):
        super().__init__()
        self.upc1 = nn.Sequential(nn.ConvTranspose2d(g_dim, nf * 8, 4, 1, 0),
                                  nn.BatchNorm2d(nf * 8), nn.LeakyReLU(0.2, True))
        self.upc2 = _Stage(nn.ConvTranspose2d(nf * 8 * 2, nf * 4, 4, 2, 1))
        self.upc3 = _Stage(nn.ConvTranspose2d(nf * 4 * 2, nf * 2, 4, 2, 1))
        self.upc4 = _Stage(nn.ConvTranspose2d(nf * 2 * 2, nf, 4, 2, 1))
        self.upc5 = nn.Sequential(nn.ConvTranspose2d(nf * 2, nc, 4, 2, 1),
                                  nn.Sigmoid())

    def forward(self, g: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        d = self.upc1(g[:, :, None, None])
        for stage, skip in zip((self.upc2, self.upc3, self.upc4, self.upc5),
                               reversed(skips)):
            d = stage(torch.cat([d, skip], 1))
        return d


class _StackedLSTM(nn.Module):
    """Linear embedding, then ``n_layers`` LSTM cells; the state is passed in
    and returned, so every sequence starts from :meth:`init_hidden`."""

    def __init__(self, n_in: int, rnn_size: int, n_layers: int):
        super().__init__()
        self.embed = nn.Linear(n_in, rnn_size)
        self.lstm = nn.ModuleList(nn.LSTMCell(rnn_size, rnn_size)
                                  for _ in range(n_layers))

    def init_hidden(self, batch: int, like: torch.Tensor) -> Hidden:
        """Zero states for ``batch`` sequences, on the device and dtype of
        ``like``."""
        size = self.embed.out_features
        return [(like.new_zeros(batch, size), like.new_zeros(batch, size))
                for _ in self.lstm]

    def _trunk(self, inp: torch.Tensor,
               hidden: Hidden) -> Tuple[torch.Tensor, Hidden]:
        h, new = self.embed(inp), []
        for cell, state in zip(self.lstm, hidden):
            state = cell(h, state)
            new.append(state)
            h = state[0]
        return h, new


class FramePredictor(_StackedLSTM):
    """The frame predictor: LSTM, then Linear and tanh (official ``lstm``)."""

    def __init__(self, n_in: int, n_out: int, rnn_size: int, n_layers: int):
        super().__init__(n_in, rnn_size, n_layers)
        self.output = nn.Sequential(nn.Linear(rnn_size, n_out), nn.Tanh())

    def forward(self, inp: torch.Tensor,
                hidden: Hidden) -> Tuple[torch.Tensor, Hidden]:
        """One step: input (N, n_in) -> output (N, n_out), new state."""
        h, hidden = self._trunk(inp, hidden)
        return self.output(h), hidden


class GaussianLSTM(_StackedLSTM):
    """Posterior or learned prior: LSTM, then Linear heads for the mean and the
    log-variance of a diagonal Gaussian (official ``gaussian_lstm``)."""

    def __init__(self, n_in: int, n_out: int, rnn_size: int, n_layers: int):
        super().__init__(n_in, rnn_size, n_layers)
        self.mu_net = nn.Linear(rnn_size, n_out)
        self.logvar_net = nn.Linear(rnn_size, n_out)

    def forward(self, inp: torch.Tensor, hidden: Hidden):
        """One step: input (N, n_in) -> ``(mu, logvar)``, each (N, n_out), and
        the new state."""
        h, hidden = self._trunk(inp, hidden)
        return (self.mu_net(h), self.logvar_net(h)), hidden


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A sample of N(mu, exp(logvar)): mu + exp(logvar / 2) eps."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


def skip_frame(t: int, n_past: int) -> int:
    """Index of the frame whose encoder features the decoder uses at step t
    (predicting x_t): x_t-1 while t < n_past, then x_n_past-2 (official)."""
    return min(t - 1, n_past - 2)


# -------------------------------------------------------------------- model
class SVG(nn.Module):
    """SVG-LP with the DCGAN-64 encoder and decoder.

    Parameters
    ----------
    cfg : Config
        ``model="svg"``; sizes ``nc, nf, g_dim, z_dim, rnn_size,
        predictor_rnn_layers, prior_rnn_layers, posterior_rnn_layers``;
        ``nt_cond`` (the official ``n_past``) sets the skip connections of
        training. See ``preset("svg")``.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        _check_config(cfg)
        self.cfg, self.n_past = cfg, cfg.nt_cond
        self.encoder = SVGEncoder(cfg.nc, cfg.svg.g_dim, cfg.nf)
        self.decoder = SVGDecoder(cfg.nc, cfg.svg.g_dim, cfg.nf)
        s = cfg.svg
        self.frame_predictor = FramePredictor(s.g_dim + s.z_dim, s.g_dim, s.rnn_size,
                                              s.predictor_rnn_layers)
        self.posterior = GaussianLSTM(s.g_dim, s.z_dim, s.rnn_size,
                                      s.posterior_rnn_layers)
        self.prior = GaussianLSTM(s.g_dim, s.z_dim, s.rnn_size, s.prior_rnn_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official initialisation: convolutions and Linear layers N(0, 0.02)
        with zero biases, BatchNorm N(1, 0.02); LSTM cells keep PyTorch's."""
        for net in self.children():
            init_encdec_(net)

    def encode(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Codes (T, B, g_dim) and encoder features (T, B, ...) of frames
        (T, B, C, H, W). In training mode each frame is its own batch, so that
        BatchNorm statistics are per frame, as in the official loop."""
        if self.training:
            outs = [self.encoder(frame) for frame in x]
            return (torch.stack([h for h, _ in outs]),
                    [torch.stack(f) for f in zip(*(f for _, f in outs))])
        nt, bsz = x.shape[:2]
        h, feats = self.encoder(x.flatten(0, 1))
        return h.unflatten(0, (nt, bsz)), [f.unflatten(0, (nt, bsz)) for f in feats]

    def forward(self, x: torch.Tensor) -> SVGOutput:
        """Teacher-forced pass over a clip (T, B, C, H, W), T >= 2: predict
        x_1 .. x_T-1, each from the true previous frame and a posterior z."""
        check_video(x, self.cfg, min_frames=2)
        h, feats = self.encode(x)
        hid_q, hid_p, hid_g = (net.init_hidden(x.shape[1], h) for net in
                               (self.posterior, self.prior, self.frame_predictor))
        steps = []
        for t in range(1, len(x)):
            (mu_q, logvar_q), hid_q = self.posterior(h[t], hid_q)
            (mu_p, logvar_p), hid_p = self.prior(h[t - 1], hid_p)
            z = reparameterize(mu_q, logvar_q)
            g, hid_g = self.frame_predictor(torch.cat([h[t - 1], z], 1), hid_g)
            s = skip_frame(t, self.n_past)
            x_hat = self.decoder(g, [f[s] for f in feats])
            steps.append((x_hat, z, mu_q, logvar_q, mu_p, logvar_p))
        return SVGOutput(*(torch.stack(v) for v in zip(*steps)))

    # ------------------------------------------------------- prediction
    @torch.no_grad()
    def predict(self, x_cond: torch.Tensor, nt_pred: int, n_samples: int = 1,
                n_euler_steps: Optional[int] = None, intermediate: bool = False,
                chunk_size: int = 256) -> torch.Tensor:
        """Sample ``n_samples`` futures of ``nt_pred`` frames, as the official
        ``generate_svg_lp.py``, with the same signature as
        :meth:`srvp.SRVP.predict`.

        The conditioning frames are encoded once and their posterior and prior
        LSTM passes run once; the samples of a chunk then run as one batch:
        posterior z for the conditioning steps, prior z after, each predicted
        frame re-encoded as the next input.

        Parameters
        ----------
        x_cond : Tensor (T_cond, B, C, H, W) in [0, 1], T_cond >= 2.
        nt_pred : number of future frames.
        n_samples : futures per video.
        n_euler_steps, intermediate : only the defaults (SVG has no continuous
            time).
        chunk_size : largest number of videos x samples run at once.

        Returns
        -------
        Tensor (n_samples, nt_pred, B, C, H, W) in [0, 1].
        """
        _check_prediction_args(n_euler_steps, intermediate, nt_pred, n_samples)
        was_training = self.training
        self.eval()
        try:
            check_video(x_cond, self.cfg, min_frames=2)
            ctx = self._condition(x_cond)
            per_chunk = max(1, chunk_size // x_cond.shape[1])
            return torch.cat([self._sample(ctx, min(per_chunk, n_samples - s),
                                           nt_pred)
                              for s in range(0, n_samples, per_chunk)])
        finally:
            self.train(was_training)

    def _condition(self, x_cond: torch.Tensor):
        """What the samples share: codes (T_cond, B, g_dim), posterior
        parameters of steps 1 .. T_cond-1, the prior's state after reading
        x_0 .. x_T_cond-2, and the skips of x_T_cond-2."""
        h, feats = self.encode(x_cond)
        hid_q, hid_p = (net.init_hidden(h.shape[1], h)
                        for net in (self.posterior, self.prior))
        q_params = []
        for t in range(1, len(h)):
            params, hid_q = self.posterior(h[t], hid_q)
            q_params.append(params)
            _, hid_p = self.prior(h[t - 1], hid_p)  # state only, as official
        n_past = len(h)  # the first predicted step is t = n_past
        return h, q_params, hid_p, [f[skip_frame(n_past, n_past)] for f in feats]

    def _sample(self, ctx, n: int, nt_pred: int) -> torch.Tensor:
        """``n`` samples (n, nt_pred, B, C, H, W); batch rows are sample-major."""
        h, q_params, hid_p, skips = ctx
        rep = lambda v: v.repeat(n, *[1] * (v.dim() - 1))  # noqa: E731
        bsz = h.shape[1]
        hid_g = self.frame_predictor.init_hidden(n * bsz, h)
        for t, (mu, logvar) in enumerate(q_params, start=1):
            z = reparameterize(rep(mu), rep(logvar))
            _, hid_g = self.frame_predictor(torch.cat([rep(h[t - 1]), z], 1), hid_g)
        hid_p = [(rep(a), rep(c)) for a, c in hid_p]
        skips, h_in, frames = [rep(s) for s in skips], rep(h[-1]), []
        for k in range(nt_pred):
            (mu, logvar), hid_p = self.prior(h_in, hid_p)
            z = reparameterize(mu, logvar)
            g, hid_g = self.frame_predictor(torch.cat([h_in, z], 1), hid_g)
            frames.append(self.decoder(g, skips))
            if k + 1 < nt_pred:
                h_in = self.encoder(frames[-1])[0]  # own prediction fed back
        return torch.stack(frames).unflatten(1, (n, bsz)).transpose(0, 1)


# --------------------------------------------------------------------- loss
def kl_gaussians(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                 logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)), element-wise."""
    return (0.5 * (logvar_p - logvar_q)
            + (logvar_q.exp() + (mu_q - mu_p) ** 2) / (2 * logvar_p.exp()) - 0.5)


def svg_loss(out: SVGOutput, x: torch.Tensor, cfg: Config) -> SVGLoss:
    """The official training loss for a clip ``x`` (T, B, C, H, W) and
    ``out = model(x)``: sum over t of MSE(x_hat_t, x_t) (mean over B, C, H, W)
    plus ``cfg.svg.beta`` times the KL summed over t and dimensions, divided by B.
    Computed in float32 even under autocast."""
    target = x[1:].float()
    if out.x_hat.shape != target.shape:
        raise ValueError(f"x_hat {tuple(out.x_hat.shape)} must be x[1:] "
                         f"{tuple(target.shape)}: pass the clip given to the model")
    mse = (out.x_hat.float() - target).pow(2).mean(dim=(1, 2, 3, 4)).sum()
    kl = kl_gaussians(out.mu_q.float(), out.logvar_q.float(), out.mu_p.float(),
                      out.logvar_p.float()).sum() / x.shape[1]
    return SVGLoss(mse + cfg.svg.beta * kl, mse, kl)


# ------------------------------------------------------------------- checks
def _check_config(cfg: Config) -> None:
    if cfg.model != "svg":
        raise ValueError(f"model={cfg.model!r}: SVG needs a config with "
                         "model='svg', e.g. preset('svg')")
    if cfg.archi != "dcgan":
        raise ValueError(f"archi={cfg.archi!r}: only SVG's DCGAN-64 encoder and "
                         "decoder are implemented")
    if cfg.nt_cond < 2:
        raise ValueError(f"nt_cond={cfg.nt_cond}: SVG takes its skip connections "
                         "from the second-to-last conditioning frame, so it needs "
                         "at least 2")


def _check_prediction_args(n_euler_steps, intermediate: bool, nt_pred: int,
                           n_samples: int) -> None:
    if n_euler_steps is not None and n_euler_steps != 1:
        raise ValueError(f"n_euler_steps={n_euler_steps}: SVG predicts frame by "
                         "frame and has no continuous time; leave n_euler_steps "
                         "unset")
    if intermediate:
        raise ValueError("intermediate=True: SVG has no states between frames")
    if nt_pred < 1 or n_samples < 1:
        raise ValueError(f"nt_pred={nt_pred} and n_samples={n_samples} must be "
                         "at least 1")
