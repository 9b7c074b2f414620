"""Moving digits: real MNIST digits bouncing in a frame with known velocities, deterministic under a seed."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MovingDigits:
    """Generated clips and what generated them.

    clips: (n, 1, T, S, S) float32 in [0, 1] (polyjepa's clip layout: channels, frames, height, width).
    labels: (n, K) int64 class of each digit; digit 0's class is the probe label.
    velocity: (n, T, K, 2) float32 (dy, dx) in pixels per frame of each digit leaving frame t:
        position[t + 1] = position[t] + velocity[t], reflected at the walls, where that component flips.
    position: (n, T, K, 2) float32 top-left (y, x) of each digit, before rounding to pixels.
    source_index: (n, K) index of each digit's image in the source set.
    sprites: (n, K, d, d) float32 the digit images as pasted (after resizing), which :meth:`flow` reads.

    Pixels move by whole pixels: a digit is pasted at its rounded position, so between frames t and
    t + 1 every pixel of digit k moves by ``rint(position[t + 1]) - rint(position[t])``.
    """

    clips: np.ndarray
    labels: np.ndarray
    velocity: np.ndarray
    position: np.ndarray
    source_index: np.ndarray
    sprites: np.ndarray | None = None

    def flow(self, index, t) -> tuple[np.ndarray, np.ndarray]:
        """Ground-truth optical flow from frame ``t`` to frame ``t + 1`` of clips ``index``.

        Args:
            index, t: (m,) clip indices and frame indices (0 <= t < T - 1), or scalars.
        Returns:
            flow (m, 2, S, S) float32, channels (dx, dy): the pixel at (y, x) of frame t is at
            (y + dy, x + dx) in frame t + 1 (the convention of OpenCV's optical flow);
            valid (m, S, S) bool: the pixels of frame t that show a digit (ink > 0), where the flow is
            known. The background does not move (flow 0) but, being blank, carries no evidence of it.
            Where digits overlap, a pixel follows the digit that shows there (the brightest, as pasted).
        """
        if self.sprites is None:
            raise ValueError("these clips carry no sprites: make them with moving_digits() to read their flow")
        index, t = np.atleast_1d(np.asarray(index)), np.atleast_1d(np.asarray(t))
        index, t = np.broadcast_arrays(index, t)
        n, T = self.clips.shape[0], self.clips.shape[2]
        if index.ndim != 1 or ((index < 0) | (index >= n)).any() or ((t < 0) | (t >= T - 1)).any():
            raise ValueError(f"flow needs clip indices in [0, {n}) and frame indices in [0, {T - 1}), "
                             f"got index {index.tolist()[:5]}..., t {t.tolist()[:5]}...")
        S, d = self.clips.shape[-1], self.sprites.shape[-1]
        top = np.rint(self.position).astype(np.int64)                    # where each digit was pasted
        flow = np.zeros((len(index), 2, S, S), np.float32)
        shown = np.zeros((len(index), S, S), np.float32)                 # ink of the digit owning each pixel
        for j, (i, f) in enumerate(zip(index, t)):
            for k in range(self.sprites.shape[1]):
                (y, x), (dy, dx) = top[i, f, k], top[i, f + 1, k] - top[i, f, k]
                ink = self.sprites[i, k]
                owns = (ink > 0) & (ink > shown[j, y:y + d, x:x + d])
                shown[j, y:y + d, x:x + d][owns] = ink[owns]
                flow[j, 0, y:y + d, x:x + d][owns] = dx
                flow[j, 1, y:y + d, x:x + d][owns] = dy
        return flow, shown > 0


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])


def moving_digits(images: np.ndarray, labels: np.ndarray, n: int, *, frames: int = 8, frame_size: int = 64,
                  digit_size: int = 28, digits: int = 1, speed: tuple[float, float] = (1.0, 3.0),
                  seed: int = 0) -> MovingDigits:
    """Make ``n`` clips of ``digits`` digits, drawn from ``images``, each moving at a constant speed.

    Each digit starts at a uniform position with a uniform direction and a speed uniform in
    ``speed`` (pixels per frame), and bounces off the frame's edges (the velocity component that would
    leave the frame flips; the position reflects). Digits are pasted at their rounded position;
    overlapping digits combine by maximum (as Moving-MNIST; Srivastava et al., 2015).

    Args:
        images: (m, h, w) uint8 or float digits (MNIST: 28 x 28, 0-255); labels: (m,) their classes.
        digit_size: digits are resized to this side (bilinear) before pasting.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or len(images) != len(labels) or len(images) == 0:
        raise ValueError(f"need (m, h, w) digit images with one label each, got images {images.shape}, "
                         f"labels {labels.shape}")
    if not 1 <= digit_size < frame_size:
        raise ValueError(f"digit_size {digit_size} must be smaller than frame_size {frame_size}")
    if frames < 2 or digits < 1:
        raise ValueError(f"need frames >= 2 and digits >= 1, got frames={frames}, digits={digits}")
    lo, hi = float(speed[0]), float(speed[1])
    if not 0 <= lo <= hi or hi > frame_size - digit_size:
        raise ValueError(f"speed must be a range 0 <= lo <= hi <= {frame_size - digit_size}, got {speed}")
    rng = np.random.default_rng(seed)
    im = images.astype(np.float32)
    im = im / 255.0 if im.max() > 1 else im
    if digit_size != im.shape[1]:
        im = _resize(np.rint(im * 255).astype(np.uint8), digit_size).astype(np.float32) / 255.0
    if im.shape[1] != im.shape[2]:
        raise ValueError(f"digit images must be square, got {im.shape[1:]}")

    src = rng.integers(0, len(im), (n, digits))
    room = frame_size - digit_size                      # top-left coordinates live in [0, room]
    pos = np.zeros((n, frames, digits, 2), np.float32)
    vel = np.zeros((n, frames, digits, 2), np.float32)
    p = rng.uniform(0, room, (n, digits, 2))
    angle = rng.uniform(0, 2 * np.pi, (n, digits))
    s = rng.uniform(lo, hi, (n, digits))
    v = np.stack([s * np.sin(angle), s * np.cos(angle)], axis=-1)
    for t in range(frames):
        pos[:, t], vel[:, t] = p, v
        nxt = p + v
        over, under = nxt > room, nxt < 0
        p = np.where(over, 2 * room - nxt, np.where(under, -nxt, nxt))   # reflect at the walls
        v = np.where(over | under, -v, v)                                # and flip that component

    clips = np.zeros((n, frames, frame_size, frame_size), np.float32)
    top = np.rint(pos).astype(np.int64)
    for i in range(n):
        for k in range(digits):
            d = im[src[i, k]]
            for t in range(frames):
                y, x = top[i, t, k]
                window = clips[i, t, y:y + digit_size, x:x + digit_size]
                np.maximum(window, d, out=window)
    return MovingDigits(clips[:, None], labels[src].astype(np.int64), vel, pos, src, im[src])
