"""Qwen3 without the padding: completions scored on packed tokens, and KV-cached sampling.

A rollout batch is about half padding (left-padded prompts, right-padded completions of
ragged length: 46-60 % of the quick profile's tokens are real). Every op of a Qwen3 decoder
layer except attention acts on each token alone, so here those ops (the model's own norm,
projection, MLP and rotary modules) run on the (n, hidden) real tokens only, and attention
on the (rows, width) layout of the padded batch with its mask, as transformers' ``sdpa``
path runs it. Every real token sees the same numbers as in transformers' forward pass, so
log-probs come out equal (bit for bit on the CPUs tested); parameter gradients differ by
float round-off (their sums over tokens no longer add the padding's zeros; ~1e-7 relative).

:func:`sample` is ``generate``'s multinomial sampling with a KV cache and no per-token
framework overhead; rows that emitted EOS leave the batch (the cache is compacted). It keeps
``generate``'s random stream: ``torch.multinomial`` with one sample is the argmax of p / q
with q ~ Exp(1) drawn for every (row, token) of the batch, so the draws stay (N, V) wide
and each row's token depends on its own probabilities only: the same tokens for a seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def supports(policy) -> bool:
    """Whether ``policy`` is a transformers Qwen3 this module computes exactly (full attention, no
    gradient checkpointing, no attention dropout in training)."""
    config = getattr(policy, "config", None)
    if getattr(config, "model_type", None) != "qwen3" or not hasattr(policy, "model"):
        return False
    full = all(kind == "full_attention" for kind in getattr(config, "layer_types", None) or ["full_attention"])
    full = full and not getattr(config, "use_sliding_window", False)
    dropout = policy.training and config.attention_dropout > 0
    return full and not policy.is_gradient_checkpointing and not dropout


@dataclass(frozen=True)
class Layout:
    """Where each of n packed tokens sits in the (rows, width) attention layout.

    Attributes:
        slots: (n,) index into the flattened (rows * width) layout.
        positions: (n,) rotary position of each token (its rank among its row's real tokens).
        mask: (rows, 1, width, width) bool, True where a query may attend a key: causal over
            the row's real tokens; an empty slot attends itself only, so no softmax row is empty.
    """

    rows: int
    width: int
    slots: Tensor
    positions: Tensor
    mask: Tensor

    @staticmethod
    def of(real: Tensor) -> Layout:
        """The layout keeping the columns of ``real`` ((rows, width) bool: the real tokens)."""
        rows, width = real.shape
        slots = torch.arange(rows * width, device=real.device).view(rows, width)[real]
        positions = (real.cumsum(-1) - 1)[real]
        col = torch.arange(width, device=real.device)
        causal = col[None, :] <= col[:, None]  # (width q, width k)
        mask = (causal & real[:, None, :]) | torch.eye(width, dtype=torch.bool, device=real.device)
        return Layout(rows, width, slots, positions, mask.unsqueeze(1))


def _attention_layout(x: Tensor, layout: Layout) -> Tensor:
    """(n, heads, d) packed -> (rows, heads, width, d), zeros at the empty slots."""
    n, heads, d = x.shape
    full = x.new_zeros(layout.rows * layout.width, heads, d).index_copy(0, layout.slots, x)
    return full.view(layout.rows, layout.width, heads, d).transpose(1, 2)


def _repeat_kv(x: Tensor, groups: int) -> Tensor:
    """(rows, kv_heads, L, d) -> (rows, kv_heads * groups, L, d), as transformers' repeat_kv."""
    if groups == 1:
        return x
    rows, heads, length, d = x.shape
    return x[:, :, None].expand(rows, heads, groups, length, d).reshape(rows, heads * groups, length, d)


def _qkv(attn, x: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Rotated, normed (n, heads, d) queries and (n, kv_heads, d) keys and values of (n, hidden) ``x``."""
    from transformers.models.qwen3.modeling_qwen3 import apply_rotary_pos_emb

    d = attn.head_dim
    q = attn.q_norm(attn.q_proj(x).view(x.shape[0], -1, d))
    k = attn.k_norm(attn.k_proj(x).view(x.shape[0], -1, d))
    v = attn.v_proj(x).view(x.shape[0], -1, d)
    q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1)  # cos, sin: (n, d)
    return q, k, v


def _mlp_block(layer, h: Tensor) -> Tensor:
    return h + layer.mlp(layer.post_attention_layernorm(h))


def _rotary(policy, h: Tensor, positions: Tensor) -> tuple[Tensor, Tensor]:
    cos, sin = policy.model.rotary_emb(h, positions.unsqueeze(0))
    return cos[0], sin[0]


def hidden_states(policy, ids: Tensor, layout: Layout, keep_kv: bool = False) -> tuple[Tensor, list]:
    """(n, hidden) last-layer states (before the final norm) of the packed tokens ``ids`` (n,);
    with ``keep_kv`` also each layer's (rows, kv_heads, width, d) keys and values in ``layout``."""
    h = policy.model.embed_tokens(ids)
    cos, sin = _rotary(policy, h, layout.positions)
    cache = []
    for layer in policy.model.layers:
        attn = layer.self_attn
        q, k, v = _qkv(attn, layer.input_layernorm(h), cos, sin)
        keys, values = _attention_layout(k, layout), _attention_layout(v, layout)
        if keep_kv:
            cache.append((keys, values))
        out = torch.nn.functional.scaled_dot_product_attention(
            _attention_layout(q, layout),
            _repeat_kv(keys, attn.num_key_value_groups),
            _repeat_kv(values, attn.num_key_value_groups),
            attn_mask=layout.mask,
            scale=attn.scaling,
        )
        out = out.transpose(1, 2).reshape(layout.rows * layout.width, -1).index_select(0, layout.slots)
        h = _mlp_block(layer, h + attn.o_proj(out))
    return h, cache


def logits(policy, states: Tensor) -> Tensor:
    """(m, V) logits of (m, hidden) last-layer states."""
    return policy.lm_head(policy.model.norm(states))


def completion_logits(
    policy, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor, completion_mask: Tensor
) -> Tensor | None:
    """(m, V) logits predicting each real completion token, in row-major order of ``completion_mask``;
    None where packing does not apply (a completion mask that is not a prefix of its row, or a
    completion with no prompt token to condition on): the caller scores through the full forward.

    Shapes: prompt_ids, prompt_mask (N, P); completion_ids, completion_mask (N, T).
    """
    lengths = completion_mask.sum(-1)
    steps = torch.arange(completion_ids.shape[1], device=completion_ids.device)
    prompt_real = prompt_mask.bool()
    prompt_lengths = prompt_real.sum(-1)
    if not torch.equal(completion_mask.bool(), steps < lengths[:, None]) or bool(
        ((prompt_lengths == 0) & (lengths > 0)).any()
    ):
        return None
    # The inputs: each row's prompt and all but its last completion token (whose logits predict nothing).
    real = torch.cat([prompt_real & (lengths > 0)[:, None], steps < (lengths - 1)[:, None]], dim=1)
    layout = Layout.of(real)
    states, _ = hidden_states(policy, torch.cat([prompt_ids, completion_ids], dim=1)[real], layout)
    # Packed index of the state predicting completion token t of row b: start_b + prompt_b - 1 + t.
    starts = real.sum(-1).cumsum(0) - real.sum(-1)
    wanted = (starts + prompt_lengths - 1)[:, None] + steps
    return logits(policy, states.index_select(0, wanted[completion_mask.bool()]))


def scatter_rows(values: Tensor, mask: Tensor) -> Tensor:
    """(m,) values of the True entries of ``mask`` (N, T), row-major, as (N, T) with zeros elsewhere."""
    return values.new_zeros(mask.shape).masked_scatter(mask.bool(), values)


def _warp(scores: Tensor, temperature: float, top_p: float, nucleus) -> Tensor:
    """generate's warpers in its order: temperature, then top-p."""
    if temperature != 1.0:
        scores = scores / temperature
    if top_p < 1.0:
        scores = scores.masked_fill(~nucleus(scores, top_p), -math.inf)
    return scores


@torch.no_grad()
def sample(
    policy,
    prompt_ids: Tensor,
    prompt_mask: Tensor,
    group: int,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    temperature: float,
    top_p: float,
    nucleus,
) -> Tensor:
    """(B*G, T) new tokens, as ``generate(num_return_sequences=G, do_sample=temperature > 0)``
    returns them after the prompt: sampled from softmax(logits / T) within the top-p nucleus
    (``nucleus``: the caller's rule), greedy at temperature 0, ``pad_id`` after each row's EOS,
    T = the step at which the last row ended (at most ``max_new_tokens``).

    The B prompts are prefilled once and their cache repeated G times; rows that emitted EOS
    leave the batch. Draws from the global generator exactly as ``generate`` does.

    Shapes: prompt_ids, prompt_mask (B, P), left-padded.
    """
    real = prompt_mask.bool()
    layout = Layout.of(real)
    states, cache = hidden_states(policy, prompt_ids[real], layout, keep_kv=True)
    last = real.sum(-1).cumsum(0) - 1  # packed index of each prompt's last token
    n = prompt_ids.shape[0] * group
    cache = [(k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)) for k, v in cache]
    key_ok = real.repeat_interleave(group, 0)[:, None, None, :]  # (live, 1, 1, L): keys that may be attended
    positions = real.sum(-1).repeat_interleave(group, 0)  # next token's rotary position
    scores = logits(policy, states.index_select(0, last)).float().repeat_interleave(group, 0)
    live = torch.arange(n, device=prompt_ids.device)
    probs = None
    out = []
    for step in range(max_new_tokens):
        tokens = torch.full((n,), pad_id, dtype=torch.long, device=prompt_ids.device)
        if temperature > 0:
            if probs is None:
                probs = torch.zeros(n, scores.shape[-1], device=scores.device)
                probs[:, pad_id] = 1.0  # finished rows: any valid distribution, their draw is discarded
            probs.index_copy_(0, live, _warp(scores, temperature, top_p, nucleus).softmax(-1))
            tokens[live] = torch.multinomial(probs, 1).squeeze(1)[live]
        else:
            tokens[live] = scores.argmax(-1)
        out.append(tokens)
        going = tokens[live] != eos_id
        if step + 1 == max_new_tokens or not bool(going.any()):
            break
        if not bool(going.all()):
            live, positions, key_ok = live[going], positions[going], key_ok[going]
            cache = [(k[going], v[going]) for k, v in cache]
        scores, cache = _decode(policy, tokens[live], positions, cache, key_ok)
        positions = positions + 1
        key_ok = torch.cat([key_ok, key_ok.new_ones(len(live), 1, 1, 1)], dim=-1)
    return torch.stack(out, dim=1)


def _decode(policy, tokens: Tensor, positions: Tensor, cache: list, key_ok: Tensor) -> tuple[Tensor, list]:
    """One decoding step of the live rows: (live, V) float next-token logits and the grown cache."""
    h = policy.model.embed_tokens(tokens)
    cos, sin = _rotary(policy, h, positions)
    mask = torch.cat([key_ok, key_ok.new_ones(len(tokens), 1, 1, 1)], dim=-1)
    grown = []
    for layer, (keys, values) in zip(policy.model.layers, cache, strict=True):
        attn = layer.self_attn
        q, k, v = _qkv(attn, layer.input_layernorm(h), cos, sin)
        keys = torch.cat([keys, k.unsqueeze(2)], dim=2)
        values = torch.cat([values, v.unsqueeze(2)], dim=2)
        grown.append((keys, values))
        out = torch.nn.functional.scaled_dot_product_attention(
            q.unsqueeze(2),
            _repeat_kv(keys, attn.num_key_value_groups),
            _repeat_kv(values, attn.num_key_value_groups),
            attn_mask=mask,
            scale=attn.scaling,
        )
        h = _mlp_block(layer, h + attn.o_proj(out.reshape(len(tokens), -1)))
    return logits(policy, h).float(), grown
