"""User-facing errors.

`LmscaleError` is raised for mistakes a user can fix (bad config values, missing files,
corrupted caches). The CLI prints ``error: <message>`` on one line and exits with status 2.
Programming errors are deliberately not wrapped.
"""


class LmscaleError(Exception):
    """A one-line, user-facing error: names the bad value and what is expected."""

    exit_code = 2

    def __init__(self, message: str):
        # One line, always: multi-line messages break `error: ...` grepping in scripts.
        super().__init__(" ".join(str(message).split()))


class DivergedError(LmscaleError):
    """Training produced a non-finite loss; the last good checkpoint is kept."""

    exit_code = 3
