"""The papers' model architectures with random weights: the paper profile's code path, anywhere.

``--model random:qwen3-1.7b`` builds ``Qwen3ForCausalLM`` from Qwen3-1.7B's published
dimensions (its ``config.json`` on the hub) without downloading anything, so the paper-scale
path (bf16, long completions, the real vocabulary width) runs on any machine that has the
memory. The tokenizer is the project's character tokenizer: its ids are a subset of the
vocabulary, which is all a shape, memory or speed check needs; accuracy is meaningless. It carries Qwen3's chat template
(:data:`geobench.llm.prompts.QWEN3_CHAT_TEMPLATE`).
``random:qwen3-1.7b/8`` divides width, depth and heads by 8 for CPU tests.
"""

from __future__ import annotations

from typing import Any

import torch

from geobench.errors import ConfigError
from geobench.llm.prompts import QWEN3_CHAT_TEMPLATE
from geobench.llm.tokenizer import char_tokenizer

PREFIX = "random:"
# Qwen/Qwen3-1.7B config.json (the papers' model: OPO Sec. 9, ADPO Sec. 6.3).
SHAPES: dict[str, dict[str, Any]] = {
    "qwen3-1.7b": {
        "vocab_size": 151936,
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 28,
        "num_attention_heads": 16,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "max_position_embeddings": 40960,
        "rope_theta": 1_000_000,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
    },
}


def is_random(model: str) -> bool:
    return model.startswith(PREFIX)


def _parse(model: str) -> tuple[dict[str, Any], int]:
    name, _, divisor = model[len(PREFIX) :].partition("/")
    if name not in SHAPES:
        raise ConfigError(f"unknown random model {name!r}; valid: {', '.join(PREFIX + s for s in SHAPES)}")
    try:
        scale = int(divisor or 1)
    except ValueError:
        scale = 0
    if scale < 1:
        raise ConfigError(f"random model scale must be a positive integer, e.g. {PREFIX}{name}/8; got {divisor!r}")
    return SHAPES[name], scale


def random_config(model: str) -> Any:
    """The ``Qwen3Config`` of ``random:NAME[/DIVISOR]``: width, depth and heads divided by DIVISOR."""
    from transformers import Qwen3Config

    shape, scale = _parse(model)
    values = dict(shape)
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "head_dim"):
        values[key] = max(1, values[key] // scale)
    values["num_key_value_heads"] = max(1, min(values["num_key_value_heads"] // scale, values["num_attention_heads"]))
    return Qwen3Config(**values, bos_token_id=None)


def random_policy(model: str, dtype: str, seed: int = 0):
    """(model, tokenizer): the architecture with random weights, and the character tokenizer with
    Qwen3's chat template (so the paper profiles' "chat" prompts run here as they would on Qwen3)."""
    from transformers import Qwen3ForCausalLM

    tokenizer = char_tokenizer()
    tokenizer.chat_template = QWEN3_CHAT_TEMPLATE
    config = random_config(model)
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    torch.manual_seed(seed)
    with torch.device("cpu"):
        policy = Qwen3ForCausalLM(config).to(getattr(torch, dtype))
    return policy, tokenizer
