"""The documentation site builds in strict mode: every link, anchor and docstring cross-reference resolves.

The build renders the notebooks executed once for the suite (``executed_notebooks``), with their figures.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="the docs extra (pip install 'physwm[docs]') is part of the dev install")


@pytest.fixture(scope="module")
def site(executed_notebooks, tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PHYSWM_NOTEBOOKS": str(executed_notebooks.folder), "PHYSWM_DOCS_EXECUTE": "false",
           "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=900)  # fmt: skip
    warnings = [line for line in r.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert r.returncode == 0, "\n".join(warnings) or r.stderr[-4000:]
    return out


def test_every_page_is_built(site):
    for page in ("index.html", "getting-started/index.html", "architecture/index.html", "systems/index.html",
                 "integrators/index.html", "models/index.html", "training/index.html", "data/index.html",
                 "studies/index.html", "planning/index.html", "api/models/index.html"):  # fmt: skip
        assert (site / page).is_file(), page


def test_the_api_reference_comes_from_the_docstrings_with_working_cross_references(site):
    html = (site / "api" / "data" / "index.html").read_text()
    assert 'id="physwm.data.collect.collect"' in html and "vector environment" in html
    # the docstring of SystemEnv names :class:`~physwm.integrators.Integrator`: now a link to its entry
    envs = (site / "api" / "envs" / "index.html").read_text()
    assert re.search(r'href="(\.\./)?integrators/#physwm\.integrators\.base\.Integrator"', envs)
    assert ":class:`" not in envs  # no raw Sphinx role left


def rendered_figures(html: str) -> int:
    """Figures among a rendered notebook's outputs (not images elsewhere in the page, e.g. in its CSS)."""
    return len(re.findall(r'class="jp-RenderedImage jp-OutputArea-output"[^>]*>\s*<img [^>]*src="data:image/png', html))


def test_notebooks_are_rendered_with_their_figures(site, executed_notebooks):
    for name, err in executed_notebooks.errors.items():
        if err is None:
            html = (site / "notebooks" / Path(name).stem / "index.html").read_text()
            assert rendered_figures(html) >= 1, f"{name}: no figure among the rendered outputs"
    html = (site / "notebooks" / "hybrid_vs_implicit" / "index.html").read_text()
    assert rendered_figures(html) == 2  # the residual and the phase portrait
