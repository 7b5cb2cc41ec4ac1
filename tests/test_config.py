"""Config files: profiles that inherit, overrides that merge, nested tables checked in one line."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from geobench.config import load_config, merge, read_profile
from geobench.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    steps: int = 1
    levels: tuple[int, ...] = (1,)
    noise: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


BASE = """
[base]
steps = 3
[base.hparams.opo]
alpha = 0.4
mu = 1.0

[quick]
inherits = "base"
levels = [1, 2]
[quick.hparams.opo]
mu = 2.0

[paper]
inherits = "quick"
steps = 30
[paper.hparams.grpo]
clip_low = 0.2
"""


CIRCLE = '[quick]\ninherits = "paper"\n[paper]\ninherits = "quick"\n'


def write(tmp_path, text):
    path = tmp_path / "x.toml"
    path.write_text(text)
    return path


def test_a_profile_is_what_it_inherits_with_its_own_values_merged_in(tmp_path):
    path = write(tmp_path, BASE)
    assert read_profile(path, "quick") == {"steps": 3, "hparams": {"opo": {"alpha": 0.4, "mu": 2.0}}, "levels": [1, 2]}
    paper = load_config(Settings, path, "paper")
    assert paper == Settings(30, (1, 2), {}, {"opo": {"alpha": 0.4, "mu": 2.0}, "grpo": {"clip_low": 0.2}})


def test_overrides_merge_into_tables_and_replace_everything_else(tmp_path):
    path = write(tmp_path, BASE)
    config = load_config(Settings, path, "quick", {"levels": (4,), "steps": None, "hparams": {"opo": {"alpha": 0.1}}})
    assert config.levels == (4,) and config.steps == 3  # None: an option the user did not give
    assert config.hparams == {"opo": {"alpha": 0.1, "mu": 2.0}}
    assert merge({"a": {"x": 1}, "b": [1]}, {"a": {"y": 2}, "b": [2]}) == {"a": {"x": 1, "y": 2}, "b": [2]}


@pytest.mark.parametrize(
    "text, message",
    [
        ('[quick]\ninherits = "base"\n', r"x.toml \[quick\]: inherits = 'base' names no table of the file"),
        (CIRCLE, r"x.toml: tables inherit in a circle \(quick -> paper -> quick\)"),
        ("[quick]\nnoise = { cauchy = 3 }\n", r"\[quick\]: noise.cauchy must be a table"),
        ('[quick]\nnoise = { cauchy = { light = "big" } }\n', r"noise.cauchy.light must be of type float; got 'big'"),
        ("[quick]\nhparams = { opo = 3 }\n", r"hparams.opo must be a table \(name = value, ...\); got 3"),
        ('[quick]\nlevels = [1, "two"]\n', r"levels\[1\] must be of type int; got 'two'"),
        ("[quick]\nlevels = 3\n", r"levels must be a list; got 3"),
        (
            "[quick]\nstpes = 3\n",
            r"unknown setting 'stpes'; did you mean 'steps'\? valid: steps, levels, noise, hparams",
        ),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(Settings, write(tmp_path, text), "quick")
    assert "\n" not in str(error.value)
