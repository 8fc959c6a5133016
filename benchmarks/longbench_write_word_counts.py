"""S_l of one model on LongBench-Write, scored under every word-count convention from ONE generation.

Why: issue 12 moved the default word count from whitespace tokens to LongBench-Write's own rule
(`longwriter.text`). This measures what that changes for a real model: the responses are generated
once (and cached in the evaluation's generation cache, so a rerun only re-scores) and S_l is then
computed with each convention on the same texts.

Run (2 shared cores: hold a CPU slot):
  cpujob .venv/bin/python benchmarks/longbench_write_word_counts.py \
      --data ../shared/benchmarks/longbench_write/longbench_write_en.jsonl --max-new-tokens 512
Prints a table and writes --out (JSON: settings, per-convention S_l / mean words, per-prompt rows).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from longwriter.data.benchmarks import load_longbench_write
from longwriter.generation import GenerationCache, GenerationSettings, generate_responses
from longwriter.evaluation.metrics import length_score
from longwriter.models import resolve_model_path
from longwriter.config_tools import load_preset
from longwriter.paths import project_root
from longwriter.text import WORD_COUNTS, count_words

ROOT = project_root()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=load_preset("data", "longbench_write", {"root": str(ROOT)}).path,
                        help="a LongBench-Write JSONL (default: conf/data/longbench_write.yaml's file)")
    parser.add_argument("--model", default="smollm2_135m", help="a conf/model preset")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cache", default=str(ROOT / ".cache/generations/generations.sqlite"))
    parser.add_argument("--out", default=str(ROOT / "outputs/benchmarks/longbench_write_word_counts.json"))
    args = parser.parse_args()

    samples = load_longbench_write({"path": args.data})
    model_cfg = load_preset("model", args.model, what="--model")
    model_path = resolve_model_path(model_cfg, ROOT / ".cache")
    settings = GenerationSettings(args.max_new_tokens, 0.0, 1.0, "plain", 0)
    cache = GenerationCache(args.cache)
    try:
        generations, stats = generate_responses(samples, model_path, settings, batch_size=args.batch_size,
                                                 cache=cache, dtype=str(model_cfg.get("dtype", "float32")))
    finally:
        cache.close()

    rows = []
    for sample, generation in zip(samples, generations):
        required = sample.meta["required_length"]
        row = {"id": sample.id, "required": required, "tokens": generation.n_tokens,
               "truncated": generation.truncated}
        for name in WORD_COUNTS:
            words = count_words(generation.text, name)
            row[f"words/{name}"] = words
            row[f"s_l/{name}"] = length_score(required, words)
        rows.append(row)

    summary = {}
    for name in WORD_COUNTS:
        summary[name] = {"s_l": statistics.fmean(r[f"s_l/{name}"] for r in rows),
                         "words_mean": statistics.fmean(r[f"words/{name}"] for r in rows)}
    ref = "longbench_write"
    ratios = [r["words/whitespace"] / r[f"words/{ref}"] - 1 for r in rows if r[f"words/{ref}"]]
    result = {
        "settings": {"data": str(Path(args.data).resolve()), "model": args.model, "model_path": model_path,
                     "max_new_tokens": args.max_new_tokens, "greedy": True, "n": len(rows),
                     "generation": stats},
        "summary": summary,
        "whitespace_vs_reference_words": {"mean": statistics.fmean(ratios), "max": max(ratios), "n": len(ratios)},
        "truncated_rate": sum(r["truncated"] for r in rows) / len(rows),
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))

    print(f"{len(rows)} prompts, {args.model}, max_new_tokens={args.max_new_tokens}, greedy; "
          f"generated {stats['generated']:.0f}, cached {stats['cache_hits']:.0f} ({stats['seconds']:.0f} s)")
    print(f"{'convention':<18}{'S_l':>8}{'mean words':>12}")
    for name, values in summary.items():
        print(f"{name:<18}{values['s_l']:>8.2f}{values['words_mean']:>12.1f}")
    print(f"whitespace counts vs reference: {100 * result['whitespace_vs_reference_words']['mean']:+.1f}% on average, "
          f"up to {100 * result['whitespace_vs_reference_words']['max']:+.1f}%; truncated: {result['truncated_rate']:.0%}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
