"""LPIPS (Zhang et al., 2018) on videos, through the ``lpips`` package.

The SRVP protocol (book ch. 5) uses the ``net-lin`` model with an AlexNet
backbone and the **v0.1** linear weights, on inputs rescaled from [0, 1] to
[-1, 1], with grayscale frames repeated to three channels. The score is
computed per frame; lower is better.

The ``lpips`` wheel ships the small linear heads, but the AlexNet backbone is
torchvision's ImageNet checkpoint, which ``lpips`` downloads on first use:

- file: ``alexnet-owt-7be5be79.pth`` (about 233 MB)
- URL: https://download.pytorch.org/models/alexnet-owt-7be5be79.pth

:func:`load_lpips` finds the backbone, in this order:

1. ``random_backbone=True``: a randomly initialised AlexNet (tests only; the
   numbers are **not** comparable with published LPIPS and a warning says so);
2. ``weights=PATH``: that file, loaded without any network access;
3. ``$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`` (torchvision's own
   cache, where the download would put it);
4. ``allow_download=True``: the standard ``lpips.LPIPS(net="alex",
   version="0.1")`` call, which downloads the file into that cache.

Otherwise it raises :class:`FileNotFoundError` with these instructions.
"""

import os
import warnings

import torch

__all__ = ["ALEXNET_FILE", "ALEXNET_URL", "load_lpips", "lpips_distance"]

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = "https://download.pytorch.org/models/" + ALEXNET_FILE


def _import_lpips():
    """Import the ``lpips`` package with an install hint when it is absent."""
    try:
        import lpips as lpips_lib
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "LPIPS needs the `lpips` package: pip install 'lpips>=0.1.4' "
            "torchvision (or pip install 'srvp[metrics]')"
        ) from err
    return lpips_lib


def _cached_alexnet():
    """Path of AlexNet in torchvision's download cache (may not exist)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", ALEXNET_FILE)


def _missing_backbone_error(path=None):
    """Build the error raised when the AlexNet backbone cannot be found."""
    where = f"The file {path} does not exist. " if path else ""
    return FileNotFoundError(
        f"{where}LPIPS needs torchvision's ImageNet AlexNet backbone "
        f"'{ALEXNET_FILE}' ({ALEXNET_URL}). Either pass its path, "
        f"load_lpips(weights='path/to/{ALEXNET_FILE}'); or copy it to "
        f"'{_cached_alexnet()}' (set TORCH_HOME to choose the folder: the "
        f"file goes in $TORCH_HOME/hub/checkpoints/); or, on a machine with "
        f"internet access, call load_lpips(allow_download=True). For code tests "
        f"only, load_lpips(random_backbone=True) needs no file, but its numbers "
        f"are not comparable with published LPIPS."
    )


def _load_backbone(model, path):
    """Copy a torchvision AlexNet checkpoint into an LPIPS model's trunk.

    ``lpips`` splits ``alexnet().features`` into ``slice1`` ... ``slice5`` and
    keeps each layer's index as its name, so ``slice2.3.weight`` is
    ``features.3.weight`` of the checkpoint.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    trunk = {}
    for name in model.net.state_dict():
        index_and_param = name.split(".", 1)[1]  # "slice2.3.weight" -> "3.weight"
        key = "features." + index_and_param
        if key not in state:
            raise KeyError(f"{path} has no '{key}': not a torchvision AlexNet file")
        trunk[name] = state[key]
    model.net.load_state_dict(trunk, strict=True)


def load_lpips(
    weights=None, *, allow_download=False, random_backbone=False, device="cpu"
):
    """Build the LPIPS v0.1 AlexNet model used by the SRVP protocol.

    See the module docstring for where the AlexNet backbone is looked for.

    Parameters
    ----------
    weights : str or os.PathLike, optional
        Path to torchvision's ``alexnet-owt-7be5be79.pth``.
    allow_download : bool
        If no local file is found, let ``lpips`` download the backbone.
    random_backbone : bool
        Use a random AlexNet trunk (with the real linear heads). For tests
        only: the scores are not comparable with published LPIPS.
    device : torch.device or str
        Device of the returned model.

    Returns
    -------
    lpips.LPIPS
        The model in eval mode, without gradients. Call it through
        :func:`lpips_distance`.
    """
    if random_backbone:
        warnings.warn(
            "LPIPS with a RANDOM AlexNet backbone: scores are NOT comparable with "
            "published LPIPS numbers (use it to test code paths only).",
            stacklevel=2,
        )
        model = _build(pnet_rand=True)
    elif weights is not None or os.path.isfile(_cached_alexnet()):
        path = os.fspath(weights) if weights is not None else _cached_alexnet()
        if not os.path.isfile(path):
            raise _missing_backbone_error(path)
        model = _build(pnet_rand=True)
        _load_backbone(model, path)
    elif allow_download:
        model = _build(pnet_rand=False)
    else:
        raise _missing_backbone_error()
    model.requires_grad_(False)
    return model.eval().to(device)


def _build(pnet_rand):
    """``lpips.LPIPS`` v0.1 AlexNet, quiet about torchvision's old arguments."""
    lpips_lib = _import_lpips()
    with warnings.catch_warnings():
        # lpips 0.1.4 calls alexnet(pretrained=...), deprecated in torchvision
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        return lpips_lib.LPIPS(
            net="alex", version="0.1", pnet_rand=pnet_rand, verbose=False
        )


def _to_lpips_input(frames):
    """Map ``(N, C, H, W)`` frames in [0, 1] to 3-channel frames in [-1, 1]."""
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)
    return frames * 2 - 1


def lpips_distance(x_hat, x, model, chunk_size=256):
    """LPIPS distance per frame (lower is better).

    Frames are rescaled to [-1, 1], grayscale is repeated to RGB, and the
    ``T * B`` frames go through the network ``chunk_size`` at a time, on the
    model's device. See book ch. 5.

    Parameters
    ----------
    x_hat : torch.Tensor
        Predicted video, shape ``(T, B, C, H, W)``, values in [0, 1], ``C`` in
        {1, 3}.
    x : torch.Tensor
        Ground-truth video, same shape.
    model : lpips.LPIPS
        Model from :func:`load_lpips`.
    chunk_size : int
        Number of frame pairs per forward pass.

    Returns
    -------
    torch.Tensor
        LPIPS, shape ``(T, B)``, on the device of ``x``.
    """
    if x_hat.shape != x.shape or x.dim() != 5:
        raise ValueError(f"expected two (T, B, C, H, W) videos, got {tuple(x.shape)}")
    if x.shape[2] not in (1, 3):
        raise ValueError(f"LPIPS needs 1 or 3 channels, got {x.shape[2]}")
    nt, bsz = x.shape[:2]
    device = next(model.parameters()).device
    a, b = x_hat.flatten(0, 1), x.flatten(0, 1)  # (T * B, C, H, W)
    scores = []
    with torch.no_grad():
        for i in range(0, a.shape[0], chunk_size):
            a_i = _to_lpips_input(a[i : i + chunk_size].to(device))
            b_i = _to_lpips_input(b[i : i + chunk_size].to(device))
            scores.append(model(a_i, b_i).flatten())  # (n,)
    return torch.cat(scores).to(x.device).view(nt, bsz)
