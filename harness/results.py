"""What a claim asks for: RL outcomes of a pair under a variant, over seeds, evaluated like the base model.

The Harness answers from the job cache. In a session's planning pass it records instead: a job that
is not cached is noted (or the reason it cannot be built) and answered with a placeholder of the same
type and shape, and the test is flagged ``pending`` so its claim is not judged. The plugin then runs
the recorded jobs as a graph (harness/plan.py, harness/scheduler.py) before the tests judge.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import jobs
from harness.cache import Cache
from harness.evaluate import EvalResult, load_result
from harness.loading import Pair
from harness.rl.runner import TRAIN_LOG
from harness.specs import (
    DataSpec,
    EvalSpec,
    NothingToTrain,
    PolaritySpec,
    RewardSpec,
    RLSpec,
    Spec,
    SpecError,
)
from harness.stats import CALIBRATION_RUNS
from harness.tasks.base import Problem

# Runs per variant at each sequential look under ``--seeds auto`` (harness.verdicts): a cell inconclusive
# after the first look gets more runs, up to the last (or ``--max-seeds``).
AUTO_LOOKS = {"smoke": (1,), "standard": (2, 4, 8), "paper": (2, 4, 8)}
DEFAULT_MAX_SEEDS = 8  # runs of the last look unless --max-seeds says otherwise
PLACEHOLDER_LOG_KEYS = ("reward", "reward_std", "frac_reward_zero_std", "entropy", "grad_norm",
                        "clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean",
                        "completions/mean_length")


NOTHING = f"{NothingToTrain.__name__}:"  # how a NothingToTrain failure reads in ``Harness.failed``


class JobFailed(Exception):
    """A job the test needs failed when this session ran its graph; the message is the one-line reason."""


@dataclass
class Recording:
    """What a planning pass learned: the jobs asked for, and lines naming missing ones that cannot be built."""

    requested: dict[str, Spec] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    pending: set[str] = field(default_factory=set)  # node ids of the tests given placeholders
    _checked: dict[str, str | None] = field(default_factory=dict)  # key -> why it cannot be built

    def add(self, spec: Spec, test: str, pair: str, *, missing: bool) -> None:
        if not missing:
            self.requested.setdefault(spec.key, spec)
            return
        if spec.key not in self._checked:
            try:
                jobs.check(spec)
                self._checked[spec.key] = None
            except SpecError as exc:
                self._checked[spec.key] = str(exc).splitlines()[0]
        problem = self._checked[spec.key]
        if problem is None:
            self.requested.setdefault(spec.key, spec)
            return
        line = f"{test}: pair {pair}: {problem}"
        if line not in self.errors:
            self.errors.append(line)


def placeholder_result(spec: EvalSpec) -> EvalResult:
    """An evaluation not computed yet: no problem solved, in the shapes of a real result."""
    count = spec.num_problems
    return EvalResult(spec=spec, problems=[Problem(question="", answer="", uid=f"pending-{i}") for i in range(count)],
                      samples=[[""] * spec.n for _ in range(count)], greedy=[""] * count,
                      answers=[[None] * spec.n for _ in range(count)], correct=np.zeros(count, dtype=int),
                      formatted=np.zeros(count, dtype=int), greedy_correct=np.zeros(count, dtype=bool))


def placeholder_log(spec: RLSpec) -> list[dict[str, Any]]:
    """The train log of an RL run not computed yet: one row of zeros per step."""
    return [{"step": step, "wall": 0.0, **dict.fromkeys(PLACEHOLDER_LOG_KEYS, 0.0)}
            for step in range(1, spec.steps + 1)]


@dataclass(frozen=True)
class RLOutcome:
    """RL runs of one variant on one pair (one per seed), with the base and trained evaluations."""

    pair: Pair
    label: str
    specs: tuple[RLSpec, ...]
    before: EvalResult
    after: tuple[EvalResult, ...]
    logs: tuple[list[dict[str, Any]], ...] = field(repr=False)
    pending: bool = False  # placeholders stand for jobs not computed yet (a planning pass)
    looks: tuple[int, ...] = (1,)  # runs at each sequential look (harness.verdicts)
    calibration: RLOutcome | None = field(default=None, repr=False, compare=False)  # the pair's standard-RL runs
    variant: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    harness: Harness | None = field(default=None, repr=False, compare=False)
    # why the variant could not run at all (its jobs failed with NothingToTrain); it then has no runs
    unexercisable: str | None = None

    def scores(self, k: int) -> np.ndarray:
        """Per-problem pass@k after RL, shape (S, P)."""
        return np.stack([r.per_problem(k) for r in self.after])

    def base_scores(self, k: int) -> np.ndarray:
        """Per-problem pass@k of the base model, shape (P,)."""
        return self.before.per_problem(k)

    def gain(self, k: int) -> float:
        return float(self.scores(k).mean() - self.base_scores(k).mean())

    def with_seeds(self, n: int) -> RLOutcome:
        """The same variant on the same pair over at least seeds 0..n-1 (a placeholder, and recorded, in a
        planning pass); itself when it has as many runs already."""
        if n <= len(self.specs):
            return self
        assert self.harness is not None, "an outcome made by Harness.rl"
        return self.harness.rl(self.pair, label=self.label, seeds=n, **self.variant)


@dataclass
class Harness:
    """Turns a claim's request into cached jobs: ``rl(pair, reward=...)`` and ``evaluate(pair)``.

    ``failed`` (cache key -> one-line reason) are the jobs that failed in this session's run of the
    graph: a test asking for one fails with that reason. A job neither cached nor failed (one the
    planning pass did not see) is computed here. ``recording`` is set during a planning pass.
    """

    cache: Cache
    budget: str = "standard"
    seeds: int | None = None  # runs per variant; None: sequential looks (``--seeds auto``)
    max_seeds: int = DEFAULT_MAX_SEEDS  # the last look under ``--seeds auto``
    failed: dict[str, str] = field(default_factory=dict)
    recording: Recording | None = None
    pending: bool = False  # this test was given a placeholder (a planning pass)
    test: str = ""  # the node id of the test asking

    def __post_init__(self) -> None:
        if self.budget not in AUTO_LOOKS:
            raise SpecError(f"unknown budget {self.budget!r}; known: {', '.join(AUTO_LOOKS)}")
        if (self.seeds is not None and self.seeds < 1) or self.max_seeds < 1:
            raise SpecError(f"seeds must be >= 1; got --seeds {self.seeds}, --max-seeds {self.max_seeds}")
        self._reported = (0, 0)

    def begin_test(self, nodeid: str) -> None:
        self.test, self.pending = nodeid, False

    def jobs_since_last_report(self) -> dict[str, list[str]]:
        """Cache keys computed and loaded since the previous call."""
        stats = self.cache.stats
        computed, loaded = self._reported
        self._reported = (len(stats.computed), len(stats.loaded))
        return {"computed": stats.computed[computed:], "loaded": stats.loaded[loaded:]}

    @property
    def looks(self) -> tuple[int, ...]:
        """Runs per variant at each look: ``--seeds N`` gives one look; auto the budget's looks up to ``max_seeds``."""
        if self.seeds is not None:
            return (self.seeds,)
        if self.budget == "smoke" or self.max_seeds == 1:
            return AUTO_LOOKS[self.budget][:1]
        return tuple(sorted({n for n in AUTO_LOOKS[self.budget] if n < self.max_seeds} | {self.max_seeds}))

    def _entry(self, spec: Spec, pair: Pair) -> Path | None:
        """The job's cache entry; None (recorded, the test pending) when a planning pass finds it missing."""
        if self.recording is None:
            if spec.key in self.failed:
                raise JobFailed(f"{spec.short} failed: {self.failed[spec.key]}")
            return jobs.materialize(spec, self.cache)
        entry = self.cache.entry(spec.key)
        self.pending |= entry is None
        self.recording.add(spec, self.test, pair.id, missing=entry is None)
        return entry

    def evaluate(self, pair: Pair) -> EvalResult:
        """The base model's evaluation (its alignment is ``pass_at_k(pair.alignment_k)``)."""
        return self._evaluate(pair.eval, pair)

    def _evaluate(self, spec: EvalSpec, pair: Pair) -> EvalResult:
        entry = self._entry(spec, pair)
        return placeholder_result(spec) if entry is None else load_result(spec, entry)

    def rl_spec(self, pair: Pair, *, seed: int, reward: str = "ground_truth",
                reward_params: dict[str, Any] | None = None, polarity: str = "standard", lam: float = 0.1,
                data: DataSpec | None = None, lr_scale: float = 1.0) -> RLSpec:
        recipe = pair.recipe
        if lr_scale != 1.0:
            recipe = dataclasses.replace(recipe, learning_rate=recipe.learning_rate * lr_scale)
        spec = RLSpec(model=pair.model, task=pair.rl_task, recipe=recipe, steps=pair.steps(self.budget),
                      reward=RewardSpec(name=reward, params=reward_params or {}),
                      data=data or DataSpec(), polarity=PolaritySpec(name=polarity, lam=lam), seed=seed)
        return spec

    def rl(self, pair: Pair, *, label: str | None = None, seeds: int | None = None, **variant: Any) -> RLOutcome:
        """RL with the variant on seeds 0..n-1, each run evaluated with the pair's evaluation settings.

        The standard-RL control always has ``CALIBRATION_RUNS`` runs: they calibrate the pair's between-run
        variance. A variant has ``seeds`` runs, by default as many as the first look, and carries the
        control (``calibration``) for the verdicts.
        """
        control = self.rl_spec(pair, seed=0, **variant) == self.rl_spec(pair, seed=0)
        runs = CALIBRATION_RUNS if control else (seeds or self.looks[0])
        specs = tuple(self.rl_spec(pair, seed=s, **variant) for s in range(runs))
        nothing = next((self.failed[s.key] for s in specs if self.failed.get(s.key, "").startswith(NOTHING)), None)
        if nothing is not None:  # the variant could not run: no runs, and the verdict says why
            return RLOutcome(pair=pair, label=label or describe_variant(specs[0]), specs=specs,
                             before=self.evaluate(pair), after=(), logs=(), looks=(runs,), variant=variant,
                             harness=self, unexercisable=nothing.removeprefix(NOTHING).strip())
        calibration = None if control else self.rl(pair)
        pending_before, self.pending = self.pending, False
        entries = [self._entry(s, pair) for s in specs]
        logs = tuple(placeholder_log(s) if e is None else json.loads((e / TRAIN_LOG).read_text())
                     for s, e in zip(specs, entries, strict=True))
        after = tuple(self._evaluate(self.trained_eval(pair, s), pair) for s in specs)
        before = self.evaluate(pair)
        pending, self.pending = self.pending, pending_before or self.pending
        return RLOutcome(pair=pair, label=label or describe_variant(specs[0]), specs=specs, before=before,
                         after=after, logs=logs, pending=pending, looks=(runs,) if control else self.looks,
                         calibration=calibration, variant=variant, harness=self)

    @staticmethod
    def trained_eval(pair: Pair, spec: RLSpec) -> EvalSpec:
        return dataclasses.replace(pair.eval, model=spec)


def describe_variant(spec: RLSpec) -> str:
    """A short human label, e.g. 'random reward', 'nsr', 'one-shot (historical variance over 128 candidates,
    50 epochs)': the one-shot label says which path chose the example."""
    parts = []
    if spec.reward.name != "ground_truth":
        parts.append(f"{spec.reward.name} reward")
    if spec.polarity.name != "standard":
        parts.append(spec.polarity.name)
    if spec.data.selection != "full":
        how = spec.data.method.replace("_", " ")
        if spec.data.method == "historical_variance":
            from harness.rl.runner import ranking_run

            ranking = ranking_run(spec)
            epochs = ranking.steps * ranking.recipe.prompts_per_step // ranking.data.pool_size
            how += f" over {ranking.data.pool_size} candidates, {epochs} epochs"
        parts.append(f"{spec.data.selection.replace('_', '-')} ({how})")
    return ", ".join(parts) or "standard RL"
