"""``geobench battery``: any registered objective, built-in or plugin, through the papers' experiments."""

from geobench.battery.plan import EXPERIMENTS, BatteryConfig, load_battery, plan
from geobench.battery.run import run

__all__ = ["EXPERIMENTS", "BatteryConfig", "load_battery", "plan", "run"]
