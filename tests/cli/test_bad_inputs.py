"""Bad input, every command: the real CLI in a subprocess, with the real llama.cpp build present.

Each case runs `python -m velobench ARGS` in its own empty working folder and asserts: the exit
code, at most 3 lines of output, no traceback, no crash log, and no file or folder left behind
in that folder. The real build (found through the real cache, before the test isolation) is
reachable the usual way, through a private cache whose `llama.cpp/` and `models/` link to the
real ones, so late validation cannot hide behind "binary not found"; anything velobench writes
to its cache (probed --help, crash logs) goes to the private one.

Cases run in parallel (a thread pool over subprocesses) once per session; each is reported
as its own test.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from velobench.paths import cache_dir

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
REAL_CACHE = cache_dir()  # read at import, before the autouse fixture points VELOBENCH_CACHE elsewhere
SMOL = REAL_CACHE / "models" / "smollm2-135m-instruct-q4_1.gguf"
GEMMA = REAL_CACHE / "models" / "gemma-3-270m-q4_k_m.gguf"
RESULT = FIXTURES / "reports" / "smollm2-135m-selfdraft-server.json"


# For the lead, once `load` and `think` exist (each must call validate.preflight first):
def gguf_nested_arrays(depth: int) -> bytes:
    """A GGUF header whose one key is an array of arrays … `depth` deep (llama.cpp rejects any nesting)."""
    key = b"velobench.nested"
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", len(key)) + key
    out += struct.pack("<I", 9)  # GGUF_TYPE_ARRAY
    for _ in range(depth):
        out += struct.pack("<IQ", 9, 1)  # element type ARRAY, one element
    return out + struct.pack("<IQ", 0, 0)  # innermost: zero uint8


def slower(report: dict[str, object], factor: float) -> dict[str, object]:
    """The same result with every tokens/s scaled (for the regression gate)."""
    text = json.dumps(report)
    data = json.loads(text)
    for mode in ("vanilla", "speculative"):
        m = data.get(mode)
        if isinstance(m, dict):
            for it in m["iterations"]:
                it["tokens_per_second"] *= factor
    return data


MATRIX_OK_HEAD = '[run]\niterations = 1\nn_predict = 8\nengine = "server"\n'


def files(**content: str | bytes) -> Callable[[Path], None]:
    """A setup that writes the given files (name → text or bytes) into the case's folder."""

    def make(cwd: Path) -> None:
        for name, data in content.items():
            path = cwd / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                path.write_bytes(data)
            else:
                path.write_text(data)

    return make


def folders(*names: str) -> Callable[[Path], None]:
    def make(cwd: Path) -> None:
        for n in names:
            (cwd / n).mkdir(parents=True)

    return make


def both(*setups: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(cwd: Path) -> None:
        for s in setups:
            s(cwd)

    return make


@dataclass
class Case:
    id: str
    argv: list[str]
    needle: str
    code: int = 2
    setup: Callable[[Path], None] = field(default=lambda cwd: None)


S = str(SMOL)
RUN = ["run", "-m", S, "-d", S]
LOAD = ["load", "-m", S, "-d", S]
THINK = ["think", "-m", S, "-d", S]
BIN = b"\xff\xfe\x00\x01binary\x00" * 8
MATRIX_MISSING_MODEL = (
    MATRIX_OK_HEAD + "[[pairs]]\ntarget = 'missing.gguf'\n[[methods]]\nmethod = 'ngram-simple'\n"
)

CASES = [
    # ---- run: options (ranges, types, combinations)
    Case("run-no-model", ["run"], "-m/--main-model is required"),
    Case(
        "run-reference-on-vllm",
        [*RUN, "--engine", "vllm", "--llama-bench-reference"],
        "--llama-bench-reference needs the vanilla arm on a llama.cpp engine",
    ),
    Case(
        "run-reference-skip-vanilla",
        [*RUN, "--skip-vanilla", "--llama-bench-reference"],
        "--llama-bench-reference needs the vanilla arm on a llama.cpp engine",
    ),
    Case(
        "run-redo-without-telemetry",
        [*RUN, "--redo-disturbed", "4", "--telemetry", "off"],
        "--redo-disturbed needs the other processes' CPU read",
    ),
    Case(
        "run-redo-remote",
        ["run", "--server-url", "http://127.0.0.1:9", "--redo-disturbed", "4"],
        "--redo-disturbed needs the other processes' CPU read",
    ),
    Case(
        "run-redo-negative",
        [*RUN, "--redo-disturbed", "-1"],
        "redo-disturbed: Input should be greater than or equal to 0",
    ),
    Case(
        "run-missing-main", ["run", "-m", "nope.gguf", "-d", "nope.gguf"], "main model not found: nope.gguf"
    ),
    Case("run-missing-draft", ["run", "-m", S, "-d", "draft.gguf"], "draft model not found: draft.gguf"),
    Case(
        "run-not-gguf", ["run", "-m", "m.txt", "-d", S], "not a GGUF file", setup=files(**{"m.txt": "hello"})
    ),
    Case("run-model-folder", ["run", "-m", "mdir", "-d", S], "is a folder", setup=folders("mdir")),
    Case("run-port-too-big", [*RUN, "--port", "70000"], "port: Input should be less than or equal to 65535"),
    Case("run-port-zero", [*RUN, "--port", "0"], "port: Input should be greater than or equal to 1"),
    Case("run-port-text", [*RUN, "--port", "abc"], "Invalid value for '--port'"),
    Case("run-timeout-negative", [*RUN, "--timeout", "-1"], "timeout: Input should be greater than 0"),
    Case("run-timeout-zero", [*RUN, "--timeout", "0"], "timeout: Input should be greater than 0"),
    Case("run-server-timeout-negative", [*RUN, "--server-timeout", "-5"], "server-timeout"),
    Case(
        "run-warmup-negative", [*RUN, "--warmup", "-1"], "warmup: Input should be greater than or equal to 0"
    ),
    Case("run-iterations-zero", [*RUN, "-i", "0"], "iterations: Input should be greater than or equal to 1"),
    Case("run-n-predict-zero", [*RUN, "-n", "0"], "n-predict"),
    Case("run-n-draft-zero", [*RUN, "--n-draft", "0"], "n-draft"),
    Case("run-p-min-range", [*RUN, "--draft-p-min", "1.5"], "draft-p-min"),
    Case("run-ctx-tiny", [*RUN, "-c", "10"], "ctx-size"),
    Case("run-temp-negative", [*RUN, "--temp", "-1"], "temp"),
    Case("run-threads-zero", [*RUN, "-t", "0"], "threads"),
    Case("run-skip-both", [*RUN, "--skip-vanilla", "--skip-speculative"], "leave nothing to measure"),
    Case("run-lookup-with-draft", [*RUN, "--method", "lookup"], "uses no draft model"),
    Case("run-draft-without-draft", ["run", "-m", S], "needs a draft model"),
    Case("run-vllm-method-on-server", [*RUN, "--method", "eagle", "--engine", "server"], "is a vLLM method"),
    Case(
        "run-classic-on-server", [*RUN, "--spec-impl", "classic", "--engine", "server"], "command-line tools"
    ),
    Case("run-chat-on-cli", [*RUN, "--chat", "--engine", "cli"], "--chat needs the server engine"),
    Case("run-method-unknown", [*RUN, "--method", "nope"], "'nope' is not one of"),
    Case("run-unknown-option", [*RUN, "--bogus"], "No such option: --bogus"),
    Case(
        "run-ngram-min-max",
        ["run", "-m", S, "--method", "ngram", "--engine", "vllm", "--ngram-min", "5", "--ngram-max", "2"],
        "--ngram-min must not exceed --ngram-max",
    ),
    # ---- run: input files
    Case("run-prompt-binary", [*RUN, "-f", "p.bin"], "is not UTF-8 text", setup=files(**{"p.bin": BIN})),
    Case("run-prompt-missing", [*RUN, "-f", "p.txt"], "prompt file not found: p.txt"),
    Case("run-prompt-folder", [*RUN, "-f", "pdir"], "is a folder", setup=folders("pdir")),
    Case("run-prompt-empty", [*RUN, "-f", "p.txt"], "is empty", setup=files(**{"p.txt": "  \n"})),
    Case("run-prompts-unknown", [*RUN, "--prompts", "nosuchset"], "unknown prompt set 'nosuchset'"),
    Case(
        "run-prompts-binary",
        [*RUN, "--prompts", "p.jsonl"],
        "not a UTF-8 text file",
        setup=files(**{"p.jsonl": BIN}),
    ),
    Case(
        "run-prompts-not-json",
        [*RUN, "--prompts", "p.jsonl"],
        "not JSON",
        setup=files(**{"p.jsonl": "{oops\n"}),
    ),
    Case(
        "run-prompts-no-prompt",
        [*RUN, "--prompts", "p.jsonl"],
        'no "prompt"',
        setup=files(**{"p.jsonl": '{"x": 1}\n'}),
    ),
    Case("run-prompts-bad-category", [*RUN, "--prompts", "builtin:nosuch"], "no built-in category 'nosuch'"),
    Case("run-category-without-set", [*RUN, "--category", "code"], "select from a prompt set"),
    Case("run-num-prompts-zero", [*RUN, "--prompts", "builtin", "--num-prompts", "0"], "num-prompts"),
    Case(
        "run-nested-gguf",
        ["run", "-m", "n.gguf", "-d", "n.gguf", "--engine", "server"],
        "arrays nested more than",
        setup=files(**{"n.gguf": gguf_nested_arrays(40)}),
    ),
    Case(
        "run-hf-bad-spec",
        ["run", "-m", "hf://owner/repo", "--method", "ngram-simple"],
        "bad Hugging Face spec",
    ),
    Case(
        "run-hf-not-gguf",
        ["run", "-m", "hf://o/r/model.safetensors", "--method", "ngram-simple"],
        "must name a .gguf file",
    ),
    # ---- run: output location
    Case("run-output-folder", [*RUN, "-o", "odir"], "is a folder", setup=folders("odir")),
    Case("run-output-proc", [*RUN, "-o", "/proc/velobench.json"], "cannot write in /proc"),
    Case("run-output-under-file", [*RUN, "-o", "f/x.json"], "is a file, not a folder", setup=files(f="x")),
    Case("run-output-device", [*RUN, "-o", "/dev/null"], "not a regular file"),
    # ---- run: flags velobench owns, and -x flags the build does not have
    Case(
        "run-x-host", [*RUN, "-x", "--host 0.0.0.0"], "-x --host: velobench binds servers to 127.0.0.1 only"
    ),
    Case("run-x-host-equals", [*RUN, "-x", "--host=0.0.0.0"], "-x --host: velobench binds servers"),
    Case("run-x-host-dry-run", [*RUN, "-x", "--host 0.0.0.0", "--dry-run"], "-x --host"),
    Case("run-x-port", [*RUN, "-x", "--port 8080"], "-x --port: use --port"),
    Case("run-x-np", [*RUN, "-x", "-np 4"], "-x -np: velobench serves one request at a time"),
    Case("run-x-parallel", [*RUN, "-x", "--parallel 2"], "-x --parallel"),
    Case("run-x-metrics", [*RUN, "-x", "--metrics"], "-x --metrics"),
    Case("run-x-no-cache-prompt", [*RUN, "-x", "--no-cache-prompt"], "prompt caching off"),
    Case("run-x-api-key", [*RUN, "-x", "--api-key secret"], "-x --api-key"),
    Case("run-x-model", [*RUN, "-x", "-m other.gguf"], "-x -m: use -m/--main-model"),
    Case("run-x-model-draft", [*RUN, "-x", "-md other.gguf"], "-x -md: use -d/--draft-model"),
    Case("run-x-cli-prompt", [*RUN, "--engine", "cli", "-x", "-p hi"], "-x -p: use -p/--prompt"),
    Case(
        "run-x-vllm-host",
        ["run", "-m", S, "--method", "ngram", "--engine", "vllm", "-x", "--host 0.0.0.0"],
        "-x --host: velobench binds servers to 127.0.0.1 only",
    ),
    Case("run-x-unbalanced", [*RUN, "-x", "'unbalanced"], "--engine-args"),
    Case("run-x-unknown-flag", [*RUN, "-x", "--no-such-flag"], "-x --no-such-flag: llama-server"),
    Case(
        "run-x-server-flag-on-cli", [*RUN, "--engine", "cli", "-x", "--slots"], "-x --slots: llama-completion"
    ),
    # ---- run: where the binaries come from
    Case("run-llama-path-missing", [*RUN, "--llama-cpp-path", "/does/not/exist"], "not a directory"),
    Case(
        "run-llama-path-empty",
        [*RUN, "--llama-cpp-path", "empty"],
        "not found in --llama-cpp-path",
        setup=folders("empty"),
    ),
    # ---- demo
    Case("demo-unknown-pair", ["demo", "--pair", "nope"], "unknown pair 'nope'"),
    Case("demo-output-folder", ["demo", "-o", "odir"], "is a folder", setup=folders("odir")),
    Case("demo-output-proc", ["demo", "-o", "/proc/demo.json"], "cannot write in /proc"),
    Case("demo-n-draft-zero", ["demo", "--n-draft", "0"], "n-draft"),
    Case(
        "demo-per-category-zero", ["demo", "--per-category", "0"], "--per-category, --rounds and --max-rounds"
    ),
    Case("demo-target-ci-negative", ["demo", "--target-ci", "-1"], "--target-ci must be in [0, 100)"),
    Case("demo-max-time-zero", ["demo", "--max-time", "0"], "--max-time above 0"),
    Case("demo-llama-path-missing", ["demo", "-l", "/does/not/exist"], "not a directory"),
    Case(
        "demo-llama-path-empty",
        ["demo", "-l", "empty"],
        "not found in --llama-cpp-path",
        setup=folders("empty"),
    ),
    # ---- matrix
    Case("matrix-missing-file", ["matrix", "m.toml"], "matrix file not found: m.toml"),
    Case("matrix-folder", ["matrix", "mdir"], "matrix file mdir is a folder", setup=folders("mdir")),
    Case("matrix-binary", ["matrix", "m.toml"], "is not UTF-8 text", setup=files(**{"m.toml": BIN})),
    Case(
        "matrix-bad-toml",
        ["matrix", "m.toml"],
        "not valid TOML",
        setup=files(**{"m.toml": "[[pairs]]\ntarget=\n"}),
    ),
    Case(
        "matrix-unknown-key",
        ["matrix", "m.toml"],
        "unknown key",
        setup=files(**{"m.toml": "[[pairs]]\ntarget='a'\ncolour='red'\n[[methods]]\n"}),
    ),
    Case(
        "matrix-missing-model",
        ["matrix", "m.toml"],
        "main model not found: missing.gguf",
        setup=files(**{"m.toml": MATRIX_MISSING_MODEL}),
    ),
    Case(
        "matrix-owned-flag",
        ["matrix", "m.toml"],
        "-x --host: velobench binds servers",
        setup=files(
            **{
                "m.toml": MATRIX_OK_HEAD + f"engine_args = ['--host', '0.0.0.0']\n[[pairs]]\ntarget = '{S}'\n"
                "[[methods]]\nmethod = 'ngram-simple'\n"
            }
        ),
    ),
    Case(
        "matrix-incompatible-pair",
        ["matrix", "m.toml"],
        f"pair {S} / {GEMMA}",
        setup=files(
            **{"m.toml": MATRIX_OK_HEAD + f"[[pairs]]\ntarget = '{S}'\ndraft = '{GEMMA}'\n[[methods]]\n"}
        ),
    ),
    Case(
        "matrix-iterations-zero",
        ["matrix", "m.toml", "-i", "0"],
        "iterations",
        setup=files(**{"m.toml": MATRIX_MISSING_MODEL}),
    ),
    Case(
        "matrix-resume-missing",
        ["matrix", "m.toml", "--resume", "nope"],
        "no such run folder",
        setup=files(**{"m.toml": MATRIX_MISSING_MODEL.replace("missing.gguf", S)}),
    ),
    Case(
        "matrix-resume-corrupt",
        ["matrix", "m.toml", "--resume", "run"],
        "run/matrix.json is damaged",
        setup=files(
            **{"m.toml": MATRIX_MISSING_MODEL.replace("missing.gguf", S), "run__matrix.json": '{"run": 5'}
        ),
    ),
    Case(
        "matrix-resume-not-a-run",
        ["matrix", "m.toml", "--resume", "run"],
        "not a matrix run folder",
        setup=files(**{"m.toml": MATRIX_MISSING_MODEL.replace("missing.gguf", S), "run__notes.txt": "x"}),
    ),
    Case(
        "matrix-retry-without-resume",
        ["matrix", "m.toml", "--retry-failed"],
        "--retry-failed goes with --resume",
        setup=files(**{"m.toml": MATRIX_MISSING_MODEL}),
    ),
    Case(
        "matrix-output-busy",
        ["matrix", "m.toml", "-o", "run"],
        "already holds a run",
        setup=files(**{"m.toml": MATRIX_MISSING_MODEL.replace("missing.gguf", S), "run__x.json": "{}"}),
    ),
    Case(
        "matrix-output-proc",
        ["matrix", "m.toml", "-o", "/proc/velobench-run"],
        "cannot write in /proc",
        setup=files(**{"m.toml": MATRIX_MISSING_MODEL.replace("missing.gguf", S)}),
    ),
    # ---- tune
    Case("tune-no-draft", ["tune", "-m", S], "Missing option '--draft-model'"),
    Case("tune-candidates-text", ["tune", "-m", S, "-d", S, "--candidates", "a,b"], "--candidates"),
    Case("tune-candidates-zero", ["tune", "-m", S, "-d", S, "--candidates", "0"], "must be >= 1"),
    Case("tune-p-min-range", ["tune", "-m", S, "-d", S, "--p-min-candidates", "2"], "[0, 1]"),
    Case("tune-top-zero", ["tune", "-m", S, "-d", S, "--top", "0"], "--top"),
    Case("tune-missing-model", ["tune", "-m", "nope.gguf", "-d", S], "main model not found"),
    Case(
        "tune-output-file",
        ["tune", "-m", S, "-d", S, "-o", "f"],
        "is a file; give a folder",
        setup=files(f="x"),
    ),
    # ---- report
    Case("report-missing", ["report", "r.json"], "result file not found: r.json"),
    Case("report-binary", ["report", "r.json"], "not a JSON file", setup=files(**{"r.json": BIN})),
    Case(
        "report-truncated",
        ["report", "r.json"],
        "not a JSON file",
        setup=files(**{"r.json": RESULT.read_text()[:500]}),
    ),
    Case(
        "report-schema-unknown",
        ["report", "r.json"],
        "schema_version 99",
        setup=files(**{"r.json": '{"schema_version": 99}'}),
    ),
    Case("report-folder-no-summary", ["report", "rdir"], "has no summary.json", setup=folders("rdir")),
    Case(
        "report-summary-corrupt",
        ["report", "rdir"],
        "invalid matrix summary",
        setup=files(**{"rdir__summary.json": '{"schema_version": 1}'}),
    ),
    Case("report-format-unknown", ["report", str(RESULT), "-F", "pdf"], "unknown format 'pdf'"),
    Case(
        "report-output-folder",
        ["report", str(RESULT), "-F", "md", "-o", "odir"],
        "is a folder",
        setup=folders("odir"),
    ),
    Case(
        "report-output-proc",
        ["report", str(RESULT), "-F", "md", "-o", "/proc/velobench.md"],
        "cannot write in /proc",
    ),
    Case("report-output-console", ["report", str(RESULT), "-o", "r.txt"], "--output needs a file format"),
    # ---- compare
    Case("compare-missing", ["compare", "a.json", str(RESULT)], "result file not found: a.json"),
    Case(
        "compare-binary",
        ["compare", str(RESULT), "b.json"],
        "not a JSON file",
        setup=files(**{"b.json": BIN}),
    ),
    Case(
        "compare-gate-text", ["compare", str(RESULT), str(RESULT), "--fail-if-slower", "abc"], "Invalid value"
    ),
    # ---- models
    Case("models-list-extra", ["models", "list", "extra"], "Got unexpected extra argument"),
    Case("models-pull-unknown", ["models", "pull", "nosuch"], "unknown model 'nosuch'"),
    Case("models-inspect-missing", ["models", "inspect", "nope.gguf"], "model not found: nope.gguf"),
    Case(
        "models-inspect-not-gguf",
        ["models", "inspect", "m.txt"],
        "not a GGUF file",
        setup=files(**{"m.txt": "x"}),
    ),
    Case(
        "models-inspect-nested",
        ["models", "inspect", "n.gguf"],
        "arrays nested more than",
        setup=files(**{"n.gguf": gguf_nested_arrays(40)}),
    ),
    Case(
        "models-inspect-truncated",
        ["models", "inspect", "t.gguf"],
        "not a valid GGUF file",
        setup=files(**{"t.gguf": b"GGUF\x03\x00\x00\x00"}),
    ),
    Case("models-inspect-hf-bad", ["models", "inspect", "hf://x"], "bad Hugging Face spec"),
    # ---- bins
    Case(
        "bins-list-missing-path",
        ["bins", "list", "-l", "/nonexistent"],
        "--llama-cpp-path /nonexistent: not a directory",
    ),
    Case("bins-list-path-is-file", ["bins", "list", "-l", "f"], "not a directory", setup=files(f="x")),
    Case("bins-build-jobs-text", ["bins", "build", "--jobs", "abc"], "Invalid value for '--jobs'"),
    Case("bins-build-unknown-option", ["bins", "build", "--bogus"], "No such option: --bogus"),
    Case("bins-vllm-device", ["bins", "vllm", "--device", "tpu"], "--device tpu: choose cpu or cuda"),
    Case("bins-unknown-command", ["bins", "nope"], "No such command 'nope'"),
    Case("top-unknown-command", ["nope"], "No such command 'nope'"),
    # ---- selftest
    Case(
        "selftest-concurrency-text", ["selftest", "loadgen", "--concurrency", "1,x"], "expected numbers like"
    ),
    Case("selftest-concurrency-zero", ["selftest", "loadgen", "--concurrency", "0"], "levels must be >= 1"),
    Case("selftest-requests-zero", ["selftest", "loadgen", "--requests", "0"], "must be at least 1"),
    # ---- load: every check before a server starts
    Case("load-missing-main", ["load", "-m", "MISSING.gguf", "-d", S], "main model not found: MISSING.gguf"),
    Case("load-no-draft", ["load", "-m", S], "needs a draft model"),
    Case("load-output-folder", [*LOAD, "-o", "fold"], "is a folder", setup=folders("fold")),
    Case("load-output-proc", [*LOAD, "-o", "/proc/x.json"], "cannot write in /proc"),
    Case("load-host", [*LOAD, "-x", "--host 0.0.0.0"], "-x --host: velobench binds servers to 127.0.0.1"),
    Case("load-slots", [*LOAD, "-x", "-np 8"], "-x -np: velobench load gives llama-server one slot"),
    Case("load-concurrency-zero", [*LOAD, "--concurrency", "0"], "--concurrency must be a whole number > 0"),
    Case("load-rate-negative", [*LOAD, "--rate", "-1"], "request rate must be > 0"),
    Case("load-duration-zero", [*LOAD, "--duration", "0"], "--duration must be a positive number"),
    Case(
        "load-prompts-binary",
        [*LOAD, "--prompts", "p.jsonl"],
        "not a UTF-8 text file",
        setup=files(**{"p.jsonl": BIN}),
    ),
    # ---- think: every check before a server starts
    Case("think-missing-large", ["think", "-m", "MISSING.gguf", "-d", S], "large model (-m) not found"),
    Case("think-no-small", ["think", "-m", S], "needs the small model"),
    Case("think-output-folder", [*THINK, "-o", "fold"], "is a folder", setup=folders("fold")),
    Case("think-output-proc", [*THINK, "-o", "/proc/x.json"], "cannot write in /proc"),
    Case("think-port", [*THINK, "-x", "--port=1"], "-x --port: velobench think picks a free port"),
    Case("think-no-cache", [*THINK, "-x", "--no-cache-prompt"], "keeps prompt caching on"),
    Case("think-draft-flag", [*THINK, "-x", "--draft-max 3"], "servers run no draft model"),
    Case(
        "think-remote-extra",
        ["think", "--large-url", "http://127.0.0.1:9", "--small-url", "http://127.0.0.1:9", "-x", "-t 2"],
        "-x/--engine-args is for servers velobench starts",
    ),
    Case("think-runs-zero", [*THINK, "--num-runs", "0"], "num-runs"),
    Case(
        "think-prompts-binary",
        [*THINK, "--prompts", "p.jsonl"],
        "not a UTF-8 text file",
        setup=files(**{"p.jsonl": BIN}),
    ),
]


@dataclass
class Outcome:
    code: int
    output: str
    left_behind: list[str]
    crash_logs: list[str]


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="session")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Every case, run once in parallel: (exit code, output, paths left behind, crash logs)."""
    if not SMOL.is_file() or not list((REAL_CACHE / "llama.cpp").glob("*/build-info.json")):
        pytest.skip(f"needs the real llama.cpp build and SmolLM2 in {REAL_CACHE} (`nox -s tests` makes them)")
    base = tmp_path_factory.mktemp("bad-inputs")
    cache = base / "cache"
    cache.mkdir()
    for linked in ("llama.cpp", "models"):  # the real build and models; everything else private
        if (REAL_CACHE / linked).exists():
            (cache / linked).symlink_to(REAL_CACHE / linked)
    env = {k: v for k, v in os.environ.items() if k not in ("VELOBENCH_LLAMA_CPP", "OPENAI_API_KEY")}
    env.update(
        PYTHONPATH=str(ROOT), VELOBENCH_CACHE=str(cache), HF_HUB_OFFLINE="1", COLUMNS="200", NO_COLOR="1"
    )

    def one(case: Case) -> tuple[str, Outcome]:
        cwd = base / case.id
        cwd.mkdir()
        case.setup(cwd)
        before = snapshot(cwd)
        logs_before = set((cache / "logs").glob("*")) if (cache / "logs").is_dir() else set()
        done = subprocess.run(
            [sys.executable, "-m", "velobench", *case.argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        logs_after = set((cache / "logs").glob("*")) if (cache / "logs").is_dir() else set()
        return case.id, Outcome(
            code=done.returncode,
            output=done.stdout + done.stderr,
            left_behind=sorted(snapshot(cwd) - before),
            crash_logs=sorted(str(p) for p in logs_after - logs_before),
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(one, CASES))


def test_the_table_is_large_and_covers_every_command() -> None:
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {
        c.argv[0] if c.argv[0] not in ("models", "bins", "selftest") else " ".join(c.argv[:2]) for c in CASES
    }
    want = {
        "run",
        "demo",
        "matrix",
        "tune",
        "report",
        "compare",
        "models list",
        "models pull",
        "models inspect",
        "load",
        "think",
    }
    assert want | {"bins list", "bins build", "bins vllm", "selftest loadgen"} <= commands


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    got = outcomes[case.id]
    lines = got.output.strip().splitlines()
    assert got.code == case.code, got.output
    assert "Traceback" not in got.output, got.output
    assert len(lines) <= 3, got.output
    assert case.needle in got.output, got.output
    assert lines[-1].startswith("velobench: error: "), got.output  # the last word is the one error line
    assert got.left_behind == [], f"left behind: {got.left_behind}"
    assert got.crash_logs == [], f"an internal error, not a clear message: {got.output}"


def test_compare_gate_exits_1_on_a_significant_regression(tmp_path: Path) -> None:
    """`--fail-if-slower` is an exit code scripts can use (it was lost under standalone_mode=False)."""
    data = json.loads(RESULT.read_text())
    (tmp_path / "b.json").write_text(json.dumps(slower(data, 0.5)))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "velobench", "compare", str(RESULT), "b.json", "--fail-if-slower", "5"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "velobench: regression:" in done.stderr
