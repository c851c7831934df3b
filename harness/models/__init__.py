"""Loading any model the harness names: organisms, pretrained models and RL-trained models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.specs import OrganismSpec, PretrainedSpec, RLSpec

ModelSpec = OrganismSpec | PretrainedSpec | RLSpec


def device_and_dtype() -> tuple[str, Any]:
    """CUDA with bf16 where present, else CPU with float32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def has_entry(spec: ModelSpec) -> bool:
    """Whether the model's weights live in a cache entry (a job), not in a hub or local model loaded in place."""
    return not (isinstance(spec, PretrainedSpec) and spec.gguf_file is None)


def base_organism(spec: ModelSpec) -> bool:
    """Whether the model descends from an organism (character tokenizer, bare prompts)."""
    while isinstance(spec, RLSpec):
        spec = spec.model
    return isinstance(spec, OrganismSpec)


def load_tokenizer_and_dir(spec: ModelSpec, entry: Path | None) -> tuple[Any, str | Path]:
    """The tokenizer and where the weights lie: the model's cache ``entry``, or (None) the hub id / local directory."""
    from transformers import AutoTokenizer

    from harness.models import organism

    if entry is None:
        return AutoTokenizer.from_pretrained(spec.source, trust_remote_code=spec.trust_remote_code), spec.source
    if base_organism(spec):
        return organism.load_tokenizer(entry), entry
    return AutoTokenizer.from_pretrained(entry), entry


def load_model(spec: ModelSpec, entry: Path | None, *, training: bool = False) -> tuple[Any, Any]:
    """(model in eval mode on the job's device, tokenizer with left padding), from the model's cache ``entry``
    (None: a hub or local model loaded in place, see ``has_entry``).

    For sampling the weights are bf16 on CUDA; for ``training`` they stay float32 (TRL's bf16 flag autocasts).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models import organism, pretrained

    device, dtype = device_and_dtype()
    if training:
        dtype = torch.float32
    if entry is None:
        model, tokenizer = pretrained.from_pretrained(spec, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(entry, dtype=dtype)
        tokenizer = organism.load_tokenizer(entry) if base_organism(spec) else AutoTokenizer.from_pretrained(entry)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model.to(device).eval(), tokenizer
