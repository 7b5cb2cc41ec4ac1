"""Noisy contextual bandits: ADPO Sec. 6.1 and Fig. 2.

The names below are handed on lazily (PEP 562), so importing one module of the package
(``geobench.bandits.env``, say) does not import the sweep stack with it.
"""

import importlib

_HOMES = {
    "LEVELS": "geobench.bandits.env",
    "NOISES": "geobench.bandits.env",
    "BanditEnv": "geobench.bandits.env",
    "NoiseLevel": "geobench.bandits.env",
    "METHODS": "geobench.bandits.train",
    "BanditConfig": "geobench.bandits.sweep",
    "run": "geobench.bandits.sweep",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
