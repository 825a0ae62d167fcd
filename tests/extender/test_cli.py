"""The extender's command line: its defaults are the settings' defaults, and flags reach them."""

from __future__ import annotations

import pytest

from extender.cli import parser, settings_from_args
from extender.config import Settings, SettingsError
from extender.decisions import Mode
from placement.model import FitSettings, NvlinkMode


def test_no_flags_give_the_default_settings() -> None:
    assert settings_from_args(parser().parse_args([])) == Settings()


FLAG_CASES = {
    "listen": (["--listen", "0.0.0.0:9000"], Settings(host="0.0.0.0", port=9000)),
    "listen-ipv6": (["--listen", "[::1]:9000"], Settings(host="::1", port=9000)),
    "mode": (["--mode", "all-feasible"], Settings(mode=Mode.ALL_FEASIBLE)),
    "fit": (
        ["--max-report-age", "30", "--nvlink", "required"],
        Settings(fit=FitSettings(max_report_age_s=30.0, nvlink_for_multi_gpu=NvlinkMode.REQUIRED)),
    ),
    "nvlink-allocation": (
        ["--nvlink-allocation", "best-effort"],
        Settings(fit=FitSettings(nvlink_best_effort=True)),
    ),
    "load-budget": (["--load-budget", "30"], Settings(fit=FitSettings(load_budget_s=30.0))),
    "load-budget-off": (["--load-budget", "0"], Settings(fit=FitSettings(load_budget_s=None))),
    "threads-and-timeouts": (
        ["--threads", "2", "--api-timeout", "1.5", "--watch-timeout", "60"],
        Settings(threads=2, api_timeout_s=1.5, watch_timeout_s=60),
    ),
}


@pytest.mark.parametrize(("argv", "expect"), FLAG_CASES.values(), ids=FLAG_CASES.keys())
def test_a_flag_changes_only_its_setting(argv: list[str], expect: Settings) -> None:
    assert settings_from_args(parser().parse_args(argv)) == expect


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(":8888", id="no-host"),
        pytest.param("127.0.0.1:0", id="port-zero"),
        pytest.param("::1:8888", id="ipv6-without-brackets"),
    ],
)
def test_listen_rejects(value: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings_from_args(parser().parse_args(["--listen", value]))
    assert [p.split(":")[0] for p in err.value.problems] == ["--listen"]


def test_nvlink_allocation_is_strict_or_best_effort() -> None:
    with pytest.raises(SettingsError) as err:
        settings_from_args(parser().parse_args(["--nvlink-allocation", "loose"]))
    assert err.value.problems == [
        "--nvlink-allocation 'loose': expected one of strict, best-effort"
    ]


@pytest.mark.parametrize("value", ["-1", "inf", "nan"])
def test_load_budget_rejects(value: str) -> None:
    with pytest.raises(SettingsError) as err:
        settings_from_args(parser().parse_args(["--load-budget", value]))
    assert [p.split(" ")[0] for p in err.value.problems] == ["--load-budget"]
