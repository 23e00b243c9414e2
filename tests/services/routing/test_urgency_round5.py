"""Urgency round 5 (issue 16): alarm words inside idioms, "nothing happened" keeping the
learned model from calling fraud, a question keeping thanks from closing a problem, the
trivial class setting aside bare safety and legal words beside a question, and the
compositions and phrases added for hazards, fraud and data-protection demands.

Policy tests use given probabilities (`with_backstop`), so they do not depend on the
shipped weights. Phrasings written for these tests: none is in the bench's labelled set or
the training files."""

import dataclasses

import pytest

from helpdesk.services.routing.urgency import (
    TrivialPolicy,
    extract_features,
    score_features,
    score_urgency,
    with_backstop,
)
from tests.support.urgency import facts, reason


@pytest.fixture
def policy(shipped):
    return dataclasses.replace(
        shipped, model_thresholds={"security": 0.7, "safety": 0.7, "legal": 0.7},
        model_watch={"security": 0.4},
        model_trivial=TrivialPolicy(veto=0.6, settle=0.8, over=frozenset({"general"}),
                                    defuse=0.7))


def intent_reason(text, cfg, **kw):
    result = score_urgency(facts(text, **kw), cfg)
    return result.priority, reason(result, "intent").detail


IDIOMS = {
    "en": "The lawyer in me really likes your new terms page, short and clear.",
    "es": "Hago de abogado del diablo: la web nueva me gusta, pero el menú es lento de abrir.",
    "fr": "Je fais l'avocat du diable, mais vos newsletters sont un peu trop nombreuses.",
    "de": "Wir sind Feuer und Flamme für die neue App, nur die Schrift ist etwas klein.",
    "pt": "Vocês roubaram a cena com a embalagem nova, parabéns pelo capricho!",
}


@pytest.mark.parametrize("language", sorted(IDIOMS))
def test_an_alarm_word_inside_an_idiom_is_no_alarm(no_model, language):
    features = extract_features(facts(IDIOMS[language]), no_model)
    assert features.intent not in ("legal", "security", "safety"), features
    assert features.defused_terms  # the idiom is named
    priority, detail = intent_reason(IDIOMS[language], no_model)
    assert priority in ("low", "normal")
    assert "alarm words set aside" in detail


def test_the_same_word_outside_the_idiom_still_counts(no_model):
    priority, detail = intent_reason(
        "The lawyer in me admired your terms once; now my lawyer will contact you about the "
        "refund you refuse.", no_model)
    assert priority == "urgent" and detail.startswith("legal threat")


PHISHING_CHECK = ("I got a text saying my parcel is held at customs and I should pay 1.99 "
                  "through a link. I haven't clicked anything. Is it from you?")


def test_nothing_happened_keeps_the_model_from_calling_fraud(policy):
    features = extract_features(facts(PHISHING_CHECK), dataclasses.replace(policy, model=None))
    assert features.nothing_happened == ("haven't clicked",)
    fraud = {"security": (0.95, ["link"]), "trivial": (0.0, [])}
    assert with_backstop(features, fraud, policy).intent == features.intent != "security"
    # without the sentence the same evidence is fraud
    told = extract_features(facts(PHISHING_CHECK.replace(" I haven't clicked anything.", "")),
                            dataclasses.replace(policy, model=None))
    assert not told.nothing_happened
    assert with_backstop(told, fraud, policy).intent == "security"
    # a hazard stays one when nobody was hurt: the model still lifts safety
    hazard = {"safety": (0.95, ["cot"]), "trivial": (0.0, [])}
    cot = extract_features(facts("A slat of the cot came loose and the baby's arm was caught "
                                 "between the bars. Nothing happened, but it is still on sale"),
                           dataclasses.replace(policy, model=None))
    assert cot.nothing_happened
    assert with_backstop(cot, hazard, policy).intent == "safety"


def test_a_question_keeps_thanks_from_closing_a_problem(no_model):
    asked = ("Our API calls have been timing out for all requests since 9am and checkout "
             "relies on it. Could you confirm whether there is an incident? Many thanks")
    assert extract_features(facts(asked), no_model).intent == "outage"
    solved = "The API was timing out this morning; all fine now, many thanks"
    assert extract_features(facts(solved), no_model).intent == "thanks"


def test_the_trivial_class_sets_aside_a_bare_safety_or_legal_word_beside_a_question(policy):
    c = dataclasses.replace(policy, model=None)
    for text, alarm in (("Is the 'Explosion of Citrus' shower gel available in travel size?",
                         "safety"),
                        ("Is the series 'The Tribunal' available in the basic plan?", "legal")):
        features = extract_features(facts(text, channel="chat"), c)
        assert features.intent == alarm and features.alarm_only, features
        settled = with_backstop(features, {"trivial": (0.9, ["available"])}, policy)
        assert settled.intent == "trivial"
        assert score_features(settled, policy).priority == "low"
        # below the threshold the word stands
        assert with_backstop(features, {"trivial": (0.6, [])}, policy).intent == alarm
    # a real hazard beside a question is no bare word: a composition stands
    brakes = extract_features(facts("The brakes on the e-bike barely grab downhill, I nearly "
                                    "hit a car. Can I bring it back?"), c)
    assert brakes.intent == "safety" and not brakes.alarm_only


URGENT = {
    # brakes that no longer hold
    "Since your garage changed the pads the brake pedal goes almost to the floor": "safety",
    "Los frenos de la bici casi no frenan en bajada, hoy casi choco": "safety",
    "Depuis la révision les freins sont tout mous, j'ai failli percuter une voiture": "safety",
    "Die Bremse vom E-Bike greift bergab kaum noch": "safety",
    "Depois da revisão o pedal do travão ficou mole": "safety",
    # gas, swallowed parts, skin reactions, tingling, food poisoning
    "There's a smell of gas in the kitchen since your engineer fitted the hob": "safety",
    "Mi hijo se ha tragado una pieza del juguete": "safety",
    "Après la crème j'ai de l'urticaire partout sur les bras": "safety",
    "Wenn ich die Ofentür anfasse, kribbelt es in der Hand": "safety",
    "Depois de comer a marmita ficamos todos com diarreia": "safety",
    # a login from a device or place that is not the customer's
    "I got a login alert from a Windows laptop in Madrid, I only use an iPhone": "security",
    "Me llegó una alerta de login de un Android en Sevilla y vivo en Bilbao": "security",
    "Alerte de connexion depuis Lyon alors que je suis à Lille": "security",
    "Anmeldung von einem Gerät in Berlin, ich wohne in Graz": "security",
    "Chegou alerta de login de um iPhone em Lisboa, eu moro em Recife": "security",
    # posts the customer never wrote, remote access, data leaks
    "My account is posting crypto ads I never wrote": "security",
    "Ein Support-Mitarbeiter hatte Fernzugriff auf meinen Laptop": "security",
    "Houve uma fuga de dados, alguém sabia o número da minha encomenda": "security",
    # data-protection complaints and demands
    "Complaint lodged with the ICO this morning about my access request": "legal",
    "He presentado una reclamación ante la AEPD": "legal",
    "J'ai saisi la CNIL de votre refus": "legal",
    "Beschwerde bei der Landesdatenschutzbehörde ist eingereicht": "legal",
    "Vou fazer uma reclamação na ANPD": "legal",
}


@pytest.mark.parametrize("text", sorted(URGENT))
def test_hazards_fraud_and_data_protection_demands_are_recognised(no_model, text):
    features = extract_features(facts(text), no_model)
    assert features.intent == URGENT[text], features
    assert score_features(features, no_model).priority == "urgent"


@pytest.mark.parametrize("text", [
    "I'm afraid of getting hacked, how do I turn on two-factor?",
    "¿Cómo protegen a los clientes en caso de fraude con tarjeta?",
    "J'ai peur de me faire pirater, comment activer la double authentification ?",
    "Wie aktiviere ich 2FA? Hab Angst, gehackt zu werden",
    "Como ativo a verificação em duas etapas? Tenho medo de ser hackeado",
])
def test_fear_of_what_has_not_happened_is_not_an_incident(shipped, text):
    priority, detail = intent_reason(text, shipped, channel="chat")
    assert priority in ("low", "normal"), detail
    assert "alarm words set aside" in detail
