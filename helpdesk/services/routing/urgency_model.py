"""A small linear model that backs up the phrase lists for the weightiest intents (issue 16).

Phrase lists and compositions recognise what they were written for; fraud told in new words
slips through. The model reads the same tokens as the phrase matcher and describes each
word by

- its stem: the first few letters (a cheap stem that works across the five languages:
  "transferencia", "transfer", "transférer" are all "trans"),
- its character n-grams, the word framed by `<` and `>` ("<hack", "acke", "ked>"), which
  line up inflections and compounds ("gehackt", "hackeado", "piraté"/"piratage" share
  pieces),
- and pairs of neighbouring stems ("not me", "no fui").

One logistic regression per intent adds one learned weight per feature present: trained by
`python -m bench.urgency_train` from the tuning half of the labelled set plus the extra
training messages (bench/data), shipped as `helpdesk/defaults/urgency_model.json` (a few
hundred KB, loads in milliseconds, tens of microseconds per message). Its contributions are
explainable: each feature belongs to a word (a pair to both of its words), so the reason
names the words whose features added most.

Pure: no I/O beyond reading the model file once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["IntentModel", "LinearIntent", "features_of", "load_model", "word_features"]

_WORD_CACHE_MAX = 50_000


def word_features(word: str, stem_chars: int, ngrams: tuple[int, ...]) -> tuple[str, ...]:
    """The features of one normalized word: its stem and its framed character n-grams
    (prefixed `#` so they never collide with a stem)."""
    return _word_features(word, stem_chars, ngrams)


@lru_cache(maxsize=_WORD_CACHE_MAX)
def _word_features(word: str, stem_chars: int, ngrams: tuple[int, ...]) -> tuple[str, ...]:
    out = [word[:stem_chars]]
    framed = f"<{word}>"
    for n in ngrams:
        if len(framed) > n:  # a word shorter than the n-gram is already its stem
            out.extend(f"#{framed[i:i + n]}" for i in range(len(framed) - n + 1))
    return tuple(dict.fromkeys(out))


def features_of(toks: Sequence[str], stem_chars: int, ngrams: tuple[int, ...] = (),
                stop_words: frozenset[str] = frozenset()
                ) -> list[tuple[str, tuple[str, ...]]]:
    """(feature, the words of the text that produced it) for each distinct word's stem and
    n-grams, then each distinct pair of neighbouring stems. A feature two different words
    share counts twice. Digits and one-letter tokens are left out; a stop word (articles,
    pronouns, prepositions: "un", "yo", "mi", "the") has no features of its own and only
    counts within a pair ("yo no", "not me")."""
    words = [t for t in toks if not t.isdigit() and len(t) > 1]
    out = [(feature, (word,)) for word in dict.fromkeys(words) if word not in stop_words
           for feature in _word_features(word, stem_chars, ngrams)]
    pairs: dict[str, tuple[str, str]] = {}
    for a, b in zip(words, words[1:], strict=False):
        pairs.setdefault(f"{a[:stem_chars]}_{b[:stem_chars]}", (a, b))
    out.extend(pairs.items())
    return out


@dataclass(frozen=True)
class LinearIntent:
    bias: float
    weights: Mapping[str, float]


class IntentModel:
    """Logistic regressions over the same features, one per intent. A message's score for
    an intent is bias + (sum of its features' weights) / sqrt(number of features) when
    `rsqrt` (so a long message does not outvote a short one), else the plain sum."""

    def __init__(self, stem_chars: int, names: Sequence[str], biases: Sequence[float],
                 table: Mapping[str, Sequence[float]], ngrams: tuple[int, ...] = (),
                 rsqrt: bool = False, about: str = "",
                 stop_words: frozenset[str] = frozenset()) -> None:
        """`table`: {feature: one weight per intent, in the order of `names`}."""
        self.stem_chars = stem_chars
        self.ngrams = tuple(ngrams)
        self.rsqrt = rsqrt
        self.about = about
        self.stop_words = frozenset(stop_words)
        self.intents = tuple(names)
        self._names = self.intents
        self._biases = tuple(float(b) for b in biases)
        self._table = {f: tuple(ws) for f, ws in table.items()}
        self._zero = (0.0,) * len(self._names)
        self._words: dict[str, tuple[int, tuple[float, ...]]] = {}

    @classmethod
    def from_intents(cls, stem_chars: int, intents: Mapping[str, LinearIntent],
                     ngrams: tuple[int, ...] = (), rsqrt: bool = False,
                     stop_words: frozenset[str] = frozenset()) -> IntentModel:
        names = list(intents)
        table: dict[str, list[float]] = {}
        for k, model in enumerate(intents.values()):
            for feature, weight in model.weights.items():
                table.setdefault(feature, [0.0] * len(names))[k] = weight
        return cls(stem_chars, names, [m.bias for m in intents.values()], table, ngrams, rsqrt,
                   stop_words=stop_words)

    def _word(self, word: str) -> tuple[int, tuple[float, ...]]:
        """(number of features, summed weights per intent) of one word, remembered."""
        known = self._words.get(word)
        if known is not None:
            return known
        feats = _word_features(word, self.stem_chars, self.ngrams)
        sums = [0.0] * len(self._names)
        for feature in feats:
            weights = self._table.get(feature)
            if weights is not None:
                for k, w in enumerate(weights):
                    sums[k] += w
        if len(self._words) >= _WORD_CACHE_MAX:
            self._words.clear()
        known = self._words[word] = (len(feats), tuple(sums))
        return known

    def predict(self, toks: Sequence[str]) -> dict[str, tuple[float, list[str]]]:
        """{intent: (probability, the words that added most, strongest first)}."""
        words = [t for t in toks if not t.isdigit() and len(t) > 1]
        k_range = range(len(self._names))
        count = 0
        total = [0.0] * len(self._names)
        by_word: dict[str, list[float]] = {}
        stop = self.stop_words
        for word in dict.fromkeys(words):
            if word in stop:
                by_word[word] = [0.0] * len(self._names)
                continue
            n, sums = self._word(word)
            count += n
            by_word[word] = list(sums)
            for k in k_range:
                total[k] += sums[k]
        stem = self.stem_chars
        seen: set[str] = set()
        for a, b in zip(words, words[1:], strict=False):
            pair = f"{a[:stem]}_{b[:stem]}"
            if pair in seen:
                continue
            seen.add(pair)
            count += 1
            weights = self._table.get(pair, self._zero)
            for k in k_range:
                total[k] += weights[k]
                by_word[a][k] += weights[k] / 2
                by_word[b][k] += weights[k] / 2
        scale = 1.0 / math.sqrt(count) if self.rsqrt and count else 1.0
        out: dict[str, tuple[float, list[str]]] = {}
        for k, name in enumerate(self._names):
            z = self._biases[k] + total[k] * scale
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            shown = sorted(((v[k], word) for word, v in by_word.items()
                            if v[k] > 0 and len(word) > 2 and word not in stop),
                           key=lambda item: (-item[0], item[1]))
            out[name] = (p, [word for _, word in shown[:3]])
        return out


@lru_cache(maxsize=4)
def load_model(path: str) -> IntentModel:
    """Read a model file: {"intents": [names], "biases": [one per intent], "weights":
    {feature: [one weight per intent]}, "stem_chars", "ngrams", "scale", "stop_words"}."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    names = [str(name) for name in data["intents"]]
    table = data["weights"]
    if any(len(ws) != len(names) for ws in table.values()) or len(data["biases"]) != len(names):
        raise KeyError("every feature needs one weight per intent")
    return IntentModel(
        stem_chars=int(data["stem_chars"]), names=names, biases=data["biases"], table=table,
        ngrams=tuple(int(n) for n in data.get("ngrams", ())),
        rsqrt=data.get("scale") == "rsqrt", about=str(data.get("_about", "")),
        stop_words=frozenset(str(w) for w in data.get("stop_words", ())))
