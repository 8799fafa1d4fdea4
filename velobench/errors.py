"""The one exception type users see.

Anything velobench can explain (bad input, a missing file, a crashed binary) is raised as
`VelobenchError`; the CLI prints its message as a single line and exits with code 2.
Anything else is a bug and keeps its traceback.
"""


class VelobenchError(Exception):
    """A failure with a one-line explanation for the user (exit code 2)."""

    exit_code = 2


class Interrupted(VelobenchError):
    """The user pressed Ctrl-C (or velobench got SIGTERM); finished work was kept."""

    exit_code = 130
