"""Text analysis for urgency scoring: tokens, phrase matching, a multilingual sentiment lexicon.

Pure and fast: a message is normalized (casefold, accents stripped) and split into word
tokens once; phrases are looked up by their first token, so the cost grows with the length
of the text, not with the number of phrases. Callers pass a bounded prefix of the text.

Phrase syntax (the operator's config uses it): words separated by spaces, case and accents
ignored; `word*` matches any word starting with `word` (at least 3 letters before the star);
`...` skips up to five words. Punctuation splits words, so "can't" is "can t" both in the
phrase and in the text.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_WORD = re.compile(r"[^\W_]+")
_LETTERS = re.compile(r"[^\W\d_]{3,}")
GAP = "..."
_CACHE_MAX = 50_000  # distinct tokens remembered per table (a bounded memo, then reset)
GAP_MAX = 5


def normalize_text(text: str) -> str:
    """Casefold, strip accents and unify apostrophes so matching ignores case and accents."""
    folded = text.casefold().translate(_APOSTROPHES)
    if folded.isascii():
        return folded
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def tokens(text: str) -> list[str]:
    """The normalized word tokens of text (letters and digits; punctuation splits)."""
    return _WORD.findall(normalize_text(text))


def phrase_tokens(phrase: str) -> tuple[str, ...]:
    """A config phrase as pattern tokens: words, `prefix*` words and `...` gaps."""
    out: list[str] = []
    for part in phrase.split():
        if part == GAP:
            out.append(GAP)
            continue
        star = part.endswith("*")
        words = _WORD.findall(normalize_text(part.rstrip("*")))
        if not words:
            continue
        if star:
            if len(words[-1]) < 3:
                raise ValueError(f"phrase {phrase!r}: a prefix needs at least 3 letters")
            words[-1] += "*"
        out.extend(words)
    while out and out[0] == GAP:
        out.pop(0)
    while out and out[-1] == GAP:
        out.pop()
    if not out:
        raise ValueError(f"phrase {phrase!r} has no words")
    return tuple(out)


def _word_matches(pattern: str, token: str) -> bool:
    if pattern.endswith("*"):
        return token.startswith(pattern[:-1])
    return token == pattern


def _match_from(pattern: tuple[str, ...], p: int, toks: Sequence[str], t: int) -> int:
    """End index (exclusive) of pattern[p:] matched at toks[t:], or -1."""
    while p < len(pattern):
        word = pattern[p]
        if word == GAP:
            for skip in range(GAP_MAX + 1):
                end = _match_from(pattern, p + 1, toks, t + skip)
                if end >= 0:
                    return end
            return -1
        if t >= len(toks) or not _word_matches(word, toks[t]):
            return -1
        p, t = p + 1, t + 1
    return t


@dataclass(frozen=True)
class _Entry:
    label: str
    phrase: str
    pattern: tuple[str, ...]


class PhraseMatcher:
    """Finds which labelled phrases occur in a token list (each phrase reported once)."""

    def __init__(self, phrases: Mapping[str, Iterable[str]]) -> None:
        self._exact: dict[str, list[_Entry]] = {}
        self._prefix: dict[str, list[_Entry]] = {}
        lengths: set[int] = set()
        for label, items in phrases.items():
            for phrase in items:
                pattern = phrase_tokens(phrase)
                entry = _Entry(label, phrase, pattern)
                first = pattern[0]
                if first.endswith("*"):
                    self._prefix.setdefault(first[:-1], []).append(entry)
                    lengths.add(len(first) - 1)
                else:
                    self._exact.setdefault(first, []).append(entry)
        for bucket in (*self._exact.values(), *self._prefix.values()):
            bucket.sort(key=lambda e: -len(e.pattern))  # longest phrase first at a position
        self._lengths = tuple(sorted(lengths))
        self._cache: dict[str, tuple[_Entry, ...]] = {}

    def _candidates(self, token: str) -> tuple[_Entry, ...]:
        found = self._cache.get(token)
        if found is None:
            found = tuple(self._exact.get(token, ()))
            for n in self._lengths:
                if len(token) >= n:
                    more = self._prefix.get(token[:n])
                    if more:
                        found += tuple(more)
            if len(self._cache) > _CACHE_MAX:
                self._cache.clear()
            self._cache[token] = found
        return found

    def __len__(self) -> int:
        return sum(len(v) for v in self._exact.values()) + sum(
            len(v) for v in self._prefix.values())

    def find(self, toks: Sequence[str], phrases: bool = False) -> dict[str, list[str]]:
        """{label: [the words each phrase matched (or with `phrases`, the phrase as
        configured), in order of appearance]}.

        At a position the longest phrase wins, and a shorter phrase of the same label
        inside a match already made is not counted again ("site is down" is not also
        "is down")."""
        found: dict[str, list[str]] = {}
        covered: dict[str, int] = {}
        cache = self._cache
        for t, token in enumerate(toks):
            candidates = cache.get(token)
            if candidates is None:
                candidates = self._candidates(token)
            if not candidates:
                continue
            for entry in candidates:
                if t < covered.get(entry.label, 0):
                    continue
                end = t + 1 if len(entry.pattern) == 1 else _match_from(entry.pattern, 1, toks,
                                                                        t + 1)
                if end < 0:
                    continue
                covered[entry.label] = end
                words = entry.phrase if phrases else _display(toks[t:end])
                seen = found.setdefault(entry.label, [])
                if words not in seen:
                    seen.append(words)
        return found

    def spans(self, toks: Sequence[str]) -> list[tuple[int, int, str]]:
        """(start, end, the words matched) of each phrase occurrence, longest first at a
        position, occurrences not overlapping."""
        out: list[tuple[int, int, str]] = []
        t = 0
        while t < len(toks):
            end = -1
            for entry in self._candidates(toks[t]):
                end = t + 1 if len(entry.pattern) == 1 else _match_from(entry.pattern, 1,
                                                                        toks, t + 1)
                if end >= 0:
                    break
            if end >= 0:
                out.append((t, end, _display(toks[t:end])))
                t = end
            else:
                t += 1
        return out


def _display(words: Sequence[str]) -> str:
    return " ".join(words).replace(" t ", "'t ")


class WordTable:
    """Word → value lookups with `prefix*` entries (for lexicons and word sets)."""

    def __init__(self, values: Mapping[str, float]) -> None:
        self._exact: dict[str, float] = {}
        self._prefix: dict[str, float] = {}
        for word, value in values.items():
            key = normalize_text(word.strip())
            if key.endswith("*"):
                self._prefix[key[:-1]] = float(value)
            else:
                self._exact[key] = float(value)
        self._lengths = tuple(sorted({len(k) for k in self._prefix}, reverse=True))
        self._cache: dict[str, float | None] = {}

    def get(self, token: str) -> float | None:
        if token in self._cache:
            return self._cache[token]
        value = self._exact.get(token)
        if value is None:
            for n in self._lengths:  # longest prefix first
                if len(token) >= n:
                    value = self._prefix.get(token[:n])
                    if value is not None:
                        break
        if len(self._cache) > _CACHE_MAX:
            self._cache.clear()
        self._cache[token] = value
        return value

    def __contains__(self, token: str) -> bool:
        return self.get(token) is not None


@dataclass(frozen=True)
class SentimentLexicon:
    words: WordTable
    negations: frozenset[str]
    boosters: frozenset[str]
    negation_window: int
    negated_factor: float
    booster_factor: float
    caps_factor: float
    exclamation_step: float
    exclamation_max: int
    alpha: float


def build_lexicon(section: Mapping) -> SentimentLexicon:
    """The sentiment section of the config; the per-language lexicons are merged (a word in
    several languages takes the mean of its values)."""
    merged: dict[str, list[float]] = {}
    for words in section["lexicon"].values():
        for word, value in words.items():
            merged.setdefault(normalize_text(word), []).append(float(value))
    return SentimentLexicon(
        words=WordTable({w: sum(v) / len(v) for w, v in merged.items()}),
        negations=frozenset(normalize_text(w) for w in section["negations"]),
        boosters=frozenset(normalize_text(w) for w in section["boosters"]),
        negation_window=int(section["negation_window"]),
        negated_factor=float(section["negated_factor"]),
        booster_factor=float(section["booster_factor"]),
        caps_factor=float(section["caps_factor"]),
        exclamation_step=float(section["exclamation_step"]),
        exclamation_max=int(section["exclamation_max"]),
        alpha=float(section["alpha"]),
    )


def sentiment(toks: Sequence[str], raw_words: set[str], exclamations: int,
              lexicon: SentimentLexicon) -> tuple[float, list[str]]:
    """A VADER-style compound score in -1..1 and the words that carried it (most negative
    first). `raw_words` are the normalized tokens written in capitals (emphasis)."""
    total = 0.0
    carried: list[tuple[float, str]] = []
    window = lexicon.negation_window
    for i, token in enumerate(toks):
        value = lexicon.words.get(token)
        if value is None:
            continue
        if i and toks[i - 1] in lexicon.boosters:
            value *= lexicon.booster_factor
        if token in raw_words:
            value *= lexicon.caps_factor
        if any(t in lexicon.negations for t in toks[max(0, i - window):i]):
            value *= lexicon.negated_factor
        total += value
        carried.append((value, token))
    if total and exclamations:
        bump = min(exclamations, lexicon.exclamation_max) * lexicon.exclamation_step
        total += bump if total > 0 else -bump
    compound = total / math.sqrt(total * total + lexicon.alpha) if total else 0.0
    carried.sort()
    words = [w for v, w in carried if v < 0] if compound < 0 else [w for v, w in carried[::-1]
                                                                   if v > 0]
    return compound, list(dict.fromkeys(words))


def caps_words(text: str, acronyms: frozenset[str]) -> list[str]:
    """Words of 3+ letters written in capitals (shouting), acronyms excepted."""
    return [w for w in _LETTERS.findall(text)
            if w.isupper() and normalize_text(w) not in acronyms]
