"""Writes one benchmark's section of docs/benchmarks.md, leaving the other sections as they are."""

import datetime
import re
from pathlib import Path

from core import publish

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
_HEAD = "# Benchmarks\n\nEach section is written by a script in `bench/`; rerun the command under it to refresh it.\n"


def write_section(title: str, lines: list[str], command: str, path: Path = BENCHMARKS) -> None:
    """Replaces (or appends) the `## title` section of `path` with `lines` and the command that made them."""
    text = path.read_text() if path.exists() else _HEAD
    body = "\n".join([f"## {title}", "", *lines, "", f"Command: `{command}` ({datetime.date.today().isoformat()})", ""])
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: body + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + body
    publish.write_text(path, text)
