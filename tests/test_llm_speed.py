"""The fast paths compute what the reference paths compute: packed scoring against the padded
forward pass, the KV-cached sampler against transformers' ``generate``, on the tiny Qwen3."""

import pytest
import torch

from geobench.llm import packed
from geobench.llm.model import completion_logprobs, load_policy
from geobench.llm.rollout import HFRollout, SamplingSettings
from geobench.llm.tasks import make_task
from geobench.llm.train import train_cell
from tests.conftest import tiny_llm_config

PROMPTS = ["1+1=", "23+345=", "7+8=", "1234+5="]  # ragged: left padding of 0-4 tokens


@pytest.fixture(scope="module")
def policy_and_tokenizer(tiny_model):
    torch.set_num_threads(1)
    return load_policy(tiny_model)


def _rollouts(policy, tokenizer, sampling: SamplingSettings, group: int, seed: int, packed_tokens: bool):
    return HFRollout(tokenizer, sampling, packed_tokens=packed_tokens).generate(policy, PROMPTS, group, seed)


@pytest.mark.parametrize(
    "sampling",
    [SamplingSettings(1.0, 1.0, 40), SamplingSettings(0.7, 0.9, 40), SamplingSettings(1.5, 0.5, 24)],
    ids=["plain", "t0.7-top0.9", "t1.5-top0.5"],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_the_fast_sampler_draws_generates_tokens(policy_and_tokenizer, sampling, seed):
    policy, tokenizer = policy_and_tokenizer
    reference = _rollouts(policy, tokenizer, sampling, 6, seed, packed_tokens=False)
    fast = _rollouts(policy, tokenizer, sampling, 6, seed, packed_tokens=True)
    assert torch.equal(fast.completion_ids, reference.completion_ids)
    assert torch.equal(fast.completion_mask, reference.completion_mask)
    assert fast.texts == reference.texts
    if sampling.top_p == 1.0:  # rows end at different steps, so the sampler drops rows mid-batch
        assert len(set(reference.lengths.tolist())) > 2


def test_the_fast_sampler_decodes_greedily_like_generate(policy_and_tokenizer):
    policy, tokenizer = policy_and_tokenizer
    sampling = SamplingSettings(0.0, 1.0, 30)
    reference = _rollouts(policy, tokenizer, sampling, 1, 0, packed_tokens=False)
    fast = _rollouts(policy, tokenizer, sampling, 1, 0, packed_tokens=True)
    assert torch.equal(fast.completion_ids, reference.completion_ids)


def _scored(policy, rolled, packed_tokens: bool, **sampling):
    return completion_logprobs(
        policy,
        rolled.prompt_ids,
        rolled.prompt_mask,
        rolled.completion_ids,
        rolled.completion_mask,
        with_entropy=True,
        packed_tokens=packed_tokens,
        **sampling,
    )


@pytest.mark.parametrize("sampling", [{}, {"temperature": 0.7, "top_p": 0.9}], ids=["plain", "t0.7-top0.9"])
def test_packed_scoring_equals_the_padded_forward_pass(policy_and_tokenizer, sampling):
    """Log-probs and entropies to 1e-5 (float32 round-off of the logits: attention blocks of
    other widths, sums over fewer tokens), parameter gradients to 1e-4 relative."""
    policy, tokenizer = policy_and_tokenizer
    rolled = _rollouts(policy, tokenizer, SamplingSettings(1.0, 1.0, 40), 6, 0, packed_tokens=True)
    rolled = rolled.mask_truncated()  # rows whose mask is all zero, as DAPO's overlong filter leaves them
    assert (rolled.lengths == 0).any() and (rolled.lengths > 0).any()
    grads = []
    for packed_tokens in (False, True):
        policy.zero_grad(set_to_none=True)
        logp, entropy = _scored(policy, rolled, packed_tokens, **sampling)
        logp.sum().backward()  # the entropy is a logged metric, never differentiated
        grads.append((logp.detach(), entropy.detach(), [p.grad.clone() for p in policy.parameters()]))
    (ref_logp, ref_entropy, ref_grads), (logp, entropy, fast_grads) = grads
    assert torch.allclose(logp, ref_logp, atol=1e-5, rtol=0)
    assert torch.allclose(entropy, ref_entropy, atol=1e-5, rtol=0)
    assert (logp[rolled.completion_mask == 0] == 0).all()
    for ref, fast in zip(ref_grads, fast_grads, strict=True):
        assert float((fast - ref).norm()) <= 1e-4 * float(ref.norm()) + 1e-12


def test_a_row_scores_the_same_in_any_batch(policy_and_tokenizer):
    """pi_old's pass over the whole batch and an update's pass over a mini-batch of its groups
    give each row the same log-probs bit for bit, so the first update's ratio is exactly 1."""
    policy, tokenizer = policy_and_tokenizer
    rolled = _rollouts(policy, tokenizer, SamplingSettings(1.0, 1.0, 40), 6, 0, packed_tokens=True)
    whole, _ = rolled.logprobs(policy)
    for rows in (torch.arange(6, 18), torch.tensor([18, 19, 20, 21, 22, 23, 0, 1, 2, 3, 4, 5])):
        part, _ = rolled.logprobs(policy, rows)
        assert torch.equal(part, whole[rows])


def test_a_mask_with_holes_or_no_token_is_scored_by_the_padded_pass(policy_and_tokenizer):
    """Packing needs each completion's mask to be a prefix and some token to score; else the padded pass."""
    policy, tokenizer = policy_and_tokenizer
    rolled = _rollouts(policy, tokenizer, SamplingSettings(1.0, 1.0, 12), 2, 0, packed_tokens=True)
    holes = rolled.completion_mask.clone()
    holes[:, 1] = 0
    args = (policy, rolled.prompt_ids, rolled.prompt_mask, rolled.completion_ids, holes)
    assert packed.completion_logits(*args) is None
    assert torch.equal(completion_logprobs(*args)[0], completion_logprobs(*args, packed_tokens=False)[0])
    empty = (policy, rolled.prompt_ids, rolled.prompt_mask, rolled.completion_ids, holes * 0)
    assert packed.completion_logits(*empty) is None  # nothing to score: the padded pass keeps the graph
    assert completion_logprobs(*empty)[0].requires_grad


def test_only_full_attention_qwen3_takes_the_packed_path(policy_and_tokenizer):
    policy, _ = policy_and_tokenizer
    assert packed.supports(policy)
    policy.gradient_checkpointing_enable()
    try:
        assert not packed.supports(policy)
    finally:
        policy.gradient_checkpointing_disable()
    assert not packed.supports(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("algo", ["grpo", "adpo"])  # adpo: pi_old's separate pass and an adaptive tau
def test_a_training_step_logs_the_same_metrics_on_both_paths(tiny_model, monkeypatch, algo):
    """One RL step of the tiny run: the rollout metrics are equal (the same tokens), the update's
    to 1e-4 relative (round-off of the forward and backward passes), the first update exactly
    on-policy on both paths."""
    # shaped rewards: the random model is never right, but its wrong answers' lengths differ
    config = tiny_llm_config(
        tiny_model, steps=1, max_new_tokens=12, prompts_per_step=4, group=4, epochs=2, reward="shaped"
    )
    runs = {}
    for path in ("reference", "packed"):
        if path == "reference":
            monkeypatch.setattr(packed, "supports", lambda policy: False)
        else:
            monkeypatch.undo()
        policy, tokenizer = load_policy(tiny_model)
        rollout = HFRollout(tokenizer, config.sampling())
        rows = train_cell(policy, tokenizer, make_task(config.dataset, config.levels), rollout, algo, 0, config)
        runs[path] = {(r["step"], r["metric"]): r["value"] for r in rows if r["metric"] != "update_time_s"}
    reference, fast = runs["reference"], runs["packed"]
    assert reference.keys() == fast.keys()
    rollout_metrics = {"reward_mean", "accuracy", "completion_length", "completion_length_std", "truncated_frac"}
    for key, value in reference.items():
        if key[1] == "rollout_tokens_per_s":
            continue
        if key[1] in rollout_metrics or key[1] in {"heldout_accuracy", "ratio_one_frac"}:
            assert fast[key] == value, key
        else:
            assert fast[key] == pytest.approx(value, rel=1e-4, abs=1e-6, nan_ok=True), key
    assert fast[(1, "ratio_one_frac")] > 0  # the first update's ratio is exactly 1
    assert fast[(1, "grad_norm")] > 0 and fast[(1, "reward_levels")] > 1  # a real update was compared
