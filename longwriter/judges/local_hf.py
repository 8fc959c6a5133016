"""Judge backend over an in-process transformers causal LM: the embedded, offline default.

`choose()` reads the verdict from the next-token distribution, so no free text is parsed: the
judge task ends its messages with an assistant *prefill* (e.g. "Verdict: [[") and asks for the
probabilities of the options that may follow ("A", "B", "C"). A trailing assistant message is
always treated as such a prefill: the messages before it are rendered with the chat template's
generation prompt and the prefill is appended verbatim.

Options are tokenized in context (prompt + option, minus the prompt's tokens), so leading-space
conventions of the tokenizer do not matter. When the options start with distinct tokens, one
forward pass suffices and each option's probability is that of its first token (the usual
case: letters). When they share a first token (SmolLM2 writes "10" as "1","0", so "1" and "10"
collide), the probabilities are computed exactly over the options' token trie: a product over
the tokens where options diverge, times P(stop) for an option that is a prefix of another
(P("1") * (1 - P("0" | "1"))); the extra positions reuse the prompt's KV cache. The result is
renormalised over the options.

One model, one forward at a time: calls run on a single dedicated worker thread (so waiting
calls do not occupy the default executor) and under a lock (for the sync entry points).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any, Callable, Sequence

from longwriter.judges.base import ChatResult, ChoiceResult, JudgeError, Message, Usage
from longwriter.judges.settings import LocalHFSettings

logger = logging.getLogger(__name__)

Loader = Callable[[], "tuple[Any, Any]"]


class LocalHFBackend:
    provides_probs = True

    def __init__(self, model: Any = None, tokenizer: Any = None, *, loader: Loader | None = None,
                 name: str, max_new_tokens: int = LocalHFSettings.max_new_tokens):
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither and a loader")
        if model is None and loader is None:
            raise ValueError("LocalHFBackend needs (model, tokenizer) or loader=")
        self._model, self._tokenizer, self._loader = model, tokenizer, loader
        self.name = name
        self.identity = f"local_hf:{name}"
        self.max_tokens_cap = max_new_tokens
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-judge")
        self._usage = Usage()

    def __repr__(self) -> str:
        return f"LocalHFBackend(name={self.name!r}, loaded={self._model is not None})"

    def usage(self) -> Usage:
        return Usage(**asdict(self._usage))

    # -- loading ---------------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._model is not None:
            return
        try:
            self._model, self._tokenizer = self._loader()
        except Exception as exc:
            raise JudgeError(f"local judge model {self.name!r} could not be loaded: {exc}") from exc
        self._model.eval()

    def load(self) -> None:
        """Load now (the loader is otherwise called by the first judge call)."""
        with self._lock:
            self._ensure_loaded()

    async def check(self) -> None:
        """Startup fail-fast, same contract as the API backend's check()."""
        await self._run(self.load)

    async def _run(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- rendering -------------------------------------------------------------------------------
    def _render(self, messages: Sequence[Message]) -> str:
        messages = [dict(m) for m in messages]
        prefill = ""
        if messages and messages[-1].get("role") == "assistant":
            prefill = messages.pop()["content"]
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"tokenizer of {self.name!r} has no chat template")
        text = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + prefill

    def _encode(self, text: str) -> list[int]:
        # The rendered template already holds the special tokens it wants (BOS etc.).
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _check_length(self, n_tokens: int) -> None:
        limit = getattr(self._model.config, "max_position_embeddings", None)
        if limit and n_tokens > limit:
            raise ValueError(f"judge prompt has {n_tokens} tokens, more than the model's {limit}")

    # -- choose ----------------------------------------------------------------------------------
    def _option_ids(self, prompt: str, options: Sequence[str]) -> tuple[list[int], list[tuple[int, ...]]]:
        # Trailing spaces of a prefill ("Score: ") belong to the option's first token in most
        # BPE vocabularies (" 7"), so they are moved from the prompt into the options.
        stem = prompt.rstrip(" ")
        space = prompt[len(stem):]
        prompt_ids = self._encode(stem)
        seqs = []
        for option in options:
            if not option:
                raise ValueError("empty option")
            full = self._encode(stem + space + option)
            if full[: len(prompt_ids)] == prompt_ids and len(full) > len(prompt_ids):
                seqs.append(tuple(full[len(prompt_ids):]))
            else:  # the option merged with the prompt's last token: score it on its own
                seqs.append(tuple(self._encode(space + option)))
        if len(set(seqs)) != len(seqs):
            raise ValueError(f"options {list(options)} tokenize identically")
        return prompt_ids, seqs

    def _forward_logprobs(self, ids: Sequence[int], cache: Any = None) -> tuple[Any, Any]:
        import torch

        device = next(self._model.parameters()).device
        inputs = dict(input_ids=torch.tensor([list(ids)], device=device), past_key_values=cache, use_cache=True)
        try:  # only the last position's logits are read: skip the vocabulary projection of the others
            out = self._model(**inputs, logits_to_keep=1)
        except TypeError:  # a model class without logits_to_keep
            out = self._model(**inputs)
        return out.logits[0, -1].double().log_softmax(-1).cpu(), out.past_key_values

    def choose_sync(self, messages: Sequence[Message], options: Sequence[str]) -> ChoiceResult:
        import torch

        with self._lock, torch.inference_mode():
            self._ensure_loaded()
            try:
                prompt_ids, seqs = self._option_ids(self._render(messages), options)
                self._check_length(len(prompt_ids) + max(len(s) for s in seqs))
                probs = self._trie_probs(prompt_ids, seqs)
            except Exception as exc:  # a bad call is an unknown judgement, not a crash
                return self._failed(exc)
            self._usage.requests += 1
            self._usage.prompt_tokens += len(prompt_ids)
        return ChoiceResult(dict(zip(options, probs)))

    def choose_many_sync(self, requests: Sequence[Sequence[Message]], options: Sequence[str]) -> list[ChoiceResult]:
        """`choose_sync` for several message lists at once, reading their shared token prefix once.

        The prompts of one judgement that differ only at the end (the six S_q dimensions differ
        only in the assistant prefill) share everything before: one forward over the common
        prefix fills a KV cache, each prompt then runs only its own tail from that cache, which is
        cropped back to the prefix before the next. Same probabilities as `choose_sync` per
        request (up to float rounding of the split forward).
        """
        import torch

        results: list[ChoiceResult | None] = [None] * len(requests)
        with self._lock, torch.inference_mode():
            self._ensure_loaded()
            prepared: list[tuple[int, list[int], list[tuple[int, ...]]]] = []
            for k, messages in enumerate(requests):
                try:
                    prompt_ids, seqs = self._option_ids(self._render(messages), options)
                    self._check_length(len(prompt_ids) + max(len(s) for s in seqs))
                    prepared.append((k, prompt_ids, seqs))
                except Exception as exc:
                    results[k] = self._failed(exc)
            prefix = _common_prefix_length([ids for _, ids, _ in prepared])
            cache = None
            if prepared and prefix > 0:
                cache = self._forward_logprobs(prepared[0][1][:prefix])[1]
                if not hasattr(cache, "crop"):
                    cache, prefix = None, 0
            for k, prompt_ids, seqs in prepared:
                try:
                    probs = self._trie_probs(prompt_ids, seqs, cache, prefix)
                except Exception as exc:
                    results[k] = self._failed(exc)
                    continue
                finally:
                    if cache is not None:
                        cache.crop(prefix)
                self._usage.requests += 1
                self._usage.prompt_tokens += len(prompt_ids)
                results[k] = ChoiceResult(dict(zip(options, probs)))
        return [r for r in results if r is not None]

    async def choose_many(self, requests: Sequence[Sequence[Message]], options: Sequence[str]) -> list[ChoiceResult]:
        return await self._run(self.choose_many_sync, requests, options)

    def _failed(self, exc: Exception) -> ChoiceResult:
        self._usage.failures += 1
        logger.warning("local judge choose() failed: %s", exc)
        return ChoiceResult(None, error=f"{type(exc).__name__}: {exc}")

    def _trie_probs(self, prompt_ids: list[int], seqs: list[tuple[int, ...]], cache: Any = None,
                    cached: int = 0) -> list[float]:
        """Option probabilities after `prompt_ids`; `cache` (if given) already holds its first
        `cached` tokens and is left holding more: the caller crops it."""
        children: dict[tuple[int, ...], set[int]] = {}
        for seq in seqs:
            for i in range(len(seq)):
                children.setdefault(seq[:i], set()).add(seq[i])
        ends = set(seqs)
        # Only nodes where options diverge (or one option stops) carry information.
        decisive = [p for p, c in children.items() if len(c) >= 2 or p in ends]
        logprobs: dict[tuple[int, ...], Any] = {}
        root, cache = self._forward_logprobs(prompt_ids[cached:], cache)
        logprobs[()] = root
        for node in sorted(decisive, key=len):
            if node:
                logprobs[node] = self._extend(prompt_ids, node, cache)
        scores = []
        for seq in seqs:
            total = sum(float(logprobs[seq[:i]][seq[i]]) for i in range(len(seq)) if seq[:i] in logprobs)
            if seq in logprobs:  # this option is a prefix of another: it must stop here
                go_on = sum(math.exp(float(logprobs[seq][t])) for t in children[seq])
                total += math.log(max(1.0 - go_on, 1e-300))
            scores.append(total)
        top = max(scores)
        weights = [math.exp(s - top) for s in scores]
        norm = sum(weights)
        return [w / norm for w in weights]

    def _extend(self, prompt_ids: list[int], node: tuple[int, ...], cache: Any) -> Any:
        """Log-probs after prompt + node, reusing the prompt's KV cache (full pass if it cannot crop)."""
        if cache is not None and hasattr(cache, "crop"):
            logprobs, cache = self._forward_logprobs(node, cache)
            cache.crop(len(prompt_ids))
            return logprobs
        return self._forward_logprobs(list(prompt_ids) + list(node))[0]

    async def choose(self, messages: Sequence[Message], options: Sequence[str]) -> ChoiceResult:
        return await self._run(self.choose_sync, messages, options)

    # -- chat ------------------------------------------------------------------------------------
    def chat_sync(self, messages: Sequence[Message], max_tokens: int) -> ChatResult:
        """Greedy continuation; with a prefill the text is what follows the prefill."""
        import torch

        with self._lock, torch.inference_mode():
            self._ensure_loaded()
            try:
                ids = self._encode(self._render(messages))
                new_tokens = max(1, min(max_tokens, self.max_tokens_cap))
                self._check_length(len(ids) + new_tokens)
                device = next(self._model.parameters()).device
                input_ids = torch.tensor([ids], device=device)
                tok = self._tokenizer
                pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
                out = self._model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                           max_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
                generated = out[0, len(ids):]
                text = tok.decode(generated, skip_special_tokens=True)
            except Exception as exc:
                self._usage.failures += 1
                logger.warning("local judge chat() failed: %s", exc)
                return ChatResult(None, error=f"{type(exc).__name__}: {exc}")
            self._usage.requests += 1
            self._usage.prompt_tokens += len(ids)
            self._usage.completion_tokens += len(generated)
        return ChatResult(text=text, prompt_tokens=len(ids), completion_tokens=len(generated))

    async def chat(self, messages: Sequence[Message], max_tokens: int) -> ChatResult:
        return await self._run(self.chat_sync, messages, max_tokens)


def _common_prefix_length(sequences: Sequence[Sequence[int]]) -> int:
    """Tokens shared by all sequences at their start, leaving each at least one token of its own
    (its last token's logits are what the options are read from)."""
    if not sequences:
        return 0
    limit = min(len(s) for s in sequences) - 1
    first = sequences[0]
    n = 0
    while n < limit and all(s[n] == first[n] for s in sequences):
        n += 1
    return n
