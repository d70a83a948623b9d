"""Scrubbing held secret values: every form of every held value, whatever their number, the
longest form first, and released values out once the patterns are rebuilt."""

from __future__ import annotations

import base64
import re
import secrets

from hypothesis import given
from hypothesis import strategies as st

from orca.secret_values import REDACTED, SecretValues, escaped_forms, trie_pattern


def test_the_trie_matches_exactly_the_forms_longest_first() -> None:
    forms = ["abcd", "abcdef", "abxy", "zz99", "a.c+"]
    pattern = re.compile(trie_pattern(forms))

    assert pattern.findall("abcdefg abcd- abxy a.c+ abz zz99") == [
        "abcdef",
        "abcd",
        "abxy",
        "a.c+",
        "zz99",
    ]
    assert pattern.search("abc abx zz9 aXc+") is None


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20), st.text(max_size=60))
def test_the_trie_finds_what_an_alternation_finds(forms: list[str], text: str) -> None:
    ordered = sorted(set(forms), key=len, reverse=True)
    alternation = re.compile("|".join(map(re.escape, ordered)))
    trie = re.compile(trie_pattern(forms))
    # Both replace every occurrence; where forms overlap the two may cut differently, but
    # neither leaves a form in the result.
    for scrubbed in (alternation.sub("\x00", text), trie.sub("\x00", text)):
        assert not any(form in scrubbed for form in forms if "\x00" not in form)


def test_long_secrets_of_both_kinds_are_scrubbed() -> None:
    token = "MII" + "A" * 20_000  # token characters only: the set lookup
    pem = "-----BEGIN PRIVATE KEY-----\n" + "B" * 20_000 + "\n-----END PRIVATE KEY-----"
    values = SecretValues()
    values.hold([token, pem])
    assert values.pattern_count() == 1  # only the PEM needs a regex (no recursion per char)
    assert values.scrub(f"cert={token};") == f"cert={REDACTED};"
    assert values.scrub(f"key: {pem}.") == f"key: {REDACTED}."


def test_a_password_with_spaces_and_a_token_inside_it_are_both_redacted() -> None:
    values = SecretValues()
    values.hold(["open sesame 1234", "sesame"])
    assert values.scrub("pw=open sesame 1234, again sesame") == f"pw={REDACTED}, again {REDACTED}"


def test_overlapping_tokens_are_redacted_as_one_span() -> None:
    values = SecretValues()
    values.hold(["abcdef12", "ef123456"])
    assert values.scrub("x abcdef123456 y") == f"x {REDACTED} y"


def test_thousands_of_held_keys_are_all_scrubbed_in_every_form() -> None:
    values = SecretValues()
    keys = [secrets.token_hex(32) for _ in range(3000)]
    for key in keys:  # one at a time, as the status feed learns them
        values.hold([key])
        assert key not in values.scrub(f"key {key}")
    line = " ".join(f"{k} {base64.b64encode(k.encode()).decode()} {k!r}" for k in keys[::97])
    scrubbed = values.scrub(line)
    assert not any(k in scrubbed for k in keys)
    assert not any(base64.b64encode(k.encode()).decode() in scrubbed for k in keys)
    assert values.scrub("nothing secret here") == "nothing secret here"


def test_a_released_value_is_redacted_no_more_once_the_patterns_are_rebuilt() -> None:
    values = SecretValues()
    keep, drop = "keep-this-secret", "drop-this-one"
    values.hold([keep, drop])
    values.release([drop])
    assert values.scrub(keep) == REDACTED
    values.release([keep])
    assert values.held_count() == 0
    assert values.scrub(f"{keep} {drop}") == f"{keep} {drop}"


def test_a_value_held_twice_stays_until_both_release_it() -> None:
    values = SecretValues()
    values.hold(["shared-secret"])
    values.hold(["shared-secret"])
    values.release(["shared-secret"])
    assert values.scrub("shared-secret") == REDACTED
    values.release(["shared-secret"])
    assert values.scrub("shared-secret") == "shared-secret"


def test_escaped_forms_cover_json_repr_and_base64() -> None:
    forms = escaped_forms('p"a\\ss')
    assert {'p"a\\ss', 'p\\"a\\\\ss', base64.b64encode(b'p"a\\ss').decode()} <= forms
