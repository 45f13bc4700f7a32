"""Public names handed on lazily by a package's `__init__`.

A package's face names what callers import from it (`from bulk_chats import Settings`),
but importing every module behind those names whenever any one module of the package is
imported would hide a circle behind import order, and cost the workbook-reading child or
the sandbox the whole library. `lazy_names` gives a face a module `__getattr__` that
imports each name from the module that owns it on first use (PEP 562).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_names(
    package: str, owners: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for the package `package` whose public names are the
    keys of `owners` (name → the module that defines it); `namespace` is the package's
    `globals()`, where each name is kept once imported."""

    def getattr_(name: str) -> Any:
        owner = owners.get(name)
        if owner is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(owner), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *owners})

    return getattr_, dir_
