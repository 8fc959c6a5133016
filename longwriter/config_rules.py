"""What one config key accepts (`Rule`: type, range, allowed choices or named values), and the few
rules every table uses. The tables live where the keys are described: engine settings in
`engine_settings`, the rest in `config_checks`, which runs them all."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import ListConfig

Choices = Callable[[], "tuple[str, ...] | list[str]"]


@dataclass(frozen=True)
class Rule:
    """What one key accepts. `kind`: int | number | bool | str | texts | choice | subset."""

    kind: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself not allowed
    high_open: bool = False
    choices: tuple[str, ...] | Choices = ()
    null: bool = False
    says: str = ""  # replaces the generated description of what is allowed
    words: tuple[str, ...] = ()  # named values a number key also takes (e.g. "auto")

    def allowed(self) -> str:
        if self.says:
            return self.says
        if self.kind in ("choice", "subset"):
            what = f"one of {', '.join(self._choices())}"
            what = f"a list of names from {', '.join(self._choices())}" if self.kind == "subset" else what
        elif self.kind == "bool":
            what = "true or false"
        elif self.kind == "str":
            what = "a non-empty text"
        elif self.kind == "texts":
            what = "a non-empty list of names"
        else:
            what = "a whole number" if self.kind == "int" else "a number"
            what += self._range()
        words = "".join(f" or {word}" for word in self.words)
        return f"must be {what}{words}" + (" or null" if self.null else "")

    def _range(self) -> str:
        if self.low is not None and self.high is not None:
            return f" in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f" {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f" {'<' if self.high_open else '<='} {self.high:g}"
        return ""

    def _choices(self) -> tuple[str, ...]:
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.null
        if isinstance(value, str) and value in self.words:
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str) and bool(value.strip())
        if self.kind == "texts":
            return (isinstance(value, (list, tuple, ListConfig)) and len(value) > 0
                    and all(isinstance(v, str) and v.strip() for v in value))
        if self.kind == "choice":
            return isinstance(value, str) and value in self._choices()
        if self.kind == "subset":
            return isinstance(value, (list, tuple, ListConfig)) and all(str(v) in self._choices() for v in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None and (value > self.high or (self.high_open and value == self.high)))


def whole(low: int | None = None, null: bool = False, says: str = "", words: tuple[str, ...] = ()) -> Rule:
    return Rule("int", low=low, null=null, says=says, words=words)


def number(low: float | None = None, high: float | None = None, low_open: bool = False, high_open: bool = False,
           null: bool = False) -> Rule:
    return Rule("number", low=low, high=high, low_open=low_open, high_open=high_open, null=null)


def one_of(choices: tuple[str, ...] | Choices, null: bool = False) -> Rule:
    return Rule("choice", choices=choices, null=null)


FLAG = Rule("bool")
TEXT = Rule("str")
TEXTS = Rule("texts")
FRACTION = number(0.0, 1.0)
PROBABILITY_MASS = number(0.0, 1.0, low_open=True)  # top_p, GPU memory share
