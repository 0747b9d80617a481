"""Jinja filters for the template (cookiecutter loads this module by name)."""

from cookiecutter.utils import simple_filter

_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


@simple_filter
def toml_string(value: str) -> str:
    """Quote ``value`` as a TOML basic string, keeping non-ASCII text readable."""
    escaped = "".join(
        _TOML_ESCAPES.get(char, f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
        for char in value
    )
    return f'"{escaped}"'
