"""A Hugging Face causal language model as a policy (network=hf): the LM head gives pi(a|s)
over the tokenizer's vocabulary, a linear value head on the last hidden state gives V(s).

Loaded from local disk only (`local_files_only`: nothing is fetched at run time). The
reference is a frozen copy of the loaded weights, or with LoRA (`network.lora_rank` > 0, through
peft) the same weights with the adapters switched off, so the model is held once.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from rltrain.config.schema import NetworkConfig
from rltrain.errors import UserError


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_causal_lm(cfg: NetworkConfig) -> nn.Module:
    """AutoModelForCausalLM from network.path; one line when it is missing or not causal."""
    try:
        import transformers
    except ImportError:
        raise UserError(
            "network=hf needs transformers: pip install 'rltrain[llm]' (make install has it)"
        ) from None
    transformers.logging.set_verbosity_error()  # the run's console is rltrain's progress line
    transformers.logging.disable_progress_bar()
    path = Path(str(cfg.path)).expanduser()
    if not path.is_dir():
        raise UserError(f"network.path={cfg.path} is not a directory with a saved model")
    dtype = torch.bfloat16 if cfg.lm_dtype == "bfloat16" else torch.float32
    kwargs: dict[str, Any] = {"local_files_only": True, "dtype": dtype}
    if cfg.gguf_file:
        kwargs["gguf_file"] = cfg.gguf_file
    try:
        config = transformers.AutoConfig.from_pretrained(str(path), **{
            k: v for k, v in kwargs.items() if k != "dtype"
        })  # fmt: skip
    except (OSError, ValueError) as exc:
        raise UserError(
            f"network.path={cfg.path} holds no model config: {_first_line(exc)}"
        ) from None
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    except ValueError as exc:
        raise UserError(
            f"network.path={cfg.path} is a {config.model_type} model, not a causal language "
            f"model transformers can load ({_first_line(exc)})"
        ) from None
    except OSError as exc:
        raise UserError(
            f"network.path={cfg.path}: the weights cannot be read: {_first_line(exc)}"
        ) from None
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model


class HFPolicy(nn.Module):
    """forward(tokens, attention) -> (logits [B, T, V], values [B, T]); position t's logits and
    value belong to the state that ends at token t."""

    def __init__(self, model: nn.Module, lora: bool) -> None:
        super().__init__()
        self.model, self.lora = model, lora
        config: Any = model.config
        hidden = int(config.get_text_config().hidden_size)
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)  # V starts at 0, not at a random projection
        nn.init.zeros_(self.value_head.bias)
        self.value_head.to(next(model.parameters()).device)
        # transformers 5.25 renamed past_key_values to cache (in and out); accept either
        forward = getattr(model, "get_base_model", lambda: model)().forward
        self._cache_kw = "cache" if "cache" in inspect.signature(forward).parameters else (
            "past_key_values")  # fmt: skip

    def forward(self, tokens: Tensor, attention: Tensor, past: Any = None,
                positions: Tensor | None = None, cache: bool = False,
                ) -> tuple[Tensor, Tensor, Any]:  # fmt: skip
        """tokens [B, T] (valid ids), attention [B, T'] (T' counts the cached positions too);
        `cache` returns the key-value cache that generation feeds back as `past`."""
        if positions is None:
            # left padding: positions count the prompt's real tokens, so a padded prompt sees
            # the same positions as the unpadded one
            positions = (attention.long().cumsum(-1) - 1).clamp(min=0)[:, -tokens.shape[1] :]
        out = self.model(input_ids=tokens, attention_mask=attention, position_ids=positions,
                         use_cache=cache, output_hidden_states=True,
                         **{self._cache_kw: past})  # fmt: skip
        hidden = out.hidden_states[-1]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return out.logits.float(), values.float(), out.get(self._cache_kw)

    @contextlib.contextmanager
    def reference_mode(self) -> Iterator[None]:
        """The LoRA model with its adapters off: the reference policy, without a second copy."""
        assert self.lora
        with self.model.disable_adapter():  # type: ignore[operator]
            yield


def build_policy(cfg: NetworkConfig, device: torch.device) -> tuple[HFPolicy, HFPolicy | None]:
    """(policy, reference): the reference is a frozen copy, or None with LoRA (see
    `HFPolicy.reference_mode`)."""
    model = load_causal_lm(cfg).to(device)
    reference = None
    if cfg.lora_rank > 0:
        try:
            import peft
        except ImportError:
            raise UserError(
                f"network.lora_rank={cfg.lora_rank} needs peft: pip install 'rltrain[llm]'"
            ) from None
        lora = peft.LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                               target_modules="all-linear", lora_dropout=0.0)  # fmt: skip
        model = peft.get_peft_model(model, lora)
    else:
        frozen = copy.deepcopy(model).requires_grad_(False).eval()
        reference = HFPolicy(frozen, lora=False).requires_grad_(False).eval()
    return HFPolicy(model, lora=cfg.lora_rank > 0), reference
