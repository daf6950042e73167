"""Corpora (including the generated skill-task suites and the skills mixture: `tasks`, `mixture`), tokenizers,
prepared token caches and the deterministic batch loader."""

from lmscale.data.corpus import Corpus, load_corpus
from lmscale.data.loader import BatchLoader, eval_starts
from lmscale.data.prepare import PreparedData, prepare_data
from lmscale.data.tokenizers import Tokenizer, build_tokenizer, load_tokenizer

__all__ = [
    "BatchLoader",
    "Corpus",
    "PreparedData",
    "Tokenizer",
    "build_tokenizer",
    "eval_starts",
    "load_corpus",
    "load_tokenizer",
    "prepare_data",
]
