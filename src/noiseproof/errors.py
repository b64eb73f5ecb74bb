"""The one exception type that reaches users as a single line and exit code 2."""


class NoiseproofError(Exception):
    """A problem with the user's input (name, value, file) that the CLI reports in one line."""
