"""Plain-text tables and JSON-safe conversion: kept importable here for the modules outside
`lmscale.laws` that use them; they live, with every summary, in `lmscale.laws.summary`."""

from lmscale.laws.summary import fmt, fmt_interval, format_table, jsonable

__all__ = ["fmt", "fmt_interval", "format_table", "jsonable"]
