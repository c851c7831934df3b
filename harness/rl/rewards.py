"""Reward variants, each a plain TRL reward function over a batch (completions in, floats out).

Dataset columns reach the functions as keyword arguments (``answer``, ``question``, ``uid``).
Variants follow the paper (arXiv 2508.21188) and the papers it tests:

- ``ground_truth``: format and correct.
- ``random``: format and Bernoulli(p) (Shao et al. 2025).
- ``format_only``: format.
- ``incorrect``: format and not correct (Shao et al. 2025).
- ``majority_vote``: format and equal to the most common extracted answer of the prompt's group (TTRL).
- ``entropy``: mean token log-probability of the completion under the current policy (entropy minimisation).
- ``self_certainty``: mean over tokens of KL(uniform || policy) (Intuitor).
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from harness.specs import RewardSpec, SpecError
from harness.tasks.base import Problem, Task


class RewardFunc(Protocol):
    """The call TRL makes: one float per completion."""

    def __call__(self, prompts: list[Any], completions: list[str], **columns: Any) -> list[float]: ...


Scorer = Callable[[list[Any], list[list[int]]], list[float]]  # (prompts, completion ids) -> per-completion value


def _problems(columns: dict[str, Any]) -> list[Problem]:
    return [Problem(question=q, answer=a, uid=u)
            for q, a, u in zip(columns["question"], columns["answer"], columns["uid"], strict=True)]


def ground_truth(task: Task) -> RewardFunc:
    """1 if the completion is well formatted and correct, else 0.

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = ground_truth(get_task(TaskSpec(family="arithmetic", params={"digits": 1})))
    >>> f(prompts=["2+3=", "2+3="], completions=["5", "6"], question=["2+3="] * 2, answer=["5"] * 2, uid=["u"] * 2)
    [1.0, 0.0]
    """
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        return [float(task.format_ok(c) and task.is_correct(c, p)) for c, p in zip(completions, _problems(columns),
                                                                                     strict=True)]
    return reward


def incorrect(task: Task) -> RewardFunc:
    """1 if the completion is well formatted and wrong, else 0.

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = incorrect(get_task(TaskSpec(family="arithmetic", params={"digits": 1})))
    >>> f(prompts=["2+3="] * 3, completions=["5", "6", "x"], question=["2+3="] * 3, answer=["5"] * 3, uid=["u"] * 3)
    [0.0, 1.0, 0.0]
    """
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        return [float(task.format_ok(c) and not task.is_correct(c, p))
                for c, p in zip(completions, _problems(columns), strict=True)]
    return reward


def format_only(task: Task) -> RewardFunc:
    """1 if the completion is well formatted, whatever its answer.

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = format_only(get_task(TaskSpec(family="arithmetic", params={"digits": 1})))
    >>> f(prompts=["2+3="] * 3, completions=["5", "6", "x"], question=["2+3="] * 3, answer=["5"] * 3, uid=["u"] * 3)
    [1.0, 1.0, 0.0]
    """
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        return [float(task.format_ok(c)) for c in completions]
    return reward


def random(task: Task, *, p: float = 0.5, seed: int = 0) -> RewardFunc:
    """Bernoulli(p) for well-formatted completions, from a seeded generator (deterministic per run).

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = random(get_task(TaskSpec(family="arithmetic", params={"digits": 1})), p=1.0)
    >>> f(prompts=["2+3="] * 2, completions=["6", "x"], question=["2+3="] * 2, answer=["5"] * 2, uid=["u"] * 2)
    [1.0, 0.0]
    """
    if not 0 <= p <= 1:
        raise SpecError(f"random reward: p must be in [0, 1], got {p}")
    rng = np.random.default_rng(seed)

    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        coins = rng.random(len(completions)) < p
        return [float(task.format_ok(c) and bool(coin)) for c, coin in zip(completions, coins, strict=True)]
    reward.generator = rng  # type: ignore[attr-defined]  # a resumed run restores its state
    return reward


def majority_vote(task: Task) -> RewardFunc:
    """1 if well formatted and equal to the most common extracted answer among completions of the same prompt.

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = majority_vote(get_task(TaskSpec(family="arithmetic", params={"digits": 1})))
    >>> f(prompts=["2+3="] * 3, completions=["6", "6", "5"], question=["2+3="] * 3, answer=["5"] * 3, uid=["u"] * 3)
    [1.0, 1.0, 0.0]
    """
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        answers = [task.extract(c) for c in completions]
        votes: dict[str, Counter] = {}
        for uid, answer in zip(columns["uid"], answers, strict=True):
            if answer is not None:
                votes.setdefault(uid, Counter())[answer] += 1
        labels = {uid: counter.most_common(1)[0][0] for uid, counter in votes.items()}
        return [float(a is not None and task.format_ok(c) and a == labels.get(uid))
                for c, a, uid in zip(completions, answers, columns["uid"], strict=True)]
    return reward


def policy_scored(scorer: Scorer) -> RewardFunc:
    """A reward computed by the policy itself on its completion (``entropy``, ``self_certainty``)."""
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        return scorer(prompts, columns["completion_ids"])
    return reward


REWARDS: dict[str, Callable[..., RewardFunc]] = {
    "ground_truth": ground_truth,
    "random": random,
    "format_only": format_only,
    "incorrect": incorrect,
    "majority_vote": majority_vote,
}
POLICY_REWARDS = ("entropy", "self_certainty")  # built by the runner, which holds the policy


def known_rewards() -> list[str]:
    return [*REWARDS, *POLICY_REWARDS]


def check_reward(spec: RewardSpec) -> None:
    """Fail helpfully on an unknown reward name."""
    if spec.name not in known_rewards():
        close = difflib.get_close_matches(spec.name, known_rewards(), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SpecError(f"unknown reward {spec.name!r}; {hint}known: {', '.join(known_rewards())}")


def make_reward(spec: RewardSpec, task: Task, *, seed: int, scorer: Scorer | None = None) -> RewardFunc:
    """The reward function named by ``spec``; ``scorer`` supplies policy log-probabilities for the policy rewards."""
    check_reward(spec)
    if spec.name in POLICY_REWARDS:
        if scorer is None:
            raise SpecError(f"reward {spec.name!r} needs the policy (a scorer)")
        return policy_scored(scorer)
    factory = REWARDS[spec.name]
    params = dict(spec.params)
    if spec.name == "random":
        params.setdefault("seed", seed)
    try:
        fn = factory(task, **params)
    except TypeError:
        raise SpecError(f"reward {spec.name!r} does not take parameters {sorted(spec.params)}") from None
    return on_text(fn, spec.name)


def completion_text(completion: str | list[dict[str, str]]) -> str:
    """The text of a completion: TRL hands chat-format completions over as a list of messages.

    >>> completion_text([{"role": "assistant", "content": "<answer>5</answer>"}])
    '<answer>5</answer>'
    """
    if isinstance(completion, str):
        return completion
    return completion[-1]["content"] if completion else ""


def on_text(fn: RewardFunc, name: str) -> RewardFunc:
    """``fn`` applied to the completions' text, named ``name`` (TRL logs rewards by function name)."""
    def reward(prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        return fn(prompts, [completion_text(c) for c in completions], **columns)
    reward.__name__ = name
    if hasattr(fn, "generator"):  # a reward drawing random numbers: its generator is checkpointed
        reward.generator = fn.generator  # type: ignore[attr-defined]
    return reward
