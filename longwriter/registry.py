"""The one name -> object table behind every plug-in point (rewards, combiners, judges, loaders, ...).

Registration is explicit (a decorator at the definition), never discovery by subclassing, and a
second, different object under a taken name is an error: names end up in configs and recorded
results, so a silent override would change what a run means. Registering the very same object again
is harmless (a module imported twice) and allowed.

A `Registry` is a `dict`, so `name in registry`, `sorted(registry)` and `registry[name]` work as
usual, and tests swap an entry with `monkeypatch.setitem` instead of registering at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
O = TypeVar("O")


class Registry(dict, Generic[T]):
    """Named objects of one kind (`kind` names it in error messages, e.g. "reward component")."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def add(self, name: str, obj: T) -> T:
        """Store `obj` under `name`; a different object already there is a ValueError."""
        if name in self and self[name] is not obj:
            owner = getattr(self[name], "__module__", None)
            where = f" (by {owner})" if owner else ""
            raise ValueError(f"{self.kind} {name!r} is already registered{where}")
        self[name] = obj
        return obj

    def register(self, name: str) -> Callable[[O], O]:
        """Decorator form of `add` that returns the decorated object unchanged."""

        def decorator(obj: O) -> O:
            self.add(name, obj)  # type: ignore[arg-type]
            return obj

        return decorator

    def lookup(self, name: str, error: Callable[[str], Exception] = KeyError, hint: str = "") -> T:
        """The object under `name`, or `error` naming the available ones (and `hint`, if given)."""
        if name not in self:
            raise error(f"unknown {self.kind} {name!r}; available: {sorted(self)}{hint}")
        return self[name]
