"""Local-judge S_q speed: the six dimensions from one shared prompt (`choose_many`) vs six separate
choose() calls (the path before issue 12), on the same samples in one run, and their agreement.

Each sample is a LongBench-Write prompt with a real English response (other prompts' text, cut to
--words words); both paths judge it with the configured local judge (SmolLM2-135M by default),
alternating which goes first. Reports the median seconds per sample of each path, the ratio of
their totals and the largest difference of any dimension's expected score.

  cpujob --exclusive .venv/bin/python benchmarks/quality_judge_speed.py \
      --data ../shared/benchmarks/longbench_write/longbench_write_en.jsonl --samples 10 --words 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from longwriter.judges import QualityDimensionsTask, build_judge_backend
from longwriter.config_tools import load_preset, plain
from longwriter.paths import project_root

ROOT = project_root()


class SixCalls:
    """The backend without `choose_many`: the task falls back to one choose() per dimension."""

    provides_probs = True

    def __init__(self, backend):
        self.backend, self.identity = backend, backend.identity

    async def choose(self, messages, options):
        return await self.backend.choose(messages, options)

    async def chat(self, messages, max_tokens):
        return await self.backend.chat(messages, max_tokens)

    def usage(self):
        return self.backend.usage()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=load_preset("data", "longbench_write", {"root": str(ROOT)}).path,
                        help="a LongBench-Write JSONL (default: conf/data/longbench_write.yaml's file)")
    parser.add_argument("--model", default="smollm2_135m", help="the judge's conf/model preset")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--words", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "outputs/benchmarks/quality_judge_speed.json"))
    args = parser.parse_args()

    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    corpus = " ".join(r["prompt"] for r in rows).split()
    samples = []
    for i in range(args.samples):
        start = (i * 97) % max(1, len(corpus) - args.words)
        samples.append((rows[i]["prompt"], " ".join(corpus[start:start + args.words])))

    model_cfg = plain(load_preset("model", args.model, what="--model"))
    backend = build_judge_backend({"backend": "local_hf", "name": args.model, "model": model_cfg,
                                   "max_new_tokens": 8, "cache": False}, cache_dir=ROOT / ".cache")
    backend.load()
    shared, separate = QualityDimensionsTask(backend), QualityDimensionsTask(SixCalls(backend))
    asyncio.run(shared.score(samples[0][0], (), samples[0][1]))  # warm-up (first-call allocations)

    times = {"shared": [], "separate": []}
    diffs = []
    for i, (prompt, response) in enumerate(samples):
        order = [("shared", shared), ("separate", separate)]
        if i % 2:
            order.reverse()
        dims = {}
        for name, task in order:
            start = time.perf_counter()
            judgement = asyncio.run(task.score(prompt, (), response))
            times[name].append(time.perf_counter() - start)
            dims[name] = judgement.extra["dimensions"]
        diffs.append(max(abs(dims["shared"][d] - dims["separate"][d]) for d in dims["shared"]))

    ratio = sum(times["separate"]) / sum(times["shared"])
    result = {"model": args.model, "samples": args.samples, "response_words": args.words,
              "median_s": {k: statistics.median(v) for k, v in times.items()},
              "total_s": {k: sum(v) for k, v in times.items()}, "speedup_total": ratio,
              "max_abs_dimension_diff": max(diffs)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"{args.samples} samples, {args.words}-word responses, judge {args.model}")
    print(f"six choose() calls : median {result['median_s']['separate']:.3f} s/sample, total {result['total_s']['separate']:.2f} s")
    print(f"shared prefix      : median {result['median_s']['shared']:.3f} s/sample, total {result['total_s']['shared']:.2f} s")
    print(f"speed-up {ratio:.2f}x; largest dimension difference {max(diffs):.2e}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
