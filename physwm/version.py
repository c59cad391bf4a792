"""The installed physwm version (``physwm.__version__``), importable by any module without a cycle."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("physwm")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
