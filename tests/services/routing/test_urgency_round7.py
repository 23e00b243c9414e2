"""Urgency round 7 (issue 16): phrases and compositions found from the cross-validated misses
of the training data — a late order needed now (medicine running out, an event) is high, the
customer's own repeated card attempts are not fraud, more ways of disowning an order, more
hypotheticals set aside, and English feedback, how-to and thanks phrasings.

The phrase lists alone are tested (the learned backstop only ever raises: see
test_urgency_intents.py). Phrasings written for these tests: none is in the bench's labelled
set or the training files."""


import pytest

from helpdesk.services.routing.urgency import (
    extract_features,
    score_features,
    score_urgency,
)
from tests.support.urgency import facts, reason


def judged(text, cfg, **kw):
    features = extract_features(facts(text, **kw), cfg)
    return features.intent, score_features(features, cfg).priority


CRITICAL_ORDERS = {
    "en": "The inhaler refill I ordered on Monday still hasn't shown up and I'm on my last puff",
    "es": "Mi pedido con la insulina de mi madre todavía no ha llegado y solo le queda una pluma",
    "fr": "La commande de médicaments pour mon père n'est toujours pas arrivée, il n'en a plus",
    "de": "Das Paket mit den Tabletten meiner Oma ist noch nicht gekommen, sie hat nur noch zwei",
    "pt": "A encomenda com o remédio da minha avó ainda não chegou e acaba amanhã",
}


@pytest.mark.parametrize("language", sorted(CRITICAL_ORDERS))
def test_a_late_order_needed_now_is_high(no_model, language):
    assert judged(CRITICAL_ORDERS[language], no_model) == ("critical_order", "high")


def test_portuguese_queda_is_an_outage_but_spanish_queda_is_not(no_model):
    # "queda" (pt: a fall, an outage) is Spanish for "remains" / "gets stuck"
    assert judged("Houve uma queda geral no sistema, nenhum cliente entra", no_model)[0] == \
        "outage"
    assert judged("La lavadora se queda parada a mitad del programa", no_model)[0] != "outage"


def test_a_late_order_for_an_event_is_high_and_says_why(no_model):
    text = "Ordered the suits for my brother's wedding on Saturday and the parcel is stuck in Leeds"
    result = score_urgency(facts(text), no_model)
    assert result.priority == "high"
    intent = reason(result, "intent").detail
    assert intent.startswith("late order needed now (medicine running out, an event):")
    # the same order without the need is an ordinary late order (normal), and a question
    # about ordering medicine is not late at all
    assert judged("The tracking of my suits is stuck in Leeds", no_model)[0] == "lost_order"
    assert judged("Can I order insulin pens through your pharmacy?", no_model)[1] == "low"


@pytest.mark.parametrize("text", [
    "My card keeps getting declined when I pay, I tried three times already",
    "Mi tarjeta la rechaza la web, lo intenté tres veces",
])
def test_the_customers_own_repeated_card_attempts_are_not_fraud(no_model, text):
    assert judged(text, no_model)[0] != "security"


def test_repeated_charges_the_customer_did_not_make_stay_fraud(no_model):
    # guards the exception above: it must not reach charges the customer disowns
    assert judged("Three charges in a row on my card this morning, none of them mine",
                  no_model) == ("security", "urgent")


@pytest.mark.parametrize("text", [
    "Got an order confirmation for a gaming chair going to Cardiff. I ordered nothing.",
    "There are two purchases on my account from Sunday that I don't remember making",
    "Hay dos compras en mi cuenta que no recuerdo haber hecho",
])
def test_an_order_the_customer_disowns_is_fraud(no_model, text):
    assert judged(text, no_model) == ("security", "urgent")


@pytest.mark.parametrize("text", [
    "What happens if my card gets stolen on holiday, do I lose the money?",
    "If my account ever gets hacked, is my money covered?",
    "thought my card was stolen, found it in my coat. can you unfreeze it? thanks",
])
def test_hypothetical_or_resolved_theft_is_no_alarm(no_model, text):
    intent, priority = judged(text, no_model)
    assert intent != "security" and priority != "urgent"


@pytest.mark.parametrize("text, intent", [
    ("Who decided to hide the search box behind three menus? Change it back, it was fine before.",
     "feedback"),
    ("Please consider offering paper invoices again, some of us still file them", "feedback"),
    ("is there a setting so the app stops playing videos on its own, it eats through my mobile "
     "data every single month", "how_to"),
    ("The replacement headphones came today and it's perfect", "thanks"),
])
def test_english_feedback_how_to_and_thanks_phrasings_are_low(no_model, text, intent):
    assert judged(text, no_model) == (intent, "low")


# ------------------------------------------------ from the new English training messages


@pytest.mark.parametrize("text, intent, priority", [
    # a malfunction or a blocked login that others share is an outage
    ("is the basket broken? my husband says the same on his phone", "outage", "high"),
    ("Nobody can log in at our office since ten this morning", "outage", "urgent"),
    ("My account is frozen and I need to pay a bill today", "blocked", "normal"),
    ("I got charged for two bags but only bought one", "billing_error", "normal"),
    ("my parcel is overdue, order 11873", "lost_order", "normal"),
    ("The cake topper for her birthday on Sunday hasn't arrived, order 5521", "critical_order",
     "high"),
    ("The toaster gives a shock when you touch the metal side", "safety", "urgent"),
    ("I keep getting dispatch emails for orders I haven't ordered", "security", "urgent"),
    ("Getting five push notifications a day from your app is too much, tone it down",
     "feedback", "low"),
    ("Replacement kettle came today and works perfectly.", "thanks", "low"),
])
def test_english_phrasings_of_the_new_training_messages(no_model, text, intent, priority):
    assert judged(text, no_model) == (intent, priority)


@pytest.mark.parametrize("text", [
    # the customer did not act on the message: no phishing composition
    "An SMS pretending to be from you says my parcel is held and asks for my details, I didn't "
    "click it. Who do I tell?",
    # an alarm word the sender denies
    "Not fraud or anything, but I think you charged me twice for the same dress",
    "The desk fan makes a rattling noise, nothing dangerous, but it is annoying. Can I get a new "
    "one?",
])
def test_what_the_sender_says_did_not_happen_is_no_alarm(no_model, text):
    intent, priority = judged(text, no_model)
    assert intent not in ("security", "safety") and priority != "urgent"
