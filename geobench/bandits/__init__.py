"""Noisy contextual bandits: ADPO Sec. 6.1 and Fig. 2."""

from geobench.bandits.env import LEVELS, NOISES, BanditEnv, NoiseLevel
from geobench.bandits.sweep import BanditConfig, run
from geobench.bandits.train import METHODS

__all__ = ["LEVELS", "METHODS", "NOISES", "BanditConfig", "BanditEnv", "NoiseLevel", "run"]
