"""Policies: the project's tiny Qwen3 (built from a config, character tokenizer) or any
causal-LM checkpoint, and the one function that scores completions under a policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from geobench.errors import ConfigError
from geobench.llm import hub, packed, paper_shapes


@dataclass(frozen=True)
class TinyQwen3:
    """Shape of the quick profile's model (transformers' ``Qwen3ForCausalLM``)."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 192
    max_positions: int = 64


def tiny_qwen3(tokenizer, shape: TinyQwen3, seed: int):
    """A randomly initialised ``Qwen3ForCausalLM`` sized by ``shape`` (tied embeddings)."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.hidden // shape.heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    return Qwen3ForCausalLM(config)


def load_policy(model: str, dtype: str = "float32"):
    """(model, tokenizer) from a local folder, a hub id, or ``random:NAME`` (a paper architecture
    with random weights, no download: :mod:`geobench.llm.paper_shapes`); a one-line error if none loads."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if paper_shapes.is_random(model):
        return paper_shapes.random_policy(model, dtype)

    hf_logging.disable_progress_bar()  # one rich bar per loop is ours; no per-load bars
    if not Path(model).exists():
        hub.require_hub(model, "--model")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
        policy = AutoModelForCausalLM.from_pretrained(model, dtype=getattr(torch, dtype))
    except (OSError, ValueError) as error:
        hint = "run `geobench llm` once to build the warm start" if "warmstart" in model else "check --model"
        missed = hub.offline_miss(model, "--model")
        raise ConfigError(missed or f"cannot load model {model!r} ({type(error).__name__}); {hint}") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return policy, tokenizer


def parameter_count(model: str) -> int:
    """Parameters of ``model``'s architecture (a folder, hub id or ``random:NAME``), built on the meta
    device from its config: nothing is allocated or downloaded but the config. 0 for an architecture
    transformers cannot build from its config alone (custom code): its size is then unknown."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = paper_shapes.random_config(model) if paper_shapes.is_random(model) else AutoConfig.from_pretrained(model)
    try:
        with torch.device("meta"):
            policy = AutoModelForCausalLM.from_config(config)
    except (ValueError, ImportError):
        return 0
    return sum(p.numel() for p in policy.parameters())  # tied embeddings counted once


def training_bytes(parameters: int, dtype: str, snapshot: bool = False) -> tuple[int, str]:
    """What a cell's training holds at least, in bytes, and what that is made of: the weights, their
    gradients and AdamW's two moments (kept in the parameters' dtype), one value each per parameter at
    ``dtype``; with ``snapshot`` (the per-pair check) a copy of the weights and moments as well.
    No reference model is kept (the anchor is pi_old, the current weights); activations come on top."""
    width = torch.empty((), dtype=getattr(torch, dtype)).element_size()
    copies = 4 + (3 if snapshot else 0)
    held = "weights, gradients and AdamW's two moments" + (", and the pair check's copy" if snapshot else "")
    why = f"{parameters / 1e9:.2f} B parameters x {copies} x {width} bytes ({dtype}): {held}"
    return parameters * copies * width, why


def check_weights(folder: Path) -> None:
    """A checkpoint folder's weights are all there: every safetensors file's header is read (which
    is cheap and catches a truncated file), so a damaged checkpoint is one line naming the file
    before any cell starts, not the same error in every cell."""
    from safetensors import SafetensorError, safe_open

    if (folder / "warmstart.json").exists():
        fix = f"restore it (git checkout {folder}) or delete {folder} to rebuild the warm start"
    else:
        fix = "save or download the checkpoint again, or check --model"
    index = folder / "model.safetensors.index.json"
    if index.exists():
        import json

        try:
            files = sorted({folder / name for name in json.loads(index.read_text())["weight_map"].values()})
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ConfigError(f"weights index {index} is damaged ({type(error).__name__}); {fix}") from None
    else:
        files = sorted(folder.glob("*.safetensors"))
    if not files and not any(folder.glob("pytorch_model*.bin")):
        raise ConfigError(f"model folder {folder} holds no weights (model.safetensors); {fix}")
    for file in files:
        if not file.is_file():
            raise ConfigError(f"weights file {file} is missing; {fix}")
        try:
            with safe_open(str(file), "pt"):
                pass
        except (SafetensorError, OSError) as error:
            raise ConfigError(f"weights file {file} is damaged ({_first_line(error)}; truncated?); {fix}") from None


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def save_policy(policy, tokenizer, folder: Path) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def nucleus(logits: Tensor, top_p: float) -> Tensor:
    """(..., V) bool: the tokens HF's ``TopPLogitsWarper`` keeps (min_tokens_to_keep = 1).

    Sort ascending, drop the tokens whose cumulative probability is <= 1 - top_p, always keep
    the most likely one: the same rule and the same comparisons as transformers', so a token
    the sampler could draw is exactly a token kept here.
    """
    sorted_logits, order = torch.sort(logits, dim=-1, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    drop_sorted = cumulative <= (1.0 - top_p)
    drop_sorted[..., -1:] = False
    return ~drop_sorted.scatter(-1, order, drop_sorted)


def completion_logprobs(
    policy,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    completion_ids: Tensor,
    completion_mask: Tensor,
    *,
    with_entropy: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    packed_tokens: bool = True,
) -> tuple[Tensor, Tensor | None]:
    """Per-token log pi(y_t | x, y_<t) of each completion under the sampler's distribution.

    The sampler draws from softmax(logits / T) restricted to the top-p nucleus and
    renormalised (HF's temperature then top-p warpers; vLLM's sampler likewise), so that is
    the distribution pi_old must be scored under, and pi with it, or the ratio pi / pi_old
    and every anchored log-ratio is off from the first update. ``temperature`` <= 0 (greedy)
    scores the raw distribution. Tokens outside the nucleus get probability 0, except the
    completion's own token, which is always kept: it is inside pi_old's nucleus by
    construction (so pi_old's scores are exactly the sampler's), and keeping it inside the
    updated policy's support keeps log pi finite when an update pushes it out.

    Prompts are left-padded, completions right-padded; position ids count real tokens only,
    so a sequence scores the same alone as in a padded batch (tested). With ``packed_tokens``
    a Qwen3 policy runs on the real tokens only (:mod:`geobench.llm.packed`: the same numbers
    up to float round-off, about half the work); otherwise, or for other models, one padded
    forward pass.

    Args:
        prompt_ids, prompt_mask: (N, P).
        completion_ids, completion_mask: (N, T).

    Returns:
        (N, T) log-probs (0 at padding) and, with ``with_entropy``, (N, T) entropies of the
        (processed) next-token distribution.
    """
    real = None
    if packed_tokens and packed.supports(policy):
        real = packed.completion_logits(policy, prompt_ids, prompt_mask, completion_ids, completion_mask)
    if real is not None:  # (m, V): the real completion tokens only
        token, entropy = _scored(real, completion_ids[completion_mask.bool()], with_entropy, temperature, top_p)
        entropy = None if entropy is None else packed.scatter_rows(entropy, completion_mask)
        return packed.scatter_rows(token, completion_mask), entropy
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = policy(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    p_len = prompt_ids.shape[1]
    logits = logits[:, p_len - 1 : -1]  # (N, T, V): the logits that predict each completion token
    token, entropy = _scored(logits, completion_ids, with_entropy, temperature, top_p)
    fmask = completion_mask.to(token.dtype)
    return token * fmask, None if entropy is None else entropy * fmask


def _scored(
    logits: Tensor, targets: Tensor, with_entropy: bool, temperature: float, top_p: float
) -> tuple[Tensor, Tensor | None]:
    """(...) log-probs of ``targets`` (...) and, optionally, entropies under the sampler's
    processed distribution of ``logits`` (..., V): float, / T, top-p nucleus with the target kept."""
    logits = logits.float()
    if temperature > 0 and temperature != 1.0:
        logits = logits / temperature
    keep = None
    if top_p < 1.0:
        keep = nucleus(logits.detach(), top_p)
        keep.scatter_(-1, targets.unsqueeze(-1), True)
        logits = logits.masked_fill(~keep, -math.inf)
    log_probs = torch.log_softmax(logits, dim=-1)
    token = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return token, None
    plogp = log_probs.exp() * log_probs
    if keep is not None:
        plogp = plogp.masked_fill(~keep, 0.0)  # 0 log 0 = 0 outside the nucleus
    return token, -plogp.sum(-1)
