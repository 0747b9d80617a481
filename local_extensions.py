"""Jinja filters and globals for the template (cookiecutter loads this module by name)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from cookiecutter.utils import simple_filter
from jinja2.ext import Extension

ROOT = Path(__file__).resolve().parent
# What the baked project's Python packages are made of: the modules its locked
# distributions install (scripts/taken_modules.py derives the list from the lock).
TAKEN_MODULES = ROOT / "hooks" / "taken_modules.txt"
PLAN = ROOT / "{{cookiecutter.project_slug}}/src/{{cookiecutter.python_package}}_deploy/plan.py"
_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_HCL_ESCAPES = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
# What YAML lets stand in a double-quoted scalar as it is: printable, and no line break
# of its own (NEL, LINE and PARAGRAPH SEPARATOR); anything else is escaped.
_YAML_PLAIN = re.compile("[\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@simple_filter
def toml_string(value: str) -> str:
    """Quote ``value`` as a TOML basic string, keeping non-ASCII text readable."""
    escaped = "".join(
        _TOML_ESCAPES.get(char, f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
        for char in value
    )
    return f'"{escaped}"'


@simple_filter
def yaml_string(value: str) -> str:
    """Quote ``value`` as a YAML double-quoted string, so that YAML reads exactly it:
    never a boolean (`yes`, `off`), a null or a number, and with non-ASCII text (emoji
    too) written as itself, not as JSON's surrogate escapes."""
    return '"' + "".join(_yaml_char(char) for char in str(value)) + '"'


@simple_filter
def hcl_string(value: str) -> str:
    """Quote ``value`` as a Terraform (HCL) string that Terraform reads as exactly it:
    escapes for quotes, backslashes and control characters, and `${` and `%{` doubled
    so that no answer is ever an interpolation or a template directive."""
    escaped = "".join(
        _HCL_ESCAPES.get(char, f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char)
        for char in str(value)
    )
    return '"' + escaped.replace("${", "$${").replace("%{", "%%{") + '"'


def _yaml_char(char: str) -> str:
    if char in '"\\':
        return "\\" + char
    if _YAML_PLAIN.fullmatch(char):
        return char
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


class TemplateData(Extension):
    """Globals the hooks render in: data, never answers."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals["taken_modules"] = taken_modules
        environment.globals["plan_module"] = lambda: str(PLAN)
        # Where cookiecutter renders, which is the template's folder when it renders hooks.
        environment.globals["working_dir"] = os.getcwd


def taken_modules() -> list[str]:
    """The top-level module names of the baked lock's distributions."""
    lines = TAKEN_MODULES.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]
