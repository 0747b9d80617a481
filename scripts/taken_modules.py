"""List the top-level modules that the baked project's locked distributions install.

Run with the Python of an environment synced from a bake's uv.lock, every group in
it (`nox -s lock` does): `python taken_modules.py <project distribution> <the
template's uv.lock> <out>`. It writes hooks/taken_modules.txt: a header naming the
lock by its SHA-256, then `<module> <distribution>,...` per line. The pre-generation hook refuses a package
name found there: the package would shadow that module, and the project would break.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections import defaultdict
from importlib.metadata import distributions
from pathlib import Path
from typing import Any

SKIPPED_SUFFIXES = (".dist-info", ".data", ".egg-info", ".pth")


def top_level(distribution: Any) -> set[str]:
    """The modules a distribution's files put at the top of site-packages."""
    names = set()
    for path in distribution.files or ():
        first = path.parts[0]
        if first in ("..", "__pycache__") or first.endswith(SKIPPED_SUFFIXES):
            continue
        if len(path.parts) > 1:
            names.add(first)  # a package, namespace packages (google) included
        elif first.endswith(".py") or first.endswith((".so", ".pyd")):
            names.add(first.split(".", 1)[0])
    return {name for name in names if name.isidentifier()}


def normalized(name: str) -> str:
    """A distribution's name as PEP 503 compares it."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_digest(lock: Path) -> str:
    return hashlib.sha256(lock.read_bytes()).hexdigest()


def report(project: str, lock: Path) -> str:
    providers: dict[str, set[str]] = defaultdict(set)
    for distribution in distributions():
        name = normalized(distribution.metadata["Name"])
        if name != normalized(project):
            for module in top_level(distribution):
                providers[module].add(name)
    lines = [
        "# The top-level modules of the baked project's locked distributions: a",
        "# package named like one would shadow it. Written by scripts/taken_modules.py",
        f"# (`nox -s lock`) from the uv.lock whose SHA-256 is {lock_digest(lock)}.",
    ]
    lines += [f"{module} {','.join(sorted(providers[module]))}" for module in sorted(providers)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path(sys.argv[3]).write_text(report(sys.argv[1], Path(sys.argv[2])), encoding="utf-8")
