"""Small shared building blocks: seeded generators and MLPs stacked over independent seeds.

Seeds of one experiment cell train as one computation: every weight carries a leading
seed axis S and the forward pass is a batched matmul, so S seeds cost about one.
"""

from __future__ import annotations

import hashlib
import math

import torch
from torch import Tensor


def generator(*keys: object) -> torch.Generator:
    """A CPU generator seeded from any keys (e.g. ("bandits", scenario, level, seed)).

    The seed is a hash of the keys' text, so streams are independent across keys and the
    same keys always give the same numbers, whatever else runs.
    """
    digest = hashlib.sha256("/".join(map(str, keys)).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def init_mlp(sizes: list[int], seeds: list[torch.Generator], dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Stacked MLP parameters, one model per generator, PyTorch's default Linear init.

    Layer l has weight ``w{l}``: (S, in, out) and bias ``b{l}``: (S, 1, out), drawn
    U(-1/sqrt(in), 1/sqrt(in)) like ``nn.Linear``.
    """
    params: dict[str, list[Tensor]] = {}
    for gen in seeds:
        for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand(fan_in, fan_out, generator=gen, dtype=dtype) * 2 - 1) * bound
            b = (torch.rand(1, fan_out, generator=gen, dtype=dtype) * 2 - 1) * bound
            params.setdefault(f"w{layer}", []).append(w)
            params.setdefault(f"b{layer}", []).append(b)
    return {name: torch.stack(values) for name, values in params.items()}


def mlp(params: dict[str, Tensor], x: Tensor) -> Tensor:
    """Forward pass with ReLU between layers: x (S, N, in) -> (S, N, out)."""
    layers = len(params) // 2
    for layer in range(layers):
        x = torch.baddbmm(params[f"b{layer}"], x, params[f"w{layer}"])
        if layer < layers - 1:
            x = torch.relu(x)
    return x


def flatten_params(params: dict[str, Tensor]) -> Tensor:
    """(S, P): every seed's parameters as one row, in ``params``' key order."""
    s = next(iter(params.values())).shape[0]
    return torch.cat([p.reshape(s, -1) for p in params.values()], dim=1)


def unflatten_params(flat: Tensor, like: dict[str, Tensor]) -> dict[str, Tensor]:
    """Inverse of :func:`flatten_params`: rows of (S, P) back to tensors shaped like ``like``."""
    out, offset = {}, 0
    for name, p in like.items():
        size = p[0].numel()
        out[name] = flat[:, offset : offset + size].reshape(p.shape)
        offset += size
    return out
