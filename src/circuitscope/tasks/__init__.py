"""Tasks: clean and corrupted prompts, their answers, and the metric that scores a run."""

from circuitscope.tasks.facts import Fact, load_facts
from circuitscope.tasks.ioi import IOIConfig, ioi_task
from circuitscope.tasks.jsonl import load_jsonl_task
from circuitscope.tasks.metrics import METRICS, MetricName, evaluate_metric
from circuitscope.tasks.task import Task, TaskError

__all__ = [
    "METRICS",
    "Fact",
    "IOIConfig",
    "MetricName",
    "Task",
    "TaskError",
    "evaluate_metric",
    "ioi_task",
    "load_facts",
    "load_jsonl_task",
]
