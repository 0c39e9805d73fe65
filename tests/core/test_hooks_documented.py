"""Meta-test: every hook in asyncz.hookspecs has its own section in docs/plugins.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from asyncz import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return sorted(
        name
        for name in dir(hookspecs)
        if name.startswith("asyncz_") and callable(getattr(hookspecs, name))
    )


def documented(markdown: str) -> set[str]:
    """Hooks with a ``### asyncz_name`` section that contains a ```python example."""
    sections = re.split(r"^### ", markdown, flags=re.M)[1:]
    found = set()
    for section in sections:
        title, _, body = section.partition("\n")
        if "```python" in body.split("\n## ")[0]:
            found.add(title.strip().strip("`"))
    return found


def undocumented(markdown: str) -> list[str]:
    return [name for name in hook_names() if name not in documented(markdown)]


def test_hookspecs_exist() -> None:
    assert len(hook_names()) >= 5


@pytest.mark.parametrize("hook", hook_names())
def test_hook_is_documented(hook: str) -> None:
    assert hook in documented(DOC.read_text(encoding="utf-8")), f"document {hook} in {DOC}"


def test_check_fails_when_a_hook_lacks_a_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    removed = re.sub(r"^### asyncz_task_after_run\n", "### something_else\n", text, flags=re.M)
    assert undocumented(removed) == ["asyncz_task_after_run"]
    assert undocumented(text) == []
