"""Suite-wide settings: one torch thread, so tiny models run fast and timing noise from other
processes on a 2-core machine does not slow every test."""

import torch

torch.set_num_threads(1)
