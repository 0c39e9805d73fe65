"""Tasks: ``from asyncz.tasks import Task``."""

from asyncz.tasks.task import STATE_VERSION, ScheduleState, Task, TaskInfo, TaskLabel, task_label

__all__ = ["STATE_VERSION", "ScheduleState", "Task", "TaskInfo", "TaskLabel", "task_label"]
