"""Turn an exception raised inside a Dagster run into the user's one-line message."""

from __future__ import annotations

from dagster._core.errors import DagsterError  # the base of Dagster's wrapping errors


def user_message(error: BaseException) -> str:
    """The message of the outermost exception in the cause chain that is not one of Dagster's
    wrappers: Dagster wraps an asset's error (ours, or a `dagster.Failure` we raise) in
    execution errors, and our own errors wrap a low-level cause (an OSError, say) with what it
    means (which table)."""
    seen = error
    while seen is not None:
        if not isinstance(seen, DagsterError):
            return str(seen)
        seen = seen.__cause__ or getattr(seen, "user_exception", None)
    return str(error)
