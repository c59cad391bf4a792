"""MkDocs hooks of the documentation site: the notebooks and one API page per package, generated.

* Every ``notebooks/*.ipynb`` becomes the page ``notebooks/<name>.ipynb`` (mkdocs-jupyter renders it),
  read from ``$PHYSWM_NOTEBOOKS`` if set (a folder named ``notebooks`` of executed copies) or from the repository's
  ``notebooks/``. They stay where they are: the notebooks folder is their one home.
* ``api/<package>.md`` lists every public module of a physwm package (``::: physwm.package.module``),
  so a new module is documented without editing the site.
"""

from __future__ import annotations

import os
import pkgutil
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("systems", "integrators", "models", "data", "train", "evaluate", "control", "studies", "plot")


def _modules(package: str) -> list[str]:
    path = ROOT / "physwm" / package
    return [f"physwm.{package}.{m.name}" for m in pkgutil.iter_modules([str(path)]) if not m.name.startswith("_")]


def _api_page(title: str, modules: list[str], intro: str = "") -> str:
    blocks = [f"# {title}\n", intro] + [f"::: {m}\n" for m in modules]
    return "\n".join(blocks)


def _pages() -> dict[str, str]:
    pages = {f"api/{p}.md": _api_page(f"physwm.{p}", [f"physwm.{p}", *_modules(p)]) for p in PACKAGES}
    pages["api/envs.md"] = _api_page("physwm.envs", ["physwm.envs", "physwm.vector_envs"])
    pages["api/physwm.md"] = _api_page("physwm", ["physwm", "physwm.checks", "physwm.files", "physwm.cli",
                                                  "physwm.discover"])
    return pages


@event_priority(100)  # before mkdocs-jupyter looks for notebooks among the files
def on_files(files, config):
    folder = Path(os.environ.get("PHYSWM_NOTEBOOKS") or ROOT / "notebooks").resolve()
    if folder.name != "notebooks" or not folder.is_dir():
        raise ValueError(f"PHYSWM_NOTEBOOKS must be a folder named notebooks, got {folder}")
    for nb in sorted(folder.glob("*.ipynb")):  # mkdocs-jupyter reads src_dir / src_uri
        files.append(File(f"notebooks/{nb.name}", src_dir=str(folder.parent), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    for uri, text in _pages().items():
        files.append(File.generated(config, uri, content=text))
    return files
