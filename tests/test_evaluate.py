"""Evaluation jobs: stored generations, scores recomputed from them, re-scoring without sampling, caching."""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import TINY_TASK, sha256, shared_and_plain_samples, tiny_eval, tiny_organism

from harness.cache import MANIFEST, Cache
from harness.evaluate import GENERATIONS, EvalResult, eval_problems, load_result, score
from harness.jobs import evaluate, materialize
from harness.models import load_model
from harness.specs import SpecError
from harness.tasks import get_task
from harness.tasks.arithmetic import ArithmeticTask

ORGANISM = tiny_organism(steps=60)  # enough to get some answers right: scores are not all zero
SPEC = tiny_eval(ORGANISM, n=8)
KS = range(1, SPEC.n + 1)


class AnyIntegerIsRight(ArithmeticTask):
    """A different verifier: every completion with an integer answer counts as correct."""

    def answers_match(self, answer: str, gold: str) -> bool:
        return True


def generations(entry: Path) -> dict:
    return json.loads((entry / GENERATIONS).read_text())


def chen_pass_at_k(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def majority_at_k(answers: list[str | None], gold: str, k: int) -> float:
    """Majority vote over disjoint chunks of k answers; None never wins; ties go to the first seen."""
    wins = []
    for start in range(0, len(answers) - k + 1, k):
        votes = Counter(a for a in answers[start:start + k] if a is not None)
        top = max(votes.values(), default=0)
        winner = next((a for a in answers[start:start + k] if a is not None and votes[a] == top), None)
        wins.append(winner == gold)
    return float(np.mean(wins))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """One evaluation of a tiny organism in a fresh cache (the organism pretrained on the way)."""
    cache = Cache(tmp_path_factory.mktemp("cache"))
    result = evaluate(SPEC, cache)
    entry = cache.path(SPEC.key)
    return SimpleNamespace(cache=cache, root=cache.root, result=result, entry=entry,
                           computed=list(cache.stats.computed), record=generations(entry))


def test_evaluation_stores_n_generations_per_problem_and_greedy(base: SimpleNamespace) -> None:
    assert base.computed == [ORGANISM.key, SPEC.key]  # the model is a job of its own, computed on demand
    record = base.record
    assert set(record) == {"problems", "samples", "greedy"}
    problems = eval_problems(SPEC)
    assert record["problems"] == [{"uid": p.uid, "question": p.question, "answer": p.answer} for p in problems]
    assert len(problems) == SPEC.num_problems
    assert [len(row) for row in record["samples"]] == [SPEC.n] * SPEC.num_problems
    assert len(record["greedy"]) == SPEC.num_problems
    assert all(isinstance(s, str) for row in record["samples"] for s in row)
    assert all(len(s) <= SPEC.max_new_tokens for row in record["samples"] for s in row)  # 1 character per token
    manifest = json.loads((base.entry / MANIFEST).read_text())
    assert manifest["spec"] == SPEC.to_dict() and manifest["spec"]["seed"] == SPEC.seed  # stored with its seed
    assert manifest["spec"]["model"] == ORGANISM.to_dict()
    assert base.result.samples == record["samples"] and base.result.greedy == record["greedy"]


def test_scores_agree_with_recomputation_from_stored_generations(base: SimpleNamespace) -> None:
    result, record, task = base.result, base.record, get_task(TINY_TASK)
    golds = [p["answer"] for p in record["problems"]]
    correct = [sum(task.extract(s) == gold for s in row) for row, gold in zip(record["samples"], golds, strict=True)]
    assert list(result.correct) == correct
    assert 0 < sum(correct) < SPEC.n * SPEC.num_problems, "a degenerate organism would make this test vacuous"
    for k in KS:
        expected = [chen_pass_at_k(SPEC.n, c, k) for c in correct]
        np.testing.assert_allclose(result.per_problem(k), expected, rtol=1e-12, atol=1e-12)
        assert result.pass_at_k(k) == pytest.approx(np.mean(expected), abs=1e-12)
        answers = [[task.extract(s) for s in row] for row in record["samples"]]
        assert result.answers == answers
        majority = [majority_at_k(a, gold, k) for a, gold in zip(answers, golds, strict=True)]
        assert result.maj_at_k(k) == pytest.approx(np.mean(majority), abs=1e-12)
    greedy = [task.extract(g) == gold for g, gold in zip(record["greedy"], golds, strict=True)]
    assert list(result.greedy_correct) == greedy
    formatted = [sum(task.format_ok(s) for s in row) for row in record["samples"]]
    summary = result.summary([1, 2, 4, 8, 16])
    assert set(summary) == {"pass@1", "pass@2", "pass@4", "pass@8", "greedy", "format"}  # k > n left out
    assert summary["greedy"] == pytest.approx(np.mean(greedy))
    assert summary["format"] == pytest.approx(np.sum(formatted) / (SPEC.n * SPEC.num_problems))
    assert result.mean_accuracy == pytest.approx(summary["pass@1"])
    assert summary["pass@1"] <= summary["pass@2"] <= summary["pass@4"] <= summary["pass@8"]


def test_k_above_n_is_a_one_line_spec_error(base: SimpleNamespace) -> None:
    for call in (base.result.pass_at_k, base.result.per_problem):
        with pytest.raises(SpecError) as info:
            call(SPEC.n + 1)
        message = str(info.value)
        assert "\n" not in message and f"pass@{SPEC.n + 1}" in message and f"n={SPEC.n}" in message
    with pytest.raises(ValueError, match="maj@k") as info:
        base.result.maj_at_k(SPEC.n + 1)
    assert "\n" not in str(info.value)


def test_rescoring_with_another_verifier_needs_no_sampling(base: SimpleNamespace) -> None:
    cache = Cache(base.root)
    before = (sha256(base.entry / GENERATIONS), (base.entry / GENERATIONS).stat().st_mtime_ns)
    original = evaluate(SPEC, cache)
    record = generations(cache.path(SPEC.key))

    lenient = AnyIntegerIsRight(TINY_TASK)
    rescored = score(SPEC, record, task=lenient)
    integers = [sum(lenient.extract(s) is not None for s in row) for row in record["samples"]]
    assert list(rescored.correct) == integers
    assert rescored.pass_at_k(1) > original.pass_at_k(1)
    assert rescored.samples == original.samples and rescored.greedy == original.greedy

    boxed = get_task(dataclasses.replace(TINY_TASK, format="boxed"))  # another spec: last number, not the whole text
    reread = score(SPEC, record, task=boxed)
    assert np.all(reread.correct >= original.correct)
    assert reread.summary([1])["format"] == 0.0 < original.summary([1])["format"]  # no \boxed{} anywhere
    assert reread.answers != original.answers
    same = score(SPEC, record, task=get_task(TINY_TASK))
    assert np.array_equal(same.correct, original.correct) and same.answers == original.answers

    assert cache.stats.computed == [] and cache.stats.loaded == [SPEC.key]  # nothing was sampled again
    assert (sha256(base.entry / GENERATIONS), (base.entry / GENERATIONS).stat().st_mtime_ns) == before
    assert base.computed.count(SPEC.key) == 1


def test_the_same_spec_twice_is_loaded_not_recomputed(base: SimpleNamespace) -> None:
    cache = Cache(base.root)
    first = evaluate(SPEC, cache)
    second = evaluate(SPEC, cache)
    assert cache.stats.computed == [] and cache.stats.loaded == [SPEC.key, SPEC.key]
    assert isinstance(second, EvalResult)
    assert np.array_equal(first.correct, base.result.correct) and second.samples == base.result.samples
    assert load_result(SPEC, materialize(SPEC, cache)).samples == base.result.samples


def test_another_seed_samples_again_on_the_same_model_and_problems(base: SimpleNamespace) -> None:
    cache = Cache(base.root)
    reseeded = dataclasses.replace(SPEC, seed=1)
    assert reseeded.key != SPEC.key
    result = evaluate(reseeded, cache)
    assert cache.stats.computed == [reseeded.key] and cache.stats.loaded == [ORGANISM.key]  # no pretraining
    assert [p.uid for p in result.problems] == [p.uid for p in base.result.problems]
    assert result.greedy == base.result.greedy  # greedy decoding does not depend on the seed
    assert result.samples != base.result.samples


def test_temperature_zero_samples_equal_the_greedy_completion(base: SimpleNamespace) -> None:
    n = 1
    cache = Cache(base.root)
    greedy_spec = dataclasses.replace(SPEC, temperature=0.0, n=n)
    result = evaluate(greedy_spec, cache)
    assert cache.stats.computed == [greedy_spec.key]
    assert result.samples == [[g] * n for g in base.result.greedy]
    assert np.array_equal(result.greedy_correct, base.result.greedy_correct)


def test_greedy_evaluation_with_several_samples_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"temperature 0 .* n = 1"):
        dataclasses.replace(SPEC, temperature=0.0, n=3)


def test_stored_scores_are_reused_until_the_verifier_changes(base: SimpleNamespace, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from harness import evaluate as evaluate_module
    from harness.evaluate import SCORES, verifier_tag

    task = get_task(SPEC.task)
    stored = json.loads((base.entry / SCORES).read_text())
    assert stored["verifier"] == verifier_tag(task)
    assert stored["correct"] == base.result.correct.tolist() and stored["answers"] == base.result.answers
    assert sum(stored["correct"]) > 0
    copy = tmp_path / "entry"
    shutil.copytree(base.entry, copy)
    (copy / SCORES).write_text(json.dumps({**stored, "correct": [0] * len(stored["correct"])}))
    assert evaluate_module._load(SPEC, copy).correct.sum() == 0  # same verifier: the stored scores are used
    monkeypatch.setattr(type(task), "verifier_version", task.verifier_version + 1)
    assert evaluate_module._load(SPEC, copy).correct.tolist() == stored["correct"]  # new verifier: re-scored


def test_prompts_run_once_for_their_samples_give_the_samples_of_plain_generate(base: SimpleNamespace) -> None:
    model, tokenizer = load_model(ORGANISM, materialize(ORGANISM, base.cache))
    prompts = ["3+4=", "12+7=", "5*6=", "18-9="]  # of several lengths: left padding is shared too
    shared, plain = shared_and_plain_samples(model, tokenizer, prompts, n=16)
    assert len(shared) == 64 and shared == plain
    assert len(set(shared)) > 4  # sampled, not one completion per prompt


def test_the_batched_backend_draws_from_the_same_distribution_as_generate(base: SimpleNamespace) -> None:
    """The batched backend (the engine's stacked sampler) and transformers' generate sample the same model:
    identical greedy completions, and per-problem accuracies that agree within sampling noise."""
    many = dataclasses.replace(SPEC, n=256, num_problems=8)
    hf = evaluate(many, base.cache)
    ours = evaluate(dataclasses.replace(many, backend="batched"), base.cache)
    assert ours.greedy == hf.greedy and ours.problems == hf.problems
    assert all(len(row) == many.n for row in ours.samples)
    diff = ours.correct / many.n - hf.correct / many.n
    spread = np.sqrt(2 * np.maximum(hf.correct / many.n * (1 - hf.correct / many.n), 1 / many.n) / many.n)
    assert np.all(np.abs(diff) < 4 * spread + 1e-9), (ours.correct, hf.correct)
    again = evaluate(dataclasses.replace(many, backend="batched"), Cache(base.root.parent / "again"))
    assert again.samples == ours.samples  # seeded: the same spec samples the same completions


def test_the_batched_backend_is_for_organisms_only() -> None:
    from harness.evaluate import check
    from harness.specs import PretrainedSpec

    hub = PretrainedSpec(source="org/model", fingerprint="hub:org/model@main")
    with pytest.raises(SpecError, match="backend: batched samples organisms"):
        check(dataclasses.replace(SPEC, model=hub, backend="batched"))
