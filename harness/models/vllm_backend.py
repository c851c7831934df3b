"""Sampling with vLLM on GPUs (the ``gpu`` extra): the same problems, prompts, n, seed and decoding as transformers.

Prompts are tokenized by the harness's own tokenizer and handed to vLLM as token ids, and completions
are decoded by it too: vLLM would otherwise load the tokenizer with AutoTokenizer, which rewrites the
organisms' character vocabulary. Imported only when an EvalSpec asks for backend "vllm".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.tasks.base import Problem, Task


def generate(spec: Any, task: Task, problems: list[Problem], entry: Path | None) -> tuple[list[list[str]], list[str]]:
    from vllm import LLM, SamplingParams

    from harness.evaluate import render_prompt
    from harness.models import load_tokenizer_and_dir

    tokenizer, directory = load_tokenizer_and_dir(spec.model, entry)
    llm = LLM(model=str(directory), skip_tokenizer_init=True, seed=spec.seed, dtype="auto",
              trust_remote_code=getattr(spec.model, "trust_remote_code", False))
    prompts = [{"prompt_token_ids": tokenizer(render_prompt(task, p, tokenizer), add_special_tokens=False)["input_ids"]}
               for p in problems]
    stop = [tokenizer.eos_token_id]
    sampled = llm.generate(prompts, SamplingParams(n=spec.n, temperature=spec.temperature, top_p=spec.top_p,
                                                   max_tokens=spec.max_new_tokens, seed=spec.seed,
                                                   stop_token_ids=stop, detokenize=False))
    greedy = llm.generate(prompts, SamplingParams(n=1, temperature=0.0, max_tokens=spec.max_new_tokens,
                                                  stop_token_ids=stop, detokenize=False))
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
    return ([[decode(c.token_ids) for c in out.outputs] for out in sampled],
            [decode(out.outputs[0].token_ids) for out in greedy])
