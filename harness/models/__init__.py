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


def model_dir(spec: ModelSpec, cache: Any) -> Path | None:
    """The cache entry holding the weights, or None for a hub/local model loaded in place."""
    from harness.jobs import materialize

    if isinstance(spec, PretrainedSpec) and spec.gguf_file is None:
        return None
    return materialize(spec, cache)


def base_organism(spec: ModelSpec) -> bool:
    """Whether the model descends from an organism (character tokenizer, bare prompts)."""
    while isinstance(spec, RLSpec):
        spec = spec.model
    return isinstance(spec, OrganismSpec)


def load_tokenizer_and_dir(spec: ModelSpec, cache: Any) -> tuple[Any, str | Path]:
    """The tokenizer and where the weights lie (a cache entry, or the hub id / local directory)."""
    from transformers import AutoTokenizer

    from harness.models import organism

    directory = model_dir(spec, cache)
    if directory is None:
        return AutoTokenizer.from_pretrained(spec.source, trust_remote_code=spec.trust_remote_code), spec.source
    if base_organism(spec):
        return organism.load_tokenizer(directory), directory
    return AutoTokenizer.from_pretrained(directory), directory


def load_model(spec: ModelSpec, cache: Any, *, training: bool = False) -> tuple[Any, Any]:
    """(model in eval mode on the job's device, tokenizer with left padding).

    For sampling the weights are bf16 on CUDA; for ``training`` they stay float32 (TRL's bf16 flag autocasts).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from harness.models import organism, pretrained

    device, dtype = device_and_dtype()
    if training:
        dtype = torch.float32
    directory = model_dir(spec, cache)
    if directory is None:
        model, tokenizer = pretrained.from_pretrained(spec, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype)
        if base_organism(spec):
            tokenizer = organism.load_tokenizer(directory)
        else:
            tokenizer = AutoTokenizer.from_pretrained(directory)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return model.to(device).eval(), tokenizer
