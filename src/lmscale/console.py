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
    """Run a Typer app with the CLI's one handler of user errors.

    An `LmscaleError` raised by any command, and every usage error Click finds (a missing
    argument, an unknown option, a value of the wrong type), is printed here as one line
    `error: <message>` with exit status `err.exit_code` (2; 3 for a divergence). Commands
    therefore just raise. --help, `typer.Exit` and Ctrl-C (130) keep Click's behaviour.
    `lmscale.cli.main` runs the whole CLI through this; tests run sub-apps through it too
    (`invoke` in tests/helpers.py).
    """
    import typer

    click = _click_exceptions()

    try:
        # Not standalone: Click's own usage-error display is a three-line block (usage, "Try ...
        # --help", "Error: ..."), which breaks the one-line `error: ...` contract; it is formatted
        # below instead. Exit codes (typer.Exit, --help, Ctrl-C as 130) come back as the return value.
        code = app(args=args, standalone_mode=False, **kw)
    except LmscaleError as err:
        _error_line(str(err))
        sys.exit(err.exit_code)  # 2, or 3 for a DivergedError
    except click.NoArgsIsHelpError as err:
        err.show()  # a bare group (`lmscale fit`): its help, as Click prints it (exit 2)
        sys.exit(err.exit_code)
    except click.UsageError as err:
        _error_line(_usage_message(err))
        sys.exit(err.exit_code)  # 2
    except click.ClickException as err:  # e.g. click.FileError
        _error_line(err.format_message())
        sys.exit(err.exit_code)
    except typer.Abort:  # EOF at a prompt
        err_console.print("Aborted!", highlight=False, markup=False)
        sys.exit(1)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)


def _click_exceptions():
    """The exceptions module of the Click that Typer runs on (recent Typer vendors its own copy)."""
    try:
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    return exceptions


def _error_line(message: str) -> None:
    err_console.print(f"error: {' '.join(message.split())}", highlight=False, markup=False, soft_wrap=True)


def _usage_message(err: Any) -> str:
    """Click's usage error as one line: the problem, the command's usage and where the help is."""
    msg = err.format_message().rstrip(".")
    ctx = err.ctx
    if ctx is None:
        return msg
    usage = " ".join(ctx.get_usage().split()).removeprefix("Usage: ")
    return f"{msg}; expected: {usage} (see {ctx.command_path} --help)"


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

    def check(self, before: str) -> None:
        """The training core's ownership hook (`lmscale.train.core.Reporter.check`): a plain CLI run
        owns its run directory, so nothing to check (sweep workers wrap a reporter that raises)."""
        del before

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
