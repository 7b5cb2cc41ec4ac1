"""The one prompt every LLM path sends: the problem text as is, or inside the tokenizer's chat template.

The geobench loop (rollouts and held-out evaluation) and the TRL engine both take their prompts from
:func:`prompt_text`, so a policy sees the same token ids on either path (tested). Qwen3-1.7B, the
papers' model, is a chat model: the paper profiles use ``"chat"``; the quick profile's tiny Qwen3 was
warm-started on raw ``"457+386="`` prompts and its character tokenizer has no chat template, so
``"chat"`` with it is one line (:func:`check_format`).
"""

from __future__ import annotations

import dataclasses

from geobench.errors import ConfigError

PROMPT_FORMATS = ("raw", "chat")

# Qwen3-1.7B's chat template (its tokenizer_config.json) rendered for what the loop sends, one user
# message and the generation prompt, including its enable_thinking switch: with thinking off it
# opens an empty <think></think> block. The random paper architectures carry it
# (geobench.llm.paper_shapes), so --model random:qwen3-1.7b takes the prompt Qwen3 takes, as characters.
QWEN3_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


def prompt_text(tokenizer, text: str, prompt_format: str, enable_thinking: bool) -> str:
    """The string a path tokenizes for the problem ``text``: itself ("raw") or its chat rendering ("chat").

    "chat" is one user turn with the generation prompt; ``enable_thinking`` is handed to the template
    (Qwen3's switch; templates without one ignore it). Tokenized without added special tokens this is
    exactly ``apply_chat_template(..., tokenize=True)``'s ids.
    """
    if prompt_format == "raw":
        return text
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=enable_thinking,
    )


def check_format(tokenizer, prompt_format: str, model: str) -> None:
    """One line when ``prompt_format`` is "chat" and the model's tokenizer has no chat template."""
    if prompt_format == "chat" and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"prompt_format = 'chat' needs a chat template, and {model or 'the tiny warm-started Qwen3'}'s "
            "tokenizer has none; set prompt_format = 'raw' or use a chat model"
        )


def prompted(problems: list, tokenizer, prompt_format: str, enable_thinking: bool) -> list:
    """The problems with each prompt replaced by :func:`prompt_text`'s (the same objects under "raw")."""
    if prompt_format == "raw":
        return list(problems)
    return [
        dataclasses.replace(p, prompt=prompt_text(tokenizer, p.prompt, prompt_format, enable_thinking))
        for p in problems
    ]
