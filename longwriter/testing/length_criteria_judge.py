"""TEST ENVIRONMENT, not a writing-quality judge: a deterministic rule served as an OpenAI-compatible judge.

It exists to show the Writing-RL mechanics (pairwise reward, reference curriculum, win rate against
fixed references) end to end on a CPU, through exactly the HTTP path a real judge uses
(`judge=vllm_server` / `judge=openai` -> `longwriter.judges.openai_backend`), where the local
SmolLM2 judge gives no learnable signal. It knows nothing about writing quality: it reads the
judge prompt the harness sends (`longwriter.judges.prompts`), and scores each response by

    score = closeness + coverage_weight * coverage
    closeness = max(0, 1 - |words - target| / target)   target: the word count the request asks for
                                                         (`parse_length_requirement`, middle of its range)
    coverage  = share of the criteria's content words (lower-case, >= 4 letters, not stop words)
                that the response contains

Pairwise prompts get `Verdict: [[A]]`, `[[B]]`, or `[[C]]` when the scores differ by less than
`tie_margin`; the rule is symmetric, so it has no position bias (swap disagreement 0). Pointwise
prompts get `Score: N` (1-10). Checklist prompts (one `[Criterion]` each, the checklist reward's) get
`{"score": N}`, N = 1 + round(9 * c) from the one criterion's checkable features:

    c = closeness of the response's words to the criterion's own length range, when the criterion states a
        length ("Stays between 120 and 180 words": 1 inside, else max(0, 1 - distance / middle))
    c = coverage of the criterion's content words by the response, otherwise

It is served by the project's fake OpenAI server:

    python -m longwriter.testing.length_criteria_judge --port 8765
    python -m longwriter.train experiment=writing_rl_cpu_testenv judge.base_url=http://127.0.0.1:8765/v1
"""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import dataclass

from longwriter.data.length_requirements import parse_length_requirement
from longwriter.testing.fake_openai_server import FakeOpenAIServer, serve_until_interrupted
from longwriter.text import count_words

logger = logging.getLogger(__name__)

MODEL_NAME = "length-criteria-test-environment"
_STOP = frozenset("""about above after again also among been before being below between both does each
from have into more most much only other over same should such than that their them then there these
they this those through under very what when where which while whom with would your whose make makes
uses using used""".split())
_WORD = re.compile(r"[a-z]{4,}")


def _section(text: str, start: str, end: str) -> str | None:
    match = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.DOTALL)
    return match.group(1) if match else None


def content_words(text: str) -> set[str]:
    """Lower-case words of 4+ letters minus stop words: what `coverage` looks for."""
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP}


@dataclass(frozen=True)
class LengthCriteriaRule:
    """The scoring rule (module doc); tolerance only turns an "about N words" request into a range."""

    coverage_weight: float = 0.5
    tie_margin: float = 0.02
    tolerance: float = 0.2

    def target(self, request: str) -> float | None:
        requirement = parse_length_requirement(request)
        if requirement is None:
            return None
        lo, hi = requirement.to_range(self.tolerance)
        return (lo + hi) / 2 or None

    def score(self, request: str, criteria: str, response: str) -> float:
        target = self.target(request)
        words = count_words(response)
        closeness = max(0.0, 1.0 - abs(words - target) / target) if target else 0.0
        wanted = content_words(criteria)
        coverage = len(wanted & content_words(response)) / len(wanted) if wanted else 0.0
        return closeness + self.coverage_weight * coverage

    def criterion_score(self, criterion: str, response: str) -> int:
        """1-10 for one checklist criterion (module doc): its length range if it states one, else its words."""
        requirement = parse_length_requirement(criterion)
        if requirement is not None:
            lo, hi = requirement.to_range(self.tolerance)
            words, middle = count_words(response), (lo + hi) / 2
            distance = 0 if lo <= words <= hi else min(abs(words - lo), abs(words - hi))
            value = max(0.0, 1.0 - distance / middle) if middle else 0.0
        else:
            wanted = content_words(criterion)
            value = len(wanted & content_words(response)) / len(wanted) if wanted else 0.0
        return 1 + round(9 * value)

    def reply(self, body: dict) -> str:
        """The judge's answer to one chat-completions request body (as the fake server passes it)."""
        user = "\n".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")
        request = _section(user, "[Writing request]", "[Evaluation criteria]") or ""
        criteria = _section(user, "[Evaluation criteria]", "[Response") or ""
        first = _section(user, "[Response A]", "[End of Response A]")
        second = _section(user, "[Response B]", "[End of Response B]")
        if first is not None and second is not None:
            a, b = self.score(request, criteria, first), self.score(request, criteria, second)
            verdict = "C" if abs(a - b) < self.tie_margin else ("A" if a > b else "B")
            return f"Test-environment rule: A={a:.3f}, B={b:.3f}.\nVerdict: [[{verdict}]]"
        single = _section(user, "[Response]", "[End of Response]")
        criterion = _section(user, "[Criterion]", "[Response]")
        if single is not None and criterion is not None:
            score = self.criterion_score(criterion, single)
            return f'{{"score": {score}, "reason": "Test-environment rule for one criterion."}}'
        if single is not None:
            value = self.score(request, criteria, single) / (1.0 + self.coverage_weight)
            return f"Test-environment rule: {value:.3f}.\nScore: {1 + round(9 * value)}"
        return "Test-environment rule: unsupported prompt (no verdict)."


def serve(rule: LengthCriteriaRule | None = None, host: str = "127.0.0.1", port: int = 0) -> FakeOpenAIServer:
    """A started server answering with `rule` (stop it with .stop() or use it as a context manager)."""
    rule = rule or LengthCriteriaRule()
    return FakeOpenAIServer(rule.reply, model=MODEL_NAME, host=host, port=port).start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="TEST ENVIRONMENT judge (length + criteria words), not a "
                                                 "writing-quality judge; OpenAI-compatible HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--coverage-weight", type=float, default=LengthCriteriaRule.coverage_weight)
    parser.add_argument("--tie-margin", type=float, default=LengthCriteriaRule.tie_margin)
    args = parser.parse_args(argv)
    server = serve(LengthCriteriaRule(args.coverage_weight, args.tie_margin), args.host, args.port)
    serve_until_interrupted(server, f"TEST ENVIRONMENT judge ({MODEL_NAME}) serving {server.base_url}")


if __name__ == "__main__":
    main()
