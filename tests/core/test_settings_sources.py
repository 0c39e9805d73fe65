"""The environment and TOML sources: read by pydantic-settings' own sources, with origins."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest

from asyncz.exceptions import ConfigurationError
from asyncz.settings import AsynczSettings, load_settings

UTC = dt.timezone.utc


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No stray asyncz.toml, pyproject.toml or ASYNCZ_* variable leaks into a test."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith(("ASYNCZ_", "MYAPP_")):
            monkeypatch.delenv(name)
    return tmp_path


def errors_of(**kwargs: Any) -> list[tuple[str, str]]:
    with pytest.raises(ConfigurationError) as info:
        load_settings(**kwargs)
    return info.value.errors


# -- environment ---------------------------------------------------------------------------
def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCZ_TIMEZONE", "Europe/Paris")
    monkeypatch.setenv("ASYNCZ_STORES__DEFAULT__TYPE", "redis")
    monkeypatch.setenv("ASYNCZ_STORES__DEFAULT__DATABASE", "2")
    monkeypatch.setenv("ASYNCZ_TASK_DEFAULTS__COALESCE", "false")
    monkeypatch.setenv("ASYNCZ_EXECUTORS", '{"pool": {"type": "threadpool", "max_workers": 4}}')
    monkeypatch.setenv("ASYNCZ_SECRET_KEY", "s3cret")
    monkeypatch.setenv("ASYNCZ_VENV", "/somewhere")  # not a setting: ignored
    s = load_settings()
    assert str(s.timezone) == "Europe/Paris"
    # pydantic-settings reads an option value as JSON where it parses ("2" is 2).
    assert s.stores == {"default": {"type": "redis", "database": 2}}
    assert s.executors == {"pool": {"type": "threadpool", "max_workers": 4}}
    assert s.task_defaults.coalesce is False
    assert s.secret_key is not None
    assert (
        str(s.origin("stores.default.type")) == "environment variable ASYNCZ_STORES__DEFAULT__TYPE"
    )


def test_environment_error_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCZ_TASK_DEFAULTS__MAX_INSTANCES", "lots")
    [(key, message)] = errors_of()
    assert key == "asyncz.task_defaults.max_instances"
    assert "ASYNCZ_TASK_DEFAULTS__MAX_INSTANCES" in message
    monkeypatch.setenv("ASYNCZ_TASK_DEFAULTS__MAX_INSTANCES", "2")
    monkeypatch.setenv("ASYNCZ_TASK_DEFAULTS__COALESC", "1")
    [(key, message)] = errors_of()
    assert key == "asyncz.task_defaults.coalesc"
    assert "ASYNCZ_TASK_DEFAULTS__COALESC" in message
    assert "coalesce" in message


def test_environment_json_error_names_the_key_and_variable() -> None:
    [(key, message)] = errors_of(environ={"ASYNCZ_TASK_DEFAULTS": "{"})
    assert key == "asyncz.task_defaults"
    assert message == "not valid JSON [from environment variable ASYNCZ_TASK_DEFAULTS]"
    s = load_settings(environ={"asyncz_stores__Main__TYPE": "memory"})  # names: any case
    assert s.stores == {"main": {"type": "memory"}}
    assert str(s.origin("stores.main.type")) == "environment variable asyncz_stores__Main__TYPE"


def test_environ_argument_replaces_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCZ_TIMEZONE", "Europe/Paris")
    assert load_settings(environ={"ASYNCZ_TIMEZONE": "UTC"}).timezone is UTC


# -- TOML ------------------------------------------------------------------------------------
def test_asyncz_toml_top_level_and_table(isolated: Path) -> None:
    (isolated / "asyncz.toml").write_text(
        'timezone = "UTC"\n[asyncz.task_defaults]\nmax_instances = 4\n'
        '[stores.default]\ntype = "redis"\ndatabase = 1\n',
        encoding="utf-8",
    )
    s = load_settings()
    assert s.timezone is UTC
    assert s.task_defaults.max_instances == 4
    assert s.stores["default"] == {"type": "redis", "database": 1}
    assert s.config_file == isolated / "asyncz.toml"
    assert s.origin("timezone").source == "toml"


def test_pyproject_tool_table(isolated: Path) -> None:
    (isolated / "pyproject.toml").write_text(
        '[project]\nname = "app"\n[tool.asyncz]\nlock_path = "/tmp/l.pid"\n', encoding="utf-8"
    )
    s = load_settings()
    assert s.lock_path == "/tmp/l.pid"
    assert s.effective_startup_delay == 1.0


def test_pyproject_without_table_is_ignored(isolated: Path) -> None:
    (isolated / "pyproject.toml").write_text('[project]\nname = "app"\n', encoding="utf-8")
    assert load_settings().config_file is None


def test_explicit_and_env_config_file(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (isolated / "asyncz.toml").write_text('timezone = "Europe/Paris"\n', encoding="utf-8")
    other = isolated / "other.toml"
    other.write_text('timezone = "UTC"\n', encoding="utf-8")
    assert load_settings(config_file=other).timezone is UTC
    monkeypatch.setenv("ASYNCZ_CONFIG", str(other))
    assert load_settings().timezone is UTC
    monkeypatch.setenv("ASYNCZ_CONFIG", str(isolated / "missing.toml"))
    [(key, message)] = errors_of()
    assert key == "ASYNCZ_CONFIG"
    assert "missing.toml" in message


def test_toml_errors_name_the_file(isolated: Path) -> None:
    path = isolated / "asyncz.toml"
    path.write_text("[task_defaults]\nmax_instances = 0\n", encoding="utf-8")
    [(key, message)] = errors_of()
    assert key == "asyncz.task_defaults.max_instances"
    assert str(path) in message
    path.write_text("timezone = \n", encoding="utf-8")
    [(key, message)] = errors_of()
    assert key == str(path)
    assert "TOML" in message


def test_precedence_toml_env_global_config_keyword(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / "asyncz.toml").write_text(
        'logger_name = "toml"\nlock_path = "toml"\nstartup_delay = 1\n'
        "[task_defaults]\nmax_instances = 1\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("ASYNCZ_LOCK_PATH", "env")
    monkeypatch.setenv("ASYNCZ_STARTUP_DELAY", "2")
    monkeypatch.setenv("ASYNCZ_TASK_DEFAULTS__MAX_INSTANCES", "2")
    s = load_settings(
        {"asyncz.startup_delay": 3, "asyncz.task_defaults.max_instances": 3},
        task_defaults={"max_instances": 4},
    )
    assert (s.logger_name, s.lock_path, s.startup_delay) == ("toml", "env", 3.0)
    assert s.task_defaults.max_instances == 4
    sources = {row["key"]: row["source"] for row in s.describe()}
    assert sources["asyncz.logger_name"] == "toml"
    assert sources["asyncz.lock_path"] == "env"
    assert sources["asyncz.startup_delay"] == "global_config"
    assert sources["asyncz.task_defaults.max_instances"] == "keyword"
    assert sources["asyncz.task_defaults.coalesce"] == "default"


def test_direct_construction_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCZ_TIMEZONE", "UTC")
    monkeypatch.setenv("ASYNCZ_TASK_DEFAULTS__MAX_INSTANCES", "5")
    s = AsynczSettings(lock_path="/tmp/x")
    assert s.timezone is UTC
    assert s.task_defaults.max_instances == 5
    assert s.lock_path == "/tmp/x"


def test_env_beats_toml_for_one_key_through_every_entry_point(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One reader for env and TOML: load_settings, AsynczSettings() and a scheduler agree."""
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.settings import Origin

    (isolated / "asyncz.toml").write_text(
        'lock_path = "from-toml"\nlogger_name = "toml"\n[task_defaults]\nmax_instances = 2\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("ASYNCZ_LOCK_PATH", "from-env")
    monkeypatch.setenv("ASYNCZ_TASK_DEFAULTS__MAX_INSTANCES", "3")
    env = Origin("env", "ASYNCZ_LOCK_PATH")
    toml = Origin("toml", str(isolated / "asyncz.toml"))
    scheduler = AsyncIOScheduler()
    for s in (load_settings(), AsynczSettings(), scheduler.settings):
        assert (s.lock_path, s.logger_name, s.task_defaults.max_instances) == (
            "from-env",
            "toml",
            3,
        )
        assert s.origin("lock_path") == env
        assert s.origin("logger_name") == toml
        assert s.origin("task_defaults.max_instances").source == "env"
        assert s.config_file == isolated / "asyncz.toml"
    assert (scheduler.lock_path, scheduler.task_defaults["max_instances"]) == ("from-env", 3)
    # Keyword arguments stay on top, and a None keyword is a value only when constructing
    # the model directly (load_settings reads it as "not given").
    assert AsynczSettings(lock_path="kw").origin("lock_path") == Origin("keyword")
    assert AsynczSettings(lock_path=None).lock_path is None
    assert load_settings(lock_path=None).lock_path == "from-env"


def test_direct_construction_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="timezone"):
        AsynczSettings(timezone="Nowhere/Zone")
    monkeypatch.setenv("ASYNCZ_STORES____TYPE", "memory")
    with pytest.raises(ConfigurationError, match="ASYNCZ_STORES____TYPE: empty key segment"):
        AsynczSettings()


def test_env_and_toml_are_read_by_pydantic_settings_sources(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sources settings_customise_sources returns are the ones read, stock ones included."""
    from pydantic_settings import (
        BaseSettings,
        EnvSettingsSource,
        PydanticBaseSettingsSource,
        PyprojectTomlConfigSettingsSource,
        TomlConfigSettingsSource,
    )

    from asyncz.settings import EnvSource, Origin

    (isolated / "pyproject.toml").write_text(
        '[tool.asyncz]\nlogger_name = "pyproject"\n', encoding="utf-8"
    )
    env = EnvSource(AsynczSettings)
    init = env  # any source: only the TOML part is looked at here
    sources = AsynczSettings.settings_customise_sources(AsynczSettings, init, env, env, env)
    assert isinstance(sources[1], EnvSettingsSource)
    assert isinstance(sources[2], PyprojectTomlConfigSettingsSource)
    assert load_settings().logger_name == "pyproject"

    other = isolated / "other.toml"
    other.write_text('lock_path = "from-other"\n', encoding="utf-8")

    class MyAppSettings(AsynczSettings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                EnvSource(settings_cls, env_prefix="MYAPP_"),
                TomlConfigSettingsSource(settings_cls, toml_file=other),
            )

    monkeypatch.setenv("MYAPP_TIMEZONE", "UTC")
    monkeypatch.setenv("MYAPP_TASK_DEFAULTS__MAX_INSTANCES", "7")
    monkeypatch.setenv("ASYNCZ_LOCK_PATH", "ignored: not this prefix")
    s = MyAppSettings()
    assert (s.timezone, s.task_defaults.max_instances, s.lock_path) == (UTC, 7, "from-other")
    assert s.logger_name is None  # pyproject.toml is not among this subclass's sources
    assert s.origin("timezone") == Origin("env", "MYAPP_TIMEZONE")
    assert s.origin("lock_path") == Origin("toml", str(other))
    assert s.config_file == other


def test_each_source_is_read_once(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """load_settings, AsynczSettings() and a scheduler call the env and TOML sources once each."""
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.settings import EnvSource, TomlSource

    (isolated / "asyncz.toml").write_text('logger_name = "toml"\n', encoding="utf-8")
    monkeypatch.setenv("ASYNCZ_LOCK_PATH", "env")
    calls: list[str] = []
    for cls in (EnvSource, TomlSource):

        def counting(self: Any, _call: Any = cls.__call__, _name: str = cls.__name__) -> Any:
            calls.append(_name)
            return _call(self)

        monkeypatch.setattr(cls, "__call__", counting)
    for build in (load_settings, AsynczSettings, lambda: AsyncIOScheduler().settings):
        calls.clear()
        s = build()
        assert (s.logger_name, s.lock_path) == ("toml", "env")
        assert sorted(calls) == ["EnvSource", "TomlSource"]
