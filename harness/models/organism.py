"""Model organisms: tiny Qwen2 models with a character tokenizer, pretrained from scratch on task mixes.

Alignment is a dial: the pretraining budget (``steps``) and the mix of task families (a novel
operator mixed into arithmetic at a small weight gives transfer). ``contaminate`` puts a task's
eval problems into the pretraining data.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cache import Cache
from harness.progress import Progress
from harness.specs import OrganismSpec
from harness.tasks import get_task
from harness.tasks.base import Problem
from harness.tasks.vocab import ORGANISM_ALPHABET

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

PAD, EOS = "<pad>", "<eos>"
POOL_PER_TASK = 20_000  # train problems drawn per mix component
CONTAMINATION_PROBLEMS = 512  # eval problems of ``contaminate`` that enter pretraining (a prefix of the eval set)
MAX_LENGTH = 64
TRAIN_STATE = "train_state.safetensors"
PRETRAIN_LOG = "pretrain_log.json"


def alphabet(spec: OrganismSpec) -> str:
    """The organism's characters: the shared alphabet, then the extra characters its tasks declare (sorted).

    Organisms of the built-in families keep the shared alphabet, so their token ids never move.
    """
    tasks = [c.task for c in spec.mix] + ([spec.contaminate] if spec.contaminate is not None else [])
    extra = {ch for t in tasks for ch in get_task(t).alphabet} - set(ORGANISM_ALPHABET)
    return ORGANISM_ALPHABET + "".join(sorted(extra))


def build_tokenizer(characters: str = ORGANISM_ALPHABET) -> PreTrainedTokenizerFast:
    """Character-level tokenizer; use ``PreTrainedTokenizerFast`` explicitly (AutoTokenizer rewrites it)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, EOS, *characters])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS)
    tok.padding_side = "left"
    return tok


def load_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(directory)
    tok.padding_side = "left"
    return tok


def build_model(spec: OrganismSpec, tokenizer: PreTrainedTokenizerFast) -> torch.nn.Module:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=4 * spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_heads,
        max_position_embeddings=MAX_LENGTH,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config)


def pretraining_problems(spec: OrganismSpec) -> tuple[list[list[Problem]], list[float]]:
    """Problem pools of the mix (plus the contaminating eval problems) and their weights."""
    pools, weights = [], []
    for component in spec.mix:
        task = get_task(component.task)
        pools.append(task.problems("train", min(POOL_PER_TASK, task.available("train")), seed=spec.seed))
        weights.append(component.weight)
    if spec.contaminate is not None:
        task = get_task(spec.contaminate)
        pools.append(task.problems("eval", min(CONTAMINATION_PROBLEMS, task.available("eval")), seed=0))
        weights.append(spec.contamination_weight)
    return pools, weights


def encode(tokenizer: PreTrainedTokenizerFast, problem: Problem) -> tuple[list[int], list[int]]:
    """Ids of question+answer+EOS and labels with the loss only on answer and EOS tokens."""
    q = tokenizer.encode(problem.question, add_special_tokens=False)
    a = [*tokenizer.encode(problem.answer, add_special_tokens=False), tokenizer.eos_token_id]
    return q + a, [*([-100] * len(q)), *a]


def collate(tokenizer: PreTrainedTokenizerFast, encoded: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
    """Right-padded batch of encoded problems."""
    import torch

    rows, labels = [e[0] for e in encoded], [e[1] for e in encoded]
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    label_ids = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return {"input_ids": input_ids, "labels": label_ids, "attention_mask": attention}


def lineage(spec: OrganismSpec) -> str:
    """Runs that differ only in ``steps`` share a lineage: a shorter one is a prefix of a longer one."""
    return dataclasses.replace(spec, steps=0).key


def longest_prefix(spec: OrganismSpec, cache: Cache) -> tuple[int, Path] | None:
    """The cached run of the same lineage with the most steps below ``spec.steps``."""
    best: tuple[int, Path] | None = None
    index = cache.root / "index" / lineage(spec)
    for marker in index.glob("*") if index.is_dir() else ():
        steps = int(marker.name)
        if steps < spec.steps and (best is None or steps > best[0]):
            entry = cache.entry(marker.read_text().strip())
            if entry is not None and (entry / TRAIN_STATE).exists():
                best = (steps, entry)
    return best


def _save_state(path: Path, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
    from safetensors.torch import save_file

    tensors = {"generator": generator.get_state()}
    for i, state in optimizer.state_dict()["state"].items():
        for name, value in state.items():
            tensors[f"{i}.{name}"] = value  # AdamW keeps even its step count as a tensor
    save_file(tensors, str(path))


def _load_state(path: Path, optimizer: torch.optim.Optimizer, generator: torch.Generator) -> None:
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    generator.set_state(tensors.pop("generator"))
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        i, field = name.split(".", 1)
        state.setdefault(int(i), {})[field] = value
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})


def _move_optimizer_state(optimizer: torch.optim.Optimizer, device: str) -> None:
    for state in optimizer.state.values():
        for name, value in state.items():
            if name != "step":  # AdamW keeps its step count on the CPU
                state[name] = value.to(device)


def pretrain(spec: OrganismSpec, out: Path, cache: Cache) -> dict:
    """The pretraining job: writes the model and tokenizer (Hugging Face layout), a loss log and the training
    state, so a longer run of the same lineage continues from here (bitwise as if run in one go)."""
    import torch
    from transformers import Qwen2ForCausalLM

    from harness.determinism import seed_everything
    from harness.models import device_and_dtype

    seed_everything(spec.seed)
    device, _ = device_and_dtype()  # float32 on either: the model is tiny
    tokenizer = build_tokenizer(alphabet(spec))
    model = build_model(spec, tokenizer)
    problem_pools, weights = pretraining_problems(spec)
    pools = [[encode(tokenizer, p) for p in pool] for pool in problem_pools]
    generator = torch.Generator().manual_seed(spec.seed)
    mix = torch.tensor(weights, dtype=torch.float64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate)
    log: list[dict] = []
    start, started = 0, time.time()
    prefix = longest_prefix(spec, cache)
    if prefix is not None:
        start, entry = prefix
        model = Qwen2ForCausalLM.from_pretrained(entry)
        optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate)
        _load_state(entry / TRAIN_STATE, optimizer, generator)
        log = json.loads((entry / PRETRAIN_LOG).read_text())
    model.to(device).train()
    _move_optimizer_state(optimizer, device)
    with Progress(total=spec.steps, desc=f"pretrain {spec.short}") as progress:
        progress.update(start)
        for step in range(start, spec.steps):
            which = torch.multinomial(mix, spec.batch_size, replacement=True, generator=generator)
            batch = []
            for w in which.tolist():
                idx = int(torch.randint(len(pools[w]), (1,), generator=generator))
                batch.append(pools[w][idx])
            loss = model(**{k: v.to(device) for k, v in collate(tokenizer, batch).items()}).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % 50 == 0 or step == spec.steps - 1:
                log.append({"step": step, "loss": round(loss.item(), 5)})
                progress.update(step + 1, loss=loss.item())
    model.to("cpu").save_pretrained(out)
    tokenizer.save_pretrained(out)
    _move_optimizer_state(optimizer, "cpu")
    _save_state(out / TRAIN_STATE, optimizer, generator)
    (out / PRETRAIN_LOG).write_text(json.dumps(log))
    index = cache.root / "index" / lineage(spec)
    index.mkdir(parents=True, exist_ok=True)
    (index / str(spec.steps)).write_text(spec.key)
    return {"pretrain_seconds": round(time.time() - started, 2), "continued_from_step": start}
