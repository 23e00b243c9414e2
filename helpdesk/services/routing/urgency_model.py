"""A small linear model that backs up the phrase lists for the weightiest intents (issue 16).

Phrase lists and compositions recognise what they were written for; fraud told in new words
slips through. The model reads the same tokens as the phrase matcher, cut to their first
few letters (a cheap stem that works across the five languages: "transferencia",
"transfer", "transférer" are all "trans") plus pairs of neighbouring stems, and adds one
learned weight per feature: a logistic regression, trained by `python -m
bench.urgency_train` from the tuning half of the labelled set (bench/data), shipped as
`helpdesk/defaults/urgency_model.json` (a few hundred KB, loads in milliseconds, a few
microseconds per message). Its contributions are explainable: the words that added most.

Pure: no I/O beyond reading the model file once.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["IntentModel", "LinearIntent", "features_of", "load_model", "train_logistic"]


def features_of(toks: Sequence[str], stem_chars: int) -> dict[str, str]:
    """{feature: the words of the text that produced it}: stems and pairs of stems."""
    stems = [(t[:stem_chars], t) for t in toks if not t.isdigit() and len(t) > 1]
    out: dict[str, str] = {}
    for stem, word in stems:
        out.setdefault(stem, word)
    for (a, wa), (b, wb) in zip(stems, stems[1:], strict=False):
        out.setdefault(f"{a}_{b}", f"{wa} {wb}")
    return out


@dataclass(frozen=True)
class LinearIntent:
    bias: float
    weights: Mapping[str, float]

    def probability(self, feats: Iterable[str]) -> float:
        z = self.bias + sum(self.weights.get(f, 0.0) for f in feats)
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass(frozen=True)
class IntentModel:
    stem_chars: int
    intents: Mapping[str, LinearIntent]
    about: str = ""

    def predict(self, toks: Sequence[str]) -> dict[str, tuple[float, list[str]]]:
        """{intent: (probability, the words that added most, strongest first)}."""
        feats = features_of(toks, self.stem_chars)
        out: dict[str, tuple[float, list[str]]] = {}
        for intent, model in self.intents.items():
            p = model.probability(feats)
            helped = sorted(((model.weights.get(f, 0.0), words) for f, words in feats.items()),
                            reverse=True)
            shown = [words for w, words in helped if w > 0 and _telling(words)]
            out[intent] = (p, shown[:3])
        return out


def _telling(words: str) -> bool:
    """Worth showing a person: not made of short function words only ("in", "em")."""
    return any(len(w) > 2 for w in words.split())


@lru_cache(maxsize=4)
def load_model(path: str) -> IntentModel:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return IntentModel(
        stem_chars=int(data["stem_chars"]),
        intents={str(name): LinearIntent(float(m["bias"]),
                                         {str(k): float(v) for k, v in m["weights"].items()})
                 for name, m in data["intents"].items()},
        about=str(data.get("_about", "")),
    )


def train_logistic(samples: Sequence[tuple[Iterable[str], bool]], epochs: int = 60,
                   rate: float = 0.5, l2: float = 1e-3, seed: int = 16) -> LinearIntent:
    """Logistic regression by stochastic gradient descent, classes weighted to balance,
    deterministic for a given seed and sample order."""
    import random

    data = [(tuple(sorted(set(f))), 1.0 if y else 0.0) for f, y in samples]
    positives = sum(y for _, y in data)
    negatives = len(data) - positives
    if not positives or not negatives:
        raise ValueError("training needs examples of both classes")
    class_weight = {1.0: len(data) / (2 * positives), 0.0: len(data) / (2 * negatives)}
    weights: dict[str, float] = {}
    bias = 0.0
    rnd = random.Random(seed)
    for _ in range(epochs):
        rnd.shuffle(data)
        for feats, y in data:
            z = bias + sum(weights.get(f, 0.0) for f in feats)
            p = 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))
            grad = (p - y) * class_weight[y]
            bias -= rate * grad * 0.1
            for f in feats:
                w = weights.get(f, 0.0)
                weights[f] = w - rate * (grad + l2 * w)
    return LinearIntent(bias, weights)
