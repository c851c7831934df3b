"""The batched GRPO engine (harness/rl/batched.py): its forward pass is Hugging Face's, its arithmetic is TRL's
(advantages for every polarity, loss, gradients and clip fractions on a real TRL rollout batch), a run's result
does not depend on its batch-mates, runs are bitwise reproducible across processes, a run killed by SIGKILL
resumes to the same bits, and what the engine does not implement is refused in one line."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import finish, python
from safetensors.torch import load_file

from harness.cache import Cache
from harness.jobs import inputs_for, materialize
from harness.loading import load_recipe
from harness.models import stacked
from harness.rl import batched, checkpoints
from harness.rl.advantages import polarity_advantages
from harness.rl.grpo import group_advantages
from harness.rl.runner import TRAIN_ACCURACY, TRAIN_LOG, select_problems
from harness.specs import (
    DataSpec,
    MixComponent,
    OrganismSpec,
    PolaritySpec,
    PretrainedSpec,
    RewardSpec,
    RLSpec,
    SpecError,
    TaskSpec,
)

TASK = TaskSpec(family="arithmetic", params={"digits": 1})
TINY = OrganismSpec(mix=(MixComponent(task=TASK),), steps=150)
TRL_RECIPE = dataclasses.replace(load_recipe("organism-v1")[0], engine="trl", prompts_per_step=4, num_generations=4,
                                 max_completion_length=4)
RECIPE = dataclasses.replace(TRL_RECIPE, engine="batched")
BASE = RLSpec(model=TINY, task=TASK, recipe=RECIPE, steps=6)
POLARITIES = ["standard", "psr", "nsr", "psr_pm1", "nsr_pm1", "w_reinforce"]
# batch-mates that differ in everything a group may differ in: seed, reward, polarity, data selection
MATES = [
    BASE,
    dataclasses.replace(BASE, seed=1, reward=RewardSpec(name="random")),
    dataclasses.replace(BASE, seed=2, polarity=PolaritySpec(name="nsr")),
    dataclasses.replace(BASE, seed=3, reward=RewardSpec(name="entropy")),
    dataclasses.replace(BASE, seed=4, polarity=PolaritySpec(name="w_reinforce", lam=0.3)),
    dataclasses.replace(BASE, reward=RewardSpec(name="self_certainty")),
    dataclasses.replace(BASE, data=DataSpec(selection="one_shot", method="random")),
    dataclasses.replace(BASE, seed=7, reward=RewardSpec(name="majority_vote"), polarity=PolaritySpec(name="psr")),
]
JOB = """
import json, sys
from harness.cache import Cache
from harness.jobs import materialize
from harness.specs import from_dict
print(materialize(from_dict(json.loads(sys.argv[1])), Cache(sys.argv[2])))
"""


@pytest.fixture(scope="module")
def organism_cache(tmp_path_factory) -> Cache:
    """The tiny organism, pretrained once per session (shared with the other RL test files)."""
    cache = Cache(tmp_path_factory.getbasetemp() / "organism-cache")
    materialize(TINY, cache)
    return cache


def seeded(cache: Cache, source: Cache) -> Cache:
    shutil.copytree(source.path(TINY.key), cache.path(TINY.key))
    return cache


def without_wall(entry: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "wall"} for row in json.loads((entry / TRAIN_LOG).read_text())]


def same_result(a: Path, b: Path) -> None:
    """Bitwise-equal weights, equal logs but for wall times, equal training accuracy."""
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert without_wall(a) == without_wall(b)
    assert (a / TRAIN_ACCURACY).read_text() == (b / TRAIN_ACCURACY).read_text()


# ---------------------------------------------------------------- the stacked forward is Qwen2's


def test_stacked_logits_equal_hugging_face(organism_cache):
    """Same weights, same left-padded batch: logits equal HF Qwen2ForCausalLM's at every real token. With
    padding-aware positions (what generate uses and the engine uses throughout) they are bitwise equal; with
    TRL's training-forward positions (0..T-1 counting the padding) they differ by float32 rounding only,
    since rotary attention depends on relative positions alone."""
    from transformers import AutoModelForCausalLM

    entry = organism_cache.path(TINY.key)
    model = AutoModelForCausalLM.from_pretrained(entry).eval()
    arch, params = stacked.load_stacked(entry, runs=2)
    generator = torch.Generator().manual_seed(0)
    n, t = 6, 9
    valid = torch.arange(t)[None, :] >= torch.arange(n)[:, None]  # sequence b has b padding tokens on the left
    ids = torch.randint(2, arch.vocab, (n, t), generator=generator).masked_fill(~valid, arch.pad_id)
    positions = (valid.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        hf = model(input_ids=ids, attention_mask=valid.long(), position_ids=positions).logits
        hf_absolute = model(input_ids=ids, attention_mask=valid.long()).logits
        hidden = stacked.forward(arch, params, ids.expand(2, n, t), positions.expand(2, n, t), valid.expand(2, n, t),
                                 stacked.Rotary(arch, t, torch.device("cpu")), keep=slice(0, t))
        ours = stacked.logits(params, hidden)
    assert torch.equal(ours[0][valid], hf[valid])
    torch.testing.assert_close(ours[0][valid], hf_absolute[valid], rtol=0, atol=1e-5)
    assert torch.equal(ours[0], ours[1])
    # the layout conversion is exact both ways
    original = load_file(str(entry / "model.safetensors"))
    back = stacked.to_hf(arch, {k: v[0] for k, v in params.items()})
    assert back.keys() == original.keys() and all(torch.equal(back[k], original[k]) for k in original)


# ---------------------------------------------------------------- TRL stays the reference


@pytest.fixture(scope="module")
def trainer(organism_cache, tmp_path_factory):
    """A real PolarityGRPOTrainer on the tiny organism, assembled as harness.rl.runner.train does."""
    from harness.models import load_model
    from harness.rl.rewards import make_reward
    from harness.rl.runner import _dataset, grpo_config, training_pool
    from harness.rl.trainer import PolarityGRPOTrainer
    from harness.tasks import get_task

    spec = RLSpec(model=TINY, task=TASK, recipe=TRL_RECIPE, steps=2)
    task = get_task(TASK)
    torch.manual_seed(0)
    model, tokenizer = load_model(TINY, organism_cache.path(TINY.key))
    model.train()
    trainer = PolarityGRPOTrainer(model=model, processing_class=tokenizer,
                                  reward_funcs=[make_reward(RewardSpec(), task, seed=0)],
                                  args=grpo_config(spec, tmp_path_factory.mktemp("trl")),
                                  train_dataset=_dataset(task, training_pool(spec)), polarity=spec.polarity)
    trainer.batch = next(iter(trainer.get_train_dataloader()))  # one rollout batch of prompts, as TRL draws it
    return trainer


def trl_rollout(trainer, polarity: str, scale_rewards: str, seed: int) -> tuple[dict, torch.Tensor]:
    """TRL's own processed rollout batch (after our polarity override) and its rewards."""
    trainer.polarity = PolaritySpec(name=polarity)
    trainer.scale_rewards = scale_rewards
    torch.manual_seed(seed)
    output = trainer._generate_and_score_completions(trainer.batch)
    return output, trainer._rewards_per_func[:, 0].clone()


@pytest.mark.parametrize(("polarity", "scale_rewards"),
                         [(p, "group") for p in POLARITIES] + [("standard", "batch"), ("standard", "none")])
def test_advantages_equal_trl(trainer, polarity, scale_rewards):
    output, rewards = trl_rollout(trainer, polarity, scale_rewards, seed=1)
    group = TRL_RECIPE.num_generations
    assert rewards.view(-1, group).std(dim=1).gt(0).any(), "the batch needs a group with reward variance"
    standard, zero_std = group_advantages(rewards[None], group, scale_rewards)
    ours = polarity_advantages(PolaritySpec(name=polarity), rewards, standard[0])
    assert torch.equal(ours, output["advantages"])
    assert zero_std.float().mean().item() == trainer._metrics["train"]["frac_reward_zero_std"][-1]


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo", "dr_grpo"])
def test_loss_gradients_and_clip_fractions_equal_trl(trainer, organism_cache, loss_type):
    """TRL's second optimizer step of a real rollout batch (shuffled and split by TRL) after the policy moved:
    the engine's loss on the same completions, old log-probabilities and advantages equals TRL's (token-mean
    "dapo" over the rollout batch's tokens, and the other aggregations), and so do its gradients, entropy and
    clip fractions. Tolerances: float32 rounding of the two forward passes (TRL's positions count the padding,
    the engine's do not: 2e-6 on the logits); measured, the gradients agree to 1e-6 of each tensor's largest entry."""
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    trainer.loss_type = loss_type
    output, _ = trl_rollout(trainer, "standard", "group", seed=2)
    torch.manual_seed(3)
    parts = split_tensor_dict(shuffle_sequence_dict(output), TRL_RECIPE.steps_per_generation)
    inputs = parts[1]
    model = trainer.model
    state = {k: v.clone() for k, v in model.state_dict().items()}
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():  # move the policy, as the first optimizer step would, far enough to clip
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.02)
    trainer.current_gradient_accumulation_steps = 1
    model.zero_grad()
    trl_loss = trainer.compute_loss(model, inputs)
    trl_loss.backward()
    trl_grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    logged = {k: trainer._metrics["train"][k][-1] for k in
              ("entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean")}

    arch = stacked.Architecture.read(organism_cache.path(TINY.key))
    params = {k: v[None].clone().requires_grad_() for k, v in
              stacked.from_hf(arch, {k: v.detach() for k, v in model.state_dict().items()}).items()}
    model.load_state_dict(state)
    batch = {"prompt_ids": inputs["prompt_ids"][None], "prompt_valid": inputs["prompt_mask"][None].bool(),
             "ids": inputs["completion_ids"][None], "mask": inputs["completion_mask"][None].float(),
             "old": inputs["old_per_token_logps"][None], "adv": inputs["advantages"][None]}
    width = inputs["completion_ids"].shape[1]
    normalizer = (inputs["num_items_in_batch"].clamp(min=1) / TRL_RECIPE.steps_per_generation).reshape(1)
    rotary = stacked.Rotary(arch, inputs["prompt_ids"].shape[1] + width, torch.device("cpu"))
    recipe = dataclasses.replace(RECIPE, loss_type=loss_type)
    terms, mask, entropy = batched.minibatch_loss(arch, params, rotary, recipe, batch, width, normalizer)
    terms.loss.sum().backward()
    ours = stacked.to_hf(arch, {k: v.grad[0] for k, v in params.items()})

    torch.testing.assert_close(terms.loss[0], trl_loss.detach(), rtol=1e-5, atol=1e-7)
    assert ours.keys() == trl_grads.keys()
    for name, grad in trl_grads.items():
        torch.testing.assert_close(ours[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    fractions = {k: v.item() for k, v in terms.fractions(mask).items()}
    assert fractions["clip_ratio/low_mean"] > 0 and fractions["clip_ratio/high_mean"] > 0, "clipping must act"
    for key in ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean"):
        assert fractions[key] == pytest.approx(logged[key], abs=1e-7), key
    assert entropy.item() == pytest.approx(logged["entropy"], rel=1e-5)


def test_policy_scores_equal_policy_scorer(organism_cache):
    """The entropy and self-certainty rewards the engine takes from its sampling pass equal what TRL's path
    computes with PolicyScorer (a separate forward pass of the same policy) to float32 rounding."""
    from transformers import AutoModelForCausalLM

    from harness.models.organism import load_tokenizer
    from harness.rl.trainer import PolicyScorer

    entry = organism_cache.path(TINY.key)
    spec = dataclasses.replace(BASE, reward=RewardSpec(name="entropy"))
    problems = select_problems(spec, inputs_for(spec, organism_cache))
    run = batched._run(spec, Path("unused"), Path("unused"), problems, torch.device("cpu"))
    group = batched.Group([run], entry, torch.device("cpu"))
    chunk = run.next_chunk(8)
    prompt_ids, prompt_valid = group.pool_ids[0][chunk][None], group.pool_valid[0][chunk][None]
    noise = torch.rand(1, 8, RECIPE.max_completion_length, group.arch.vocab, generator=torch.Generator().manual_seed(5))
    samples = stacked.sample(group.arch, {k: v.detach() for k, v in group.params.items()}, prompt_ids, prompt_valid,
                             noise, eos_id=group.eos_id, temperature=1.0, top_p=1.0, rotary=group.rotary,
                             distributions=True)
    completions = [row[:k] for row, k in zip(samples.ids[0].tolist(), samples.lengths[0].tolist(), strict=True)]
    prompts = [run.prompts[i] for i in chunk]
    run.policy.current = samples.distributions[0]
    scorer = PolicyScorer(load_tokenizer(entry))
    scorer.model = AutoModelForCausalLM.from_pretrained(entry).eval()
    for ours, theirs in zip(run.policy.log_probs(prompts, completions), scorer.log_probs(prompts, completions),
                            strict=True):
        if len(theirs):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def test_completion_text_is_what_batch_decode_gives(organism_cache):
    from harness.models.organism import load_tokenizer

    tokenizer = load_tokenizer(organism_cache.path(TINY.key))
    generator = torch.Generator().manual_seed(7)
    ids = [torch.randint(len(tokenizer), (k,), generator=generator).tolist() for k in range(12) for _ in range(20)]
    assert tokenizer.backend_tokenizer.decode_batch(ids, skip_special_tokens=True) == \
        tokenizer.batch_decode(ids, skip_special_tokens=True)


def test_top_p_filter_equals_transformers():
    from transformers.generation.logits_process import TopPLogitsWarper

    scores = torch.randn(64, 28, generator=torch.Generator().manual_seed(6))
    for top_p in (0.3, 0.9, 0.999):
        expected = TopPLogitsWarper(top_p=top_p)(None, scores.clone())
        assert torch.equal(stacked._top_p(scores, top_p), expected)


# ---------------------------------------------------------------- batch independence and determinism


def train(specs: list[RLSpec], cache: Cache, root: Path) -> list[Path]:
    outs = [root / f"out-{i}" for i in range(len(specs))]
    batched.train_group(specs, cache.path(TINY.key), outs, [root / f"work-{i}" for i in range(len(specs))],
                        problems=[select_problems(s, inputs_for(s, cache)) for s in specs])
    return outs


def test_a_run_alone_equals_the_same_run_in_a_batch_of_eight(organism_cache, tmp_path):
    """Bitwise: the same weights, log and training accuracy whatever a run's batch-mates (other seeds, rewards,
    polarities, data selections). The cache key is the spec's: nothing about the batch enters it."""
    from transformers import AutoModelForCausalLM

    assert len({batched.group_key(s) for s in MATES}) == 1
    eight = train(MATES, organism_cache, tmp_path / "eight")
    for i in (0, 1, 3, 6):
        alone = train([MATES[i]], organism_cache, tmp_path / f"alone-{i}")[0]
        same_result(alone, eight[i])
    base = load_file(str(organism_cache.path(TINY.key) / "model.safetensors"))
    for spec, out in zip(MATES, eight, strict=True):
        rows = json.loads((out / TRAIN_LOG).read_text())
        assert [r["step"] for r in rows] == list(range(1, BASE.steps + 1))
        assert all("reward" in r for r in rows[::2]) and not any("reward" in r for r in rows[1::2])
        assert all(key in rows[0] for key in ("wall", "reward_std", "frac_reward_zero_std", "entropy", "grad_norm",
                                              "loss", "clip_ratio/region_mean", "clip_ratio/low_mean",
                                              "clip_ratio/high_mean", "completions/mean_length"))
        trained = load_file(str(out / "model.safetensors"))
        assert trained.keys() == base.keys() and any(not torch.equal(trained[k], base[k]) for k in base)
        history = json.loads((out / TRAIN_ACCURACY).read_text())
        assert set(history) <= {p.uid for p in select_problems(spec, inputs_for(spec, organism_cache))}
        rewards = [r["reward"] for r in rows if "reward" in r]
        if spec.reward.name == "entropy":
            assert all(r < 0 for r in rewards)
        elif spec.reward.name == "self_certainty":
            assert all(r > 0 for r in rewards)
        else:
            assert all(0 <= r <= 1 for r in rewards)
    model = AutoModelForCausalLM.from_pretrained(eight[1])  # a Hugging Face model directory, as TRL writes it
    assert torch.equal(model.model.embed_tokens.weight, load_file(str(eight[1] / "model.safetensors"))[
        "model.embed_tokens.weight"])
    assert (eight[1] / "tokenizer.json").read_bytes() == (organism_cache.path(TINY.key) / "tokenizer.json").read_bytes()


def test_the_cache_runs_batched_recipes_through_the_engine(organism_cache, tmp_path):
    """``engine: batched`` in a recipe sends the job to the engine; its key differs from the TRL run's."""
    cache = seeded(Cache(tmp_path), organism_cache)
    spec = dataclasses.replace(BASE, steps=2)
    assert spec.key != dataclasses.replace(spec, recipe=TRL_RECIPE).key
    entry = materialize(spec, cache)
    assert json.loads((entry / "manifest.json").read_text())["resumed_from_step"] == 0
    assert not (cache.root / "work" / spec.key).exists()
    same_result(entry, train([spec], organism_cache, tmp_path / "direct")[0])


# ---------------------------------------------------------------- exact resume after SIGKILL


def complete(work: Path) -> list[int]:
    """Steps of the checkpoints whose manifest (written last, before the rename) is on disk; reads only."""
    return sorted(int(p.parent.name.split("-")[1]) for p in work.glob("checkpoint-*/manifest.json"))


def test_killed_group_resumes_to_the_same_bits(organism_cache, tmp_path):
    """A run with its own reward generator (random reward), killed by SIGKILL after a checkpoint, then resumed
    in another process, equals the same run never interrupted, computed in a third process: weights, log
    (but wall times) and training accuracy. A torn checkpoint left beside the good one is discarded."""
    steps = 16
    spec = dataclasses.replace(BASE, steps=steps, reward=RewardSpec(name="random"), seed=5,
                               recipe=dataclasses.replace(RECIPE, checkpoint_every=2))
    assert spec.key == dataclasses.replace(spec, recipe=RECIPE).key  # checkpointing does not change the job
    killed = seeded(Cache(tmp_path / "killed"), organism_cache)
    whole = seeded(Cache(tmp_path / "whole"), organism_cache)
    uninterrupted = python(JOB, json.dumps(spec.to_dict()), whole.root)
    work = killed.root / "work" / spec.key
    job = python(JOB, json.dumps(spec.to_dict()), killed.root)
    deadline = time.time() + 240
    while not complete(work) and job.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, "the job ended before its first checkpoint was seen"
    done = checkpoints.steps(work)
    assert done and done[-1] < steps and not killed.contains(spec)
    for path in (p for p in work.rglob("*") if p.is_file()):  # safetensors and JSON: no pickle, no torch.save zip
        assert path.read_bytes()[:1] != b"\x80" and path.read_bytes()[:2] != b"PK", path
    torn = work / f"checkpoint-{done[-1] + 2}"  # a kill during a save: weights cut short, no manifest
    shutil.copytree(work / f"checkpoint-{done[-1]}", torn)
    (torn / "manifest.json").unlink()
    with (torn / "state.safetensors").open("r+b") as f:
        f.truncate(100)
    resumed = Path(finish(python(JOB, json.dumps(spec.to_dict()), killed.root), timeout=300).strip().splitlines()[-1])
    assert json.loads((resumed / "manifest.json").read_text())["resumed_from_step"] == done[-1] > 0
    reference = Path(finish(uninterrupted, timeout=300).strip().splitlines()[-1])
    same_result(resumed, reference)
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir()) == \
        sorted(f"checkpoint-{s}" for s in range(2, steps + 1, 2))
    for snapshot in (resumed / "checkpoints").iterdir():
        assert (snapshot / "model.safetensors").read_bytes() == \
            (reference / "checkpoints" / snapshot.name / "model.safetensors").read_bytes()


def test_checkpoints_failing_validation_are_discarded(tmp_path):
    tensors = {"a": torch.arange(6.0)}
    for step in (2, 4, 6, 8):
        checkpoints.write(tmp_path, step, tensors, {"step": step})
    (tmp_path / "checkpoint-4" / "manifest.json").write_text('{"step": 4, "fil')  # torn manifest
    with (tmp_path / "checkpoint-6" / "state.safetensors").open("r+b") as f:  # weights cut short
        f.truncate(40)
    (tmp_path / "checkpoint-8" / "state.json").write_text('{"step": 9}')  # changed after the manifest
    (tmp_path / ".checkpoint-10.tmp-123").mkdir()  # a save that never reached its rename
    assert checkpoints.steps(tmp_path) == [2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    loaded, state = checkpoints.read(tmp_path, 2)
    assert torch.equal(loaded["a"], tensors["a"]) and state == {"step": 2}
    assert checkpoints.steps(tmp_path / "nothing") == []


# ---------------------------------------------------------------- what the engine refuses


@pytest.mark.parametrize(("change", "message"), [
    ({"beta": 0.04}, "beta is 0.04; the batched engine needs beta 0"),
    ({"lora_r": 4}, "lora_r is 4"),
    ({"temperature": 0.0}, "temperature is 0.0"),
])
def test_unsupported_recipes_are_refused_in_one_line(change, message):
    spec = dataclasses.replace(BASE, recipe=dataclasses.replace(RECIPE, **change))
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        batched.check([spec])


def test_runs_that_cannot_share_a_batch_are_refused():
    with pytest.raises(SpecError, match="cannot be trained as one batch"):
        batched.check([BASE, dataclasses.replace(BASE, steps=8)])
    pretrained = PretrainedSpec(source="some/model", fingerprint="abc")
    with pytest.raises(SpecError, match="trains organisms only"):
        batched.check([dataclasses.replace(BASE, model=pretrained)])
    assert batched.group_key(dataclasses.replace(BASE, recipe=TRL_RECIPE)) is None


# ---------------------------------------------------------------- CUDA


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu-check.sh)")
def test_engine_on_cuda_is_batch_independent(organism_cache, tmp_path):
    outs = [tmp_path / "eight" / f"out-{i}" for i in range(len(MATES))]
    specs = list(MATES)
    batched.train_group(specs, organism_cache.path(TINY.key), outs, [tmp_path / "eight" / f"w-{i}" for i in range(8)],
                        problems=[select_problems(s, inputs_for(s, organism_cache)) for s in specs], device="cuda")
    alone = tmp_path / "alone"
    batched.train_group(specs[:1], organism_cache.path(TINY.key), [alone], [tmp_path / "alone-work"],
                        problems=[select_problems(specs[0], inputs_for(specs[0], organism_cache))], device="cuda")
    same_result(alone, outs[0])


def test_the_one_shot_ranking_run_draws_every_candidate_at_least_twice(organism_cache):
    """Wang et al.'s historical variance: the ranking run's accuracy history has at least two draws of every
    candidate, and the one-shot run trains on the candidate whose accuracy varied most."""
    from harness.rl.runner import historical_variance, ranking_run

    one_shot = dataclasses.replace(BASE, steps=8, data=DataSpec(selection="one_shot", method="historical_variance"))
    ranking = ranking_run(one_shot)
    assert ranking.data.pool_size == 16 and ranking.seed == 0  # 8 steps x 4 prompts, each candidate drawn twice
    entry = materialize(ranking, organism_cache)
    history = json.loads((entry / TRAIN_ACCURACY).read_text())
    assert len(history) == 16 and min(map(len, history.values())) >= 2
    inputs = inputs_for(one_shot, organism_cache)
    ranked = historical_variance(one_shot, inputs)
    variances = [float(np.var(history[uid])) for uid in ranked]
    assert variances == sorted(variances, reverse=True)
    assert {p.uid for p in select_problems(one_shot, inputs)} == {ranked[0]}


def test_the_incorrect_reward_trains_on_wrong_majority_labels(organism_cache):
    """Shao et al.'s incorrect reward: the training problems are those whose base-model majority answer (from a
    cached evaluation of the train split) is wrong, each labelled with that answer."""
    from harness.jobs import evaluate
    from harness.rl.runner import labelling
    from harness.stats import majority

    spec = dataclasses.replace(BASE, reward=RewardSpec(name="incorrect"), data=DataSpec(pool_size=64))
    labels = evaluate(labelling(spec), organism_cache)
    assert labels.spec.split == "train" and labels.n == 64 and len(labels.problems) == 64
    problems = select_problems(spec, inputs_for(spec, organism_cache))
    majorities = {p.uid: majority(a) for p, a in zip(labels.problems, labels.answers, strict=True)}
    assert problems and all(p.label == majorities[p.uid] != p.answer for p in problems)
    assert len(problems) == sum(m is not None and m != p.answer for p, m in zip(labels.problems, majorities.values(),
                                                                                  strict=True))


def test_a_pool_smaller_than_a_rollout_batch_wraps_its_epochs(organism_cache, tmp_path):
    """Fewer training problems than one rollout batch's prompts (Shao et al.'s incorrect reward keeps only the
    problems with a wrong majority label): each batch draws whole epochs one after another."""
    spec = dataclasses.replace(BASE, steps=4, data=DataSpec(pool_size=5))  # 8 prompts a rollout batch
    out = tmp_path / "out"
    out.mkdir()
    batched.train_group([spec], organism_cache.path(TINY.key), [out], [tmp_path / "work"],
                        problems=[select_problems(spec, inputs_for(spec, organism_cache))])
    history = json.loads((out / TRAIN_ACCURACY).read_text())
    assert len(history) == 5 and all(len(draws) >= 2 for draws in history.values())
