"""Control tasks by name: a system's tasks (costs, start boxes, success tests), built on demand.

Tasks belong to systems (:meth:`physwm.systems.System.tasks`); this module only looks them up, so a user's
system brings its own tasks and the planners, episodes and the command line run them unchanged.
"""

from __future__ import annotations

from typing import Any

from ..systems import DEFAULT_SYSTEM, System, Task, get_system

__all__ = ["get_task", "task_names"]


def get_task(task: str | Task, system: Any = DEFAULT_SYSTEM, params: Any = None) -> Task:
    """A :class:`~physwm.systems.Task` by name (or ``task`` itself if it is one).

    Args:
        task: a task name of the system (CartPole: ``"balance"``, ``"swingup"``) or a Task.
        system: the system (name, class or instance; default CartPole).
        params: the constants the task is built for (its terminal cost's linearisation, its time scale;
            default the system's ``Params()``).

    Raises:
        ValueError: an unknown name, listing the system's tasks.
    """
    if isinstance(task, Task):
        return task
    cls: type[System] = get_system(system)
    tasks = cls.tasks(params)
    if task not in tasks:
        raise ValueError(f"unknown task {task!r}; valid: {sorted(tasks)}")
    return tasks[task]


def task_names(system: Any = DEFAULT_SYSTEM) -> list[str]:
    """The names of a system's tasks."""
    return sorted(get_system(system).tasks())
