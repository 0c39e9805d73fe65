"""One settings model for everything a scheduler takes, filled from every configuration source.

Data path, one module per step::

    TOML file, ASYNCZ_* env, global_config, keywords
        -> sources.py   one layer per source (env and TOML read by pydantic-settings' own
                        sources): nested raw values, the origin of each, problems
        -> merging.py   layers merged lowest first, validated by the model, pydantic errors
                        turned into one ConfigurationError naming each ``asyncz.`` key
        -> models.py    AsynczSettings / TaskDefaults / TaskDeclaration and their validators
        -> display.py   settings.describe() and ``asyncz config show``: values, sources, masks

Sources, lowest to highest precedence:

1. a TOML file: ``config_file=``, else ``$ASYNCZ_CONFIG``, else ``asyncz.toml`` in the current
   directory (keys at the top level or under an ``[asyncz]`` table), else the ``[tool.asyncz]``
   table of ``pyproject.toml`` in the current directory;
2. environment variables: ``ASYNCZ_TIMEZONE``, ``ASYNCZ_STORES__DEFAULT__TYPE=redis`` (``__``
   nests, names are case-insensitive, JSON as pydantic-settings reads it);
3. ``global_config``: dotted keys with a prefix (``"asyncz.task_defaults.coalesce": "false"``),
   flat (INI-style) or nested (YAML-style) values alike;
4. keyword arguments, including already-built objects (``stores={"default": RedisStore()}``).

Layers merge key by key. A store/executor/trigger entry whose ``type``/``class`` changes, or
that is an object, replaces the lower layer's entry instead of merging options into it.

:func:`load_settings` is the entry point. Every bad key or value makes it raise one
:class:`~asyncz.exceptions.ConfigurationError` listing each problem under the dotted key the
user wrote (``asyncz.task_defaults.max_instances``) and where it came from.
"""

from __future__ import annotations

from asyncz.settings.merging import load_settings
from asyncz.settings.models import (
    DEFAULT_PREFIX,
    AsynczSettings,
    Origin,
    TaskDeclaration,
    TaskDefaults,
)
from asyncz.settings.sources import (
    CONFIG_ENV,
    ENV_PREFIX,
    RESERVED_ENV,
    EnvSource,
    TomlSource,
    config_file_source,
    find_config_file,
    global_config_layer,
)

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_PREFIX",
    "ENV_PREFIX",
    "RESERVED_ENV",
    "AsynczSettings",
    "EnvSource",
    "Origin",
    "TaskDeclaration",
    "TaskDefaults",
    "TomlSource",
    "config_file_source",
    "find_config_file",
    "global_config_layer",
    "load_settings",
]
