"""Urgency judgement that generalises (issue 16, round 2): security incidents recognised by
composition (what happened + who did it) rather than by one exact phrase, and alarm words
set aside when the sender says nothing happened."""

import json

import pytest

from helpdesk.services.routing.urgency import (
    default_config_data,
    extract_features,
    load_urgency_config,
    score_features,
    score_urgency,
)
from tests.support.urgency import facts, reason

# Phrasings written for these tests: none of them is in the bench's labelled set.
COMPOSED = {
    "money moved that the customer did not make": {
        "en": "There is a transfer of 300 pounds on my statement to a Mr Novak, I never sent that",
        "es": "Veo una transferencia de 400 euros que yo no he hecho a un tal Ramírez",
        "fr": "Un virement de 250 € est parti de mon compte, je n'ai jamais fait ça",
        "de": "Da ist eine Überweisung über 700 € an eine Firma, die ich nicht kenne",
        "pt": "Tem uma transferência de 500 reais na minha conta que eu não fiz",
    },
    "a code, PIN or password given to a caller": {
        "en": "A woman phoned saying she was from the bank and I told her my PIN",
        "es": "Me llamaron del supuesto soporte y les dije el código que me llegó",
        "fr": "Quelqu'un m'a appelé au téléphone et je lui ai donné mon mot de passe",
        "de": "Ein Anrufer wollte meinen Code und ich habe ihn ihm genannt",
        "pt": "Recebi uma ligação de um suposto atendente e passei a senha para ele",
    },
    "money gone from the account": {
        "en": "My savings are empty, 4,000 moved out overnight and I have no idea where it went",
        "es": "Me han desaparecido 300 euros de la cuenta sin explicación",
        "fr": "Il manque 1 500 € sur mon compte, je n'ai fait aucune opération",
        "de": "Mir fehlen 800 € auf dem Konto, das Geld ist einfach verschwunden",
        "pt": "Sumiram 2 mil reais da minha conta hoje de manhã",
    },
    "the customer acted for an impersonator": {
        "en": "A fake bank advisor texted me and I approved the payment in my app",
        "es": "Me escribieron haciéndose pasar por mi hija y les hice un bizum",
        "fr": "Un faux conseiller m'a fait valider une opération sur mon application",
        "de": "Ein angeblicher Mitarbeiter rief an und ich habe die Zahlung freigegeben",
        "pt": "Um falso atendente me ligou e eu confirmei a transferência no app",
    },
    "contact details changed by someone else": {
        "en": "My phone number on the account was changed and I did not change it",
        "es": "Alguien ha modificado la dirección de correo de mi perfil",
        "fr": "Quelqu'un a modifié le numéro de téléphone de mon compte",
        "de": "Jemand hat die Telefonnummer in meinem Profil geändert",
        "pt": "Alguém alterou o endereço de e-mail do meu cadastro",
    },
}


def intent_reason(result):
    return reason(result, "intent")


@pytest.mark.parametrize("why, language", [(w, lang) for w in COMPOSED
                                           for lang in ("en", "es", "fr", "de", "pt")])
def test_a_security_incident_is_recognised_by_its_parts(why, language):
    result = score_urgency(facts(COMPOSED[why][language]))
    assert result.priority == "urgent", result
    detail = intent_reason(result).detail
    assert detail.startswith("security or fraud:") and " + " in detail  # the parts it saw


@pytest.mark.parametrize("language, text", [
    ("en", "The charger got so hot that the wall socket went black"),
    ("es", "El enchufe del cargador se derritió y huele a plástico"),
    ("fr", "La prise du chargeur a fondu et crépite"),
    ("de", "Das Netzteil ist überhitzt und das Kabel geschmolzen"),
    ("pt", "O carregador esquentou tanto que derreteu a tomada"),
])
def test_a_power_part_overheating_is_a_safety_hazard(language, text):
    result = score_urgency(facts(text))
    assert result.priority == "urgent"
    assert intent_reason(result).detail.startswith("safety hazard:")


@pytest.mark.parametrize("text", [
    "I made a transfer yesterday, when will it reach the other account?",  # money, no denial
    "The refund money is still missing from my account",  # money missing: a refund (unless)
    "Das Geld fehlt noch, die Erstattung ist nicht angekommen",
    "My charger cable is too short, do you sell longer ones?",  # a power part, no damage
    "I gave my colleague the code so she can print the invoices",  # a code, no caller
    "How do I change the phone number on my profile?",  # details changed, by the customer
    "Can someone check whether my last payment went through?",  # someone, not a stranger
])
def test_one_part_alone_is_not_a_security_incident(text):
    features = extract_features(facts(text))
    assert features.intent != "security", features


@pytest.mark.parametrize("text", [
    "Just curious, nothing happened: what should I do if my account is hacked?",
    "Thought my card was stolen but it was in my other jacket, sorry! All good.",
    "Achei que era golpe, mas era a minha própria assinatura. Obrigada!",
    "Ich dachte, das sei Betrug, aber es war meine eigene Bestellung.",
])
def test_alarm_words_are_set_aside_when_nothing_happened(text):
    result = score_urgency(facts(text))
    assert result.priority in ("low", "normal"), result
    assert extract_features(facts(text)).intent != "security"
    assert "alarm words set aside" in intent_reason(result).detail


def test_a_composition_still_counts_when_the_sender_plays_it_down():
    result = score_urgency(facts("Nothing happened yet I think, but a man called from your "
                                 "bank and I read out the code from my text message"))
    assert result.priority == "urgent"
    assert " + " in intent_reason(result).detail


def test_combo_groups_name_concepts_an_operator_can_edit(tmp_path):
    override = tmp_path / "urgency.json"
    override.write_text(json.dumps({"intents": {
        "concepts": {"pet": ["hamster*", "parrot"]},
        "combos": [{"intent": "safety", "why": "a pet in danger",
                    "all": ["@pet", ["swallowed", "trapped"]]}],
    }}), encoding="utf-8")
    config = load_urgency_config(str(override))
    features = extract_features(facts("Our hamsters are trapped in the delivery box"), config)
    assert features.intent == "safety" and features.intent_terms == ("hamsters + trapped",)
    assert default_config_data()["intents"]["concepts"]["denial"]  # the shipped concepts


def test_an_unless_word_stops_a_combo(tmp_path):
    override = tmp_path / "urgency.json"
    override.write_text(json.dumps({"intents": {
        "concepts": {"pet": ["hamster*"]},
        "combos": [{"intent": "safety", "why": "a pet in danger", "all": ["@pet", ["trapped"]],
                    "unless": ["toy"]}],
    }}), encoding="utf-8")
    config = load_urgency_config(str(override))
    assert extract_features(facts("The hamster is trapped"), config).intent == "safety"
    assert extract_features(facts("The toy hamster is trapped"), config).intent != "safety"


def test_a_combo_naming_an_unknown_concept_is_refused(tmp_path):
    override = tmp_path / "urgency.json"
    override.write_text(json.dumps({"intents": {"combos": [
        {"intent": "security", "why": "typo", "all": ["@mony_out", "@denial"]}]}}),
        encoding="utf-8")
    with pytest.raises(ValueError, match="unknown concept @mony_out"):
        load_urgency_config(str(override))


# --------------------------------------------------------------------------- learned backstop


def test_the_learned_backstop_catches_fraud_no_phrase_covers_and_says_why(tmp_path):
    text = "Tem uma compra estranha no meu cartão em outra cidade"
    off = tmp_path / "off.json"
    off.write_text(json.dumps({"model": {"file": None}}), encoding="utf-8")
    assert extract_features(facts(text), load_urgency_config(str(off))).intent != "security"
    features = extract_features(facts(text))
    assert features.intent == "security" and features.model_probability >= 0.6
    detail = intent_reason(score_urgency(facts(text))).detail
    assert detail.startswith("security or fraud (learned model, 0.")
    assert all(f'"{w}"' in detail for w in features.intent_terms) and features.intent_terms


def test_the_backstop_never_overrides_thanks_or_defused_alarm_words():
    assert extract_features(facts("Obrigada, minha conta e o pix estão funcionando de novo!")
                            ).model_probability is None
    # round 4: the hypothetical is not lifted; the trivial class may settle it (a question:
    # low), which is not an override of the alarm words set aside
    features = extract_features(facts(
        "Just curious, nothing happened: what if a transfer leaves my account?"))
    assert features.intent in ("general", "how_to", "trivial")
    assert score_features(features).priority == "low"


@pytest.mark.timeout(600)  # training on 2,768 messages: ~20 s of CPU, minutes on a loaded machine
def test_the_shipped_model_is_what_the_training_script_builds_and_is_small_and_fast():
    import time
    from pathlib import Path

    from bench import urgency_train
    from helpdesk.services.routing.urgency_model import load_model
    from helpdesk.services.routing.urgency_text import tokens

    shipped = Path(urgency_train.OUT)
    assert shipped.read_text(encoding="utf-8") == urgency_train.build()  # reproducible
    # well under 1 MB: 600 KB in round 5 (2,198 messages), 638 KB in round 6 (2,448: the
    # 250 new messages bring their own words), 689 KB in round 7 (2,768); a bigger model
    # loads and predicts as fast
    assert shipped.stat().st_size < 700_000
    load_model.cache_clear()
    began = time.perf_counter()
    model = load_model(str(shipped))
    assert time.perf_counter() - began < 1.0  # ~20-70 ms on the shared test machine
    toks = tokens("Alguien ha hecho una transferencia desde mi cuenta que no reconozco " * 3)
    began = time.perf_counter()
    for _ in range(200):
        model.predict(toks)
    assert (time.perf_counter() - began) / 200 < 0.001  # well under a millisecond a message


def test_a_model_threshold_for_an_intent_the_model_lacks_is_refused(tmp_path):
    override = tmp_path / "urgency.json"
    override.write_text(json.dumps({"model": {"thresholds": {"cancellation": 0.5}}}),
                        encoding="utf-8")
    with pytest.raises(ValueError, match="no intent cancellation"):
        load_urgency_config(str(override))
