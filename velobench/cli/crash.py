"""What the top level does with an exception velobench did not expect: a log file, one line.

A traceback is for the people who fix velobench, not for the person running a benchmark: it
goes to `<cache>/logs/crash-<time>-<pid>.log` (with the command line, API keys redacted), and
the terminal gets one line naming the error, the log, and where to report it.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

from velobench import __version__
from velobench.paths import cache_dir

_SECRET_OPTIONS = ("--api-key",)


def redact_argv(argv: list[str]) -> list[str]:
    """argv with the value of every secret option replaced (`--api-key K` and `--api-key=K`)."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
        elif arg in _SECRET_OPTIONS:
            out.append(arg)
            hide_next = True
        elif arg.startswith(tuple(f"{o}=" for o in _SECRET_OPTIONS)):
            out.append(arg.split("=", 1)[0] + "=***")
        else:
            out.append(arg)
    return out


def redact(text: str) -> str:
    """`text` without the API key from the environment, wherever it appears."""
    key = os.environ.get("OPENAI_API_KEY")
    return text.replace(key, "***") if key and len(key) >= 4 else text


def crash_text(exc: BaseException, argv: list[str]) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    head = [
        f"velobench {__version__}, Python {platform.python_version()}, {platform.platform()}",
        f"time: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
        "command: " + " ".join(redact_argv(argv)),
        "",
    ]
    return redact("\n".join(head) + tb)


def write_crash_log(exc: BaseException, argv: list[str] | None = None) -> Path | None:
    """The traceback of `exc` in a new log file (the cache's logs/, else the temp folder); None if
    neither can be written."""
    text = crash_text(exc, list(sys.argv if argv is None else argv))
    name = time.strftime("crash-%Y%m%d-%H%M%S", time.gmtime()) + f"-{os.getpid()}.log"
    for folder in (cache_dir() / "logs", Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            with path.open("x", encoding="utf-8") as f:
                f.write(text)
            return path
        except OSError:
            continue
    return None


def first_line(exc: BaseException, limit: int = 300) -> str:
    """`Type: message`, the message's first line only, redacted and cut to `limit` characters."""
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    msg = re.sub(r"\s+", " ", redact(msg))
    if len(msg) > limit:
        msg = msg[: limit - 1] + "…"
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def internal_error_line(exc: BaseException) -> str:
    """The one line for a bug: what happened, where the traceback is, where to report it."""
    log = write_crash_log(exc)
    if log is None:
        return f"internal error: {first_line(exc)} (a bug in velobench: please report it with the command you ran)"
    return f"internal error: {first_line(exc)} (a bug in velobench: please report it with the traceback in {log})"


def os_error_line(exc: OSError) -> str:
    """An operating-system refusal velobench did not foresee (a file, a folder, a resource), as one line."""
    log = write_crash_log(exc)
    what = exc.strerror or str(exc)
    where = f" {exc.filename}" if exc.filename else ""
    details = f" (details in {log})" if log else ""
    return f"cannot complete the operation on{where}: {what}{details}"
