"""The secret values a process holds right now, and scrubbing them out of text at any scale.

`orca.logging` scrubs every line the process writes of the values held here: the secrets an
activity is handling and every status key the container status feed knows (one per monitored
pod, so thousands in a large burst). Neither the cost of a line nor the cost of a change may
grow with the number of values held. (The first version compiled one alternation of every form
at every change: a 200-pod profile spent a tenth of the worker's time in `re`'s parser, and the
alternation tries every literal at every position of every line.)

Each value is held in its escaped forms (`escaped_forms`), split in two kinds:

- **Token forms**, made only of `TOKEN_CHARACTERS` (hex keys, base64, API tokens, most
  generated secrets): kept in a set, no regex compiled. A scrub finds the text's runs of token
  characters with one fixed regex and looks up each substring of each held length in the set:
  O(run length * distinct lengths) per run, nothing per held value, and runs shorter than the
  shortest held form (most words of most lines) are skipped at once. Overlapping hits are merged,
  so the longest covering span is redacted.
- **Other forms** (with spaces, quotes, backslashes…): compiled as a *trie* regex
  (`trie_pattern`; at each position the regex follows one branch per character, greedy, so the
  longest form wins) lazily at the next scrub, into *runs*: the forms added since the last
  compile become a new small pattern, and the newest runs merge while the newest is at least
  half the size of the one before it (the carries of a binary counter), so each is recompiled
  O(log n) times and a scrub applies O(log n) patterns. A released value stays in its run
  (redacted a little longer) until the run merges or most of what the runs hold is released.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

Trie = dict[str, "Trie"]

REDACTED = "[REDACTED]"
MIN_REDACTED_LENGTH = 4
"""Shorter values are not scrubbed by value (they would erase half of every line)."""
TOKEN_CHARACTERS = "A-Za-z0-9+/=_.-"
"""The characters of a token form (a regex character-class body)."""
_TOKEN_FORM = re.compile(f"[{TOKEN_CHARACTERS}]+")
_TOKEN_RUN = re.compile(f"[{TOKEN_CHARACTERS}]{{{MIN_REDACTED_LENGTH},}}")
_STALE_MIN = 32
"""Released values may stay in the patterns (redacted a while longer) up to this many, or half
of those held, before everything is recompiled."""


def escaped_forms(value: str) -> frozenset[str]:
    """The ways a value can appear in a line: raw, JSON- and repr-escaped (also nested, as in
    the repr of a JSON body), and base64 (Secret data, secret files)."""
    forms = {value}
    for _ in range(2):
        for form in list(forms):
            forms.add(json.dumps(form)[1:-1])
            forms.add(repr(form)[1:-1])
    raw = value.encode("utf-8", errors="replace")
    forms.add(base64.b64encode(raw).decode("ascii"))
    return frozenset(form for form in forms if len(form) >= MIN_REDACTED_LENGTH)


def trie_pattern(forms: Iterable[str]) -> str:
    """A regex matching any of `forms`, longest first, as a trie of non-capturing groups."""
    root: Trie = {}
    end = ""  # the key that marks "a form ends here" (no character is the empty string)
    for form in forms:
        node = root
        for char in form:
            node = node.setdefault(char, {})
        node[end] = {}

    def emit(node: Trie) -> str:
        parts: list[str] = []
        while True:  # a chain of single children: literal text, no recursion per character
            branches = sorted(k for k in node if k != end)
            if len(branches) != 1 or end in node:
                break
            parts.append(re.escape(branches[0]))
            node = node[branches[0]]
        branches = sorted(k for k in node if k != end)
        if branches:
            alternatives = [re.escape(char) + emit(node[char]) for char in branches]
            group = alternatives[0] if len(alternatives) == 1 else f"(?:{'|'.join(alternatives)})"
            if end in node:  # a form ends here, and longer ones go on: greedy, longest wins
                group = f"(?:{group})?"
            parts.append(group)
        return "".join(parts)

    return emit(root)


class SecretValues:
    """The secret values in flight in this process; a value stays while any block holds it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()
        self._forms: dict[str, frozenset[str]] = {}
        self._tokens: Counter[str] = Counter()
        """Token forms of the held values, counted (two values may share a form)."""
        self._token_lengths: tuple[int, ...] = ()
        """The distinct lengths of `_tokens`, longest first."""
        self._runs: tuple[_Run, ...] = ()
        """Compiled patterns of the other forms, sizes falling geometrically: replaced as one
        tuple, so a concurrent scrub never sees half a change."""
        self._dirty = False

    def hold(self, values: Iterable[str]) -> list[str]:
        held = [v for v in values if isinstance(v, str) and len(v) >= MIN_REDACTED_LENGTH]
        with self._lock:
            for value in held:
                if value not in self._held:
                    forms = escaped_forms(value)
                    self._forms[value] = forms
                    tokens = [f for f in forms if _TOKEN_FORM.fullmatch(f)]
                    self._tokens.update(tokens)
                    if len(tokens) < len(forms):
                        self._dirty = True
            self._held.update(held)
            self._token_lengths = _lengths(self._tokens)
        return held

    def release(self, values: Iterable[str]) -> None:
        with self._lock:
            self._held.subtract(values)
            for value in [v for v, count in self._held.items() if count <= 0]:
                del self._held[value]
                forms = self._forms.pop(value, frozenset())
                tokens = [f for f in forms if _TOKEN_FORM.fullmatch(f)]
                self._tokens.subtract(tokens)
                if len(tokens) < len(forms):
                    self._dirty = True
            self._tokens = +self._tokens
            self._token_lengths = _lengths(self._tokens)

    def held_count(self) -> int:
        return len(self._held)

    def pattern_count(self) -> int:
        """How many compiled patterns a scrub applies now (O(log n) of the non-token forms)."""
        return len(self._current())

    def scrub(self, text: str) -> str:
        for run in self._current():
            text = run.pattern.sub(REDACTED, text)
        lengths = self._token_lengths
        if lengths:
            text = _TOKEN_RUN.sub(lambda m: self._scrub_run(m.group(), lengths), text)
        return text

    def _scrub_run(self, run: str, lengths: tuple[int, ...]) -> str:
        if len(run) < lengths[-1]:
            return run
        tokens = self._tokens
        spans: list[tuple[int, int]] = []
        for length in lengths:
            for start in range(len(run) - length + 1):
                if run[start : start + length] in tokens:
                    spans.append((start, start + length))
        if not spans:
            return run
        spans.sort()
        kept: list[str] = []
        position = 0
        for start, end in spans:
            if start >= position:  # a new span (overlapping ones extend the current one)
                kept.append(run[position:start])
                kept.append(REDACTED)
            position = max(position, end)
        kept.append(run[position:])
        return "".join(kept)

    def _current(self) -> tuple[_Run, ...]:
        if self._dirty:
            with self._lock:
                if self._dirty:
                    self._runs = self._recompiled()
                    self._dirty = False
        return self._runs

    def _recompiled(self) -> tuple[_Run, ...]:
        live = {f for forms in self._forms.values() for f in forms if not _TOKEN_FORM.fullmatch(f)}
        covered = set().union(*(run.forms for run in self._runs))
        if len(covered - live) > max(_STALE_MIN, len(live) // 2):
            return (_Run.of(live),) if live else ()  # mostly released: start over
        runs = [run for run in self._runs if run.forms & live]
        added = live - covered
        if added:
            runs.append(_Run.of(added))
        # Merge while the newest run is at least half the size of the one before it.
        while len(runs) >= 2 and 2 * len(runs[-1].forms) >= len(runs[-2].forms):
            newest, before = runs.pop(), runs.pop()
            runs.append(_Run.of((before.forms | newest.forms) & live))
        return tuple(runs)


def _lengths(tokens: Counter[str]) -> tuple[int, ...]:
    return tuple(sorted({len(t) for t in tokens}, reverse=True))


@dataclass(frozen=True)
class _Run:
    forms: frozenset[str]
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, forms: Iterable[str]) -> _Run:
        kept = frozenset(forms)
        return cls(kept, re.compile(trie_pattern(kept)))
