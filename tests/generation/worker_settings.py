"""Settings for the Celery worker processes the generation integration tests start: the test
settings, with the Redis transport told to restore unacknowledged messages soon after the (short,
from CELERY_VISIBILITY_TIMEOUT) visibility timeout, so a killed worker's batch comes back within
seconds instead of the default sweep of about 100 s."""

from config.settings.test import *  # noqa: F403
from config.settings.test import CELERY_BROKER_TRANSPORT_OPTIONS

CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
}
