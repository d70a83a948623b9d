"""Shared fixtures live in tests/fixtures/ and are registered here."""

pytest_plugins = [
    "tests.fixtures.temporal",
    "tests.fixtures.aws",
    "tests.fixtures.kube",
    "tests.fixtures.dev_stack",
]
