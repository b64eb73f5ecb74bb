"""FLOPs from torch's own counter (`torch.utils.flop_counter.FlopCounterMode`), completed with
the CPU kernels of scaled_dot_product_attention that torch 2.13's table leaves out
(`_scaled_dot_product_flash_attention_for_cpu` and its backward), counted with torch's own
formulas for the other attention kernels (`sdpa_flop_count`, `sdpa_backward_flop_count`: the
batched products QK^T and PV, and their gradients)."""

from __future__ import annotations

from typing import Any

import torch


def flop_counter() -> Any:
    """A FlopCounterMode (display off) that also counts attention on the CPU."""
    from torch.utils.flop_counter import (
        FlopCounterMode,
        sdpa_backward_flop_count,
        sdpa_flop_count,
    )

    def forward(query: Any, key: Any, value: Any, *_: Any, **__: Any) -> int:
        return sdpa_flop_count(query, key, value)

    def backward(grad_out: Any, query: Any, key: Any, value: Any, *_: Any, **__: Any) -> int:
        return sdpa_backward_flop_count(grad_out, query, key, value)

    kernels = {
        "_scaled_dot_product_flash_attention_for_cpu": forward,
        "_scaled_dot_product_flash_attention_for_cpu_backward": backward,
    }
    mapping = {
        getattr(torch.ops.aten, name): formula
        for name, formula in kernels.items()
        if hasattr(torch.ops.aten, name)
    }
    return FlopCounterMode(display=False, custom_mapping=mapping)
