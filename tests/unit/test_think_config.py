"""`velobench think --config`: the shipped defaults, a user's TOML over them, and bad configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from velobench.errors import VelobenchError
from velobench.think.config import default_config_path, load_think_config, with_overrides


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "think.toml"
    p.write_text(text)
    return p


def test_shipped_defaults_are_the_seed_tools() -> None:
    assert default_config_path().is_file()
    c = load_think_config()
    assert c.triggers.words == ["wait", "but", "alternatively", "hmm", "however"]
    assert c.segment.tokens == 64 and c.segment.stop_at_paragraph
    assert (c.sampling.temperature, c.sampling.top_p, c.sampling.top_k) == (0.6, 0.95, 20)
    assert c.generation.max_tokens == 32768 and c.generation.stop_at_answer
    msgs = c.prompt.messages("What is 2 + 2?")
    assert msgs == [
        {
            "role": "user",
            "content": "What is 2 + 2?\n\nPlease reason step by step, and put your final answer within \\boxed{}.",
        }
    ]


def test_a_user_config_overrides_table_by_table(tmp_path: Path) -> None:
    c = load_think_config(
        write(tmp_path, '[triggers]\nwords = ["Wait", "hold on", "wait"]\n[segment]\ntokens = 32\n')
    )
    assert c.triggers.words == ["wait", "hold on"]  # lower-cased, duplicates dropped
    assert c.segment.tokens == 32 and c.segment.peek_tokens == 8  # the rest from the defaults
    assert c.sampling.top_k == 20


def test_system_prompt_and_template(tmp_path: Path) -> None:
    c = load_think_config(
        write(
            tmp_path,
            '[prompt]\nsystem = "You are careful."\ntemplate = "Solve: {problem} Answer with #### N."\n',
        )
    )
    assert c.prompt.messages("1+1") == [
        {"role": "system", "content": "You are careful."},
        {"role": "user", "content": "Solve: 1+1 Answer with #### N."},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[triggers]\nwords = []\n",
            r"think\.toml: \[triggers\] words is empty; speculative thinking needs at least one trigger word$",
        ),
        ('[triggers]\nwords = [""]\n', r"think\.toml: triggers\.words: trigger word '' must be non-empty"),
        (
            "[segment]\ntokens = 0\n",
            r"think\.toml: segment\.tokens: Input should be greater than or equal to 1$",
        ),
        ("[segment]\ntokns = 3\n", r"think\.toml: segment\.tokns: Extra inputs are not permitted$"),
        (
            "[sampling]\ntop_p = 1.5\n",
            r"think\.toml: sampling\.top_p: Input should be less than or equal to 1$",
        ),
        (
            '[prompt]\ntemplate = "no placeholder"\n',
            r"prompt\.template: the template must contain \{problem\}",
        ),
        ("[bogus]\nx = 1\n", r"think\.toml: bogus: Extra inputs are not permitted$"),
        ("[segment\n", r"think\.toml: not valid TOML \("),
    ],
)
def test_bad_configs_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(VelobenchError, match=message) as info:
        load_think_config(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(VelobenchError, match=r"^think config not found: .*nope\.toml$"):
        load_think_config(tmp_path / "nope.toml")


def test_command_line_overrides_are_validated() -> None:
    c = with_overrides(load_think_config(), segment_tokens=16, top_k=None, seed=7, triggers=["so"])
    assert c.segment.tokens == 16 and c.sampling.top_k == 20 and c.sampling.seed == 7
    assert c.triggers.words == ["so"]
    assert c.sampling.for_run(2) == 9
    assert with_overrides(c, seed=-1).sampling.for_run(2) is None
    with pytest.raises(VelobenchError, match=r"^command line: segment\.tokens: Input should be greater"):
        with_overrides(c, segment_tokens=0)
    with pytest.raises(VelobenchError, match="at least one trigger word"):
        with_overrides(c, triggers=[])
