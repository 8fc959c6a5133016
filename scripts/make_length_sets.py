"""Write the shipped length-following sets: longwriter/data/length_train.jsonl and length_heldout.jsonl.

Why this shape (issue 24): on a narrow span of requested counts one constant length earns nearly
everything (always 30 words scores S_l 90.3 on targets 20..40), so GRPO never has to read the number.
Here the training counts span 12..80 words (6.7x), log-spaced and each used equally often, so the best
length-blind policy is far from the best possible reward (`length_blind_ceiling` below prints it).
The held-out set shares no topic, form or count with training: five counts between the training
counts (interpolation) and two just outside (10 and 96 words: a little extrapolation).
Ranges are N +- 20% (LongBench-Write's tolerance), rounded as `range_around` does.

    python scripts/make_length_sets.py          # rewrites both files (deterministic)
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from longwriter.data.length_requirements import range_around  # noqa: E402
from longwriter.evaluation.following import length_blind_ceiling  # noqa: E402

TOLERANCE = 0.2
TRAIN_COUNTS = [12, 15, 18, 22, 27, 33, 40, 48, 58, 70, 80]
HELDOUT_COUNTS = [10, 14, 20, 30, 44, 64, 96]

TRAIN_TOPICS = [
    "a lighthouse keeper's last night", "why cities need more trees", "a lost umbrella", "learning to ride a bike",
    "the first day of spring", "an old bookshop", "a power cut in winter", "why sleep matters",
    "a fox in the garden", "a forgotten birthday", "the smell of rain", "a train that is always late",
    "a grandmother's recipe", "why people keep diaries", "a quiet Sunday morning", "the last bus home",
    "a broken violin", "why libraries matter", "a kite on a windy beach", "a neighbour's noisy dog",
    "moving to a new town", "a stray cat that stays",
]
TRAIN_FORMS = [
    ("story", "a short story about {t}"),
    ("description", "a descriptive paragraph about {t}"),
    ("essay", "a persuasive paragraph about {t}"),
    ("letter", "a letter to a friend about {t}"),
]
TRAIN_PHRASINGS = [
    "In about {n} words, write {w}.",
    "Write {w} in about {n} words.",
    "Write {w}. Use about {n} words.",
    "Using roughly {n} words, write {w}.",
]

HELDOUT_TOPICS = [
    "a snowed-in mountain cabin", "why museums should be free", "a night market", "a failed science experiment",
    "the first snowfall in a city", "a bicycle repair shop", "an abandoned railway station",
]
HELDOUT_FORMS = [
    ("diary", "a diary entry about {t}"),
    ("report", "a news-style report about {t}"),
    ("review", "a review of {t}"),
    ("speech", "the opening of a speech about {t}"),
]
HELDOUT_PHRASINGS = [
    "Compose {w}. Keep it to about {n} words.",
    "I need {w}, around {n} words long.",
    "Please write {w} (approximately {n} words).",
    "Aim for roughly {n} words: write {w}.",
]


def _row(prefix: str, index: int, source: str, text: str, n: int, genre: str) -> dict:
    lower, upper = range_around(n, TOLERANCE)
    return {"id": f"{prefix}-{index:03d}", "prompt": [{"role": "user", "content": text}], "criteria": [],
            "references": [], "length_range": [lower, upper], "source": source,
            "meta": {"required_length": n, "genre": genre, "language": "en"}}


def build(counts, topics, forms, phrasings, prefix, source, per_count) -> list[dict]:
    """per_count prompts for each count; topic, form and phrasing cycle so no pairing repeats often."""
    pairs = itertools.cycle(itertools.product(topics, forms))
    rows = []
    for k, (_, n) in enumerate(itertools.product(range(per_count), counts)):
        topic, (genre, form) = next(pairs)
        text = phrasings[(k + k // len(forms)) % len(phrasings)].format(n=n, w=form.format(t=topic))
        rows.append(_row(prefix, k + 1, source, text[0].upper() + text[1:], n, genre))
    return rows


def main() -> None:
    data = ROOT / "longwriter" / "data"
    train = build(TRAIN_COUNTS, TRAIN_TOPICS, TRAIN_FORMS, TRAIN_PHRASINGS, "length-train", "length-train", 8)
    heldout = build(HELDOUT_COUNTS, HELDOUT_TOPICS, HELDOUT_FORMS, HELDOUT_PHRASINGS, "length-heldout",
                    "length-heldout", 4)
    for name, rows in (("length_train.jsonl", train), ("length_heldout.jsonl", heldout)):
        (data / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
        required = [r["meta"]["required_length"] for r in rows]
        ceiling, best = length_blind_ceiling(required)
        print(f"{name}: {len(rows)} prompts, counts {min(required)}..{max(required)}, "
              f"length-blind ceiling S_l {ceiling:.1f} (always {best} words)")


if __name__ == "__main__":
    main()
