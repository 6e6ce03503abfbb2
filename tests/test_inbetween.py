"""The in-between measures of ch. 6 on videos whose answer is known."""
import pytest
import torch

from srvp.metrics.inbetween import centroid, inbetween_scores, ink


def _square(row, col, size=8, value=1.0):
    """A (1, 64, 64) frame with a bright square whose corner is at (row, col)."""
    f = torch.zeros(1, 64, 64)
    f[0, row:row + size, col:col + size] = value
    return f


def _moving(k, t=3, speed=4, fade_between=False, stay_between=False):
    """The last conditioning frame and a prediction of t frames with k sub-steps,
    a square moving `speed` pixels per frame to the right."""
    frames = []
    for i in range(1, t * k + 1):
        col = 10 + speed * i // k
        if stay_between and i % k:
            col = 10 + speed * (i // k)
        value = 0.25 if fade_between and i % k else 1.0
        frames.append(_square(20, col, value=value))
    return _square(20, 10)[None], torch.stack(frames)[:, None]  # B = 1


def test_ink_and_centroid():
    f = _square(20, 10)
    assert ink(f) == 64
    torch.testing.assert_close(centroid(f), torch.tensor([23.5, 13.5]))
    torch.testing.assert_close(centroid(torch.zeros(1, 64, 64)),
                               torch.tensor([31.5, 31.5]))


def test_linear_motion_scores_perfectly():
    x_last, pred = _moving(k=4)
    s = inbetween_scores(x_last, pred, 4)
    assert s["ink_ratio"].shape == s["centroid_error"].shape == (3, 3, 1)
    torch.testing.assert_close(s["ink_ratio"], torch.ones(3, 3, 1))
    assert s["centroid_error"].max() < 1e-4


def test_fading_and_jumping_are_measured():
    x_last, pred = _moving(k=2, fade_between=True)
    s = inbetween_scores(x_last, pred, 2)
    torch.testing.assert_close(s["ink_ratio"], torch.full((3, 1, 1), 0.25))
    x_last, pred = _moving(k=2, stay_between=True)  # moves only at frame times
    s = inbetween_scores(x_last, pred, 2)
    torch.testing.assert_close(s["centroid_error"], torch.full((3, 1, 1), 2.0))


def test_bad_shapes():
    x_last, pred = _moving(k=2)
    with pytest.raises(ValueError, match="at least 2"):
        inbetween_scores(x_last, pred, 1)
    with pytest.raises(ValueError, match="multiple of k=4"):
        inbetween_scores(x_last, pred[:5], 4)


class _Mover(torch.nn.Module):
    """A stand-in model whose prediction is the square of `_moving`, moving on
    from the last conditioning frame with any number k of Euler steps."""

    def __init__(self, fade_between=False):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.fade_between = fade_between

    def predict(self, x_cond, nt_pred, n_samples=1, n_euler_steps=1,
                intermediate=False):
        _, pred = _moving(n_euler_steps, t=nt_pred, fade_between=self.fade_between)
        pred = pred.expand(-1, x_cond.shape[1], -1, -1, -1)
        return pred[None].expand(n_samples, *pred.shape)


def _videos(n=3, nt_cond=3, nt_pred=4):
    """(nt_cond + nt_pred, n, 1, 64, 64) videos: the square still during the
    conditioning frames, then moving 4 pixels per frame."""
    _, frames = _moving(1, t=nt_pred)
    still = _square(20, 10)[None, None].expand(nt_cond, -1, -1, -1, -1)
    return torch.cat([still, frames]).expand(-1, n, -1, -1, -1)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_inbetween_eval_per_video(k):
    from srvp.metrics.inbetween import inbetween_eval

    batches = [_videos(3), _videos(2)]
    res = inbetween_eval(_Mover(), batches, nt_cond=3, nt_pred=4, k=k, n_samples=2)
    assert set(res) == {"ink_error", "centroid_error", "truth_ink_error",
                        "truth_centroid_error"}
    for value in res.values():
        assert value.shape == (5,)  # one value per video
        assert abs(value).max() < 1e-4  # straight motion, constant ink


def test_inbetween_eval_sees_fading():
    from srvp.metrics.inbetween import inbetween_eval

    res = inbetween_eval(_Mover(fade_between=True), [_videos(2)], 3, 4, k=2)
    assert res["ink_error"] == pytest.approx([0.75, 0.75])
    assert res["truth_ink_error"] == pytest.approx([0.0, 0.0])
    with pytest.raises(ValueError, match="even"):
        inbetween_eval(_Mover(), [_videos(2)], 3, 3, k=2)
