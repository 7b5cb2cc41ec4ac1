"""Noisy contextual bandits: ADPO Sec. 6.1 and Fig. 2.

The names below are handed on lazily (PEP 562), so importing one module of the package
(``geobench.bandits.env``, say) does not import the sweep stack with it.
"""

from geobench.lazy import lazy_names

__getattr__, __all__ = lazy_names(
    __name__,
    {
        "LEVELS": "geobench.bandits.env",
        "NOISES": "geobench.bandits.env",
        "BanditEnv": "geobench.bandits.env",
        "NoiseLevel": "geobench.bandits.env",
        "METHODS": "geobench.bandits.train",
        "BanditConfig": "geobench.bandits.sweep",
        "run": "geobench.bandits.sweep",
    },
)
