"""The one exception type that reaches a user as a single line."""


class UserError(ValueError):
    """Bad input from the user (data, config, checkpoint): the message names the problem and the fix.

    The command line prints it as one line and exits with code 2; the Python API lets it propagate.
    """


def require(module: str, extra: str, what: str):
    """Import an optional package, or raise a one-line UserError naming the extra that installs it.

    Args:
        module: the import name (``pandas``); extra: the polyjepa extra that brings it (``tabular``);
        what: what needs it, for the message (``tables``).
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"{what} need the '{module}' package: pip install 'polyjepa[{extra}]'") from None
