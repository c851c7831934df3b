"""Job specifications: frozen keyword-only dataclasses, canonical JSON and content hashes.

Every expensive step (pretraining an organism, converting a pretrained model, sampling an
evaluation, an RL run) is described by one of these specs. The cache key of a job is the
SHA-256 of its canonical JSON plus the schema version and the versions of torch, transformers
and trl. Fields marked ``KEYLESS`` (paths, display names) are left out of the key, so a model
is named by its weights' fingerprint and not by where the file lies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import metadata
from typing import Any, ClassVar

SCHEMA_VERSION = 1
KEYLESS = {"key": False}
KEYED_IF_SET = {"key": "if_set"}  # a field added later: left out of the key at its default, so old entries stay valid


class SpecError(ValueError):
    """A spec with impossible or unknown values."""


class NothingToTrain(SpecError):
    """A run whose variant leaves it no training problem (an incorrect-label reward on a model whose majority
    answer is right on every problem): the claim it serves is not exercised on that pair, not an error."""


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise SpecError(message)


@dataclass(frozen=True, kw_only=True)
class Spec:
    """Base of all specs: canonical JSON, round trip and key."""

    kind: ClassVar[str] = "spec"
    version: ClassVar[int] = 1  # bump when the job's meaning changes: it invalidates cached results

    def to_dict(self, *, keyed: bool = False) -> dict[str, Any]:
        """Plain-JSON form with a ``kind`` tag; ``keyed`` drops fields marked KEYLESS."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in dataclasses.fields(self):
            if keyed and not f.metadata.get("key", True):
                continue
            if keyed and f.metadata.get("key") == "if_set" and getattr(self, f.name) == f.default:
                continue
            out[f.name] = _plain(getattr(self, f.name), keyed)
        return out

    def canonical_json(self) -> str:
        return json.dumps(self.to_dict(keyed=True), sort_keys=True, separators=(",", ":"))

    @property
    def key(self) -> str:
        """Content hash: spec, schema, job version and the library versions that compute it.

        The versions of nested specs enter too (a bumped organism version must invalidate the evaluations
        and RL runs built on it); only those other than 1, so keys made before they entered still stand.
        """
        payload = {
            "schema": SCHEMA_VERSION,
            "job_version": self.version,
            "spec": json.loads(self.canonical_json()),
            "libraries": library_versions(),
        }
        nested = {kind: v for kind, v in sorted(_nested_versions(self).items()) if v != 1}
        if nested:
            payload["nested_versions"] = nested
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @property
    def short(self) -> str:
        return f"{self.kind}:{self.key[:10]}"


def _nested_versions(spec: Spec) -> dict[str, int]:
    """Job versions, by kind, of the specs inside ``spec``'s keyed fields (at any depth)."""
    out: dict[str, int] = {}
    pending = [getattr(spec, f.name) for f in dataclasses.fields(spec) if f.metadata.get("key", True)]
    while pending:
        value = pending.pop()
        if isinstance(value, Spec):
            out[value.kind] = value.version
            pending.extend(getattr(value, f.name) for f in dataclasses.fields(value) if f.metadata.get("key", True))
        elif isinstance(value, tuple | list):
            pending.extend(value)
        elif isinstance(value, dict):
            pending.extend(value.values())
    return out


def _plain(value: Any, keyed: bool) -> Any:
    if isinstance(value, Spec):
        return value.to_dict(keyed=keyed)
    if isinstance(value, tuple | list):
        return [_plain(v, keyed) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, keyed) for k, v in sorted(value.items())}
    return value


@cache
def library_versions() -> dict[str, str]:
    """What enters every key besides the spec: library versions (from metadata) and the accelerator kind.

    Results computed on a GPU differ numerically from CPU ones, so GPU keys carry ``accelerator: cuda``
    and the two never share an entry (CPU keys carry no such field).
    """
    import torch

    versions = {name: metadata.version(name) for name in ("torch", "transformers", "trl")}
    return {**versions, "accelerator": "cuda"} if torch.cuda.is_available() else versions


# ---------------------------------------------------------------- tasks


@dataclass(frozen=True, kw_only=True)
class TaskSpec(Spec):
    """A task family with its parameters and the prompt format used to pose it."""

    kind: ClassVar[str] = "task"
    family: str
    params: dict[str, Any] = field(default_factory=dict)
    format: str = "bare"

    @property
    def name(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.family}({inner})[{self.format}]"


# ---------------------------------------------------------------- models


@dataclass(frozen=True, kw_only=True)
class MixComponent(Spec):
    """One task family in an organism's pretraining mix, with its sampling weight."""

    kind: ClassVar[str] = "mix"
    task: TaskSpec
    weight: float = 1.0

    def __post_init__(self) -> None:
        _check(self.weight > 0, f"mix weight must be > 0, got {self.weight}")


@dataclass(frozen=True, kw_only=True)
class OrganismSpec(Spec):
    """A tiny Qwen2-architecture model pretrained from scratch on a task mix (a job)."""

    kind: ClassVar[str] = "organism"
    mix: tuple[MixComponent, ...]
    steps: int
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    learning_rate: float = 2e-3
    batch_size: int = 128
    seed: int = 0
    contaminate: TaskSpec | None = None  # this task's eval problems join the pretraining data
    contamination_weight: float = 0.1

    def __post_init__(self) -> None:
        _check(len(self.mix) > 0, "an organism needs at least one task in its pretraining mix")
        _check(self.steps >= 0, f"steps must be >= 0, got {self.steps}")
        _check(self.hidden_size % self.num_heads == 0,
               f"hidden_size {self.hidden_size} must be divisible by num_heads {self.num_heads}")
        _check(self.batch_size > 0 and self.learning_rate > 0, "batch_size and learning_rate must be > 0")


@dataclass(frozen=True, kw_only=True)
class PretrainedSpec(Spec):
    """A Hugging Face model: a hub id or local directory, optionally a GGUF file inside it.

    ``fingerprint`` (SHA-256 over the weight files, or the hub revision) names the weights in the
    key; ``source`` and ``gguf_file`` say where they lie and stay out of the key.
    """

    kind: ClassVar[str] = "pretrained"
    source: str = field(metadata=KEYLESS)
    gguf_file: str | None = field(default=None, metadata=KEYLESS)
    fingerprint: str
    trust_remote_code: bool = False
    chat_template: bool = True


ModelSpec = OrganismSpec | PretrainedSpec  # | RLSpec: a trained model is named by its RL job


# ---------------------------------------------------------------- evaluation


@dataclass(frozen=True, kw_only=True)
class EvalSpec(Spec):
    """Sample ``n`` completions for each of ``num_problems`` held-out problems (a job)."""

    kind: ClassVar[str] = "eval"
    model: OrganismSpec | PretrainedSpec | RLSpec
    task: TaskSpec
    split: str = "eval"
    num_problems: int = 256
    n: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 24
    seed: int = 0
    backend: str = "transformers"  # transformers | vllm | batched (organisms); keyed: each draws its own samples
    batch_size: int = 4096  # completions per generate call (keyed: sampling noise depends on it)

    def __post_init__(self) -> None:
        _check(self.split in ("train", "eval"), f"split must be 'train' or 'eval', got {self.split!r}")
        _check(self.num_problems > 0, f"num_problems must be > 0, got {self.num_problems}")
        _check(self.n > 0, f"n (samples per problem) must be > 0, got {self.n}")
        _check(self.temperature >= 0, f"temperature must be >= 0, got {self.temperature}")
        _check(self.temperature > 0 or self.n == 1,
               f"temperature 0 (greedy) gives one completion per problem: set n = 1, got n = {self.n}")
        _check(0 < self.top_p <= 1, f"top_p must be in (0, 1], got {self.top_p}")
        _check(self.max_new_tokens > 0, f"max_new_tokens must be > 0, got {self.max_new_tokens}")
        _check(self.backend in ("transformers", "vllm", "batched"),
               f"backend must be 'transformers', 'vllm' or 'batched', got {self.backend!r}")


# ---------------------------------------------------------------- RL


@dataclass(frozen=True, kw_only=True)
class RecipeSpec(Spec):
    """GRPO hyperparameters, mapped onto TRL's GRPOConfig by harness/rl/runner.py."""

    kind: ClassVar[str] = "recipe"
    name: str = field(default="custom", metadata=KEYLESS)
    learning_rate: float
    prompts_per_step: int
    num_generations: int
    steps_per_generation: int = 2  # optimizer steps per rollout batch: >1 moves the PPO ratio
    epsilon: float = 0.2
    epsilon_high: float = 0.28
    beta: float = 0.0
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    temperature: float = 1.0
    top_p: float = 1.0
    max_completion_length: int = 8
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    lora_r: int | None = None
    use_vllm: bool = field(default=False, metadata=KEYED_IF_SET)  # TRL's vLLM rollouts (GPU, gpu extra), colocated
    engine: str = field(default="trl", metadata=KEYED_IF_SET)  # trl (GRPOTrainer) or batched (organisms, side by side)
    checkpoint_every: int | None = field(default=None, metadata=KEYLESS)

    def __post_init__(self) -> None:
        _check(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        _check(self.num_generations >= 2,
               f"num_generations must be >= 2 for group-relative advantages, got {self.num_generations}")
        _check(self.prompts_per_step > 0 and self.steps_per_generation > 0,
               "prompts_per_step and steps_per_generation must be > 0")
        _check(self.loss_type in ("grpo", "bnpo", "dr_grpo", "dapo"),
               f"loss_type must be one of grpo, bnpo, dr_grpo, dapo; got {self.loss_type!r}")
        _check(self.scale_rewards in ("group", "batch", "none"),
               f"scale_rewards must be group, batch or none; got {self.scale_rewards!r}")
        _check(self.engine in ("trl", "batched"), f"engine must be trl or batched; got {self.engine!r}")


@dataclass(frozen=True, kw_only=True)
class RewardSpec(Spec):
    """A reward variant by registered name with its parameters (harness/rl/rewards.py; checked against
    harness.registry when a job is planned)."""

    kind: ClassVar[str] = "reward"
    name: str = "ground_truth"
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class DataSpec(Spec):
    """Which training problems RL sees: the full pool, one example, or a few."""

    kind: ClassVar[str] = "data"
    selection: str = "full"  # full | one_shot | few_shot
    method: str = "random"  # historical_variance | random | index (one_shot / few_shot)
    count: int = 1  # examples kept by few_shot
    index: int = 0  # used by method=index
    pool_size: int = 2048  # training problems drawn from the train split

    def __post_init__(self) -> None:
        _check(self.selection in ("full", "one_shot", "few_shot"),
               f"data selection must be full, one_shot or few_shot; got {self.selection!r}")
        _check(self.method in ("historical_variance", "random", "index"),
               f"data method must be historical_variance, random or index; got {self.method!r}")
        _check(self.count >= 1 and self.pool_size >= 1, "count and pool_size must be >= 1")
        _check(0 <= self.index < self.pool_size, f"index {self.index} outside the pool of {self.pool_size}")

    @property
    def examples(self) -> int:
        return {"full": self.pool_size, "one_shot": 1, "few_shot": self.count}[self.selection]


@dataclass(frozen=True, kw_only=True)
class PolaritySpec(Spec):
    """Which samples carry the learning signal, by registered name (harness/rl/advantages.py; the name is
    checked against harness.registry when a job is planned)."""

    kind: ClassVar[str] = "polarity"
    name: str = "standard"
    lam: float = 0.1  # W-REINFORCE weight on positive samples


@dataclass(frozen=True, kw_only=True)
class RLSpec(Spec):
    """GRPO through TRL from a base model on a task's train split (a job)."""

    kind: ClassVar[str] = "rl"
    model: OrganismSpec | PretrainedSpec | RLSpec
    task: TaskSpec
    recipe: RecipeSpec
    steps: int
    reward: RewardSpec = field(default_factory=RewardSpec)
    data: DataSpec = field(default_factory=DataSpec)
    polarity: PolaritySpec = field(default_factory=PolaritySpec)
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.steps > 0, f"RL steps must be > 0, got {self.steps}")


SPEC_TYPES: dict[str, type[Spec]] = {
    t.kind: t
    for t in (TaskSpec, MixComponent, OrganismSpec, PretrainedSpec, EvalSpec, RecipeSpec, RewardSpec,
              DataSpec, PolaritySpec, RLSpec)
}


def from_dict(data: dict[str, Any]) -> Spec:
    """Inverse of ``Spec.to_dict`` (unkeyed form)."""
    data = dict(data)
    cls = SPEC_TYPES[data.pop("kind")]
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _revive(data[f.name])
    return cls(**kwargs)


def _revive(value: Any) -> Any:
    if isinstance(value, dict) and "kind" in value and value["kind"] in SPEC_TYPES:
        return from_dict(value)
    if isinstance(value, list):
        return tuple(_revive(v) for v in value)
    return value
