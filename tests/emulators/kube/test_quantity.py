from fractions import Fraction

import pytest

from orca_devstack.emulators.kube.quantity import (
    InvalidQuantityError,
    canonical_quantity,
    parse_quantity,
)


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


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        (1, "1"),
        ("1", "1"),
        (1000, "1k"),
        ("1000m", "1"),
        ("1500m", "1500m"),
        ("1.5", "1500m"),
        (0.5, "500m"),
        ("0.1n", "1n"),
        ("0", "0"),
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("0.5Gi", "512Mi"),
        ("1.5Ki", "1536"),
        ("0.5Ki", "512"),
        ("1000Mi", "1000Mi"),
        ("128974848000", "128974848k"),
        ("2e3", "2e3"),
        ("1e-3", "1e-3"),
        ("12E-1", "1200e-3"),
        ("500M", "500M"),
    ],
)
def test_canonical_quantity_is_what_the_api_server_returns(
    written: str | int | float, stored: str
) -> None:
    assert canonical_quantity(written) == stored


@pytest.mark.parametrize("value", [True, None, {"cpu": 1}, "1.5.2"])
def test_canonical_quantity_rejects(value: object) -> None:
    with pytest.raises(InvalidQuantityError):
        canonical_quantity(value)  # type: ignore[arg-type]
