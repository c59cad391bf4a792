"""Executors for studies: where a study's jobs run, by name (``physwm compare/demo --executor``).

A study accepts any ``concurrent.futures.Executor`` (:func:`~physwm.studies.run_study`'s ``executor``);
every job seeds itself, so the results do not depend on which executor ran it. Two are built in:

* ``"process"``: the study's own pool of ``workers`` local processes (the default);
* ``"ray"``: :class:`RayExecutor`, the jobs as Ray tasks, on a local Ray instance started for the study
  or on an existing cluster (``address``, e.g. ``"ray://head:10001"`` or ``"auto"``). Needs the optional
  extra: ``pip install "physwm[ray]"``. The cluster's workers must be able to import physwm (the same
  version) and read and write the study's output directory (a shared file system).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

from ..checks import positive_int

__all__ = ["EXECUTORS", "RayExecutor", "make_executor", "call"]

#: Executor names ``make_executor`` (and the command line) accepts.
EXECUTORS: tuple[str, ...] = ("process", "ray")


def _import_ray() -> Any:
    try:
        return importlib.import_module("ray")
    except ImportError as err:
        raise ImportError('the "ray" executor needs Ray: pip install "physwm[ray]"') from err


def call(fn: Callable, args: tuple, kwargs: dict) -> Any:
    """``fn(*args, **kwargs)``: the one Ray task every submitted call runs as (any callable, builtins too)."""
    return fn(*args, **kwargs)


class RayExecutor(Executor):
    """A ``concurrent.futures.Executor`` that runs each call as a Ray task (one CPU each).

    Args:
        address: an existing Ray cluster to connect to (``ray.init(address=...)``); ``None`` starts a local
            Ray instance with ``num_cpus`` CPUs (stopped again by :meth:`shutdown`), unless Ray is already
            initialised in this process, in which case that instance is used and left running.
        num_cpus: CPUs of a local instance (``None``: Ray's default, every core).
        **init_options: further keyword arguments of ``ray.init`` (``runtime_env``, ``object_store_memory``,
            ...).

    ``submit(fn, *args)`` returns a ``concurrent.futures.Future`` of the task's result (``fn`` and its
    arguments must pickle, as for a process pool).
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, **init_options: Any):
        ray = _import_ray()
        self._ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            options = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False, **init_options}
            if address is None:
                options["num_cpus"] = None if num_cpus is None else positive_int(num_cpus, "num_cpus")
            ray.init(address=address, **options)
        self._task: Any = None
        self._refs: list[Any] = []
        self._closed = False

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` as a Ray task; returns its future."""
        if self._closed:
            raise RuntimeError("cannot submit to a RayExecutor after shutdown()")
        if self._task is None:
            self._task = self._ray.remote(num_cpus=1, max_retries=0)(call)
        ref = self._task.remote(fn, args, kwargs)
        self._refs.append(ref)
        return ref.future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting tasks; cancel unfinished ones if asked; stop the local Ray instance it started."""
        if self._closed:
            return
        self._closed = True
        if cancel_futures:
            for ref in self._refs:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - finished or already gone
                    pass
        elif wait and self._refs:
            self._ray.wait(self._refs, num_returns=len(self._refs))
        self._refs.clear()
        if self._owns:
            self._ray.shutdown()


def make_executor(name: str, workers: int, address: str | None = None) -> Executor | None:
    """The executor of a name in :data:`EXECUTORS` for a study of ``workers`` workers.

    Returns ``None`` for ``"process"`` (the study then runs its own pool of ``workers`` processes) and a
    :class:`RayExecutor` for ``"ray"`` (a local instance with ``workers`` CPUs, or the cluster at
    ``address``). The caller shuts the executor down.

    Raises:
        ValueError: an unknown name (listing the valid ones), or ``address`` without ``"ray"``.
        ImportError: ``"ray"`` without Ray installed.
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown executor {name!r}; valid: {list(EXECUTORS)}")
    workers = positive_int(workers, "workers")
    if name == "process":
        if address is not None:
            raise ValueError("a Ray address (--ray-address) needs the ray executor (--executor ray)")
        return None
    return RayExecutor(address=address, num_cpus=None if address is not None else workers)
