"""Chip-indexed noise: chip k's draw depends only on a base seed and k.

The stream of a Monte Carlo run is fixed by one base seed, drawn once from the caller's
generator. Chips are grouped in blocks of `block` consecutive indices (block b holds chips
b*block ... b*block + block - 1); block b is drawn from a generator on the model's device seeded
with `derive_seed(base, "chips", b)`, as one vectorised draw of the noise model over `block`
copies of the clean tensors (`torch.func.vmap(noise.sample, randomness="different")`: every
copy gets its own independent draw). The block size depends only on the clean tensors and the
noise model (the largest power of two <= BLOCK_MAX whose block fits in BLOCK_BYTES; 1 for a
noise model that vmap cannot run, drawn by a plain `noise.sample`), never on how the chips are
later evaluated: chip k comes out the same whatever the chunk size, the batch size or the split
of chips across workers (a worker starting mid-block draws that block and keeps its part).

Bit-sliced weights (`forward.weight_slices`, `bits_per_slice`; noiseproof.noise.slicing) are
drawn chip by chip (blocks of one): slice s of chip k is one plain `noise.sample` of that
slice from a generator seeded with `derive_seed(base, "chips", k, "slice", s)`, so it depends
only on the base seed (itself from seed, noise and level), k and s.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from noiseproof.chip import Params
from noiseproof.noise.base import NoiseModel
from noiseproof.noise.slicing import sliced_sample
from noiseproof.seeding import derive_seed

BLOCK_MAX = 256
"""Most chips drawn by one vectorised draw (amortises the per-op cost of small models)."""

BLOCK_BYTES = 2**20
"""Memory bound of one block of drawn chips: a block stays in cache while the noise model's
elementwise ops run over it, and large models, whose forward dwarfs their draw, get blocks of
one or two chips (little drawn in vain when a shard starts or stops mid-block)."""


def base_seed(generator: torch.Generator) -> int:
    """One 63-bit integer drawn from `generator` (on its device): the seed of a whole stream.

    The generator moves on by this one draw, so a second run from it gets other chips.
    """
    draw = torch.randint(0, 2**63 - 1, (1,), generator=generator, device=generator.device)
    return int(draw)


def chip_bytes(clean: Params) -> int:
    """Bytes of one chip's on-chip tensors."""
    return sum(t.numel() * t.element_size() for t in clean.values())


def vmapped_sample(noise: NoiseModel, clean: Params, count: int, gen: torch.Generator) -> Params:
    """`count` independent draws of `noise` over `clean`, stacked on a new first dimension:
    the noise model's own code under vmap, each random op drawing for all copies at once."""
    copies = {name: t.expand(count, *t.shape) for name, t in clean.items()}
    draw = torch.func.vmap(lambda p: noise.sample(p, gen), randomness="different")
    return draw(copies)


@torch.no_grad()
def vmappable(noise: NoiseModel, clean: Params, device: torch.device) -> bool:
    """Whether vmap runs `noise.sample` on `clean` as it is (no error, no slow per-sample
    fallback warning, one [2, ...] tensor per name): found once per run with a throwaway
    generator. Noise models that branch on tensor values or call .item() are drawn plainly."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = vmapped_sample(noise, clean, 2, torch.Generator(device=device).manual_seed(0))
    except Exception:  # any failure means "draw chip by chip", never a wrong draw
        return False
    if any("performance drop" in str(w.message) for w in caught):
        return False
    return set(out) == set(clean) and all(
        isinstance(out[n], Tensor) and out[n].shape == (2, *clean[n].shape) for n in clean
    )


def block_size(clean: Params, vectorised: bool) -> int:
    """Chips per block: the largest power of two <= BLOCK_MAX whose block fits in BLOCK_BYTES
    (1 when the noise model is drawn plainly, `vectorised` False)."""
    size = BLOCK_MAX if vectorised else 1
    while size > 1 and size * chip_bytes(clean) > BLOCK_BYTES:
        size //= 2
    return size


class ChipStream:
    """The noise of chips 0, 1, 2, ... of one run, drawn block by block on `device`.

    `chips(start, stop)` gives chips [start, stop) as `{name: tensor [stop - start, ...]}`;
    the last block drawn is kept, so consecutive ranges draw every block once. slicing:
    (weight_slices, bits_per_slice) to draw bit-sliced weights (module docstring), else None.
    """

    def __init__(
        self,
        noise: NoiseModel,
        clean: Params,
        seed: int,
        device: torch.device,
        slicing: tuple[int, int] | None = None,
    ) -> None:
        self.noise, self.clean, self.seed, self.device = noise, clean, seed, device
        self.slicing = slicing
        vectorised = slicing is None and vmappable(noise, clean, device)
        self.block = block_size(clean, vectorised)
        self._generator = torch.Generator(device=device)
        self._kept: tuple[int, Params] | None = None

    @torch.no_grad()
    def _draw(self, index: int) -> Params:
        """Block `index`: its generator seeded from (seed, index), one draw of `block` chips
        (autocast off: a run in bf16/fp16 perturbs its chips exactly as in fp32)."""
        if self._kept is not None and self._kept[0] == index:
            return self._kept[1]
        gen = self._generator.manual_seed(derive_seed(self.seed, "chips", index))
        with torch.autocast(self.device.type, enabled=False):  # same draws in any precision
            if self.slicing is not None:

                def slice_generator(s: int) -> torch.Generator:  # blocks of one: index is k
                    return gen.manual_seed(derive_seed(self.seed, "chips", index, "slice", s))

                chip = sliced_sample(self.noise, self.clean, *self.slicing, slice_generator)
                drawn = {n: t.unsqueeze(0) for n, t in chip.items()}
            elif self.block == 1:
                chip = self.noise.sample(self.clean, gen)
                drawn = {n: t.unsqueeze(0) for n, t in chip.items()}
            else:
                drawn = vmapped_sample(self.noise, self.clean, self.block, gen)
        self._kept = (index, drawn)
        return drawn

    def chip(self, k: int) -> Params:
        """The noisy on-chip tensors of chip k (views into its block)."""
        index, offset = divmod(k, self.block)
        return {n: t[offset] for n, t in self._draw(index).items()}

    def chips(self, start: int, stop: int) -> Params:
        """The noisy on-chip tensors of chips [start, stop), stacked on a first dimension."""
        pieces: list[Params] = []
        k = start
        while k < stop:
            index, offset = divmod(k, self.block)
            end = min(self.block, offset + stop - k)
            block = self._draw(index)
            pieces.append({n: t[offset:end] for n, t in block.items()})
            k += end - offset
        if len(pieces) == 1:
            return pieces[0]
        return {n: torch.cat([p[n] for p in pieces]) for n in self.clean}
