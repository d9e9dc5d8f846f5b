"""How many leading digits decide a number pattern's verdict: what lets ``phones`` remember answers
by prefix and still answer exactly as ``phonenumbers`` would.

``phonenumbers`` decides everything with regular expressions over digits (its metadata's
patterns: ``(?:3(?:0[12]|4[1-35-79])|9)\\d{7}`` and the like). Such a pattern, for strings of one
length, is a union of *cubes*: one set of allowed digits per position. Once the leading digits
of a number leave no cube alive, or leave one whose remaining positions allow any digit, every
number of that length with those leading digits gets the same verdict. ``full_depth`` says how
many leading digits that takes for one number (``re.fullmatch``), ``start_depth`` how many a
pattern matched at the start can read (``re.match``). Anything this cannot analyse (a construct
the metadata does not use, too many cubes) is None: then nothing is remembered.

It reads Python's own regex parser (``re._parser``); should that change, ``phones`` simply stops
remembering (``ANALYSABLE`` is False) and the tests say so.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

try:  # CPython's own parser of regular expressions (private, but stable since 3.11)
    from re import _constants as c
    from re import _parser as sre_parse

    ANALYSABLE = True
except ImportError:  # pragma: no cover - another Python
    ANALYSABLE = False

_DIGITS = frozenset("0123456789")
_MAX_CUBES = 4000  # per pattern and length: beyond it, not worth remembering
_MAX_LENGTH = 24  # phonenumbers' national numbers have at most 17 digits

Cube = tuple[frozenset[str], ...]
_Lengths = dict[int, list[Cube]]  # strings of each length a (piece of) pattern matches, as cubes


class _TooComplex(Exception):
    pass


def full_depth(pattern: str, digits: str) -> int | None:
    """How many leading digits of ``digits`` decide ``re.fullmatch(pattern, d)`` for every ``d`` of
    the same length that starts with them (None: not known)."""
    cubes = _cubes(pattern, len(digits))
    if cubes is None:
        return None
    alive = cubes
    for depth, digit in enumerate(digits):
        if not alive or any(free <= depth for _, free in alive):
            return depth
        alive = [(cube, free) for cube, free in alive if digit in cube[depth]]
    return len(digits)


@lru_cache(maxsize=256)
def start_depth(pattern: str) -> int | None:
    """The most digits ``re.match(pattern, …)`` can read (None: unbounded or not known)."""
    lengths = _lengths(pattern, _MAX_LENGTH)
    if lengths is None or (lengths and max(lengths) >= _MAX_LENGTH):
        return None
    return max(lengths, default=0)


@lru_cache(maxsize=4096)
def _cubes(pattern: str, length: int) -> list[tuple[Cube, int]] | None:
    """The cubes of ``pattern`` for strings of ``length`` digits, each with the position from
    which it allows any digit."""
    lengths = _lengths(pattern, length)
    if lengths is None:
        return None
    found = []
    for cube in lengths.get(length, []):
        free = length
        while free and cube[free - 1] == _DIGITS:
            free -= 1
        found.append((cube, free))
    return found


@lru_cache(maxsize=1024)
def _lengths(pattern: str, longest: int) -> _Lengths | None:
    if not ANALYSABLE:
        return None
    try:
        return _sequence(sre_parse.parse(pattern), longest)
    except (_TooComplex, RecursionError):
        return None


def _sequence(items: Any, longest: int) -> _Lengths:
    result: _Lengths = {0: [()]}
    for op, value in items:
        result = _concatenated(result, _item(op, value, longest), longest)
    return result


def _item(op: Any, value: Any, longest: int) -> _Lengths:
    if op is c.LITERAL:
        return {1: [(frozenset({chr(value)}),)]} if chr(value) in _DIGITS else {}
    if op is c.IN:
        allowed = _charset(value)
        return {1: [(allowed,)]} if allowed else {}
    if op is c.ANY:
        return {1: [(_DIGITS,)]}
    if op is c.SUBPATTERN:
        _, added, removed, inner = value
        if added or removed:
            raise _TooComplex
        return _sequence(inner, longest)
    if op is c.BRANCH:
        merged: _Lengths = {}
        for alternative in value[1]:
            _merge(merged, _sequence(alternative, longest))
        return merged
    if op in (c.MAX_REPEAT, c.MIN_REPEAT):
        return _repeated(*value, longest)
    raise _TooComplex


def _charset(items: Any) -> frozenset[str]:
    chosen: set[str] = set()
    negate = False
    for op, value in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            chosen.add(chr(value))
        elif op is c.RANGE:
            chosen.update(map(chr, range(value[0], value[1] + 1)))
        elif op is c.CATEGORY and value is c.CATEGORY_DIGIT:
            chosen.update(_DIGITS)
        else:
            raise _TooComplex
    return frozenset(_DIGITS - chosen if negate else _DIGITS & chosen)


def _repeated(least: int, most: int, inner: Any, longest: int) -> _Lengths:
    once = _sequence(inner, longest)
    if 0 in once:  # a piece that can match nothing: its repetitions are not worth untangling
        raise _TooComplex
    result: _Lengths = {0: [()]} if least == 0 else {}
    current: _Lengths = {0: [()]}
    times = 0
    while current and times < min(most, longest):
        current = _concatenated(current, once, longest)
        times += 1
        if times >= least:
            _merge(result, current)
    return result


def _concatenated(left: _Lengths, right: _Lengths, longest: int) -> _Lengths:
    result: _Lengths = {}
    for left_length, left_cubes in left.items():
        for right_length, right_cubes in right.items():
            if left_length + right_length <= longest:
                cubes = [a + b for a in left_cubes for b in right_cubes]
                _merge(result, {left_length + right_length: cubes})
    return result


def _merge(into: _Lengths, more: _Lengths) -> None:
    for length, cubes in more.items():
        into.setdefault(length, []).extend(cubes)
        if len(into[length]) > _MAX_CUBES:
            raise _TooComplex
