"""torch.compile for physwm's kernels: compiled once per input signature, the cost shown, eager as a fallback.

:class:`CompiledFunction` wraps a function of tensors (a fused rollout chunk, a batch of one-step Jacobians,
one model step) in ``torch.compile`` and adds what a library call needs around it:

* **the first call per input signature is shown**: compiling takes seconds to minutes, so each compile
  prints one line to stderr when it starts and one when it ends (with the seconds it took);
  ``progress=False`` silences them and :attr:`CompiledFunction.compile_seconds` keeps the total;
* **an eager fallback**: if compilation is unavailable (:func:`compile_available` is false: no C++
  compiler for inductor) the function simply runs eagerly, silently, since nothing failed and the numbers
  are the same; if a compile *fails* (an operation inductor cannot compile, a field whose code breaks the
  graph), it warns once and runs eagerly from then on (or raises, ``fallback=False``);
* **its own compile cache**: each instance compiles a fresh copy of the function's code, so torch's
  per-code cache (and its limit of ``torch._dynamo.config.recompile_limit`` signatures, 8) is not shared
  with other instances.

What is cached where: ``torch.compile`` keeps compiled kernels in memory on the wrapped function (so on the
:class:`CompiledFunction`, which physwm keeps on the object it belongs to, e.g. a field) and on disk in
inductor's caches (the FX graph cache and AOTAutograd cache, on by default, under
``torch._inductor.runtime.cache_dir_utils.cache_dir()``: ``$TORCHINDUCTOR_CACHE_DIR``, by default
``/tmp/torchinductor_<user>``). A second process therefore skips the C++ compilation but still traces the
function with dynamo (seconds; ``bench/compile_cache.py`` measures both).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable
from typing import Any

import torch
from tqdm.auto import tqdm

__all__ = ["CompiledFunction", "KernelOwner", "compile_available", "inductor_cache_dir"]


def compile_available(device: str | torch.device = "cpu") -> bool:
    """Whether ``torch.compile`` with inductor can be expected to work here (on CPU: a C++ compiler), and is
    not turned off (torch's ``TORCH_COMPILE_DISABLE=1`` environment variable: then physwm runs everything eagerly).

    A cheap check (no compilation is attempted); a compile can still fail, and then
    :class:`CompiledFunction` falls back to eager mode with a warning.
    """
    if not hasattr(torch, "compile") or os.environ.get("TORCH_COMPILE_DISABLE", "0") == "1":
        return False
    if torch.device(device).type == "cpu":
        try:
            from torch._inductor import config as inductor_config

            cxx = inductor_config.cpp.cxx[-1] if inductor_config.cpp.cxx else None
        except Exception:  # pragma: no cover - very old or stripped torch
            return False
        candidates = [c for c in (cxx, "g++", "c++", "clang++") if c]
        return any(shutil.which(c) for c in candidates)
    return True


def inductor_cache_dir() -> str | None:
    """The directory of inductor's on-disk caches (``$TORCHINDUCTOR_CACHE_DIR`` or its default), or None if
    this torch does not say."""
    try:
        from torch._inductor.runtime.cache_dir_utils import cache_dir
    except ImportError:  # pragma: no cover - older or stripped torch
        return None
    return cache_dir()


def _fresh_code(fn: Callable, owner: object) -> Callable:
    """A copy of ``fn`` with its own code object (named after ``owner``), so torch.compile's per-code cache
    (and its recompile limit) is not shared between different instances."""
    name = f"_physwm_compiled_{id(owner):x}"
    code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _shapes(args: tuple) -> str:
    return "inputs " + ", ".join(str(list(a.shape)) for a in args if isinstance(a, torch.Tensor))


def _signature(args: tuple, dynamic: bool | None) -> tuple:
    key: list[Any] = [torch.is_grad_enabled()]
    for a in args:
        if isinstance(a, torch.Tensor):
            key.append((None if dynamic is not False else tuple(a.shape), a.dtype, a.device.type))
        else:
            key.append(type(a).__name__)
    return tuple(key)


class CompiledFunction:
    """``fn`` compiled with ``torch.compile`` per input signature, each compile shown (see the module doc).

    Args:
        fn: a function of tensors (a plain Python function; its code is copied, see the module doc).
        name: what is compiled, for the progress messages (e.g. ``"rollout of HybridField with RK4"``).
        backend: ``torch.compile`` backend (``"inductor"``; ``"eager"`` traces without compiling, for tests).
        dynamic: passed to ``torch.compile``; ``False`` (default) compiles once per input shape.
        fullgraph: passed to ``torch.compile`` (default True: a graph break is a failure, not a slow path).
        options: inductor options (e.g. a ``post_grad_custom_pre_pass``).
        fallback: on a failed compile, warn once and run eagerly (True) or raise ``RuntimeError`` (False).
        progress: print a line to stderr when a compile starts and when it ends.
        describe: ``args -> str``, how the messages name a signature (default: the tensors' shapes).

    Attributes:
        compiled: False when the function runs eagerly (no compiler, or a compile failed).
        compile_seconds: wall time spent in calls that compiled (compilation plus that call's work).
        compiles: number of signatures compiled so far.
    """

    def __init__(
        self,
        fn: Callable,
        name: str,
        *,
        backend: str | Callable = "inductor",
        dynamic: bool | None = False,
        fullgraph: bool = True,
        options: dict | None = None,
        fallback: bool = True,
        progress: bool = True,
        describe: Callable[[tuple], str] | None = None,
    ):
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {type(fn).__name__}")
        self.name, self.backend, self.dynamic, self.fallback, self.progress = name, backend, dynamic, fallback, progress
        self.eager = fn
        self.describe = describe or _shapes
        self._fn: Callable = fn
        self.compiled = False
        self.compile_seconds = 0.0
        self.compiles = 0
        self._seen: set[tuple] = set()
        self._lock = threading.RLock()
        if backend == "inductor" and not compile_available():
            return  # nothing to compile with: eager, silently (same numbers)
        try:
            self._fn = torch.compile(_fresh_code(fn, self), backend=backend, fullgraph=fullgraph, dynamic=dynamic,
                                     options=options if backend == "inductor" else None)
            self.compiled = True
        except Exception as err:  # torch without compile, unknown backend, ...
            self._give_up(f"{type(err).__name__}: {err}", err)

    def _give_up(self, reason: str, err: Exception | None = None) -> None:
        if not self.fallback:
            raise RuntimeError(f"physwm: compiling the {self.name} failed ({reason})") from err
        warnings.warn(
            f"physwm: compiling the {self.name} failed ({reason}); running it eagerly (same numbers, slower)",
            RuntimeWarning,
            stacklevel=4,
        )
        self._fn = self.eager
        self.compiled = False

    def _say(self, text: str) -> None:
        if self.progress:
            tqdm.write(text, file=sys.stderr)

    def __call__(self, *args: Any) -> Any:
        if not self.compiled:
            return self.eager(*args)
        key = _signature(args, self.dynamic)
        if key in self._seen:
            return self._fn(*args)
        with self._lock:
            if key in self._seen:  # another thread compiled it meanwhile
                return self._fn(*args)
            self._say(f"physwm: compiling the {self.name} for {self.describe(args)} (once per input shape; "
                      f"inductor caches the compiled code on disk in {inductor_cache_dir()}) ...")
            t0 = time.perf_counter()
            try:
                out = self._fn(*args)
            except Exception as err:
                first = str(err).strip().splitlines()[0] if str(err) else ""
                self._give_up(f"{type(err).__name__}: {first}", err)
                return self.eager(*args)
            seconds = time.perf_counter() - t0
            self._seen.add(key)
            self.compile_seconds += seconds
            self.compiles += 1
            self._say(f"physwm: compiled the {self.name} in {seconds:.1f} s")
            return out

    def __repr__(self) -> str:
        mode = "compiled" if self.compiled else "eager"
        return f"CompiledFunction({self.name!r}, {mode}, compiles={self.compiles})"


class KernelOwner:
    """Base of the objects that run one :class:`CompiledFunction`, their ``kernel`` (fused rollouts, vector
    steps, closed-loop rollouts): whether it compiled and what compiling cost."""

    kernel: CompiledFunction

    @property
    def compiled(self) -> bool:
        """False when the kernel runs eagerly (no compiler, or compilation failed)."""
        return self.kernel.compiled

    @property
    def compile_seconds(self) -> float:
        """Wall time spent in calls that compiled."""
        return self.kernel.compile_seconds
