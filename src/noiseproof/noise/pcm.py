"""Phase-change memory (PCM) crossbar with conductance drift: one chip read at time t_inference.

The statistical PCM model of Nandakumar et al. (ICECS 2019), with the coefficients and the
formulas of IBM aihwkit 1.1.0 (`aihwkit.inference.noise.pcm.PCMLikeNoiseModel`,
`SinglePairConductanceConverter` and `GlobalDriftCompensation`); our own code, their numbers.

Mapping (per array, see below; noiseproof.noise.mapping's ConductanceMapping over the window
[0, g_max]): w -> a differential pair of devices, scale max|W| per array,

    G+ = g_max * max(w, 0) / max|W|,   G- = g_max * max(-w, 0) / max|W|   (uS, g_min = 0),

read back as w = (G+ - G-) * max|W| / g_max. Every device of target conductance G_T then goes
through, with three N(0,1) draws z_p, z_nu, z_r of its own:

1. programming noise:  G_P = max(0, G_T + prog_noise_scale * sigma_P(G_T) * z_p),
                       sigma_P(G) = (c0 + c1 (G/g_max) + c2 (G/g_max)^2) * g_max / 25 uS,
                       c = (0.26348, 1.9650, -1.1731) uS fitted at g_max = 25 uS
                       (`prog_coeff`, `prog_coeff_g_max_reference`);
2. drift exponent, drawn at programming from the target:  g = max(G_T / g_max, 1e-7),
                       mu(g) = clip(-0.0155 ln g + 0.0244, 0.049, 0.1),
                       s(g)  = clip(-0.0125 ln g - 0.0059, 0.008, 0.045),
                       nu = drift_scale * |mu + s z_nu|;
3. drift:              G_D = G_P ((t_inference + t0) / t0)^(-nu),  t0 = 20 s;
4. 1/f read noise accumulated since programming:
                       Q(G_P) = min(0.2, 0.0088 / max((G_P / g_max)^0.65, 1e-3)),
                       G_t = max(0, G_D + |G_D| read_noise_scale Q sqrt(ln((t + t_read) /
                       (2 t_read))) z_r)  with t = t_inference + t0, t_read = 250 ns.

Time: `t_inference` (the sweep level, seconds) counts from the end of programming, and the
formulas use t = t_inference + t0, as aihwkit does: at t_inference = 0 the devices have not
drifted (factor 1) but carry the read noise of a read at t0 (our continuous reading of it;
aihwkit's `apply_noise` has no t_inference = 0 case). So there is no "time before t0": at
t_inference = 1 s the drift factor is (21 / 20)^(-nu).

Drift compensation (`drift_compensation`): `global` (aihwkit's `GlobalDriftCompensation`) is
one digital output scale per array, alpha = readout(programmed) / readout(at t), where the
readout is the mean |output| for the one-hot probe inputs (aihwkit 1.1.0's probe is
`eye(in_size)`), i.e. alpha = sum|W_P| / sum|W_t| over the array's entries (W_P: read back
after programming, before drift and read noise; alpha = 1 when sum|W_t| = 0). `per_column`
(aihwkit's `PerColumnDriftCompensation`: the same readout, its mean taken per output) is one
scale per output of the array, alpha_j = sum_i |W_P[j, i]| / sum_i |W_t[j, i]| over the
entries feeding output j (the rows of a weight's first dimension; a bias on the chip joins its
output's row; a 1-D tensor on its own has one output per entry). aihwkit clamps each readout
at 1e-4 (in its normalised units); we take the ratio exactly and alpha = 1 where a readout is
0. alpha multiplies the output; since y = alpha (W_t x) + b = (alpha W_t) x + b, applying it
to the array's weights (and not to a digital bias) gives the same product, which is what this
model returns. `none` (the default) reads the drifted devices as they are.

Arrays: every on-chip tensor is one array with its own max|W| scale and its own compensation
scale (a weight matrix, and also a 1-D or 0-d tensor put on the chip, e.g. BatchNorm statistics
by an `include` glob). Biases (tensor names `bias`, `bias_*`) are digital by default
(`bias="digital"`, aihwkit's default digital bias): returned exactly. With `bias="chip"` a bias
is the extra column of its layer's weight matrix (`X.bias` with `X.weight`, `X.bias_ih_l0` with
`X.weight_ih_l0`, when its length is the weight's first dimension: noiseproof.arrays), sharing
the layer's scale
and compensation scale as aihwkit's analog bias does; a bias without such a weight is an array
of its own. An all-zero array stays zero. Tensors are mapped in float64 and returned in their
dtype.

Draws: per array, in the order of the tensor dict, one [3, 2, n] block of N(0,1) (z_p, z_nu,
z_r for each of the n pairs' two devices) from the generator, whatever t_inference and
drift_compensation are: one generator state is one chip, with the same programmed devices,
drift exponents and read-noise draw at every time (the read noise grows in time, its draw does
not change). `noiseproof compare` seeds its chips per (seed, noise, level, chip): its chips at
two times are independent chips.

Training: `noise_injection` and `hardware_aware` draw a chip at the method's `level` if set,
else at the noise model's own t_inference, 0 by default: the chip as programmed (programming
noise and the read noise of the first read at t0, no drift), whatever times a sweep evaluates.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor

from noiseproof.arrays import array_groups
from noiseproof.chip import Params
from noiseproof.noise.base import NoiseModel, noise_models
from noiseproof.noise.mapping import ConductanceMapping

DRIFT_MEAN = (-0.0155, 0.0244, 0.049, 0.1)
"""(slope, intercept, lower clip, upper clip) of the mean drift exponent mu(ln(G/g_max))."""
DRIFT_STD = (-0.0125, -0.0059, 0.008, 0.045)
"""(slope, intercept, lower clip, upper clip) of the drift exponent's spread s(ln(G/g_max))."""
READ_NOISE = (0.0088, 0.65, 1e-3, 0.2)
"""(q, exponent, floor of (G/g_max)^exponent, cap of Q) of Q = q / (G/g_max)^exponent."""
G_RELATIVE_FLOOR = 1e-7
"""Smallest G/g_max used in the drift-exponent fit (aihwkit's _ZERO_CLIP)."""


def output_index(tensors: list[Tensor], compensation: str, device: torch.device) -> Tensor:
    """For every entry of the flattened array (tensors concatenated), the output it feeds:
    all 0 for `global` compensation; for `per_column` its index along the first dimension (a
    0-d tensor feeds output 0), so a weight [out, ...] and its joined bias [out] share outputs."""
    parts = []
    for tensor in tensors:
        if compensation == "global" or tensor.dim() == 0:
            parts.append(torch.zeros(tensor.numel(), dtype=torch.long, device=device))
            continue
        rows = tensor.shape[0]
        per_row = tensor.numel() // max(rows, 1)
        parts.append(torch.arange(rows, device=device).repeat_interleave(per_row))
    return torch.cat(parts)


@noise_models.register("pcm")
class PCM(NoiseModel):
    """PCM crossbar read at t_inference: programming noise, drift, 1/f noise (Nandakumar 2019).

    After aihwkit 1.1.0's PCMLikeNoiseModel: a differential pair per weight (g_max, scale
    max|W| per array), programming noise, a drift exponent per device, drift G (t/t0)^-nu and
    1/f read noise at t = t_inference + t0, and optional global drift compensation. Formulas
    and defaults: the module docstring.
    """

    level_field: ClassVar[str] = "t_inference"
    t_inference: float = Field(
        0.0, ge=0, allow_inf_nan=False, description="sweep level: seconds since programming"
    )
    g_max: float = Field(25.0, gt=0, allow_inf_nan=False, description="largest conductance (uS)")
    t0: float = Field(20.0, gt=0, allow_inf_nan=False, description="drift reference time (s)")
    t_read: float = Field(
        250e-9, gt=0, allow_inf_nan=False, description="read duration of the 1/f fit (s)"
    )
    prog_coeff: tuple[float, ...] = Field(
        (0.26348, 1.9650, -1.1731),
        min_length=1,
        description="sigma_P(G) = sum_i c_i (G/g_max)^i in uS at the reference g_max",
    )
    prog_coeff_g_max_reference: float = Field(
        25.0, gt=0, allow_inf_nan=False, description="g_max (uS) at which prog_coeff were fitted"
    )
    prog_noise_scale: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="scale of the programming noise"
    )
    read_noise_scale: float = Field(
        1.0, ge=0, allow_inf_nan=False, description="scale of the 1/f read noise"
    )
    drift_scale: float = Field(1.0, ge=0, allow_inf_nan=False, description="scale of nu")
    drift_compensation: Literal["none", "global", "per_column"] = Field(
        "none",
        description="digital output scale per array (global) or per output (per_column); "
        "true/false read as global/none",
    )
    bias: Literal["digital", "chip"] = Field(
        "digital", description="biases exact (digital) or their layer's extra column (chip)"
    )

    @field_validator("drift_compensation", mode="before")
    @classmethod
    def _compensation_flag(cls, value: object) -> object:
        """true/false, as earlier configs wrote it, mean global/none."""
        if isinstance(value, bool):
            return "global" if value else "none"
        return value

    @field_validator("prog_coeff")
    @classmethod
    def _finite_coefficients(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(math.isfinite(c) for c in value):
            raise ValueError(f"must be finite numbers, got {list(value)}")
        return value

    @property
    def mapping(self) -> ConductanceMapping:
        """The weight <-> conductance map of this chip: differential pairs over [0, g_max]."""
        return ConductanceMapping(g_min_us=0.0, g_max_us=self.g_max, scheme="differential")

    def conductance_window(self) -> tuple[float, float]:
        """(g_min, g_max) in uS of the weight -> conductance mapping: (0, g_max)."""
        return self.mapping.g_min, self.mapping.g_max

    def programming_sigma(self, g_target: Tensor) -> Tensor:
        """sigma_P(G) = sum_i c_i (G/g_max)^i * g_max / prog_coeff_g_max_reference, in uS."""
        relative = g_target / self.g_max
        sigma = torch.zeros_like(g_target)
        for power, coeff in enumerate(self.prog_coeff):
            sigma = sigma + coeff * relative**power
        return sigma * (self.g_max / self.prog_coeff_g_max_reference)

    def drift_moments(self, g_target: Tensor) -> tuple[Tensor, Tensor]:
        """(mu, s) of the drift exponent: clipped linear fits in ln(max(G/g_max, 1e-7))."""
        log_g = (g_target / self.g_max).abs().clamp(min=G_RELATIVE_FLOOR).log()
        (a, b, low, high), (c, d, s_low, s_high) = DRIFT_MEAN, DRIFT_STD
        return (a * log_g + b).clamp(low, high), (c * log_g + d).clamp(s_low, s_high)

    def drift_exponent(self, g_target: Tensor, z: Tensor) -> Tensor:
        """nu = drift_scale * |mu(G) + s(G) z| for standard normal draws z."""
        mu, spread = self.drift_moments(g_target)
        return self.drift_scale * (mu + spread * z).abs()

    def read_noise_q(self, g_programmed: Tensor) -> Tensor:
        """Q(G) = min(0.2, 0.0088 / max((|G|/g_max)^0.65, 1e-3)): relative 1/f noise amplitude."""
        q, exponent, floor, cap = READ_NOISE
        power = ((g_programmed.abs() / self.g_max) ** exponent).clamp(min=floor)
        return (q / power).clamp(max=cap)

    def read_noise_growth(self) -> float:
        """sqrt(ln((t + t_read) / (2 t_read))) with t = t_inference + t0."""
        t = self.t_inference + self.t0
        return math.sqrt(math.log((t + self.t_read) / (2 * self.t_read)))

    def drift_factor(self, nu: Tensor) -> Tensor:
        """((t_inference + t0) / t0)^(-nu): 1 at t_inference = 0."""
        return ((self.t_inference + self.t0) / self.t0) ** (-nu)

    def devices(self, g_target: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """(G_P, G_t): devices of target G_T after programming, and at t_inference.

        z: [3, *G_T.shape] standard normal draws (programming, drift exponent, read noise).
        """
        programmed = g_target + self.prog_noise_scale * self.programming_sigma(g_target) * z[0]
        programmed = programmed.clamp(min=0)
        drifted = programmed * self.drift_factor(self.drift_exponent(g_target, z[1]))
        sigma = self.read_noise_scale * self.read_noise_q(programmed) * self.read_noise_growth()
        return programmed, (drifted + drifted.abs() * sigma * z[2]).clamp(min=0)

    def arrays(self, params: Params) -> list[tuple[str, ...]]:
        """Names of the tensors programmed together, one tuple per array, in the dict's order
        (noiseproof.arrays): each non-empty tensor is an array except digital biases; with
        bias='chip' a layer's bias joins its weight's array."""
        return array_groups(params, "joined" if self.bias == "chip" else "digital")

    @torch.no_grad()
    def program_array(self, tensors: list[Tensor], generator: torch.Generator) -> list[Tensor]:
        """One array of tensors sharing a scale: their weights at t_inference (compensated when
        drift_compensation), in float64, in the order given."""
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
        draws = torch.randn(
            (3, 2, flat.numel()), generator=generator, dtype=torch.float64, device=generator.device
        )
        mapping = self.mapping
        target = mapping.pairs(flat, flat.abs().max())  # one scale: the array's max|W|
        programmed, now = self.devices(torch.stack(target.columns), draws.to(flat.device))
        weights = mapping.to_weights(target.with_columns(*now))
        if self.drift_compensation != "none":
            reference = mapping.to_weights(target.with_columns(*programmed)).abs()
            outputs = output_index(tensors, self.drift_compensation, flat.device)
            size = int(outputs.max()) + 1
            reference = flat.new_zeros(size).index_add_(0, outputs, reference)
            current = flat.new_zeros(size).index_add_(0, outputs, weights.abs())
            alpha = torch.where(current > 0, reference / current, torch.ones_like(current))
            weights = weights * alpha[outputs]
        return list(weights.split([t.numel() for t in tensors]))

    @torch.no_grad()
    def sample(self, params: Params, generator: torch.Generator) -> Params:
        """One chip read at t_inference: every array programmed, drifted, read (and compensated);
        digital biases and empty tensors returned as they are (copies)."""
        out = {name: tensor.detach().clone() for name, tensor in params.items()}
        for names in self.arrays(params):
            tensors = [params[name] for name in names]
            for name, tensor, weights in zip(
                names, tensors, self.program_array(tensors, generator), strict=True
            ):
                out[name] = weights.reshape(tensor.shape).to(tensor.dtype)
        return out
