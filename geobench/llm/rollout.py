"""Rollout backends: sampling on the training model (``hf``: transformers' ``generate``, or for a
Qwen3 the same draws from :func:`geobench.llm.packed.sample`) and a colocated vLLM engine (GPU extra).

Both return the same :class:`Rollouts`; neither returns log-probs the loss uses, since the
trainer recomputes every per-token log-prob itself (sampler and trainer numerics differ,
and the on-policy ratio must be exactly 1 at the first update: on the quick profile's warm
start the sampler's log-probs of its own tokens are up to 1.2e-5 off the trainer's, a cached
KV decode against a whole-sequence pass, so reusing them as pi_old would leave that ratio off
1 by as much, to save one no-grad pass, ~5 % of a step). The rollouts carry their
:class:`SamplingSettings`, so that recomputation uses the sampler's distribution
(logits / T, top-p nucleus renormalised).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass

import torch
from torch import Tensor

from geobench.errors import ConfigError
from geobench.llm import packed
from geobench.llm.model import completion_logprobs, nucleus

BACKENDS = ("hf", "vllm")


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding settings; ``temperature`` 0 means greedy."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 8


@dataclass(frozen=True)
class Rollouts:
    """G completions for each of B prompts, flattened prompt-major (row = b * G + g).

    Attributes:
        prompt_ids, prompt_mask: (B*G, P) left-padded prompts.
        completion_ids, completion_mask: (B*G, T) right-padded completions; the mask covers
            the tokens up to and including the first EOS.
        texts: B*G decoded completions (special tokens dropped).
        truncated: (B*G,) bool, no EOS within ``max_new_tokens``.
        seconds: wall time of generation.
        sampling: the decoding settings the completions were drawn with; :meth:`logprobs`
            scores under the same temperature and top-p (None: the raw distribution).
    """

    prompt_ids: Tensor
    prompt_mask: Tensor
    completion_ids: Tensor
    completion_mask: Tensor
    texts: list[str]
    truncated: Tensor
    seconds: float
    sampling: SamplingSettings | None = None

    @property
    def lengths(self) -> Tensor:
        """(B*G,) completion lengths in tokens."""
        return self.completion_mask.sum(-1)

    @property
    def tokens_per_s(self) -> float:
        return float(self.lengths.sum()) / max(self.seconds, 1e-9)

    def to(self, device: torch.device | str) -> Rollouts:
        return Rollouts(
            self.prompt_ids.to(device),
            self.prompt_mask.to(device),
            self.completion_ids.to(device),
            self.completion_mask.to(device),
            self.texts,
            self.truncated,
            self.seconds,
            self.sampling,
        )

    def logprobs(self, policy, rows: Tensor | None = None, with_entropy: bool = False) -> tuple[Tensor, Tensor | None]:
        """(M, T) per-token log-probs (and entropies) of the completions at ``rows`` (all by default)
        under ``policy``: :func:`geobench.llm.model.completion_logprobs` on this batch, with the
        temperature and top-p they were sampled with (pi_old is the sampler's distribution)."""
        pick = slice(None) if rows is None else rows
        sampling = self.sampling or SamplingSettings()
        return completion_logprobs(
            policy,
            self.prompt_ids[pick],
            self.prompt_mask[pick],
            self.completion_ids[pick],
            self.completion_mask[pick],
            with_entropy=with_entropy,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
        )

    def select(self, rows: Tensor) -> Rollouts:
        """The rollouts at ``rows`` (a (M,) index), e.g. the groups DAPO keeps."""
        return Rollouts(
            self.prompt_ids[rows],
            self.prompt_mask[rows],
            self.completion_ids[rows],
            self.completion_mask[rows],
            [self.texts[i] for i in rows.tolist()],
            self.truncated[rows.cpu()],
            self.seconds,
            self.sampling,
        )

    def mask_truncated(self) -> Rollouts:
        """The same rollouts with the truncated completions' masks zeroed: they leave the loss.

        DAPO's Overlong Filtering (Yu et al. 2025, Sec. 3.4): "we first apply an overlong
        filtering strategy which masks the loss of truncated samples." Their rewards still
        count in their group's advantage; only their tokens carry no loss and no gradient.
        """
        keep = (~self.truncated).to(self.completion_mask.device, self.completion_mask.dtype).unsqueeze(-1)
        return dataclasses.replace(self, completion_mask=self.completion_mask * keep)


def completion_mask(completion_ids: Tensor, eos_id: int) -> tuple[Tensor, Tensor]:
    """(N, T) mask up to and including the first EOS, and (N,) bool "no EOS" (truncated)."""
    is_eos = completion_ids == eos_id
    after_eos = (is_eos.cumsum(-1) - is_eos.long()) > 0
    return (~after_eos).long(), ~is_eos.any(-1)


def _pad_right(rows: list[list[int]], pad_id: int) -> Tensor:
    width = max(1, max(len(r) for r in rows))
    return torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], dtype=torch.long)


def _assemble(
    tokenizer, prompts: list[str], group: int, completions: list[list[int]], seconds: float, sampling: SamplingSettings
) -> Rollouts:
    encoded = tokenizer(prompts, return_tensors="pt", padding=True)
    ids = encoded["input_ids"].repeat_interleave(group, dim=0)
    mask = encoded["attention_mask"].repeat_interleave(group, dim=0)
    completion_ids = _pad_right(completions, tokenizer.pad_token_id)
    c_mask, truncated = completion_mask(completion_ids, tokenizer.eos_token_id)
    completion_ids = completion_ids.masked_fill(c_mask == 0, tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(completion_ids * c_mask, skip_special_tokens=True)
    return Rollouts(ids, mask, completion_ids, c_mask, texts, truncated, seconds, sampling)


class HFRollout:
    """Sampling on the training model itself: transformers' ``generate``, or for a Qwen3 policy
    (``packed_tokens``) :func:`geobench.llm.packed.sample`, the same draws without generate's
    per-token overhead and without computing the rows that have ended."""

    name = "hf"

    def __init__(self, tokenizer, sampling: SamplingSettings, packed_tokens: bool = True):
        self.tokenizer = tokenizer
        self.sampling = sampling
        self.packed_tokens = packed_tokens

    def sync(self, policy) -> None:
        """Nothing to do: generation uses the live training weights."""

    @torch.no_grad()
    def generate(self, policy, prompts: list[str], group: int, seed: int) -> Rollouts:
        tok, s = self.tokenizer, self.sampling
        encoded = tok(prompts, return_tensors="pt", padding=True).to(policy.device)
        torch.manual_seed(seed)  # both samplers draw from the global generator
        start = time.perf_counter()
        was_training = policy.training
        policy.eval()
        if self.packed_tokens and packed.supports(policy):
            new = packed.sample(
                policy,
                encoded["input_ids"],
                encoded["attention_mask"],
                group,
                s.max_new_tokens,
                tok.eos_token_id,
                tok.pad_token_id,
                s.temperature,
                s.top_p,
                nucleus,
            )
        else:
            new = self._generate(policy, encoded, group)
        policy.train(was_training)
        seconds = time.perf_counter() - start
        return _assemble(tok, prompts, group, new.cpu().tolist(), seconds, s)

    def _generate(self, policy, encoded, group: int) -> Tensor:
        """(B*G, T) new tokens from transformers' ``generate``."""
        tok, s = self.tokenizer, self.sampling
        # temperature 0 means greedy decoding (held-out evaluation); otherwise plain sampling
        decoding = (
            {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p, "top_k": 0}
            if s.temperature > 0
            else {"do_sample": False}
        )
        out = policy.generate(
            **encoded,
            **decoding,
            max_new_tokens=s.max_new_tokens,
            num_return_sequences=group,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
        return out[:, encoded["input_ids"].shape[1] :]


def require_vllm():
    """The vllm module, or a one-line error saying how to get it."""
    try:
        import vllm
    except ImportError:
        raise ConfigError(
            "--rollout vllm needs vLLM on a CUDA machine: pip install 'geobench[vllm]'; use --rollout hf otherwise"
        ) from None
    return vllm


class VLLMRollout:
    """A colocated vLLM engine (``pip install geobench[vllm]``, GPU only).

    The engine runs in the trainer's process (V1 multiprocessing off) so that ``sync``
    can load the trainer's weights straight into the engine's model after every update,
    the colocated mode TRL and verl's hybrid engine use. Single GPU, tensor parallel 1.
    """

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, sampling: SamplingSettings, gpu_memory_utilization: float = 0.3):
        vllm = require_vllm()
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.vllm = vllm
        self.tokenizer = tokenizer
        self.sampling = sampling
        self.llm = vllm.LLM(
            model=model_path,
            gpu_memory_utilization=gpu_memory_utilization,
            enable_prefix_caching=True,
            tensor_parallel_size=1,
        )

    def sync(self, policy) -> None:
        """Copy the trainer's weights into the engine (names match: both are HF checkpoints)."""
        engine_model = self.llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
        engine_model.load_weights((name, p.detach()) for name, p in policy.state_dict().items())
        self.llm.reset_prefix_cache()

    def generate(self, policy, prompts: list[str], group: int, seed: int) -> Rollouts:
        s = self.sampling
        params = self.vllm.SamplingParams(
            n=group, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens, seed=seed
        )
        start = time.perf_counter()
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        eos = self.tokenizer.eos_token_id
        completions = [
            list(c.token_ids) + ([eos] if c.finish_reason == "stop" and eos not in c.token_ids else [])
            for out in outputs
            for c in out.outputs
        ]
        return _assemble(self.tokenizer, prompts, group, completions, seconds, s)


def make_rollout(backend: str, model_path: str, tokenizer, sampling: SamplingSettings):
    if backend == "hf":
        return HFRollout(tokenizer, sampling)
    if backend == "vllm":
        return VLLMRollout(model_path, tokenizer, sampling)
    raise ConfigError(f"unknown rollout backend {backend!r}; valid: {', '.join(BACKENDS)}")
