"""CorrectNet (Eldebiky et al., DATE 2023): error suppression and learned error compensation.

- `spectral`: per-layer operator (spectral) norms by power iteration, used by the `lipschitz`
  method's regulariser;
- `compensation`: small digital (noise-free) modules that correct a noisy layer's output;
- `placement`: which layers get compensation (REINFORCE, greedy and exhaustive search);
- `pipeline`: train compensation and measure accuracy under noise, used by `noiseproof correct`.
"""
