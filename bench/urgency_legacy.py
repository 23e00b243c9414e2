"""The urgency scorer before issue 16 (keywords + English VADER), kept as the bench's
same-run baseline for `python -m bench.urgency`. Not used by the application.

Original docstring: explainable urgency scoring for tickets (pure).

Every factor returns its points and a human-readable detail; the score is their sum
clamped to 0..100 and the priority is the bucket the score falls in. Weights and word
lists live in `helpdesk/defaults/urgency.json` and can be overridden by a JSON file.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from py3langid.langid import MODEL_FILE, LanguageIdentifier
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

DEFAULTS_PATH = Path(__file__).resolve().parent / "data" / "urgency_legacy.json"

# Below this probability the detector is guessing (short or mixed texts): no language.
MIN_LANGUAGE_CONFIDENCE = 0.3

_LETTER_RUN = re.compile(r"[^\W\d_]+")
_NO_SPACE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


@dataclass(frozen=True)
class UrgencyFacts:
    channel_kind: str
    texts: list[str]
    tier: str
    recent_contacts: int
    seconds_to_deadline: float | None
    sla_target_seconds: float | None


@dataclass(frozen=True)
class UrgencyReason:
    factor: str
    points: int
    detail: str


@dataclass(frozen=True)
class UrgencyScore:
    score: int
    reasons: list[UrgencyReason]
    priority: str


@dataclass(frozen=True)
class UrgencyConfig:
    channel_points: Mapping[str, int]
    keyword_points_per_term: int
    keyword_max_points: int
    keyword_terms: tuple[str, ...]
    sentiment_threshold: float
    sentiment_full_at: float
    sentiment_max_points: int
    tier_points: Mapping[str, int]
    repeat_min_contacts: int
    repeat_points_per_extra: int
    repeat_max_points: int
    sla_breached_points: int
    sla_start_share: float
    sla_max_points_before_breach: int
    buckets: tuple[tuple[str, int], ...]


# --------------------------------------------------------------------------- config


def load_urgency_config(path: str | None = None) -> UrgencyConfig:
    """Read the default config and deep-merge the optional override JSON file on top."""
    data = json.loads(DEFAULTS_PATH.read_text(encoding="utf-8"))
    if path:
        try:
            override = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read urgency config {path}: {exc}") from exc
        if not isinstance(override, dict):
            raise ValueError(f"urgency config {path} must be a JSON object")
        unknown = sorted(set(override) - set(data))
        if unknown:
            raise ValueError(f"unknown urgency config sections: {', '.join(unknown)}")
        data = _deep_merge(data, override)
    try:
        return _config_from_dict(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"invalid urgency config: {exc!r}") from exc


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _config_from_dict(data: Mapping[str, Any]) -> UrgencyConfig:
    kw, sent, rep, sla = data["keywords"], data["sentiment"], data["repeat_contact"], data["sla"]
    terms: dict[str, str] = {}
    for words in kw["terms"].values():
        for word in words:
            terms.setdefault(normalize_text(word), word)
    buckets = sorted(
        ((str(k), int(v)) for k, v in data["priority_buckets"].items()), key=lambda item: -item[1]
    )
    return UrgencyConfig(
        channel_points={str(k): int(v) for k, v in data["channel"]["points"].items()},
        keyword_points_per_term=int(kw["points_per_term"]),
        keyword_max_points=int(kw["max_points"]),
        keyword_terms=tuple(terms.values()),
        sentiment_threshold=float(sent["threshold"]),
        sentiment_full_at=float(sent["full_at"]),
        sentiment_max_points=int(sent["max_points"]),
        tier_points={str(k): int(v) for k, v in data["tier"]["points"].items()},
        repeat_min_contacts=int(rep["min_contacts"]),
        repeat_points_per_extra=int(rep["points_per_extra_contact"]),
        repeat_max_points=int(rep["max_points"]),
        sla_breached_points=int(sla["breached_points"]),
        sla_start_share=float(sla["start_share"]),
        sla_max_points_before_breach=int(sla["max_points_before_breach"]),
        buckets=tuple(buckets),
    )


@lru_cache(maxsize=1)
def _default_config() -> UrgencyConfig:
    return load_urgency_config(None)


# --------------------------------------------------------------------------- text helpers


def normalize_text(text: str) -> str:
    """Casefold, strip accents and unify apostrophes so matching ignores case and accents."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_APOSTROPHES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _term_pattern(normalized_term: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(part) for part in normalized_term.split())
    return re.compile(rf"(?<!\w){body}(?!\w)")


@lru_cache(maxsize=16)
def _longest_first(terms: tuple[str, ...]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    ordered = sorted(terms, key=lambda t: -len(normalize_text(t)))
    return tuple((term, _term_pattern(normalize_text(term))) for term in ordered)


def match_terms(text: str, terms: tuple[str, ...]) -> list[str]:
    """Return the distinct terms found in text on word boundaries, in the order of `terms`.

    Longer terms are matched first and their matches masked, so "en panne" does not
    also count as "panne".
    """
    haystack = normalize_text(text)
    found: set[str] = set()
    for term, pattern in _longest_first(terms):
        if pattern.search(haystack):
            found.add(term)
            haystack = pattern.sub(lambda m: "\0" * len(m.group()), haystack)
    return [term for term in terms if term in found]


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    # Lazy singleton: loading the lexicon takes a moment, so it happens once per process.
    # VADER's lexicon is English-only; other languages mostly score neutral, which is
    # acceptable because the multilingual keyword list carries the non-English signal.
    return SentimentIntensityAnalyzer()


def warm_up() -> None:
    """Load the language model and the sentiment lexicon now, so the first routing job of a
    worker is not the one that pays for them."""
    detect_language("warming up the language detector before the first ticket arrives")
    _analyzer().polarity_scores("warm up")


@lru_cache(maxsize=1)
def _language_identifier() -> LanguageIdentifier:
    # py3langid (langid.py's maintained successor): deterministic, and ~0.1 ms a text where
    # langdetect took ~5 ms on the same machine, with the same answers on our test texts.
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str | None:
    """Return the ISO 639-1 code of text, or None when it is too short or undetectable."""
    words = len(_LETTER_RUN.findall(text)) + len(_NO_SPACE_SCRIPT.findall(text)) // 2
    if words < 3:
        return None
    code, probability = _language_identifier().classify(text)
    if code == "zxx" or probability < MIN_LANGUAGE_CONFIDENCE:  # zxx: no linguistic content
        return None
    return str(code)


# --------------------------------------------------------------------------- factors


def _round(value: float) -> int:
    return int(math.floor(value + 0.5))


def _channel(facts: UrgencyFacts, cfg: UrgencyConfig) -> tuple[int, str]:
    return cfg.channel_points.get(facts.channel_kind, 0), facts.channel_kind


def _keywords(facts: UrgencyFacts, cfg: UrgencyConfig) -> tuple[int, str]:
    matched = match_terms("\n".join(facts.texts), cfg.keyword_terms)
    points = min(cfg.keyword_max_points, cfg.keyword_points_per_term * len(matched))
    return points, ", ".join(matched)


def _sentiment(facts: UrgencyFacts, cfg: UrgencyConfig) -> tuple[int, str]:
    text = "\n".join(t for t in facts.texts if t.strip())
    if not text:
        return 0, ""
    compound = float(_analyzer().polarity_scores(text)["compound"])
    if compound >= cfg.sentiment_threshold:
        return 0, ""
    span = cfg.sentiment_threshold - cfg.sentiment_full_at
    share = 1.0 if span <= 0 else min(1.0, (cfg.sentiment_threshold - compound) / span)
    return _round(cfg.sentiment_max_points * share), f"compound {compound:.2f}"


def _tier(facts: UrgencyFacts, cfg: UrgencyConfig) -> tuple[int, str]:
    return cfg.tier_points.get(facts.tier, 0), facts.tier


def _repeat_contact(facts: UrgencyFacts, cfg: UrgencyConfig) -> tuple[int, str]:
    if facts.recent_contacts < cfg.repeat_min_contacts:
        return 0, ""
    extra = facts.recent_contacts - cfg.repeat_min_contacts + 1
    points = min(cfg.repeat_max_points, cfg.repeat_points_per_extra * extra)
    return points, f"{facts.recent_contacts} contacts in 24 h"


def _sla(facts: UrgencyFacts, cfg: UrgencyConfig) -> tuple[int, str]:
    left = facts.seconds_to_deadline
    if left is None:
        return 0, ""
    if left <= 0:
        return cfg.sla_breached_points, f"breached {_duration(-left)} ago"
    target = facts.sla_target_seconds
    if not target or target <= 0 or cfg.sla_start_share <= 0:
        return 0, ""
    share = min(1.0, left / target)
    if share >= cfg.sla_start_share:
        return 0, ""
    points = _round(cfg.sla_max_points_before_breach * (1 - share / cfg.sla_start_share))
    return points, f"{_round(share * 100)}% of time left"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "less than 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} h {minutes % 60} min"
    return f"{hours // 24} d {hours % 24} h"


_FACTORS: tuple[tuple[str, Callable[[UrgencyFacts, UrgencyConfig], tuple[int, str]]], ...] = (
    ("channel", _channel),
    ("keywords", _keywords),
    ("sentiment", _sentiment),
    ("tier", _tier),
    ("repeat_contact", _repeat_contact),
    ("sla", _sla),
)


# --------------------------------------------------------------------------- scoring


def score_urgency(facts: UrgencyFacts, config: UrgencyConfig | None = None) -> UrgencyScore:
    """Score a ticket 0..100 from explainable factors and map the score to a priority."""
    cfg = config or _default_config()
    reasons = []
    for name, factor in _FACTORS:
        points, detail = factor(facts, cfg)
        if points:
            reasons.append(UrgencyReason(factor=name, points=points, detail=detail))
    score = max(0, min(100, sum(r.points for r in reasons)))
    return UrgencyScore(score=score, reasons=reasons, priority=priority_for(score, cfg))


def priority_for(score: int, config: UrgencyConfig | None = None) -> str:
    """Map a score to the first bucket whose threshold it reaches (else "low")."""
    for name, threshold in (config or _default_config()).buckets:
        if score >= threshold:
            return name
    return "low"
