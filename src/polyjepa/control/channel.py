"""A message link for remote control: uniform scalar quantisation to a bit budget and a bit-flip channel.

The sensor turns a vector (an embedding or a raw observation, ``dims`` numbers) into ``dims`` integer
codes of ``bits`` bits each, ``dims * bits`` bits per message, sent most significant bit first over a
binary symmetric channel: every bit flips independently with probability ``ber`` (the bit-error rate).
The receiver maps each code back to the centre of its cell.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..errors import UserError


MAX_BITS = 32   # per quantised value: int64 codes, and cells far finer than any sensor's noise


def check_bits(bits, what: str = "channel.bits") -> int:
    """A bit count as an int >= 1, or a one-line UserError."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) and not (
            isinstance(bits, float) and bits.is_integer()):
        raise UserError(f"{what}={bits!r} must be a whole number of bits >= 1 (e.g. 8, 16, 32)")
    if int(bits) < 1:
        raise UserError(f"{what}={bits!r} must be a whole number of bits >= 1: a message of no bits carries nothing")
    if int(bits) > MAX_BITS:
        raise UserError(f"{what}={bits!r} is more than {MAX_BITS} bits for one value: a float64 range cannot be cut "
                        f"finer; give fewer bits per dimension")
    return int(bits)


def check_ber(ber, what: str = "channel.ber") -> float:
    """A bit-error rate as a float in [0, 0.5], or a one-line UserError."""
    if isinstance(ber, bool) or not isinstance(ber, numbers.Real) or not 0.0 <= float(ber) <= 0.5:
        raise UserError(f"{what}={ber!r} must be a bit-error rate in [0, 0.5] (0: a perfect channel; 0.5: "
                        f"the output says nothing about the input)")
    return float(ber)


class UniformQuantizer:
    """Uniform scalar quantiser per dimension over a range fitted on training vectors.

    ``fit`` sets each dimension's range [lo, hi] to its ``clip`` and 1 - ``clip`` quantiles; the range is
    cut into 2**bits equal cells of width ``step``; values outside are clipped to the end cells. A code
    decodes to its cell's centre, so a value inside the range comes back within ``step / 2``.

    Args:
        bits: bits per dimension (>= 1).
        clip: fraction of training values left outside the range at each end (0: the min and max).
    Shapes:
        encode(x (N, D)) -> codes (N, D) int64 in [0, 2**bits); decode(codes) -> (N, D);
        unit(codes) -> (N, D) cell centres rescaled to [-1, 1].
    """

    def __init__(self, bits: int, *, clip: float = 0.005):
        self.bits = check_bits(bits, "bits per dimension")
        if not 0.0 <= clip < 0.5:
            raise UserError(f"quantiser clip={clip!r} must be in [0, 0.5): the fraction of values outside the range")
        self.clip = float(clip)

    @property
    def levels(self) -> int:
        return 1 << self.bits

    def fit(self, x: np.ndarray) -> "UniformQuantizer":
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or len(x) < 2 or not np.all(np.isfinite(x)):
            raise UserError(f"the quantiser fits on (N >= 2, D) finite vectors, got shape {x.shape}")
        self.lo_ = np.quantile(x, self.clip, axis=0)
        self.hi_ = np.quantile(x, 1.0 - self.clip, axis=0)
        self.hi_ = np.maximum(self.hi_, self.lo_ + 1e-6)  # a constant dimension still gets a cell width
        return self

    @property
    def step(self) -> np.ndarray:
        """(D,) cell width per dimension."""
        return (self.hi_ - self.lo_) / self.levels

    @property
    def dims(self) -> int:
        return len(self.lo_)

    def message_bits(self) -> int:
        """Bits in one message: dims x bits per dimension."""
        return self.dims * self.bits

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        idx = np.floor((x - self.lo_) / self.step)
        return np.clip(idx, 0, self.levels - 1).astype(np.int64)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self.lo_ + (np.asarray(codes, dtype=np.float64) + 0.5) * self.step

    def unit(self, codes: np.ndarray) -> np.ndarray:
        """Cell centres on [-1, 1] (what a controller reads: the same scale for any range)."""
        return (2.0 * np.asarray(codes, dtype=np.float64) + 1.0) / self.levels - 1.0

    def unit_float(self, x: np.ndarray) -> np.ndarray:
        """The unquantised values on the same [-1, 1] scale (the no-quantisation reference)."""
        return 2.0 * (np.asarray(x, dtype=np.float64) - self.lo_) / (self.hi_ - self.lo_) - 1.0


def codes_to_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """(N, D) codes in [0, 2**bits) -> (N, D * bits) uint8 bits, most significant first per code."""
    shifts = np.arange(bits - 1, -1, -1)
    out = (np.asarray(codes, dtype=np.int64)[..., None] >> shifts) & 1
    return out.reshape(len(codes), -1).astype(np.uint8)


def bits_to_codes(bitstream: np.ndarray, bits: int) -> np.ndarray:
    """(N, D * bits) bits -> (N, D) codes (the inverse of :func:`codes_to_bits`)."""
    b = np.asarray(bitstream, dtype=np.int64).reshape(len(bitstream), -1, bits)
    return (b << np.arange(bits - 1, -1, -1)).sum(-1)


class BitFlipChannel:
    """Binary symmetric channel: each bit flips independently with probability ``ber``; seeded.

    Args:
        ber: bit-error rate in [0, 0.5].
        seed: seed of the flips (the same seed gives the same flips for the same stream of calls).
    """

    def __init__(self, ber: float, *, seed: int = 0):
        self.ber = check_ber(ber)
        self.rng = np.random.default_rng(seed)

    def __call__(self, bitstream: np.ndarray) -> np.ndarray:
        bitstream = np.asarray(bitstream, dtype=np.uint8)
        if self.ber == 0:
            return bitstream.copy()
        flips = self.rng.random(bitstream.shape) < self.ber
        return bitstream ^ flips.astype(np.uint8)

    def send_codes(self, codes: np.ndarray, bits: int) -> np.ndarray:
        """(N, D) codes through the channel as bits; (N, D) codes as received."""
        return bits_to_codes(self(codes_to_bits(codes, bits)), bits)
