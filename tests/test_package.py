"""The house itself: stages in folders that import only downward, a public API that is
complete, modules that import on their own, every third-party import declared, every
document the code names present."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import bulk_chats

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bulk_chats"

VOCABULARY = {"errors", "fields", "records", "settings", "timing", "progress", "serving"}
"""The top-level modules every stage may use (the `_exports` helper aside)."""

ALLOWED = {
    "sheet": set(),
    "checks": {"sheet"},
    "api": set(),
    "results": {"checks", "sheet"},
    "journal": {"results"},
    "send": {"api"},
    "lookups": {"api", "journal", "send"},
    "jobs": {"api", "checks", "journal", "lookups", "results", "send", "sheet"},
    "sandbox": set(),
    "ui": {"checks", "jobs", "journal", "results", "sheet"},
    "cli": {"checks", "jobs", "sandbox", "ui"},
}
"""Each stage's folder → the folders it may import from: lower floors only, so no import
runs back up and no circle can form between folders."""


def modules() -> list[str]:
    """Every module of the package, dotted (`bulk_chats.send.chats`)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append(".".join(parts))
    return found


def imports_of(path: Path) -> set[str]:
    """The modules `path` imports (each `from X import y` as X and X.y)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_public_api_is_listed_whole_and_every_name_resolves() -> None:
    """`bulk_chats.__all__` names every public name, each imported from its owner on use."""
    owners = bulk_chats._OWNERS
    assert sorted(bulk_chats.__all__) == sorted(owners)
    for name, owner in owners.items():
        value = getattr(bulk_chats, name)
        assert getattr(sys.modules[owner], name) is value
    assert set(bulk_chats.__all__) <= set(dir(bulk_chats))
    with pytest.raises(AttributeError):
        bulk_chats.no_such_name  # noqa: B018


def test_the_top_holds_the_vocabulary_and_folders_hold_the_stages() -> None:
    """At most 12 modules at the top; the stages are folders, each with a docstring that
    says what it owns and no import in its `__init__` but the lazy public names."""
    top = [path.name for path in PACKAGE.glob("*.py")]
    assert len(top) <= 12, top
    folders = [p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()]
    assert {p.name for p in folders} == set(ALLOWED)
    for folder in folders:
        tree = ast.parse((folder / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), folder.name
        real = [
            node
            for node in tree.body
            if isinstance(node, ast.Import | ast.ImportFrom)
            and node.module not in ("__future__", "typing", "bulk_chats._exports")
        ]
        assert real == [], f"{folder.name}/__init__.py imports at load time"


def test_no_module_is_over_500_lines() -> None:
    """A module past 500 lines holds two things: split it along its seam."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert long == {}


def test_stages_import_only_from_the_floors_below() -> None:
    """Each folder imports the vocabulary and the folders `ALLOWED` gives it, nothing else
    of the package: the import graph between folders has no circle and no arrow up."""
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if len(parts) == 1:
            continue
        stage = parts[0]
        for name in imports_of(path):
            target = name.split(".")
            if target[0] != "bulk_chats" or len(target) < 2 or target[1] == stage:
                continue
            if target[1] in VOCABULARY | {"_exports"} or target[1] in ALLOWED[stage]:
                continue
            wrong.append(f"{path.relative_to(ROOT)} imports {name}")
    assert wrong == []


def test_the_vocabulary_imports_no_stage() -> None:
    """The top-level modules import only each other, never a stage."""
    for path in PACKAGE.glob("*.py"):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        for name in imports_of(path):
            target = name.split(".")
            if target[0] == "bulk_chats" and len(target) > 1:
                assert target[1] in VOCABULARY | {"_exports"}, f"{path.name} imports {name}"


def test_every_module_imports_on_its_own() -> None:
    """Each module imports in a fresh state of the package (every `bulk_chats` module
    forgotten before it), so no import works only thanks to another's import order."""
    script = """
import importlib, sys
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "bulk_chats" or m.startswith("bulk_chats.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
"""
    names = [name for name in modules() if not name.endswith("__main__")]
    done = subprocess.run(
        [sys.executable, "-c", script, *names],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
        cwd=ROOT,
    )
    assert done.stdout.strip() == ""


def test_every_third_party_package_the_code_imports_is_declared() -> None:
    """What `bulk_chats` imports from outside the standard library is in the project's
    dependencies, so that `pip install .` on a fresh machine brings it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {re.split(r"[<>=!~\[; ]", spec)[0].lower() for spec in project["dependencies"]}
    distributions = importlib.metadata.packages_distributions()
    missing = set()
    for path in PACKAGE.rglob("*.py"):
        for name in imports_of(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top in ("bulk_chats", "__future__"):
                continue
            owners = {d.lower() for d in distributions.get(top, [top])}
            if not owners & declared:
                missing.add(f"{top} ({path.relative_to(ROOT)})")
    assert missing == set()


def test_every_document_the_code_names_is_in_the_repository() -> None:
    """A docstring that cites `docs/x.md › Section` points at a file the repository holds,
    and at a heading that file has."""
    cited = re.compile(r"\b((?:docs/)?[A-Za-z_-]+\.md)(?: › ([^,.;:)`\n]+))?")
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for document, section in cited.findall(" ".join(text.split())):
            target = ROOT / document
            if not target.is_file():
                wrong.append(f"{path.relative_to(ROOT)}: {document}")
                continue
            if section:
                headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.M)
                if not any(section.strip().startswith(h.strip()) for h in headings):
                    wrong.append(f"{path.relative_to(ROOT)}: {document} › {section}")
    assert wrong == []


def test_the_package_says_it_is_typed() -> None:
    """`py.typed` ships, so that a caller's type checker reads the annotations."""
    assert (PACKAGE / "py.typed").is_file()
