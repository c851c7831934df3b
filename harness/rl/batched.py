"""The batched GRPO engine (``RecipeSpec.engine == "batched"``): R organism RL runs as one computation.

Runs that share a base organism, task, recipe and step budget (they may differ in seed, reward, polarity
and data selection) advance side by side: their weights are stacked along a leading run dimension
(harness/models/stacked.py), so sampling, scoring and the update cost one sequence of batched ops.
Each run keeps its own AdamW state, gradient clipping (global norm over its own parameters), data order,
sampling noise, reward function and log, and writes what the TRL runner writes: a Hugging Face model
directory, ``train_log.json`` and ``train_accuracy.json``.

Semantics follow TRL's GRPOTrainer as harness.rl.runner.grpo_config sets it up: per rollout batch,
``prompts_per_step * steps_per_generation`` prompts (a fresh permutation of the run's problems each
epoch, incomplete chunks dropped) x ``num_generations`` completions sampled at ``temperature`` / ``top_p``
until EOS or ``max_completion_length``; rewards, group-relative advantages and polarity; the batch shuffled
and split into ``steps_per_generation`` optimizer steps of the clipped loss (harness/rl/grpo.py) against the
rollout-time log-probabilities. The rollout-time log-probabilities come from the sampling pass itself (the
policy that sampled), not from a second forward pass as in TRL; so do the policy-scored rewards.

Batch independence: a run's numbers never depend on which runs it is batched with. Every tensor a run
touches has a shape fixed by the run's own data (prompts left-padded to the widest prompt of the task's
training pool, completions padded to the longest completion of the run's own mini-batch, runs grouped by
that width for the update); its sampling noise is drawn from its own generator in a fixed shape (Gumbel-max
over the full ``max_completion_length``), whatever the others do; the batched kernels compute each run's
slice alone. A run stops decoding when all its own sequences have ended (whatever is computed for it after
that is discarded). tests/test_batched.py checks that a run alone and inside a batch of 8 give bitwise-identical
weights, logs and training accuracy. (torch's fused CPU AdamW misreads strided gradients: they are made
contiguous first; without that, the tied head's transposed gradient broke this equality.)

Resume is exact: at rollout-batch boundaries, every ``checkpoint_every`` steps (default as the TRL runner),
each run saves weights, AdamW moments and step, generator states, data order and log (harness/rl/checkpoints.py);
a group resumes from the latest step all its members saved.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from harness.models import stacked
from harness.models.stacked import Architecture, Rotary, Samples, sample
from harness.registry import get_reward
from harness.rl import checkpoints
from harness.rl.advantages import polarity_advantages
from harness.rl.grpo import LOSS_TYPES, LossTerms, group_advantages, nanstd, policy_loss
from harness.rl.rewards import RewardFunc, check_reward, make_reward
from harness.rl.runner import LOGGED, RESUME_EVERY, TRAIN_ACCURACY, TRAIN_LOG, is_vacuous
from harness.specs import RecipeSpec, RewardSpec, RLSpec, SpecError
from harness.tasks import get_task
from harness.tasks.base import Problem

if TYPE_CHECKING:
    from harness.jobs import Inputs

BETAS, EPS = (0.9, 0.999), 1e-8  # transformers' AdamW defaults, as the TRL path uses them
COPIED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
          "special_tokens_map.json")  # from the base entry: the architecture and the tokenizer do not change
SNAPSHOTS = "snapshots"  # the work directory's model snapshots every checkpoint_every steps, published at the end


# ---------------------------------------------------------------- grouping and checks


def group_key(spec: RLSpec) -> str | None:
    """Runs with equal keys can be trained together by ``train_group``; None where the engine is not batched."""
    if spec.recipe.engine != "batched":
        return None
    shared = {"model": spec.model.key, "task": spec.task.key, "recipe": spec.recipe.to_dict(), "steps": spec.steps,
              "pool_size": spec.data.pool_size}
    return hashlib.sha256(json.dumps(shared, sort_keys=True).encode()).hexdigest()


def check(specs: Sequence[RLSpec]) -> None:
    """Fail in one line on anything the engine does not implement, or on runs that cannot share a batch."""
    from harness.models import base_organism

    if not specs:
        raise SpecError("train_group needs at least one run")
    first = specs[0]
    r = first.recipe
    unsupported = {
        "engine": (r.engine != "batched", "batched"),
        "beta": (r.beta != 0, "0 (no KL term)"),
        "loss_type": (r.loss_type not in LOSS_TYPES, " | ".join(LOSS_TYPES)),
        "lora_r": (r.lora_r is not None, "unset (full fine-tuning)"),
        "use_vllm": (r.use_vllm, "false"),
        "temperature": (not r.temperature > 0, "> 0"),
        "top_p": (not 0 < r.top_p <= 1, "in (0, 1]"),
    }
    for name, (bad, expected) in unsupported.items():
        if bad:
            raise SpecError(f"recipe {r.name}: {name} is {getattr(r, name)!r}; the batched engine needs {name} "
                            f"{expected} (engine trl runs the rest)")
    if not base_organism(first.model):
        raise SpecError(f"recipe {r.name}: engine batched trains organisms only; {first.model.short} is not one")
    for spec in specs:
        if group_key(spec) != group_key(first):
            raise SpecError(f"runs {first.short} and {spec.short} differ in base model, task, recipe, steps or "
                            "pool size: they cannot be trained as one batch")
        check_reward(spec.reward)


# ---------------------------------------------------------------- one run's own state


class RolloutPolicy:
    """The policy as a reward that needs it sees it (harness.rl.rewards.Policy): the log-probabilities the
    sampling pass computed for this rollout batch (the same policy, so the same values as a second pass)."""

    def __init__(self) -> None:
        self.current: Tensor | None = None  # (N, C, V) log-softmax at temperature 1, set before each reward call

    def log_probs(self, prompts: list[Any], completion_ids: list[list[int]]) -> list[Tensor]:
        assert self.current is not None and len(self.current) == len(completion_ids), \
            "the sampling pass sets the rollout's log-probabilities before the reward runs"
        return [self.current[i, :len(c)] for i, c in enumerate(completion_ids)]


def _seed(purpose: str, seed: int) -> int:
    """A generator seed for one purpose of one run (data order and sampling noise draw independent streams)."""
    return int.from_bytes(hashlib.sha256(f"batched/{purpose}/{seed}".encode()).digest()[:8], "little") >> 1


def _numpy_generators(fn: Any) -> list[np.random.Generator]:
    """numpy Generators held by a reward function's closures (the random reward's coin), in a fixed order."""
    found, seen, pending = [], set(), [fn]
    while pending:
        obj = pending.pop(0)
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, np.random.Generator):
            found.append(obj)
        elif callable(obj) and getattr(obj, "__closure__", None):
            pending.extend(cell.cell_contents for cell in obj.__closure__)
    return found


@dataclass
class Run:
    """One member of a group: its spec, problems, reward, generators, data position and log."""

    spec: RLSpec
    out: Path
    work: Path
    problems: list[Problem]
    prompts: list[str]
    reward: RewardFunc
    truth: RewardFunc
    policy: RolloutPolicy | None
    data: torch.Generator
    noise: torch.Generator
    permutation: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    cursor: int = 0  # next chunk of the permutation
    rows: list[dict] = field(default_factory=list)
    accuracy: dict[str, list[float]] = field(default_factory=dict)

    def next_chunk(self, size: int) -> list[int]:
        """Indices of the next rollout batch's prompts: a new permutation of the problems each epoch (as many
        epochs' permutations one after another as a batch needs, where the problems are fewer than it holds)."""
        if (self.cursor + 1) * size > len(self.permutation):
            count = -(-size // len(self.problems))  # one epoch, unless the problems are fewer than a batch holds
            epochs = [torch.randperm(len(self.problems), generator=self.data) for _ in range(count)]
            self.permutation = torch.cat(epochs)
            self.cursor = 0
        chunk = self.permutation[self.cursor * size:(self.cursor + 1) * size].tolist()
        self.cursor += 1
        return chunk

    def columns(self, chunk: list[int], repeat: int) -> dict[str, list]:
        """The dataset columns TRL hands a reward function, one entry per completion."""
        picked = [self.problems[i] for i in chunk for _ in range(repeat)]
        columns = {"question": [p.question for p in picked], "answer": [p.answer for p in picked],
                   "uid": [p.uid for p in picked]}
        if picked and picked[0].label is not None:
            columns["label"] = [p.label for p in picked]
        return columns


def _run(spec: RLSpec, out: Path, work: Path, problems: list[Problem], device: torch.device) -> Run:
    task = get_task(spec.task)
    prompts = [task.prompt(p) for p in problems]
    if not all(isinstance(p, str) for p in prompts):
        raise SpecError(f"task {spec.task.name}: the batched engine needs bare text prompts (organisms), "
                        "not chat messages")
    policy = RolloutPolicy() if get_reward(spec.reward.name).needs_policy else None
    return Run(spec=spec, out=out, work=work, problems=list(problems), prompts=prompts,
               reward=make_reward(spec.reward, task, seed=spec.seed, policy=policy),
               truth=make_reward(RewardSpec(), task, seed=spec.seed), policy=policy,
               data=torch.Generator().manual_seed(_seed("data", spec.seed)),
               noise=torch.Generator(device=device).manual_seed(_seed("noise", spec.seed)))


# ---------------------------------------------------------------- sampling


def minibatch_loss(arch: Architecture, params: dict[str, Tensor], rotary: Rotary, recipe: RecipeSpec,
                   batch: dict[str, Tensor], width: int, normalizer: Tensor) -> tuple[LossTerms, Tensor, Tensor]:
    """The clipped loss of one optimizer step for runs whose completions have at most ``width`` tokens.

    ``batch``: prompt_ids and prompt_valid (R, N, P); ids, mask and old (rollout-time log-probabilities)
    (R, N, >= width); adv (R, N). Returns the loss terms (harness.rl.grpo.LossTerms), the completion mask
    (R, N, width) and each run's mean token entropy (R,) at the sampling temperature, as TRL logs it.
    """
    targets, mask, old = batch["ids"][..., :width], batch["mask"][..., :width], batch["old"][..., :width]
    ids = torch.cat([batch["prompt_ids"], targets], dim=-1)
    valid = torch.cat([batch["prompt_valid"], mask > 0], dim=-1)
    prompt = batch["prompt_ids"].shape[-1]
    hidden = stacked.forward(arch, params, ids, (valid.cumsum(-1) - 1).clamp(min=0), valid, rotary,
                             keep=slice(prompt - 1, prompt - 1 + width))
    logits = stacked.logits(params, hidden)
    if recipe.temperature != 1:
        logits = logits / recipe.temperature
    logp = torch.log_softmax(logits, dim=-1)
    terms = policy_loss(logp.gather(-1, targets[..., None])[..., 0], old, batch["adv"], mask,
                        loss_type=recipe.loss_type, epsilon_low=recipe.epsilon, epsilon_high=recipe.epsilon_high,
                        normalizer=normalizer, max_completion_length=recipe.max_completion_length)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
        entropy = (entropy * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2)).clamp(min=1.0)
    return terms, mask, entropy


# ---------------------------------------------------------------- the group


@dataclass
class Rollout:
    """One rollout batch of every run, ready for its ``steps_per_generation`` optimizer steps."""

    prompt_ids: Tensor  # (R, N, P)
    prompt_valid: Tensor  # (R, N, P)
    samples: Samples
    advantages: Tensor  # (R, N)
    normalizer: Tensor  # (R,) dapo's: completion tokens of the rollout batch / steps_per_generation
    order: Tensor  # (R, N) the shuffle that splits the batch into optimizer steps
    metrics: list[dict[str, float]]  # per run: the rollout's logged metrics


class Group:
    """R runs advanced together: stacked weights, one fused AdamW over them, the runs' own state beside."""

    def __init__(self, runs: list[Run], base_entry: Path, device: torch.device) -> None:
        from harness.models.organism import load_tokenizer

        self.runs = runs
        self.base = base_entry
        self.recipe = runs[0].spec.recipe
        self.device = device
        self.tokenizer = load_tokenizer(base_entry)
        self.arch, self.params = stacked.load_stacked(base_entry, len(runs), device)
        self.eos_id = self.tokenizer.eos_token_id
        self.pool_ids, self.pool_valid = self._encode_pools()
        width = self.pool_ids[0].shape[-1] + self.recipe.max_completion_length
        self.rotary = Rotary(self.arch, width, device)
        for tensor in self.params.values():
            tensor.requires_grad_(True)
        decay = [t for name, t in self.params.items() if name.split(".")[-1] not in stacked.NO_DECAY]
        no_decay = [t for name, t in self.params.items() if name.split(".")[-1] in stacked.NO_DECAY]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.recipe.learning_rate, betas=BETAS, eps=EPS, fused=True)

    def _encode_pools(self) -> tuple[list[Tensor], list[Tensor]]:
        """Each run's problems as prompt ids (problems, P), left-padded to the widest prompt of the task's pool."""
        from harness.rl.runner import training_pool

        spec = self.runs[0].spec
        task = get_task(spec.task)
        pool = {task.prompt(p) for p in training_pool(spec)}
        texts = sorted(pool | {t for run in self.runs for t in run.prompts})
        encoded = dict(zip(texts, self.tokenizer(text=texts)["input_ids"], strict=True))
        widest = max(len(encoded[text]) for text in pool)
        pad = self.tokenizer.pad_token_id
        padded = {text: [pad] * (widest - len(ids)) + ids for text, ids in encoded.items()}
        pools = []
        for run in self.runs:
            rows = [padded[text] for text in run.prompts]
            if any(len(row) > widest for row in rows):
                raise SpecError(f"run {run.spec.short}: a prompt is wider than the {widest} tokens of the task's "
                                "training pool")
            pools.append(torch.tensor(rows, dtype=torch.int64, device=self.device))
        return pools, [ids != pad for ids in pools]

    # ------------------------------------------------------------ rollout

    def rollout(self) -> Rollout:
        """Sample, score and shuffle one rollout batch for every run."""
        recipe = self.recipe
        prompts_per_batch = recipe.prompts_per_step * recipe.steps_per_generation
        repeat = recipe.num_generations
        chunks = [run.next_chunk(prompts_per_batch) for run in self.runs]
        index = torch.tensor(chunks, device=self.device)  # (R, G)
        prompt_ids = torch.stack([pool[i] for pool, i in zip(self.pool_ids, index, strict=True)])
        prompt_valid = torch.stack([pool[i] for pool, i in zip(self.pool_valid, index, strict=True)])
        n = index.shape[1] * repeat
        noise = torch.stack([torch.rand(n, recipe.max_completion_length, self.arch.vocab, generator=run.noise,
                                        device=self.device) for run in self.runs])
        detached = {k: v.detach() for k, v in self.params.items()}
        samples = sample(self.arch, detached, prompt_ids, prompt_valid, noise, eos_id=self.eos_id,
                         temperature=recipe.temperature, top_p=recipe.top_p, rotary=self.rotary,
                         distributions=any(run.policy is not None for run in self.runs))
        rewards = self._rewards(chunks, samples)
        standard, std_zero = group_advantages(rewards, repeat, recipe.scale_rewards)
        advantages = torch.stack([polarity_advantages(run.spec.polarity, rewards[r], standard[r])
                                  for r, run in enumerate(self.runs)])
        order = torch.stack([torch.randperm(n, generator=run.data) for run in self.runs]).to(self.device)
        normalizer = samples.lengths.sum(-1).clamp(min=1).float() / recipe.steps_per_generation
        per_run = {"reward": torch.nanmean(rewards, dim=1), "reward_std": nanstd(rewards, dim=1),
                   "frac_reward_zero_std": std_zero.float().mean(dim=1),
                   "completions/mean_length": samples.lengths.float().mean(dim=1)}
        values = {k: v.tolist() for k, v in per_run.items()}
        metrics = [{k: values[k][r] for k in per_run} for r in range(len(self.runs))]
        return Rollout(prompt_ids=prompt_ids.repeat_interleave(repeat, 1),
                       prompt_valid=prompt_valid.repeat_interleave(repeat, 1), samples=samples, advantages=advantages,
                       normalizer=normalizer, order=order, metrics=metrics)

    def _rewards(self, chunks: list[list[int]], samples: Samples) -> Tensor:
        """Each run's rewards (R, N) from its own reward function; records its groups' true accuracy."""
        repeat = self.recipe.num_generations
        lengths = samples.lengths.tolist()
        ids = samples.ids.tolist()
        completion_ids = [[row[:k] for row, k in zip(rows, ks, strict=True)]
                          for rows, ks in zip(ids, lengths, strict=True)]
        # the tokenizers backend's own batch decode: what batch_decode returns, without its per-token type checks
        texts = self.tokenizer.backend_tokenizer.decode_batch([c for run in completion_ids for c in run],
                                                              skip_special_tokens=True)
        n = samples.ids.shape[1]
        rewards = []
        for r, run in enumerate(self.runs):
            columns = {**run.columns(chunks[r], repeat), "completion_ids": completion_ids[r]}
            prompts = [run.prompts[i] for i in chunks[r] for _ in range(repeat)]
            completions = texts[r * n:(r + 1) * n]
            if run.policy is not None:
                run.policy.current = samples.distributions[r]
            rewards.append([float("nan") if v is None else v for v in run.reward(prompts, completions, **columns)])
            groups: dict[str, list[float]] = {}
            for uid, correct in zip(columns["uid"], run.truth(prompts, completions, **columns), strict=True):
                groups.setdefault(uid, []).append(correct)
            for uid, values in groups.items():
                run.accuracy.setdefault(uid, []).append(sum(values) / len(values))
        return torch.tensor(rewards, dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------ update

    def update(self, rollout: Rollout, part: int) -> list[dict[str, float]]:
        """One optimizer step on part ``part`` of the shuffled rollout batch; returns each run's logged metrics."""
        recipe = self.recipe
        runs = len(self.runs)
        size = rollout.order.shape[1] // recipe.steps_per_generation
        rows = rollout.order[:, part * size:(part + 1) * size]  # (R, n)
        s = rollout.samples

        def pick(x: Tensor) -> Tensor:
            return x.gather(1, rows.view(runs, size, *[1] * (x.dim() - 2)).expand(runs, size, *x.shape[2:]))

        batch = {"prompt_ids": pick(rollout.prompt_ids), "prompt_valid": pick(rollout.prompt_valid),
                 "ids": pick(s.ids), "mask": pick(s.mask), "old": pick(s.logps), "adv": pick(rollout.advantages)}
        widths = pick(s.lengths).max(dim=1).values.clamp(min=1).tolist()
        names = list(self.params)
        grads = [torch.empty_like(self.params[k]) for k in names] if len(set(widths)) > 1 else None
        stats: dict[str, Tensor] = {}
        for width in sorted(set(widths)):
            members = [r for r in range(runs) if widths[r] == width]
            chosen = None if len(members) == runs else torch.tensor(members, device=self.device)
            leaves = {k: (v.detach() if chosen is None else v.detach().index_select(0, chosen)).requires_grad_()
                      for k, v in self.params.items()}
            sub = {k: (v if chosen is None else v.index_select(0, chosen)) for k, v in batch.items()}
            norm = rollout.normalizer if chosen is None else rollout.normalizer.index_select(0, chosen)
            terms, mask, entropy = minibatch_loss(self.arch, leaves, self.rotary, recipe, sub, width, norm)
            found = torch.autograd.grad(terms.loss.sum(), [leaves[k] for k in names])
            if grads is None:
                grads = list(found)
            else:
                for buffer, g in zip(grads, found, strict=True):
                    buffer.index_copy_(0, chosen, g)
            group_stats = {"loss": terms.loss.detach(), "entropy": entropy, **terms.fractions(mask)}
            for key, value in group_stats.items():
                stats.setdefault(key, torch.zeros(runs, device=self.device))
                stats[key] = stats[key].index_copy(0, torch.tensor(members, device=self.device), value)
        stats["grad_norm"] = self._step(grads)
        values = {k: v.tolist() for k, v in stats.items()}
        return [{k: values[k][r] for k in values} for r in range(runs)]

    def _step(self, grads: list[Tensor]) -> Tensor:
        """Clip each run's gradient to the recipe's global norm over its own parameters, then one AdamW step.
        Returns the norms before clipping (R,), as the Trainer logs them."""
        runs = len(self.runs)
        norms = torch.stack([torch.linalg.vector_norm(g.reshape(runs, -1), dim=1) for g in grads], dim=1)
        total = torch.linalg.vector_norm(norms, dim=1)
        scale = (self.recipe.max_grad_norm / (total + 1e-6)).clamp(max=1.0)
        for tensor, g in zip(self.params.values(), grads, strict=True):
            # contiguous: torch 2.13's fused CPU AdamW misreads strided gradients (the tied head's is transposed)
            tensor.grad = g.contiguous().mul_(scale.view(runs, *[1] * (g.dim() - 1)))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    # ------------------------------------------------------------ checkpoints and outputs

    def save(self, step: int, walls: list[float]) -> None:
        """Every run's resume checkpoint at ``step`` (a rollout-batch boundary); older ones go once all are written."""
        for r, run in enumerate(self.runs):
            tensors = {"rng.data": run.data.get_state(), "rng.noise": run.noise.get_state(),
                       "data.permutation": run.permutation}
            for name, tensor in self.params.items():
                state = self.optimizer.state[tensor]
                tensors[f"param.{name}"] = tensor.detach()[r].clone()
                tensors[f"exp_avg.{name}"] = state["exp_avg"][r].clone()
                tensors[f"exp_avg_sq.{name}"] = state["exp_avg_sq"][r].clone()
            adam_step = float(next(iter(self.optimizer.state.values()))["step"])
            state_json = {"spec": run.spec.key, "step": step, "adam_step": adam_step, "cursor": run.cursor,
                          "numpy_generators": [g.bit_generator.state for g in _numpy_generators(run.reward)],
                          "rows": run.rows, "accuracy": run.accuracy, "wall": walls[r]}
            checkpoints.write(run.work, step, tensors, state_json)
        for run in self.runs:
            checkpoints.prune(run.work, below=step)

    def restore(self, step: int) -> list[float]:
        """Every run's state from its checkpoint at ``step``; returns the runs' wall clocks at that step."""
        loaded = [checkpoints.read(run.work, step) for run in self.runs]
        walls = []
        for r, (run, (tensors, state)) in enumerate(zip(self.runs, loaded, strict=True)):
            if state["spec"] != run.spec.key or state["step"] != step:
                raise ValueError(f"{run.work}: checkpoint of {state['spec'][:10]} at step {state['step']}, "
                                 f"expected {run.spec.key[:10]} at step {step}")
            run.data.set_state(tensors["rng.data"])
            run.noise.set_state(tensors["rng.noise"])
            run.permutation, run.cursor = tensors["data.permutation"], state["cursor"]
            for g, saved in zip(_numpy_generators(run.reward), state["numpy_generators"], strict=True):
                g.bit_generator.state = saved
            run.rows, run.accuracy = state["rows"], state["accuracy"]
            walls.append(state["wall"])
            with torch.no_grad():
                for name, tensor in self.params.items():
                    tensor[r] = tensors[f"param.{name}"].to(self.device)
        (adam_step,) = {state["adam_step"] for _, state in loaded}  # members step together
        for name, tensor in self.params.items():
            self.optimizer.state[tensor] = {
                "step": torch.tensor(adam_step, dtype=torch.float32, device=self.device),
                "exp_avg": torch.stack([t[f"exp_avg.{name}"] for t, _ in loaded]).to(self.device),
                "exp_avg_sq": torch.stack([t[f"exp_avg_sq.{name}"] for t, _ in loaded]).to(self.device),
            }
        return walls

    def snapshot(self, step: int) -> None:
        """Each run's weights at ``step`` in Hugging Face layout, published under ``checkpoints/`` at the end."""
        for r, run in enumerate(self.runs):
            final = run.work / SNAPSHOTS / f"checkpoint-{step}"
            partial = final.with_name(final.name + ".tmp")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            stacked.save_hf(self.arch, {k: v[r] for k, v in self.params.items()}, partial)
            shutil.copy(self.base / "config.json", partial / "config.json")
            shutil.rmtree(final, ignore_errors=True)
            partial.rename(final)

    def publish(self) -> None:
        """Each run's entry: model, tokenizer and config files, its log and its training accuracy."""
        for r, run in enumerate(self.runs):
            run.out.mkdir(parents=True, exist_ok=True)
            stacked.save_hf(self.arch, {k: v[r] for k, v in self.params.items()}, run.out)
            for name in COPIED:
                if (self.base / name).exists():
                    shutil.copy(self.base / name, run.out / name)
            (run.out / TRAIN_LOG).write_text(json.dumps(run.rows))
            (run.out / TRAIN_ACCURACY).write_text(json.dumps(run.accuracy, sort_keys=True))
            snapshots = sorted((run.work / SNAPSHOTS).glob("checkpoint-*[0-9]"))
            for snap in snapshots:
                shutil.copytree(snap, run.out / "checkpoints" / snap.name)


# ---------------------------------------------------------------- entry points


def _resume_step(works: Sequence[Path]) -> int:
    """The latest step every member has a complete checkpoint of (0: start afresh)."""
    common = set.intersection(*(set(checkpoints.steps(w)) for w in works))
    return max(common, default=0)


def _checkpoint_interval(spec: RLSpec) -> int:
    return spec.recipe.checkpoint_every or max(spec.steps // 4, RESUME_EVERY)


def train_group(specs: Sequence[RLSpec], base_entry: Path, outs: Sequence[Path], work_dirs: Sequence[Path], *,
                problems: Sequence[list[Problem]], device: str = "cpu") -> list[dict]:
    """Train R runs side by side (see the module docstring); each writes its entry into its ``outs[r]``.

    ``base_entry`` is the base organism's cache entry; ``problems[r]`` the problems run r trains on
    (harness.rl.runner.select_problems); ``work_dirs[r]`` its resume directory, removed once its entry is
    written. Returns each run's job result, as the TRL runner's ``train``.
    """
    from harness.determinism import seed_everything
    from harness.progress import Progress

    check(specs)
    if not len(specs) == len(outs) == len(work_dirs) == len(problems):
        raise ValueError("train_group: one out, work directory and problem list per spec")
    seed_everything(0)  # threads and quiet libraries; the engine draws only from the runs' own generators
    torch_device = torch.device(device)
    runs = [_run(s, Path(o), Path(w), list(p), torch_device)
            for s, o, w, p in zip(specs, outs, work_dirs, problems, strict=True)]
    recipe, steps = specs[0].recipe, specs[0].steps
    group = Group(runs, Path(base_entry), torch_device)
    start = _resume_step([run.work for run in runs])
    walls = group.restore(start) if start else [0.0] * len(runs)
    interval = _checkpoint_interval(specs[0])
    last_saved = start
    names = {run.spec.reward.name for run in runs}
    with Progress(total=steps, desc=f"rl batched x{len(runs)} {'/'.join(sorted(names))} {specs[0].short}") as progress:
        progress.update(start)
        started = time.time()
        rollout = None
        for step in range(start, steps):
            part = step % recipe.steps_per_generation
            if part == 0:
                rollout = group.rollout()
            metrics = group.update(rollout, part)
            elapsed = time.time() - started
            for r, run in enumerate(runs):
                row = {"step": step + 1, "wall": round(walls[r] + elapsed, 3)}
                merged = {**(rollout.metrics[r] if part == 0 else {}), **metrics[r]}
                row.update({k: float(merged[k]) for k in LOGGED if k in merged})
                run.rows.append(row)
            done = step + 1
            if recipe.checkpoint_every and done % recipe.checkpoint_every == 0:
                group.snapshot(done)
            boundary = done % recipe.steps_per_generation == 0
            if boundary and done < steps and done // interval > last_saved // interval:
                group.save(done, [walls[r] + elapsed for r in range(len(runs))])
                last_saved = done
            progress.update(done, reward=float(np.mean([m["reward"] for m in rollout.metrics])))
    group.publish()
    for run in runs:
        shutil.rmtree(run.work, ignore_errors=True)
    return [{"resumed_from_step": start, "vacuous": is_vacuous(run.rows)} for run in runs]


def train(spec: RLSpec, out: Path, inputs: Inputs, *, device: str | None = None) -> dict:
    """One run through the batched engine, with the TRL runner's signature (a group of one)."""
    return train_inputs([spec], [out], inputs, device=device)[0]


def train_inputs(specs: Sequence[RLSpec], outs: Sequence[Path], inputs: Inputs, *,
                 device: str | None = None) -> list[dict]:
    """``train_group`` from a job's inputs: the base organism's entry, each run's problems and resume directory."""
    from harness.models import device_and_dtype
    from harness.rl.runner import select_problems

    return train_group(specs, inputs.model(specs[0].model), outs, [inputs.cache.work_dir(s.key) for s in specs],
                       problems=[select_problems(s, inputs) for s in specs], device=device or device_and_dtype()[0])

