"""The [host] and [search] tables (llmhost.config.host): the RAM budget for asleep models,
and the mode that search mode "auto" picks from a model's names."""

from __future__ import annotations

import psutil
import pytest

from llmhost.config import ConfigError, HostConfig, SearchConfig, parse_catalog
from llmhost.config.host import STANDBY_RAM_SHARE
from llmhost.units import GIB
from tests.config.support import GOOD


def test_the_standby_ram_budget_is_the_set_figure() -> None:
    assert HostConfig(standby_ram_gib=9).standby_ram_bytes == 9 * GIB
    assert HostConfig(standby_ram_gib=0.5).standby_ram_bytes == GIB // 2


def test_without_a_figure_the_budget_is_a_share_of_this_machines_ram() -> None:
    assert STANDBY_RAM_SHARE == 0.4
    expected = int(psutil.virtual_memory().total * STANDBY_RAM_SHARE)
    assert HostConfig().standby_ram_bytes == expected


def test_the_standby_ram_budget_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=r"\[host\] standby_ram_gib"):
        parse_catalog("[host]\nstandby_ram_gib = 0\n" + GOOD)


def test_auto_picks_the_first_mode_with_a_keyword_in_a_name() -> None:
    search = SearchConfig()
    assert search.mode_for(("Qwen/Qwen2.5-Coder-7B-Instruct",)) == "code"  # case does not matter
    assert search.mode_for(("general-reasoner", "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B")) == "research"
    assert search.mode_for(("chat-general", "meta-llama/Llama-3.1-8B-Instruct")) == "general"
    assert search.mode_for(()) == "general"  # no model given


def test_the_default_mode_is_the_configured_one() -> None:
    search = SearchConfig(modes={"web": ("duckduckgo",), "code": ("github",)}, auto={}, default_mode="web")
    assert search.mode_for(("coder",)) == "web"  # no keyword for "code" here
