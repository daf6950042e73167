"""Sweeps over model size N and data D: spec expansion, the SQLite run registry, the runner, results."""
