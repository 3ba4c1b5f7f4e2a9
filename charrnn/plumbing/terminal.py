"""What a user gave, or a file held, shown in one line of a message."""

from __future__ import annotations


def shown(value, limit: int = 80) -> str:
    """repr(value) cut to limit characters, for error messages that quote what a user gave."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    try:
        text = repr(value) if not isinstance(value, str) else repr(value[: limit + 1])
    except (ValueError, RecursionError):  # repr itself refuses: deep nesting
        text = f"a {type(value).__name__} too deep to show"
    return text if len(text) <= limit else text[: limit - 3] + "..."

