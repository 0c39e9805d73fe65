"""The configuration model: sources, precedence, coercion, errors and origins."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from asyncz.exceptions import ConfigurationError
from asyncz.settings import load_settings

UTC = dt.timezone.utc

DOCS_EXAMPLE: dict[str, Any] = {
    "asyncz.stores.mongo": {"type": "mongodb"},
    "asyncz.stores.default": {"type": "redis", "database": "0"},
    "asyncz.executors.pool": {
        "max_workers": "20",
        "class": "asyncz.executors.pool:ThreadPoolExecutor",
    },
    "asyncz.executors.default": {"class": "asyncz.executors.asyncio:AsyncIOExecutor"},
    "asyncz.task_defaults.coalesce": "false",
    "asyncz.task_defaults.max_instances": "3",
    "asyncz.task_defaults.timezone": "UTC",
    "asyncz.lock_path": "/tmp/asynzc_super_project_{store}_store.pid",
    "asyncz.startup_delay": 2,
}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No stray asyncz.toml, pyproject.toml or ASYNCZ_* variable leaks into a test."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("ASYNCZ_"):
            monkeypatch.delenv(name)
    return tmp_path


def errors_of(**kwargs: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigurationError) as info:
        load_settings(**kwargs)
    return info.value.errors


def test_defaults() -> None:
    s = load_settings()
    assert isinstance(s.timezone, dt.tzinfo)
    assert s.stores == {}
    assert s.executors == {}
    assert s.tasks == {}
    assert s.task_defaults.coalesce is True
    assert s.task_defaults.max_instances == 1
    assert s.task_defaults.misfire_grace_time == 1.0
    assert s.task_defaults.mistrigger_grace_time == 1.0
    assert s.lock_path is None
    assert s.startup_delay is None
    assert s.effective_startup_delay == 0
    assert s.config_file is None
    assert s.origin("timezone").source == "default"


def test_asyncz_docs_example_validates() -> None:
    s = load_settings(DOCS_EXAMPLE)
    assert s.stores == {
        "mongo": {"type": "mongodb"},
        "default": {"type": "redis", "database": "0"},  # options stay raw for the store
    }
    assert s.executors["pool"] == {
        "max_workers": "20",
        "class": "asyncz.executors.pool:ThreadPoolExecutor",
    }
    assert s.task_defaults.coalesce is False
    assert s.task_defaults.max_instances == 3
    assert s.task_defaults.timezone is UTC
    assert s.lock_path == "/tmp/asynzc_super_project_{store}_store.pid"
    assert s.effective_startup_delay == 2.0
    assert str(s.origin("task_defaults.max_instances")) == (
        "global_config key 'asyncz.task_defaults.max_instances'"
    )


def test_nested_and_flat_global_config_are_the_same() -> None:
    flat = load_settings(
        {
            "asyncz.stores.default.type": "redis",
            "asyncz.stores.default.database": "0",
            "asyncz.task_defaults.coalesce": "false",
            "asyncz.timezone": "Europe/Paris",
            "unrelated.key": 1,  # the application's other settings are ignored
        }
    )
    nested = load_settings(
        {
            "asyncz": {
                "stores": {"default": {"type": "redis", "database": "0"}},
                "task_defaults": {"coalesce": False},
                "timezone": "Europe/Paris",
            }
        }
    )
    half = load_settings(
        {
            "asyncz.stores": {"default.type": "redis", "default": {"database": "0"}},
            "asyncz.task_defaults": {"coalesce": "false"},
            "asyncz.timezone": "Europe/Paris",
        }
    )
    for other in (nested, half):
        assert other.stores == flat.stores
        assert other.task_defaults == flat.task_defaults
        assert other.timezone == flat.timezone


def test_custom_prefix() -> None:
    s = load_settings({"sched.timezone": "UTC", "asyncz.timezone": "Europe/Paris"}, prefix="sched.")
    assert s.timezone is UTC
    with pytest.raises(ConfigurationError) as info:
        load_settings({"sched.task_defaults.max_instances": 0}, prefix="sched.")
    assert info.value.keys == ["sched.task_defaults.max_instances"]


def test_timezone_name_or_tzinfo() -> None:
    assert load_settings(timezone="Europe/Paris").timezone.utcoffset(
        dt.datetime(2025, 1, 1)
    ) == dt.timedelta(hours=1)
    assert load_settings(timezone=UTC).timezone is UTC
    [(key, message)] = errors_of(timezone="Mars/Olympus")
    assert key == "asyncz.timezone"
    assert "Mars/Olympus" in message


def test_bad_value_names_the_dotted_key_and_expectation() -> None:
    [(key, message)] = errors_of(global_config={"asyncz.task_defaults.max_instances": "0"})
    assert key == "asyncz.task_defaults.max_instances"
    assert "greater than or equal to 1" in message


def test_every_error_is_reported_at_once() -> None:
    errors = errors_of(
        global_config={
            "asyncz.task_defaults.max_instances": "x",
            "asyncz.task_defaults.coalesce": "maybe",
            "asyncz.startup_delay": -1,
        }
    )
    assert {key for key, _ in errors} == {
        "asyncz.task_defaults.max_instances",
        "asyncz.task_defaults.coalesce",
        "asyncz.startup_delay",
    }


@pytest.mark.parametrize(
    ("key", "guess"),
    [
        ("asyncz.timezon", "timezone"),
        ("asyncz.task_defaults.max_instance", "max_instances"),
        ("asyncz.executor", "executors"),
        ("asyncz.tasks.job.trigegr", "trigger"),
    ],
)
def test_unknown_key_suggests_closest(key: str, guess: str) -> None:
    value: Any = "x"
    if key.startswith("asyncz.tasks"):
        value = "cron"
    config = {key: value}
    if key.startswith("asyncz.tasks"):
        config["asyncz.tasks.job.fn"] = "os:getcwd"
    [(got, message)] = errors_of(global_config=config)
    assert got == key
    assert f"did you mean {guess!r}" in message


def test_mistrigger_spelling() -> None:
    s = load_settings(task_defaults={"mistrigger_grace_time": "30"})
    assert s.task_defaults.misfire_grace_time == 30.0
    assert (
        load_settings(task_defaults={"misfire_grace_time": "none"}).task_defaults.misfire_grace_time
        is None
    )
    assert (
        load_settings(
            task_defaults={"misfire_grace_time": dt.timedelta(minutes=1)}
        ).task_defaults.misfire_grace_time
        == 60.0
    )
    [(key, message)] = errors_of(
        task_defaults={"mistrigger_grace_time": 1, "misfire_grace_time": 2}
    )
    assert key == "asyncz.task_defaults"
    assert "same setting" in message


@pytest.mark.parametrize("lock_path", [None, "/tmp/x-{store}.pid"])
@pytest.mark.parametrize("startup_delay", [None, 0, 5])
def test_effective_startup_delay(lock_path: str | None, startup_delay: int | None) -> None:
    s = load_settings(lock_path=lock_path, startup_delay=startup_delay)
    expected = startup_delay if startup_delay is not None else (1 if lock_path else 0)
    assert s.effective_startup_delay == expected


def test_component_entries() -> None:
    class Store:
        pass

    store = Store()
    s = load_settings(
        stores={"default": store, "other": "redis", "ref": "pkg.mod:Store"},
        executors={"default": {"type": "asyncio"}},
    )
    assert s.stores["default"] is store
    assert s.stores["other"] == {"type": "redis"}
    assert s.stores["ref"] == {"class": "pkg.mod:Store"}
    for bad, expected in [
        ({"database": 0}, "needs 'type'"),
        ({"type": "a", "class": "b:C"}, "not both"),
        ({"type": 3}, "non-empty string"),
        ({"class": "not a ref"}, "module:qualname"),
        (42, "expected a mapping"),
        ({"type": "redis", "bad key": 1}, "identifiers"),
    ]:
        [(key, message)] = errors_of(stores={"default": bad})
        assert key == "asyncz.stores.default"
        assert expected in message


def test_higher_layer_replaces_an_entry_of_another_type() -> None:
    s = load_settings(
        {"asyncz.stores.default": {"type": "redis", "database": "0"}},
        stores={"default": {"type": "memory"}},
    )
    assert s.stores["default"] == {"type": "memory"}
    s = load_settings(
        {"asyncz.stores.default": {"type": "redis", "database": "0"}},
        stores={"default": {"type": "redis", "port": 6380}},
    )
    assert s.stores["default"] == {"type": "redis", "database": "0", "port": 6380}
    assert s.origin("stores.default.port").source == "keyword"
    assert s.origin("stores.default.database").source == "global_config"


def test_keywords_none_means_not_given() -> None:
    s = load_settings({"asyncz.timezone": "UTC"}, timezone=None, lock_path=None)
    assert s.timezone is UTC


def test_unknown_keyword() -> None:
    [(key, message)] = errors_of(timezon="UTC")
    assert key == "asyncz.timezon"
    assert "did you mean 'timezone'" in message


def test_loggers_class() -> None:
    s = load_settings(loggers_class="collections:OrderedDict")
    from collections import OrderedDict

    assert s.loggers_class is OrderedDict
    [(key, message)] = errors_of(loggers_class="collections:nope")
    assert key == "asyncz.loggers_class"
    assert "cannot import" in message
    [(key, message)] = errors_of(loggers_class="os:sep")
    assert "not a class" in message


def test_secret_key_is_masked() -> None:
    s = load_settings(
        secret_key="hunter2",
        stores={"default": {"type": "redis", "password": "pw", "url": "redis://u:pw@h:1/0"}},
    )
    assert s.secret_key is not None
    assert s.secret_key.get_secret_value() == "hunter2"
    rows = {row["key"]: row["value"] for row in s.describe()}
    assert rows["asyncz.secret_key"] == "**********"
    assert rows["asyncz.stores.default.password"] == "**********"
    assert rows["asyncz.stores.default.url"] == "redis://u:****@h:1/0"
    assert "hunter2" not in repr(s)


def test_tasks() -> None:
    s = load_settings(
        {
            "asyncz.tasks.nightly": {
                "fn": "myapp.jobs:cleanup",
                "trigger": {"type": "cron", "hour": "3"},
                "args": [1, 2],
                "max_instances": "2",
                "misfire_grace_time": None,
            },
            "asyncz.tasks.once.fn": "myapp.jobs:warm_up",
            "asyncz.tasks.tick": {"fn": "myapp.jobs:tick", "trigger": "interval"},
        }
    )
    nightly = s.tasks["nightly"]
    assert nightly.trigger == {"type": "cron", "hour": "3"}
    assert nightly.args == (1, 2)
    assert nightly.replace_existing is True
    assert nightly.task_options() == {"max_instances": 2, "misfire_grace_time": None}
    assert s.tasks["once"].trigger is None
    assert s.tasks["once"].task_options() == {}
    assert s.tasks["tick"].trigger == {"type": "interval"}
    [(key, _)] = errors_of(global_config={"asyncz.tasks.x": {"fn": "not a ref"}})
    assert key == "asyncz.tasks.x.fn"
    [(key, _)] = errors_of(global_config={"asyncz.tasks.x": {"trigger": "cron"}})
    assert key == "asyncz.tasks.x.fn"


# -- fuzzing -----------------------------------------------------------------------------------
KEYS = [
    "asyncz.timezone",
    "asyncz.stores.default",
    "asyncz.stores.default.type",
    "asyncz.executors.pool",
    "asyncz.executors.pool.class",
    "asyncz.task_defaults",
    "asyncz.task_defaults.coalesce",
    "asyncz.task_defaults.max_instances",
    "asyncz.task_defaults.misfire_grace_time",
    "asyncz.task_defaults.mistrigger_grace_time",
    "asyncz.task_defaults.timezone",
    "asyncz.lock_path",
    "asyncz.startup_delay",
    "asyncz.logger_name",
    "asyncz.secret_key",
    "asyncz.tasks.t",
    "asyncz.tasks.t.fn",
    "asyncz.tasks.t.trigger",
    "asyncz.tasks.t.args",
    "asyncz",
    "asyncz.",
    "asyncz..x",
    "asyncz.stores",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["false", "3", "20", "UTC", "redis", "none", "os:getcwd", "Europe/Paris"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(
                st.sampled_from(["type", "class", "fn", "trigger", "x", "a.b", ""]),
                st.text(max_size=5),
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=8,
)
config_keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=20), st.integers())


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(config_keys, values, max_size=6))
def test_fuzz_global_config_loads_or_raises_configuration_error(config: dict[Any, Any]) -> None:
    try:
        load_settings(config, environ={})
    except ConfigurationError as exc:
        errors = exc.errors
    else:
        errors = [("", "")]
    assert errors
    assert all(isinstance(k, str) and isinstance(m, str) for k, m in errors)


@hsettings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "ASYNCZ_TIMEZONE",
                "ASYNCZ_STORES__DEFAULT__TYPE",
                "ASYNCZ_STORES",
                "ASYNCZ_STORES__",
                "ASYNCZ_TASK_DEFAULTS__MAX_INSTANCES",
                "ASYNCZ_TASK_DEFAULTS",
                "ASYNCZ_TASKS__T__FN",
                "ASYNCZ_STARTUP_DELAY",
                "ASYNCZ_LOGGER_NAME",
            ]
        ),
        st.one_of(st.text(max_size=10), st.sampled_from(["{}", "[]", '{"a": 1}', "{", "3"])),
        max_size=4,
    ),
    st.dictionaries(
        st.sampled_from(["timezone", "stores", "task_defaults", "startup_delay", "tasks", "nope"]),
        values,
        max_size=3,
    ),
)
def test_fuzz_env_and_keywords(environ: dict[str, str], keywords: dict[str, Any]) -> None:
    try:
        load_settings(environ=environ, **keywords)
    except ConfigurationError as exc:
        errors = exc.errors
    else:
        errors = [("", "")]
    assert errors


@pytest.mark.parametrize(
    "module",
    [
        "asyncz.settings",
        "asyncz.settings.models",
        "asyncz.settings.sources",
        "asyncz.settings.merging",
        "asyncz.settings.display",
    ],
)
def test_each_settings_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    """No module-level import cycle: any module of the package can be the first one imported."""
    code = (
        f"import {module}\n"
        "from asyncz.settings import AsynczSettings, load_settings\n"
        "assert load_settings(environ={}).describe()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
