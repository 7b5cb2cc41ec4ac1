"""Loss aggregation over a (B, G, T) token-loss tensor: the one function every objective uses.

The modes follow verl's ``agg_loss`` so that a loss computed here and one computed there
agree for the same mode:

- ``token-mean``: sum of all token losses / number of real tokens (DAPO's token-level
  policy gradient).
- ``seq-mean-token-mean``: mean over tokens inside each sequence, then mean over the
  sequences that have at least one token (the original GRPO, GSPO Eq. 29).
- ``seq-mean-token-sum``: sum over tokens inside each sequence, then mean over sequences.
- ``seq-mean-token-sum-norm``: ``seq-mean-token-sum`` divided by a constant horizon,
  defaulting to T (Dr. GRPO's length-unbiased form).

In every sequence-level mode, sequences without tokens are left out of the mean.

Under gradient accumulation a micro-batch is a slice of a mini-batch; :class:`Totals` carries
the mini-batch's counts so that each micro-batch's loss is its *share* of the mini-batch loss
(its sum over the mini-batch's count) and the micro-batch losses add up to exactly the loss
of one whole-mini-batch pass, whatever the split and however ragged the lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from geobench.errors import ConfigError

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def masked_mean(values: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Mean of ``values`` where ``mask`` is 1; 0 where the mask is empty."""
    mask = mask.to(values.dtype)
    total = (values * mask).sum() if dim is None else (values * mask).sum(dim)
    count = mask.sum() if dim is None else mask.sum(dim)
    return total / count.clamp(min=1.0)


@dataclass(frozen=True)
class Totals:
    """Counts over the whole mini-batch that a (B, G, T) micro-batch is a slice of.

    Attributes:
        tokens: real tokens (the divisor of ``token-mean``).
        sequences: sequences with at least one token (the ``seq-mean-*`` modes).
        candidates: B * G sequences (OPO's 1/N, Algorithm 1 line 7).
        contexts: B prompts (ADPO's 1/B, Eq. 32).
    """

    tokens: float
    sequences: float
    candidates: float
    contexts: float

    @classmethod
    def of(cls, mask: Tensor) -> Totals:
        """The counts of a (B, G, T) mask."""
        return cls(
            tokens=float(mask.sum()),
            sequences=float((mask.sum(-1) > 0).sum()),
            candidates=float(mask.shape[0] * mask.shape[1]),
            contexts=float(mask.shape[0]),
        )


def share_mean(values: Tensor, total: float | None) -> Tensor:
    """sum(values) / total: a slice's share of a mean over ``total`` items; the plain mean if None."""
    return values.mean() if total is None else values.sum() / max(total, 1.0)


def check_agg_mode(mode: str) -> None:
    if mode not in AGG_MODES:
        raise ConfigError(f"unknown aggregation mode {mode!r}; valid modes: {', '.join(AGG_MODES)}")


def aggregate(
    loss: Tensor, mask: Tensor, mode: str = "token-mean", horizon: int | None = None, totals: Totals | None = None
) -> Tensor:
    """Reduce per-token losses to a scalar.

    Args:
        loss: (..., T) per-token losses; leading dims are flattened into sequences
            (typically (B, G, T)).
        mask: same shape as ``loss``; 1 for real tokens.
        mode: one of :data:`AGG_MODES`.
        horizon: the constant divisor of ``seq-mean-token-sum-norm``; defaults to T.
        totals: the counts of the mini-batch this is a slice of; None = this batch is whole.

    Returns:
        A 0-dim tensor.
    """
    check_agg_mode(mode)
    mask = mask.to(loss.dtype)
    if mode == "token-mean":
        return masked_mean(loss, mask) if totals is None else (loss * mask).sum() / max(totals.tokens, 1.0)
    seq_tokens = mask.sum(-1)  # (...,)
    seq_sum = (loss * mask).sum(-1)
    has_tokens = (seq_tokens > 0).to(loss.dtype)
    if mode == "seq-mean-token-mean":
        seq_sum = seq_sum / seq_tokens.clamp(min=1.0)
    if totals is None:
        seq_mean = masked_mean(seq_sum, has_tokens)
    else:
        seq_mean = (seq_sum * has_tokens).sum() / max(totals.sequences, 1.0)
    return seq_mean / (horizon or loss.shape[-1]) if mode == "seq-mean-token-sum-norm" else seq_mean
