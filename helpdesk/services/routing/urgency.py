"""Explainable urgency scoring for tickets (pure: no database, no I/O beyond config files).

Scoring has two steps. `extract_features` reads a bounded prefix of the customer's messages
and finds what they are dealing with (the intent: security incident, legal threat, outage,
...), how strongly they feel (sentiment from a multilingual lexicon, shouting, escalation
phrases), business impact, explicit urgency words and the sender's own priority flag.
`score_features` turns those features plus channel, tier, repeat contact and SLA time into
points per factor; the score is their sum clamped to 0..100 and the priority is the bucket
the score falls in. Every factor says what it saw and how many points it gave.

Weights and word lists live in `helpdesk/defaults/urgency.json` and can be overridden by a
JSON file (docs/urgency.md).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from helpdesk.services.routing.urgency_model import IntentModel, load_model
from helpdesk.services.routing.urgency_text import (
    PhraseMatcher,
    SentimentLexicon,
    build_lexicon,
    caps_words,
    normalize_text,
    sentiment,
    tokens,
)

__all__ = [
    "DEFAULTS_PATH", "UrgencyConfig", "UrgencyFacts", "UrgencyFeatures", "UrgencyReason",
    "UrgencyScore", "backstop_applies", "bounded_text", "detect_language", "extract_features",
    "load_urgency_config", "match_terms", "normalize_text", "priority_for", "score_features",
    "score_urgency", "warm_up", "with_backstop",
]

DEFAULTS_PATH = Path(__file__).resolve().parents[2] / "defaults" / "urgency.json"

# Below this probability the detector is guessing (short or mixed texts): no language.
MIN_LANGUAGE_CONFIDENCE = 0.3
# Language detection reads at most this much text: the first lines say it all.
LANGUAGE_PREFIX_CHARS = 2000
SENDER_PRIORITIES = ("low", "normal", "high", "urgent")
# The learned model's moderate evidence for an intent is its own, weaker intent.
WATCH_PREFIX = "possible_"
# The learned model's class for a question, feedback or thanks: nothing urgent.
TRIVIAL = "trivial"

_LETTER_RUN = re.compile(r"[^\W\d_]+")
_NO_SPACE_SCRIPT = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")


@dataclass(frozen=True)
class UrgencyFacts:
    channel_kind: str
    texts: list[str]
    tier: str
    recent_contacts: int
    seconds_to_deadline: float | None
    sla_target_seconds: float | None
    sender_priority: str | None = None  # the sender's own flag: low | normal | high | urgent


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
class UrgencyFeatures:
    """What the scorer saw in a ticket: everything `score_features` needs, nothing more.

    Stored with hand-set priorities (corrections), so weights can be re-tuned later
    without the messages.
    """

    channel_kind: str
    tier: str
    intent: str = "general"
    intent_terms: tuple[str, ...] = ()
    impact_terms: tuple[str, ...] = ()
    escalation_terms: tuple[str, ...] = ()
    caps_words: int = 0
    exclamations: int = 0
    sentiment: float = 0.0
    sentiment_terms: tuple[str, ...] = ()
    urgent_terms: tuple[str, ...] = ()
    calm_terms: tuple[str, ...] = ()
    defused_terms: tuple[str, ...] = ()  # "nothing happened", "just in case": alarm words set aside
    # the sender says nothing has happened ("nothing happened", "I haven't clicked anything",
    # "afraid of getting hacked"): the learned model lifts no `defusable` intent (security);
    # a hazard stays one when nobody was hurt
    nothing_happened: tuple[str, ...] = ()
    # the intent rests on alarm words alone (no composition, nothing else serious found) beside
    # a question, thanks or feedback the phrases also found: the learned model's trivial class
    # may set them aside ("I thought I'd been hacked... thanks")
    alarm_only: bool = False
    model_probability: float | None = None  # the intent came from the learned backstop
    sender_priority: str | None = None
    recent_contacts: int = 0
    seconds_to_deadline: float | None = None
    sla_target_seconds: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UrgencyFeatures:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in data.items() if k in known}
        return cls(**values)


@dataclass(frozen=True)
class TrivialPolicy:
    """The learned model's trivial class (a question, feedback, thanks): from `veto` it stops
    the model's lifts; from `settle` it turns an intent of `over` (nothing recognised) into
    the trivial intent, an angry message (negative sentiment or escalation) only from
    `angry_settle` (None: never: a bare rant is not trivial); from `defuse` it sets aside
    alarm words that are all the phrases found ("got hacked!!! just kidding, how do I...")."""

    veto: float | None
    settle: float | None
    over: frozenset[str]
    defuse: float | None = None
    angry_settle: float | None = None


@dataclass(frozen=True)
class FloorPolicy:
    """Round 6: signs of an incident keep a message from being scored trivial. When the
    scorer would end on a low intent (a how-to question, feedback, thanks, the model's trivial
    class, alarm words set aside beside a question) while the learned model reads an intent of
    `levels` (security, safety, legal) at or above its level, the intent becomes `intent`
    (points of a general request: normal on email): a person answers it in the normal course
    instead of last. The trivial class may still stop a lift (high), never push an incident
    to low. `over_thanks`: thanks too ("thanks for blocking my card" after a fraud);
    `over_nothing_happened`: also when the sender says nothing happened (the model's
    security evidence is ignored there unless set); `alarm_words`: alarm words the phrases
    found and the trivial class set aside land on `intent`, whatever the model reads;
    `strong`: from this probability an intent of `levels` counts as itself (security,
    safety, legal: urgent) over the low intent, whatever the trivial class reads ("thanks
    for yesterday! btw I got a mail asking to confirm my card through a link, already did")."""

    levels: Mapping[str, float]
    intent: str
    strong: float | None = None
    minimum: str | None = "normal"  # the floor intent scores at least this bucket
    over_thanks: bool = False
    over_nothing_happened: bool = False
    alarm_words: bool = False


@dataclass(frozen=True)
class UrgencyConfig:
    channel_points: Mapping[str, int]
    intent_points: Mapping[str, int]
    intent_labels: Mapping[str, str]
    low_intents: frozenset[str]
    only_alone_intents: frozenset[str]
    upgrade_with_impact: Mapping[str, str]
    thanks_intent: str
    question_intent: str | None
    short_only: Mapping[str, int]
    complaint_questions: PhraseMatcher
    question_max_words: int
    problem_words: PhraseMatcher
    thanks_win_over: frozenset[str]
    contrast_words: frozenset[str]
    matcher: PhraseMatcher  # every phrase list, labelled: one pass over the tokens
    # (intent, why, groups, unless); a group is the matcher labels whose hits satisfy it,
    # `unless` the labels whose hits stop the combo ("refund": money missing is not theft)
    combos: tuple[tuple[str, str, tuple[tuple[str, ...], ...], tuple[str, ...]], ...]
    defusable: frozenset[str]
    # intents whose bare alarm words (no composition) beside a question, thanks or feedback
    # the learned model's trivial class may set aside (`model.trivial.defuse`)
    alarm_intents: frozenset[str]
    # figures of speech whose words are no alarm ("the lawyer in me", "stole the show")
    idioms: PhraseMatcher
    model: IntentModel | None  # the learned backstop (urgency_model.py), None when disabled
    model_thresholds: Mapping[str, float]  # intent -> probability from which it counts
    # intent -> probability from which its watch intent ("possible_<intent>") counts: enough
    # evidence that a person should look soon (high), not enough to call it the intent
    model_watch: Mapping[str, float]
    # the model's "trivial" class (a question, feedback or thanks): from `veto` it stops the
    # lifts above; from `settle` it turns an intent of `over` (nothing recognised) into the
    # trivial intent
    model_trivial: TrivialPolicy | None
    impact_points: int
    impact_ignored: frozenset[str]
    caps_words_min: int
    caps_points: int
    exclamations_min: int
    exclamation_points: int
    escalation_points_per_phrase: int
    intensity_max_points: int
    intensity_ignored: frozenset[str]
    acronyms: frozenset[str]
    sentiment_threshold: float
    sentiment_full_at: float
    sentiment_max_points: int
    sentiment_ignored: frozenset[str]
    lexicon: SentimentLexicon
    keyword_points_per_term: int
    keyword_max_points: int
    keyword_ignored: frozenset[str]
    keyword_terms: tuple[str, ...]
    calm_points: int
    sender_priority_points: Mapping[str, int]
    sender_priority_ignored: frozenset[str]
    tier_points: Mapping[str, int]
    repeat_min_contacts: int
    repeat_points_per_extra: int
    repeat_max_points: int
    sla_breached_points: int
    sla_start_share: float
    sla_max_points_before_breach: int
    buckets: tuple[tuple[str, int], ...]
    prefix_chars: int
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # round 6: signs of an incident never scored trivial (FloorPolicy), None: off
    model_floor: FloorPolicy | None = None


# --------------------------------------------------------------------------- config


def default_config_data() -> dict[str, Any]:
    return json.loads(DEFAULTS_PATH.read_text(encoding="utf-8"))


def load_urgency_config(path: str | None = None) -> UrgencyConfig:
    """Read the default config and deep-merge the optional override JSON file on top."""
    data = default_config_data()
    if path:
        try:
            override = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read urgency config {path}: {exc}") from exc
        if not isinstance(override, dict):
            raise ValueError(f"urgency config {path} must be a JSON object")
        data = merge_config(data, override, str(path))
    return config_from_dict(data)


def merge_config(base: dict[str, Any], override: Mapping[str, Any],
                 where: str = "override") -> dict[str, Any]:
    unknown = sorted(set(override) - set(base))
    if unknown:
        raise ValueError(f"unknown urgency config sections in {where}: {', '.join(unknown)}")
    return _deep_merge(base, override)


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def config_from_dict(data: Mapping[str, Any]) -> UrgencyConfig:
    try:
        return _config_from_dict(data)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"invalid urgency config: {exc!r}") from exc


def _ints(mapping: Mapping[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in mapping.items()}


def _set(items: Any) -> frozenset[str]:
    return frozenset(str(i) for i in items or ())


def _config_from_dict(data: Mapping[str, Any]) -> UrgencyConfig:
    kw, sent, rep, sla = data["keywords"], data["sentiment"], data["repeat_contact"], data["sla"]
    intents, impact, intensity = data["intents"], data["impact"], data["intensity"]
    calm, sender = data["calm"], data["sender_priority"]
    concepts = {str(k): list(v) for k, v in intents.get("concepts", {}).items()}
    for combo in intents.get("combos", ()):
        if combo["intent"] not in intents["points"] or len(combo["all"]) < 2:
            raise ValueError(f"combo {combo!r}: needs a known intent and 2+ word groups")
        for group in (*combo["all"], combo.get("unless", [])):
            for ref in _concept_refs(group):
                if ref not in concepts:
                    raise ValueError(f"combo {combo!r}: unknown concept @{ref}")
    intent_phrases: dict[str, list[str]] = {}
    for intent, languages in intents["phrases"].items():
        if intent not in intents["points"]:
            raise ValueError(f"intent {intent!r} has phrases but no points")
        intent_phrases[intent] = [p for words in languages.values() for p in words]
    terms: dict[str, str] = {}
    for words in kw["terms"].values():
        for word in words:
            terms.setdefault(normalize_text(word), word)
    buckets = sorted(
        ((str(k), int(v)) for k, v in data["priority_buckets"].items()), key=lambda item: -item[1]
    )
    return UrgencyConfig(
        channel_points=_ints(data["channel"]["points"]),
        intent_points=_ints(intents["points"]),
        intent_labels={str(k): str(v) for k, v in intents.get("labels", {}).items()},
        low_intents=_set(intents.get("low_intents")),
        only_alone_intents=_set(intents.get("only_alone")),
        upgrade_with_impact={str(k): str(v)
                             for k, v in intents.get("upgrade_with_impact", {}).items()},
        thanks_intent=str(intents.get("thanks_intent", "thanks")),
        question_intent=intents.get("question_intent"),
        short_only=_ints(intents.get("short_only", {})),
        complaint_questions=PhraseMatcher({"why": list(intents.get("complaint_questions", ()))}),
        question_max_words=int(intents.get("question_max_words", 15)),
        problem_words=PhraseMatcher({"problem": list(intents.get("problem_words", ()))}),
        thanks_win_over=_set(intents.get("thanks_win_over")),
        contrast_words=frozenset(normalize_text(w) for w in intents.get("contrast_words", ())),
        matcher=PhraseMatcher({
            **{f"i:{intent}": phrases for intent, phrases in intent_phrases.items()},
            **{f"c:{i}:{j}": words for i, combo in enumerate(intents.get("combos", ()))
               for j, group in enumerate(combo["all"])
               if (words := [w for w in _group_items(group) if not w.startswith("@")])},
            **{f"n:{i}": words for i, combo in enumerate(intents.get("combos", ()))
               if (words := [w for w in _group_items(combo.get("unless", []))
                             if not w.startswith("@")])},
            **{f"k:{name}": words for name, words in concepts.items()},
            "defused": _flat(intents.get("defused_by", {})),
            "impact": _flat(impact["phrases"]),
            "escalation": _flat(intensity["phrases"]),
            "keywords": list(terms.values()),
            "calm": _flat(calm["phrases"]),
        }),
        combos=tuple((str(c["intent"]), str(c.get("why", "")),
                      tuple((f"c:{i}:{j}", *(f"k:{r}" for r in _concept_refs(group)))
                            for j, group in enumerate(c["all"])),
                      (f"n:{i}", *(f"k:{r}" for r in _concept_refs(c.get("unless", [])))))
                     for i, c in enumerate(intents.get("combos", ()))),
        defusable=_set(intents.get("defusable")),
        idioms=PhraseMatcher({"idiom": _flat(intents.get("idioms", {}))}),
        alarm_intents=_set(intents.get("alarm_intents", intents.get("defusable"))),
        model=_model(data.get("model", {})),
        model_thresholds={str(k): float(v)
                          for k, v in data.get("model", {}).get("thresholds", {}).items()},
        model_watch=_watch(data.get("model", {}), intents["points"]),
        model_trivial=_trivial(data.get("model", {}), intents["points"]),
        model_floor=_floor(data.get("model", {}), intents["points"], data["priority_buckets"]),
        impact_points=int(impact["points"]),
        impact_ignored=_set(impact.get("ignored_for_intents")),
        caps_words_min=int(intensity["caps_words_min"]),
        caps_points=int(intensity["caps_points"]),
        exclamations_min=int(intensity["exclamations_min"]),
        exclamation_points=int(intensity["exclamation_points"]),
        escalation_points_per_phrase=int(intensity["points_per_phrase"]),
        intensity_max_points=int(intensity["max_points"]),
        intensity_ignored=_set(intensity.get("ignored_for_intents")),
        acronyms=frozenset(normalize_text(a) for a in intensity.get("acronyms", ())),
        sentiment_threshold=float(sent["threshold"]),
        sentiment_full_at=float(sent["full_at"]),
        sentiment_max_points=int(sent["max_points"]),
        sentiment_ignored=_set(sent.get("ignored_for_intents")),
        lexicon=build_lexicon(sent),
        keyword_points_per_term=int(kw["points_per_term"]),
        keyword_max_points=int(kw["max_points"]),
        keyword_ignored=_set(kw.get("ignored_for_intents")),
        keyword_terms=tuple(terms.values()),
        calm_points=int(calm["points"]),
        sender_priority_points=_ints(sender["points"]),
        sender_priority_ignored=_set(sender.get("ignored_for_intents")),
        tier_points=_ints(data["tier"]["points"]),
        repeat_min_contacts=int(rep["min_contacts"]),
        repeat_points_per_extra=int(rep["points_per_extra_contact"]),
        repeat_max_points=int(rep["max_points"]),
        sla_breached_points=int(sla["breached_points"]),
        sla_start_share=float(sla["start_share"]),
        sla_max_points_before_breach=int(sla["max_points_before_breach"]),
        buckets=tuple(buckets),
        prefix_chars=int(data["text"]["prefix_chars"]),
        raw=data,
    )


def _flat(languages: Mapping[str, Any]) -> list[str]:
    return [p for words in languages.values() for p in words]


def _model(section: Mapping[str, Any]) -> IntentModel | None:
    name = section.get("file")
    if not name or not section.get("thresholds"):
        return None
    path = Path(name) if Path(name).is_absolute() else DEFAULTS_PATH.parent / name
    try:
        model = load_model(str(path))
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise ValueError(f"cannot read the urgency model {path}: {exc!r}") from exc
    unknown = (set(section["thresholds"]) | ({TRIVIAL} if section.get("trivial") else set())
               ) - set(model.intents)
    if unknown:
        raise ValueError(f"the urgency model {path} has no intent {', '.join(sorted(unknown))}")
    return model


def _watch(section: Mapping[str, Any], points: Mapping[str, Any]) -> dict[str, float]:
    watch = {str(k): float(v) for k, v in (section.get("watch") or {}).items()}
    for intent in watch:
        if intent not in (section.get("thresholds") or {}):
            raise ValueError(f"model watch for {intent}: the intent has no model threshold")
        if f"{WATCH_PREFIX}{intent}" not in points:
            raise ValueError(f"model watch for {intent}: no points for {WATCH_PREFIX}{intent}")
    return watch


def _trivial(section: Mapping[str, Any], points: Mapping[str, Any]) -> TrivialPolicy | None:
    policy = section.get("trivial")
    if not policy or not section.get("thresholds"):
        return None
    if TRIVIAL not in points:
        raise ValueError(f"model trivial: no points for the {TRIVIAL} intent")
    return TrivialPolicy(veto=_optional_float(policy, "veto"),
                         settle=_optional_float(policy, "settle"),
                         over=_set(policy.get("over")), defuse=_optional_float(policy, "defuse"),
                         angry_settle=_optional_float(policy, "angry_settle"))


def _optional_float(policy: Mapping[str, Any], key: str) -> float | None:
    value = policy.get(key)
    return None if value is None else float(value)


def _floor(section: Mapping[str, Any], points: Mapping[str, Any],
           buckets: Mapping[str, Any]) -> FloorPolicy | None:
    policy = section.get("floor")
    if not policy or not section.get("thresholds") or not policy.get("levels"):
        return None
    intent = str(policy.get("intent", "general"))
    if intent not in points:
        raise ValueError(f"model floor: no points for the {intent} intent")
    if policy.get("minimum") not in (None, *buckets):
        raise ValueError(f"model floor: no priority bucket {policy['minimum']!r}")
    return FloorPolicy(levels={str(k): float(v) for k, v in policy["levels"].items()
                               if v is not None},
                       intent=intent, over_thanks=bool(policy.get("over_thanks")),
                       strong=_optional_float(policy, "strong"),
                       over_nothing_happened=bool(policy.get("over_nothing_happened")),
                       alarm_words=bool(policy.get("alarm_words")),
                       minimum=policy.get("minimum", "normal"))


def _group_items(group: Any) -> list[str]:
    """A combo group: a list of phrases and `@concept` references, or one `@concept`."""
    return [group] if isinstance(group, str) else [str(w) for w in group]


def _concept_refs(group: Any) -> list[str]:
    return [w[1:] for w in _group_items(group) if w.startswith("@")]


@lru_cache(maxsize=1)
def _default_config() -> UrgencyConfig:
    return load_urgency_config(None)


# --------------------------------------------------------------------------- text helpers


def bounded_text(texts: list[str], limit: int) -> str:
    """The texts joined, reading at most `limit` characters in all (earliest first): a
    3 MiB mail costs what its first pages cost."""
    parts: list[str] = []
    left = limit
    for text in texts:
        if left <= 0:
            break
        part = text[:left]
        if not part.strip():
            continue
        parts.append(part)
        left -= len(part) + 1
    return "\n".join(parts)


def match_terms(text: str, terms: tuple[str, ...]) -> list[str]:
    """The distinct terms (phrase syntax of the config) found in text, in the order of
    `terms`."""
    found = set(_matcher_for(terms).find(tokens(text), phrases=True).get("t", ()))
    return [term for term in terms if term in found]


@lru_cache(maxsize=16)
def _matcher_for(terms: tuple[str, ...]) -> PhraseMatcher:
    return PhraseMatcher({"t": terms})


def warm_up() -> None:
    """Load the language model and the config now, so the first routing job of a worker is
    not the one that pays for them."""
    detect_language("warming up the language detector before the first ticket arrives")
    _default_config()


@lru_cache(maxsize=1)
def _language_identifier() -> LanguageIdentifier:
    # py3langid (langid.py's maintained successor): deterministic, ~0.1 ms a text.
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect_language(text: str) -> str | None:
    """Return the ISO 639-1 code of text, or None when it is too short or undetectable.

    Only the first LANGUAGE_PREFIX_CHARS characters are read."""
    text = text[:LANGUAGE_PREFIX_CHARS]
    words = len(_LETTER_RUN.findall(text)) + len(_NO_SPACE_SCRIPT.findall(text)) // 2
    if words < 3:
        return None
    code, probability = _language_identifier().classify(text)
    if code == "zxx" or probability < MIN_LANGUAGE_CONFIDENCE:  # zxx: no linguistic content
        return None
    return str(code)


# --------------------------------------------------------------------------- features


def extract_features(facts: UrgencyFacts, config: UrgencyConfig | None = None
                     ) -> UrgencyFeatures:
    """Read the facts' texts (a bounded prefix) and return what the scorer needs."""
    cfg = config or _default_config()
    text = bounded_text(facts.texts, cfg.prefix_chars)
    toks = tokens(text)
    # "the lawyer in me", "stole the show", "o app ta fogo": the words of a figure of speech
    # are no alarm: the phrases do not see them (the reason names the idiom that took one)
    idioms = cfg.idioms.spans(toks) if len(cfg.idioms) else []
    seen = list(toks)
    for start, end, _words in idioms:
        seen[start:end] = [""] * (end - start)
    hits = cfg.matcher.find(seen)
    found = {label[2:]: words for label, words in hits.items() if label.startswith("i:")}
    defused: tuple[str, ...] = ()
    if idioms:
        plain = {label: words for label, words in cfg.matcher.find(toks).items()
                 if label.startswith("i:") and label[2:] not in cfg.low_intents
                 and set(words) - set(hits.get(label, ()))}
        defused = tuple(dict.fromkeys(words for _s, _e, words in idioms if any(
            f" {w} " in f" {words} " for ws in plain.values() for w in ws)))
    if hits.get("defused") and cfg.defusable.intersection(found):
        # "nothing happened, just to be safe" / "I thought it was a scam but it was my
        # mistake": alarm words alone are set aside; a composition below still counts
        defused = (*defused, *hits["defused"])
        found = {i: w for i, w in found.items() if i not in cfg.defusable}
    if cfg.combos:
        _add_combos(found, hits, cfg)
    shouted = caps_words(text, cfg.acronyms)
    exclamations = text.count("!")
    compound, felt = sentiment(toks, {normalize_text(w) for w in shouted}, exclamations,
                               cfg.lexicon)
    impact = tuple(hits.get("impact", ()))
    escalation = tuple(hits.get("escalation", ()))
    intent = _choose_intent(found, cfg)
    terms = tuple(found.get(intent, ()))
    if impact and intent in cfg.upgrade_with_impact:  # broken for everyone: an outage
        intent = cfg.upgrade_with_impact[intent]
        terms = (*found.get(intent, ()), *terms)
    if (intent in cfg.thanks_win_over and cfg.thanks_intent in found and compound >= 0
            and not escalation and not cfg.contrast_words.intersection(toks)
            and "?" not in text):  # "could you confirm ...? Many thanks" still asks
        intent = cfg.thanks_intent  # unqualified gratitude for a solved problem
        terms = tuple(found[intent])
    if intent in cfg.short_only and len(toks) > cfg.short_only[intent]:
        intent, terms = "general", ()  # "merci de corriger ..." is a request, not thanks
    if intent in cfg.only_alone_intents and (compound < cfg.sentiment_threshold
                                             or len(escalation) > 1):
        intent, terms = "general", ()  # "thanks for nothing, third time I write"
    if (intent == "general" and cfg.question_intent and "?" in text
            and len(toks) <= cfg.question_max_words and compound >= cfg.sentiment_threshold
            and not escalation and not cfg.complaint_questions.find(toks)
            and not cfg.problem_words.find(toks)):
        intent, terms = cfg.question_intent, ("?",)  # a short calm question, nothing broken
    sender = facts.sender_priority if facts.sender_priority in SENDER_PRIORITIES else None
    # alarm words beside a question, thanks or feedback, and nothing else: mixed evidence the
    # learned model's trivial class may settle ("got hacked!!! just kidding, how do I...")
    alarm_only = (intent in cfg.alarm_intents and not defused
                  and not any(" + " in t for t in terms)
                  and bool(set(found) & cfg.low_intents)
                  and set(found) - cfg.alarm_intents <= cfg.low_intents)
    features = UrgencyFeatures(
        channel_kind=facts.channel_kind,
        tier=facts.tier,
        intent=intent,
        intent_terms=terms,
        impact_terms=impact,
        escalation_terms=escalation,
        caps_words=len(shouted),
        exclamations=exclamations,
        sentiment=round(compound, 3),
        sentiment_terms=tuple(felt[:4]),
        urgent_terms=tuple(hits.get("keywords", ())),
        calm_terms=tuple(hits.get("calm", ())),
        defused_terms=defused if intent not in cfg.defusable else (),
        alarm_only=alarm_only,
        nothing_happened=tuple(hits.get("defused", ())),
        sender_priority=sender,
        recent_contacts=facts.recent_contacts,
        seconds_to_deadline=facts.seconds_to_deadline,
        sla_target_seconds=facts.sla_target_seconds,
    )
    if cfg.model is None or not model_applies(features, cfg):
        return features
    return apply_model(features, cfg.model.predict(toks), cfg)


def backstop_applies(features: UrgencyFeatures, cfg: UrgencyConfig) -> bool:
    """The learned model may raise the intent: not over thanks, nor over alarm words the
    sender set aside ("nothing happened", "just in case")."""
    return not features.defused_terms and features.intent not in cfg.only_alone_intents


def model_applies(features: UrgencyFeatures, cfg: UrgencyConfig) -> bool:
    """The learned model has a say: as a backstop, or as the floor under a low intent."""
    if not cfg.model_thresholds:
        return False
    return backstop_applies(features, cfg) or (
        cfg.model_floor is not None and features.intent in cfg.low_intents)


def apply_model(features: UrgencyFeatures, predictions: Mapping[str, tuple[float, list[str]]],
                cfg: UrgencyConfig) -> UrgencyFeatures:
    """The backstop (`with_backstop`, where it applies), then the floor (`with_floor`)."""
    out = with_backstop(features, predictions, cfg) if backstop_applies(features, cfg) \
        else features
    return with_floor(out, features, predictions, cfg)


def with_floor(features: UrgencyFeatures, before: UrgencyFeatures,
               predictions: Mapping[str, tuple[float, list[str]]],
               cfg: UrgencyConfig) -> UrgencyFeatures:
    """`features` (after the backstop) with the floor intent when they end on a low intent
    while the model reads signs of an incident (`FloorPolicy`); `before`: the phrases'
    features. Alarm words inside an idiom, or set aside because the sender says nothing
    happened (unless `over_nothing_happened`), keep the low intent."""
    floor = cfg.model_floor
    if floor is None or features.intent not in cfg.low_intents:
        return features
    if before.defused_terms and not (floor.over_nothing_happened and before.nothing_happened):
        return features
    if before.intent in cfg.only_alone_intents and not floor.over_thanks:
        return features
    best: tuple[float, str, list[str]] | None = None
    for name, level in floor.levels.items():
        if (before.nothing_happened and name in cfg.defusable
                and not floor.over_nothing_happened):
            continue
        p, words = predictions.get(name, (0.0, []))
        if p >= level and (best is None or p > best[0]):
            best = (p, name, words)
    if best is None and floor.alarm_words and before.alarm_only and features.intent == TRIVIAL:
        # alarm words the trivial class set aside: a question about them, not nothing
        return dataclasses.replace(features, intent=floor.intent,
                                   intent_terms=before.intent_terms, defused_terms=())
    if best is None:
        return features
    p, name, words = best
    intent = name if (floor.strong is not None and p >= floor.strong
                      and name in cfg.intent_points) else floor.intent
    return dataclasses.replace(features, intent=intent, intent_terms=tuple(words),
                               model_probability=round(p, 2), defused_terms=())


def with_backstop(features: UrgencyFeatures, predictions: Mapping[str, tuple[float, list[str]]],
                  cfg: UrgencyConfig) -> UrgencyFeatures:
    """The features with the learned model's intent when it is weightier than what the
    phrases found and the model is sure enough (its threshold), or else its watch intent
    ("possible security or fraud": a person looks soon) from the lower watch threshold; the
    words that added most become the terms. Unless the model also finds the message trivial
    (a question, feedback, thanks) from the veto threshold: then what the phrases found
    stands. With no lift, from the settle threshold, a message where the phrases recognised
    nothing becomes trivial (an angry one only from `angry_settle`), and from the defuse
    threshold alarm words that are all the phrases found are set aside: trivial too.
    `predictions`: {intent: (probability, words)}."""
    current = cfg.intent_points.get(features.intent, 0)
    trivial = cfg.model_trivial
    p_trivial, trivial_words = predictions.get(TRIVIAL, (0.0, []))
    best: tuple[int, float, str, list[str]] | None = None
    for name, (p, words) in predictions.items():
        threshold = cfg.model_thresholds.get(name)
        if threshold is None or (features.nothing_happened and name in cfg.defusable):
            continue  # "nothing happened, I haven't clicked": no fraud from weak evidence
        if p >= threshold:
            chosen = name
        elif name in cfg.model_watch and p >= cfg.model_watch[name]:
            chosen = f"{WATCH_PREFIX}{name}"
        else:
            continue
        points = cfg.intent_points.get(chosen, 0)
        if points > current and (best is None or (points, p) > best[:2]):
            best = (points, p, chosen, words)
    if trivial is not None and best is not None:
        if trivial.veto is not None and p_trivial >= trivial.veto:
            return features  # mixed evidence: what the phrases found stands
    elif trivial is not None and features.intent in trivial.over:
        angry = features.sentiment < cfg.sentiment_threshold or bool(features.escalation_terms)
        settle = trivial.angry_settle if angry else trivial.settle
        if settle is not None and p_trivial >= settle:
            best = (0, p_trivial, TRIVIAL, trivial_words)
    elif (trivial is not None and trivial.defuse is not None and features.alarm_only
            and p_trivial >= trivial.defuse):
        return dataclasses.replace(features, intent=TRIVIAL, intent_terms=tuple(trivial_words),
                                   model_probability=round(p_trivial, 2),
                                   defused_terms=features.intent_terms)
    if best is None:
        return features
    return dataclasses.replace(features, intent=best[2], intent_terms=tuple(best[3]),
                               model_probability=round(best[1], 2))


def _add_combos(found: dict[str, list[str]], groups: Mapping[str, list[str]],
                cfg: UrgencyConfig) -> None:
    """An intent also counts when words of each of its combo's groups occur anywhere in the
    text (e.g. money moved + "never heard of" the payee), however they are phrased together.
    A group is its own words plus the concepts (`@name`) it names; a word of `unless` stops
    the combo."""
    for intent, _why, labels, unless in cfg.combos:
        hits = [[w for label in group for w in groups.get(label, ())] for group in labels]
        if all(hits) and not any(groups.get(label) for label in unless):
            terms = found.setdefault(intent, [])
            joined = " + ".join(h[0] for h in hits if h)
            if joined not in terms:
                terms.append(joined)


def _choose_intent(found: Mapping[str, list[str]], cfg: UrgencyConfig) -> str:
    """The weightiest intent found; `only_alone` intents (thanks) count only when nothing
    else but low intents is there, and a low intent never outranks a serious one."""
    if not found:
        return "general"
    serious = [i for i in found if i not in cfg.low_intents]
    if serious:
        return max(serious, key=lambda i: (cfg.intent_points.get(i, 0), -_order(found, i)))
    alone = sorted((i for i in found if i in cfg.only_alone_intents),
                   key=lambda i: cfg.intent_points.get(i, 0))  # strong thanks first
    others = [i for i in found if i not in cfg.only_alone_intents]
    if alone and not others:
        return alone[0]
    if alone and set(others) <= {"feedback"}:  # thanks plus a suggestion is still praise
        return alone[0]
    return max(others, key=lambda i: (cfg.intent_points.get(i, 0), -_order(found, i)))


def _order(found: Mapping[str, list[str]], intent: str) -> int:
    return list(found).index(intent)


# --------------------------------------------------------------------------- factors


def _round(value: float) -> int:
    return int(math.floor(value + 0.5))


def _quote(terms: tuple[str, ...] | list[str], limit: int = 3) -> str:
    return ", ".join(f'"{t}"' for t in list(terms)[:limit])


def _channel(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    return cfg.channel_points.get(f.channel_kind, 0), f.channel_kind


def _intent(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    label = cfg.intent_labels.get(f.intent, f.intent.replace("_", " "))
    points = cfg.intent_points.get(f.intent, 0)
    if f.model_probability is not None:
        label += f" (learned model, {f.model_probability:.2f})"
    if f.intent_terms:
        label = f"{label}: {_quote(f.intent_terms)}"
    if f.defused_terms:
        label += f" (alarm words set aside: {_quote(f.defused_terms)})"
    return points, label


def _impact(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    if not f.impact_terms or f.intent in cfg.impact_ignored:
        return 0, ""
    return cfg.impact_points, f"business impact: {_quote(f.impact_terms)}"


def _intensity(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    if f.intent in cfg.intensity_ignored:
        return 0, ""
    points, seen = 0, []
    if f.caps_words >= cfg.caps_words_min:
        points += cfg.caps_points
        seen.append(f"{f.caps_words} words in capitals")
    if f.exclamations >= cfg.exclamations_min:
        points += cfg.exclamation_points
        seen.append(f"{f.exclamations} exclamation marks")
    if f.escalation_terms:
        points += cfg.escalation_points_per_phrase * len(f.escalation_terms)
        seen.append(_quote(f.escalation_terms))
    return min(points, cfg.intensity_max_points), "; ".join(seen)


def _sentiment(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    compound = f.sentiment
    if compound >= cfg.sentiment_threshold or f.intent in cfg.sentiment_ignored:
        return 0, ""
    span = cfg.sentiment_threshold - cfg.sentiment_full_at
    share = 1.0 if span <= 0 else min(1.0, (cfg.sentiment_threshold - compound) / span)
    detail = f"compound {compound:.2f}"
    if f.sentiment_terms:
        detail += f" ({_quote(f.sentiment_terms)})"
    return _round(cfg.sentiment_max_points * share), detail


def _keywords(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    if not f.urgent_terms or f.intent in cfg.keyword_ignored or f.calm_terms:
        return 0, ""
    points = min(cfg.keyword_max_points, cfg.keyword_points_per_term * len(f.urgent_terms))
    return points, ", ".join(f.urgent_terms)


def _calm(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    if not f.calm_terms:
        return 0, ""
    return cfg.calm_points, f"the sender says it can wait: {_quote(f.calm_terms)}"


def _sender_priority(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    if not f.sender_priority or f.intent in cfg.sender_priority_ignored:
        return 0, ""
    points = cfg.sender_priority_points.get(f.sender_priority, 0)
    return points, f"the sender marked it {f.sender_priority}"


def _tier(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    return cfg.tier_points.get(f.tier, 0), f.tier


def _repeat_contact(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    if f.recent_contacts < cfg.repeat_min_contacts:
        return 0, ""
    extra = f.recent_contacts - cfg.repeat_min_contacts + 1
    points = min(cfg.repeat_max_points, cfg.repeat_points_per_extra * extra)
    return points, f"{f.recent_contacts} contacts in 24 h"


def _sla(f: UrgencyFeatures, cfg: UrgencyConfig) -> tuple[int, str]:
    left = f.seconds_to_deadline
    if left is None:
        return 0, ""
    if left <= 0:
        return cfg.sla_breached_points, f"breached {_duration(-left)} ago"
    target = f.sla_target_seconds
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


FACTORS = (
    ("channel", _channel),
    ("intent", _intent),
    ("impact", _impact),
    ("intensity", _intensity),
    ("sentiment", _sentiment),
    ("keywords", _keywords),
    ("calm", _calm),
    ("sender_priority", _sender_priority),
    ("tier", _tier),
    ("repeat_contact", _repeat_contact),
    ("sla", _sla),
)


# --------------------------------------------------------------------------- scoring


def score_features(features: UrgencyFeatures, config: UrgencyConfig | None = None
                   ) -> UrgencyScore:
    """Points per factor from extracted features, their sum clamped to 0..100, the bucket."""
    cfg = config or _default_config()
    reasons = []
    for name, factor in FACTORS:
        points, detail = factor(features, cfg)
        if points or name == "intent":  # the intent is always said, even at 0 points
            reasons.append(UrgencyReason(factor=name, points=points, detail=detail))
    floor = cfg.model_floor
    if floor is not None and floor.minimum and features.intent == floor.intent:
        # signs of an incident: whatever else counts, at least `minimum` (normal)
        need = dict(cfg.buckets).get(floor.minimum, 0) - sum(r.points for r in reasons)
        if need > 0:
            reasons.append(UrgencyReason(factor="floor", points=need,
                                         detail=f"signs of an incident: at least "
                                                f"{floor.minimum}"))
    score = max(0, min(100, sum(r.points for r in reasons)))
    return UrgencyScore(score=score, reasons=reasons, priority=priority_for(score, cfg))


def score_urgency(facts: UrgencyFacts, config: UrgencyConfig | None = None) -> UrgencyScore:
    """Score a ticket 0..100 from explainable factors and map the score to a priority."""
    cfg = config or _default_config()
    return score_features(extract_features(facts, cfg), cfg)


def priority_for(score: int, config: UrgencyConfig | None = None) -> str:
    """Map a score to the first bucket whose threshold it reaches (else "low")."""
    for name, threshold in (config or _default_config()).buckets:
        if score >= threshold:
            return name
    return "low"
