"""Parsing of the two unit vocabularies users write in config files and annotations.

Durations look like Go's (`90s`, `5m`, `4h`, `1h30m`) plus days (`7d`), as the original ORCA
accepted them for `maxInstanceLifetime` and `orca.research/max-lifetime`. Quantities are
Kubernetes resource quantities (`500m`, `16Gi`, `1Ti`, `2`). Both are pure functions: they raise
`ValueError` with a message that says what is allowed, and callers add *where* the value came from.

Every duration ORCA prints (messages, events, summaries, settings, reports) goes through
`format_duration`, in the same words users write; ages in tables through `format_age`, kubectl's
one-unit `AGE`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
DURATION_HELP = "a duration such as 90s, 5m, 4h, 1h30m or 7d"


def parse_duration(text: str) -> timedelta:
    """Parse `4h`, `7d`, `1h30m`, `90s`, `250ms` into a timedelta; reject anything else."""
    value = text.strip()
    if not value:
        raise ValueError(f"empty duration; expected {DURATION_HELP}")
    position = 0
    total = timedelta()
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(value):
        raise ValueError(f"{text!r} is not a duration; expected {DURATION_HELP}")
    return total


def format_duration(duration: timedelta) -> str:
    """The inverse of `parse_duration` for whole seconds: 5400 s → `1h30m`."""
    seconds = int(duration.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_age(age: timedelta) -> str:
    """kubectl's AGE: the largest unit only, `45s`, `12m`, `5h`, `3d` (days from two days up)."""
    seconds = max(int(age.total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "d" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^([+-]?\d+(?:\.\d*)?|[+-]?\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE]([+-]?\d+))?$"
)
QUANTITY_HELP = "a Kubernetes quantity such as 2, 500m, 16Gi or 1Ti"


def parse_quantity(text: str | int | float) -> Decimal:
    """Parse a Kubernetes resource quantity into its value in base units (cores, bytes, devices)."""
    if isinstance(text, int | float):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a quantity; expected {QUANTITY_HELP}")
    number, suffix, exponent = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation as error:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{text!r} is not a quantity; expected {QUANTITY_HELP}") from error
    if exponent is not None:
        return value.scaleb(int(exponent))
    if suffix in _BINARY_SUFFIXES:
        return value * _BINARY_SUFFIXES[suffix]
    return value * _DECIMAL_SUFFIXES[suffix or ""]


GIB = Decimal(2**30)
MIB = Decimal(2**20)


def format_number(value: Decimal | int | float) -> str:
    """A number as people write it in messages: `900`, `0.5`, `64` — never `9E+2` or `64.000`
    (what `str()` of a normalized or scaled Decimal gives)."""
    text = f"{Decimal(str(value)).normalize():f}"
    return "0" if text in ("-0", "0") else text
