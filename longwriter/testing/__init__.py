"""Test environments for the harness: fixtures that tests, benchmarks and demos run against.

Nothing under `longwriter/` outside this package imports it (tests/test_layout.py checks that), so a
training or evaluation run never loads a fixture by accident.
"""
