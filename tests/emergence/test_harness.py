import math

import numpy as np
import pytest

from lmscale.data.tokenizers import CharTokenizer
from lmscale.emergence.harness import EvalModel, bootstrap_mean, edit_distance, evaluate, evaluate_task, result_rows
from lmscale.data.tasks import Example, Task
from lmscale.errors import LmscaleError

LN = math.log


def _bigram_model(context=16):
    """A "model" whose next-token distribution depends only on the current token (known logits)."""
    tok = CharTokenizer(sorted(set("abpqz\n")))
    V = tok.vocab_size + 1  # one padded id past the tokenizer: it must never be predicted
    table = np.full((V, V), -1e9, np.float32)
    rows = {  # current char -> {next char: probability}
        "p": {"a": 0.7, "b": 0.2, "\n": 0.1},
        "q": {"a": 0.55, "b": 0.45},
        "a": {"b": 0.5, "a": 0.3, "\n": 0.2},
        "b": {"\n": 0.6, "a": 0.4},
        "z": {"z": 1.0},
    }
    for cur, nxt in rows.items():
        for c, prob in nxt.items():
            table[tok.encode(cur)[0], tok.encode(c)[0]] = LN(prob)
    table[:, V - 1] = 50.0  # the padding id has the largest logit everywhere

    def apply(params, tokens):
        return params["table"][tokens]

    return EvalModel("bigram", apply, {"table": table}, context, tok, tok.vocab_size, {"N": 123.0, "step": 7})


def _examples():
    # Prompts of different lengths exercise the right-padding and the answer offsets.
    ex1 = Example("t", "zp", "ab", ("ab", "ba"), 0, 0.25)
    ex2 = Example("t", "zzzq", "ba", ("ab", "ba"), 1, 0.25)
    return [ex1, ex2]


TASK = Task("t", "test task", "ab", 2, True, 2, None)


def test_metrics_match_hand_computed_values():
    res = evaluate_task(_bigram_model(), TASK, examples=_examples(), pass_budget=50_000, pass_r=8, seed=0)
    v = res.values
    # ex1: p->a (0.7, argmax), a->b (0.5, argmax), b->\n (0.6, argmax): greedy writes "ab\n".
    # ex2: q->b (0.45, argmax is a), b->a (0.4, argmax \n), a->\n (0.2, argmax b); greedy from q: "ab\n".
    assert v["token_accuracy"] == pytest.approx([1.0, 0.0])
    assert v["logprob"] == pytest.approx([LN(0.7 * 0.5 * 0.6), LN(0.45 * 0.4 * 0.2)], rel=1e-5)
    assert v["exact_match"].tolist() == [1.0, 0.0]
    assert res.outputs == ["ab", "ab"]
    assert v["edit_distance"] == pytest.approx([0.0, 2 / 3])  # "ab\n" vs "ba\n": two substitutions of 3 tokens
    assert res.answer_tokens.tolist() == [3, 3]
    # Choices scored with the newline: softmax over the two sequence log-likelihoods.
    ll1 = np.array([LN(0.7 * 0.5 * 0.6), LN(0.2 * 0.4 * 0.2)])
    ll2 = np.array([LN(0.55 * 0.5 * 0.6), LN(0.45 * 0.4 * 0.2)])
    q1, q2 = np.exp(ll1) / np.exp(ll1).sum(), np.exp(ll2) / np.exp(ll2).sum()
    assert v["mc_accuracy"].tolist() == [1.0, 0.0]
    assert v["brier"] == pytest.approx([(q1[0] - 1) ** 2 + q1[1] ** 2, q2[0] ** 2 + (q2[1] - 1) ** 2], rel=1e-5)
    assert 0 < v["pass_until"][1] < v["pass_until"][0] <= 1  # its unbiasedness: the next test
    assert res.chance["mc_accuracy"] == 0.5 and res.chance["brier"] == 0.5
    assert res.chance["token_accuracy"] == pytest.approx(1 / 3)
    assert res.chance["logprob"] == pytest.approx(3 * LN(1 / 3))


def test_pass_until_is_unbiased_on_many_copies():
    ex = _examples()[1]
    res = evaluate_task(_bigram_model(), TASK, examples=[ex] * 300, metrics=("pass_until",), pass_r=4, pass_budget=100_000)
    assert res.values["pass_until"].mean() == pytest.approx(0.45 * 0.4 * 0.2, rel=0.12)
    assert set(res.values) == {"pass_until"}


def test_rows_bootstrap_and_errors():
    model = _bigram_model()
    res = evaluate_task(model, TASK, examples=_examples() * 10)
    rows = result_rows(model, res, n_boot=200, seed=0)
    by = {r.metric: r for r in rows}
    assert set(by) == {"exact_match", "token_accuracy", "edit_distance", "logprob", "mc_accuracy", "brier", "pass_until"}
    em = by["exact_match"]
    assert em.value == 0.5 and em.ci_low < 0.5 < em.ci_high and em.n_examples == 20 and em.N == 123.0 and em.step == 7
    assert em.answer_tokens == 3 and em.chance == 0.25
    mean, lo, hi = bootstrap_mean(np.r_[np.zeros(50), np.ones(50)], 2000, 0.95, 0)
    assert mean == 0.5 and lo == pytest.approx(0.4, abs=0.03) and hi == pytest.approx(0.6, abs=0.03)
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([], [4, 5]) == 2
    short = _bigram_model(context=4)
    with pytest.raises(LmscaleError, match="context"):  # 4 prompt + 3 answer tokens > 4 + 1
        evaluate_task(short, TASK, examples=_examples())
    with pytest.raises(LmscaleError, match="unknown metric"):
        evaluate(model, [TASK], metrics="exact_match,accuracy")


def test_evaluate_derives_token_prob_from_logprob():
    model = _bigram_model()

    class Fixed(Task):
        def examples(self, split, n, seed=0, unique=True):
            return _examples()[:n]

    task = Fixed("t", "test task", "ab", 2, True, 2, None)
    rows = evaluate(model, [task], n_examples=2, metrics=("token_prob",), n_boot=50)
    assert [r.metric for r in rows] == ["token_prob"]
    mean_lp = (LN(0.7 * 0.5 * 0.6) + LN(0.45 * 0.4 * 0.2)) / 2
    assert rows[0].value == pytest.approx(math.exp(mean_lp / 3), rel=1e-5) and rows[0].answer_tokens == 3
