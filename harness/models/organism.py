"""Model organisms: tiny Qwen2 models with a character tokenizer, pretrained from scratch on task mixes.

Alignment is a dial: the pretraining budget (``steps``) and the mix of task families (a novel
operator mixed into arithmetic at a small weight gives transfer). ``contaminate`` puts a task's
eval problems into the pretraining data.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cache import Cache
from harness.progress import Progress
from harness.specs import OrganismSpec, SpecError, TaskSpec
from harness.tasks import get_task
from harness.tasks.base import Problem, Task, seeded_rng
from harness.tasks.vocab import ORGANISM_ALPHABET

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerFast

PAD, EOS = "<pad>", "<eos>"
UNKNOWN = "<unk>"  # not in the vocabulary: encoding a character the tokenizer lacks raises instead of giving PAD
ALPHABET_SAMPLE = 64  # problems per task whose characters the load-time check reads
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


def missing_characters(characters: str, texts: Iterable[str]) -> str:
    """The characters of ``texts`` that are not in ``characters``, sorted.

    >>> missing_characters(ORGANISM_ALPHABET, ["12+3=", "4^5=9"])
    '^'
    """
    seen: set[str] = set()
    for text in texts:
        seen.update(text)
    return "".join(sorted(seen - set(characters)))


def check_alphabet(spec: OrganismSpec, tasks: Sequence[TaskSpec]) -> None:
    """SpecError (one line) when the organism's tokenizer lacks characters of a sample of the problems of its
    pretraining mix or of ``tasks`` (those it is evaluated and trained on): prompts, questions and answers.

    Only bare-format tasks are read: other formats carry instructions in words, which no organism poses.
    """
    characters = alphabet(spec)
    mix = [c.task for c in spec.mix] + ([spec.contaminate] if spec.contaminate is not None else [])
    for task_spec in {t.canonical_json(): t for t in [*mix, *tasks]}.values():
        if task_spec.format != "bare":
            continue
        task = get_task(task_spec)
        texts = [text for p in _sample(task, ALPHABET_SAMPLE) for text in (str(task.prompt(p)), p.question, p.answer)]
        missing = missing_characters(characters, texts)
        if missing:
            raise SpecError(f"task {task_spec.name} uses characters {missing!r} that the organism's tokenizer lacks; "
                            f"declare them in the family's alphabet ({type(task).__qualname__}.alphabet = "
                            f"{(task.alphabet + missing)!r})")


def _sample(task: Task, count: int) -> list[Problem]:
    """Problems of ``task`` from every part of its space: generated families draw them directly (listing a split
    enumerates the whole space, seconds for truth tables), others take a prefix of their train split."""
    from harness.tasks.generated import GeneratedTask

    if isinstance(task, GeneratedTask):
        rng, strata = seeded_rng("alphabet", task.name), task.strata()
        questions = [task.draw(strata[i % len(strata)], rng) for i in range(count)]
        return [Problem(question=q, answer=task.solve(q), uid=q) for q in questions]
    return task.problems("train", min(count, task.available("train")), seed=0)


def build_tokenizer(characters: str = ORGANISM_ALPHABET) -> PreTrainedTokenizerFast:
    """Character-level tokenizer; use ``PreTrainedTokenizerFast`` explicitly (AutoTokenizer rewrites it)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, EOS, *characters])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNKNOWN))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, eos_token=EOS)
    tok.padding_side = "left"
    return tok


def load_tokenizer(directory: Path) -> PreTrainedTokenizerFast:
    """An organism's tokenizer from its entry; strict even where the entry predates ``UNKNOWN`` (it mapped an
    unknown character to PAD)."""
    from tokenizers import models
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(directory)
    core = tok.backend_tokenizer
    core.model = models.WordLevel(vocab=core.get_vocab(with_added_tokens=False), unk_token=UNKNOWN)
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


def pretraining_problems(spec: OrganismSpec) -> tuple[list[tuple[Task, list[Problem]]], list[float]]:
    """Problem pools of the mix (plus the contaminating eval problems), each with its task, and their weights."""
    pools, weights = [], []
    for component in spec.mix:
        task = get_task(component.task)
        pools.append((task, task.problems("train", min(POOL_PER_TASK, task.available("train")), seed=spec.seed)))
        weights.append(component.weight)
    if spec.contaminate is not None:
        task = get_task(spec.contaminate)
        pools.append((task, task.problems("eval", min(CONTAMINATION_PROBLEMS, task.available("eval")), seed=0)))
        weights.append(spec.contamination_weight)
    return pools, weights


Encoded = tuple[list[int], list[int]]  # token ids and labels of one pretraining text
Choices = list[tuple[Encoded, float]]  # a problem's pretraining texts with their cumulative probabilities


def encode(tokenizer: PreTrainedTokenizerFast, question: str, answer: str) -> Encoded:
    """Ids of question+answer+EOS and labels with the loss only on answer and EOS tokens."""
    q = tokenizer.encode(question, add_special_tokens=False)
    a = [*tokenizer.encode(answer, add_special_tokens=False), tokenizer.eos_token_id]
    return q + a, [*([-100] * len(q)), *a]


def encode_choices(tokenizer: PreTrainedTokenizerFast, task: Task, problem: Problem, seed: int) -> Choices:
    """The problem's pretraining texts (``Task.pretraining_answers``), encoded, with cumulative probabilities."""
    choices, total = [], 0.0
    for answer, weight in task.pretraining_answers(problem, seed):
        total += weight
        choices.append((encode(tokenizer, problem.question, answer), total))
    return choices


def draw_batch(pools: list[list[Choices]], mix: torch.Tensor, batch_size: int,
               generator: torch.Generator) -> list[Encoded]:
    """One pretraining batch: a mix component per row, a problem of its pool, and one of the problem's texts.

    A problem with a single text draws no random number for it, so single-answer families draw exactly
    the numbers they drew before families could mix answer styles.
    """
    import torch

    which = torch.multinomial(mix, batch_size, replacement=True, generator=generator)
    batch = []
    for w in which.tolist():
        idx = int(torch.randint(len(pools[w]), (1,), generator=generator))
        choices = pools[w][idx]
        if len(choices) == 1:
            batch.append(choices[0][0])
        else:
            u = float(torch.rand(1, generator=generator, dtype=torch.float64)) * choices[-1][1]
            batch.append(next(encoded for encoded, cumulative in choices if u < cumulative))
    return batch


def collate(tokenizer: PreTrainedTokenizerFast, encoded: list[Encoded]) -> dict[str, torch.Tensor]:
    """Right-padded batch of encoded problems."""
    import torch

    rows, labels = [e[0] for e in encoded], [e[1] for e in encoded]
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    label_ids = torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    return {"input_ids": input_ids, "labels": label_ids, "attention_mask": attention}


def _lineage(spec: OrganismSpec) -> str:
    """Runs that differ only in ``steps`` share a lineage: a shorter one is a prefix of a longer one."""
    return dataclasses.replace(spec, steps=0).key


def _longest_prefix(spec: OrganismSpec, cache: Cache) -> tuple[int, Path] | None:
    """The cached run of the same lineage with the most steps below ``spec.steps``."""
    best: tuple[int, Path] | None = None
    index = cache.root / "index" / _lineage(spec)
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
    characters = alphabet(spec)
    tokenizer = build_tokenizer(characters)
    model = build_model(spec, tokenizer)
    problem_pools, weights = pretraining_problems(spec)
    missing = missing_characters(characters, (p.question + text for task, pool in problem_pools for p in pool
                                              for text, _ in task.pretraining_answers(p, spec.seed)))
    if missing:
        raise SpecError(f"organism {spec.short}: its pretraining problems use characters {missing!r} outside its "
                        f"alphabet {characters!r}; declare them in the family's Task.alphabet")
    pools = [[encode_choices(tokenizer, task, p, spec.seed) for p in pool] for task, pool in problem_pools]
    generator = torch.Generator().manual_seed(spec.seed)
    mix = torch.tensor(weights, dtype=torch.float64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate)
    log: list[dict] = []
    start, started = 0, time.time()
    prefix = _longest_prefix(spec, cache)
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
            batch = draw_batch(pools, mix, spec.batch_size, generator)
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
    index = cache.root / "index" / _lineage(spec)
    index.mkdir(parents=True, exist_ok=True)
    (index / str(spec.steps)).write_text(spec.key)
    return {"pretrain_seconds": round(time.time() - started, 2), "continued_from_step": start}
