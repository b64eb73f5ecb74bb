"""Event binning and image sequences written out loop by loop, one event or pixel at a time,
to check noiseproof.data.events and noiseproof.data.temporal against."""

from __future__ import annotations

import math

import numpy as np


def bin_events_reference(
    t: list[float],
    x: list[int],
    y: list[int],
    p: list[int],
    offsets: list[int],
    width: int,
    height: int,
    steps: int,
    window: float | None = None,
) -> np.ndarray:
    """Frames [N, T, 2, H, W] of event counts: event e of sample i (events offsets[i] to
    offsets[i+1]) counts once in frame k = floor((t_e - t0) / D * T), capped at T-1, channel 1
    if p_e > 0 else 0, pixel (y_e, x_e); t0, D the sample's first time and duration (D = 0: all
    in frame 0), or t0 = 0, D = window with events at t >= window left out."""
    n = len(offsets) - 1
    frames = np.zeros((n, steps, 2, height, width), dtype=np.float32)
    for i in range(n):
        events = range(offsets[i], offsets[i + 1])
        if not events:
            continue
        if window is None:
            start = min(t[e] for e in events)
            duration = max(t[e] for e in events) - start
        else:
            start, duration = 0.0, window
        for e in events:
            if window is not None and t[e] >= window:
                continue
            k = 0 if duration == 0 else math.floor((t[e] - start) / duration * steps)
            frames[i, min(k, steps - 1), 1 if p[e] > 0 else 0, y[e], x[e]] += 1
    return frames


def rows_reference(images: np.ndarray) -> np.ndarray:
    """Images [N, C, H, W] as row sequences [N, H, W*C]: step h, feature w*C + c holds pixel
    (c, h, w)."""
    n, c, h, w = images.shape
    out = np.zeros((n, h, w * c), dtype=images.dtype)
    for i in range(n):
        for row in range(h):
            for col in range(w):
                for channel in range(c):
                    out[i, row, col * c + channel] = images[i, channel, row, col]
    return out


def pixels_reference(images: np.ndarray) -> np.ndarray:
    """Images [N, C, H, W] as pixel sequences [N, H*W, C] in raster order (row by row)."""
    n, c, h, w = images.shape
    out = np.zeros((n, h * w, c), dtype=images.dtype)
    for i in range(n):
        for row in range(h):
            for col in range(w):
                out[i, row * w + col] = images[i, :, row, col]
    return out
