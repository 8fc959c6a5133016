"""The one registry behind every plug-in point refuses a second object under a taken name."""

from __future__ import annotations

import pytest

from longwriter.registry import Registry


def test_register_returns_the_object_and_lookup_finds_it():
    things: Registry[object] = Registry("thing")

    @things.register("a")
    def a():
        return 1

    assert a() == 1 and things.lookup("a") is a and sorted(things) == ["a"]


def test_a_different_object_under_a_taken_name_is_refused_and_the_first_kept():
    things: Registry[object] = Registry("thing")
    first = things.add("a", object())
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        things.add("a", object())
    assert things["a"] is first


def test_the_same_object_twice_is_allowed():
    things: Registry[object] = Registry("thing")
    obj = object()
    things.add("a", obj)
    assert things.add("a", obj) is obj and len(things) == 1


def test_unknown_names_raise_the_callers_error_listing_the_known_ones():
    things: Registry[int] = Registry("thing")
    things.add("b", 2)
    with pytest.raises(KeyError, match=r"unknown thing 'x'; available: \['b'\]"):
        things.lookup("x")
    with pytest.raises(LookupError, match="set thing="):
        things.lookup("x", error=LookupError, hint=" (set thing=b)")
