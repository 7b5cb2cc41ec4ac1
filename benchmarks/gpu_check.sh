#!/usr/bin/env bash
# Issue 25's device check: two RL steps per algorithm (grpo, gspo, dapo, opo, adpo) at the paper's batch
# shape (32 prompts x 6 completions x up to 1,280 tokens, random Qwen3-1.7B, bf16, HF rollouts) on one GPU,
# step time and peak memory to benchmarks/results/gpu_check.csv. Bounded at 570 s so that it fits a
# 10-minute slot; the CSV keeps every algorithm finished before the bound.
#   bash benchmarks/gpu_check.sh            # from the repository root, in the project's environment
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" timeout "${GPU_CHECK_SECONDS:-570}" \
  "$PYTHON" benchmarks/gpu_check.py "$@" || echo "gpu_check: stopped (status $?); the CSV has the algorithms finished"
cat benchmarks/results/gpu_check*.csv 2>/dev/null || true
