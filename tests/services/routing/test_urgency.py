import json

import pytest

from helpdesk.services.routing.urgency import (
    UrgencyFacts,
    detect_language,
    load_urgency_config,
    match_terms,
    score_urgency,
)

ANGRY = (
    "This is UNACCEPTABLE. I want a refund NOW or I'm calling my lawyer. "
    "Your service is down again!"
)
POLITE = "Hi, could you tell me how to change my invoice address? Thanks!"
PLAIN = "hello, question about my order"


def facts(
    text: str = PLAIN,
    channel: str = "email",
    tier: str = "standard",
    contacts: int = 1,
    left: float | None = None,
    target: float | None = None,
) -> UrgencyFacts:
    return UrgencyFacts(
        channel_kind=channel,
        texts=[text],
        tier=tier,
        recent_contacts=contacts,
        seconds_to_deadline=left,
        sla_target_seconds=target,
    )


def factors(result) -> dict[str, int]:
    return {r.factor: r.points for r in result.reasons}


def keyword_terms(text: str) -> list[str]:
    return match_terms(text, load_urgency_config(None).keyword_terms)


def test_angry_vip_email_is_urgent():
    result = score_urgency(facts(ANGRY, tier="vip"))
    assert result.score >= 70
    assert result.priority == "urgent"
    assert {"intent", "sentiment", "tier"} <= set(factors(result))
    intent = next(r for r in result.reasons if r.factor == "intent")
    assert intent.detail == 'legal threat: "lawyer"'
    sentiment = next(r for r in result.reasons if r.factor == "sentiment")
    assert sentiment.detail.startswith("compound -")


def test_polite_email_is_low():
    result = score_urgency(facts(POLITE))
    assert result.score < 20
    assert result.priority == "low"
    assert "keywords" not in factors(result)
    assert "sentiment" not in factors(result)


def test_a_plain_question_on_chat_is_low_and_the_live_channel_is_explained():
    # round 4: supervisors set a calm question low on chat too (57 of the 90 how-to messages
    # of the training data, all "low", 33 with "normal" defensible; the issue's own example,
    # an invoice question on chat scored normal, was a miss); the channel still counts
    result = score_urgency(facts(PLAIN, channel="chat"))
    assert result.priority == "low"
    assert factors(result) == {"channel": 15, "intent": 0}  # a question, on a live channel
    assert score_urgency(facts(PLAIN)).score < result.score


def test_channel_order_live_then_messaging_then_email():
    points = {
        kind: factors(score_urgency(facts(PLAIN, channel=kind))).get("channel", 0)
        for kind in ("voice", "chat", "whatsapp", "sms", "x", "email", "api")
    }
    assert points["voice"] >= points["chat"] > points["whatsapp"]
    assert points["whatsapp"] == points["sms"] == points["x"] > points["email"]
    assert points["email"] == points["api"] == 0


def test_reasons_only_contain_non_zero_factors_in_stable_order():
    result = score_urgency(facts(ANGRY + " Urgent.", channel="voice", tier="vip", contacts=3,
                                 left=-60))
    names = [r.factor for r in result.reasons]
    assert names == ["channel", "intent", "intensity", "sentiment", "keywords", "tier",
                     "repeat_contact", "sla"]
    assert all(r.points != 0 for r in result.reasons)


def test_score_is_clamped_at_100():
    result = score_urgency(facts(ANGRY, channel="voice", tier="vip", contacts=6, left=-3600))
    assert sum(r.points for r in result.reasons) > 100
    assert result.score == 100
    assert result.priority == "urgent"


def test_match_terms_ignores_case_and_accents_on_word_boundaries():
    terms = ("no funciona", "rückerstattung", "down", "cancel", "hack*", "doesn't work")
    assert match_terms("o aplicativo NAO FUNCIONA", ("não funciona",)) == ["não funciona"]
    assert match_terms("ich moechte eine ruckerstattung", terms) == ["rückerstattung"]
    assert match_terms("The download finished, the downside is small", terms) == []
    assert match_terms("Your site is down.", terms) == ["down"]
    assert match_terms("cancellation please", terms) == []
    assert match_terms("we got HACKED", terms) == ["hack*"]
    assert match_terms("It doesn\u2019t work at all", terms) == ["doesn't work"]
    assert match_terms("La aplicación no   funciona desde ayer", terms) == ["no funciona"]


def test_urgency_words_count_distinct_terms_and_are_capped():
    one = factors(score_urgency(facts("my order hasn't arrived, urgent urgent urgent")))
    assert one["keywords"] == 6
    many = score_urgency(facts("my order hasn't arrived, urgent, asap, immediately"))
    assert factors(many)["keywords"] == 10
    detail = next(r.detail for r in many.reasons if r.factor == "keywords")
    assert detail.split(", ") == ["urgent", "asap", "immediately"]


def test_negative_sentiment_scales_with_negativity():
    mild = factors(score_urgency(facts("my order has not arrived, a bit disappointing")))
    strong = factors(score_urgency(facts(
        "I am very angry, my order has not arrived, this is terrible and awful")))
    assert 0 < mild["sentiment"] < strong["sentiment"]


def test_vip_tier_adds_points():
    assert factors(score_urgency(facts(tier="vip")))["tier"] > 0
    assert "tier" not in factors(score_urgency(facts(tier="standard")))


def test_repeat_contact_grows_with_count_and_is_capped():
    points = [
        factors(score_urgency(facts(contacts=n))).get("repeat_contact", 0) for n in (1, 2, 3, 4, 10)
    ]
    assert points[0] == 0
    assert 0 < points[1] < points[2] <= points[3]
    assert points[4] == points[3]
    detail = next(r.detail for r in score_urgency(facts(contacts=3)).reasons
                  if r.factor == "repeat_contact")
    assert detail == "3 contacts in 24 h"


def test_sla_points_grow_as_time_runs_out_and_peak_when_breached():
    def sla(left):
        result = score_urgency(facts(left=left, target=3600))
        return next(((r.points, r.detail) for r in result.reasons if r.factor == "sla"), (0, ""))

    assert sla(3000) == (0, "")
    quarter, breached = sla(900), sla(-720)
    assert quarter[1] == "25% of time left"
    assert 0 < quarter[0] < sla(60)[0] < breached[0]
    assert breached[1] == "breached 12 min ago"


def test_sla_breach_alone_makes_an_email_at_least_high():
    assert score_urgency(facts(PLAIN)).priority == "low"
    assert score_urgency(facts(PLAIN, left=-1, target=3600)).priority in ("high", "urgent")
    assert score_urgency(facts(PLAIN, left=-1, target=None)).priority in ("high", "urgent")


def test_override_file_changes_a_weight(tmp_path):
    override = tmp_path / "urgency.json"
    override.write_text(json.dumps({"tier": {"points": {"vip": 50}}}), encoding="utf-8")
    config = load_urgency_config(str(override))
    assert config.tier_points["vip"] == 50
    assert config.tier_points["standard"] == 0  # deep merge keeps sibling keys
    assert config.channel_points == load_urgency_config(None).channel_points
    result = score_urgency(facts(tier="vip"), config)
    assert factors(result)["tier"] == 50
    assert result.priority == "high"


def test_override_file_can_add_keywords(tmp_path):
    override = tmp_path / "urgency.json"
    # without the learned backstop: it reads this Italian line as a trivial question
    override.write_text(json.dumps({"keywords": {"terms": {"it": ["rimborso"]}},
                                    "model": {"file": None}}))
    config = load_urgency_config(str(override))
    assert "keywords" in factors(score_urgency(facts("Voglio un RIMBORSO"), config))
    assert "asap" in config.keyword_terms


def test_override_with_unknown_section_is_rejected(tmp_path):
    override = tmp_path / "urgency.json"
    override.write_text(json.dumps({"teir": {"points": {"vip": 50}}}))
    with pytest.raises(ValueError, match="teir"):
        load_urgency_config(str(override))


@pytest.mark.parametrize(
    "text, code",
    [
        ("Hello, I would like to know where my order is, please help me.", "en"),
        ("Hola, quisiera saber dónde está mi pedido, por favor ayúdenme.", "es"),
        ("Bonjour, je voudrais savoir où se trouve ma commande, merci.", "fr"),
        ("Hallo, ich möchte wissen, wo meine Bestellung ist, bitte helfen Sie mir.", "de"),
        ("Olá, gostaria de saber onde está a minha encomenda, por favor.", "pt"),
    ],
)
def test_detect_language(text, code):
    assert detect_language(text) == code
    assert detect_language(text) == code  # deterministic


@pytest.mark.parametrize("text", ["ok", "", "12345 678", "!!! ???", "thanks a"])
def test_detect_language_returns_none_for_short_text(text):
    assert detect_language(text) is None
