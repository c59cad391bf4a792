"""Griffe extension of the documentation site: Sphinx roles in physwm's docstrings become cross-references.

The docstrings are Google style with reStructuredText roles (``:class:`~physwm.systems.System```,
``:func:`collect```). Markdown has no roles, so each becomes a mkdocstrings cross-reference
(``[`System`][physwm.systems.base.System]``) when its target resolves, from the object's own scope, to a
physwm object (strict builds then fail on references that break), and a code span otherwise.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc|const):`([^`]+)`")


def _target(obj, ref: str) -> tuple[str, str | None]:
    """``(title, full path or None)`` of a role's text as seen from ``obj``."""
    text = ref.strip()
    m = re.match(r"(.*?)\s*<([^>]+)>$", text)
    title, ref = (m.group(1), m.group(2)) if m else (None, text)
    short = ref.startswith("~")
    ref = ref.lstrip("~")
    if title is None:
        title = ref.rsplit(".", 1)[-1] if short else ref
    path = None
    if ref.startswith("."):  # relative to the object's package
        pkg = obj.module if obj.module.is_init_module else obj.module.parent
        path = f"{pkg.path}{ref}"
    else:
        try:
            path = obj.resolve(ref.split(".")[0]) + ref[len(ref.split(".")[0]):]
        except Exception:  # noqa: BLE001 - unresolvable from here: a plain code span
            path = ref if ref.startswith("physwm.") else None
    if path is not None:
        try:
            target = obj.modules_collection[path]
            path = target.canonical_path
        except Exception:  # noqa: BLE001
            pass
    if path is not None and not path.startswith("physwm"):
        path = None
    return title, path


class SphinxRoles(griffe.Extension):
    """Rewrite the roles of every docstring once the whole package is loaded."""

    def on_package(self, *, pkg, **kwargs) -> None:
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = ROLE.sub(lambda m, o=obj: _link(o, m.group(1)), obj.docstring.value)


def _link(obj, ref: str) -> str:
    title, path = _target(obj, ref)
    if path is None or any(part.startswith("_") for part in path.split(".")):
        return f"`{title}`"
    return f"[`{title}`][{path}]"


def _walk(obj, seen=None):
    seen = set() if seen is None else seen
    if id(obj) in seen or obj.is_alias:
        return
    seen.add(id(obj))
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member, seen)
