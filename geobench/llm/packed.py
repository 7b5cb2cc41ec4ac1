"""Qwen3 without the padding: completions scored on packed tokens, and KV-cached sampling.

A rollout batch is about half padding (left-padded prompts, right-padded completions of
ragged length: 46-60 % of the quick profile's tokens are real), and each prompt is repeated
for its G completions. Every op of a Qwen3 decoder layer except attention acts on each token
alone, so here those ops (the model's own norm, projection, MLP and rotary modules) run on
the (n, hidden) real tokens only, each distinct prompt once; attention runs through SDPA, as
transformers' ``sdpa`` path does, on blocks of rows cut to a width class (:data:`WIDTH_STEP`),
with only the completion columns as queries. The same math as transformers' padded forward
pass: log-probs agree to float32 round-off of the logits (~3e-6 on the quick profile's warm
start, tested to 1e-5), gradients to ~3e-6 relative. A row's numbers do not depend on the
other rows of its batch, so pi_old's no-grad pass and the first update's forward pass agree
bit for bit (the first update is exactly on-policy, as before).

:func:`sample` is ``generate``'s multinomial sampling with a KV cache and no per-token
framework overhead; rows that emitted EOS leave the batch (the cache is compacted). It keeps
``generate``'s random stream: ``torch.multinomial`` with one sample is the argmax of p / q
with q ~ Exp(1) drawn for every (row, token) of the batch, so the draws stay (N, V) wide
and each row's token depends on its own probabilities only. Its logits are the padded
forward's bit for bit (prefill and decoding see transformers' layout), so it draws the same
tokens as ``generate`` for a seed (tested).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


def supports(policy) -> bool:
    """Whether ``policy`` is a transformers Qwen3 whose forward pass this module restates: full
    attention only, no gradient checkpointing, no attention dropout while training."""
    config = getattr(policy, "config", None)
    if getattr(config, "model_type", None) != "qwen3" or not hasattr(policy, "model"):
        return False
    full = all(kind == "full_attention" for kind in getattr(config, "layer_types", None) or ["full_attention"])
    full = full and not getattr(config, "use_sliding_window", False)
    dropout = policy.training and config.attention_dropout > 0
    # transformers flags every checkpointed layer (PreTrainedModel.is_gradient_checkpointing walks all modules)
    checkpointing = any(getattr(m, "gradient_checkpointing", False) for m in (policy.model, *policy.model.layers))
    return full and not checkpointing and not dropout


# Completion rows are cut to a width class: the prompt columns and their completion's rounded
# up to a multiple of this (capped at the batch's width). A row's class depends on its own
# length only, so it gets the same numbers in any batch (pi_old's pass and the first update
# agree exactly); attention costs about half of one padded (rows, width) block.
WIDTH_STEP = 16


@dataclass(frozen=True)
class Block:
    """Rows of one width in the attention layout, whose queries are the columns from ``first_query`` on.

    Attributes:
        sources: (rows * width,) the packed token in each slot, n for an empty one (the zero
            row appended to the packed tokens). A token may fill several slots: a prompt shared
            by the G rows of a group is packed once.
        mask: (rows, 1, width - first_query, width) bool, True where a query may attend a key:
            causal over the row's real tokens; an empty slot attends itself only, so no softmax
            row is empty.
    """

    rows: int
    width: int
    first_query: int
    sources: Tensor
    mask: Tensor

    @staticmethod
    def of(real: Tensor, sources: Tensor, first_query: int = 0) -> Block:
        """The block of ``real`` ((rows, width) bool: the slots holding a token) filled from ``sources``."""
        rows, width = real.shape
        col = torch.arange(width, device=real.device)
        causal = col[None, :] <= col[:, None]  # (width q, width k)
        mask = (causal & real[:, None, :]) | torch.eye(width, dtype=torch.bool, device=real.device)
        return Block(rows, width, first_query, sources.flatten(), mask[:, first_query:].unsqueeze(1))

    @property
    def outputs(self) -> int:
        """Query slots, numbered row-major over (rows, width - first_query)."""
        return self.rows * (self.width - self.first_query)

    def keys(self, x: Tensor) -> Tensor:
        """(n + 1, heads, d) packed tokens and the zero row -> (rows, heads, width, d)."""
        heads, d = x.shape[1:]
        return x.index_select(0, self.sources).view(self.rows, self.width, heads, d).transpose(1, 2)

    def queries(self, x: Tensor) -> Tensor:
        """(n + 1, heads, d) -> (rows, heads, width - first_query, d)."""
        return self.keys(x)[:, :, self.first_query :]


@dataclass(frozen=True)
class Layout:
    """How n packed tokens fill the attention blocks, and are read back from them.

    Attributes:
        blocks: the attention blocks; their query slots, concatenated, are numbered from 0.
        reads: (n,) the query slot each token's attention output is read from.
        positions: (n,) each token's rotary position (its rank among its row's real tokens).
    """

    blocks: tuple[Block, ...]
    reads: Tensor
    positions: Tensor

    @staticmethod
    def of(real: Tensor) -> Layout:
        """One block of ``real`` ((rows, width) bool), each real slot its own token, packed row-major."""
        slots = torch.arange(real.numel(), device=real.device).view(real.shape)[real]
        sources = torch.full((real.numel(),), len(slots), dtype=torch.long, device=real.device)
        sources[slots] = torch.arange(len(slots), device=real.device)
        return Layout((Block.of(real, sources),), slots, (real.cumsum(-1) - 1)[real])


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
    with ``keep_kv`` also each layer's (rows, kv_heads, width, d) keys and values (one block)."""
    if keep_kv and len(layout.blocks) != 1:
        raise ValueError("a KV cache is kept for a one-block layout only")
    h = policy.model.embed_tokens(ids)
    cos, sin = _rotary(policy, h, layout.positions)
    cache = []
    for layer in policy.model.layers:
        attn = layer.self_attn
        q, k, v = (torch.cat([x, x.new_zeros(1, *x.shape[1:])]) for x in _qkv(attn, layer.input_layernorm(h), cos, sin))
        outs = []
        for block in layout.blocks:
            keys, values = block.keys(k), block.keys(v)
            if keep_kv:
                cache.append((keys, values))
            out = torch.nn.functional.scaled_dot_product_attention(
                block.queries(q),
                _repeat_kv(keys, attn.num_key_value_groups),
                _repeat_kv(values, attn.num_key_value_groups),
                attn_mask=block.mask,
                scale=attn.scaling,
            )
            outs.append(out.transpose(1, 2).reshape(block.outputs, -1))
        h = _mlp_block(layer, h + attn.o_proj(torch.cat(outs).index_select(0, layout.reads)))
    return h, cache


def logits(policy, states: Tensor) -> Tensor:
    """(m, V) logits of (m, hidden) last-layer states."""
    return policy.lm_head(policy.model.norm(states))


def completion_logits(
    policy, prompt_ids: Tensor, prompt_mask: Tensor, completion_ids: Tensor, completion_mask: Tensor
) -> Tensor | None:
    """(m, V) logits predicting each real completion token, in row-major order of ``completion_mask``;
    None where packing does not apply (no completion token at all, a completion mask that is not a
    prefix of its row, or a completion with no prompt token to condition on): the caller scores
    through the padded forward pass.

    Each distinct prompt is packed once (a group's G completions share it; causal attention
    gives its tokens the same states in every row), each completion without its last token
    (whose logits predict nothing); rows with an empty mask are left out.

    Shapes: prompt_ids, prompt_mask (N, P); completion_ids, completion_mask (N, T).
    """
    c_mask = completion_mask.bool()
    lengths = c_mask.sum(-1)
    steps = torch.arange(completion_ids.shape[1], device=completion_ids.device)
    active = lengths > 0
    p_real = prompt_mask.bool()[active]
    if not bool(active.any()) or not torch.equal(c_mask, steps < lengths[:, None]) or not bool(p_real.any(-1).all()):
        return None  # (no real token at all: the padded pass keeps the loss attached to the graph)
    lengths, c_ids = lengths[active], completion_ids[active]
    rows, (p_width, t_width) = len(lengths), (p_real.shape[1], c_ids.shape[1])
    # The distinct prompts (U, P): ids with -1 at padding; inverse (rows,) maps each row to its prompt.
    prompts, inverse = torch.unique(torch.where(p_real, prompt_ids[active], -1), dim=0, return_inverse=True)
    u_real = prompts >= 0
    c_real = steps < (lengths - 1)[:, None]  # (rows, T): the completion tokens that are inputs
    n_prompt = int(u_real.sum())
    n = n_prompt + int(c_real.sum())
    # Packed index of each prompt slot (U, P) and completion slot (rows, T); n where empty.
    p_index = torch.full(prompts.shape, n, dtype=torch.long, device=prompts.device)
    p_index[u_real] = torch.arange(n_prompt, device=prompts.device)
    c_index = torch.full(c_ids.shape, n, dtype=torch.long, device=c_ids.device)
    c_index[c_real] = torch.arange(n_prompt, n, device=c_ids.device)
    # One block of the distinct prompts, whose tokens' outputs are read there; then the rows in
    # width classes, with the completion columns as queries.
    blocks = [Block.of(u_real, p_index)]
    prompt_reads = torch.arange(u_real.numel(), device=u_real.device).view(u_real.shape)[u_real]
    real = torch.cat([p_real, c_real], dim=1)  # (rows, P + T)
    sources = torch.cat([p_index[inverse], c_index], dim=1)
    step = WIDTH_STEP
    widths = p_width + ((lengths - 1 + step - 1) // step * step).clamp(max=t_width)
    starts = torch.zeros(rows, dtype=torch.long, device=c_ids.device)  # each row's first query slot
    offset = blocks[0].outputs
    for width in torch.unique(widths).tolist():
        if width == p_width:  # one-token completions: predicted by their prompt's last token alone
            continue
        members = (widths == width).nonzero().squeeze(-1)
        blocks.append(Block.of(real[members, :width], sources[members, :width], first_query=p_width))
        starts[members] = offset + torch.arange(len(members), device=c_ids.device) * (width - p_width)
        offset += blocks[-1].outputs
    completion_reads = (starts[:, None] + steps)[c_real]
    p_lengths = u_real.sum(-1)
    layout = Layout(
        tuple(blocks),
        reads=torch.cat([prompt_reads, completion_reads]),
        positions=torch.cat([(u_real.cumsum(-1) - 1)[u_real], (p_lengths[inverse][:, None] + steps)[c_real]]),
    )
    ids = torch.cat([prompts[u_real], c_ids[c_real]])
    states, _ = hidden_states(policy, ids, layout)
    # Token t of a row is predicted by its prompt's last token (t = 0) or by its own token t - 1.
    last_prompt = p_index.masked_fill(~u_real, -1).amax(-1)
    wanted = torch.cat([last_prompt[inverse][:, None], c_index[:, :-1]], dim=1)
    return logits(policy, states.index_select(0, wanted[c_mask[active]]))


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
    # The cache holds each layer's keys and values repeated over the query heads (what SDPA is
    # given), and the mask is additive (what SDPA turns a bool mask into): no copy per step.
    groups = [layer.self_attn.num_key_value_groups for layer in policy.model.layers]
    cache = [
        tuple(_repeat_kv(x, r).repeat_interleave(group, 0) for x in kv) for kv, r in zip(cache, groups, strict=True)
    ]
    bias = torch.zeros(real.shape, dtype=cache[0][0].dtype, device=real.device).masked_fill(~real, -math.inf)
    bias = bias.repeat_interleave(group, 0)[:, None, None, :]  # (live, 1, 1, L)
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
            live, positions, bias = live[going], positions[going], bias[going]
            cache = [(k[going], v[going]) for k, v in cache]
        bias = torch.cat([bias, bias.new_zeros(len(live), 1, 1, 1)], dim=-1)  # the new token's key
        scores, cache = _decode(policy, tokens[live], positions, cache, bias)
        positions = positions + 1
    return torch.stack(out, dim=1)


def _decode(policy, tokens: Tensor, positions: Tensor, cache: list, bias: Tensor) -> tuple[Tensor, list]:
    """One decoding step of the live rows: (live, V) float next-token logits and the grown cache;
    ``bias`` (live, 1, 1, L + 1) is the additive attention mask over the cache and the new token."""
    h = policy.model.embed_tokens(tokens)
    cos, sin = _rotary(policy, h, positions)
    grown = []
    for layer, (keys, values) in zip(policy.model.layers, cache, strict=True):
        attn = layer.self_attn
        q, k, v = _qkv(attn, layer.input_layernorm(h), cos, sin)
        keys = torch.cat([keys, _repeat_kv(k.unsqueeze(2), attn.num_key_value_groups)], dim=2)
        values = torch.cat([values, _repeat_kv(v.unsqueeze(2), attn.num_key_value_groups)], dim=2)
        grown.append((keys, values))
        out = torch.nn.functional.scaled_dot_product_attention(
            q.unsqueeze(2), keys, values, attn_mask=bias, scale=attn.scaling
        )
        h = _mlp_block(layer, h + attn.o_proj(out.reshape(len(tokens), -1)))
    return logits(policy, h).float(), grown
