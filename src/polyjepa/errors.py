"""The one exception type that reaches a user as a single line."""


class UserError(ValueError):
    """Bad input from the user (data, config, checkpoint): the message names the problem and the fix.

    The command line prints it as one line and exits with code 2; the Python API lets it propagate.
    """
