"""stageroute.toml: option values for the commands from a file, as click's ``default_map``.

The file holds a table per command (``[plan]``, ``[stats]``, ``[replay]``) and shared top-level
keys that go to every command that has the option; keys are the options' long names without the dashes
(``max-deployed`` or ``max_deployed``). Flags on the command line override the file. Relative
paths are relative to the file's directory, so a crontab can run from anywhere.
"""

from __future__ import annotations

import datetime as dt
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from stageroute.errors import one_line

CONFIG_NAME = "stageroute.toml"


class ConfigError(typer.BadParameter):
    """A config file that cannot be used: the message names the file and the key."""


def _base(hint: Any) -> Any:
    """Annotated[X | None, ...] -> X; list[str] -> list."""
    if typing.get_origin(hint) is Annotated:
        hint = typing.get_args(hint)[0]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    return typing.get_origin(hint) or hint


def option_kinds(function: Callable[..., Any]) -> dict[str, tuple[str, Any]]:
    """A command's options: long name without dashes -> (parameter name, base type)."""
    kinds = {}
    for name, hint in typing.get_type_hints(function, include_extras=True).items():
        if name in ("return", "config_file") or hint is typer.Context:
            continue
        decls = [d for m in getattr(hint, "__metadata__", ())  # Option("--json"): the default
                 for d in (getattr(m, "default", None), *(getattr(m, "param_decls", None) or ()))
                 if isinstance(d, str) and d.startswith("--")]
        flag = (decls[0] if decls else "--" + name.replace("_", "-")).removeprefix("--")
        kinds[flag] = (name, _base(hint))
    return kinds


MAX_CONFIG_BYTES = 1 << 20  # a config file is a few lines; a bigger one is the wrong path
FILE_OUTPUTS = ("--output", "--plot")  # the options that write one file (not a directory)


def _value(value: Any, kind: Any, where: str, base: Path) -> Any:
    """A TOML value for an option of type ``kind``, or a ConfigError naming ``where``."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and number:
        try:
            return float(value)
        except OverflowError:
            raise ConfigError(f"{where} is too large for a number, got "
                              f"{one_line(repr(value))[:40]}...") from None
    if kind in (Path, str) and isinstance(value, str) and not value.strip():
        raise ConfigError(f"{where} is empty; give a value or leave the key out")
    if kind is list and isinstance(value, list) and any(isinstance(v, str) and not v.strip()
                                                        for v in value):
        raise ConfigError(f"{where} holds an empty string; give values or leave the key out")
    if kind is Path and isinstance(value, str):
        return str(base / Path(value).expanduser())  # an absolute value stays as it is
    if kind is str and (isinstance(value, str) or number):
        return str(value)
    if kind is str and isinstance(value, dt.date):  # as-of = 2026-11-16T02:00:00Z, unquoted
        return value.isoformat()
    if kind is list and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    wanted = {bool: "true or false", int: "an integer", float: "a number", Path: "a path (string)",
              str: "a string", list: "a list of strings"}[kind]
    raise ConfigError(f"{where} must be {wanted}, got {one_line(repr(value))[:80]}")


def read_config(path: Path, commands: Mapping[str, Callable[..., Any]]) -> dict[str, dict[str, Any]]:
    """The file's values per command (parameter name -> value).

    Raises:
        ConfigError: unreadable or invalid TOML, an unknown table or key, a value of the wrong type.
    """
    from stageroute.errors import InputMissingError
    from stageroute.inputs.files import require_file

    try:
        require_file(path, "config file", "--config")  # a FIFO or a device would block or never end
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES // 1024} KiB; "
                              "a stageroute.toml holds a few option values, check the path")
        data = tomllib.loads(raw.decode("utf-8").removeprefix("\ufeff"))  # a BOM, as editors add
    except InputMissingError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path} ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML ({one_line(str(exc))})") from None
    except RecursionError:
        raise ConfigError(f"config file {path} nests arrays or tables too deeply; a "
                          "stageroute.toml holds flat option values") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); TOML is "
                          f"UTF-8, save it as such") from None
    kinds = {name: option_kinds(function) for name, function in commands.items()}
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            raise ConfigError(f"config file {path}: [[{key}]] is an array of tables; write the "
                              f"table once as [{key}]")
    shared = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for table, keys in [("", shared), *((f" in [{k}]", v) for k, v in data.items()
                                        if isinstance(v, dict))]:
        spellings: dict[str, str] = {}
        for key in keys:
            other = spellings.setdefault(key.replace("_", "-"), key)
            if other != key:
                raise ConfigError(f"config file {path}: '{other}' and '{key}'{table} set the same "
                                  "option; keep one of them")
    values: dict[str, dict[str, Any]] = {name: {} for name in commands}
    for table in (k for k, v in data.items() if isinstance(v, dict)):
        if table not in commands:
            raise ConfigError(f"config file {path}: unknown table [{table}], the tables are "
                              f"{', '.join(f'[{c}]' for c in commands)}")
    for command, options in kinds.items():
        given = {**shared, **data.get(command, {})}
        for key, value in given.items():
            flag = key.replace("_", "-")
            if flag not in options:
                if key in data.get(command, {}):
                    raise ConfigError(f"config file {path}: unknown key '{key}' in [{command}] "
                                      f"(see 'stageroute {command} --help' for the options)")
                continue
            name, kind = options[flag]
            where = f"config file {path}: '{key}'" + (f" in [{command}]" if key not in shared else "")
            if f"--{flag}" in FILE_OUTPUTS and isinstance(value, str) and value.endswith("/"):
                raise ConfigError(f"{where} is {one_line(repr(value))[:80]}, a directory; it takes "
                                  f"a file name, e.g. {value}NAME")
            values[command][name] = _value(value, kind, where, path.parent)
    for key in shared:
        if not any(key.replace("_", "-") in options for options in kinds.values()):
            raise ConfigError(f"config file {path}: unknown key '{key}' (no command has the "
                              f"option --{key.replace('_', '-')})")
    return values


def use_config(ctx: typer.Context, value: Path | None) -> Path | None:
    """``--config`` (eager): load the file, or ./stageroute.toml when there is one, into the
    command's ``default_map``; options not given on the command line take their values from it."""
    path = value if value is not None else Path(CONFIG_NAME)
    if value is None and not path.is_file():
        return value
    from stageroute_cli.common import app

    commands = {info.name or info.callback.__name__: info.callback
                for info in app.registered_commands
                if info.callback is not None and (info.name or info.callback.__name__) in
                ("plan", "replay", "stats")}
    ctx.default_map = {**(ctx.default_map or {}), **read_config(path, commands)[ctx.info_name or ""]}
    return value


EXAMPLE = """\
# stageroute.toml: option values for `stageroute plan`, `stageroute stats` and `stageroute replay`.
# Flags on the command line override these; an unknown key or a value of the wrong type is an
# error (exit 2) naming the key and this file. Keys are the options' long names without the
# dashes (`stageroute plan --help` lists them). Relative paths are relative to this file.

# Shared keys: every command that has the option takes them.
solver = "highs"          # or "glpk"
max-deployed = 3          # models deployed at once (M_max)

[plan]
logs = "sample_logs/logs.parquet"      # a file, a glob such as "logs/*.parquet", or a directory
catalog = "sample_logs/catalog.csv"
budget = 0.002                         # cost budget per request, in the logs' currency
stage-length = "7d"
# Stages start at anchor + k x stage-length; a cron run plans the window whose start is nearest
# to it (a run up to half a stage late plans the window that began; see --grace).
anchor = 2026-01-05T02:00:00Z
# The sample log ends on 2026-11-16: pin the run's time to plan on it. Remove this line in a
# cron job (the default is now).
as-of = 2026-11-16T02:00:00Z
history = "plans"                      # every plan kept here; a rerun of a planned window is a no-op
# output = "plans/current.json"        # the plan the gateway reads (its directory must exist)
# quiet = true                         # with output: a successful run prints nothing
# max-changes = 1                      # add at most one model per stage
# canary-share = 0.3                   # the exploration slice
# min-samples = 40

[stats]
# The statistics store that `plan --stats` reads: each run summarises only new log files.
# logs = "logs/"                       # the same logs as [plan]
# out = "stats"
# anchor = 2026-01-05T02:00:00Z        # windows start at the stage boundaries (plan --stats
#                                      # cannot split a window)
# engine = "polars"                    # or "duckdb" (with memory-limit) or "spark"

[replay]
# outcomes = "outcomes.parquet"        # full-information outcomes (stageroute import routerbench)
catalog = "sample_logs/catalog.csv"
# relative-budget = 0.3
# seeds = 5
"""
