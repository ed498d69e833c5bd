"""Celery tasks for training runs."""
