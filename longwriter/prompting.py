"""Prompt templates of the recipes, and where the answer lives in a completion.

- "plain":    the sample's messages unchanged (Writing-RL; the whole completion is the answer).
- "think":    LongWriter-Zero: reason inside <think></think>, then answer inside <answer></answer>.
- "no_think": answer inside <answer></answer> only (the paper's ablation without reasoning).

A recipe carries its template; the reward components use `answer_part` so that length, quality
and pairwise judgements see the answer only, never the reasoning (DESIGN 3.3).
"""

from __future__ import annotations

from typing import Literal, Sequence

from longwriter.text import split_think_answer

PromptTemplate = Literal["plain", "think", "no_think"]
TEMPLATES: tuple[str, ...] = ("plain", "think", "no_think")

# Wording follows the R1-Zero style system prompt that LongWriter-Zero trains with.
THINK_INSTRUCTION = (
    "A conversation between the user and the assistant. The user asks for a piece of writing, "
    "and the assistant writes it. The assistant first thinks about the request and plans the "
    "text (structure, content, length) inside <think> </think> tags, then writes the final text "
    "inside <answer> </answer> tags, i.e. <think> reasoning and plan here </think> "
    "<answer> final text here </answer>. Nothing may appear outside these tags."
)
NO_THINK_INSTRUCTION = (
    "A conversation between the user and the assistant. The user asks for a piece of writing, "
    "and the assistant writes it directly, without any visible reasoning, inside "
    "<answer> </answer> tags, i.e. <answer> final text here </answer>. "
    "Nothing may appear outside these tags."
)
_INSTRUCTIONS = {"think": THINK_INSTRUCTION, "no_think": NO_THINK_INSTRUCTION}


def check_template(template: str) -> str:
    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template '{template}'; available: {list(TEMPLATES)}")
    return template


def apply_prompt_template(messages: Sequence[dict[str, str]], template: str) -> list[dict[str, str]]:
    """Return new messages for `template`; the input list and dicts are never modified.

    think / no_think add the instruction as a system message; an existing system message keeps
    its text and gets the instruction appended (the sample's own instructions still apply).
    """
    check_template(template)
    copied = [dict(m) for m in messages]
    if template == "plain":
        return copied
    instruction = _INSTRUCTIONS[template]
    if copied and copied[0].get("role") == "system":
        existing = copied[0]["content"].rstrip()
        copied[0]["content"] = f"{existing}\n\n{instruction}" if existing else instruction
        return copied
    return [{"role": "system", "content": instruction}, *copied]


def answer_part(completion: str, template: str) -> str:
    """The text to measure (length, quality, pairwise) for a completion under `template`.

    plain: the whole completion. think / no_think: the text inside <answer>...</answer>, or a
    best-effort answer when the tags are broken (see `split_think_answer`); the format
    component, not this function, is what penalises broken tags.
    """
    check_template(template)
    if template == "plain":
        return completion or ""
    return split_think_answer(completion).answer
