"""The `--speculative-config` advise emits, read back by the installed vLLM's own config class."""

from __future__ import annotations

import json
import subprocess

import pytest

from velobench.bins import vllm_env
from velobench.engines import vllm_args

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

# The config class's field names and the methods it accepts, from the installed vLLM.
PROBE = """
import dataclasses, json, typing
from vllm.config import SpeculativeConfig
from vllm.config.speculative import SpeculativeMethod
methods = set()
for a in typing.get_args(SpeculativeMethod):
    methods |= set(typing.get_args(a)) or {a}
print(json.dumps({"fields": [f.name for f in dataclasses.fields(SpeculativeConfig)], "methods": sorted(map(str, methods))}))
"""


@pytest.fixture(scope="module")
def install() -> vllm_env.VllmInstall:
    """velobench's real vLLM (located before the per-test cache isolation)."""
    try:
        return vllm_env.locate()
    except Exception as exc:  # pragma: no cover - the CI prepares it
        pytest.fail(f"no vLLM: {exc} (python -m velobench.bins.vllm_env makes it)")


def test_the_emitted_speculative_config_is_what_vllm_takes(install: vllm_env.VllmInstall) -> None:
    assert install.python is not None
    res = subprocess.run(
        [str(install.python), "-c", PROBE],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=vllm_env.child_env(install),
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-1500:]
    known = json.loads(res.stdout.strip().splitlines()[-1])
    # what advise writes (advise.schedule.vllm_config): a draft model and its best draft length
    emitted = vllm_args.speculative_config(
        vllm_args.SpecOptions(method="draft", n_draft=4, draft_model="draft")
    )
    assert set(emitted) <= set(known["fields"]), (emitted, known["fields"])
    assert emitted["method"] in known["methods"], known["methods"]
