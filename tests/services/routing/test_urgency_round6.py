"""Urgency round 6 (issue 16): the floor. Signs of an incident (the learned model's security,
safety or legal evidence) keep a message from being scored trivial: a how-to question,
thanks, feedback, the model's trivial class or alarm words set aside beside a question may
stop a lift, never push an incident down to low.

Policy tests use given probabilities (`apply_model`), so they do not depend on the shipped
weights. Phrasings written for these tests: none is in the bench's labelled set or the
training files."""

import dataclasses
import json

import pytest

from helpdesk.services.routing.urgency import (
    FloorPolicy,
    TrivialPolicy,
    apply_model,
    extract_features,
    load_urgency_config,
    model_applies,
    score_features,
)
from tests.support.urgency import facts, reason

FLOOR = FloorPolicy(levels={"security": 0.2, "safety": 0.3, "legal": 0.3},
                    intent="not_trivial", strong=0.8, over_thanks=True)


@pytest.fixture
def cfg(shipped):
    return dataclasses.replace(
        shipped, model_thresholds={"security": 0.7, "safety": 0.7, "legal": 0.7},
        model_watch={"security": 0.4},
        model_trivial=TrivialPolicy(veto=0.5, settle=0.6, over=frozenset({"general"}),
                                    defuse=0.7),
        model_floor=FLOOR)


def phrases_only(text, cfg):
    return extract_features(facts(text), dataclasses.replace(cfg, model=None))


def preds(security=0.0, safety=0.0, legal=0.0, trivial=0.0):
    return {"security": (security, ["link", "filled"]), "safety": (safety, ["lotion"]),
            "legal": (legal, ["tribunal"]), "trivial": (trivial, ["question"])}


def judged(text, cfg, **p):
    before = phrases_only(text, cfg)
    after = apply_model(before, preds(**p), cfg) if model_applies(before, cfg) else before
    result = score_features(after, cfg)
    return result.priority, reason(result, "intent").detail


THANKS_AND_LINK = ("Thank you so much for sorting out my exchange yesterday! Oh and I got "
                   "your mail about my card and typed the numbers into the page.")


def test_thanks_do_not_close_a_message_the_model_reads_as_fraud(cfg):
    # without the floor the thanks win: the backstop never looks past them
    no_floor = dataclasses.replace(cfg, model_floor=None)
    assert phrases_only(THANKS_AND_LINK, cfg).intent == "thanks"
    assert judged(THANKS_AND_LINK, no_floor, security=0.9)[0] == "low"
    # strong evidence: the incident itself; moderate: not trivial (normal)
    assert judged(THANKS_AND_LINK, cfg, security=0.9) == (
        "urgent", 'security or fraud (learned model, 0.90): "link", "filled"')
    priority, detail = judged(THANKS_AND_LINK, cfg, security=0.3)
    assert priority == "normal" and detail.startswith("signs of an incident")
    # no sign of an incident: thanks stay thanks
    assert judged(THANKS_AND_LINK, cfg, security=0.1, trivial=0.9)[0] == "low"
    # and only when the policy says so
    only_questions = dataclasses.replace(cfg, model_floor=dataclasses.replace(
        FLOOR, over_thanks=False))
    assert judged(THANKS_AND_LINK, only_questions, security=0.9)[0] == "low"


def test_the_trivial_class_may_stop_a_lift_but_not_push_an_incident_to_low(cfg):
    text = "quick question, is the lotion ok on kids? my son has red patches and a tight throat"
    # the trivial class vetoes the safety lift; without the floor that leaves low or normal
    no_floor = dataclasses.replace(cfg, model_floor=None)
    low = judged(text, no_floor, safety=0.5, trivial=0.9)[0]
    assert low in ("low", "normal")
    with_floor = judged(text, cfg, safety=0.5, trivial=0.9)
    assert with_floor[0] != "low" and with_floor[1].startswith("signs of an incident")
    assert judged(text, cfg, safety=0.85, trivial=0.9)[0] == "urgent"  # strong: the hazard


def test_a_settled_question_with_signs_of_fraud_is_not_trivial(cfg):
    text = "Can I see which devices are signed in? There are orders I do not remember"
    assert phrases_only(text, cfg).intent in ("general", "how_to")
    no_floor = dataclasses.replace(cfg, model_floor=None)
    assert judged(text, no_floor, security=0.25, trivial=0.65)[0] == "low"
    assert judged(text, cfg, security=0.25, trivial=0.65)[0] == "normal"
    # below every level it settles as before
    assert judged(text, cfg, security=0.1, trivial=0.65)[0] == "low"


def test_alarm_words_set_aside_beside_a_question_keep_a_floor(cfg):
    joke = "my password manager got hacked!!! lol, how do I export my addresses?"
    assert phrases_only(joke, cfg).alarm_only
    # the trivial class sets "hacked" aside: low, unless the model reads fraud too
    assert judged(joke, cfg, security=0.1, trivial=0.9)[0] == "low"
    assert judged(joke, cfg, security=0.3, trivial=0.9)[0] == "normal"
    # alarm_words: the set-aside words alone keep it from low
    words = dataclasses.replace(cfg, model_floor=dataclasses.replace(FLOOR, alarm_words=True))
    priority, detail = judged(joke, words, security=0.1, trivial=0.9)
    assert priority == "normal" and detail.endswith('"hacked"')


def test_the_floor_stays_out_of_idioms_and_of_what_the_sender_says_did_not_happen(cfg):
    idiom = "The lawyer in me loves your new terms page, thanks!"
    assert judged(idiom, cfg, legal=0.6, trivial=0.9)[0] == "low"
    calm = "Nothing happened, but how do I freeze my card if it ever gets stolen?"
    assert judged(calm, cfg, security=0.5, trivial=0.8)[0] == "low"
    over = dataclasses.replace(cfg, model_floor=dataclasses.replace(
        FLOOR, over_nothing_happened=True))
    assert judged(calm, over, security=0.5, trivial=0.8)[0] == "normal"


def test_the_floor_never_lowers_what_the_phrases_found(cfg):
    blocked = "I can't log in to my account"
    assert judged(blocked, cfg, security=0.3, trivial=0.9)[0] == judged(
        blocked, dataclasses.replace(cfg, model_floor=None), security=0.3, trivial=0.9)[0]


def test_a_floor_without_points_for_its_intent_is_refused(tmp_path):
    path = tmp_path / "urgency.json"
    path.write_text(json.dumps({"model": {"floor": {"levels": {"security": 0.2},
                                                    "intent": "nowhere"}}}),
                    encoding="utf-8")
    with pytest.raises(ValueError, match="no points for the nowhere intent"):
        load_urgency_config(str(path))


def test_the_shipped_floor_is_below_the_lifts(shipped):
    floor = shipped.model_floor
    assert floor is not None and floor.intent in shipped.intent_points
    for intent, level in floor.levels.items():
        assert level <= shipped.model_thresholds[intent]
