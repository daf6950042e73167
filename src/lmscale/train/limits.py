"""What this machine can hold: memory estimates checked before anything is allocated.

A config can be valid and still impossible here: `model.width=100000` passes every field check
but needs terabytes, and XLA then aborts the process (or the kernel kills it) long after a run
directory was made. The training commands therefore estimate the bytes a run needs from the
config alone (closed-form parameter counts, nothing drawn) and refuse, in one line naming the
values and the limit, what cannot fit:

- parameters, gradients and Adam's two moments: 16 bytes per parameter (all float32);
- activations kept for the backward pass of one micro-batch: per token and layer at least the
  inputs of the matmuls and nonlinearities (about 8 x width + 2 x MLP width values) and the
  attention probabilities (heads x context values), 4 bytes each (2 in bfloat16);
- logits of one micro-batch and their gradient: 2 x vocab float32 values per token.

These are lower bounds (XLA also keeps temporaries), so a refusal is certain to be right and a
run that passes may still be tight. The limit is this machine's memory: physical RAM, or the
cgroup's limit when one is set, or the accelerators' total memory when larger;
``$LMSCALE_MEMORY_LIMIT`` (bytes, or with a unit: 8GiB, 512MiB) overrides it.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmscale.errors import LmscaleError

MEMORY_ENV = "LMSCALE_MEMORY_LIMIT"
ADAM_BYTES_PER_PARAM = 16  # float32 parameter + gradient + Adam's m and v
GIB = 1024**3
_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
          "g": GIB, "gb": 1000**3, "gib": GIB, "t": 1024**4, "tb": 1000**4, "tib": 1024**4}


def gib(n: float) -> str:
    """A byte count in GiB for messages: '3.2 GiB', '1.5e+06 GiB'."""
    g = n / GIB
    return f"{g:.3g} GiB" if g < 1e5 else f"{g:.2g} GiB"


def _parse_bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if not m or m.group(2) not in _UNITS:
        raise LmscaleError(f"${MEMORY_ENV}={text!r}; expected a number of bytes, optionally with a unit (8GiB, 512MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 reports 'no limit' as ~2^63
            return int(text)
    return None


def _accelerator_bytes() -> int:
    """Total memory of the accelerators, if JAX has already started on one (never starts JAX itself)."""
    jax = sys.modules.get("jax")
    if jax is None:
        return 0
    try:
        devices = jax.devices()
        if devices[0].platform == "cpu":
            return 0
        return sum(int((d.memory_stats() or {}).get("bytes_limit", 0)) for d in devices)
    except Exception:  # no memory statistics on this backend: fall back to host RAM
        return 0


@dataclass(frozen=True)
class Machine:
    bytes: int
    what: str  # whose memory, for messages: "this machine has", "the accelerators have", ...


def machine_memory() -> Machine:
    """The bytes a run on this machine can use (see the module docstring)."""
    env = os.environ.get(MEMORY_ENV, "").strip()
    if env:
        return Machine(_parse_bytes(env), f"${MEMORY_ENV} allows")
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 0
    what = "this machine has"
    cg = _cgroup_limit()
    if cg is not None and (ram == 0 or cg < ram):
        ram, what = cg, "this container may use"
    acc = _accelerator_bytes()
    if acc > ram:
        return Machine(acc, "the accelerators have")
    if ram <= 0:
        return Machine(1 << 62, "unknown memory:")  # cannot tell: check nothing
    return Machine(ram, what)


@dataclass(frozen=True)
class Need:
    """One part of a run's memory: what it is, its bytes, and the config values that drive it."""

    what: str  # e.g. "parameters, gradients and Adam state"
    bytes: float
    fields: str  # the values behind it, e.g. "model.width=4096, model.depth=32"
    detail: str = ""  # how it was counted, e.g. "7e9 parameters x 16 bytes"


def check_fits(needs: list[Need], advice: str, machine: Machine | None = None) -> None:
    """Raise a one-line `LmscaleError` when the needs add up to more than the machine holds.

    The message leads with the values behind the largest part, e.g. "model.width=100000,
    model.depth=2: needs ~3.58e+03 GiB for parameters, gradients and Adam state (2.4e+11 parameters
    x 16 bytes), this machine has 23.5 GiB ($LMSCALE_MEMORY_LIMIT overrides); expected ..."
    """
    machine = machine or machine_memory()
    total = sum(n.bytes for n in needs)
    if total <= machine.bytes:
        return
    top = max(needs, key=lambda n: n.bytes)
    how = "; ".join(x for x in (top.detail, f"~{gib(total)} in all" if total > 1.05 * top.bytes else "") if x)
    raise LmscaleError(f"{top.fields}: needs ~{gib(top.bytes)} for {top.what}{f' ({how})' if how else ''}, "
                       f"{machine.what} {gib(machine.bytes)} (${MEMORY_ENV} overrides); expected {advice}")


# ----------------------------------------------------------------------------------------------
# Estimates


def transformer_needs(*, params: int, depth: int, width: int, mlp_hidden: int, heads: int, context: int,
                      vocab: int, micro_batch: int, act_bytes: int = 4, copies: int = 1,
                      names: dict[str, Any]) -> list[Need]:
    """The three parts of a transformer's training memory (see the module docstring).

    `names` maps 'depth', 'width', 'vocab', 'batch', 'context' to how the config spells them and
    their values (e.g. {'width': 'model.width=128', ...}); `copies` is the number of ensemble
    members trained at once.
    """
    p = float(params) * ADAM_BYTES_PER_PARAM * copies
    tokens = float(micro_batch) * context * copies
    act = tokens * depth * (8.0 * width + 2.0 * mlp_hidden + float(heads) * context) * act_bytes
    logits = tokens * vocab * 2.0 * 4
    n = names
    blocks_dominate = depth * width >= vocab
    param_fields = ", ".join(n[k] for k in (("width", "depth") if blocks_dominate else ("vocab", "width")) if k in n)
    return [
        Need("parameters, gradients and Adam state", p, param_fields,
             f"{float(params):.3g} parameters x {ADAM_BYTES_PER_PARAM} bytes" + (f" x {copies} members" if copies > 1 else "")),
        Need("the activations of one micro-batch", act, ", ".join(n[k] for k in ("batch", "context", "width", "depth") if k in n),
             f"{micro_batch:,} sequences x {context:,} tokens x {depth:,} layers"),
        Need("the logits of one micro-batch", logits, ", ".join(n[k] for k in ("batch", "context", "vocab") if k in n),
             f"{micro_batch:,} x {context:,} tokens x {vocab:,} vocabulary entries, float32"),
    ]


def run_config_needs(cfg, vocab: int | None = None) -> list[Need]:
    """Memory parts of training a `RunConfig` (decoder-shaped models; others: their parameters only).

    `vocab` stands in for a `model.vocab_size` left to the tokenizer (default: a lower bound,
    the BPE target size or 256 bytes or a character set of 1)."""
    from lmscale.model.sizing import count_params

    m, t = cfg.model, cfg.train
    if getattr(m, "vocab_size", 1) is None:
        tok = cfg.data.tokenizer
        vocab = vocab or (tok.vocab_size if tok.kind == "bpe" else 256 if tok.kind == "byte" else 1)
        m = m.model_copy(update={"vocab_size": vocab})
    if not all(hasattr(m, k) for k in ("depth", "width", "heads", "context", "vocab_size")):
        p = count_params(m).total
        return [Need("parameters, gradients and Adam state", float(p) * ADAM_BYTES_PER_PARAM, f"model.kind={m.kind!r}",
                     f"{p:.3g} parameters x {ADAM_BYTES_PER_PARAM} bytes")]
    micro = max(1, t.batch_size // t.grad_accum)
    names = {"depth": f"model.depth={m.depth}", "width": f"model.width={m.width}", "context": f"model.context={m.context}",
             "vocab": f"model.vocab_size={m.vocab_size}",
             "batch": f"train.batch_size={t.batch_size}" + (f" / train.grad_accum={t.grad_accum}" if t.grad_accum > 1 else "")}
    return transformer_needs(params=count_params(m).total, depth=m.depth, width=m.width,
                             mlp_hidden=getattr(m, "mlp_hidden", 4 * m.width), heads=m.heads, context=m.context,
                             vocab=m.vocab_size, micro_batch=micro, act_bytes=2 if t.precision == "bfloat16" else 4,
                             names=names)


def check_run_config(cfg, vocab: int | None = None) -> None:
    """Refuse a `RunConfig` whose training cannot fit in this machine's memory (one line).

    A context longer than a local corpus is reported as that, first: it is the root cause (such a
    context usually cannot fit in memory either), and a file's size bounds its tokens from above
    (every tokenizer here makes at most one token per byte), so this needs no tokenizing."""
    check_context_vs_corpus(cfg)
    check_fits(run_config_needs(cfg, vocab), "a smaller model or batch (or train.grad_accum > 1 for the batch)")


def check_context_vs_corpus(cfg) -> None:
    """`model.context` against the byte size of a local corpus file or directory (see above); corpora
    that are not local files (the embedded Shakespeare, Hugging Face datasets) are left to the loader."""
    context = getattr(cfg.model, "context", None)
    d = cfg.data
    if context is None or d.format == "hf" or (d.corpus == "shakespeare" and d.format == "auto"):
        return
    path = Path(d.corpus).expanduser()
    try:
        size = (sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir()
                else path.stat().st_size if path.is_file() else None)
    except OSError:
        return
    # The loader needs at least two windows of context + 1 tokens in the training split.
    if size is not None and size < 2 * context:
        raise LmscaleError(f"model.context={context} is too long for the corpus {d.corpus!r} ({size:,} bytes, so at "
                           f"most {size:,} tokens); expected a context of at most {size // 2:,} tokens")


def check_params_fit(cfg, what: str = "loading the run") -> None:
    """Refuse loading a run whose parameters and optimizer state (16 bytes per parameter) cannot fit."""
    from lmscale.model.sizing import count_params

    p = count_params(cfg.model).total
    check_fits([Need(f"{what}: parameters and Adam state", float(p) * ADAM_BYTES_PER_PARAM,
                     f"a model of {p:,} parameters", f"{ADAM_BYTES_PER_PARAM} bytes each")], "a machine with more memory")
