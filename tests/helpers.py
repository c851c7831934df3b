"""Shared helpers of the harness's own tests: tiny specs, subprocess runs and file digests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness.specs import EvalSpec, MixComponent, OrganismSpec, TaskSpec

REPO = Path(__file__).resolve().parents[1]
TINY_TASK = TaskSpec(family="arithmetic", params={"digits": 1})


def tiny_organism(steps: int = 5, **changes: Any) -> OrganismSpec:
    """A 1-digit addition organism: a few steps take about a second on one core."""
    return OrganismSpec(mix=(MixComponent(task=TINY_TASK),), steps=steps, **changes)


def tiny_eval(model: Any, **changes: Any) -> EvalSpec:
    """A small evaluation: 8 problems, 4 samples each, 4 new tokens."""
    return EvalSpec(model=model, task=TINY_TASK, **{"num_problems": 8, "n": 4, "max_new_tokens": 4, **changes})


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment of a helper process: quiet, one thread, the repository importable."""
    env = dict(os.environ)
    env.pop("CLAIMS_CACHE", None)
    env.update(CLAIMS_PROGRESS="0", CLAIMS_THREADS="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO), **extra)
    return env


def python(code: str, *args: str | Path, **popen: Any) -> subprocess.Popen:
    """Start ``python -c code args...`` (stdout and stderr piped, text mode) in the repository root."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=subprocess_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def finish(process: subprocess.Popen, timeout: float = 60) -> str:
    """Wait for ``process``; its stdout, or an assertion error carrying its stderr."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"helper process still running after {timeout} s (deadlock?)\n{err}") from None
    assert process.returncode == 0, f"helper process failed ({process.returncode}):\n{err}"
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digest(directory: Path, exclude: tuple[str, ...] = ()) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` by relative path."""
    return {str(p.relative_to(directory)): sha256(p) for p in sorted(directory.rglob("*"))
            if p.is_file() and p.name not in exclude}


# A tiny GRPO recipe for fixtures files written by tests (on the batched engine, as organism recipes are).
RECIPE = """\
name: tiny
engine: batched
learning_rate: 3.0e-4
prompts_per_step: 4
num_generations: 4
steps_per_generation: 2
max_completion_length: 6
budgets: {smoke: 4, standard: 8, paper: 16}
"""


def shared_and_plain_samples(model: Any, tokenizer: Any, prompts: list[str], n: int) -> tuple[list[str], list[str]]:
    """n samples of each prompt, seeded alike: the evaluation's shared-prompt way and plain ``generate``."""
    import torch

    from harness.evaluate import _shared_prompts

    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    settings = {"do_sample": True, "top_k": 0, "max_new_tokens": 8, "pad_token_id": tokenizer.pad_token_id,
                "eos_token_id": tokenizer.eos_token_id}
    decoded = []
    for inputs in (_shared_prompts(model, enc, n), {**enc, "num_return_sequences": n}):
        torch.manual_seed(11)
        with torch.inference_mode():
            out = model.generate(**inputs, **settings)
        decoded.append(tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return decoded[0], decoded[1]
