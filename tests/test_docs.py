"""Every ```python block of README.md and docs/*.md runs, standalone, and its asserts hold.

Blocks run in a fresh namespace, in a temporary working directory. A block that needs a
server uses another fence (```py-redis, ```py-mongo, ```py-postgres) and is not run here;
its store's own tests cover it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def blocks() -> list[tuple[str, int, str]]:
    found = []
    for page in PAGES:
        if not page.exists():
            continue
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2
            found.append((str(page.relative_to(ROOT)), line, match.group(1)))
    return found


ALL = blocks()


def test_the_docs_have_examples() -> None:
    assert len(ALL) >= 20


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("page", "line", "code"), ALL, ids=[f"{p}:{n}" for p, n, _ in ALL])
def test_doc_example_runs(page: str, line: int, code: str) -> None:
    namespace = {"__name__": "__docs__"}
    exec(compile(code, f"{page}:{line}", "exec"), namespace)
