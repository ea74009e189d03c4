"""A benchmark's generated section of docs/benchmarks.md, replaced between its markers.

A script writes its results as ``<!-- NAME:start -->`` ... ``<!-- NAME:end -->`` (added under
``## TITLE`` at the end the first time), so rerunning it updates the numbers and leaves the
hand-written reading around them alone. Scripts in benchmarks/ import it by name (their folder
is on ``sys.path`` when run as ``python benchmarks/SCRIPT.py``).
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def replace_section(name: str, title: str, text: str, doc: Path = DOC) -> None:
    """Put ``text`` between the ``name`` markers of ``doc`` (a new ``## title`` section if there are none)."""
    from interp.io import atomic_write_text

    content = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"<!-- {name}:start -->\n{text.rstrip()}\n<!-- {name}:end -->"
    pattern = re.compile(rf"<!-- {re.escape(name)}:start -->.*?<!-- {re.escape(name)}:end -->", re.DOTALL)
    if pattern.search(content):
        content = pattern.sub(lambda m: block, content)
    else:
        content = content.rstrip() + f"\n\n## {title}\n\n" + block + "\n"
    atomic_write_text(doc, content)


def publish(result: dict, out: Path, text: str, name: str, title: str, doc: bool = True) -> None:
    """Write ``result`` as JSON to ``out``, print ``text``, and (``doc``) put it in section ``name``."""
    import json

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(text)
    if doc:
        replace_section(name, title, text)
