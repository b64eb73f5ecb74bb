"""A decoder-only transformer language model: GPT-2 (Radford et al. 2019), built in.

Every projection is an nn.Linear, so the default chip selection puts all of them (and their
biases) on the chip, while the token and position embeddings (nn.Embedding) and the
LayerNorms stay digital.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal, cast

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn
from torch.nn import functional as F

from noiseproof.errors import NoiseproofError
from noiseproof.models.base import ModelSpec, models

INIT_STD = 0.02
"""Standard deviation of GPT-2's normal initialisation (Radford et al. 2019; nanoGPT's 0.02)."""


class ModelBuildError(NoiseproofError, ValueError):
    """A one-line refusal of a language model's settings or inputs (a ValueError, and a
    NoiseproofError the command line reports in one line)."""


def sequence_length(input_shape: tuple[int, ...], limit: int | None, field: str, model: str) -> int:
    """T of a token-id input of shape (T,), refused in one line naming `field` when T exceeds
    `limit` (None: no limit) and naming input_shape when the shape is not (T,)."""
    if len(input_shape) != 1:
        raise ModelBuildError(
            f"model '{model}' takes token ids of shape (T,), got input_shape {tuple(input_shape)}"
        )
    length = int(input_shape[0])
    if limit is not None and length > limit:
        raise ModelBuildError(
            f"model '{model}': input sequences of {length} tokens exceed {field}={limit}"
        )
    return length


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention (Vaswani et al. 2017), softmax(QK^T/sqrt(d) + mask)V.

    One fused nn.Linear computes q, k and v; another projects the heads back (GPT-2's c_attn,
    c_proj). The product runs in torch's fused scaled_dot_product_attention with is_causal=True.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.n_head = n_head
        self.qkv = nn.Linear(n_embd, 3 * n_embd, bias=bias)
        self.proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """[B, T, C] -> [B, T, C]: position t attends to positions <= t only."""
        batch, length, channels = x.shape
        q, k, v = self.qkv(x).split(channels, dim=-1)
        shape = (batch, length, self.n_head, channels // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(batch, length, channels)
        return self.dropout(self.proj(y))


class MLP(nn.Module):
    """GPT-2's position-wise feed-forward block: Linear(C, 4C) -> GELU -> Linear(4C, C)."""

    def __init__(self, n_embd: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd, bias=bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's gelu (Hendrycks & Gimpel 2016)
        self.proj = nn.Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        """[B, T, C] -> [B, T, C]."""
        return self.dropout(self.proj(self.gelu(self.fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block (GPT-2): x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, n_embd: int, n_head: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = nn.LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x: Tensor) -> Tensor:
        """[B, T, C] -> [B, T, C]."""
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPTModule(nn.Module):
    """Token ids [B, T] -> next-token logits [B, T, vocab] (Radford et al. 2019).

    Learned position embeddings, `n_layer` pre-LayerNorm blocks, a final LayerNorm and a
    bias-free nn.Linear LM head (whose weight is the token embedding's when `tie_embeddings`).
    """

    def __init__(self, spec: GPT, vocab: int) -> None:
        super().__init__()
        self.block_size = spec.block_size
        self.wte = nn.Embedding(vocab, spec.n_embd)
        self.wpe = nn.Embedding(spec.block_size, spec.n_embd)
        self.drop = nn.Dropout(spec.dropout)
        self.h = nn.ModuleList(
            Block(spec.n_embd, spec.n_head, spec.dropout, spec.bias) for _ in range(spec.n_layer)
        )
        self.ln_f = nn.LayerNorm(spec.n_embd, bias=spec.bias)
        self.lm_head = nn.Linear(spec.n_embd, vocab, bias=False)
        if spec.tie_embeddings:
            self.lm_head.weight = self.wte.weight
        self.reset_parameters(spec.n_layer)

    def reset_parameters(self, n_layer: int) -> None:
        """GPT-2's init (Radford et al. 2019, section 2.3): weights and embeddings N(0, 0.02^2),
        biases 0, LayerNorms (1, 0), the residual projections (attn.proj, mlp.proj) scaled by
        1/sqrt(2 n_layer): N(0, (0.02 / sqrt(2 n_layer))^2). Draws from torch's global RNG only.
        """
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)
            if isinstance(module, nn.Linear | nn.LayerNorm) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
        for block in cast(list[Block], self.h):
            for proj in (block.attn.proj, block.mlp.proj):
                nn.init.normal_(proj.weight, mean=0.0, std=INIT_STD / math.sqrt(2 * n_layer))

    def forward(self, idx: Tensor) -> Tensor:
        """Logits [B, T, vocab] of int64 token ids [B, T]; a ValueError naming block_size when
        T > block_size (a check on the shape only: no host synchronisation)."""
        length = idx.shape[-1]
        if length > self.block_size:
            raise ModelBuildError(
                f"model 'gpt': a sequence of {length} tokens exceeds block_size={self.block_size}"
            )
        positions = torch.arange(length, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(positions))
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


@models.register("gpt")
class GPT(ModelSpec):
    """Decoder-only transformer language model, GPT-2 architecture (Radford et al. 2019).

    Input: int64 token ids [B, T] (input_shape (T,), T <= block_size); output: next-token
    logits [B, T, num_outputs] (num_outputs is the vocabulary size). Dropout (nn.Dropout
    modules, after the embeddings and on each residual branch: GPT-2's embd_pdrop and
    resid_pdrop) is active in training mode only; the attention probabilities are not dropped
    (scaled_dot_product_attention keeps them inside the fused kernel).
    """

    reads: ClassVar[Literal["features", "tokens"]] = "tokens"

    n_layer: int = Field(4, gt=0, description="number of transformer blocks")
    n_head: int = Field(4, gt=0, description="attention heads per block (divides n_embd)")
    n_embd: int = Field(128, gt=0, description="width of the residual stream")
    block_size: int = Field(128, gt=0, description="longest sequence (learned positions)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="dropout probability")
    bias: bool = Field(True, description="biases in the Linear layers and LayerNorms (GPT-2)")
    tie_embeddings: bool = Field(
        False, description="share the token embedding with the LM head (Press & Wolf 2017)"
    )

    @model_validator(mode="after")
    def _heads_divide_width(self) -> GPT:
        """Refuse n_embd not divisible by n_head (each head has n_embd / n_head channels)."""
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        return self

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """A GPT-2 (Radford et al. 2019) for sequences of input_shape (T,), vocab num_outputs;
        a ValueError naming block_size when T > block_size."""
        sequence_length(input_shape, self.block_size, "block_size", self.registered_name)
        return GPTModule(self, num_outputs)
