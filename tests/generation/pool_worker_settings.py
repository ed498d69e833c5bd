"""Settings for worker processes of the worker-pool tests: the test settings, with the
transformers backend replaced by ``spawning_backend`` (a fake that starts a child process like
vLLM's engine)."""

from config.settings.test import *  # noqa: F403
from generation import backends

backends.MODULES["transformers"] = "tests.generation.spawning_backend"
