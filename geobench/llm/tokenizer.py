"""The project's character tokenizer: the tiny Qwen3's and the random paper architectures' (below both)."""

from __future__ import annotations

import string

SPECIAL_TOKENS = ("<pad>", "<eos>", "<unk>")


def char_tokenizer():
    """A character-level fast tokenizer over printable ASCII, saved and loaded like any other.

    One token per character keeps the arithmetic task's answers a few tokens long and lets
    the same tokenizer read MATH text in tests. Left padding, as generation needs.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [c for c in string.printable if c not in "\t\r\x0b\x0c"]
    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *chars])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>", padding_side="left"
    )
