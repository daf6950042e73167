#!/usr/bin/env python3
"""PyTorch CPU baseline: nanoGPT's "baby GPT" training-step throughput.

Measures how fast nanoGPT's PyTorch model trains on *this* machine so that
lmscale's JAX trainer can be compared against it on identical hardware.

The model and training step are a faithful, self-contained reimplementation of
nanoGPT (https://github.com/karpathy/nanoGPT, ``model.py`` and ``train.py``),
Copyright (c) 2022 Andrej Karpathy, released under the MIT License.  The code
below follows upstream nanoGPT's GPT (LayerNorm without bias,
CausalSelfAttention via ``F.scaled_dot_product_attention(is_causal=True)`` as
used when flash attention is available, GELU MLP, weight tying, GPT-2 init with
the ``0.02/sqrt(2*n_layer)`` residual ``c_proj`` scaling, ``get_num_params`` and
``configure_optimizers``).  Unused pieces (``from_pretrained``, ``generate``,
``crop_block_size``, the slow-attention fallback, the inference-time
last-position lm_head shortcut) are omitted.

Configuration = the nanoGPT README's CPU command:

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False
        --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12
        --n_layer=4 --n_head=4 --n_embd=128 --max_iters=2000
        --lr_decay_iters=2000 --dropout=0.0

i.e. 4 layers, 4 heads, n_embd 128, block 64, batch 12, bias=False, vocab 65,
AdamW lr 1e-3 betas (0.9, 0.99) weight_decay 0.1, warmup 100 + cosine decay,
grad clip 1.0, float32, no torch.compile, gradient_accumulation_steps 1.

Training step mirrors train.py (per iteration): set lr, forward with targets,
fetch next batch, ``loss.backward()``, ``clip_grad_norm_(1.0)``,
``optimizer.step()``, ``zero_grad(set_to_none=True)``, ``loss.item()`` (train.py
does this every iteration with ``--log_interval=1``).  Data are random token ids
in ``[0, 65)`` (timing only; no shakespeare file needed).  Periodic evaluation
(every 250 iters in train.py) is not timed.  Each iteration is timed with
``time.perf_counter``; the first ``--warmup`` iterations are discarded.

Usage (torch lives in its own venv, not in lmscale's environment):

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy
    /tmp/torchvenv/bin/python benchmarks/nanogpt_torch_baseline.py --iters 300 [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

try:
    import torch
    import torch.nn as nn
    from torch.nn import functional as F
except ImportError:  # pragma: no cover - depends on the environment
    print(
        "nanogpt_torch_baseline: PyTorch is not importable; `pip install torch==2.13.0` in a separate "
        "venv (python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch==2.13.0 numpy) "
        "and run this script with that venv's python."
    )
    sys.exit(2)

# Reference figure quoted in the issue statement for this config on a 2-core CPU.
REFERENCE = "~33 ms/iter, ~23k tokens/s on a 2-core CPU"


# --------------------------------------------------------------------------------------
# Model: reimplementation of nanoGPT model.py (MIT License, (c) 2022 Andrej Karpathy)
# --------------------------------------------------------------------------------------


class LayerNorm(nn.Module):
    """LayerNorm but with an optional bias. PyTorch doesn't support simply bias=False."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, input):
        return F.layer_norm(input, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        # key, query, value projections for all heads, but in a batch
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        # output projection
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        if not hasattr(F, "scaled_dot_product_attention"):
            raise RuntimeError("PyTorch >= 2.0 required (F.scaled_dot_product_attention)")

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True
        )
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # re-assemble all head outputs
        y = self.resid_dropout(self.c_proj(y))
        return y


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        x = self.c_fc(x)
        x = self.gelu(x)
        x = self.c_proj(x)
        x = self.dropout(x)
        return x


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


@dataclass
class GPTConfig:
    block_size: int = 64
    vocab_size: int = 65
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying
        self.transformer.wte.weight = self.lm_head.weight
        # init all weights
        self.apply(self._init_weights)
        # apply special scaled init to the residual projections, per GPT-2 paper
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; position embeddings excluded by default (tied wte counted once)."""
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets):
        device = idx.device
        b, t = idx.size()
        assert t <= self.config.block_size
        pos = torch.arange(0, t, dtype=torch.long, device=device)
        tok_emb = self.transformer.wte(idx)
        pos_emb = self.transformer.wpe(pos)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas, device_type):
        param_dict = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
        # 2-D+ params (matmul weights, embeddings) decay; biases/LayerNorm gains don't.
        decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
        optim_groups = [
            {"params": decay_params, "weight_decay": weight_decay},
            {"params": nodecay_params, "weight_decay": 0.0},
        ]
        # nanoGPT uses fused AdamW only on CUDA; on CPU that is the plain implementation.
        use_fused = device_type == "cuda"
        return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, fused=use_fused)


# --------------------------------------------------------------------------------------
# Benchmark harness
# --------------------------------------------------------------------------------------

BATCH_SIZE = 12
LEARNING_RATE = 1e-3
MIN_LR = 1e-4
WARMUP_ITERS = 100
LR_DECAY_ITERS = 2000
BETAS = (0.9, 0.99)
WEIGHT_DECAY = 0.1
GRAD_CLIP = 1.0


def get_lr(it: int) -> float:
    """train.py's warmup + cosine schedule (train_shakespeare_char config values)."""
    if it < WARMUP_ITERS:
        return LEARNING_RATE * it / WARMUP_ITERS
    if it > LR_DECAY_ITERS:
        return MIN_LR
    decay_ratio = (it - WARMUP_ITERS) / (LR_DECAY_ITERS - WARMUP_ITERS)
    coeff = 0.5 * (1.0 + math.cos(math.pi * decay_ratio))
    return MIN_LR + coeff * (LEARNING_RATE - MIN_LR)


def cpu_model_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.strip().lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def run(iters: int, warmup: int, threads: int | None, seed: int = 1337) -> dict:
    if threads is not None:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    device = "cpu"
    config = GPTConfig()
    model = GPT(config).to(device)
    model.train()
    optimizer = model.configure_optimizers(WEIGHT_DECAY, LEARNING_RATE, BETAS, device)

    def get_batch():
        # random stand-in for train.py's get_batch on shakespeare_char (vocab 65)
        x = torch.randint(config.vocab_size, (BATCH_SIZE, config.block_size), dtype=torch.long)
        y = torch.randint(config.vocab_size, (BATCH_SIZE, config.block_size), dtype=torch.long)
        return x.to(device), y.to(device)

    total = warmup + iters
    times = []
    losses = []
    X, Y = get_batch()
    for it in range(total):
        t0 = time.perf_counter()
        lr = get_lr(it)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        logits, loss = model(X, Y)
        X, Y = get_batch()  # train.py prefetches the next batch here
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lossf = loss.item()  # train.py with --log_interval=1 syncs on this every iter
        t1 = time.perf_counter()
        if it >= warmup:
            times.append(t1 - t0)
        losses.append(lossf)

    median_s = statistics.median(times)
    mean_s = statistics.fmean(times)
    tokens_per_iter = BATCH_SIZE * config.block_size
    return {
        "benchmark": "nanogpt_torch_baseline",
        "machine": {
            "cpu_model": cpu_model_name(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
        },
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "config": {**asdict(config), "batch_size": BATCH_SIZE, "dtype": "float32", "compile": False},
        "params": model.get_num_params(),
        "iters": iters,
        "warmup": warmup,
        "ms_per_iter_median": median_s * 1e3,
        "ms_per_iter_mean": mean_s * 1e3,
        "ms_per_iter_stdev": (statistics.stdev(times) * 1e3) if len(times) > 1 else 0.0,
        "ms_per_iter_min": min(times) * 1e3,
        "tokens_per_s_median": tokens_per_iter / median_s,
        "tokens_per_s_mean": tokens_per_iter / mean_s,
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "reference": REFERENCE,
    }


def print_table(r: dict) -> None:
    m = r["machine"]
    rows = [
        ("machine", f"{m['cpu_model']} ({m['processor'] or '?'}), {m['cpu_count']} CPUs"),
        ("torch", r["torch_version"]),
        ("threads", str(r["threads"])),
        ("params", f"{r['params']:,} ({r['params'] / 1e6:.2f}M, excl. wpe)"),
        ("iters (warmup)", f"{r['iters']} ({r['warmup']} skipped)"),
        ("ms/iter median", f"{r['ms_per_iter_median']:.2f}"),
        ("ms/iter mean", f"{r['ms_per_iter_mean']:.2f} (stdev {r['ms_per_iter_stdev']:.2f}, min {r['ms_per_iter_min']:.2f})"),
        ("tokens/s (median)", f"{r['tokens_per_s_median']:,.0f}"),
        ("tokens/s (mean)", f"{r['tokens_per_s_mean']:,.0f}"),
        ("loss first/last", f"{r['first_loss']:.4f} / {r['last_loss']:.4f}"),
        ("reference", r["reference"]),
    ]
    w = max(len(k) for k, _ in rows)
    print("nanoGPT baby GPT (PyTorch, CPU, fp32, no compile): 4L/4H/128d, block 64, batch 12")
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=200, help="timed iterations (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="untimed warmup iterations (default 10)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--json", action="store_true", help="also print one JSON line with the results")
    args = p.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")
    r = run(args.iters, args.warmup, args.threads)
    print_table(r)
    if args.json:
        print(json.dumps(r, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
