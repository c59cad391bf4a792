"""Files: every save is atomic and never a silent overwrite; JSON keeps non-finite numbers.

Every module that writes a file goes through :func:`atomic_write` (temp file beside the target, fsync,
``os.replace``), so an interrupted or failed save never leaves a half-written file or damages an old one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "atomic_write",
    "atomic_write_text",
    "to_json_value",
    "from_json_value",
    "json_dumps",
    "write_json",
    "read_json",
]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], *, overwrite: bool = False) -> Path:
    """Write ``path`` through ``write(binary file)``: to a temp file beside it, fsync, then ``os.replace``.

    A failure at any point (an exception in ``write``, a full disk, Ctrl-C) leaves an existing file as it
    was and no temp file behind. The parent directory is created if needed.

    Raises:
        FileExistsError: ``path`` exists (also if it appeared while writing) and ``overwrite`` is False.
        IsADirectoryError: ``path`` is a directory.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a file")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except PermissionError as err:
        raise PermissionError(f"cannot write {path}: no permission to create files in {path.parent}") from err
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} appeared while writing; pass overwrite=True to replace it")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = False) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data), overwrite=overwrite)


# --- JSON with non-finite numbers -----------------------------------------------------------------------
# Strict JSON has no NaN or infinity; physwm writes them as the strings "nan", "inf" and "-inf" (a diverged
# model's error is inf, not missing) and reads them back as floats.

_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def to_json_value(v: Any) -> Any:
    """``v`` with non-finite floats replaced by ``"nan"``/``"inf"``/``"-inf"`` and numpy scalars by Python ones."""
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, Mapping):
        return {str(k): to_json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [to_json_value(x) for x in v]
    return v


def from_json_value(v: Any) -> Any:
    """Inverse of :func:`to_json_value`: the strings ``"nan"``, ``"inf"``, ``"-inf"`` become floats."""
    if isinstance(v, str) and v in _NONFINITE:
        return _NONFINITE[v]
    if isinstance(v, dict):
        return {k: from_json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [from_json_value(x) for x in v]
    return v


def json_dumps(obj: Any, indent: int | None = 1, *, compact_arrays: bool = False) -> str:
    """Strict JSON text of ``obj`` (see :func:`to_json_value`), ending with a newline.

    ``compact_arrays``: write every array of plain values (numbers, strings, null) on one line, so tables
    stored as lists of rows stay small and still diff line by line.
    """
    value = to_json_value(obj)
    if not compact_arrays or indent is None:
        return json.dumps(value, indent=indent, allow_nan=False) + "\n"
    return _pretty(value, indent, 0) + "\n"


def _pretty(v: Any, indent: int, level: int) -> str:
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(v, dict) and v:
        items = [f"{inner}{json.dumps(k)}: {_pretty(x, indent, level + 1)}" for k, x in v.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(v, list) and v and any(isinstance(x, (dict, list)) for x in v):
        return "[\n" + ",\n".join(inner + _pretty(x, indent, level + 1) for x in v) + "\n" + pad + "]"
    return json.dumps(v, separators=(",", ":") if isinstance(v, list) else None, allow_nan=False)


def write_json(path: str | os.PathLike, obj: Any, *, overwrite: bool = False) -> Path:
    """:func:`atomic_write_text` of :func:`json_dumps` ``(obj)``."""
    return atomic_write_text(path, json_dumps(obj), overwrite=overwrite)


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read a JSON file written by :func:`write_json` (non-finite strings back to floats).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the file: not UTF-8 text or not valid JSON (corrupt or truncated?).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return from_json_value(json.loads(path.read_text(encoding="utf-8")))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON (a {what}: corrupt or truncated?): {err}") from err
