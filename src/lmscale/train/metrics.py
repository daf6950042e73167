"""metrics.jsonl: one JSON object per logged step, the run's source of truth.

Records carry ``"kind": "train"`` or ``"kind": "eval"`` and the step (optimizer steps done).
On resume the file is rewritten (atomically) without the records past the checkpoint's step, so
a resumed run's per-step figures (loss, lr, norms) are those of an uninterrupted run; only the
timing fields and the `loss_avg` window of the first record after a resume can differ.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Iterator

from lmscale.fileio import atomic_write_text


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # JSON has no NaN/inf; keep them readable
    return v


class MetricsWriter:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = None

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self._f is None:
            self._f = open(self.path, "a", encoding="utf-8")
        self._f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    return list(iter_metrics(path))


def iter_metrics(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    # errors="replace": bytes that are not UTF-8 (a damaged file) make their line fail to parse,
    # and it is skipped like a torn one, instead of the whole read raising UnicodeDecodeError.
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn line from a killed process
            if isinstance(rec, dict):
                yield rec
