"""Terminal output shared by the CLI commands: Rich consoles, the one handler of user errors
(`run_app`) and the training progress reporter."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from lmscale.errors import LmscaleError

# Tables stay readable when output is piped (Rich would otherwise assume 80 columns).
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

SET_HELP = "Override a config value, e.g. --set train.steps=100 (repeatable)."


def sub_app(help: str, **kw: Any):
    """A `typer.Typer` sub-command group with the project's settings: help on no arguments, plain
    (not rich-markup) help text, and no pretty tracebacks (user errors are one line, see `run_app`)."""
    import typer

    return typer.Typer(help=help, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                       rich_markup_mode=None, **kw)


def run_app(app: Any, args: list[str] | None = None, **kw: Any) -> None:
    """Run a Typer app in Click's standalone mode with the CLI's one handler of user errors.

    Click handles usage errors (exit 2), --help and `typer.Exit`; an `LmscaleError` raised by any
    command passes through it and is printed here as one line `error: <message>` with exit status
    `err.exit_code`. Commands therefore just raise. `lmscale.cli.main` runs the whole CLI through
    this; tests run sub-apps through it too (`invoke` in tests/helpers.py).
    """
    try:
        app(args=args, **kw)
    except LmscaleError as err:
        err_console.print(f"error: {err}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(err.exit_code)  # 2, or 3 for a DivergedError


class RichReporter:
    """Progress bar with loss, validation loss, tokens/s and ETA; plain lines when not a terminal."""

    def __init__(self, show_progress: bool = True):
        self.show = show_progress and err_console.is_terminal
        self.progress: Progress | None = None
        self.task = None
        self._last_print = 0

    def log(self, msg: str) -> None:
        err_console.print(f"[dim]{msg}[/dim]", highlight=False, soft_wrap=True)

    def warn(self, msg: str) -> None:
        err_console.print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)

    def start(self, total_steps: int, done: int) -> None:
        self.total = total_steps
        if not self.show:
            return
        self.progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}"),
            TextColumn("{task.fields[tps]} tok/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=err_console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task("train", total=total_steps, completed=done, loss="-", val="-", tps="-")

    def update(self, step: int, rec: dict[str, Any]) -> None:
        loss, tps, val = rec.get("loss"), rec.get("tokens_per_s"), rec.get("val_loss")
        fields = {"loss": f"{loss:.4f}" if loss is not None else "-", "tps": f"{tps:,.0f}" if tps else "-",
                  "val": f"{val:.4f}" if val is not None else "-"}
        if self.progress is not None:
            self.progress.update(self.task, completed=step, **fields)
        elif step - self._last_print >= max(1, self.total // 20) or step == self.total:
            self._last_print = step
            err_console.print(
                f"step {step}/{self.total}  loss {fields['loss']}  val {fields['val']}  {fields['tps']} tok/s",
                highlight=False, soft_wrap=True,
            )

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
