"""`python -m bench.urgency_train`: train the urgency backstop model (issue 16).

Trains one logistic regression per intent in `INTENTS` (the message's category is the class)
from the training data only: the TUNING half of bench/data/urgency_set.jsonl (batches up to
`LAST_BATCH`) plus bench/data/urgency_train_extra*.jsonl (messages written for training by
people who never saw the scorer; never part of the bench's figures). The held-out half and
later batches never reach the model. Features (helpdesk/services/routing/urgency_model.py):
stems (the first `STEM_CHARS` letters of each normalized word), character n-grams within
words (`NGRAMS`) and pairs of neighbouring stems, weighted 1/sqrt(number of features) so a
long message does not outvote a short one. The L2 penalty `L2` was chosen by
cross-validation (`python -m bench.urgency_cv`).

Deterministic (full-batch gradient descent in a fixed order, no randomness): the same data
gives the same file, byte for byte. Writes helpdesk/defaults/urgency_model.json; `--check`
only compares (exit 1 when the shipped file differs).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.urgency import load_set
from helpdesk.services.routing.urgency_model import features_of
from helpdesk.services.routing.urgency_text import tokens

OUT = Path(__file__).resolve().parents[1] / "helpdesk" / "defaults" / "urgency_model.json"
DATA = Path(__file__).resolve().parent / "data"
# messages written for training only, by people who never saw the scorer: ta-/tb- (round 3),
# tc- (English-heavy, low priority with alarming words, polite but serious) and td- (chat and
# SMS style, typos, no accents) (round 4), te- (hazard/fraud-heavy, low messages with alarm words
# in idioms) and tf- (all categories, hard cases, more English) (round 5)
EXTRA = DATA / "urgency_train_extra.jsonl"
# round 6: urgency_train_extra4.jsonl, security/safety/legal situations written as casual
# questions, how-tos and thanks, plus low messages that resemble them; round 7:
# urgency_train_extra5.jsonl, 320 English messages of every category (w7a-, w7b-: two writers)
EXTRA_FILES = (EXTRA, DATA / "urgency_train_extra2.jsonl", DATA / "urgency_train_extra3.jsonl",
               DATA / "urgency_train_extra4.jsonl", DATA / "urgency_train_extra5.jsonl")
# model class -> the categories of the labelled set it stands for
CLASSES = {"security": ("security",), "safety": ("safety",), "legal": ("legal",),
           "outage": ("outage",), "trivial": ("how_to", "feedback", "thanks")}
INTENTS = tuple(CLASSES)
STEM_CHARS = 5
NGRAMS = (3, 4)
L2 = 3e-5
ITERATIONS = 400
LAST_BATCH = 11  # batch 12 and later were written to measure, never to train
MIN_WEIGHT = 0.02  # smaller weights change no decision; dropping them keeps the file small
MIN_COUNT = 3  # a feature seen in fewer training messages says more about them than the class
DECIMALS = 2
# Candidate stop words (articles, pronouns, possessives, prepositions, conjunctions, common
# auxiliaries), normalized as the scorer's tokens are (casefolded, accents stripped): with
# them a word like "un", "yo", "mi" or "the" gets no features of its own and only counts
# within a pair of neighbouring words ("yo no", "not me"); negations, question words and
# "if" are not in the list. Tried in round 4 (`python -m bench.urgency_cv --stop-words`) and
# NOT shipped: cross-validation cost rose from 418 to 473 (to 429 with articles and
# prepositions alone), with more dangerous misses: "my", "mi", "un" do tell a personal
# incident from a general question. The model file can carry a list ("stop_words").
STOP_WORD_CANDIDATES = tuple(sorted(set("""
a an the and or but of to in on at by for from with as is are were be been am do does
did it its this that these those there here i me my mine we us our you your he him his she
her they them their so than then just also too very would will shall should may
might has have had having im ive id ill youre thats theres
el la los las lo un una unos unas y o u pero de del al en con por para a que es son era
fue ser soy estoy esta este esto estos estas ese esa eso yo me mi mis tu tus te su sus le
les nos nuestro nuestra os vos usted ustedes ha he han hay muy mas ya
le la les un une des du de et ou mais a au aux en dans sur pour par avec que ce
cet cette ces je moi mon ma mes tu toi ton ta tes il elle ils elles on nous notre nos vous
votre vos leur leurs sa son ses est suis sont ai as avons avez ont etait tres plus deja
qu l d j c s m t y
der die das den dem des ein eine einen einem einer und oder aber von zu zum zur im in
an am auf fur mit bei aus als dass ich mich mir mein meine meinen meinem meiner du dich dir
dein er sie es wir uns unser unsere ihr ihre ihren ihm ist bin sind war waren hat habe hab
haben hast sehr schon auch noch so
o a os as um uma uns umas e ou mas de do da dos das na nos nas em ao aos com por pelo
pela para que eu me meu minha meus minhas voce vc seu sua seus suas ele ela eles elas nos
nosso nossa lhe te e eh sou esta estou estava foi era tem ja muito mais
""".split())))
STOP_WORDS: tuple[str, ...] = ()  # shipped: none (above)


def extra_rows(path: Path = EXTRA) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def training_rows() -> list[dict]:
    tune = [r for r in load_set() if r["split"] == "tune" and r.get("batch", 1) <= LAST_BATCH]
    return tune + [row for path in EXTRA_FILES for row in extra_rows(path)]


def row_features(row: dict, stem_chars: int = STEM_CHARS, ngrams: tuple[int, ...] = NGRAMS,
                 stop_words: Sequence[str] = STOP_WORDS) -> list[str]:
    return sorted(f for f, _ in features_of(tokens(row["text"]), stem_chars, ngrams,
                                            frozenset(stop_words)))


def vocabulary_of(feature_lists: Sequence[Sequence[str]], min_count: int = MIN_COUNT
                  ) -> set[str]:
    """The features that occur in at least `min_count` of the messages."""
    counts = Counter(f for feats in feature_lists for f in set(feats))
    return {f for f, n in counts.items() if n >= min_count}


def compact(bias: float, weights: dict[str, float]) -> tuple[float, dict[str, float]]:
    """What is shipped: rounded, small weights dropped (the CV judges exactly this)."""
    return round(bias, DECIMALS), {f: round(w, DECIMALS) for f, w in sorted(weights.items())
                                   if abs(w) >= MIN_WEIGHT and round(w, DECIMALS)}


def fit(feature_lists: Sequence[Sequence[str]], labels: Sequence[bool], l2: float = L2,
        iterations: int = ITERATIONS, vocabulary: set[str] | None = None
        ) -> tuple[float, dict[str, float]]:
    """Class-balanced logistic regression, each message's features (a feature two words
    share counts twice) weighted 1/sqrt(count), by Nesterov-accelerated full-batch gradient
    descent: deterministic."""
    known = vocabulary_of(feature_lists) if vocabulary is None else vocabulary
    # features outside the vocabulary still count in the 1/sqrt(count) weighting
    counts = [len(feats) for feats in feature_lists]
    feature_lists = [[f for f in feats if f in known] for feats in feature_lists]
    vocabulary = sorted(known)
    index = {f: i for i, f in enumerate(vocabulary)}
    rows = np.repeat(np.arange(len(feature_lists)), [len(f) for f in feature_lists])
    cols = np.fromiter((index[f] for feats in feature_lists for f in feats), dtype=np.int64,
                       count=len(rows))
    values = np.repeat(np.array([1 / math.sqrt(max(1, n)) for n in counts]),
                       [len(f) for f in feature_lists])
    y = np.array([1.0 if label else 0.0 for label in labels])
    positives = y.sum()
    if positives == 0 or positives == len(y):
        raise ValueError("training needs examples of both classes")
    c = np.where(y == 1, len(y) / (2 * positives), len(y) / (2 * (len(y) - positives)))
    c /= c.sum()
    n, d = len(y), len(vocabulary)
    # the loss's curvature is at most 0.25 * sum(c * (|x|^2 + 1)) = 0.5 (unit rows, a bias)
    step = 1.0 / (0.5 + l2)
    w = np.zeros(d)
    b = 0.0
    w_prev, b_prev = w.copy(), b
    for t in range(1, iterations + 1):
        momentum = (t - 1) / (t + 2)
        vw = w + momentum * (w - w_prev)
        vb = b + momentum * (b - b_prev)
        z = vb + np.bincount(rows, weights=values * vw[cols], minlength=n)
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        r = c * (p - y)
        grad_w = np.bincount(cols, weights=values * r[rows], minlength=d) + l2 * vw
        grad_b = float(r.sum())
        w_prev, b_prev = w, b
        w = vw - step * grad_w
        b = vb - step * grad_b
    return b, {f: float(w[i]) for i, f in enumerate(vocabulary)}


def build(rows: Sequence[dict] | None = None) -> str:
    rows = training_rows() if rows is None else rows
    feats = [row_features(r) for r in rows]
    vocabulary = vocabulary_of(feats)
    biases, weights = {}, {}
    for intent in INTENTS:
        biases[intent], weights[intent] = compact(*fit(
            feats, [r["category"] in CLASSES[intent] for r in rows], vocabulary=vocabulary))
    # one row per feature, a weight per intent (in the order of "intents"): half the size of
    # one table per intent
    table = {f: [weights[i].get(f, 0) for i in INTENTS]
             for f in sorted(set().union(*weights.values()))}
    extra = sum(1 for r in rows if r["id"] not in {s["id"] for s in load_set()})
    data = {
        "_about": (f"Urgency backstop model: logistic regression per intent over {STEM_CHARS}-"
                   f"letter stems, character {'/'.join(map(str, NGRAMS))}-grams within words "
                   f"and stem pairs (each weighted 1/sqrt(feature count)), trained by `python -m "
                   f"bench.urgency_train` on {len(rows)} messages: the tuning half of "
                   f"bench/data/urgency_set.jsonl (batches 1-{LAST_BATCH}) and {extra} of "
                   f"bench/data/urgency_train_extra*.jsonl. Do not edit by hand: retrain."),
        "stem_chars": STEM_CHARS,
        "ngrams": list(NGRAMS),
        "scale": "rsqrt",
        **({"stop_words": list(STOP_WORDS)} if STOP_WORDS else {}),
        "intents": list(INTENTS),
        "biases": [biases[i] for i in INTENTS],
        "weights": table,
    }
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.urgency_train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true",
                        help="compare with the shipped model instead of writing it")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    text = build()
    if args.check:
        same = OUT.exists() and OUT.read_text(encoding="utf-8") == text
        print("the shipped model is what the script trains" if same else
              "the shipped model differs from what the script trains")
        return 0 if same else 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
