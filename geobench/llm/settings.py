"""The settings of an LLM run, one type for the sweep and both training loops, defaults here only.

Sources and reasons for every value are in ``experiments/opo_table1.toml``. The field names
are the TOMLs' and ``run.json``'s; those naming a paper's algorithm (``adpo_tau_rule``,
``opo_tau_min``, ...) configure the part of an objective's :class:`~geobench.objectives.Recipe`
that algorithm introduced, for whichever objective declares it (:meth:`LLMConfig.cell_recipe`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from geobench.config import HASH_NEUTRAL, check_caps, check_lists
from geobench.errors import ConfigError
from geobench.llm.data import EVAL_SPLITS
from geobench.llm.dynamic_sampling import FILTER_METRICS
from geobench.llm.grading import REWARDS
from geobench.llm.model import TinyQwen3
from geobench.llm.prompts import PROMPT_FORMATS
from geobench.llm.rollout import BACKENDS, SamplingSettings
from geobench.llm.warmstart import WarmStartConfig
from geobench.objectives import GuardedTemperature, Objective, Recipe, check_tables, find_objective, get_objective
from geobench.objectives.temperature import CONFIDENCE_FORMS

ENGINES = ("geobench", "trl")
ALGOS = ("grpo", "gspo", "dapo", "opo", "adpo")
# What an objective outside ALGOS (a plugin's, say) may declare: the loop scores G completions of
# each prompt with a verifier, a reward per completion, which is sampled or listwise feedback.
LLM_FEEDBACK = ("sampled", "listwise")
# "guard" is ADPO's Eq. 12; "entropy-reward" the per-prompt rule of the authors' public recipe
# (SETTINGS.md), geobench.llm.temperatures.per_prompt_tau.
TAU_RULES = ("guard", "entropy-reward")
# "guard" is ADPO's Eq. 12 on OPO's escort T; "authors" the adaptive tau of the OPO authors' fork
# on T (geobench.llm.temperatures.authors_temperature).
OPO_TAU_RULES = ("guard", "authors")
# The OPO authors' adaptive-tau coefficients (entropy a, reward b): "adaptive tau (0.2 / 0.5, range
# [0.2, 1.5])" (SETTINGS.md; wk222/verlm opo_qwen3_math.yaml).
AUTHORS_TAU_COEFFICIENTS = (0.2, 0.5)
# verl's two schedules (actor.optim.lr_scheduler_type), which the loop runs too (issue 25 item 7).
LR_SCHEDULES = ("cosine", "constant")
# The hyperparameters a recipe may adapt, each with its own settings (LLMConfig._adaptive_temperature).
ADAPTED = ("tau", "temperature")
# Cells are (algorithm, seed) runs, each a full RL run: the caps keep a typo from asking for weeks.
CAPS = {
    "seeds": (1_000, "every seed is a full RL run of each algorithm, weeks at the cap; the profiles run 1 to 5"),
    "steps": (100_000, "a guard against a typo, ~450 times the paper profile's 224"),
    "max_gen_batches": (100, "each round is a full batch of rollouts; verl's DAPO scripts bound it at 10"),
}


@dataclass(frozen=True)
class AdaptiveTemperature:
    """The adaptive temperature one cell runs: the hyperparameter it sets each step and its rule.

    ``rule`` is one of :data:`TAU_RULES` or :data:`OPO_TAU_RULES`; ``low`` and ``high`` are the
    guard's and the OPO authors' rule's [tau_min, tau_max] (the per-prompt rule keeps its own
    range, see ``per_prompt_tau``).
    """

    hparam: str
    rule: str
    low: float
    high: float

    def guard(self) -> GuardedTemperature | None:
        """ADPO Eq. 12's state, starting at ``high``; None for the per-prompt rule, which has none."""
        return GuardedTemperature(self.low, self.high) if self.rule == "guard" else None


@dataclass(frozen=True)
class CellRecipe:
    """An objective's :class:`~geobench.objectives.Recipe` with this run's switches applied."""

    filter_groups: bool  # drop the groups without signal and refill (DAPO Eq. 11, Algorithm 1)
    overlong_cache: int  # tokens of Eq. 13's soft overlong punishment; 0 = none
    mask_truncated: bool  # truncated completions masked out of the loss (DAPO Sec. 3.4)
    temperature: AdaptiveTemperature | None


@dataclass(frozen=True)
class LLMConfig:
    """Every setting of an LLM run; sources and reasons in ``experiments/opo_table1.toml``."""

    algos: tuple[str, ...] = ALGOS
    seeds: int = 3
    seed: int = 0
    dataset: str = "arithmetic"
    levels: tuple[int, ...] = (1, 2, 3, 4)
    model: str = ""  # empty: the project's warm-started tiny Qwen3
    dtype: str = "float32"
    rollout: str = "hf"
    engine: str = "geobench"  # geobench's own loop, or TRL's GRPOTrainer with geobench's loss
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 6
    steps: int = 60
    prompts_per_step: int = 8
    group: int = 6
    epochs: int = 1
    minibatches: int = 1
    micro_batch: int = 0  # prompts (groups) per micro-batch; 0 = the whole mini-batch
    lr: float = 3e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    reward: str = "correct"
    # Recipe.filter_groups's switch (DAPO's dynamic sampling).
    dynamic_sampling: bool = True
    # Dynamic sampling's generation rounds per step, the first included (verl's DAPO
    # filter_groups.max_num_gen_batches): refill with fresh prompts until prompts_per_step
    # informative groups are kept, at most this many rounds. 1 = filter the step's own groups
    # and never refill.
    max_gen_batches: int = 1
    # What makes a group uninformative, one of FILTER_METRICS: "reward", the rewards the
    # objective sees (with shaping and overlong punishment) being all equal; "accuracy",
    # all-correct or all-wrong (DAPO's Algorithm 1, verl's filter_groups.metric "acc").
    filter_metric: str = "reward"
    # Recipe.overlong's soft punishment: its cache length in tokens; 0 = off.
    overlong_cache: int = 0
    # Recipe.adaptive_temperature "tau": ADPO's Eq. 12, from tau_max towards tau_min while confident
    # and improving. Which way is "loose" is ambiguous (Sec. 5.1 calls small tau loose, Eq. 10
    # makes it steep); we follow Eq. 12 as printed (see GuardedTemperature).
    adaptive_tau: bool = True
    tau_min: float = 0.1
    tau_max: float = 0.8
    # Eq. 12's confidence c over the G candidates, one of CONFIDENCE_FORMS (see
    # candidate_confidence): "token-mean" length-normalises the sequence log-probs (c ~ 0.01 on
    # 20-30 tokens, so tau stays at tau_max); "sequence" is ADPO Sec. 5.1 read literally
    # (saturates at c ~ 1 for hundreds of tokens); "candidate-set" the literal form over each
    # group's distinct completions (c rises as the policy converges to a mode).
    tau_confidence: str = "token-mean"
    adpo_tau_rule: str = "guard"  # the "tau" rule, one of TAU_RULES
    # Recipe.overlong's filter. DAPO (Yu et al. 2025) Sec. 3.4: "we first apply an overlong
    # filtering strategy which masks the loss of truncated samples" (the authors' OPO-paper DAPO
    # baseline config turns it off: "overlong and filtering off"; set False to match that).
    overlong_filter: bool = True
    # Recipe.adaptive_temperature "temperature". OPO Sec. 9.1: "adaptive tau with range [0.2, 1.5]",
    # defined nowhere in the paper; read as ADPO Eq. 12's guard on the escort temperature T of
    # P* ~ exp(A / T) (Sec. 4.1).
    opo_adaptive_tau: bool = True
    opo_tau_min: float = 0.2
    opo_tau_max: float = 1.5
    # The "temperature" rule, one of OPO_TAU_RULES: "guard" is Eq. 12 on T; "authors" the
    # adaptive tau of the OPO authors' fork (opo_authors.authors_adaptive_tau, whose range
    # [0.2, 1.5] is the paper's) applied to T, from the objective's own T as its base.
    opo_tau_rule: str = "guard"
    # issue 25 (verl25): settings both LLM paths read, so the verl config is generated from them.
    # The learning-rate schedule after linear warm-up: "cosine" to 0 (ADPO Sec. 6.3: "cosine
    # decay"), or "constant" (verl's default lr_scheduler_type). The TRL engine follows it too.
    lr_schedule: str = "cosine"
    # The per-prompt rule's ("entropy-reward") constants: tau = tau_base (1 + a H + b (1 - H)(1 - R)),
    # clamped to [adpo_prompt_tau_min, adpo_prompt_tau_max]; defaults the authors' recipe's
    # (SETTINGS.md: a 0.5, b 1.0, range [0.1, 5.0]). ADPO Sec. 6.3 runs "alpha = 0.2, beta = 0.5".
    adpo_tau_entropy: float = 0.5
    adpo_tau_reward: float = 1.0
    adpo_prompt_tau_min: float = 0.1
    adpo_prompt_tau_max: float = 5.0
    eval_every: int = 10
    eval_prompts: int = 200
    # The levels of the held-out problems (geobench.llm.data.eval_task); empty = the training levels. Levels
    # outside `levels` make the held-out accuracy out of distribution (OPO v5's Experiment 2).
    eval_levels: tuple[int, ...] = ()
    # The per-pair update check (geobench.llm.pair_check): every this many steps (at steps 1, 1 + k,
    # ...) each cell also simulates every other algorithm's update sequence on its batch and logs the
    # cosines to pairs.csv; 0 = off.
    pair_check_every: int = 0
    # Algorithms the check also replays without training them: the battery names the baselines here, so
    # that an objective run alone is compared with each of them on its own batches. Absent from the config
    # hash at its default (HASH_NEUTRAL), so the runs made before it existed keep their identity.
    pair_with: tuple[str, ...] = field(default=(), metadata=HASH_NEUTRAL)
    warmstart: Mapping[str, Any] = field(default_factory=dict)  # WarmStartConfig overrides (built-in tasks)
    cell_gpus: float = 0.0  # GPUs each (algorithm, seed) cell asks of Ray; 1 in the paper profile
    # Issue 25's prompt, data-pass and held-out settings (geobench.llm.prompts, geobench.llm.data);
    # the defaults are every earlier run's behaviour.
    prompt_format: str = "raw"  # one of PROMPT_FORMATS: the problem text as is, or "chat", the tokenizer's template
    enable_thinking: bool = True  # Qwen3's thinking switch, handed to the chat template ("chat" only)
    data_epochs: int = 0  # 0: `steps` batches drawn with replacement; N: N shuffled passes over the training set
    eval_split: str = ""  # one of EVAL_SPLITS: "" draws from the task (as before), "test" or "math-500"
    hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def compared(self) -> tuple[str, ...]:
        """The algorithms the per-pair check replays: ``algos`` then ``pair_with``, each once."""
        return tuple(dict.fromkeys((*self.algos, *self.pair_with)))

    def compare_with(self, others: tuple[str, ...]) -> LLMConfig:
        """This config with the per-pair check also replaying ``others`` (when the check is on)."""
        others = tuple(o for o in others if o not in self.algos)
        return dataclasses.replace(self, pair_with=others) if self.pair_check_every and others else self

    def __post_init__(self) -> None:
        check_lists(self, "algos", "levels")
        check_caps(self, CAPS)
        check_tables(self.hparams)
        if not self.dataset.strip():
            raise ConfigError("dataset is empty; give arithmetic, column-addition, math-lighteval or a path")
        if self.adpo_tau_rule not in TAU_RULES:
            raise ConfigError(f"adpo_tau_rule must be one of {', '.join(TAU_RULES)}; got {self.adpo_tau_rule!r}")
        if self.opo_tau_rule not in OPO_TAU_RULES:
            raise ConfigError(f"opo_tau_rule must be one of {', '.join(OPO_TAU_RULES)}; got {self.opo_tau_rule!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}; got {self.lr_schedule!r}")
        if not 0 < self.adpo_prompt_tau_min <= self.adpo_prompt_tau_max:
            raise ConfigError(
                f"need 0 < adpo_prompt_tau_min <= adpo_prompt_tau_max; got {self.adpo_prompt_tau_min}, "
                f"{self.adpo_prompt_tau_max}"
            )
        if self.filter_metric not in FILTER_METRICS:
            raise ConfigError(f"filter_metric must be one of {', '.join(FILTER_METRICS)}; got {self.filter_metric!r}")
        if self.max_gen_batches < 1:
            raise ConfigError(f"max_gen_batches must be >= 1 (1 = no refill); got {self.max_gen_batches}")
        if self.tau_confidence not in CONFIDENCE_FORMS:
            raise ConfigError(
                f"tau_confidence must be one of {', '.join(CONFIDENCE_FORMS)}; got {self.tau_confidence!r}"
            )
        for algo in self.algos:
            if algo not in ALGOS:
                _check_outside_algo(algo)
            entry = get_objective(algo)
            entry.validate(dict(self.hparams.get(algo, {})))
            _check_recipe(entry)
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; valid: {', '.join(ENGINES)}")
        if self.rollout not in BACKENDS:
            raise ConfigError(f"unknown rollout backend {self.rollout!r}; valid: {', '.join(BACKENDS)}")
        if self.reward not in REWARDS:
            raise ConfigError(f"unknown reward {self.reward!r}; valid: {', '.join(REWARDS)}")
        if min(self.seeds, self.steps, self.prompts_per_step, self.epochs, self.minibatches) < 1 or self.group < 2:
            raise ConfigError("seeds, steps, prompts_per_step, epochs and minibatches must be >= 1 and group >= 2")
        if not 0 < self.tau_min <= self.tau_max:
            raise ConfigError(f"need 0 < tau_min <= tau_max; got {self.tau_min}, {self.tau_max}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise ConfigError(f"prompt_format must be one of {', '.join(PROMPT_FORMATS)}; got {self.prompt_format!r}")
        if self.prompt_format == "chat" and not self.model:
            raise ConfigError(
                "prompt_format = 'chat' needs a chat model; the tiny warm-started Qwen3's character tokenizer has "
                "no chat template, so set prompt_format = 'raw' or --model"
            )
        if self.data_epochs < 0:
            raise ConfigError(
                f"data_epochs must be >= 0 (0 = draw `steps` batches with replacement); got {self.data_epochs}"
            )
        if self.eval_split not in EVAL_SPLITS:
            valid = ", ".join(repr(s) for s in EVAL_SPLITS)
            raise ConfigError(f"eval_split must be one of {valid}; got {self.eval_split!r}")
        if self.pair_check_every < 0:
            raise ConfigError(f"pair_check_every must be >= 0 (0 = off); got {self.pair_check_every}")
        if self.pair_with and not self.pair_check_every:
            raise ConfigError(f"pair_with = {list(self.pair_with)} needs pair_check_every > 0 (the check replays them)")
        for algo in self.pair_with:
            if algo not in ALGOS:
                _check_outside_algo(algo)
            _check_recipe(get_objective(algo))
        if self.pair_check_every and self.engine != "geobench":
            raise ConfigError(
                f"pair_check_every = {self.pair_check_every} needs --engine geobench (TRL's trainer runs the "
                "update itself); set pair_check_every = 0"
            )

    def cell_recipe(self, recipe: Recipe) -> CellRecipe:
        """What a cell of an objective declaring ``recipe`` does, with this run's switches."""
        return CellRecipe(
            filter_groups=recipe.filter_groups and self.dynamic_sampling,
            overlong_cache=self.overlong_cache if recipe.overlong else 0,
            mask_truncated=recipe.overlong and self.overlong_filter,
            temperature=self._adaptive_temperature(recipe.adaptive_temperature),
        )

    def _adaptive_temperature(self, hparam: str | None) -> AdaptiveTemperature | None:
        """The schedule of the hyperparameter ``hparam`` under this run's settings; None when off."""
        if hparam == "tau" and self.adaptive_tau:
            return AdaptiveTemperature(hparam, self.adpo_tau_rule, self.tau_min, self.tau_max)
        if hparam == "temperature" and self.opo_adaptive_tau:
            return AdaptiveTemperature(hparam, self.opo_tau_rule, self.opo_tau_min, self.opo_tau_max)
        return None

    def warmstart_config(self) -> WarmStartConfig:
        """The warm start of a built-in task: its levels, plus the ``warmstart`` table's settings."""
        values = dict(self.warmstart)
        if "shape" in values:
            values["shape"] = TinyQwen3(**values["shape"])
        try:
            return WarmStartConfig(task=self.dataset, levels=self.levels, **values)
        except TypeError as error:
            valid = ", ".join(WarmStartConfig.__dataclass_fields__)
            raise ConfigError(f"bad warmstart setting ({error}); valid: {valid}") from None

    def prompt_settings(self) -> dict[str, Any]:
        """The keyword arguments of :func:`geobench.llm.prompts.prompted` under this run's settings."""
        return {"prompt_format": self.prompt_format, "enable_thinking": self.enable_thinking}

    def sampling(self) -> SamplingSettings:
        return SamplingSettings(self.temperature, self.top_p, self.max_new_tokens)


def _check_outside_algo(algo: str) -> None:
    """An objective outside ALGOS runs if it is registered with a feedback the loop gives, else one line."""
    valid = f"{', '.join(ALGOS)}, or an objective with {' or '.join(LLM_FEEDBACK)} feedback (`geobench objectives`)"
    entry = find_objective(algo)
    if entry is None:
        raise ConfigError(f"unknown algorithm {algo!r} for geobench llm; valid: {valid}")
    if entry.feedback not in LLM_FEEDBACK:
        raise ConfigError(f"{algo!r} takes {entry.feedback} feedback, which geobench llm does not give; valid: {valid}")


def _check_recipe(entry: Objective) -> None:
    """A recipe adapting a hyperparameter the loop has no temperature settings for is one line."""
    adapted = entry.recipe.adaptive_temperature
    if adapted is not None and adapted not in ADAPTED:
        raise ConfigError(
            f"{entry.name}'s recipe adapts {adapted!r}, which geobench llm cannot; valid: {', '.join(ADAPTED)}"
        )
