"""Celery tasks of the training app (queue "training"): exports and training runs."""

from training.tasks.exports import *  # noqa: F403
from training.tasks.runs import *  # noqa: F403
