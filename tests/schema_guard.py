"""Every plan and replay document the tests make is checked against the published schemas.

``install()`` (called by conftest.py) puts two checks in place for the whole test run:

- in this process, ``stageroute.plan.plan_document`` and ``stageroute.simulate.replay.
  replay_document`` are wrapped: each document they return (to a test, to the CLI under
  CliRunner, to a fixture) is checked as the JSON it serialises to;
- for child processes, ``subprocess.Popen.communicate`` (which ``subprocess.run`` uses) is
  wrapped: when the command line is a stageroute ``plan`` or ``replay`` run that exited 0, its
  stdout (when it is a JSON object) and its ``--output`` file are checked.

Other documents (other commands, other JSON files) are left alone. What fails the schema is
collected in ``FOUND``; ``pytest_runtest_call`` (imported by conftest.py) turns it into a failure
of the test that made it.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import subprocess
from collections import Counter
from collections.abc import Callable, Generator, Sequence
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
KINDS = {"plan": "plan.schema.json", "replay": "replay.schema.json"}
# The first of these on a command line is the subcommand; only plan and replay print documents
# of the schemas (export, diff, ... print their own).
SUBCOMMANDS = {"plan", "replay", "stats", "diff", "export", "init", "import", "history"}

FOUND: list[str] = []  # problems not yet reported
LEFT: list[str] = []  # problems no test reported, for the summary
CHECKED: Counter[tuple[str, bool]] = Counter()  # documents checked, by kind and channel
_ORIGINALS: dict[str, Callable[..., dict[str, Any]]] = {}


def schema(kind: str) -> dict[str, Any]:
    """The published schema of ``kind`` ("plan" or "replay")."""
    loaded: dict[str, Any] = json.loads((SCHEMAS / KINDS[kind]).read_text())
    return loaded


@functools.cache
def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(schema(kind))


def problems(kind: str, doc: object, where: str) -> list[str]:
    """What is wrong with ``doc`` as a ``kind`` document, as it would be written (JSON text)."""
    try:
        as_json = json.loads(json.dumps(doc, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return [f"{kind} document from {where} is not JSON: {exc}"]
    errors = sorted(validator(kind).iter_errors(as_json), key=lambda e: list(map(str, e.path)))
    return [f"{kind} document from {where}, at /{'/'.join(map(str, e.path))}: {e.message}"
            for e in errors]


def check(kind: str, doc: object, where: str, child: bool = False) -> None:
    """Record what is wrong with ``doc`` (nothing when it validates); ``child``: it was printed or
    written by a child process."""
    CHECKED[kind, child] += 1
    FOUND.extend(problems(kind, doc, where))


def take() -> list[str]:
    """The problems found since the last call (and forget them)."""
    found = FOUND[:]
    FOUND.clear()
    return found


def _wrap_document(kind: str, module: Any, name: str, key: str = "") -> None:
    key = key or kind  # _ORIGINALS[key]: looked up per call, so that a test can replace it
    _ORIGINALS[key] = getattr(module, name)

    @functools.wraps(_ORIGINALS[key])
    def checked(*args: Any, **kwargs: Any) -> dict[str, Any]:
        doc = _ORIGINALS[key](*args, **kwargs)
        check(kind, doc, name)
        return doc

    setattr(module, name, checked)


def words(args: str | bytes | os.PathLike[str] | Sequence[Any]) -> list[str]:
    """A Popen ``args`` as a list of strings."""
    if isinstance(args, (str, bytes, os.PathLike)):
        return shlex.split(os.fsdecode(args))
    return [os.fsdecode(a) if isinstance(a, (str, bytes, os.PathLike)) else str(a) for a in args]


def command_kind(args: list[str]) -> str | None:
    """"plan" or "replay" when the command line ``args`` runs that stageroute command, else None."""
    if not any("stageroute" in word for word in args):
        return None
    command = next((word for word in args[1:] if word in SUBCOMMANDS), None)
    return command if command in KINDS else None


def output_file(words: list[str]) -> str | None:
    """The ``--output`` of a command line."""
    for i, word in enumerate(words):
        if word == "--output" and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--output="):
            return word.split("=", 1)[1]
    return None


def _command(args: list[str], limit: int = 160) -> str:
    """A command line for a message: the program's name, ``-c`` code left out, cut."""
    shown = [Path(args[0]).name, *("CODE" if args[i] == "-c" else word
                                   for i, word in enumerate(args[1:]))] if args else []
    text = shlex.join(shown)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_child(process: subprocess.Popen[Any], stdout: object) -> None:
    """Check what a finished stageroute plan/replay child printed and wrote."""
    args = words(process.args)
    kind = command_kind(args)
    if kind is None or process.returncode != 0:
        return
    text = stdout.decode("utf-8", "replace") if isinstance(stdout, bytes) else stdout
    if isinstance(text, str) and text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:  # e.g. stdout cut by a signal test: not a document
            doc = None
        if isinstance(doc, dict):
            check(kind, doc, f"the stdout of {_command(args)}", child=True)
    name = output_file(args)
    if name is not None:
        path = Path(getattr(process, "_schema_cwd", None) or ".", name)
        if path.is_file():
            try:
                doc = json.loads(path.read_text())
            except ValueError as exc:
                FOUND.append(f"{kind} --output {path} of {_command(args)} is not JSON: {exc}")
                return
            check(kind, doc, f"--output {name} of {_command(args)}", child=True)


def _wrap_popen() -> None:
    init, communicate = subprocess.Popen.__init__, subprocess.Popen.communicate

    @functools.wraps(init)
    def remember_cwd(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        self._schema_cwd = kwargs.get("cwd")
        init(self, *args, **kwargs)

    @functools.wraps(communicate)
    def communicate_and_check(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> Any:
        out = communicate(self, *args, **kwargs)
        _check_child(self, out[0])
        return out

    subprocess.Popen.__init__ = remember_cwd
    subprocess.Popen.communicate = communicate_and_check


def install() -> None:
    """Check every document from now on (once per process)."""
    if _ORIGINALS:
        return
    import stageroute.plan
    import stageroute.simulate.replay

    _wrap_document("plan", stageroute.plan, "plan_document")
    _wrap_document("replay", stageroute.simulate.replay, "replay_document")
    import stageroute.simulate.offreplay

    _wrap_document("replay", stageroute.simulate.offreplay, "offpolicy_document", "offpolicy")
    _wrap_popen()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    """A test whose documents (or its fixtures') fail the schema fails."""
    result = yield
    found = take()
    if found:
        shown = "\n".join(found[:20]) + (f"\n... and {len(found) - 20} more" if len(found) > 20 else "")
        raise AssertionError(f"{len(found)} schema violation(s) (schemas/):\n{shown}")
    return result


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Problems no test reported (made by the last test's teardown, or outside tests/) fail the
    run; the summary lists them."""
    LEFT.extend(take())
    if LEFT:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in LEFT:
        terminalreporter.write_line(f"schema violation: {line}", red=True)
    if CHECKED:
        terminalreporter.write_line("schemas: " + ", ".join(
            f"{CHECKED[kind, False] + CHECKED[kind, True]} {kind} documents ({CHECKED[kind, True]} "
            "from child processes)" for kind in KINDS) + " validated")
