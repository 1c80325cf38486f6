"""Tasks: clean and corrupted prompts, their answers, and the metric that scores a run."""

from circuitscope.tasks.accuracy import TaskCheck, task_accuracy
from circuitscope.tasks.acronyms import acronyms_task
from circuitscope.tasks.agreement import verb_agreement_task
from circuitscope.tasks.capitals import capital_after_period_task
from circuitscope.tasks.counting import counting_task
from circuitscope.tasks.email import email_task
from circuitscope.tasks.facts import Fact, load_facts
from circuitscope.tasks.generate import TaskConfig
from circuitscope.tasks.greater_than import greater_than_task
from circuitscope.tasks.ioi import IOIConfig, ioi_task
from circuitscope.tasks.jsonl import load_jsonl_task
from circuitscope.tasks.library import (
    TASK_DESCRIPTIONS,
    TASK_NAMES,
    TaskName,
    TaskSurvey,
    UnknownTaskError,
    check_task_spec,
    make_task,
    resolve_task,
    survey_tasks,
)
from circuitscope.tasks.metrics import METRICS, MetricName, evaluate_metric
from circuitscope.tasks.pronouns import pronoun_task
from circuitscope.tasks.sentiment import sentiment_task
from circuitscope.tasks.spans import CorruptionSpan, corruption_span
from circuitscope.tasks.task import Task, TaskError

__all__ = [
    "METRICS",
    "TASK_DESCRIPTIONS",
    "TASK_NAMES",
    "CorruptionSpan",
    "Fact",
    "IOIConfig",
    "MetricName",
    "Task",
    "TaskCheck",
    "TaskConfig",
    "TaskError",
    "TaskName",
    "TaskSurvey",
    "UnknownTaskError",
    "acronyms_task",
    "capital_after_period_task",
    "check_task_spec",
    "corruption_span",
    "counting_task",
    "email_task",
    "evaluate_metric",
    "greater_than_task",
    "ioi_task",
    "load_facts",
    "load_jsonl_task",
    "make_task",
    "pronoun_task",
    "resolve_task",
    "sentiment_task",
    "survey_tasks",
    "task_accuracy",
    "verb_agreement_task",
]
