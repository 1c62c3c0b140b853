"""Helpers the benchmark scripts share for their reports: library versions, a fingerprint of
thrifty's source, and replacing one section of benchmarks/RESULTS.md."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def versions(dists: Sequence[str]) -> dict[str, str]:
    """Installed version of each distribution (``"not installed"`` if absent), plus Python's."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in dists:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine() -> str:
    """Architecture, cores, memory, OS and Python, in one line."""
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(fh.readline().split()[1])
        mem = f", {kb / 2**20:.0f} GiB"
    except OSError:
        pass
    return f"{platform.machine()}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def source_fingerprint() -> str:
    """12 hex digits of the sha256 of src/thrifty/**/*.py (paths and contents)."""
    h = hashlib.sha256()
    for p in sorted((ROOT / "src" / "thrifty").rglob("*.py")):
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table: the first column left-aligned, the others right-aligned."""
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out


def write_results(path: Path, head: str, section: str) -> None:
    """Replace the section whose heading line is exactly ``head`` (up to the next ``## `` heading)
    or append it. The whole line must match: a heading that extends another (a tagged run's)
    is a different section."""
    text = path.read_text() if path.exists() else "# thrifty benchmark results\n"
    line = head.rstrip("\n") + "\n"
    if line in text:
        start = text.index(line)
        nxt = text.find("\n## ", start + len(line) - 1)
        text = text[:start] + section.rstrip("\n") + "\n" + (text[nxt:] if nxt != -1 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
