"""The seeded noise of the browser sampler, in Python (book ch. 6 and 7).

``book/_static/sampler/sampler.js`` draws its Gaussian noise with the two
functions below (mulberry32, then Box-Muller); the same seed gives the same
numbers here, so a test can rebuild the noise of a page and compare frames.
"""
from __future__ import annotations

import math
from typing import Iterator, Sequence

import numpy as np

_MASK = 0xFFFFFFFF


def _imul(a: int, b: int) -> int:
    """JavaScript's ``Math.imul``: the low 32 bits of a product."""
    return (a * b) & _MASK


def mulberry32(seed: int) -> Iterator[float]:
    """Uniform numbers in (0, 1) from a 32-bit ``seed``, as ``mulberry32`` of
    sampler.js: 32 random bits per draw, mapped to ``(bits + 0.5) / 2**32``."""
    a = seed & _MASK
    while True:
        a = (a + 0x6D2B79F5) & _MASK
        t = _imul(a ^ (a >> 15), a | 1)
        t ^= (t + _imul(t ^ (t >> 7), t | 61)) & _MASK
        yield ((t ^ (t >> 14)) + 0.5) / 2**32


class GaussianStream:
    """Standard normal numbers from :func:`mulberry32`, one per pair of uniform
    draws (Box-Muller, cosine branch), in the order sampler.js draws them."""

    def __init__(self, seed: int):
        self.uniform = mulberry32(seed)

    def gaussian(self) -> float:
        u1, u2 = next(self.uniform), next(self.uniform)
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)

    def next(self, shape: Sequence[int]) -> np.ndarray:
        """The next ``prod(shape)`` numbers, float32, in C order."""
        n = int(np.prod(shape))
        return np.array([self.gaussian() for _ in range(n)],
                        dtype=np.float32).reshape(shape)
