"""Event-camera streams (DVS: address-events (t, x, y, p)) read from one .npz file and binned
into T frames of event counts per polarity, the input [N, T, 2, H, W] of a spiking network.

File layout (every array 1-d; E events in all, N samples):

    t          [E]    event time from the start of its sample, >= 0 (any unit, e.g. us)
    x, y       [E]    integer pixel column and row, 0 <= x < width, 0 <= y < height
    p          [E]    polarity: -1 or 0 is OFF (channel 0), 1 is ON (channel 1)
    offsets    [N+1]  sample i holds events offsets[i]:offsets[i+1]; offsets[0] = 0,
                      non-decreasing, offsets[N] = E (events of a sample in any order)
    labels     [N]    integer class labels >= 0
    sensor_size [2]   (width, height) of the sensor

Binning (the event-frame representation of e.g. Fang et al. 2021, Tonic's ToFrame with
n_time_bins): frame k counts the events with floor((t - t0) / D * T) = k, where t0, D are the
sample's first event time and duration (window None; its last event lands in frame T-1) or 0
and the fixed `window` (events at t >= window are dropped).
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from noiseproof.data.formats import fail, is_integral, open_npz, reason

EVENT_KEYS = ("t", "x", "y", "p", "offsets", "labels", "sensor_size")


@dataclass(frozen=True)
class EventSamples:
    """The checked contents of an events file (see the module docstring); `path` for errors."""

    path: Path
    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    on: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.labels)


def read_events(path: str | Path) -> EventSamples:
    """The events file at `path`, every array checked; a problem is one NoiseproofError line
    naming the path and the array."""
    path = Path(path).expanduser()
    with open_npz(path) as archive:
        missing = [key for key in EVENT_KEYS if key not in archive.files]
        if missing:
            raise fail(
                path, f"missing array(s) {missing} (an events file holds {list(EVENT_KEYS)})"
            )
        try:
            arrays = {key: archive[key] for key in EVENT_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
            raise fail(path, f"damaged array in .npz archive ({reason(error)})") from None
    for key, array in arrays.items():
        if array.ndim != 1:
            raise fail(path, f"'{key}' must be 1-d, got shape {array.shape}")
        if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise fail(path, f"'{key}' must be numeric, got {array.dtype}")
    sensor = arrays["sensor_size"]
    if len(sensor) != 2 or not is_integral(sensor) or sensor.min() < 1:
        raise fail(path, f"'sensor_size' must be (width, height) >= 1, got {sensor.tolist()}")
    width, height = (int(v) for v in sensor)
    t, x, y, p = (arrays[key] for key in "txyp")
    n_events = len(t)
    if not len(x) == len(y) == len(p) == n_events:
        lengths = {key: len(arrays[key]) for key in "txyp"}
        raise fail(path, f"'t', 'x', 'y', 'p' must have one entry per event, got lengths {lengths}")
    t = t.astype(np.float64)
    if not np.all(np.isfinite(t)) or (n_events and t.min() < 0):
        raise fail(path, "'t' must hold finite times >= 0 (from the start of each sample)")
    for key, values, size in (("x", x, width), ("y", y, height)):
        if not is_integral(values) or (n_events and (values.min() < 0 or values.max() >= size)):
            low, high = (values.min(), values.max()) if n_events else (0, 0)
            raise fail(
                path,
                f"'{key}' must hold integer coordinates in [0, {size}) of sensor_size "
                f"{(width, height)}, got values in [{low}, {high}]",
            )
    if not np.all(np.isin(p, (-1, 0, 1))):
        raise fail(path, "'p' must hold polarities -1 or 0 (OFF) and 1 (ON)")
    labels, offsets = arrays["labels"], arrays["offsets"]
    if len(labels) == 0 or not is_integral(labels) or labels.min() < 0:
        raise fail(path, "'labels' must hold at least one non-negative integer class label")
    if (
        len(offsets) != len(labels) + 1
        or not is_integral(offsets)
        or offsets[0] != 0
        or offsets[-1] != n_events
        or np.any(np.diff(offsets) < 0)
    ):
        raise fail(
            path,
            f"'offsets' must be {len(labels) + 1} non-decreasing integers from 0 to {n_events} "
            f"(sample i is events offsets[i]:offsets[i+1])",
        )
    return EventSamples(
        path,
        t,
        x.astype(np.int64),
        y.astype(np.int64),
        p > 0,
        offsets.astype(np.int64),
        labels.astype(np.int64),
        width,
        height,
    )


def bin_events(
    events: EventSamples, samples: Tensor, steps: int, window: float | None = None
) -> Tensor:
    """Frames [len(samples), T, 2, H, W] float32: per sample of `samples` (indices), the count
    of its events per time bin, polarity (0 OFF, 1 ON) and pixel (the module docstring's
    binning: the sample's own duration, or [0, window) when a window is given)."""
    index = samples.long().numpy()
    counts = np.diff(events.offsets)[index]
    starts = events.offsets[index]
    owner = np.repeat(np.arange(len(index)), counts)  # output sample of every selected event
    picked = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    t = torch.from_numpy(events.t[picked])
    owner_t = torch.from_numpy(owner)
    if window is None:
        n = len(index)
        first = torch.zeros(n, dtype=torch.float64).scatter_reduce(
            0, owner_t, t, "amin", include_self=False
        )
        last = torch.zeros(n, dtype=torch.float64).scatter_reduce(
            0, owner_t, t, "amax", include_self=False
        )
        span = (last - first)[owner_t]
        relative = torch.where(span > 0, (t - first[owner_t]) / span, torch.zeros_like(t))
        keep = torch.ones_like(t, dtype=torch.bool)
    else:
        relative = t / window
        keep = relative < 1.0
    frame = torch.clamp(torch.floor(relative * steps).long(), 0, steps - 1)
    on = torch.from_numpy(events.on[picked]).long()
    x = torch.from_numpy(events.x[picked])
    y = torch.from_numpy(events.y[picked])
    h, w = events.height, events.width
    flat = (((owner_t * steps + frame) * 2 + on) * h + y) * w + x
    out = torch.zeros(len(index) * steps * 2 * h * w, dtype=torch.float32)
    out.index_add_(0, flat[keep], torch.ones(int(keep.sum()), dtype=torch.float32))
    return out.view(len(index), steps, 2, h, w)
