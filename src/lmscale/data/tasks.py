"""Synthetic skill suites, generated deterministically from a seed, each with a known chance level.

    task = get_task("add3r")
    examples = task.examples("test", n=200, seed=0)   # held out from every training corpus
    examples[0].prompt, examples[0].answer             # 'add3r: 123+456=', '975'

Every example is one text line ``prompt + answer + "\\n"``; the prompt starts with the task tag
(``add3r:``) so a model trained on a mixture knows which skill is asked. The newline ends the
answer and is scored with it: an answer of ``len(answer)`` characters is ``L = len(answer) + 1``
tokens for a character tokenizer.

Names: ``add2``..``add9`` (N-digit addition), ``add2r``.. (the same with the sum's digits
reversed, least significant first), ``mul1``..``mul3`` (N-digit by N-digit multiplication),
``mod<P>`` (addition modulo P, e.g. ``mod97``), ``parity`` (multitask sparse parity),
``recall`` (associative recall of a key's value), ``repeat`` (continue a random sequence seen
once: induction), ``unscramble`` (Shakespeare's words with their letters shuffled).

Train/validation/test separation is by a hash of the example text (`split_of`), not by seed:
an example belongs to one split whatever seed drew it, so the test examples never appear in a
training corpus built from the train split, with any seed.
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from lmscale.errors import LmscaleError

SPLITS = ("train", "val", "test")
# Hash buckets out of 100: test 0-19, val 20-29, train 30-99.
_BUCKETS = {"test": (0, 20), "val": (20, 30), "train": (30, 100)}
TERMINATOR = "\n"
DIGITS = "0123456789"
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Example:
    """One task instance: the model reads `prompt` and should write `answer` then a newline."""

    task: str
    prompt: str
    answer: str
    choices: tuple[str, ...] = ()  # multiple-choice options (empty: free generation only)
    label: int = -1  # index of `answer` in `choices`
    chance: float = 0.0  # probability that a uniform guess over the answer space is exactly right

    def line(self) -> str:
        return self.prompt + self.answer + TERMINATOR


def split_of(task: str, prompt: str, answer: str) -> str:
    """'train', 'val' or 'test': a fixed function of the example text (blake2b, stable across runs)."""
    h = hashlib.blake2b(f"{task}\x00{prompt}\x00{answer}".encode(), digest_size=8).digest()
    b = int.from_bytes(h, "little") % 100
    return next(s for s, (lo, hi) in _BUCKETS.items() if lo <= b < hi)


def task_rng(name: str, split: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), SPLITS.index(split)])


@dataclass(frozen=True)
class Task:
    """A skill: draws examples from its full distribution; `examples` keeps those of one split."""

    name: str
    description: str
    alphabet: str  # characters answers are made of (for the per-token chance level)
    max_answer: int  # longest answer in characters
    has_choices: bool = False
    n_choices: int = 0
    _draw: object = field(default=None, repr=False, compare=False)

    def draw(self, rng: np.random.Generator) -> Example:
        return self._draw(rng)

    @property
    def token_chance(self) -> float:
        """Per-token chance of a guesser over the answer alphabet plus the terminator."""
        return 1.0 / (len(set(self.alphabet)) + 1)

    def examples(self, split: str, n: int, seed: int = 0, unique: bool = True) -> list[Example]:
        """`n` examples of `split`, the same for the same (task, split, n, seed)."""
        if split not in SPLITS:
            raise LmscaleError(f"split {split!r}; expected one of {', '.join(SPLITS)}")
        if n < 1:
            raise LmscaleError(f"n={n} examples of task {self.name!r}; expected a positive number")
        rng = task_rng(self.name, split, seed)
        out: list[Example] = []
        seen: set[str] = set()
        for _ in range(60 * n + 2000):
            ex = self._draw(rng)
            if split_of(self.name, ex.prompt, ex.answer) != split:
                continue
            if unique:
                if ex.prompt in seen:
                    continue
                seen.add(ex.prompt)
            out.append(ex)
            if len(out) == n:
                return out
        raise LmscaleError(
            f"task {self.name!r} has only about {len(out)} distinct {split} examples; expected n <= {len(out)}"
        )


# ----------------------------------------------------------------------------------------------
# Families


def _digit_distractors(rng: np.random.Generator, answer: str, n: int) -> list[str]:
    """`n` distinct wrong answers of the same length, each differing from `answer` in one digit."""
    out: list[str] = []
    for _ in range(200):
        if len(out) == n:
            break
        pos = int(rng.integers(len(answer)))
        d = DIGITS[int(rng.integers(10))]
        cand = answer[:pos] + d + answer[pos + 1:]
        if cand != answer and cand not in out and not (len(cand) > 1 and cand[0] == "0" and answer[0] != "0"):
            out.append(cand)
    return out


def _with_choices(rng, answer: str, wrong: list[str]) -> tuple[tuple[str, ...], int]:
    label = int(rng.integers(len(wrong) + 1))
    choices = wrong[:label] + [answer] + wrong[label:]
    return tuple(choices), label


def _arith(name: str, n_digits: int, op: str, reverse: bool = False, modulus: int | None = None) -> Task:
    lo, hi = (0, modulus) if modulus else (10 ** (n_digits - 1) if n_digits > 1 else 0, 10**n_digits)
    if modulus:
        n_answers = modulus
    elif op == "+":
        n_answers = 2 * (hi - 1) - 2 * lo + 1
    else:
        n_answers = _n_products(lo, hi)
    sym = f"+{{}}%{modulus}=" if modulus else f"{op}{{}}="

    def draw(rng):
        a, b = int(rng.integers(lo, hi)), int(rng.integers(lo, hi))
        value = (a + b) % modulus if modulus else a + b if op == "+" else a * b
        ans = str(value)[::-1] if reverse else str(value)
        fwd = _digit_distractors(rng, str(value), 3)
        wrong = [w[::-1] for w in fwd] if reverse else fwd
        choices, label = _with_choices(rng, ans, wrong)
        return Example(name, f"{name}: {a}{sym.format(b)}", ans, choices, label, 1.0 / n_answers)

    max_val = (modulus - 1) if modulus else (2 * (hi - 1) if op == "+" else (hi - 1) ** 2)
    what = (f"a+b mod {modulus}, a, b in [0, {modulus})" if modulus else
            f"{n_digits}-digit {'addition' if op == '+' else 'multiplication'}" + (", answer reversed" if reverse else ""))
    return Task(name, what, DIGITS, len(str(max_val)), True, 4, draw)


@lru_cache(maxsize=None)
def _n_products(lo: int, hi: int) -> int:
    a = np.arange(lo, hi, dtype=np.int64)
    return int(np.unique(np.multiply.outer(a, a)).size)


# Multitask sparse parity (Michaud et al. 2023), scaled down for CPUs: the prompt holds
# N_TASKS one-hot control bits and N_BITS task bits; the answer is the parity of subtask i's
# fixed K-subset of the task bits, subtask i drawn with probability proportional to i^-ZIPF.
PARITY_TASKS, PARITY_BITS, PARITY_K, PARITY_ZIPF = 16, 24, 3, 1.4


@lru_cache(maxsize=None)
def parity_subsets() -> tuple[tuple[int, ...], ...]:
    """The K-subsets of each subtask: fixed (not drawn from the sampling seed) so every split agrees."""
    rng = np.random.default_rng(zlib.crc32(b"lmscale.parity.subsets"))
    return tuple(tuple(sorted(int(i) for i in rng.choice(PARITY_BITS, PARITY_K, replace=False))) for _ in range(PARITY_TASKS))


def parity_weights() -> np.ndarray:
    w = np.arange(1, PARITY_TASKS + 1, dtype=float) ** -PARITY_ZIPF
    return w / w.sum()


def _parity() -> Task:
    subsets, weights = parity_subsets(), parity_weights()

    def draw(rng):
        i = int(rng.choice(PARITY_TASKS, p=weights))
        bits = rng.integers(0, 2, PARITY_BITS)
        control = "".join("1" if j == i else "0" for j in range(PARITY_TASKS))
        ans = str(int(bits[list(subsets[i])].sum()) % 2)
        return Example("parity", f"parity: {control} {''.join(map(str, bits))}=", ans, ("0", "1"), int(ans), 0.5)

    return Task("parity", f"multitask sparse parity: {PARITY_TASKS} Zipfian subtasks (exponent {PARITY_ZIPF}), "
                f"{PARITY_K} of {PARITY_BITS} bits", "01", 1, True, 2, draw)


RECALL_PAIRS = 6


def _recall() -> Task:
    def draw(rng):
        keys = rng.choice(26, RECALL_PAIRS, replace=False)
        vals = rng.integers(0, 10, RECALL_PAIRS)
        q = int(rng.integers(RECALL_PAIRS))
        ctx = " ".join(f"{LETTERS[k]}{v}" for k, v in zip(keys, vals))
        ans = str(int(vals[q]))
        return Example("recall", f"recall: {ctx}|{LETTERS[keys[q]]}=", ans, tuple(DIGITS), int(ans), 0.1)

    return Task("recall", f"associative recall: the value of one of {RECALL_PAIRS} letter-digit pairs", DIGITS, 1, True,
                10, draw)


REPEAT_LEN, REPEAT_CUE = 10, 4


def _repeat() -> Task:
    def draw(rng):
        s = "".join(LETTERS[i] for i in rng.integers(0, 26, REPEAT_LEN))
        return Example("repeat", f"repeat: {s}|{s[:REPEAT_CUE]}=", s[REPEAT_CUE:], (), -1,
                       26.0 ** -(REPEAT_LEN - REPEAT_CUE))

    return Task("repeat", f"induction: continue a random {REPEAT_LEN}-letter sequence after a {REPEAT_CUE}-letter cue",
                LETTERS, REPEAT_LEN - REPEAT_CUE, False, 0, draw)


COPY_LEN = 8


def _copy() -> Task:
    # The answer sits at a fixed offset (COPY_LEN + 1 back), so one attention layer can copy it; how
    # precisely depends on capacity, so per-token accuracy rises gradually while exact match needs all.
    def draw(rng):
        s = "".join(LETTERS[i] for i in rng.integers(0, 26, COPY_LEN))
        return Example("copy", f"copy: {s}=", s, (), -1, 26.0 ** -COPY_LEN)

    return Task("copy", f"copy a random {COPY_LEN}-letter string", LETTERS, COPY_LEN, False, 0, draw)


UNSCRAMBLE_LENGTHS = (4, 7)  # word lengths kept, inclusive
UNSCRAMBLE_MIN_COUNT = 5  # occurrences in the plays


@lru_cache(maxsize=1)
def shakespeare_words() -> tuple[str, ...]:
    """Lower-case words of 4-7 letters occurring at least 5 times in the 38 plays, sorted."""
    from collections import Counter

    from lmscale.data import shakespeare

    counts: Counter[str] = Counter()
    for play in shakespeare.load_plays():
        counts.update(re.findall(r"[a-z]+", play.text.lower()))
    lo, hi = UNSCRAMBLE_LENGTHS
    return tuple(sorted(w for w, c in counts.items()
                        if c >= UNSCRAMBLE_MIN_COUNT and lo <= len(w) <= hi and len(set(w)) > 1))


def _distinct_perms(word: str) -> int:
    from collections import Counter

    n = math.factorial(len(word))
    for c in Counter(word).values():
        n //= math.factorial(c)
    return n


def _unscramble() -> Task:
    def draw(rng):
        words = shakespeare_words()
        w = words[int(rng.integers(len(words)))]
        letters = list(w)
        for _ in range(20):
            perm = "".join(letters[i] for i in rng.permutation(len(w)))
            if perm != w:
                break
        same_len = [x for x in (words[int(i)] for i in rng.integers(0, len(words), 40)) if len(x) == len(w) and x != w]
        wrong = list(dict.fromkeys(same_len))[:3]
        choices, label = _with_choices(rng, w, wrong) if len(wrong) == 3 else ((), -1)
        return Example("unscramble", f"unscramble: {perm}=", w, choices, label, 1.0 / (_distinct_perms(w) - 1))

    return Task("unscramble", "unscramble a Shakespeare word (4-7 letters)", LETTERS, UNSCRAMBLE_LENGTHS[1], True, 4,
                draw)


# ----------------------------------------------------------------------------------------------
# Registry

_FIXED = {"copy": _copy, "parity": _parity, "recall": _recall, "repeat": _repeat, "unscramble": _unscramble}
NAME_HELP = ("add1..add9 (N-digit addition), add1r..add9r (answer reversed), mul1..mul3, mod<P> (P 2..997, e.g. "
             "mod97), copy, parity, recall, repeat, unscramble")
# Names listed by `lmscale eval --list-tasks` and used by the default skills mixture.
SUITE = ("add2", "add3", "add4", "add5", "add2r", "add3r", "add4r", "add5r", "mul1", "mul2", "mod97", "parity",
         "recall", "repeat", "copy", "unscramble")


@lru_cache(maxsize=None)
def get_task(name: str) -> Task:
    """The task called `name` (see NAME_HELP); unknown names are a one-line LmscaleError."""
    name = str(name).strip()
    if name in _FIXED:
        return _FIXED[name]()
    if m := re.fullmatch(r"add([1-9])(r?)", name):
        return _arith(name, int(m.group(1)), "+", reverse=bool(m.group(2)))
    if m := re.fullmatch(r"mul([1-3])", name):
        return _arith(name, int(m.group(1)), "*")
    if (m := re.fullmatch(r"mod([0-9]{1,3})", name)) and 2 <= int(m.group(1)) <= 997:
        return _arith(name, 0, "+", modulus=int(m.group(1)))
    raise LmscaleError(f"unknown task {name!r}; expected one of {NAME_HELP}")


def parse_tasks(spec: str | list[str] | tuple[str, ...]) -> list[Task]:
    """Tasks from 'add3,add3r,parity' (or a list); duplicates and empty lists are errors."""
    names = [s.strip() for s in (spec.split(",") if isinstance(spec, str) else spec)]
    names = [n for n in names if n]
    if not names:
        raise LmscaleError(f"no task names in {spec!r}; expected a comma-separated list such as add3,add3r,parity")
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup:
        raise LmscaleError(f"task {dup!r} is listed twice; expected each task once")
    return [get_task(n) for n in names]
