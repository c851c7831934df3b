"""Model organisms: tiny Qwen2 models with a character tokenizer, pretrained from scratch on task mixes.

Alignment is a dial: the pretraining budget (``steps``) and the mix of task families (a novel
operator mixed into arithmetic at a small weight gives transfer). ``contaminate`` puts a task's
eval problems into the pretraining data.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

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


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level tokenizer; use ``PreTrainedTokenizerFast`` explicitly (AutoTokenizer rewrites it)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, EOS, *ORGANISM_ALPHABET])}
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
    a = tokenizer.encode(problem.answer, add_special_tokens=False) + [tokenizer.eos_token_id]
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


def pretrain(spec: OrganismSpec, out: Path) -> dict:
    """The pretraining job: writes the model and tokenizer (Hugging Face layout) and a loss log."""
    import torch

    from harness.determinism import seed_everything

    seed_everything(spec.seed)
    tokenizer = build_tokenizer()
    model = build_model(spec, tokenizer)
    problem_pools, weights = pretraining_problems(spec)
    pools = [[encode(tokenizer, p) for p in pool] for pool in problem_pools]
    generator = torch.Generator().manual_seed(spec.seed)
    mix = torch.tensor(weights, dtype=torch.float64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate)
    log, started = [], time.time()
    model.train()
    with Progress(total=spec.steps, desc=f"pretrain {spec.short}") as progress:
        for step in range(spec.steps):
            which = torch.multinomial(mix, spec.batch_size, replacement=True, generator=generator)
            batch = []
            for w in which.tolist():
                idx = int(torch.randint(len(pools[w]), (1,), generator=generator))
                batch.append(pools[w][idx])
            loss = model(**collate(tokenizer, batch)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % 50 == 0 or step == spec.steps - 1:
                log.append({"step": step, "loss": round(loss.item(), 5)})
                progress.update(step + 1, loss=loss.item())
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "pretrain_log.json").write_text(json.dumps(log))
    return {"pretrain_seconds": round(time.time() - started, 2)}
