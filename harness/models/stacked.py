"""R copies of one organism (a Qwen2 model) as stacked parameters: every weight has a leading run dimension.

The forward pass is Qwen2's (RMSNorm, rotary attention with q/k/v biases, SiLU-gated MLP, tied embeddings)
written with batched matrix products over the run dimension, so R models cost one sequence of ops rather
than R. Each run's slice is computed by the same kernels on tensors of the same shape whatever R is, which
is what makes a run's numbers independent of its batch-mates (tests/test_batched.py checks it bitwise).

Layout (R runs, H hidden, I intermediate, V vocabulary): ``embed`` (R, V, H) doubles as the LM head;
per layer ``ln1``/``ln2`` (R, 1, H), ``wqkv`` (R, H, 3H) and ``bqkv`` (R, 1, 3H) (q, k, v fused),
``wo`` (R, H, H), ``wgu`` (R, H, 2I) (gate, up fused), ``wdown`` (R, I, H); ``norm`` (R, 1, H).
Weights are stored input-major (``x @ w``), the transpose of Hugging Face's ``nn.Linear``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

HF_WEIGHTS = "model.safetensors"
NO_DECAY = ("ln1", "ln2", "bqkv", "norm")  # biases and norms: transformers' Trainer exempts them from weight decay


class ArchitectureError(ValueError):
    """A model the stacked forward does not implement."""


@dataclass(frozen=True)
class Architecture:
    """The shape of an organism, read from its ``config.json``."""

    vocab: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    rms_eps: float
    rope_theta: float
    pad_id: int

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @classmethod
    def read(cls, entry: Path) -> Architecture:
        """The architecture of the model in ``entry``; anything but a plain tied Qwen2 is refused in one line."""
        path = entry / "config.json"
        config = json.loads(path.read_text())
        rope = config.get("rope_parameters") or {"rope_type": "default", "rope_theta": config.get("rope_theta")}
        checks = {
            "model_type": (config.get("model_type"), "qwen2"),
            "hidden_act": (config.get("hidden_act"), "silu"),
            "tie_word_embeddings": (config.get("tie_word_embeddings"), True),
            "num_key_value_heads": (config.get("num_key_value_heads"), config.get("num_attention_heads")),
            "rope_parameters.rope_type": (rope.get("rope_type"), "default"),
            "use_sliding_window": (bool(config.get("use_sliding_window")), False),
            "head_dim": (config.get("head_dim", config["hidden_size"] // config["num_attention_heads"]),
                         config["hidden_size"] // config["num_attention_heads"]),
        }
        for field, (found, expected) in checks.items():
            if found != expected:
                raise ArchitectureError(f"{path}: {field} is {found!r}; the batched engine implements organisms "
                                        f"(tied Qwen2) with {field} {expected!r}: use engine trl")
        return cls(vocab=config["vocab_size"], hidden=config["hidden_size"],
                   intermediate=config["intermediate_size"], layers=config["num_hidden_layers"],
                   heads=config["num_attention_heads"], rms_eps=config["rms_norm_eps"],
                   rope_theta=float(rope["rope_theta"]), pad_id=config["pad_token_id"])

    def names(self) -> list[str]:
        """Internal parameter names, in a fixed order (the optimizer's and the checkpoint's)."""
        per_layer = ("ln1", "wqkv", "bqkv", "wo", "ln2", "wgu", "wdown")
        return ["embed", *(f"{i}.{n}" for i in range(self.layers) for n in per_layer), "norm"]


# ---------------------------------------------------------------- Hugging Face weights <-> stacked


def from_hf(arch: Architecture, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """One run's internal parameters (no run dimension) from Hugging Face ``Qwen2ForCausalLM`` weights."""
    out = {"embed": tensors["model.embed_tokens.weight"], "norm": tensors["model.norm.weight"][None]}
    for i in range(arch.layers):
        p = f"model.layers.{i}."
        attn = [tensors[f"{p}self_attn.{x}_proj.weight"] for x in "qkv"]
        out[f"{i}.ln1"] = tensors[f"{p}input_layernorm.weight"][None]
        out[f"{i}.wqkv"] = torch.cat(attn).T
        out[f"{i}.bqkv"] = torch.cat([tensors[f"{p}self_attn.{x}_proj.bias"] for x in "qkv"])[None]
        out[f"{i}.wo"] = tensors[f"{p}self_attn.o_proj.weight"].T
        out[f"{i}.ln2"] = tensors[f"{p}post_attention_layernorm.weight"][None]
        out[f"{i}.wgu"] = torch.cat([tensors[f"{p}mlp.gate_proj.weight"], tensors[f"{p}mlp.up_proj.weight"]]).T
        out[f"{i}.wdown"] = tensors[f"{p}mlp.down_proj.weight"].T
    return {k: v.contiguous() for k, v in out.items()}


def to_hf(arch: Architecture, params: dict[str, Tensor]) -> dict[str, Tensor]:
    """Hugging Face weight names and layouts for one run's internal parameters (inverse of ``from_hf``)."""
    h, inter = arch.hidden, arch.intermediate
    out = {"model.embed_tokens.weight": params["embed"], "model.norm.weight": params["norm"][0]}
    for i in range(arch.layers):
        p = f"model.layers.{i}."
        wq, wk, wv = params[f"{i}.wqkv"].T.split(h)
        bq, bk, bv = params[f"{i}.bqkv"][0].split(h)
        gate, up = params[f"{i}.wgu"].T.split(inter)
        out.update({
            f"{p}input_layernorm.weight": params[f"{i}.ln1"][0],
            f"{p}self_attn.q_proj.weight": wq, f"{p}self_attn.k_proj.weight": wk, f"{p}self_attn.v_proj.weight": wv,
            f"{p}self_attn.q_proj.bias": bq, f"{p}self_attn.k_proj.bias": bk, f"{p}self_attn.v_proj.bias": bv,
            f"{p}self_attn.o_proj.weight": params[f"{i}.wo"].T,
            f"{p}post_attention_layernorm.weight": params[f"{i}.ln2"][0],
            f"{p}mlp.gate_proj.weight": gate, f"{p}mlp.up_proj.weight": up,
            f"{p}mlp.down_proj.weight": params[f"{i}.wdown"].T,
        })
    return {k: v.contiguous() for k, v in out.items()}


def load_stacked(entry: Path, runs: int, device: str | torch.device = "cpu") -> tuple[Architecture, dict[str, Tensor]]:
    """The model in ``entry`` repeated ``runs`` times along a leading dimension, float32 on ``device``."""
    from safetensors.torch import load_file

    arch = Architecture.read(entry)
    single = from_hf(arch, {k: v.float() for k, v in load_file(str(entry / HF_WEIGHTS)).items()})
    return arch, {k: v.to(device).unsqueeze(0).repeat(runs, *[1] * v.dim()) for k, v in single.items()}


def save_hf(arch: Architecture, params: dict[str, Tensor], directory: Path) -> None:
    """One run's weights as the ``model.safetensors`` that ``save_pretrained`` writes (tied head left out)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu() for k, v in to_hf(arch, params).items()}, str(directory / HF_WEIGHTS),
              metadata={"format": "pt"})


# ---------------------------------------------------------------- the forward pass


class Rotary:
    """Rotary position tables as Qwen2RotaryEmbedding computes them (float32), indexed by position.

    ``sin`` carries rotate_half's sign (its first half negated), so a rotation is
    ``x * cos + roll(x, d/2) * sin``: the same products as ``x * cos + rotate_half(x) * sin``.
    """

    def __init__(self, arch: Architecture, length: int, device: torch.device) -> None:
        d = arch.head_dim
        inv_freq = 1.0 / (arch.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        freqs = torch.arange(length, dtype=torch.int64).float()[:, None] * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        sign = torch.cat((-torch.ones(d // 2), torch.ones(d // 2)))
        self.cos, self.sin = emb.cos().to(device), (emb.sin() * sign).to(device)

    def tables(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        """cos and signed sin for ``positions`` (any shape), with axes for q/k and heads: (..., 1, 1, d)."""
        return self.cos[positions][..., None, None, :], self.sin[positions][..., None, None, :]


def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * sin


def embed(arch: Architecture, params: dict[str, Tensor], ids: Tensor) -> Tensor:
    """Token embeddings (R, M, H) of ids (R, M) by a one-hot product; as ``nn.Embedding(padding_idx=pad)``,
    looking up the pad token passes no gradient to its row."""
    table = params["embed"]
    pad_row = torch.zeros(arch.vocab, 1, dtype=torch.bool, device=table.device)
    pad_row[arch.pad_id] = True
    table = torch.where(pad_row, table.detach(), table)
    return torch.bmm(torch.nn.functional.one_hot(ids, arch.vocab).to(table.dtype), table)


class SwiGLU(torch.autograd.Function):
    """silu(gate) * up of the fused (..., 2I) projection; the backward writes both halves into one tensor
    (what chunk's backward would concatenate), sparing a copy of the largest activation."""

    @staticmethod
    def forward(ctx: Any, gate_up: Tensor) -> Tensor:
        gate, up = gate_up.chunk(2, dim=-1)
        activated = torch.nn.functional.silu(gate)
        ctx.save_for_backward(gate_up, activated)
        return activated * up

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        gate_up, activated = ctx.saved_tensors
        gate, up = gate_up.chunk(2, dim=-1)
        out = torch.empty_like(gate_up)
        d_gate, d_up = out.chunk(2, dim=-1)
        torch.mul(grad, activated, out=d_up)
        torch.ops.aten.silu_backward.grad_input(grad * up, gate, grad_input=d_gate)
        return out


def _mlp(params: dict[str, Tensor], i: int, x: Tensor, eps: float) -> Tensor:
    gate_up = torch.bmm(rms_norm(x, params[f"{i}.ln2"], eps), params[f"{i}.wgu"])
    return x + torch.bmm(SwiGLU.apply(gate_up), params[f"{i}.wdown"])


def forward(arch: Architecture, params: dict[str, Tensor], ids: Tensor, positions: Tensor, valid: Tensor,
            rotary: Rotary, *, keep: slice, cache: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
    """Final hidden states (R, N, len(keep), H) of sequences ids (R, N, T) at the positions ``keep``.

    ``valid`` (R, N, T) marks real tokens (left prompt padding and completion padding are False): a
    query attends to the valid keys at or before it, and always to itself, so padding rows stay finite.
    ``positions`` (R, N, T) are the rotary positions. The last layer computes queries, attention and MLP at
    the kept positions only (keys and values at all). With ``cache`` (a list to append to), each layer's
    keys and values, shape (R*N, heads, T, d), are kept for sampling.
    """
    r, n, t = ids.shape
    heads, d = arch.heads, arch.head_dim
    x = embed(arch, params, ids.reshape(r, n * t))
    cos, sin = rotary.tables(positions.reshape(r * n, t))  # (RN, T, 1, 1, d)
    causal = torch.ones(t, t, dtype=torch.bool, device=ids.device).tril()
    allowed = (causal & valid.reshape(r * n, 1, t)) | torch.eye(t, dtype=torch.bool, device=ids.device)
    bias = torch.zeros(allowed.shape, device=ids.device).masked_fill_(~allowed, float("-inf")).unsqueeze(1)
    for i in range(arch.layers):
        qkv = torch.baddbmm(params[f"{i}.bqkv"], rms_norm(x, params[f"{i}.ln1"], arch.rms_eps), params[f"{i}.wqkv"])
        qk, v = qkv.view(r * n, t, 3, heads, d).split([2, 1], dim=2)  # split: one concatenation backwards
        q, k = rotate(qk, cos, sin).unbind(2)  # (RN, T, heads, d)
        k, v = k.transpose(1, 2), v[:, :, 0].transpose(1, 2)
        if cache is not None:
            cache.append((k, v))  # (RN, heads, T, d)
        if i == arch.layers - 1:  # only the kept positions go on
            q, bias, t = q[:, keep], bias[:, :, keep], len(range(t)[keep])
            x = x.view(r, n, -1, x.shape[-1])[:, :, keep].reshape(r, n * t, -1)
        attn = torch.nn.functional.scaled_dot_product_attention(q.transpose(1, 2), k, v, attn_mask=bias)
        x = x + torch.bmm(attn.transpose(1, 2).reshape(r, n * t, heads * d), params[f"{i}.wo"])
        x = _mlp(params, i, x, arch.rms_eps)
    return rms_norm(x.view(r, n, t, -1), params["norm"].unsqueeze(1), arch.rms_eps)


def logits(params: dict[str, Tensor], hidden: Tensor) -> Tensor:
    """Logits (R, ..., V) of final hidden states (R, ..., H) through the tied head."""
    shape = hidden.shape
    flat = torch.bmm(hidden.reshape(shape[0], -1, shape[-1]), params["embed"].transpose(1, 2))
    return flat.view(*shape[:-1], -1)


def decode_step(arch: Architecture, params: dict[str, Tensor], ids: Tensor, positions: Tensor, rotary: Rotary,
                keys: list[Tensor], values: list[Tensor], length: int, bias: Tensor) -> Tensor:
    """Logits (R, N, V) after one more token per sequence, ids and positions (R, N).

    ``keys``/``values`` are per-layer buffers (R*N, heads, L, d) holding ``length`` filled slots; the new
    token's key and value go to slot ``length``. ``bias`` (R*N, 1, 1, L) masks the prompt padding.
    """
    r, n = ids.shape
    heads, d = arch.heads, arch.head_dim
    x = embed(arch, params, ids)
    cos, sin = rotary.tables(positions.reshape(r * n))  # (RN, 1, 1, d)
    span = length + 1
    for i in range(arch.layers):
        qkv = torch.baddbmm(params[f"{i}.bqkv"], rms_norm(x, params[f"{i}.ln1"], arch.rms_eps), params[f"{i}.wqkv"])
        qkv = qkv.view(r * n, 3, heads, d)
        qk = rotate(qkv[:, :2], cos, sin)  # (RN, 2, heads, d)
        keys[i][:, :, length] = qk[:, 1]
        values[i][:, :, length] = qkv[:, 2]
        attn = torch.nn.functional.scaled_dot_product_attention(
            qk[:, 0, :, None], keys[i][:, :, :span], values[i][:, :, :span], attn_mask=bias[..., :span])
        x = x + torch.bmm(attn.reshape(r, n, heads * d), params[f"{i}.wo"])
        x = _mlp(params, i, x, arch.rms_eps)
    return logits(params, rms_norm(x, params["norm"], arch.rms_eps))


# ---------------------------------------------------------------- sampling


@dataclass
class Samples:
    """Completions of R runs x N prompts: ids (R, N, C) padded after the end, mask (R, N, C), lengths (R, N),
    rollout-time log-probabilities (R, N, C) at the sampling temperature, and, when asked for, the full
    log-softmax at temperature 1 at each step (R, N, C, V), as PolicyScorer computes it for the policy rewards."""

    ids: Tensor
    mask: Tensor
    lengths: Tensor
    logps: Tensor
    distributions: Tensor | None


def _top_p(scores: Tensor, top_p: float) -> Tensor:
    """transformers' TopPLogitsWarper: drop the least likely tokens outside the top-p mass (keep at least one)."""
    ordered, order = torch.sort(scores, descending=False)
    drop = ordered.softmax(dim=-1).cumsum(dim=-1) <= (1 - top_p)
    drop[..., -1:] = False
    return scores.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


@torch.no_grad()
def sample(arch: Architecture, params: dict[str, Tensor], prompt_ids: Tensor, prompt_valid: Tensor, noise: Tensor,
           *, eos_id: int, temperature: float, top_p: float, rotary: Rotary,
           distributions: bool = False) -> Samples:
    """Sample ``N / G`` completions of each of G prompts (R, G, P) (left-padded; ``prompt_valid`` marks real
    tokens) with a KV cache; the prompts' keys and values are computed once and shared by their completions.

    ``noise`` (R, N, C, V) is uniform in [0, 1): the token at step t is the argmax of the tempered, top-p
    filtered logits plus Gumbel(-log(-log u)), an exact draw from the sampling distribution. Runs whose
    sequences have all ended leave the batch (once they are half of it); the others go on with the same shapes.
    """
    r, prompts, p = prompt_ids.shape
    n, length = noise.shape[1], noise.shape[2]
    repeat = n // prompts
    device = prompt_ids.device
    cache: list[tuple[Tensor, Tensor]] = []
    hidden = forward(arch, params, prompt_ids, (prompt_valid.cumsum(-1) - 1).clamp(min=0), prompt_valid,
                             rotary, keep=slice(p - 1, p), cache=cache)
    keys, values = [], []  # slots are read only once written (the prompt's here, each new token's before use)
    for k, v in cache:
        buffer_k, buffer_v = (k.new_empty(r * n, arch.heads, p + length, arch.head_dim) for _ in range(2))
        buffer_k[:, :, :p], buffer_v[:, :, :p] = k.repeat_interleave(repeat, 0), v.repeat_interleave(repeat, 0)
        keys.append(buffer_k)
        values.append(buffer_v)
    prompt_valid = prompt_valid.repeat_interleave(repeat, 1)
    prompt_lengths = prompt_valid.sum(-1)
    bias = torch.zeros(r * n, 1, 1, p + length, device=device)
    bias[..., :p].masked_fill_(~prompt_valid.reshape(r * n, 1, 1, p), float("-inf"))
    step_logits = logits(params, hidden[:, :, 0]).repeat_interleave(repeat, 1)
    ids = torch.full((r, n, length), arch.pad_id, dtype=torch.int64, device=device)
    mask, logps = torch.zeros(r, n, length, device=device), torch.zeros(r, n, length, device=device)
    dists = torch.zeros(r, n, length, arch.vocab, device=device) if distributions else None
    active = torch.arange(r, device=device)  # the runs still decoding
    live = params
    done = torch.zeros(r, n, dtype=torch.bool, device=device)
    for t in range(length):
        scaled = step_logits / temperature if temperature != 1 else step_logits
        logp = torch.log_softmax(scaled, dim=-1)
        raw = logp if temperature == 1 else torch.log_softmax(step_logits, dim=-1)
        filtered = _top_p(scaled, top_p) if top_p < 1 else scaled
        u = noise[active, :, t].clamp(min=torch.finfo(noise.dtype).tiny)
        token = torch.where(done, arch.pad_id, (filtered - torch.log(-torch.log(u))).argmax(dim=-1))
        going = (~done).float()
        ids[active, :, t] = token
        mask[active, :, t] = going
        logps[active, :, t] = logp.gather(-1, token[..., None])[..., 0] * going
        if dists is not None:
            dists[active, :, t] = raw
        done |= token == eos_id
        finished = done.all(dim=1)
        if t == length - 1 or bool(finished.all()):
            break
        if 2 * int(finished.sum()) >= len(active):  # drop ended runs once they are half the batch (copies cost)
            keep = (~finished).nonzero()[:, 0]
            active, done, token = active[keep], done[keep], token[keep]
            live = {k: v.index_select(0, active) for k, v in params.items()}
            rows = (keep[:, None] * n + torch.arange(n, device=device)).reshape(-1)
            keys, values = [k.index_select(0, rows) for k in keys], [v.index_select(0, rows) for v in values]
            bias = bias.index_select(0, rows)
        step_logits = decode_step(arch, live, token, prompt_lengths[active] + t, rotary, keys, values, p + t,
                                          bias)
    return Samples(ids=ids, mask=mask, lengths=mask.sum(-1).long(), logps=logps, distributions=dists)
