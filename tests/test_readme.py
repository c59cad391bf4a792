"""The README's notebook example runs as written and does what its comments say."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs_and_identifies_the_friction():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) == 1, "expected one python example in the README"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert ns["states"].shape == (1, 251, 4)
    found = ns["model"].field.physics.identified()
    assert found["cart_viscous"] == pytest.approx(0.5, rel=0.02)
    assert found["pole_damping"] == pytest.approx(0.005, rel=0.05)
    assert ns["pred"].shape == ns["val"].states.shape
