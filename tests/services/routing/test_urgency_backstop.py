"""The learned backstop's decision policy (issue 16, round 3): strong evidence of fraud or
danger makes the intent, moderate evidence lifts the ticket to at least high ("possible
security or fraud": a person looks soon), and the model's trivial class (a question,
feedback, thanks) vetoes those lifts and settles what the phrases did not recognise.

The policy is tested with given probabilities (`with_backstop`), so these tests do not
depend on the shipped weights; tests/services/routing/test_urgency_compositions.py checks
the shipped model itself."""

import dataclasses
import json

import pytest

from helpdesk.services.routing.urgency import (
    TrivialPolicy,
    backstop_applies,
    config_from_dict,
    default_config_data,
    extract_features,
    load_urgency_config,
    score_features,
    with_backstop,
)
from tests.support.urgency import facts, reason


@pytest.fixture
def cfg():
    base = load_urgency_config(None)
    return dataclasses.replace(
        base, model_thresholds={"security": 0.7, "safety": 0.8},
        model_watch={"security": 0.4},
        model_trivial=TrivialPolicy(veto=0.6, settle=0.8, over=frozenset({"general"})))


def phrases_only(text, cfg, **kw):
    return extract_features(facts(text, **kw), dataclasses.replace(cfg, model=None))


def preds(security=0.0, safety=0.0, trivial=0.0):
    return {"security": (security, ["payee", "strange"]), "safety": (safety, ["kettle"]),
            "trivial": (trivial, ["idea"])}


def scored(features, cfg):
    result = score_features(features, cfg)
    intent = reason(result, "intent")
    return result.priority, intent.detail


TEXT = "A payment to a strange payee appeared this morning"  # the phrases see nothing


def test_strong_evidence_makes_the_intent_urgent_and_says_it_is_the_model(cfg):
    base = phrases_only(TEXT, cfg)
    assert base.intent == "general" and backstop_applies(base, cfg)
    priority, detail = scored(with_backstop(base, preds(security=0.91), cfg), cfg)
    assert priority == "urgent"
    assert detail == 'security or fraud (learned model, 0.91): "payee", "strange"'


def test_moderate_evidence_lifts_to_high_not_urgent(cfg):
    features = with_backstop(phrases_only(TEXT, cfg), preds(security=0.55), cfg)
    assert features.intent == "possible_security"
    priority, detail = scored(features, cfg)
    assert priority == "high"
    assert detail == 'possible security or fraud (learned model, 0.55): "payee", "strange"'
    # below the watch threshold nothing changes
    weak = with_backstop(phrases_only(TEXT, cfg), preds(security=0.39), cfg)
    assert weak.intent == "general" and weak.model_probability is None


def test_the_weightier_lift_wins_and_a_lift_never_lowers_what_the_phrases_found(cfg):
    both = with_backstop(phrases_only(TEXT, cfg), preds(security=0.5, safety=0.85), cfg)
    assert both.intent == "safety"  # 80 points beat possible security's 50
    legal = phrases_only("I will take legal action over this payment", cfg)
    assert legal.intent == "legal"
    assert with_backstop(legal, preds(security=0.5), cfg).intent == "legal"  # 75 > 50


def test_the_trivial_class_vetoes_lifts_and_settles_what_nothing_recognised(cfg):
    vetoed = with_backstop(phrases_only(TEXT, cfg), preds(security=0.95, trivial=0.6), cfg)
    assert vetoed.intent == "general"
    # mixed evidence (fraud and trivial both likely): what the phrases found stands, the
    # ticket is not settled as trivial either
    mixed = with_backstop(phrases_only(TEXT, cfg), preds(security=0.5, trivial=0.9), cfg)
    assert mixed.intent == "general" and mixed.model_probability is None
    settled = with_backstop(phrases_only(TEXT, cfg), preds(trivial=0.85), cfg)
    assert settled.intent == "trivial"
    priority, detail = scored(settled, cfg)
    assert priority == "low"
    assert detail.startswith(
        "nothing urgent: a question, feedback or thanks (learned model, 0.85)")
    # settling only replaces "nothing recognised", never an intent the phrases found
    blocked = phrases_only("I can't log in to my account", cfg)
    assert blocked.intent == "blocked"
    assert with_backstop(blocked, preds(trivial=0.99), cfg).intent == "blocked"


def test_the_backstop_stays_out_of_thanks_and_alarm_words_set_aside(cfg):
    assert not backstop_applies(phrases_only("Thank you so much, all sorted!", cfg), cfg)
    defused = phrases_only("Just curious, nothing happened: what if my account is hacked?", cfg)
    assert defused.defused_terms and not backstop_applies(defused, cfg)


def test_the_shipped_config_has_a_watch_and_a_trivial_policy():
    cfg = load_urgency_config(None)
    assert cfg.model is not None
    assert set(cfg.model_thresholds) == {"security", "safety", "legal", "outage"}
    assert cfg.model_trivial is not None and "trivial" in cfg.model.intents
    for intent, watch in cfg.model_watch.items():
        assert watch < cfg.model_thresholds[intent]


def test_a_watch_without_its_threshold_or_points_is_refused(tmp_path):
    path = tmp_path / "urgency.json"
    path.write_text(json.dumps({"model": {"watch": {"cancellation": 0.3}}}), encoding="utf-8")
    with pytest.raises(ValueError, match="cancellation: the intent has no model threshold"):
        load_urgency_config(str(path))
    data = default_config_data()
    del data["intents"]["points"]["possible_security"]
    with pytest.raises(ValueError, match="no points for possible_security"):
        config_from_dict(data)


# round 4: alarm words set aside by the trivial class, angry messages never settled, a
# possible legal threat


def test_the_trivial_class_sets_aside_alarm_words_that_are_all_the_phrases_found(cfg):
    policy = dataclasses.replace(cfg.model_trivial, defuse=0.7)
    c = dataclasses.replace(cfg, model_trivial=policy)
    joke = phrases_only("my password manager got hacked!!! lol, how do I export my addresses?", c)
    assert joke.intent == "security" and joke.alarm_only
    defused = with_backstop(joke, preds(trivial=0.9), c)
    assert defused.intent == "trivial" and defused.defused_terms == ("hacked",)
    priority, detail = scored(defused, c)
    assert priority == "low"
    assert detail.endswith('(alarm words set aside: "hacked")')
    # below the threshold, the alarm words stand
    assert with_backstop(joke, preds(trivial=0.6), c).intent == "security"
    # a composition is never set aside, nor alarm words next to a serious problem, nor alarm
    # words with no question, thanks or feedback beside them
    for text in ("someone logged in and changed my email, it was not me. thanks!",
                 "I think I was hacked and now I can't log in",
                 "Me hackearon la cuenta y cambiaron mi contraseña"):
        features = phrases_only(text, c)
        assert features.intent == "security" and not features.alarm_only
        assert with_backstop(features, preds(trivial=0.99), c).intent == "security"


def test_an_angry_message_is_settled_as_trivial_only_from_its_own_threshold(cfg):
    rant = phrases_only("I am furious, this is the worst service ever", cfg)
    assert rant.intent == "general" and rant.sentiment < cfg.sentiment_threshold
    # angry_settle None: a bare rant is never trivial, its sentiment counts (normal)
    kept = with_backstop(rant, preds(trivial=0.95), cfg)
    assert kept.intent == "general"
    assert scored(kept, cfg)[0] == "normal"
    c = dataclasses.replace(cfg, model_trivial=dataclasses.replace(cfg.model_trivial,
                                                                   angry_settle=0.9))
    assert with_backstop(rant, preds(trivial=0.95), c).intent == "trivial"
    assert with_backstop(rant, preds(trivial=0.85), c).intent == "general"


def test_moderate_evidence_of_a_legal_threat_lifts_to_high(cfg):
    c = dataclasses.replace(cfg, model_thresholds={**cfg.model_thresholds, "legal": 0.9},
                            model_watch={**cfg.model_watch, "legal": 0.4})
    features = with_backstop(phrases_only(TEXT, c), {"legal": (0.5, ["consumo"])}, c)
    assert features.intent == "possible_legal"
    assert scored(features, c) == ("high", 'possible legal threat (learned model, 0.50): "consumo"')
