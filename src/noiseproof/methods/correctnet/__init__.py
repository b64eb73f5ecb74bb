"""CorrectNet (Eldebiky et al., DATE 2023): error suppression and learned error compensation.

Stage 1 (error suppression) is the `lipschitz` method (noiseproof.methods.lipschitz); stage 2:

- `compensation`: small digital (noise-free) modules that correct a noisy layer's output, and
  the `Compensated` wrapper that adds them to a model without editing it;
- `cost`: their overhead in parameters and multiply-accumulates;
- `layers`: which layers may carry compensation;
- `training`: compensation trained by the one trainer under fresh noise, the model frozen;
- `placement`: search algorithms over placements (REINFORCE, greedy, exhaustive);
- `search`: the reward of a placement on the validation split, and the search it drives;
- `settings`: the `correct` settings (compensation shape, training, placement search);
- `pipeline`: measure, place, train and measure again (`noiseproof correct`);
- `method`: both stages as the training method `correctnet` (`noiseproof compare`).
"""

from noiseproof.methods.correctnet import method  # noqa: F401  (registers 'correctnet')
