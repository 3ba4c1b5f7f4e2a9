"""What a user gave, or a file held, on its way to a terminal: `shown` quotes a value in a
message, cut short; `printable` escapes whatever a terminal would act on."""

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


def printable(text, newlines: bool = False) -> str:
    """text as a terminal may show it: every character a terminal would act on or hide (escape
    sequences, carriage returns, line breaks, bidirectional overrides, zero-width characters:
    whatever str.isprintable refuses but the space) written as its escape, e.g. '\\x1b',
    '\\u202e'. For every string that came from a file or a user (paths, config values,
    vocabulary, checkpoint meta) on its way to a terminal. newlines: keep line breaks, for a
    block of several lines."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char == " " or (newlines and char == "\n")
                   else _escape(char) for char in text)


def _escape(char: str) -> str:
    code = ord(char)
    return (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
            else f"\\U{code:08x}")
