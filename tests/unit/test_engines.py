"""The engine seam: a new engine is one class and one registry line, nothing else.

`StubEngine` below is registered in place of the cli engine for one test and driven through
the real `velobench run` entry point; nothing outside `engines.REGISTRY` learns of it. It is a
stand-in for CLI logic only (this test claims nothing about any real engine's numbers).
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from velobench import engines
from velobench.engines.base import refuse_owned
from velobench.errors import VelobenchError
from velobench.prompts import Prompt
from velobench.results.config import EngineName, Method, RunConfig
from velobench.results.schema import BinaryInfo, Iteration, Mode, SessionInfo
from velobench.runner import preflight as validate
from velobench.runner.run import prepare

CliResult = tuple[int, str, str]


class StubEngine:
    name: ClassVar[EngineName] = EngineName.CLI
    default_warmup: ClassVar[int] = 2
    uses_gguf: ClassVar[bool] = True
    generated: ClassVar[list[tuple[str, int]]] = []

    @classmethod
    def can_run(cls, cfg: RunConfig) -> str | None:
        return None

    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        return True

    @classmethod
    def owned_flags(cls, cfg: RunConfig) -> Mapping[str, str]:
        return {}

    @classmethod
    def check_options(cls, cfg: RunConfig, hints: Mapping[str, str] | None = None) -> None:
        return None

    def __init__(self, cfg: RunConfig, *, log_dir: Path):
        self.cfg = cfg

    def use_models(self, cfg: RunConfig) -> None:
        self.cfg = cfg

    def binaries(self) -> list[BinaryInfo]:
        return [BinaryInfo(name="stub", path="/stub", source="test", version="1", commit=None)]

    def binary(self, mode: Mode) -> str:
        return f"stub-{mode}"

    def side_by_side(self) -> str | None:
        return None  # both sessions can be open at once: the interleaved schedule runs

    @contextlib.contextmanager
    def session(self, mode: Mode) -> Iterator[StubEngine.Session]:
        yield StubEngine.Session(mode)

    class Session:
        def __init__(self, mode: Mode):
            self.mode = mode

        def info(self) -> SessionInfo:
            return SessionInfo(url="stub://" + self.mode)

        def telemetry_root(self) -> tuple[int | None, bool]:
            return None, False

        def generate(self, prompt: Prompt, index: int) -> Iteration:
            StubEngine.generated.append((self.mode, index))
            tps = 20.0 + index if self.mode == "vanilla" else 10.0 + index
            return Iteration(
                index=index,
                command="stub",
                returncode=0,
                wall_ms=10.0,
                prompt_tokens=3,
                prompt_ms=1.0,
                ttft_ms=1.0,
                generated_tokens=8,
                decode_ms=8 / tps * 1000,
                tokens_per_second=tps,
                total_time_ms=1.0 + 8 / tps * 1000,
            )


def test_a_stub_engine_runs_end_to_end_through_the_registry_alone(
    cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(engines.REGISTRY, EngineName.CLI, f"{__name__}:StubEngine")
    monkeypatch.setattr("velobench.runner.run.resolve_model_arg", lambda spec, what: spec)
    monkeypatch.setattr("velobench.runner.run.check_draft_compatible", lambda a, b: [])
    StubEngine.generated.clear()
    for name in ("m.gguf", "d.gguf"):  # files that pass the pre-flight's GGUF check (a complete header)
        (tmp_path / name).write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    code, out, err = cli("run", "-m", "m.gguf", "-d", "d.gguf", "--engine", "cli", "-i", "3", "-o", "r.json")
    assert code == 0, err
    data = json.loads((tmp_path / "r.json").read_text())
    assert list(data["modes"]) == ["vanilla", "speculative"]
    assert data["config"]["engine"] == "cli" and data["config"]["warmup"] == 2  # the engine's default
    assert data["modes"]["speculative"]["session"]["url"] == "stub://speculative"
    assert [i["tokens_per_second"] for i in data["modes"]["vanilla"]["iterations"]] == [21.0, 22.0, 23.0]
    assert data["comparisons"][0]["speedup"]["ratio"] == pytest.approx(12.0 / 22.0)
    # warm-up generations are numbered -1, -2 and not recorded
    assert StubEngine.generated[:2] == [("vanilla", -1), ("vanilla", -2)]
    assert "Vanilla (n=3)" in out and "stub-speculative" in out


class _Never(StubEngine):
    @classmethod
    def can_run(cls, cfg: RunConfig) -> str | None:
        return "the never engine runs nothing"


class _Absent(StubEngine):
    @classmethod
    def available(cls, cfg: RunConfig) -> bool:
        return False


def _cfg(**kw: object) -> RunConfig:
    return RunConfig(main_model="m", draft_model="d", **kw)  # type: ignore[arg-type]


def test_auto_picks_the_first_engine_that_can_run_and_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(engines.REGISTRY, EngineName.SERVER, f"{__name__}:_Absent")
    monkeypatch.setitem(engines.REGISTRY, EngineName.CLI, f"{__name__}:StubEngine")
    assert engines.choose(_cfg()) is EngineName.CLI  # the server is not installed
    monkeypatch.setitem(engines.REGISTRY, EngineName.SERVER, f"{__name__}:StubEngine")
    assert engines.choose(_cfg()) is EngineName.SERVER
    monkeypatch.setitem(engines.REGISTRY, EngineName.CLI, f"{__name__}:_Never")
    with pytest.raises(VelobenchError, match="the never engine runs nothing"):
        engines.choose(_cfg(engine=EngineName.CLI))


def test_real_engines_say_what_they_cannot_run() -> None:
    lookup = RunConfig(main_model="m", method=Method.LOOKUP, engine=EngineName.SERVER)
    with pytest.raises(VelobenchError, match="--method lookup needs the command-line tools"):
        engines.choose(lookup)
    chat = RunConfig(main_model="m", draft_model="d", chat=True, engine=EngineName.CLI)
    with pytest.raises(VelobenchError, match="--chat needs the server engine"):
        engines.choose(chat)


class _Owner(StubEngine):
    """Owns one -x flag and counts how often it is made and given files."""

    made: ClassVar[int] = 0
    given: ClassVar[list[RunConfig]] = []

    @classmethod
    def owned_flags(cls, cfg: RunConfig) -> Mapping[str, str]:
        return {"--stub-owned": "use --stub-option"}

    @classmethod
    def check_options(cls, cfg: RunConfig, hints: Mapping[str, str] | None = None) -> None:
        refuse_owned(cfg.extra_args, cls.owned_flags(cfg), hints)

    def __init__(self, cfg: RunConfig, *, log_dir: Path):
        super().__init__(cfg, log_dir=log_dir)
        _Owner.made += 1

    def use_models(self, cfg: RunConfig) -> None:
        _Owner.given.append(cfg)
        self.cfg = cfg


def test_preflight_asks_the_engine_which_flags_it_owns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(engines.REGISTRY, EngineName.CLI, f"{__name__}:_Owner")
    owned = _cfg(engine=EngineName.CLI, extra_args=["-fa", "on", "--stub-owned=1"])
    with pytest.raises(VelobenchError, match=r"^-x --stub-owned: use --stub-option$"):
        validate.check_engine_args(owned)
    with pytest.raises(VelobenchError, match=r"^-x --stub-owned: this command sets it$"):
        validate.check_engine_args(owned, {"--stub-owned": "this command sets it", "-fa": "not owned"})
    validate.check_engine_args(_cfg(engine=EngineName.CLI, extra_args=["-fa", "on"]), {"-fa": "not owned"})
    validate.check_engine_args(_cfg(engine=EngineName.CLI, extra_args=["--host", "h"]))  # not the stub's
    # auto: every engine that can run the configuration checks its own flags (the real server, the stub)
    with pytest.raises(VelobenchError, match=r"^-x --host: velobench binds servers to 127\.0\.0\.1 only$"):
        validate.check_engine_args(_cfg(extra_args=["--host", "h"]))
    with pytest.raises(VelobenchError, match=r"^-x --stub-owned: use --stub-option$"):
        validate.check_engine_args(_cfg(extra_args=["--stub-owned"]))


@pytest.mark.parametrize(
    ("engine", "flag", "reason"),
    [
        (EngineName.SERVER, "--metrics", "turns /metrics on itself"),
        (EngineName.CLI, "--seed", "use --seed"),
        (EngineName.VLLM, "--speculative-config", "builds it from --method"),
    ],
)
def test_real_engines_refuse_the_flags_they_own(engine: EngineName, flag: str, reason: str) -> None:
    cls = engines.engine_class(engine)
    assert reason in cls.owned_flags(_cfg())[flag]
    with pytest.raises(VelobenchError, match=f"^-x {flag}: .*{reason}"):
        cls.check_options(_cfg(extra_args=[flag, "1"]))
    assert engines.engine_class(EngineName.REMOTE).owned_flags(_cfg()) == {}  # it starts nothing


def test_candidates_are_the_engines_that_can_run_it() -> None:
    assert engines.candidates(_cfg()) == [EngineName.SERVER, EngineName.CLI]  # no URL: not remote
    lookup = RunConfig(main_model="m", method=Method.LOOKUP)
    assert engines.candidates(lookup) == [EngineName.CLI]
    eagle = RunConfig(main_model="m", draft_model="d", method=Method.EAGLE)
    with pytest.raises(VelobenchError, match=r"^no engine can run this configuration: .*is a vLLM method"):
        engines.candidates(eagle)


def test_prepare_makes_the_engine_once_and_gives_it_the_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(engines.REGISTRY, EngineName.CLI, f"{__name__}:_Owner")
    monkeypatch.setattr("velobench.runner.run.check_draft_compatible", lambda a, b: [])
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0))
    _Owner.made, _Owner.given = 0, []
    cfg = RunConfig(main_model=str(model), draft_model=str(model), engine=EngineName.CLI)
    out, engine, prompts, _ = prepare(cfg, tmp_path / "r.json")
    assert _Owner.made == 1 and _Owner.given == [out] and engine.cfg is out  # type: ignore[attr-defined]
    assert out.warmup == 2 and [p.id for p in prompts] == ["prompt"]
    with pytest.raises(VelobenchError, match="is a folder"):  # the output is checked in prepare too
        prepare(cfg, tmp_path)
    assert _Owner.made == 1
