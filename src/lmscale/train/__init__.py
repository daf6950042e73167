"""Optimizer and schedules, the sharded train step, the loop, checkpoints, metrics, sampling."""
