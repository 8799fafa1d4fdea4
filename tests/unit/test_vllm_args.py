"""The `vllm serve` argv and environment, checked against the real vLLM's captured `--help=all`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from velobench.engines.vllm_args import (
    VLLM_METHOD,
    ServeOptions,
    SpecOptions,
    argv_flags,
    parse_help_flags,
    serve_argv,
    server_env,
    speculative_config,
    unknown_flags,
)
from velobench.errors import VelobenchError

HELP = Path(__file__).parent.parent / "fixtures" / "vllm" / "help-all.txt"


@pytest.fixture(scope="module")
def help_text() -> str:
    return HELP.read_text()


@pytest.fixture(scope="module")
def known(help_text: str) -> frozenset[str]:
    return parse_help_flags(help_text)


def full_opts(**kw: object) -> ServeOptions:
    base: dict[str, object] = {
        "model": "/models/target",
        "served_model_name": "target",
        "port": 8123,
        "seed": 7,
        "max_model_len": 4096,
        "gpu_memory_utilization": 0.85,
        "tensor_parallel_size": 2,
        "dtype": "bfloat16",
    }
    base.update(kw)
    return ServeOptions(**base)  # type: ignore[arg-type]


ALL_SPECS = [
    SpecOptions("draft", n_draft=5, draft_model="/models/draft", draft_tp=1),
    SpecOptions("ngram", n_draft=4, ngram_min=2, ngram_max=4),
    SpecOptions("eagle", n_draft=3, draft_model="yuhuili/EAGLE-LLaMA3-Instruct-8B"),
    SpecOptions("eagle3", n_draft=3, draft_model="/heads/eagle3", draft_tp=2),
    SpecOptions("mtp", n_draft=1),
    SpecOptions("suffix", n_draft=8),
]


def test_help_parser_reads_option_lines_not_prose(known: frozenset[str]) -> None:
    # Both spellings of a paired boolean, short aliases, and a second long name on one line.
    for flag in (
        "--enable-prefix-caching",
        "--no-enable-prefix-caching",
        "-sc",
        "-tp",
        "--device-memory-utilization",
    ):
        assert flag in known
    assert "--not-a-vllm-flag" not in known
    prose_only = parse_help_flags(
        "  --real-flag X      does things\n                        see --prose-flag for more\n"
    )
    assert prose_only == frozenset({"--real-flag"})


@pytest.mark.parametrize("gpu", [True, False])
@pytest.mark.parametrize("spec", [None, *ALL_SPECS], ids=["vanilla", *(s.method for s in ALL_SPECS)])
def test_every_flag_velobench_passes_is_in_the_installed_vllms_help(
    known: frozenset[str], gpu: bool, spec: SpecOptions | None
) -> None:
    argv = serve_argv("vllm", full_opts(prefix_caching=False), spec, gpu=gpu)
    assert argv[:3] == ["vllm", "serve", "/models/target"]
    assert unknown_flags(argv[3:], known) == []
    argv_on = serve_argv("vllm", full_opts(prefix_caching=True), spec, gpu=gpu)
    assert unknown_flags(argv_on[3:], known) == []


def test_every_method_velobench_maps_to_is_a_vllm_method(help_text: str) -> None:
    m = re.search(r"--spec-method \{([^}]*)\}", help_text)
    assert m, "the captured help lists --spec-method choices"
    choices = set(m.group(1).split(","))
    assert set(VLLM_METHOD.values()) <= choices


def test_argv_values_and_order() -> None:
    argv = serve_argv(
        "/env/bin/vllm", full_opts(extra_args=("--enforce-eager", "--block-size", "32")), None, gpu=True
    )
    assert argv == [
        "/env/bin/vllm", "serve", "/models/target",
        "--served-model-name", "target", "--host", "127.0.0.1", "--port", "8123",
        "--seed", "7", "--max-model-len", "4096", "--gpu-memory-utilization", "0.85",
        "--tensor-parallel-size", "2", "--dtype", "bfloat16", "--no-enable-prefix-caching",
        "--enforce-eager", "--block-size", "32",
    ]  # fmt: skip


def test_gpu_memory_utilization_on_gpu_and_cpu_where_given() -> None:
    """The CPU backend reads it too, as the NUMA node's share it reserves (`placement` sizes it)."""
    assert "--gpu-memory-utilization" in serve_argv("vllm", full_opts(), None, gpu=False)
    assert "--gpu-memory-utilization" in serve_argv("vllm", full_opts(), None, gpu=True)
    assert "--gpu-memory-utilization" not in serve_argv(
        "vllm", full_opts(gpu_memory_utilization=None), None, gpu=True
    )


def test_optional_flags_are_left_out_when_unset() -> None:
    argv = serve_argv(
        "vllm", ServeOptions(model="m", served_model_name="m", port=9000, seed=None), None, gpu=True
    )
    assert argv_flags(argv) == ["--served-model-name", "--host", "--port", "--no-enable-prefix-caching"]


def test_vanilla_is_the_same_argv_without_speculative_config() -> None:
    for spec in ALL_SPECS:
        spec_argv = serve_argv("vllm", full_opts(), spec, gpu=True)
        i = spec_argv.index("--speculative-config")
        assert spec_argv[:i] + spec_argv[i + 2 :] == serve_argv("vllm", full_opts(), None, gpu=True)
    assert "--speculative-config" not in serve_argv("vllm", full_opts(), None, gpu=True)


def test_extra_args_come_last_after_speculative_config() -> None:
    argv = serve_argv("vllm", full_opts(extra_args=("--enforce-eager",)), ALL_SPECS[1], gpu=False)
    assert argv[-3] == "--speculative-config" and argv[-1] == "--enforce-eager"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (ALL_SPECS[0], {"method": "draft_model", "model": "/models/draft", "num_speculative_tokens": 5, "draft_tensor_parallel_size": 1}),
        (ALL_SPECS[1], {"method": "ngram", "num_speculative_tokens": 4, "prompt_lookup_min": 2, "prompt_lookup_max": 4}),
        (ALL_SPECS[2], {"method": "eagle", "model": "yuhuili/EAGLE-LLaMA3-Instruct-8B", "num_speculative_tokens": 3}),
        (ALL_SPECS[3], {"method": "eagle3", "model": "/heads/eagle3", "num_speculative_tokens": 3, "draft_tensor_parallel_size": 2}),
        (ALL_SPECS[4], {"method": "mtp", "num_speculative_tokens": 1}),
        (ALL_SPECS[5], {"method": "suffix", "num_speculative_tokens": 8}),
    ],
    ids=[s.method for s in ALL_SPECS],
)  # fmt: skip
def test_speculative_config_json_per_method(spec: SpecOptions, expected: dict[str, object]) -> None:
    assert speculative_config(spec) == expected
    argv = serve_argv("vllm", full_opts(), spec, gpu=True)
    assert json.loads(argv[argv.index("--speculative-config") + 1]) == expected


def test_speculative_config_is_compact_json_with_method_first() -> None:
    argv = serve_argv("vllm", full_opts(), ALL_SPECS[1], gpu=False)
    value = argv[argv.index("--speculative-config") + 1]
    assert (
        value == '{"method":"ngram","num_speculative_tokens":4,"prompt_lookup_min":2,"prompt_lookup_max":4}'
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (SpecOptions("draft", n_draft=4), "needs a draft model"),
        (SpecOptions("eagle3"), "needs an EAGLE head"),
        (SpecOptions("ngram", draft_model="/m"), "takes no draft model"),
        (SpecOptions("draft", draft_model="/m", ngram_max=3), "apply to --method ngram only"),
        (SpecOptions("ngram", draft_tp=2), "--draft-tp applies"),
        (SpecOptions("ngram", ngram_min=5, ngram_max=3), "larger than --ngram-max"),
        (SpecOptions("ngram", n_draft=0), "--n-draft must be at least 1"),
        (SpecOptions("medusa"), "unknown speculative method"),  # type: ignore[arg-type]
    ],
)
def test_bad_speculative_options_are_one_line_errors(spec: SpecOptions, message: str) -> None:
    with pytest.raises(VelobenchError, match=re.escape(message)) as exc:
        speculative_config(spec)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"port": 0}, "port 0"),
        ({"gpu_memory_utilization": 1.5}, "--gpu-memory-utilization"),
        ({"max_model_len": 0}, "--max-model-len"),
        ({"tensor_parallel_size": 0}, "--tensor-parallel-size"),
    ],
)
def test_bad_serve_options_are_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(VelobenchError, match=re.escape(message)):
        serve_argv("vllm", full_opts(**kw), None, gpu=True)


def test_server_env_on_cpu_and_gpu() -> None:
    assert server_env(gpu=True) == {}
    assert server_env(gpu=False) == {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_CPU_OMP_THREADS_BIND": "auto"}
    assert server_env(gpu=False, kvcache_gib=0.5)["VLLM_CPU_KVCACHE_SPACE"] == "0.5"
    with pytest.raises(VelobenchError):
        server_env(gpu=False, kvcache_gib=0)


def test_argv_flags_skips_values_including_negative_numbers() -> None:
    assert argv_flags(["--a", "1", "--b=2", "-x", "-3", "value"]) == ["--a", "--b", "-x"]
