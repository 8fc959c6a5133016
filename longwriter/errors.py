"""Errors caused by the user's input (config, data, model, judge), as opposed to bugs.

Entry points print their message as one line and exit non-zero, without a traceback: the message
names the problem and the fix.
"""


class LongwriterError(Exception):
    """Base class of every error whose message is meant for the user."""


class ConfigError(LongwriterError, ValueError):
    """A config value is wrong or inconsistent."""
