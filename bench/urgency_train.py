"""`python -m bench.urgency_train`: train the urgency backstop model (issue 16).

Trains one logistic regression per intent in `INTENTS` (the message's category in the
labelled set is the class) from the TUNING half of bench/data/urgency_set.jsonl, batches up
to `LAST_BATCH` only: the held-out half and later batches never reach the model. Features
are stems (the first `STEM_CHARS` letters of each normalized word) and pairs of neighbouring
stems (helpdesk/services/routing/urgency_model.py). Deterministic: the same data gives the
same file, byte for byte. Writes helpdesk/defaults/urgency_model.json; `--check` only
compares (exit 1 when the shipped file differs).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.urgency import load_set
from helpdesk.services.routing.urgency_model import features_of, train_logistic
from helpdesk.services.routing.urgency_text import tokens

OUT = Path(__file__).resolve().parents[1] / "helpdesk" / "defaults" / "urgency_model.json"
INTENTS = ("security",)
STEM_CHARS = 5
LAST_BATCH = 9  # batch 10 was written to measure the model on messages it never saw
MIN_WEIGHT = 0.01  # smaller weights change no decision; dropping them keeps the file small


def training_rows() -> list[dict]:
    return [r for r in load_set() if r["split"] == "tune" and r.get("batch", 1) <= LAST_BATCH]


def build() -> str:
    rows = training_rows()
    feats = [list(features_of(tokens(r["text"]), STEM_CHARS)) for r in rows]
    intents = {}
    for intent in INTENTS:
        model = train_logistic([(f, r["category"] == intent) for f, r in zip(feats, rows,
                                                                             strict=True)])
        weights = {k: round(v, 3) for k, v in sorted(model.weights.items())
                   if abs(v) >= MIN_WEIGHT}
        intents[intent] = {"bias": round(model.bias, 3), "weights": weights}
    data = {
        "_about": (f"Urgency backstop model: logistic regression per intent over {STEM_CHARS}-"
                   f"letter stems and stem pairs, trained by `python -m bench.urgency_train` on "
                   f"the tuning half of bench/data/urgency_set.jsonl (batches 1-{LAST_BATCH}, "
                   f"{len(rows)} messages). Do not edit by hand: retrain."),
        "stem_chars": STEM_CHARS,
        "intents": intents,
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
