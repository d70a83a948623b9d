"""Kubernetes resource quantities ("500m", "1Gi", "2e3") as exact fractions.

The scheduler compares requests with allocatable amounts; doing it in exact arithmetic avoids the
rounding surprises floats would bring to "0.1" + "0.2" CPUs.
"""

from __future__ import annotations

import re
from fractions import Fraction

_BINARY_SUFFIXES = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}
_DECIMAL_SUFFIXES = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exponent>[eE][+-]?\d+)|(?P<decimal>[numkMGTPE]?))$"
)


class InvalidQuantityError(ValueError):
    """The string is not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> Fraction:
    """Return the exact value of a quantity: parse_quantity("1500m") == Fraction(3, 2)."""
    if isinstance(value, bool):
        raise InvalidQuantityError(f"quantities must be strings or numbers, not {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    match = _QUANTITY.match(value.strip())
    if match is None:
        raise InvalidQuantityError(
            f"quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}"
        )
    number = Fraction(match["number"])
    if match["binary"]:
        return number * _BINARY_SUFFIXES[match["binary"]]
    if match["exponent"]:
        return number * Fraction(10) ** int(match["exponent"][1:])
    return number * _DECIMAL_SUFFIXES[match["decimal"] or ""]


_DECIMAL_SUFFIX_BY_EXPONENT = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T"}
_DECIMAL_SUFFIX_BY_EXPONENT.update({15: "P", 18: "E"})
_BINARY_SUFFIX_BY_POWER = {1: "Ki", 2: "Mi", 3: "Gi", 4: "Ti", 5: "Pi", 6: "Ei"}


def canonical_quantity(value: str | int | float) -> str:
    """The string the API server stores and returns for a quantity, as apimachinery's
    `Quantity.String()` writes it: `1` → "1", `"1000m"` → "1", `"0.5Gi"` → "512Mi",
    `1000` → "1k", `"1.5"` → "1500m", `"2e3"` → "2e3".

    The format comes from how the value was written (a binary suffix → BinarySI, an exponent →
    DecimalExponent, else DecimalSI); JSON numbers arrive as their text. Precision below one
    nano-unit rounds up, as the API server rounds. BinarySI values below 1024 or not a whole
    number of units are written in DecimalSI."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidQuantityError(f"quantities must be strings or numbers, not {value!r}")
    text = value if isinstance(value, str) else repr(value)
    amount = parse_quantity(text)
    match = _QUANTITY.match(text.strip())
    assert match is not None  # parse_quantity accepted it
    if match["binary"] and abs(amount) >= 1024 and amount.denominator == 1:
        mantissa, power = int(amount), 0
        while power < 6 and mantissa % 1024 == 0:
            mantissa //= 1024
            power += 1
        return f"{mantissa}{_BINARY_SUFFIX_BY_POWER.get(power, '')}"
    # Round up to whole nano-units, then take the largest exponent (a multiple of 3) that keeps
    # the mantissa whole.
    nanos = -((-amount * 10**9) // 1)
    mantissa, exponent = int(nanos), -9
    if mantissa == 0:
        return "0"
    while mantissa % 1000 == 0 and (match["exponent"] or exponent < 18):
        mantissa //= 1000
        exponent += 3
    if match["exponent"]:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX_BY_EXPONENT[exponent]}"
