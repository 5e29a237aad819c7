"""The development composition (devtools.compose): development's stand-ins reach the
container only where the settings leave them to development, never in production, and
production's container without them names where they come from."""

from __future__ import annotations

import pytest

from devtools.compose import dev_container, dev_factories, main
from devtools.local_queue import LocalQueue
from devtools.offline_writer import OfflineWriter
from shared.bootstrap import Container
from shared.config import ConfigError, load_settings
from shared.queue import QStashQueue
from tests.unit.test_config import PROD_OK


def test_what_development_leaves_unset_is_composed_here() -> None:
    assert sorted(dev_factories(load_settings({}))) == ["database_url", "llm", "queue", "redis"]


def test_what_the_settings_configure_is_production_s() -> None:
    settings = load_settings(
        {
            "DATABASE_URL": "postgresql://u@127.0.0.1:5432/db",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "QUEUE_BACKEND": "qstash",
            "QSTASH_TOKEN": "tok",
            "WORKER_URL": "https://worker.example",
            "MINIMAX_API_KEY": "k",
        }
    )
    assert dev_factories(settings) == {}
    assert isinstance(dev_container(settings).queue, QStashQueue)


def test_production_settings_get_production_s_container() -> None:
    assert dev_factories(load_settings(PROD_OK)) == {}


def test_the_stand_ins_are_built_on_first_use_and_overrides_win() -> None:
    settings = load_settings({"QUEUE_BACKEND": "local", "AI_PROVIDER": "offline"})
    c = dev_container(settings)
    assert c.built("queue") is None
    assert c.built("llm") is None
    assert isinstance(c.llm, OfflineWriter)
    queue = c.queue
    try:
        assert isinstance(queue, LocalQueue)
        assert c.queue is queue  # once per container
    finally:
        c.close()
    given = OfflineWriter(latency_s=0.5)
    assert dev_container(settings, llm=given).llm is given


@pytest.mark.parametrize(
    ("adapter", "variable"),
    [("database_url", "DATABASE_URL"), ("redis", "REDIS_URL"), ("queue", "QUEUE_BACKEND"),
     ("llm", "AI_PROVIDER")],
)  # fmt: skip
def test_a_development_container_built_without_them_says_where_they_come_from(
    adapter: str, variable: str
) -> None:
    c = Container(load_settings({}))
    with pytest.raises(ConfigError, match=rf"^{variable}: .*devtools\.compose"):
        getattr(c, adapter)


def test_the_runner_needs_a_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: python -m devtools.compose MODULE" in capsys.readouterr().err
