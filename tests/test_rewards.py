"""Reward variants (harness/rl/rewards.py) on constructed completions, and the policy-scored rewards
(entropy, self-certainty) against an independent forward pass of a real tiny organism."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch

import harness.rl.advantages
import harness.rl.rewards
from harness.cache import Cache
from harness.jobs import materialize
from harness.models import load_model
from harness.rl.rewards import (
    format_only,
    formatted_incorrect,
    ground_truth,
    incorrect,
    known_rewards,
    majority_vote,
    make_reward,
    random,
    random_formatted,
)
from harness.rl.trainer import PolicyScorer
from harness.specs import MixComponent, OrganismSpec, RewardSpec, SpecError, TaskSpec
from harness.tasks import get_task

TASK = TaskSpec(family="arithmetic", params={"digits": 1})
TINY = OrganismSpec(mix=(MixComponent(task=TASK),), steps=150)  # pass@1 ~0.5 on 1-digit addition


@pytest.fixture(scope="module")
def task():
    return get_task(TASK)


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    """(model, tokenizer) of the tiny organism; pretrained once per session (the cache lies in the session's
    base temp, shared with tests/test_advantages.py and tests/test_rl.py)."""
    cache = Cache(tmp_path_factory.getbasetemp() / "organism-cache")
    return load_model(TINY, materialize(TINY, cache))


def call(reward, completions, answers, uids=None, questions=None):
    """Call a reward function as TRL does: one prompt per completion, dataset columns as keywords."""
    questions = questions or [f"?{a}=" for a in answers]
    uids = uids or [f"u{i}" for i in range(len(completions))]
    return reward(prompts=questions, completions=completions, question=questions, answer=answers, uid=uids)


# ---------------------------------------------------------------- verifier rewards

CASES = [  # completion, gold answer, formatted, correct
    ("5", "5", True, True),
    (" 5 ", "5", True, True),  # surrounding whitespace is allowed in the bare format
    ("6", "5", True, False),
    ("05", "5", False, True),  # extracts as 5, but not the canonical form
    ("+5", "5", False, True),
    ("x", "5", False, False),
    ("", "5", False, False),
    ("5+", "5", False, False),
    ("12", "12", True, True),
    ("-3", "12", True, False),
]


def test_ground_truth_formatted_incorrect_and_format_only_on_known_cases(task):
    completions = [c for c, *_ in CASES]
    answers = [a for _, a, *_ in CASES]
    formatted = [float(f) for *_, f, _ in CASES]
    right = [float(f and c) for *_, f, c in CASES]
    wrong = [float(f and not c) for *_, f, c in CASES]
    assert call(ground_truth(task), completions, answers) == right
    assert call(formatted_incorrect(task), completions, answers) == wrong
    assert call(format_only(task), completions, answers) == formatted
    # ground truth and incorrect partition the formatted completions (the paper's released code had them equal)
    assert [r + w for r, w in zip(right, wrong, strict=True)] == formatted


def test_incorrect_rewards_the_wrong_majority_label_not_the_gold_answer(task):
    """Shao et al.'s incorrect reward: 1 when the answer equals the problem's (wrong) majority label."""
    completions = ["6", "5", " 6 ", "x", "7"]
    answers = ["5"] * 5
    reward = incorrect(task)
    out = reward(prompts=["2+3="] * 5, completions=completions, question=["2+3="] * 5, answer=answers,
                 uid=["u"] * 5, label=["6"] * 5)
    assert out == [1.0, 0.0, 1.0, 0.0, 0.0]


def test_rewards_return_plain_floats(task):
    for name in ("ground_truth", "formatted_incorrect", "format_only", "majority_vote", "random", "random_formatted"):
        out = call(make_reward(RewardSpec(name=name), task, seed=0), ["5", "x"], ["5", "5"])
        assert all(type(v) is float for v in out), name


# ---------------------------------------------------------------- random

def test_random_reward_p0_and_p1(task):
    completions = ["5", "6", "x", " 7", "05", "3"] * 5
    answers = ["5"] * len(completions)
    formatted = call(format_only(task), completions, answers)
    assert call(random(task, p=0.0, seed=3), completions, answers) == [0.0] * len(completions)
    assert call(random(task, p=1.0, seed=3), completions, answers) == [1.0] * len(completions)
    assert call(random_formatted(task, p=1.0, seed=3), completions, answers) == formatted


def test_random_reward_is_seeded(task):
    completions, answers = ["5"] * 200, ["5"] * 200
    a, b, c = random(task, seed=7), random(task, seed=7), random(task, seed=8)
    first = [call(a, completions, answers), call(a, completions, answers)]
    assert first == [call(b, completions, answers), call(b, completions, answers)]  # same seed, same sequence
    assert first[0] != first[1]  # successive batches draw fresh coins
    assert call(c, completions, answers) != first[0]
    # through make_reward the run's seed is the default; an explicit seed parameter wins
    spec = RewardSpec(name="random")
    assert call(make_reward(spec, task, seed=7), completions, answers) == first[0]
    explicit = RewardSpec(name="random", params={"seed": 7})
    assert call(make_reward(explicit, task, seed=99), completions, answers) == first[0]


def test_random_reward_rate(task):
    completions, answers = ["5"] * 20_000, ["5"] * 20_000
    for p in (0.5, 0.2):
        rate = np.mean(call(random(task, p=p, seed=0), completions, answers))
        assert abs(rate - p) < 4 * math.sqrt(p * (1 - p) / len(completions)), (p, rate)
    # the coin ignores the response (Shao et al.); the format-gated form gives unformatted completions nothing
    unformatted = call(random(task, p=0.5, seed=0), ["x"] * 1000, ["5"] * 1000)
    assert abs(np.mean(unformatted) - 0.5) < 4 * math.sqrt(0.25 / 1000)
    assert call(random_formatted(task, p=0.5, seed=0), ["x"] * 1000, ["5"] * 1000) == [0.0] * 1000


# ---------------------------------------------------------------- majority vote

def test_majority_vote_groups_by_uid(task):
    completions = ["3", "3", "4", "7", "8", "8", "8"]
    uids = ["a", "a", "a", "b", "b", "b", "b"]
    # the gold answer is ignored: the label is each group's most common answer
    assert call(majority_vote(task), completions, ["4"] * 7, uids=uids) == [1, 1, 0, 0, 1, 1, 1]


def test_majority_vote_none_never_votes(task):
    completions = ["x", "x", "x", "2", "", "y"]
    uids = ["a"] * 6
    assert call(majority_vote(task), completions, ["9"] * 6, uids=uids) == [0, 0, 0, 1, 0, 0]
    # a group of only unreadable completions has no label and no reward
    assert call(majority_vote(task), ["x", "?", ""], ["1"] * 3, uids=["z"] * 3) == [0, 0, 0]


def test_majority_vote_extractable_but_unformatted(task):
    # "05" and "+5" read as 5 and vote, but only the well-formatted "5" is rewarded
    out = call(majority_vote(task), ["05", "+5", "5", "6"], ["0"] * 4, uids=["a"] * 4)
    assert out == [0, 0, 1, 0]


def test_majority_vote_ties_go_to_the_first_seen(task):
    assert call(majority_vote(task), ["3", "4", "4", "3"], ["0"] * 4, uids=["a"] * 4) == [1, 0, 0, 1]
    assert call(majority_vote(task), ["4", "3", "3", "4"], ["0"] * 4, uids=["a"] * 4) == [1, 0, 0, 1]
    assert call(majority_vote(task), ["4", "3"], ["0"] * 2, uids=["a"] * 2) == [1, 0]


# ---------------------------------------------------------------- spec errors

def test_unknown_reward_suggests_the_closest_name(task):
    with pytest.raises(SpecError, match=r"unknown reward 'grund_truth'; did you mean 'ground_truth'\?"):
        make_reward(RewardSpec(name="grund_truth"), task, seed=0)
    with pytest.raises(SpecError, match="did you mean 'self_certainty'"):
        make_reward(RewardSpec(name="self-certainty"), task, seed=0)
    with pytest.raises(SpecError, match="known: ground_truth, random, format_only, incorrect, majority_vote, "
                                        "entropy, self_certainty"):
        make_reward(RewardSpec(name="zzz"), task, seed=0)
    assert known_rewards()[:7] == ["ground_truth", "random", "format_only", "incorrect", "majority_vote",
                                   "entropy", "self_certainty"]


@pytest.mark.parametrize(("name", "params", "message"), [
    ("ground_truth", {"p": 0.5}, "does not take parameters"),
    ("majority_vote", {"k": 3}, "does not take parameters"),
    ("random", {"q": 0.5}, "does not take parameters"),
    ("random", {"p": 1.5}, r"p must be in \[0, 1\]"),
    ("random", {"p": -0.1}, r"p must be in \[0, 1\]"),
])
def test_bad_reward_params(task, name, params, message):
    with pytest.raises(SpecError, match=message):
        make_reward(RewardSpec(name=name, params=params), task, seed=0)


@pytest.mark.parametrize("name", ["entropy", "self_certainty"])
def test_policy_rewards_need_the_policy(task, name):
    with pytest.raises(SpecError, match="needs the policy"):
        make_reward(RewardSpec(name=name), task, seed=0)


def test_reward_function_is_named_after_the_variant(task):
    # TRL logs each reward under its function's name
    assert make_reward(RewardSpec(name="incorrect"), task, seed=0).__name__ == "incorrect"


# ---------------------------------------------------------------- policy-scored rewards

def manual_logprobs(model, prompt_ids: list[int], completion: list[int]) -> torch.Tensor:
    """Log-probability distributions (T, V) over the completion's tokens, one forward pass per prefix."""
    rows = []
    with torch.no_grad():
        for t in range(len(completion)):
            ids = torch.tensor([prompt_ids + completion[:t]])
            rows.append(torch.log_softmax(model(input_ids=ids).logits[0, -1].double(), dim=-1))
    return torch.stack(rows)


def completion_ids(tokenizer, text: str) -> list[int]:
    return [*tokenizer.encode(text, add_special_tokens=False), tokenizer.eos_token_id]


def policy_reward(name: str, organism):
    """The registered policy reward ``name`` over the organism, called as TRL calls it (completion ids as a keyword)."""
    model, tokenizer = organism
    policy = PolicyScorer(tokenizer)
    policy.model = model
    reward = make_reward(RewardSpec(name=name), get_task(TASK), seed=0, policy=policy)

    def score(prompts: list[str], ids: list[list[int]]) -> list[float]:
        texts = [tokenizer.decode(c, skip_special_tokens=True) for c in ids]
        return reward(prompts=prompts, completions=texts, completion_ids=ids, question=prompts,
                      answer=["0"] * len(prompts), uid=[str(i) for i in range(len(prompts))])
    return score


PROMPTS = ["2+3=", "7+8=", "0+0=", "9+4="]
COMPLETIONS = ["5", "15", "1", "13"]


def test_entropy_reward_is_the_mean_completion_logprob(organism):
    model, tokenizer = organism
    scorer = policy_reward("entropy", organism)
    ids = [completion_ids(tokenizer, c) for c in COMPLETIONS]
    ids.append(tokenizer.encode("+=9", add_special_tokens=False))  # no EOS: a truncated completion
    prompts = [*PROMPTS, "3+3="]
    scores = scorer(prompts, ids)
    for prompt, completion, score in zip(prompts, ids, scores, strict=True):
        logp = manual_logprobs(model, tokenizer.encode(prompt, add_special_tokens=False), completion)
        expected = logp[torch.arange(len(completion)), torch.tensor(completion)].mean().item()
        assert score == pytest.approx(expected, abs=1e-5)
        assert score < 0


def test_self_certainty_is_kl_from_uniform(organism):
    model, tokenizer = organism
    scorer = policy_reward("self_certainty", organism)
    ids = [completion_ids(tokenizer, c) for c in COMPLETIONS]
    scores = scorer(PROMPTS, ids)
    vocab = model.config.vocab_size
    for prompt, completion, score in zip(PROMPTS, ids, scores, strict=True):
        logp = manual_logprobs(model, tokenizer.encode(prompt, add_special_tokens=False), completion)
        assert logp.shape[1] == vocab
        expected = (-math.log(vocab) - logp.mean(dim=1)).mean().item()
        # the same quantity written as KL(U || p) = sum_j (1/V) log((1/V) / p_j)
        kl = (torch.full_like(logp, 1 / vocab) * (-math.log(vocab) - logp)).sum(dim=1).mean().item()
        assert expected == pytest.approx(kl, abs=1e-9)
        assert score == pytest.approx(expected, abs=1e-4)
        assert score > 0  # KL to the uniform distribution is positive for any non-uniform policy
    # the reward depends on the distributions, not on which tokens were sampled at them
    swapped = [tokenizer.encode("5", add_special_tokens=False), tokenizer.encode("9", add_special_tokens=False)]
    a, b = scorer(["2+3=", "2+3="], swapped)
    assert a == pytest.approx(b, abs=1e-6)


def test_higher_probability_completions_get_higher_entropy_reward(organism):
    model, tokenizer = organism
    scorer = policy_reward("entropy", organism)
    prompt = "2+3="
    candidates = [completion_ids(tokenizer, str(d)) for d in range(10)]  # all of length 2
    scores = scorer([prompt] * 10, candidates)
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    joint = [manual_logprobs(model, prompt_ids, c)[torch.arange(2), torch.tensor(c)].sum().item()
             for c in candidates]
    assert np.argsort(scores).tolist() == np.argsort(joint).tolist()
    # where the organism answers right greedily, the right answer out-scores the typical wrong one
    known = 0
    for a, b in [(2, 3), (1, 4), (3, 3), (4, 4), (2, 2), (1, 1), (3, 4), (0, 5)]:
        prompt_ids = tokenizer.encode(f"{a}+{b}=", add_special_tokens=False)
        greedy = model.generate(torch.tensor([prompt_ids]), max_new_tokens=3, do_sample=False,
                                pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        if tokenizer.decode(greedy[0, len(prompt_ids):], skip_special_tokens=True) == str(a + b):
            known += 1
            scores = scorer([f"{a}+{b}="] * 10, candidates)
            assert scores[a + b] > np.median(scores)
    assert known >= 3


def test_empty_completion_scores_zero(organism):
    for name in ("entropy", "self_certainty"):
        assert policy_reward(name, organism)(["2+3="], [[]]) == [0.0]


# ---------------------------------------------------------------- doctests

@pytest.mark.parametrize("module", [harness.rl.rewards, harness.rl.advantages])
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
