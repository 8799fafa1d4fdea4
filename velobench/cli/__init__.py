"""The `velobench` command: a thin Typer layer over plain functions.

One module per command group (`run` and `demo`, `load`, `tune`, `advise`, `matrix`, `think`, `lossless`, `report` and
`compare`, `bins`, `models`, `selftest`), the options they share written once (`options`), and
this module: the app, and `main`, the entry point.

Every failure velobench can explain is a `VelobenchError`: one line on stderr, exit code 2.
Usage errors from Typer/Click (unknown option, bad value) get the same treatment.
Everything beyond Typer is imported inside the command that uses it: `velobench --help` and
`--version` load no numpy, scipy, httpx or matplotlib.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Annotated, NoReturn

import typer

from velobench import __version__
from velobench.cli import advise, bins, load, lossless, matrix, models, report, run, selftest, think, tune
from velobench.cli.terminal import err, out
from velobench.errors import Interrupted, VelobenchError

app = typer.Typer(
    name="velobench",
    help="Does speculative decoding make my model faster, by how much, and with which settings?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command()(run.run)
app.command()(load.load)
app.command()(run.demo)
app.command()(matrix.matrix)
app.command("compare")(report.compare_cmd)
app.command("tune")(tune.tune_cmd)
app.command()(advise.advise)
app.command()(think.think)
app.command()(lossless.lossless)
app.command("report")(report.report_cmd)
app.add_typer(bins.app, name="bins")
app.add_typer(models.app, name="models")
app.add_typer(selftest.app, name="selftest")


def _version(value: bool) -> None:
    if value:
        out.print(f"velobench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """velobench: vanilla vs speculative decoding, measured honestly."""


def _sigterm(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt  # the same clean path as Ctrl-C: children stopped, results kept


def main() -> None:
    """The entry point: every way out is an exit code and at most one line on stderr.

    0 done; 1 an internal error (traceback in a log file, never on the terminal) or a failed
    gate (`compare --fail-if-slower`); 2 bad input or a failure velobench can explain; 130 interrupted.
    """
    signal.signal(signal.SIGTERM, _sigterm)
    # Ctrl-C always stops a run cleanly, even when velobench was started with SIGINT ignored
    # (a background job of a non-interactive shell inherits that).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = app(standalone_mode=False, prog_name="velobench")
    except Interrupted as exc:
        err.print(f"velobench: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except VelobenchError as exc:
        err.print(f"velobench: error: {exc}", markup=False)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("velobench: interrupted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors: unknown option, bad value, missing option
        if type(exc).__name__ == "NoArgsIsHelpError":  # `velobench` or `velobench bins` alone
            ctx = getattr(exc, "ctx", None)
            out.print(ctx.get_help() if ctx is not None else exc.format_message(), markup=False)
            sys.exit(0)
        err.print(f"velobench: error: {exc.format_message()} (see --help)", markup=False)
        sys.exit(2)
    except OSError as exc:  # the system refused something no check foresaw: explainable, not a bug
        from velobench.cli.crash import os_error_line

        _last_words(f"velobench: error: {os_error_line(exc)}")
        sys.exit(2)
    except Exception as exc:  # a bug: one line here, the traceback in a log file
        from velobench.cli.crash import internal_error_line

        _last_words(f"velobench: {internal_error_line(exc)}")
        sys.exit(1)
    if isinstance(code, int) and code != 0:  # typer.Exit(code) under standalone_mode=False
        sys.exit(code)


def _last_words(line: str) -> None:
    """Print the final line even where stdout/stderr is a closed pipe."""
    with contextlib.suppress(OSError):
        err.print(line, markup=False)
