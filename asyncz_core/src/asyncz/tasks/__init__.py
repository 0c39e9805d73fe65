"""Tasks: ``from asyncz.tasks import Task``.

Data path: a task is what travels the path: add_task -> store -> wake-up -> pass ->
executor -> event.
"""

from asyncz.tasks.task import STATE_VERSION, ScheduleState, Task, TaskInfo, TaskLabel, task_label

__all__ = ["STATE_VERSION", "ScheduleState", "Task", "TaskInfo", "TaskLabel", "task_label"]
