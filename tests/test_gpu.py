"""The GPU path, on a machine with CUDA (scripts/gpu-check.sh runs these); skipped with a reason elsewhere."""

from __future__ import annotations

import importlib.util
import json

import pytest

from harness.cache import Cache
from harness.jobs import evaluate, materialize
from harness.loading import load_recipe
from harness.specs import EvalSpec, MixComponent, OrganismSpec, RLSpec, TaskSpec, library_versions

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu-check.sh)")]

TASK = TaskSpec(family="arithmetic", params={"digits": [1, 2]})
ORGANISM = OrganismSpec(mix=(MixComponent(task=TASK),), steps=200)


def test_jobs_pick_cuda_with_bf16_sampling() -> None:
    from harness.models import device_and_dtype

    device, dtype = device_and_dtype()
    assert device == "cuda" and dtype == torch.bfloat16
    assert library_versions()["accelerator"] == "cuda"  # GPU results never share entries with CPU ones


def test_pretrain_evaluate_and_rl_on_cuda(tmp_path) -> None:
    cache = Cache(tmp_path)
    base = evaluate(EvalSpec(model=ORGANISM, task=TASK, num_problems=64, n=16), cache)
    recipe, _ = load_recipe("organism")
    rl = RLSpec(model=ORGANISM, task=TASK, recipe=recipe, steps=6)
    entry = materialize(rl, cache)
    log = json.loads((entry / "train_log.json").read_text())
    assert [row["step"] for row in log][-1] == 6
    after = evaluate(EvalSpec(model=rl, task=TASK, num_problems=64, n=16), cache)
    assert after.samples != base.samples  # the trained weights differ from the base


@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed (the gpu extra)")
def test_vllm_backend_matches_the_task_format(tmp_path) -> None:
    cache = Cache(tmp_path)
    result = evaluate(EvalSpec(model=ORGANISM, task=TASK, num_problems=32, n=8, backend="vllm"), cache)
    assert len(result.samples) == 32 and all(len(row) == 8 for row in result.samples)
    assert result.formatted.mean() > 0  # completions are decoded by the organism's own tokenizer
