"""The exception type that reaches a user as a single line, and the warning type printed as one."""
import warnings


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


class PolyjepaWarning(UserWarning):
    """Something the user should know that does not stop the command (printed as ``polyjepa: warning: ...``)."""


def warn(message: str) -> None:
    """Issue a ``PolyjepaWarning`` (the caller's caller is named as its source)."""
    warnings.warn(message, PolyjepaWarning, stacklevel=3)


def one_line_warnings() -> None:
    """Print ``PolyjepaWarning`` as one ``polyjepa: warning: ...`` line (the command line's format)."""
    if getattr(warnings.formatwarning, "polyjepa", False):
        return
    default = warnings.formatwarning

    def formatwarning(message, category, *args, **kwargs):
        if issubclass(category, PolyjepaWarning):
            return f"polyjepa: warning: {' '.join(str(message).split())}\n"
        return default(message, category, *args, **kwargs)

    formatwarning.polyjepa = True
    warnings.formatwarning = formatwarning
