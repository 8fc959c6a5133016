"""Can a policy learn LongWriter-Zero's format here? How often does it emit the think/answer tags at all?

GRPO moves a policy toward a binary format reward only when some completions of a group earn it;
a model that never writes `</think>` or `<answer>` gives every completion 0, every group advantage 0,
and the format cannot be learned however long the run. This samples the policy exactly as training
does (the recipe's think template, temperature 1) on the first prompts of the training set, with and
without the assistant turn pre-filled with `<think>` (the R1-Zero-style nudge), and counts tags.

Run: .venv/bin/python benchmarks/format_probe.py [--prompts 6] [--samples 8] [--max-new-tokens 160]
         [--model-path <saved model folder>] [--variants both|plain|prefill] [hydra overrides, e.g. data=...]
Prints one JSON object per variant. `--model-path` (the same as the override model.path=...) probes a
saved folder, e.g. an SFT warm-up's `outputs/sft/<run>/final_model` (docs/sft.md), against the preset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from longwriter.paths import CONF_DIR, register_resolvers  # noqa: E402


def _config(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def probe(model, tokenizer, prompts: list[list[dict]], samples: int, max_new_tokens: int, prefill: str,
          keep: list | None = None) -> dict:
    import torch

    from longwriter.prompting import apply_prompt_template
    from longwriter.rewards.format import FormatComponent, FormatConfig

    reward = FormatComponent(FormatConfig(variant="think"))  # the format reward's own test
    counts = {"completions": 0, "any_closing_tag": 0, "think_close": 0, "answer_open": 0, "well_formed": 0,
              "valid": 0}
    for messages in prompts:
        text = tokenizer.apply_chat_template(apply_prompt_template(messages, "think"), tokenize=False,
                                             add_generation_prompt=True) + prefill
        inputs = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**inputs, do_sample=True, temperature=1.0, max_new_tokens=max_new_tokens,
                                 num_return_sequences=samples, pad_token_id=tokenizer.pad_token_id)
        for row in out:
            completion = prefill + tokenizer.decode(row[inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            counts["completions"] += 1
            counts["any_closing_tag"] += any(t in completion for t in ("</think>", "<answer>", "</answer>"))
            counts["think_close"] += "</think>" in completion
            counts["answer_open"] += "<answer>" in completion
            score, well_formed, _ = reward.check(completion)
            counts["well_formed"] += well_formed
            counts["valid"] += score == 1.0  # well formed and not degenerate repetition: format reward 1
            if keep is not None:
                keep.append({"prefill": prefill, "well_formed": bool(well_formed), "valid": score == 1.0,
                             "completion": completion})
    return {"prefill": prefill, **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--samples", type=int, default=8, help="completions per prompt (a GRPO group)")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--model-path", help="a saved model folder (model.path=...): an SFT run's final_model")
    parser.add_argument("--variants", choices=("both", "plain", "prefill"), default="both",
                        help="plain: sample as RL does; prefill: the assistant turn starts with <think>")
    parser.add_argument("--completions", help="also write every completion to this JSONL file")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides (model=..., data=...)")
    args = parser.parse_args()

    import torch

    from longwriter.data.loaders import load_samples
    from longwriter.models.loading import load_model_and_tokenizer

    cfg = _config([*args.overrides, *([f"model.path={args.model_path}"] if args.model_path else [])])
    torch.manual_seed(int(cfg.seed))
    model, tokenizer = load_model_and_tokenizer(cfg.model, cfg.paths.cache_dir)
    prompts = [s.prompt for s in load_samples(cfg.data)[:args.prompts]]
    prefills = {"both": ("", "<think>"), "plain": ("",), "prefill": ("<think>",)}[args.variants]
    kept: list | None = [] if args.completions else None
    for prefill in prefills:
        print(json.dumps({"model": str(cfg.model.name), "model_path": cfg.model.get("path"),
                          "data": str(cfg.data.name), "max_new_tokens": args.max_new_tokens,
                          **probe(model, tokenizer, prompts, args.samples, args.max_new_tokens, prefill, kept)}),
              flush=True)
    if kept is not None:
        Path(args.completions).write_text("".join(json.dumps(row) + "\n" for row in kept))


if __name__ == "__main__":
    main()
