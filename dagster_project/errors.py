"""Turn an exception raised inside a Dagster run into the user's one-line message."""

from __future__ import annotations


def user_message(error: BaseException) -> str:
    """The innermost cause's message: Dagster wraps an asset's error in execution errors."""
    seen = error
    while seen.__cause__ is not None:
        seen = seen.__cause__
    user_error = getattr(error, "user_exception", None)
    return str(user_error or seen)
