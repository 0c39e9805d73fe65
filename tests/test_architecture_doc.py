"""docs/architecture.md names modules and pages that exist: it follows the tree when files move."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "architecture.md"
CORE = ROOT / "asyncz_core" / "src" / "asyncz"
# A module path as the page writes it: `schedulers/base.py`, `triggers/`, `asyncz/abc.py`.
MODULE = re.compile(r"(?<![\w/.-])((?:asyncz/)?(?:[a-z_]+/)*(?:[a-z_]+\.py|[a-z_]+/))(?![\w/])")
LINK = re.compile(r"\]\(([^)#]+\.md)\)")


def named_modules(text: str) -> set[str]:
    return {m.group(1) for m in MODULE.finditer(text)}


def exists(path: str) -> bool:
    relative = path.removeprefix("asyncz/")
    candidates = [CORE / relative, ROOT / path, ROOT / "plugins" / path]
    return any(candidate.exists() for candidate in candidates)


def test_every_module_named_on_the_page_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    # Named as the target of the redesign, not as today's tree.
    planned = {"asyncz/abc.py"}
    named = named_modules(text) - planned
    assert {"schedulers/base.py", "stores/base.py", "executors/base.py", "registry.py"} <= named
    missing = sorted(path for path in named if not exists(path))
    assert missing == [], f"docs/architecture.md names modules that do not exist: {missing}"


def test_every_page_linked_exists() -> None:
    text = PAGE.read_text(encoding="utf-8")
    links = LINK.findall(text)
    assert "writing-a-store-plugin.md" in links
    assert "writing-a-trigger-plugin.md" in links
    assert [link for link in links if not (PAGE.parent / link).exists()] == []


def test_the_pattern_sees_a_module_that_is_not_there() -> None:
    assert not exists("schedulers/_nowhere.py")
    assert named_modules("lives in `schedulers/_nowhere.py` today") == {"schedulers/_nowhere.py"}


def test_every_module_on_the_data_path_sketches_its_step() -> None:
    """Each module of schedulers, stores, executors, tasks and triggers opens with a docstring
    whose first or second paragraph says where it sits on the data path
    (add_task -> store -> wake-up -> pass -> executor -> event)."""
    import ast

    missing = []
    for package in ("schedulers", "stores", "executors", "tasks", "triggers"):
        for path in sorted((CORE / package).glob("*.py")):
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
            if "Data path" not in "\n\n".join(doc.split("\n\n")[:2]):
                missing.append(f"{package}/{path.name}")
    assert missing == []
