import pytest

from lmscale.emergence.fewshot import with_shots
from lmscale.data.tasks import get_task, split_of
from lmscale.errors import LmscaleError


def test_k_shot_prompts_are_train_lines_of_the_same_task_then_the_question():
    task = get_task("add3r")
    base = task.examples("test", 20, seed=1)
    assert with_shots(task, base, 0) == base
    shot = with_shots(task, base, 3, seed=1)
    assert shot == with_shots(task, base, 3, seed=1)  # deterministic
    assert shot != with_shots(task, base, 3, seed=2)
    for ex, b in zip(shot, base):
        assert ex.answer == b.answer and ex.choices == b.choices and ex.prompt.endswith(b.prompt)
        demos = ex.prompt[: -len(b.prompt)].split("\n")[:-1]
        assert len(demos) == 3 and len(set(demos)) == 3
        for d in demos:
            p, a = d.split("=")
            assert p.startswith("add3r: ") and split_of("add3r", p + "=", a) == "train"
            x, y = map(int, p[len("add3r: "):].split("+"))
            assert a == str(x + y)[::-1]
    assert len({ex.prompt[: -len(b.prompt)] for ex, b in zip(shot, base)}) > 15  # shots vary across questions


def test_bad_k_and_small_tasks():
    task = get_task("mul1")
    with pytest.raises(LmscaleError, match="k-shot"):
        with_shots(task, task.examples("test", 2), -1)
    out = with_shots(task, task.examples("test", 2), 12)  # more shots than the usual pool: still works
    assert all(ex.prompt.count("\n") == 12 for ex in out)
