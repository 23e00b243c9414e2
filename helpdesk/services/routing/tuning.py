"""Agreement between urgency scores and the priorities people chose, and weight tuning.

Pure: a `Sample` is what the scorer saw (`UrgencyFeatures`) plus the priority a person set
(and optionally a neighbouring level that is also acceptable). `evaluate` counts agreement,
dangerous misses and false alarms; `tune` proposes new weights by coordinate descent over
the config's point values, re-scoring the stored features (no messages needed), and returns
them as an override an operator can read, edit and apply.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from helpdesk.services.routing.urgency import (
    UrgencyConfig,
    UrgencyFeatures,
    config_from_dict,
    score_features,
)

LEVELS = ("low", "normal", "high", "urgent")
RANK = {level: i for i, level in enumerate(LEVELS)}
# What a disagreement costs while tuning: missing danger is worst, crying wolf next.
DANGEROUS_COST = 6.0
FALSE_ALARM_COST = 3.0
OTHER_COST = 1.0
STEP = 5  # weights move on a grid of 5 points
MAX_ROUNDS = 6

# The weights `tune` may move: (path in the config, lowest, highest). Intents, channels and
# tiers are expanded from the config itself.
SCALAR_WEIGHTS = (
    (("impact", "points"), 0, 40),
    (("intensity", "points_per_phrase"), 0, 20),
    (("intensity", "caps_points"), 0, 20),
    (("intensity", "max_points"), 0, 40),
    (("sentiment", "max_points"), 0, 40),
    (("keywords", "points_per_term"), 0, 20),
    (("keywords", "max_points"), 0, 30),
    (("calm", "points"), -30, 0),
    (("sender_priority", "points", "high"), 0, 30),
    (("sender_priority", "points", "urgent"), 0, 40),
)


@dataclass(frozen=True)
class Sample:
    features: UrgencyFeatures
    priority: str  # what the person chose
    also: str | None = None  # a neighbouring level that is also defensible
    group: Mapping[str, str] = dataclasses.field(default_factory=dict)  # language, category...


@dataclass
class Evaluation:
    total: int = 0
    agreed: int = 0
    exact: int = 0
    dangerous: int = 0  # urgent scored normal/low, high scored low
    false_alarms: int = 0  # low scored high/urgent
    lows: int = 0
    confusion: Counter = dataclasses.field(default_factory=Counter)  # (chosen, scored) → n
    misses: list[tuple[Sample, str]] = dataclasses.field(default_factory=list)

    @property
    def agreement(self) -> float:
        return self.agreed / self.total if self.total else 0.0

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.total if self.total else 0.0


def is_dangerous(chosen: str, scored: str) -> bool:
    return (chosen == "urgent" and scored in ("normal", "low")) or (
        chosen == "high" and scored == "low")


def is_false_alarm(chosen: str, scored: str) -> bool:
    return chosen == "low" and scored in ("high", "urgent")


def cost(chosen: str, also: str | None, scored: str) -> float:
    if scored == chosen or scored == also:
        return 0.0
    if is_dangerous(chosen, scored):
        return DANGEROUS_COST
    if is_false_alarm(chosen, scored):
        return FALSE_ALARM_COST
    return OTHER_COST * abs(RANK[chosen] - RANK[scored])


def evaluate(samples: Iterable[Sample], config: UrgencyConfig) -> Evaluation:
    result = Evaluation()
    for sample in samples:
        scored = score_features(sample.features, config).priority
        result.total += 1
        result.confusion[(sample.priority, scored)] += 1
        result.lows += sample.priority == "low"
        if scored == sample.priority:
            result.exact += 1
        if scored in (sample.priority, sample.also):
            result.agreed += 1
        else:
            result.misses.append((sample, scored))
        result.dangerous += is_dangerous(sample.priority, scored)
        result.false_alarms += is_false_alarm(sample.priority, scored)
    return result


def _total_cost(samples: Sequence[Sample], config: UrgencyConfig) -> float:
    return sum(cost(s.priority, s.also, score_features(s.features, config).priority)
               for s in samples)


def _paths(data: Mapping[str, Any]) -> list[tuple[tuple[str, ...], int, int]]:
    paths: list[tuple[tuple[str, ...], int, int]] = []
    for intent in data["intents"]["points"]:
        paths.append((("intents", "points", intent), -60, 100))
    for kind in data["channel"]["points"]:
        paths.append((("channel", "points", kind), 0, 40))
    for tier in data["tier"]["points"]:
        paths.append((("tier", "points", tier), 0, 50))
    paths.extend(SCALAR_WEIGHTS)
    return paths


def _get(data: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def with_weights(config: UrgencyConfig, data: Mapping[str, Any]) -> UrgencyConfig:
    """`config` with the point values of `data` (the word lists are not rebuilt)."""

    def ints(mapping: Mapping[str, Any]) -> dict[str, int]:
        return {str(k): int(v) for k, v in mapping.items()}

    return dataclasses.replace(
        config,
        channel_points=ints(data["channel"]["points"]),
        intent_points=ints(data["intents"]["points"]),
        impact_points=int(data["impact"]["points"]),
        caps_points=int(data["intensity"]["caps_points"]),
        escalation_points_per_phrase=int(data["intensity"]["points_per_phrase"]),
        intensity_max_points=int(data["intensity"]["max_points"]),
        sentiment_max_points=int(data["sentiment"]["max_points"]),
        keyword_points_per_term=int(data["keywords"]["points_per_term"]),
        keyword_max_points=int(data["keywords"]["max_points"]),
        calm_points=int(data["calm"]["points"]),
        sender_priority_points=ints(data["sender_priority"]["points"]),
        tier_points=ints(data["tier"]["points"]),
        raw=data,
    )


@dataclass
class TuneResult:
    before: float  # cost
    after: float
    changes: dict[tuple[str, ...], tuple[int, int]]  # path → (old, new)
    override: dict[str, Any]  # only the changed values, as a config override


def tune(samples: Sequence[Sample], data: Mapping[str, Any],
         max_rounds: int = MAX_ROUNDS) -> TuneResult:
    """Coordinate descent over the point values: each round tries every value of each
    weight on a grid of 5 within its bounds and keeps the one with the lowest total cost
    (ties: the value nearest the current one, so nothing moves without a reason)."""
    current = copy.deepcopy(dict(data))
    base = config_from_dict(current)
    best = _total_cost(samples, base)
    before = best
    paths = _paths(current)
    for _ in range(max_rounds):
        improved = False
        for path, low, high in paths:
            value = int(_get(current, path))
            chosen = value
            for candidate in sorted(range(low - low % STEP, high + 1, STEP),
                                    key=lambda c, v=value: abs(c - v)):
                if candidate == value or not low <= candidate <= high:
                    continue
                _set(current, path, candidate)
                trial = _total_cost(samples, with_weights(base, current))
                if trial < best - 1e-9:
                    best, chosen, improved = trial, candidate, True
            _set(current, path, chosen)
        if not improved:
            break
    changes: dict[tuple[str, ...], tuple[int, int]] = {}
    override: dict[str, Any] = {}
    for path, _, _ in paths:
        old, new = int(_get(data, path)), int(_get(current, path))
        if old != new:
            changes[path] = (old, new)
            node = override
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = new
    return TuneResult(before=before, after=best, changes=changes, override=override)


def merge_override(existing: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """An operator's override file with newly tuned values written into it."""
    merged = copy.deepcopy(dict(existing))
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge_override(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged
