"""Training batches by step (srvp.data.batches): the same batch for a step
however it is made: one at a time or several at once, in the training process
or in loader workers, in any order of requests."""
import numpy as np
import pytest
import torch

from srvp.data.batches import StepBatches, to_batch
from srvp.data.moving_mnist import MovingMNIST, sample_trajectories


@pytest.fixture(scope="module")
def digits():
    return np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)


def test_to_batch_divides_every_value_by_255_in_float32():
    values = np.arange(256, dtype=np.uint8).reshape(1, 1, 1, 16, 16)
    videos = np.random.default_rng(1).integers(0, 256, (3, 4, 2, 8, 8), np.uint8)
    for v in (values, videos):
        ref = torch.from_numpy(v).transpose(0, 1).float() / 255
        out = to_batch(v)
        assert out.dtype == torch.float32 and out.is_contiguous()
        assert out.shape == ref.shape and torch.equal(out, ref)
    read_only = videos.copy()
    read_only.setflags(write=False)
    assert torch.equal(to_batch(read_only), to_batch(videos))


@pytest.mark.parametrize("deterministic", [False, True])
def test_several_generators_at_once_give_each_its_own_stream(digits, deterministic):
    """generate_many(n, rngs) is generate(n, rng) for each generator in turn,
    bit for bit, positions and velocities too (long clips, so that digits
    bounce twice within a step somewhere)."""
    ds = MovingMNIST(digits, seq_len=40, deterministic=deterministic, max_speed=9)
    seeds = [[3, k] for k in range(6)]
    videos, latents = ds.generate_many(
        4, [np.random.default_rng(s) for s in seeds], return_latents=True)
    assert videos.shape == (24, 40, 1, 64, 64) and latents.shape == (24, 40, 2, 4)
    for k, s in enumerate(seeds):
        v, lat = ds.generate(4, return_latents=True, rng=np.random.default_rng(s))
        assert np.array_equal(videos[4 * k:4 * k + 4], v), s
        assert np.array_equal(latents[4 * k:4 * k + 4], lat), s
    # the trajectories alone, with and without given starts
    rngs = [np.random.default_rng(s) for s in seeds]
    many = sample_trajectories(rngs, 30, 25, max_speed=9)
    alone = [sample_trajectories(np.random.default_rng(s), 30, 25, max_speed=9)
             for s in seeds]
    assert np.array_equal(many, np.concatenate(alone))


def test_a_step_gets_the_same_batch_whatever_the_block_and_order(digits):
    ds = MovingMNIST(digits, seq_len=6)
    one = StepBatches(ds, 3, seed=5, rank=1, n_steps=40, block=1)
    many = StepBatches(ds, 3, seed=5, rank=1, n_steps=40, block=8)
    assert StepBatches(ds, 16, 5, 1, 40).block == 16  # about 256 videos at once
    for step in [7, 3, 8, 9, 39, 0, 7, 38, 12]:  # repeats, jumps, the last step
        assert torch.equal(many[step], one[step]), step
    other_rank = StepBatches(ds, 3, seed=5, rank=0, n_steps=40, block=8)
    assert not torch.equal(other_rank[7], one[7])


def test_loader_workers_get_the_same_batches(digits):
    ds = MovingMNIST(digits, seq_len=5)
    steps = StepBatches(ds, 2, seed=1, rank=0, n_steps=30, block=4)
    order = range(3, 30)
    loader = torch.utils.data.DataLoader(steps, batch_size=None, sampler=order,
                                         num_workers=2)
    alone = StepBatches(ds, 2, seed=1, rank=0, n_steps=30, block=1)
    got = list(loader)
    assert len(got) == len(order)
    for step, batch in zip(order, got):
        assert torch.equal(batch, alone[step]), step


def test_a_worker_makes_the_steps_it_will_be_asked_for(digits, monkeypatch):
    """A DataLoader gives worker k of W the steps k, k + W, ...: asked for step 5
    by a worker of 3, the block holds 5, 8, 11, 14, and none is made twice."""
    import types

    ds = MovingMNIST(digits, seq_len=4)
    calls = []
    many = ds.generate_many
    monkeypatch.setattr(ds, "generate_many",
                        lambda n, rngs: calls.append(len(rngs)) or many(n, rngs))
    monkeypatch.setattr(torch.utils.data, "get_worker_info",
                        lambda: types.SimpleNamespace(num_workers=3, id=2))
    steps = StepBatches(ds, 2, seed=1, rank=0, n_steps=13, block=4)
    steps[5]
    assert sorted(steps._ready) == [8, 11]  # 14 is past the last step, 12
    steps[8], steps[11]
    assert calls == [3]
    steps[2]  # outside the block: a new one
    assert calls == [3, 4] and sorted(steps._ready) == [5, 8, 11]
