"""What a claim asks for: RL outcomes of a pair under a variant, over seeds, evaluated like the base model."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness import registry
from harness.evaluate import EvalResult, load_result
from harness.executors import Executor
from harness.loading import Pair
from harness.rl.runner import TRAIN_LOG, is_vacuous
from harness.specs import DataSpec, EvalSpec, OrganismSpec, PolaritySpec, RewardSpec, RLSpec, SpecError

DEFAULT_SEEDS = {"smoke": 1, "standard": 2, "paper": 3}


def lineage(pair: Pair) -> str:
    """Pairs whose organisms differ only in pretraining steps share a lineage: a longer one continues a shorter."""
    model = pair.model
    return dataclasses.replace(model, steps=0).key if isinstance(model, OrganismSpec) else model.key


def prepare_lock(lineage_key: str) -> str:
    """The cache lock held by the process preparing a lineage."""
    return f"prepare-{lineage_key}"


@dataclass(frozen=True)
class RLOutcome:
    """RL runs of one variant on one pair (one per seed), with the base and trained evaluations."""

    pair: Pair
    label: str
    specs: tuple[RLSpec, ...]
    before: EvalResult
    after: tuple[EvalResult, ...]
    logs: tuple[list[dict[str, Any]], ...] = field(repr=False)

    @property
    def vacuous(self) -> bool:
        """Every run's groups all had identical rewards: it learned nothing by construction."""
        return self.specs[0].polarity.name in ("standard", "psr", "nsr") and all(map(is_vacuous, self.logs))

    def scores(self, k: int) -> np.ndarray:
        """Per-problem pass@k after RL, shape (S, P)."""
        return np.stack([r.per_problem(k) for r in self.after])

    def base_scores(self, k: int) -> np.ndarray:
        """Per-problem pass@k of the base model, shape (P,)."""
        return self.before.per_problem(k)

    def gain(self, k: int) -> float:
        return float(self.scores(k).mean() - self.base_scores(k).mean())


@dataclass
class Harness:
    """Turns a claim's request into cached jobs: ``rl(pair, reward=...)`` and ``evaluate(pair)``."""

    executor: Executor
    budget: str = "standard"
    seeds: int | None = None

    def __post_init__(self) -> None:
        if self.budget not in DEFAULT_SEEDS:
            raise SpecError(f"unknown budget {self.budget!r}; known: {', '.join(DEFAULT_SEEDS)}")
        self._reported = (0, 0)

    def prepare(self, pairs: list[Pair]) -> None:
        """Compute the pairs' base models and evaluations before the tests ask for them.

        A lineage (organisms that differ only in pretraining steps) is prepared by one process,
        shortest first, so a longer organism continues a shorter one. Each process (an xdist worker)
        takes the longest lineage that no other process has taken, so workers pretrain side by side.
        """
        def steps(pair: Pair) -> int:
            return pair.model.steps if isinstance(pair.model, OrganismSpec) else 0

        lineages: dict[str, list[Pair]] = {}
        for pair in pairs:
            lineages.setdefault(lineage(pair), []).append(pair)
        cache = self.executor.cache
        for key, members in sorted(lineages.items(), key=lambda kv: (-max(map(steps, kv[1])), kv[0])):
            if all(cache.contains(pair.eval) for pair in members):  # loaded without a lock: may be read-only
                for pair in members:
                    self.evaluate(pair)
                continue
            with cache.lock(prepare_lock(key), wait=False) as taken:
                if taken:
                    for pair in sorted(members, key=steps):
                        self.evaluate(pair)

    def jobs_since_last_report(self) -> dict[str, list[str]]:
        """Cache keys computed and loaded since the previous call."""
        stats = self.executor.cache.stats
        computed, loaded = self._reported
        self._reported = (len(stats.computed), len(stats.loaded))
        return {"computed": stats.computed[computed:], "loaded": stats.loaded[loaded:]}

    @property
    def seed_list(self) -> list[int]:
        return list(range(self.seeds or DEFAULT_SEEDS[self.budget]))

    def evaluate(self, pair: Pair) -> EvalResult:
        """The base model's evaluation (its alignment is ``pass_at_k(pair.alignment_k)``)."""
        return self._evaluate(pair.eval)

    def _evaluate(self, spec: EvalSpec) -> EvalResult:
        return load_result(spec, self.executor.materialize(spec))

    def rl_spec(self, pair: Pair, *, seed: int, reward: str = "ground_truth",
                reward_params: dict[str, Any] | None = None, polarity: str = "standard", lam: float = 0.1,
                data: DataSpec | None = None, lr_scale: float = 1.0) -> RLSpec:
        recipe = pair.recipe
        if lr_scale != 1.0:
            recipe = dataclasses.replace(recipe, learning_rate=recipe.learning_rate * lr_scale)
        spec = RLSpec(model=pair.model, task=pair.rl_task, recipe=recipe, steps=pair.steps(self.budget),
                      reward=RewardSpec(name=reward, params=reward_params or {}),
                      data=data or DataSpec(), polarity=PolaritySpec(name=polarity, lam=lam), seed=seed)
        registry.check(spec)  # unknown reward, polarity or parameters: one line before anything runs
        return spec

    def rl(self, pair: Pair, *, label: str | None = None, **variant: Any) -> RLOutcome:
        """RL with the variant on every seed, each run evaluated with the pair's evaluation settings."""
        specs = tuple(self.rl_spec(pair, seed=s, **variant) for s in self.seed_list)
        logs = tuple(json.loads((self.executor.materialize(s) / TRAIN_LOG).read_text()) for s in specs)
        after = tuple(self._evaluate(self.trained_eval(pair, s)) for s in specs)
        name = label or describe_variant(specs[0])
        return RLOutcome(pair=pair, label=name, specs=specs, before=self.evaluate(pair), after=after, logs=logs)

    @staticmethod
    def trained_eval(pair: Pair, spec: RLSpec) -> EvalSpec:
        return dataclasses.replace(pair.eval, model=spec)


def describe_variant(spec: RLSpec) -> str:
    """A short human label, e.g. 'random reward', 'nsr', 'one-shot (historical_variance)'."""
    parts = []
    if spec.reward.name != "ground_truth":
        parts.append(f"{spec.reward.name} reward")
    if spec.polarity.name != "standard":
        parts.append(spec.polarity.name)
    if spec.data.selection != "full":
        parts.append(f"{spec.data.selection.replace('_', '-')} ({spec.data.method})")
    return ", ".join(parts) or "standard RL"
