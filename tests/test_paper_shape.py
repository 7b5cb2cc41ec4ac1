"""The paper's architecture with random weights, and the paper-shape benchmark at a CPU scale."""

import sys
from pathlib import Path

import pandas as pd
import pytest

from geobench.errors import ConfigError
from geobench.llm.paper_shapes import random_config

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_random_qwen3_has_the_published_size_without_a_download():
    import torch
    from transformers import Qwen3ForCausalLM

    config = random_config("random:qwen3-1.7b")
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (2048, 28, 151936)
    with torch.device("meta"):
        parameters = sum(p.numel() for p in Qwen3ForCausalLM(config).parameters())
    assert 1.70e9 < parameters < 1.74e9  # Qwen3-1.7B: 1.7B with tied embeddings


@pytest.mark.parametrize(
    "model, message",
    [("random:llama-9b", "unknown random model 'llama-9b'"), ("random:qwen3-1.7b/x", "must be a positive integer")],
)
def test_bad_random_models_are_config_errors(model, message):
    with pytest.raises(ConfigError, match=message):
        random_config(model)


def test_paper_shape_benchmark_runs_two_steps_per_algorithm_at_a_cpu_scale(tmp_path, monkeypatch):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import _bench
        import llm_paper_shape
    finally:
        sys.path.remove(str(BENCHMARKS))
    monkeypatch.setattr(_bench, "RESULTS", tmp_path)
    llm_paper_shape.main(["--scale", "16", "--prompts", "2", "--group", "2", "--tokens", "4", "--name", "t"])
    frame = pd.read_csv(tmp_path / "llm_paper_shape_t.csv")
    assert list(frame["algorithm"]) == ["grpo", "gspo", "dapo", "opo", "adpo"]
    assert (frame["peak_memory_gb"] > 0).all() and (frame["step_s"] > 0).all()
    assert (frame["mean_completion_tokens"] <= 4).all()
