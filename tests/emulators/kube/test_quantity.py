from fractions import Fraction

import pytest

from orca_devstack.emulators.kube.quantity import InvalidQuantityError, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Fraction(1)),
        ("500m", Fraction(1, 2)),
        ("1500m", Fraction(3, 2)),
        ("0.1", Fraction(1, 10)),
        ("1Ki", Fraction(1024)),
        ("128Mi", Fraction(128 * 2**20)),
        ("2Gi", Fraction(2 * 2**30)),
        ("1Ti", Fraction(2**40)),
        ("1Ei", Fraction(2**60)),
        ("1k", Fraction(1000)),
        ("1M", Fraction(10**6)),
        ("1.5G", Fraction(15 * 10**8)),
        ("2T", Fraction(2 * 10**12)),
        ("1E", Fraction(10**18)),
        ("100n", Fraction(1, 10**7)),
        ("5u", Fraction(5, 10**6)),
        ("1e3", Fraction(1000)),
        ("12E-1", Fraction(6, 5)),
        ("2e+2", Fraction(200)),
        (".5", Fraction(1, 2)),
        ("-1", Fraction(-1)),
        (8, Fraction(8)),
        (0.25, Fraction(1, 4)),
    ],
)
def test_parse_quantity(text: str | int | float, expected: Fraction) -> None:
    assert parse_quantity(text) == expected


def test_parse_quantity_exact_sums() -> None:
    assert parse_quantity("0.1") + parse_quantity("0.2") == parse_quantity("300m")


@pytest.mark.parametrize("text", ["", "abc", "1KiB", "1 Gi", "1.2.3", "Mi", "1e"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(InvalidQuantityError):
        parse_quantity(text)
