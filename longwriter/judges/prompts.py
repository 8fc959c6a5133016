"""Judge prompt templates, versioned by id. The parsers that read them live in `tasks.py`.

A template's text is part of every cache key (through the rendered messages), so editing one in
place is safe for the cache; still, register an edited template under a new id (`pairwise_v2`)
when results must stay comparable with earlier runs.

Each template has two endings: `api` (the judge may reason, then must end with an explicit
marker) and `probs` (for backends that read next-token probabilities: the assistant turn is
prefilled up to the point where the marker's content is the next token).
"""

from __future__ import annotations

from dataclasses import dataclass

from longwriter.data.length_requirements import MAX_RANGE_WIDTH, MAX_WORDS, RANGE_STEP
from longwriter.registry import Registry

GENERIC_WRITING_CRITERIA = (
    "Relevance: the response does what the request asks, in the requested form and scope.",
    "Content: depth, accuracy and insight of the content; concrete, well-chosen details.",
    "Structure: coherent organisation, logical flow, clear transitions.",
    "Language: clarity, fluency, style and tone suited to the request.",
    "Requirements: explicit constraints (length, format, audience, language) are met.",
)

SYSTEM = "You are an impartial expert judge of long-form writing. You follow the output format exactly."


@dataclass(frozen=True)
class Template:
    id: str
    user: str  # str.format fields; literal braces doubled
    api_ending: str
    probs_ending: str = ""
    prefill: str = ""  # assistant prefill for the probs path
    system: str = SYSTEM


_REGISTRY: Registry[Template] = Registry("judge template")


def register(template: Template) -> Template:
    """Add a template; a duplicate id is an error (ids are part of recorded results)."""
    return _REGISTRY.add(template.id, template)


def get_template(template_id: str) -> Template:
    return _REGISTRY.lookup(template_id)


def format_criteria(criteria: "list[str] | tuple[str, ...]") -> str:
    items = [c.strip() for c in criteria if c and c.strip()] or list(GENERIC_WRITING_CRITERIA)
    return "\n".join(f"{i}. {c}" for i, c in enumerate(items, 1))


PAIRWISE_V1 = register(Template(
    id="pairwise_v1",
    user="""Compare two responses to the same writing request and decide which one is better.

[Writing request]
{prompt}

[Evaluation criteria]
{criteria}

[Response A]
{first}
[End of Response A]

[Response B]
{second}
[End of Response B]

Judge only by the criteria above.
The order in which the responses are shown, their length alone and the labels "A" and "B" must not influence you.""",
    api_ending="""First compare the two responses briefly (at most 150 words).
Then give your verdict on the last line, exactly one of:
Verdict: [[A]]   (Response A is better)
Verdict: [[B]]   (Response B is better)
Verdict: [[C]]   (they are equally good)""",
    probs_ending="""Answer with your verdict only:
[[A]] if Response A is better, [[B]] if Response B is better, [[C]] if they are equally good.""",
    prefill="Verdict: [[",
))

POINTWISE_V1 = register(Template(
    id="pointwise_v1",
    user="""Rate the response to the writing request below on a scale from 1 (very poor) to 10 (excellent).

[Writing request]
{prompt}

[Evaluation criteria]
{criteria}

[Response]
{response}
[End of Response]

Judge only by the criteria above; do not reward length on its own.""",
    api_ending="""First assess the response briefly (at most 150 words).
Then give the score on the last line, as an integer from 1 to 10, in exactly this form:
Score: N""",
    probs_ending="Answer with the score only, as an integer from 1 to 10, in the form: Score: N",
    prefill="Score: ",
))

# LongBench-Write's six S_q dimensions, spelled as the judge's JSON keys. The one home: the judge task
# asks for these, and S_q (evaluation/metrics.py) aggregates and names its metrics by them.
QUALITY_DIMENSIONS = ("relevance", "accuracy", "coherence", "clarity", "breadth_and_depth", "reading_experience")

QUALITY_V1 = register(Template(
    id="quality_v1",
    user="""Evaluate the response to the writing request below on six dimensions.
Score each from 1 (very poor) to 5 (excellent):
- relevance: addresses the request and its requirements;
- accuracy: facts and reasoning are correct, nothing invented;
- coherence: logically organised, consistent from beginning to end;
- clarity: clear, precise, easy-to-follow language;
- breadth_and_depth: covers the topic broadly and with depth and insight;
- reading_experience: engaging and pleasant to read, well formatted.

[Writing request]
{prompt}

[Response]
{response}
[End of Response]""",
    api_ending="""Reply with one JSON object and nothing else, with an integer from 1 to 5 for every key:
{{"relevance": n, "accuracy": n, "coherence": n, "clarity": n, "breadth_and_depth": n, "reading_experience": n}}""",
    probs_ending="Reply with the JSON object of the six integer scores (1 to 5) only.",
    prefill='{{"{dimension}": ',
))

CHECKLIST_V1 = register(Template(
    id="checklist_v1",
    user="""Score the response to the writing request below against ONE criterion only.
Use a scale from 1 (fails the criterion) to 10 (fully meets it).

[Writing request]
{prompt}

[Criterion]
{criterion}

[Response]
{response}
[End of Response]""",
    api_ending="""Reply with one JSON object and nothing else: {{"score": N, "reason": "<one sentence>"}}
where N is an integer from 1 to 10.""",
    probs_ending="Reply with the score only, as an integer from 1 to 10, in the form: Score: N",
    prefill="Score: ",
))

LENGTH_RANGE_V1 = register(Template(
    id="length_range_v1",
    system="You estimate how long a good answer to a writing request should be. You reply with JSON only.",
    user="""Predict the word-count range of a suitable response to the writing request below.

Rules:
1. Reply with one JSON object and nothing else: {{"range": [lo, hi]}}, lo and hi in words.
2. lo and hi are integers and multiples of <STEP>, 0 <= lo <= hi <= <MAX_WORDS>, and hi - lo <= <MAX_WIDTH>.
3. If the request states an explicit length (e.g. "about 2000 words"), centre the range on it.
   Allow 10% on each side, rounded to multiples of 100: 2000 words -> [1800, 2200].
   If it states a range, use that range (within the rules).
4. Otherwise estimate from the kind of text requested and its scope.
   For example: a short poem, an email, an essay, a report, a novel chapter.
5. For Chinese, Japanese or Korean text, count each character as one word.
6. If no suitable response fits the rules, reply {{"range": [0, 0]}}.
   This is the case when it would need more than <MAX_WORDS> words, or when no piece of writing can answer it.

[Writing request]
{prompt}""".replace("<STEP>", str(RANGE_STEP)).replace("<MAX_WORDS>", str(MAX_WORDS))
         .replace("<MAX_WIDTH>", str(MAX_RANGE_WIDTH)),
    api_ending='Your reply (JSON only), e.g. {{"range": [1800, 2200]}}:',
))
