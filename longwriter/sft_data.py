"""The supervised warm-up's data: prompt/completion pairs from `data=`, in one of two templates,
never on an RL evaluation prompt. Plain Python (no torch): every check here runs before a model loads.

Where the responses come from: each sample's references (`sft.reference`: which one, -1 the last,
i.e. the strongest of data=builtin's three; `sft.all_references=true`: one example per reference).
`data=pairs` reads any prompt/response JSONL into samples whose one reference is the response;
data=builtin ships prompts with references; a data set without references is refused.

Templates (`sft.template`):
- `plain`: the sample's messages, the response as the completion (Writing-RL's plain template).
- `think_answer`: LongWriter-Zero's form. The prompt gets the recipe's `think` system instruction
  (exactly what `reward=longwriter_zero` RL shows the policy), and the completion is
  `<think>` + a TEMPLATED PLAN + `</think>` + `<answer>` + the response + `</answer>`. The plan is
  written by `templated_plan` from the sample, not reasoned by anyone: the request restated, its
  word target and the response's paragraph count. It teaches the tags and the shape, not thinking;
  the format reward (longwriter/rewards/format.py) counts every such completion valid.

Held-out prompts (`sft.holdout`): the prompts RL runs are evaluated on (data=length_heldout; the
first 8 of data=builtin, which experiment=writing_rl_cpu_testenv trains and evaluates on) are
loaded and every SFT sample that matches one by id or by prompt text (case and spacing ignored) is
dropped (`sft.on_holdout_overlap=drop`, one warning naming them) or refused (`=error`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from omegaconf import DictConfig, OmegaConf

from longwriter.data.schema import DataError, Sample
from longwriter.errors import ConfigError

logger = logging.getLogger(__name__)

SFT_TEMPLATES: tuple[str, ...] = ("plain", "think_answer")
OVERLAP_POLICIES: tuple[str, ...] = ("drop", "error")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_PLAN_REQUEST_WORDS = 40


@dataclass(frozen=True)
class SftExample:
    """One supervised example: the chat prompt as RL will show it and the completion to learn."""

    sample_id: str
    reference_index: int
    prompt: list[dict[str, str]]
    completion: str

    def row(self) -> dict[str, Any]:
        """TRL's conversational prompt-completion row (the loss is on the completion only)."""
        return {"prompt": [dict(m) for m in self.prompt],
                "completion": [{"role": "assistant", "content": self.completion}]}

    def record(self) -> dict[str, Any]:
        """The row as logged to MLflow (the data the run used)."""
        return {"sample_id": self.sample_id, "reference_index": self.reference_index, "prompt": self.prompt,
                "completion": self.completion}


@dataclass
class SftData:
    examples: list[SftExample]
    loaded: int
    dropped_holdout: list[dict[str, str]] = field(default_factory=list)
    holdout_sets: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"samples_loaded": self.loaded, "examples": len(self.examples),
                "samples_used": len({e.sample_id for e in self.examples}),
                "dropped_holdout_overlap": self.dropped_holdout, "holdout_sets": self.holdout_sets}


def check_template(template: Any) -> str:
    if template not in SFT_TEMPLATES:
        raise ConfigError(f"sft.template={template!r}: must be one of {', '.join(SFT_TEMPLATES)}")
    return str(template)


def _request(sample: Sample) -> str:
    """The request in at most `_PLAN_REQUEST_WORDS` words: its first sentence, else its start."""
    text = " ".join(sample.user_prompt.split())
    first = _SENTENCE_END.split(text, maxsplit=1)[0]
    words = first.split()
    return " ".join(words[:_PLAN_REQUEST_WORDS]) + (" ..." if len(words) > _PLAN_REQUEST_WORDS else "")


def _paragraphs(text: str) -> int:
    return max(1, len([p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]))


def templated_plan(sample: Sample, response: str) -> str:
    """The text inside <think>: a plan filled in from the sample, the same three lines every time."""
    from longwriter.text import count_words

    if sample.length_range is not None:
        low, high = sample.length_range
        length = f"{low} to {high} words"
    else:
        length = f"about {max(10, round(count_words(response), -1))} words"
    paragraphs = _paragraphs(response)
    shape = "one paragraph" if paragraphs == 1 else f"{paragraphs} paragraphs"
    return f"The request: {_request(sample)}\nLength: {length}.\nPlan: {shape} that answer the request directly."


def render_completion(sample: Sample, response: str, template: str) -> str:
    check_template(template)
    if template == "plain":
        return response
    return f"<think>\n{templated_plan(sample, response)}\n</think>\n<answer>\n{response.strip()}\n</answer>"


def render_prompt(sample: Sample, template: str) -> list[dict[str, str]]:
    """The messages RL presents for this sample: plain as they are, think_answer with the `think`
    template's instruction (longwriter/prompting.py), so SFT and RL see the same prompt."""
    from longwriter.prompting import apply_prompt_template

    check_template(template)
    return apply_prompt_template(sample.prompt, "plain" if template == "plain" else "think")


def _prompt_key(sample: Sample) -> str:
    return " ".join(sample.user_prompt.lower().split())


def load_holdout(holdout: Any, paths: Any) -> list[tuple[str, Sample]]:
    """(label, sample) for every prompt of the `sft.holdout` sets. Each entry is `{data: <conf/data
    preset>, <any data key>: value}`, e.g. `{data: builtin, limit: 8}`."""
    from longwriter.config_tools import load_preset
    from longwriter.data.loaders import load_samples

    entries = OmegaConf.to_container(holdout, resolve=True) if OmegaConf.is_config(holdout) else holdout
    if entries in (None, ""):
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"sft.holdout={entries!r}: must be a list of {{data: <preset>, ...}} entries (or [])")
    held: list[tuple[str, Sample]] = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("data"):
            raise ConfigError(f"sft.holdout entry {entry!r}: must be {{data: <a conf/data preset>, ...}}, "
                              f"e.g. {{data: length_heldout}} or {{data: builtin, limit: 8}}")
        preset = load_preset("data", str(entry["data"]), paths, what="sft.holdout data")
        options = {k: v for k, v in entry.items() if k != "data"}
        data_cfg = OmegaConf.merge(preset, options)
        label = str(entry["data"]) + "".join(f" {k}={v}" for k, v in options.items())
        held += [(label, s) for s in load_samples(data_cfg)]
    return held


def split_holdout(samples: Sequence[Sample], held: Sequence[tuple[str, Sample]], policy: str
                  ) -> tuple[list[Sample], list[dict[str, str]]]:
    """(samples kept, one row per dropped sample: id, the holdout set it matches, by id or prompt)."""
    if policy not in OVERLAP_POLICIES:
        raise ConfigError(f"sft.on_holdout_overlap={policy!r}: must be one of {', '.join(OVERLAP_POLICIES)}")
    by_id = {s.id: label for label, s in held}
    by_prompt = {_prompt_key(s): label for label, s in held}
    kept, dropped = [], []
    for sample in samples:
        if sample.id in by_id:
            dropped.append({"id": sample.id, "holdout": by_id[sample.id], "match": "id"})
        elif _prompt_key(sample) in by_prompt:
            dropped.append({"id": sample.id, "holdout": by_prompt[_prompt_key(sample)], "match": "prompt"})
        else:
            kept.append(sample)
    if dropped:
        sets = sorted({d["holdout"] for d in dropped})
        ids = ", ".join(d["id"] for d in dropped[:8]) + (" ..." if len(dropped) > 8 else "")
        message = (f"{len(dropped)} of {len(samples)} SFT samples are RL evaluation prompts ({'; '.join(sets)}): "
                   f"{ids}")
        if policy == "error":
            raise DataError(f"{message}; SFT must not train on them: remove them from the data, or set "
                            f"sft.on_holdout_overlap=drop")
        logger.warning("%s; dropped (sft.on_holdout_overlap=drop)", message)
    return kept, dropped


def _references(sample: Sample, sft_cfg: Any, where: str) -> list[tuple[int, str]]:
    refs = sample.references
    if not refs:
        raise DataError(f"{where}: sample {sample.id!r} has no response to train on (no references); SFT needs "
                        f"prompt/response pairs: data=pairs data.path=<a JSONL with `prompt` and `response` per "
                        f"line>, or a data set with references (data=builtin)")
    if bool(sft_cfg.get("all_references", False)):
        return list(enumerate(refs))
    index = int(sft_cfg.get("reference", -1))
    if not -len(refs) <= index < len(refs):
        raise ConfigError(f"sft.reference={index}: sample {sample.id!r} of {where} has {len(refs)} reference(s) "
                          f"(use an index from {-len(refs)} to {len(refs) - 1}; -1 is the last, the strongest)")
    return [(index % len(refs), refs[index])]


def build_sft_data(cfg: DictConfig) -> SftData:
    """Load `data=`, drop RL evaluation prompts, render every example; every problem is one clear
    error here, before a model loads or a run opens."""
    from longwriter.data.loaders import load_samples

    sft_cfg = cfg.sft
    template = check_template(sft_cfg.get("template"))
    where = f"data={cfg.data.name}" + (f" ({cfg.data.path})" if cfg.data.get("path") else "")
    samples = load_samples(cfg.data)
    if not samples:
        raise DataError(f"{where} has no samples: SFT needs prompt/response pairs (data=pairs: one JSON object "
                        f"with `prompt` and `response` per line; or data=builtin)")
    held = load_holdout(sft_cfg.get("holdout"), cfg.paths)
    kept, dropped = split_holdout(samples, held, str(sft_cfg.get("on_holdout_overlap", "drop")))
    if not kept:
        raise DataError(f"every sample of {where} is an RL evaluation prompt (sft.holdout); SFT needs others")
    examples = []
    for sample in kept:
        prompt = render_prompt(sample, template)
        for index, response in _references(sample, sft_cfg, where):
            examples.append(SftExample(sample.id, index, prompt, render_completion(sample, response, template)))
    labels = sorted({label for label, _ in held})
    logger.info("sft data: %s, %d samples, %d dropped as RL evaluation prompts, %d examples (template %s)", where,
                len(samples), len(dropped), len(examples), template)
    return SftData(examples, len(samples), dropped, labels)
