"""The scripts use only the hash fields rotator/store/keys.py declares, and only the script layer
calls a script.

The check reads every script (with its prelude and libraries) for the fields of its hash
commands: a literal field ('policy'), a literal prefix joined to an id ('l:' .. id), and the
literals of tables unpacked into those commands or built up for them ({'policy', 'max'},
fields[i] = 'a:' .. id). It does not know which hash a command names, so a field must be
declared for some hash of the schema; that is enough to catch a misspelt or undeclared name.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rotator.store import keys
from rotator.store.scripts import load, lua_dir

ROOT = Path(__file__).resolve().parents[2]
HASH_COMMANDS = ("HGET", "HSET", "HMGET", "HDEL", "HINCRBY", "HEXISTS", "HSETNX")
PAIRED = ("HSET",)
"""Commands whose arguments after the key alternate field, value."""
SCRIPTS = sorted(p.stem for p in lua_dir().glob("*.lua"))

DECLARED_FIELDS = frozenset(
    (
        *keys.TENANT_FIELDS,
        *keys.SERVICE_FIELDS,
        *keys.APP_FIELDS,
        *keys.OPERATOR_SESSION_FIELDS,
        *keys.EVENT_FIELDS,
        *keys.KEYRING_FIELDS,
        *keys.RESTORE_FIELDS,
    )
)
DECLARED_PREFIXES = frozenset((*keys.KEY_FIELDS, *keys.USAGE_FIELDS, *keys.KEYRING_FIELD_PREFIXES))


def _strip_comments(source: str) -> str:
    return "\n".join(re.sub(r"--.*$", "", line) for line in source.splitlines())


def _call_args(source: str, start: int) -> list[str]:
    """The top-level comma-separated arguments of the call whose '(' is at `start`."""
    depth, args, current, i = 0, [], [], start
    while i < len(source):
        ch = source[i]
        if ch == "'":
            end = source.index("'", i + 1)
            current.append(source[i : end + 1])
            i = end + 1
            continue
        if ch in "({[":
            depth += 1
            if depth == 1:
                i += 1
                continue
        elif ch in ")}]":
            depth -= 1
            if depth == 0:
                args.append("".join(current).strip())
                return args
        elif ch == "," and depth == 1:
            args.append("".join(current).strip())
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    raise AssertionError("unbalanced call")


_LITERAL = re.compile(r"^'([^']*)'$")
_PREFIXED = re.compile(r"^'([^']*)'\s*\.\.")


def _field_of(arg: str) -> tuple[str, str] | None:
    """('field', name) for a literal, ('prefix', p) for 'p' .. expr; None for an expression."""
    if m := _LITERAL.match(arg):
        return "field", m.group(1)
    if m := _PREFIXED.match(arg):
        return "prefix", m.group(1)
    return None


def _table_fields(source: str, name: str) -> list[tuple[str, str]]:
    """The literal fields a table variable is built from: its constructor and element writes."""
    found: list[tuple[str, str]] = []
    for m in re.finditer(rf"\b{re.escape(name)}\s*=\s*\{{", source):
        found += [f for a in _call_args(source, m.end() - 1) if (f := _field_of(a))]
    for m in re.finditer(rf"\b{re.escape(name)}\[[^\]]+\]\s*(?:,\s*\w+\[[^\]]+\]\s*)?=\s*", source):
        rest = source[m.end() :]
        for part in re.split(r",(?![^(]*\))", rest.split("\n", 1)[0]):
            if (f := _field_of(part.strip())) is not None:
                found.append(f)
    return found


def fields_used(source: str) -> set[tuple[str, str]]:
    """Every (kind, name) of a hash field a script's hash commands use."""
    source = _strip_comments(source)
    used: set[tuple[str, str]] = set()
    pattern = r"redis\.p?call\(\s*'(" + "|".join(HASH_COMMANDS) + r")'"
    for m in re.finditer(pattern, source):
        command = m.group(1)
        args = _call_args(source, source.index("(", m.start()))[2:]  # after the name and key
        if command in PAIRED:
            args = args[::2]
        for arg in args:
            if (f := _field_of(arg)) is not None:
                used.add(f)
            elif u := re.match(r"^unpack\((\w+)", arg):
                used.update(_table_fields(source, u.group(1)))
    return used


def undeclared(source: str) -> set[tuple[str, str]]:
    return {
        (kind, name)
        for kind, name in fields_used(source)
        if (kind == "field" and name not in DECLARED_FIELDS and name != "")
        or (kind == "prefix" and name not in DECLARED_PREFIXES)
    }


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_field_a_script_uses_is_declared(name):
    assert undeclared(load(name).source.decode()) == set()


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_field_prefix_a_script_builds_is_declared(name):
    """Field names built into a variable first (the once-a-day flags 'lr:' .. slug ..) are
    checked by their prefix, wherever the script builds them."""
    source = _strip_comments(load(name).source.decode())
    built = set(re.findall(r"'([a-z]+:)'\s*\.\.", source))
    assert built - DECLARED_PREFIXES == set()


def test_the_check_sees_the_fields_of_the_delivery_script():
    """The check is not vacuous: it finds the fields next_key.lua reads and writes."""
    used = fields_used(load("next_key").source.decode())
    assert {("field", "policy"), ("field", "@client"), ("field", "cur")} <= used
    assert {("prefix", "a:"), ("prefix", "m:"), ("prefix", "k:"), ("prefix", "l:")} <= used
    assert {("prefix", "s:"), ("prefix", "t:")} <= used


@pytest.mark.parametrize(
    "lua, found",
    [
        ("redis.call('HGET', KEYS[1], 'polcy')", ("field", "polcy")),
        ("redis.call('HSET', KEYS[1], 'ids', x, 'j:' .. id, 1)", ("prefix", "j:")),
        ("local f = {'max', 'nope'}\nredis.call('HMGET', KEYS[1], unpack(f))", ("field", "nope")),
        ("f[i] = 'z:' .. id\nredis.call('HDEL', KEYS[1], unpack(f))", ("prefix", "z:")),
    ],
)
def test_an_undeclared_field_is_reported(lua, found):
    assert undeclared(lua) == {found}


def test_per_key_fields_are_declared_once_and_used_by_the_readers():
    assert keys.key_field("l:", 7) == "l:7"
    assert keys.usage_field("s:", "openai") == "s:openai"
    with pytest.raises(AssertionError):
        keys.key_field("zz:", 1)


def test_only_the_script_layer_loads_a_script():
    """One wrapper per script: nothing outside rotator/store/scripts/ loads or EVALs one (the
    job queue's enqueue_jobs.lua, owned by the event pump, is the one exception)."""
    offenders = []
    for path in [*(ROOT / "rotator").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        if "store/scripts" in path.as_posix():
            continue
        text = path.read_text()
        for line in text.splitlines():
            if re.search(r"scripts\.load\(|\.eval\(|queue_script", line) and (
                "enqueue_jobs" not in line
            ):
                offenders.append(f"{path.relative_to(ROOT)}: {line.strip()}")
    assert offenders == []
