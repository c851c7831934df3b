"""Evaluation jobs: seeded sampling of n completions per held-out problem, scored on load.

The cached job stores the generations themselves (with their seed), not only the scores, so a
changed verifier re-scores stored generations without sampling again (``score``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import stats
from harness.progress import Progress
from harness.specs import EvalSpec, SpecError
from harness.tasks import get_task
from harness.tasks.base import Problem, Task
from harness.tasks.hub import HubTask

if TYPE_CHECKING:
    from harness.jobs import Inputs

GENERATIONS = "generations.json"
SCORES = "scores.json"  # the scores at sampling time, with the verifier that produced them
PROBLEM_SEED = 0  # every evaluation of a task uses the same held-out problems


def eval_problems(spec: EvalSpec) -> list[Problem]:
    return get_task(spec.task).problems(spec.split, spec.num_problems, seed=PROBLEM_SEED)


def check(spec: EvalSpec) -> None:
    """Planning-time check: the task holds the problems asked for (hub datasets are checked by the job), and the
    batched backend samples organisms only."""
    from harness.models import base_organism

    if spec.backend == "batched" and not base_organism(spec.model):
        raise SpecError(f"backend: batched samples organisms (and their RL runs), not {spec.model.short}; use "
                        "transformers or vllm")
    task = get_task(spec.task)
    if isinstance(task, HubTask):
        return
    available = task.available(spec.split)
    if spec.num_problems > available:
        raise SpecError(f"num_problems: {spec.num_problems} problems asked of {task.name}, whose {spec.split} "
                        f"split holds {available}; expected num_problems <= {available}")


def render_prompt(task: Task, problem: Problem, tokenizer: Any) -> str:
    """The prompt text: bare text as is, chat messages through the tokenizer's chat template."""
    prompt = task.prompt(problem)
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)


def sample(spec: EvalSpec, out: Path, inputs: Inputs) -> dict:
    """The evaluation job: writes the prompts, n sampled and one greedy completion per problem."""
    if spec.backend == "vllm":
        from harness.models.vllm_backend import generate
    else:
        generate = _generate_batched if spec.backend == "batched" else _generate_transformers
    task = get_task(spec.task)
    problems = eval_problems(spec)
    samples, greedy = generate(spec, task, problems, inputs.model(spec.model))
    record = {
        "problems": [{"uid": p.uid, "question": p.question, "answer": p.answer} for p in problems],
        "samples": samples,
        "greedy": greedy,
    }
    (out / GENERATIONS).write_text(json.dumps(record))
    (out / SCORES).write_text(json.dumps(scores_record(score(spec, record, task), task)))
    return {}


def verifier_tag(task: Task) -> str:
    """Names the verifier that scored a record: stored scores are reused only by the same verifier."""
    return f"{task.family}:{task.verifier_version}:{task.spec.format}"


def scores_record(result: EvalResult, task: Task) -> dict:
    return {"verifier": verifier_tag(task), "answers": result.answers, "correct": result.correct.tolist(),
            "formatted": result.formatted.tolist(), "greedy_correct": result.greedy_correct.tolist()}


def _generate_transformers(spec: EvalSpec, task: Task, problems: list[Problem],
                           entry: Path | None) -> tuple[list[list[str]], list[str]]:
    import torch

    from harness.determinism import seed_everything
    from harness.models import load_model

    seed_everything(spec.seed)
    model, tokenizer = load_model(spec.model, entry)
    prompts = [render_prompt(task, p, tokenizer) for p in problems]
    per_chunk = max(1, spec.batch_size // spec.n)
    samples: list[list[str]] = []
    greedy: list[str] = []
    common = {"max_new_tokens": spec.max_new_tokens, "pad_token_id": tokenizer.pad_token_id,
              "eos_token_id": tokenizer.eos_token_id}
    with Progress(total=len(prompts), desc=f"evaluate {spec.short}") as progress, torch.inference_mode():
        for start in range(0, len(prompts), per_chunk):
            chunk = prompts[start:start + per_chunk]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
            width = enc["input_ids"].shape[1]
            torch.manual_seed(spec.seed * 1_000_003 + start)
            if spec.temperature > 0:
                out = model.generate(**_shared_prompts(model, enc, spec.n), do_sample=True,
                                     temperature=spec.temperature, top_p=spec.top_p, top_k=0, **common)
            else:
                out = model.generate(**enc, do_sample=False, **common)
            texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
            samples.extend(texts[i * spec.n:(i + 1) * spec.n] for i in range(len(chunk)))
            out = model.generate(**enc, do_sample=False, **common)
            greedy.extend(tokenizer.batch_decode(out[:, width:], skip_special_tokens=True))
            progress.update(len(samples))
    return samples, greedy


GREEDY_NOISE = 0.5  # a constant uniform draw: the Gumbel noise is the same for every token, so the argmax is greedy


def _generate_batched(spec: EvalSpec, task: Task, problems: list[Problem],
                      entry: Path | None) -> tuple[list[list[str]], list[str]]:
    """Samples of an organism through the stacked forward of the batched engine (harness.models.stacked): the
    same categorical draws as ``generate`` (Gumbel-max on noise from the spec's seed), without its per-step
    overhead. Prompts are left-padded to the widest; a completion ends at the end token."""
    import torch

    from harness.determinism import seed_everything
    from harness.models import organism, stacked

    assert entry is not None, "an organism's evaluation reads its cache entry"
    seed_everything(spec.seed)
    tokenizer = organism.load_tokenizer(entry)
    arch, params = stacked.load_stacked(entry, 1)
    encoded = [tokenizer.encode(str(task.prompt(p)), add_special_tokens=False) for p in problems]
    width = max(map(len, encoded))
    ids = torch.tensor([[arch.pad_id] * (width - len(e)) + e for e in encoded])
    valid = torch.tensor([[False] * (width - len(e)) + [True] * len(e) for e in encoded])
    rotary = stacked.Rotary(arch, width + spec.max_new_tokens, torch.device("cpu"))
    generator = torch.Generator().manual_seed(spec.seed)
    per_chunk = max(1, spec.batch_size // spec.n)
    decode = tokenizer.backend_tokenizer.decode_batch
    samples: list[list[str]] = []
    greedy: list[str] = []

    def texts(out: stacked.Samples) -> list[str]:
        rows = [row[:k] for row, k in zip(out.ids[0].tolist(), out.lengths[0].tolist(), strict=True)]
        return decode(rows, skip_special_tokens=True)

    with Progress(total=len(problems), desc=f"evaluate {spec.short}") as progress, torch.inference_mode():
        for start in range(0, len(problems), per_chunk):
            chunk_ids, chunk_valid = ids[None, start:start + per_chunk], valid[None, start:start + per_chunk]
            count = chunk_ids.shape[1]
            constant = torch.full((1, count, spec.max_new_tokens, arch.vocab), GREEDY_NOISE)
            best = texts(stacked.sample(arch, params, chunk_ids, chunk_valid, constant, eos_id=tokenizer.eos_token_id,
                                        temperature=1.0, top_p=1.0, rotary=rotary))
            greedy.extend(best)
            if spec.temperature == 0:  # greedy sampling (n = 1): the greedy completion itself
                samples.extend([text] for text in best)
            else:
                noise = torch.rand(1, count * spec.n, spec.max_new_tokens, arch.vocab, generator=generator)
                drawn = texts(stacked.sample(arch, params, chunk_ids, chunk_valid, noise,
                                             eos_id=tokenizer.eos_token_id, temperature=spec.temperature,
                                             top_p=spec.top_p, rotary=rotary))
                samples.extend(drawn[i * spec.n:(i + 1) * spec.n] for i in range(count))
            progress.update(len(samples))
    return samples, greedy


def _shared_prompts(model: Any, enc: Any, n: int) -> dict[str, Any]:
    """``generate`` inputs for n samples of each prompt, with the prompts run through the model once.

    Each prompt but its last token is run once and its KV cache repeated for its n samples (Hugging
    Face's prefix reuse), instead of ``num_return_sequences=n`` running every prompt n times. Sampling
    draws the same random numbers in the same order, so the samples are those of plain ``generate``
    (tests/test_evaluate.py compares the two).
    """
    from transformers import DynamicCache

    ids, mask = enc["input_ids"], enc["attention_mask"]
    cache = DynamicCache(config=model.config)
    if ids.shape[1] > 1:
        positions = (mask.cumsum(-1) - 1).clamp(min=0)  # as generate numbers left-padded prompts
        model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], cache=cache,
              use_cache=True)
        cache.batch_repeat_interleave(n)
    return {"input_ids": ids.repeat_interleave(n, 0), "attention_mask": mask.repeat_interleave(n, 0), "cache": cache}


@dataclass(frozen=True)
class EvalResult:
    """Scored generations of one evaluation job. Arrays are per problem, shape (P,)."""

    spec: EvalSpec
    problems: list[Problem]
    samples: list[list[str]]  # (P, n)
    greedy: list[str]  # (P,)
    answers: list[list[str | None]]  # extracted answers, (P, n)
    correct: np.ndarray  # correct samples per problem, (P,)
    formatted: np.ndarray  # well-formatted samples per problem, (P,)
    greedy_correct: np.ndarray  # (P,) bool

    @property
    def n(self) -> int:
        return self.spec.n

    def per_problem(self, k: int) -> np.ndarray:
        """Unbiased pass@k of each problem, shape (P,)."""
        if k > self.n:
            raise SpecError(f"pass@{k} needs at least {k} samples per problem; the evaluation drew n={self.n}")
        return stats.pass_at_k_per_problem(self.n, self.correct, k)

    def pass_at_k(self, k: int) -> float:
        return float(self.per_problem(k).mean())

    def maj_at_k(self, k: int) -> float:
        return float(stats.maj_at_k(self.answers, [p.answer for p in self.problems], k).mean())

    @cached_property
    def mean_accuracy(self) -> float:
        return float((self.correct / self.n).mean())

    def summary(self, ks: Sequence[int]) -> dict[str, float]:
        out = {f"pass@{k}": self.pass_at_k(k) for k in ks if k <= self.n}
        out["greedy"] = float(self.greedy_correct.mean())
        out["format"] = float((self.formatted / self.n).mean())
        return out


def score(spec: EvalSpec, record: dict, task: Task | None = None) -> EvalResult:
    """Score stored generations with ``task``'s verifier (by default the spec's task)."""
    task = task or get_task(spec.task)
    problems = [Problem(**p) for p in record["problems"]]
    samples = record["samples"]
    answers = [[task.extract(s) for s in row] for row in samples]
    correct = np.array([sum(task.is_correct(s, p) for s in row) for row, p in zip(samples, problems, strict=True)])
    formatted = np.array([sum(task.format_ok(s) for s in row) for row in samples])
    greedy_correct = np.array([task.is_correct(g, p) for g, p in zip(record["greedy"], problems, strict=True)])
    return EvalResult(spec=spec, problems=problems, samples=samples, greedy=record["greedy"], answers=answers,
                      correct=correct, formatted=formatted, greedy_correct=greedy_correct)


_LOADED: dict[tuple[str, str], EvalResult] = {}  # per process: a claim run loads the base evaluation often


def load_result(spec: EvalSpec, entry: Path) -> EvalResult:
    """The scored result stored in a cache entry; re-scored from the generations when the verifier changed."""
    memo = (spec.key, str(entry))
    if memo not in _LOADED:
        _LOADED[memo] = _load(spec, entry)
    return _LOADED[memo]


def _load(spec: EvalSpec, entry: Path) -> EvalResult:
    record = json.loads((entry / GENERATIONS).read_text())
    task = get_task(spec.task)
    stored = json.loads((entry / SCORES).read_text()) if (entry / SCORES).exists() else None
    if stored is None or stored["verifier"] != verifier_tag(task):
        return score(spec, record, task)
    return EvalResult(spec=spec, problems=[Problem(**p) for p in record["problems"]], samples=record["samples"],
                      greedy=record["greedy"], answers=stored["answers"], correct=np.array(stored["correct"]),
                      formatted=np.array(stored["formatted"]), greedy_correct=np.array(stored["greedy_correct"]))

