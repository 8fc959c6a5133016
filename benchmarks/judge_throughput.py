"""Reward-style pairwise judging throughput against a local OpenAI-compatible server.

A batch of 64 comparisons (reference first, policy response second, as the `disadvantage`
position does; ~400 words each) goes through `PairwiseTask` -> `OpenAIBackend` -> FakeOpenAIServer
with a fixed latency of 200 ms, concurrency limit 16, no cache. With perfect overlap the
throughput is concurrency / latency = 80 comparisons/s; target: at least 0.9 of that. The same
batch with concurrency 1 is the in-run sequential baseline.

Method: the server runs in its own process by default (`--server subprocess`), as a real endpoint
would, so its request handling does not share the judge client's GIL; `--server inprocess` runs
it in a thread of this process instead. One comparison warms the client up first (the openai
client's first request builds its type caches, ~0.1 s once per process). The concurrent batch is
repeated (`--repeats`) and the median is reported. On a loaded machine the figures drop: the
client needs about 2 ms of CPU per request, and a wave of 16 responses arriving together queues
on one event loop.

Run: .venv/bin/python benchmarks/judge_throughput.py [--n 64 --latency 0.2 --concurrency 16]
Exit status 1 when the median ratio to the ideal is below --min-ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from longwriter.judges import OpenAIBackend, OpenAISettings, PairwiseTask
from longwriter.testing.fake_openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[1]
WORDS = "river stone light winter letter garden memory silence harbour morning".split()
REPLY = "Both are fluent; the first is more vivid.\nVerdict: [[A]]"


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


@contextlib.contextmanager
def fake_server(mode: str, latency: float) -> Iterator[str]:
    """The server's base URL, served from a thread (inprocess) or a child process (subprocess)."""
    if mode == "inprocess":
        with FakeOpenAIServer(REPLY, latency=latency) as server:
            yield server.base_url
        return
    cmd = [sys.executable, "-m", "longwriter.testing.fake_openai_server", "--port", "0", "--latency", str(latency),
           "--reply", REPLY]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stdout.readline()  # "serving http://127.0.0.1:PORT/v1 ..."
        if not line.startswith("serving "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def server_stats(base_url: str, reset: bool = False) -> dict:
    url = base_url.rsplit("/v1", 1)[0] + "/_stats"
    request = urllib.request.Request(url, method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


async def judge_batches(base_url: str, concurrency: int, pairs: list[tuple[str, str, str]], repeats: int
                        ) -> tuple[list[float], list, int]:
    settings = OpenAISettings(base_url=base_url, model="fake-judge", api_key_env="LW_BENCH_NO_KEY",
                              api_key_required=False, concurrency=concurrency, rpm=None, tpm=None,
                              timeout_s=30, max_retries=0)
    backend = OpenAIBackend(settings)
    task = PairwiseTask(backend)
    await task.compare("warm-up", [], "a", "b")
    times, peak, judgements = [], 0, []
    for _ in range(repeats):
        await asyncio.to_thread(server_stats, base_url, True)
        start = time.perf_counter()
        judgements = await asyncio.gather(*(task.compare(p, [], ref, resp) for p, ref, resp in pairs))
        times.append(time.perf_counter() - start)
        peak = max(peak, (await asyncio.to_thread(server_stats, base_url))["max_in_flight"])
    await backend.aclose()
    return times, judgements, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="comparisons in the batch")
    parser.add_argument("--latency", type=float, default=0.2, help="server latency per request (s)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--words", type=int, default=400, help="words per reference/response")
    parser.add_argument("--repeats", type=int, default=5, help="concurrent batches; the median is reported")
    parser.add_argument("--server", choices=["subprocess", "inprocess"], default="subprocess")
    parser.add_argument("--min-ratio", type=float, default=0.9)
    parser.add_argument("--skip-sequential", action="store_true")
    args = parser.parse_args()

    rng = random.Random(0)
    pairs = [(f"Write a story about {rng.choice(WORDS)}.", _text(rng, args.words), _text(rng, args.words))
             for _ in range(args.n)]
    with fake_server(args.server, args.latency) as base_url:
        times, judgements, peak = asyncio.run(judge_batches(base_url, args.concurrency, pairs, args.repeats))
        sequential = None
        if not args.skip_sequential:
            sequential = asyncio.run(judge_batches(base_url, 1, pairs, 1))[0][0]

    elapsed = statistics.median(times)
    unknown = sum(j.verdict is None for j in judgements)
    ideal = args.concurrency / args.latency
    ratio = args.n / elapsed / ideal
    load = os.getloadavg()[0]
    result = {"n": args.n, "latency_s": args.latency, "concurrency": args.concurrency, "server": args.server,
              "elapsed_s": [round(t, 3) for t in times], "median_s": round(elapsed, 3),
              "throughput_per_s": round(args.n / elapsed, 1), "ideal_per_s": ideal,
              "ratio_to_ideal": round(ratio, 3), "best_ratio": round(args.n / min(times) / ideal, 3),
              "server_peak_in_flight": peak, "unknown_verdicts": unknown, "load_avg_1m": round(load, 2)}
    print(f"concurrent (limit {args.concurrency}, {args.server} server): {args.n} comparisons in "
          f"{elapsed:.3f} s (median of {len(times)}) = {args.n / elapsed:.1f}/s; ideal {ideal:.1f}/s; "
          f"ratio {ratio:.3f} (best {result['best_ratio']:.3f}; target >= {args.min_ratio})")
    print(f"server peak in flight: {peak}; unknown verdicts: {unknown}; load average: {load:.2f}")
    if sequential is not None:
        result.update(sequential_s=round(sequential, 3), speedup=round(sequential / elapsed, 2))
        print(f"sequential (limit 1): {sequential:.3f} s = {args.n / sequential:.1f}/s; "
              f"speedup {sequential / elapsed:.1f}x")
    print(json.dumps(result))
    if ratio < args.min_ratio or unknown:
        sys.exit(1)


if __name__ == "__main__":
    main()
