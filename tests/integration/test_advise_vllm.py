"""The `--speculative-config` advise emits, read back by the installed vLLM's own config class."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.unit import test_advise_render
from velobench.advise.schedule import vllm_config
from velobench.bins import vllm_env

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

# The config class's field names and the methods it accepts, from the installed vLLM.
PROBE = """
import dataclasses, json, sys, typing
from vllm.config import SpeculativeConfig
from vllm.v1.spec_decode.dynamic.utils import validate_and_normalize_dynamic_sd_schedule
schedule = validate_and_normalize_dynamic_sd_schedule(json.loads(sys.argv[1]))
from vllm.config.speculative import SpeculativeMethod
methods = set()
for a in typing.get_args(SpeculativeMethod):
    methods |= set(typing.get_args(a)) or {a}
print(json.dumps({"fields": [f.name for f in dataclasses.fields(SpeculativeConfig)], "methods": sorted(map(str, methods)), "schedule": schedule}))
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
    # what advise writes (advise.schedule.vllm_config) for a schedule: k=4 alone, k=2 at 2-3, vanilla at 4+
    rep = test_advise_render.report()
    emitted = vllm_config(rep)
    assert emitted is not None and emitted["num_speculative_tokens"] == 4
    res = subprocess.run(
        [str(install.python), "-c", PROBE, json.dumps(emitted["num_speculative_tokens_per_batch_size"])],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=vllm_env.child_env(install),
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stderr[-1500:]
    known = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(emitted) <= set(known["fields"]), (emitted, known["fields"])
    assert emitted["method"] in known["methods"], known["methods"]
    assert known["schedule"] == [[1, 1, 4], [2, 3, 2], [4, 4, 0]]  # vLLM's own reading of it
    single = vllm_config(rep, per_batch_size=False)  # the best single value at the highest concurrency
    assert single is None  # vanilla at concurrency 4
