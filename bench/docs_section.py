"""Each benchmark owns one ``## <title>`` section of docs/benchmarks.md.

``write_section`` replaces that section (up to the next ``## `` heading) or
appends it, and leaves every other section as it is.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(section: str, docs: Path = DOCS) -> Path:
    """Put ``section`` (markdown starting with its ``## `` heading) into ``docs``."""
    title = section.split("\n", 1)[0].removeprefix("## ")
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    own = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.M | re.S)
    if own.search(text):
        text = own.sub(lambda _: section.rstrip("\n") + "\n\n", text)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    docs.write_text(re.sub(r"\n{3,}", "\n\n", text).rstrip("\n") + "\n")
    return docs
