"""Reward variants, each a plain TRL reward function over a batch (completions in, floats out).

Dataset columns reach the functions as keyword arguments (``answer``, ``question``, ``uid``; TRL adds
``completion_ids``). Each variant is a factory ``factory(task, **params) -> RewardFunc`` registered by name
with ``harness.registry.register_reward``; variants follow the paper (arXiv 2508.21188) and the papers it tests:

- ``ground_truth``: format and correct.
- ``random``: Bernoulli(p), independent of the response (Shao et al. 2025, arXiv 2506.10947).
- ``format_only``: format.
- ``incorrect``: the answer equals the base model's majority-vote label, trained only on the problems whose
  label is wrong (Shao et al. 2025: "majority-voted labels, filtered to keep only the incorrect labels").
- ``random_formatted`` and ``formatted_incorrect``: this harness's earlier, format-gated forms
  (format and Bernoulli(p); format and not correct), kept under their own names.
- ``majority_vote``: format and equal to the most common extracted answer of the prompt's group (TTRL).
- ``entropy``: mean token log-probability of the completion under the current policy (entropy minimisation).
- ``self_certainty``: mean over tokens of KL(uniform || policy) (Intuitor).

The last two need the policy: their factories receive ``policy=`` (a ``Policy``) besides the task.
``incorrect`` is registered with ``labels="wrong_majority"``: the runner labels the training pool with
the base model's majority answers (a cached evaluation of the train split) and hands them over as the
``label`` column.
"""

from __future__ import annotations

import inspect
from collections import Counter
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from harness.registry import check_reward_params, names, register_reward
from harness.specs import RewardSpec, SpecError
from harness.tasks.base import Problem, Task

if TYPE_CHECKING:
    import torch


class RewardFunc(Protocol):
    """The call TRL makes: one float per completion."""

    def __call__(self, prompts: list[Any], completions: list[str], **columns: Any) -> list[float]: ...


class Policy(Protocol):
    """The policy being trained, as a reward registered with ``needs_policy=True`` sees it."""

    def log_probs(self, prompts: list[Any], completion_ids: list[list[int]]) -> list[torch.Tensor]:
        """Per completion, the policy's log-probabilities over the vocabulary at each of its tokens, shape (T, V)
        for a completion of T tokens."""


def batch_problems(columns: dict[str, Any]) -> list[Problem]:
    """The batch's problems, one per completion, from the dataset columns TRL passes to a reward function."""
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
        return [float(task.format_ok(c) and task.is_correct(c, p)) for c, p in zip(completions, batch_problems(columns),
                                                                                     strict=True)]
    return reward


def incorrect(task: Task) -> RewardFunc:
    """1 if the completion's answer equals the problem's (wrong) majority-vote label, the ``label`` column.

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = incorrect(get_task(TaskSpec(family="arithmetic", params={"digits": 1})))
    >>> f(prompts=["2+3="] * 3, completions=["5", "6", "x"], question=["2+3="] * 3, answer=["5"] * 3,
    ...   uid=["u"] * 3, label=["6"] * 3)
    [0.0, 1.0, 0.0]
    """
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        return [float(answer is not None and task.answers_match(answer, label))
                for answer, label in zip(map(task.extract, completions), columns["label"], strict=True)]
    return reward


def formatted_incorrect(task: Task) -> RewardFunc:
    """1 if the completion is well formatted and wrong, else 0.

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = formatted_incorrect(get_task(TaskSpec(family="arithmetic", params={"digits": 1})))
    >>> f(prompts=["2+3="] * 3, completions=["5", "6", "x"], question=["2+3="] * 3, answer=["5"] * 3, uid=["u"] * 3)
    [0.0, 1.0, 0.0]
    """
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        return [float(task.format_ok(c) and not task.is_correct(c, p))
                for c, p in zip(completions, batch_problems(columns), strict=True)]
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


def _coins(p: float, seed: int) -> np.random.Generator:
    if not 0 <= p <= 1:
        raise SpecError(f"random reward: p must be in [0, 1], got {p}")
    return np.random.default_rng(seed)


def random(task: Task, *, p: float = 0.5, seed: int = 0) -> RewardFunc:
    """Bernoulli(p) whatever the response, from a seeded generator (deterministic per run).

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = random(get_task(TaskSpec(family="arithmetic", params={"digits": 1})), p=1.0)
    >>> f(prompts=["2+3="] * 2, completions=["6", "x"], question=["2+3="] * 2, answer=["5"] * 2, uid=["u"] * 2)
    [1.0, 1.0]
    """
    rng = _coins(p, seed)

    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        return [float(coin) for coin in rng.random(len(completions)) < p]
    reward.generator = rng  # type: ignore[attr-defined]  # a resumed run restores its state
    return reward


def random_formatted(task: Task, *, p: float = 0.5, seed: int = 0) -> RewardFunc:
    """Bernoulli(p) for well-formatted completions, 0 for the others.

    >>> from harness.specs import TaskSpec; from harness.tasks import get_task
    >>> f = random_formatted(get_task(TaskSpec(family="arithmetic", params={"digits": 1})), p=1.0)
    >>> f(prompts=["2+3="] * 2, completions=["6", "x"], question=["2+3="] * 2, answer=["5"] * 2, uid=["u"] * 2)
    [1.0, 0.0]
    """
    rng = _coins(p, seed)

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


def entropy(task: Task, *, policy: Policy) -> RewardFunc:
    """Mean log-probability of the completion's tokens under the policy (entropy minimisation); 0 when empty."""
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        import torch

        ids = columns["completion_ids"]
        return [logp.gather(1, torch.tensor(c, device=logp.device)[:, None]).mean().item() if len(c) else 0.0
                for logp, c in zip(policy.log_probs(prompts, ids), ids, strict=True)]
    return reward


def self_certainty(task: Task, *, policy: Policy) -> RewardFunc:
    """Mean over the completion's tokens of KL(uniform || policy) = -log V - mean_j log p_j (Intuitor); 0 when empty."""
    def reward(prompts: list[Any], completions: list[str], **columns: Any) -> list[float]:
        import torch

        ids = columns["completion_ids"]
        return [(-torch.log(torch.tensor(float(logp.shape[-1]))) - logp.mean(dim=-1)).mean().item() if len(c) else 0.0
                for logp, c in zip(policy.log_probs(prompts, ids), ids, strict=True)]
    return reward


for _name, _factory in (("ground_truth", ground_truth), ("random", random), ("format_only", format_only)):
    register_reward(_name, _factory)
register_reward("incorrect", incorrect, labels="wrong_majority")
register_reward("majority_vote", majority_vote)
register_reward("entropy", entropy, needs_policy=True)
register_reward("self_certainty", self_certainty, needs_policy=True)
register_reward("random_formatted", random_formatted)
register_reward("formatted_incorrect", formatted_incorrect)


def known_rewards() -> list[str]:
    """Every registered reward name."""
    return names("reward")


def check_reward(spec: RewardSpec) -> None:
    """Fail helpfully on an unknown reward name or parameters it does not take."""
    check_reward_params(spec.name, spec.params)


def make_reward(spec: RewardSpec, task: Task, *, seed: int, policy: Policy | None = None) -> RewardFunc:
    """The reward function named by ``spec``; ``policy`` serves the rewards registered with ``needs_policy``.

    A factory with a ``seed`` parameter gets the run's ``seed`` unless the spec's parameters set one.
    """
    registered = check_reward_params(spec.name, spec.params)
    params = dict(spec.params)
    if "seed" in inspect.signature(registered.factory).parameters:
        params.setdefault("seed", seed)
    if registered.needs_policy:
        if policy is None:
            raise SpecError(f"reward {spec.name!r} needs the policy (make_reward(..., policy=...))")
        params["policy"] = policy
    return on_text(registered.factory(task, **params), spec.name)


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
