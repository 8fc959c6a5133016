"""Batched response generation with a persistent cache: evaluation, data selection and reference
writing all generate through here (`generate_responses`, or `generate_answers` with `GenerationOptions`).

Generation is the expensive half of an evaluation on a CPU (minutes for 60 long answers), while
re-scoring with another judge should take only the judge's time. So every response is stored in
an sqlite cache keyed by (model identity, rendered prompt, generation settings): a second
evaluation of the same model on the same prompts reads the responses back and never loads the
model at all.

Model identity is the folder's absolute path plus the name, size and mtime of every file in it,
so a checkpoint re-written in place (same path, new weights) is a miss, never a stale answer.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

from longwriter.config_tools import plain
from longwriter.data.schema import Sample
from longwriter.errors import ConfigError
from longwriter.prompting import apply_prompt_template

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationSettings:
    """Everything that changes a response besides the model and the prompt (all part of the key)."""

    max_new_tokens: int
    temperature: float  # 0 = greedy
    top_p: float
    prompt_template: str
    seed: int


@dataclass
class Generation:
    """One response. `truncated`: stopped by max_new_tokens rather than by the end-of-turn token."""

    text: str
    n_tokens: int
    truncated: bool
    cached: bool = False


def model_identity(model_path: str) -> str:
    """A string that changes whenever the model folder's content does (path + files' size/mtime)."""
    folder = Path(model_path)
    if not folder.is_dir():  # a Hub id: the id itself (revisions are pinned in the model config)
        return f"hub:{model_path}"
    entries = []
    for item in sorted(folder.iterdir()):
        if item.is_file():
            stat = item.stat()
            entries.append(f"{item.name}:{stat.st_size}:{stat.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(entries).encode()).hexdigest()[:16]
    return f"{folder.resolve()}#{digest}"


def generation_key(identity: str, messages: Sequence[dict[str, str]], settings: GenerationSettings) -> str:
    payload = json.dumps({"model": identity, "messages": [dict(m) for m in messages], "settings": asdict(settings)},
                         sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class GenerationCache:
    """key -> Generation in one sqlite file (WAL: several evaluations may share it)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS generations (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
            "value TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get(self, key: str) -> Generation | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM generations WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        value = json.loads(row[0])
        return Generation(value["text"], int(value["n_tokens"]), bool(value["truncated"]), cached=True)

    def put(self, key: str, model: str, generation: Generation) -> None:
        value = json.dumps({"text": generation.text, "n_tokens": generation.n_tokens,
                            "truncated": generation.truncated}, ensure_ascii=False)
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO generations (key, model, value, created) VALUES (?, ?, ?, ?)",
                               (key, model, value, time.time()))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def load_for_generation(model_path: str, dtype: str = "float32") -> tuple[Any, Any]:
    """(model, tokenizer) from a model folder or a LoRA adapter folder (merged), left-padding."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    folder = Path(model_path)
    if (folder / "adapter_config.json").exists():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(str(folder), dtype=torch_dtype).merge_and_unload()
        tokenizer_source = folder if (folder / "tokenizer_config.json").exists() else model.config._name_or_path
    else:
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
        tokenizer_source = model_path
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"  # decoder-only batches: the new tokens must follow every prompt directly
    model.eval()
    return model, tokenizer


def _generate_batch(model: Any, tokenizer: Any, prompts: list[str], settings: GenerationSettings) -> list[Generation]:
    import torch

    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if settings.temperature > 0:
        kwargs.update(do_sample=True, temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = model.generate(**encoded.to(model.device), **kwargs)
    new = out[:, encoded["input_ids"].shape[1]:]
    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id} | set(_as_list(model.generation_config.eos_token_id))
    results = []
    for row in new.tolist():
        end = next((i for i, token in enumerate(row) if token in stops), None)
        tokens = row if end is None else row[:end]
        text = tokenizer.decode(tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
        results.append(Generation(text, len(tokens), end is None))
    return results


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def generate_responses(
    samples: Sequence[Sample],
    model_path: str,
    settings: GenerationSettings,
    *,
    batch_size: int,
    cache: GenerationCache | None = None,
    dtype: str = "float32",
) -> tuple[list[Generation], dict[str, float]]:
    """One response per sample (in sample order) and generation stats (cache hits, timing).

    The model is loaded only when some response is missing from the cache. Prompts are sorted by
    length before batching (less padding; a too-long batch fails first) and each finished batch
    is written to the cache at once, so an interrupted evaluation keeps its progress.
    """
    from tqdm.auto import tqdm

    identity = model_identity(model_path)
    messages = [apply_prompt_template(s.prompt, settings.prompt_template) for s in samples]
    keys = [generation_key(identity, m, settings) for m in messages]
    results: list[Generation | None] = [cache.get(k) if cache else None for k in keys]
    missing = [i for i, r in enumerate(results) if r is None]
    stats = {"cache_hits": float(len(samples) - len(missing)), "generated": float(len(missing)), "seconds": 0.0}
    logger.info("generation: %d of %d responses cached, %d to generate with %s",
                len(samples) - len(missing), len(samples), len(missing), model_path)
    if missing:
        import torch

        start = time.perf_counter()
        model, tokenizer = load_for_generation(model_path, dtype)
        texts = {i: tokenizer.apply_chat_template(messages[i], tokenize=False, add_generation_prompt=True)
                 for i in missing}
        order = sorted(missing, key=lambda i: -len(tokenizer(texts[i], add_special_tokens=False)["input_ids"]))
        torch.manual_seed(settings.seed)
        step = max(1, int(batch_size))
        with tqdm(total=len(order), desc="generating", unit="response") as bar:
            for first in range(0, len(order), step):
                batch = order[first:first + step]
                for i, generation in zip(batch, _generate_batch(model, tokenizer, [texts[i] for i in batch], settings)):
                    results[i] = generation
                    if cache is not None:
                        cache.put(keys[i], identity, generation)
                bar.update(len(batch))
        stats["seconds"] = time.perf_counter() - start
        del model
    return [r for r in results if r is not None], stats


@dataclass(frozen=True)
class GenerationOptions:
    """How a local model writes one response per prompt (the policy, or a local reference writer)."""

    max_new_tokens: int = 512
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0
    prompt_template: str = "plain"
    batch_size: int = 8
    seed: int = 0

    @classmethod
    def from_config(cls, cfg: Any, where: str) -> "GenerationOptions":
        values = plain(cfg)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        return cls(**values)


def generate_answers(samples: Sequence[Sample], model_path: str, options: GenerationOptions, *,
             cache_path: str | None, dtype: str = "float32") -> tuple[list[str], dict[str, float]]:
    """One response per sample, through `generate_responses` and its cache.

    Returns the *answer part* of each response (what a judge should see under the template) and
    the generator's stats. The model is freed before returning so that a local judge can load.
    """
    from longwriter.prompting import answer_part, check_template

    check_template(options.prompt_template)
    settings = GenerationSettings(options.max_new_tokens, options.temperature, options.top_p,
                                  options.prompt_template, options.seed)
    cache = GenerationCache(cache_path) if cache_path else None
    try:
        generations, gen_stats = generate_responses(samples, model_path, settings, batch_size=options.batch_size,
                                                    cache=cache, dtype=dtype)
    finally:
        if cache is not None:
            cache.close()
    gc.collect()
    return [answer_part(g.text, options.prompt_template) for g in generations], gen_stats
