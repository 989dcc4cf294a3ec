"""Errors the harness reports to the user instead of a traceback."""


class UsageError(Exception):
    """Bad input from the user (suite file, override, name): reported as one message, exit code 2."""
