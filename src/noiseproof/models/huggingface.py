"""Hugging Face transformers models (Wolf et al. 2020), an optional extra: noiseproof[hf].

`transformers` is imported inside `build` only, so noiseproof imports (fast) without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal, cast

from pydantic import Field, model_validator
from torch import nn

from noiseproof.errors import NoiseproofError
from noiseproof.models.base import ModelSpec, models
from noiseproof.models.gpt import ModelBuildError, sequence_length

Head = Literal["causal_lm", "sequence_classification", "token_classification"]

AUTO_CLASSES: dict[str, str] = {
    "causal_lm": "AutoModelForCausalLM",
    "sequence_classification": "AutoModelForSequenceClassification",
    "token_classification": "AutoModelForTokenClassification",
}
"""The transformers Auto class that builds each head."""

POSITION_FIELDS = ("n_positions", "max_position_embeddings", "n_ctx")
"""Config fields holding a model's longest sequence (GPT-2's first, then the common name)."""

SPECIAL_TOKENS = ("bos_token_id", "eos_token_id", "pad_token_id")
WEIGHT_SUFFIXES = (".safetensors", ".bin")
NAME = "huggingface"


def import_transformers() -> Any:
    """The `transformers` module, or a one-line NoiseproofError naming the `hf` extra."""
    try:
        import transformers
    except ImportError:
        raise NoiseproofError(
            f"model '{NAME}' needs the transformers package: pip install 'noiseproof[hf]'"
        ) from None
    return transformers


def positions(config: Any) -> tuple[str, int] | None:
    """(field name, value) of the config's longest sequence, None when it declares none."""
    values = config.to_dict()
    for field in POSITION_FIELDS:
        if isinstance(values.get(field), int):
            return field, values[field]
    return None


def check_length(input_shape: tuple[int, ...], config: Any, where: str) -> None:
    """Refuse (one line naming the positions field) an input_shape (T,) longer than the
    model's positions; an input_shape that is not (T,) is refused too."""
    limit = positions(config)
    field, value = limit if limit else ("", None)
    sequence_length(input_shape, value, f"{where} {field}", NAME)


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def weights_present(folder: Path) -> bool:
    """Whether `folder` holds a config.json and weights (safetensors or PyTorch .bin, sharded
    or not), as `save_pretrained` writes them."""
    files = [f for f in folder.iterdir() if f.is_file()]
    return (folder / "config.json").is_file() and any(f.suffix in WEIGHT_SUFFIXES for f in files)


def set_pad_token(config: Any) -> None:
    """Give a config without pad_token_id one, so that a batch of several sequences can be
    classified (GPT-2's sequence classifier pools the last token that is not padding, and
    refuses batches > 1 without a pad id): the eos token when it is in the vocabulary, else
    the last token id, vocab_size - 1 (where GPT-2 keeps its end-of-text token)."""
    if config.pad_token_id is not None:
        return
    eos = config.eos_token_id
    vocab = getattr(config, "vocab_size", None)
    if isinstance(eos, int) and (vocab is None or 0 <= eos < vocab):
        config.pad_token_id = eos
    elif isinstance(vocab, int):
        config.pad_token_id = vocab - 1


@models.register(NAME)
class HuggingFace(ModelSpec):
    """A Hugging Face transformers model (Wolf et al. 2020): saved in a folder, or a config.

    `path`: a local folder written by `save_pretrained`, loaded by
    `AutoModelFor<head>.from_pretrained(path, local_files_only=True)` (never remote code).
    `config`: a transformers config as a dict with `model_type` (e.g. {model_type: gpt2,
    n_layer: 2, n_head: 2, n_embd: 32, n_positions: 64}), built by AutoConfig.for_model and
    initialised at random by `from_config` from torch's global RNG. Exactly one of the two.

    Sizes. causal_lm: the logits have vocab_size entries. A config without vocab_size gets
    vocab_size = num_outputs; a vocab_size (given or saved) below num_outputs is refused, one
    above it is kept (the extra tokens never occur as targets). Classification heads: a config
    gets num_labels = num_outputs; a num_labels (given or saved) other than num_outputs is
    refused. Special token ids a config inherits from its model type's defaults that fall
    outside its vocabulary (GPT-2's 50256 in a small vocabulary) become None. A model without
    pad_token_id gets one (see `set_pad_token`): GPT-2's sequence classifier needs it for
    batches of several sequences. use_cache is switched off (no key/value cache: noiseproof
    never generates).

    On the chip by default: every nn.Linear and HF Conv1D (GPT-2's c_attn, c_proj, c_fc and
    the LM head), weights and biases; the embeddings (wte, wpe) and LayerNorms stay digital.
    GPT-2 ties its LM head to the token embedding: the tied tensor is one parameter named
    `transformer.wte.weight`, selected through the head (an nn.Linear), so it is on the chip
    and a draw for it reaches both the head and the embedding lookup.
    `chip.exclude: ['transformer.wte.weight']` keeps both digital; config
    `tie_word_embeddings: false` unties them (the head alone on the chip).

    Dropout keeps the model's own config (resid_pdrop, attn_pdrop...) and, like nn.Dropout,
    draws from torch's global RNG in training mode only.
    """

    reads: ClassVar[Literal["features", "tokens"]] = "tokens"

    output: str | int | None = Field(
        "logits", description="attribute of the model's output holding the logits"
    )
    path: str | None = Field(None, description="local folder written by save_pretrained")
    config: dict[str, Any] | None = Field(
        None, description="transformers config with model_type, for a randomly initialised model"
    )
    head: Head = Field("causal_lm", description="task head: which AutoModelFor... class")

    @model_validator(mode="after")
    def _one_source(self) -> HuggingFace:
        """Exactly one of path/config; a config names its model_type."""
        if (self.path is None) == (self.config is None):
            raise ValueError("give exactly one of path (a saved model) and config (a new one)")
        if self.config is not None and not isinstance(self.config.get("model_type"), str):
            raise ValueError("config needs a model_type (e.g. 'gpt2')")
        return self

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        """The model with its `head`, from `path` or `config` (see the class)."""
        transformers = import_transformers()
        auto = getattr(transformers, AUTO_CLASSES[self.head])
        if self.path is not None:
            model = self._load(transformers, auto, input_shape, num_outputs)
        else:
            config = self._config(transformers, input_shape, num_outputs)
            try:
                model = auto.from_config(config)
            except (ValueError, TypeError, KeyError, AssertionError) as error:
                raise ModelBuildError(f"model '{NAME}': config: {first_line(error)}") from None
        cast(Any, model.config).use_cache = False  # a transformers PreTrainedModel's config
        return model

    def _config(self, transformers: Any, input_shape: tuple[int, ...], num_outputs: int) -> Any:
        """The transformers config of `config`, sized for num_outputs (see the class)."""
        given = dict(self.config or {})
        model_type = given.pop("model_type")
        try:
            defaults = transformers.AutoConfig.for_model(model_type)
        except ValueError:
            raise ModelBuildError(
                f"model '{NAME}': config.model_type {model_type!r} is not a transformers model"
            ) from None
        if self.head == "causal_lm":
            given.setdefault("vocab_size", num_outputs)
            if given["vocab_size"] < num_outputs:
                raise ModelBuildError(
                    f"model '{NAME}': config.vocab_size={given['vocab_size']} is below the "
                    f"{num_outputs} token classes of the data"
                )
        else:
            given.setdefault("num_labels", num_outputs)
            if given["num_labels"] != num_outputs:
                raise ModelBuildError(
                    f"model '{NAME}': config.num_labels={given['num_labels']} but the data has "
                    f"{num_outputs} classes"
                )
        vocab = given.get("vocab_size", getattr(defaults, "vocab_size", None))
        for token in SPECIAL_TOKENS:
            default = getattr(defaults, token, None)
            if token not in given and isinstance(default, int) and isinstance(vocab, int):
                given[token] = default if 0 <= default < vocab else None
        config = transformers.AutoConfig.for_model(model_type, **given)
        check_length(input_shape, config, "config")
        if self.head == "sequence_classification":
            set_pad_token(config)
        return config

    def _load(
        self, transformers: Any, auto: Any, input_shape: tuple[int, ...], num_outputs: int
    ) -> nn.Module:
        """The model saved in `path`, its sizes checked against the data before loading."""
        folder = Path(str(self.path)).expanduser()
        if not folder.is_dir():
            raise ModelBuildError(f"model '{NAME}': path {str(folder)!r} is not a folder")
        if not weights_present(folder):
            raise ModelBuildError(
                f"model '{NAME}': path {str(folder)!r} holds no saved model "
                "(config.json and weights, as save_pretrained writes them)"
            )
        try:
            config = transformers.AutoConfig.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False
            )
        except (OSError, ValueError) as error:
            raise ModelBuildError(
                f"model '{NAME}': path {str(folder)!r}: {first_line(error)}"
            ) from None
        if self.head == "causal_lm" and config.vocab_size < num_outputs:
            raise ModelBuildError(
                f"model '{NAME}': path {str(folder)!r} has vocab_size={config.vocab_size}, "
                f"below the {num_outputs} token classes of the data"
            )
        if self.head != "causal_lm" and config.num_labels != num_outputs:
            raise ModelBuildError(
                f"model '{NAME}': path {str(folder)!r} has num_labels={config.num_labels} but "
                f"the data has {num_outputs} classes"
            )
        check_length(input_shape, config, f"path {str(folder)!r}")
        if self.head == "sequence_classification":
            set_pad_token(config)
        try:
            return auto.from_pretrained(
                folder, config=config, local_files_only=True, trust_remote_code=False
            )
        except (OSError, ValueError) as error:
            raise ModelBuildError(
                f"model '{NAME}': path {str(folder)!r}: {first_line(error)}"
            ) from None
