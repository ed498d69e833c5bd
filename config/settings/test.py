"""Tests: PostgreSQL when DATABASE_URL is set (CI), SQLite otherwise; fast hashing."""

import tempfile
from pathlib import Path

from config.settings.base import *  # noqa: F403

DEBUG = False
SECRET_KEY = "test-only-insecure-key-0123456789abcdefghijklmnopqrstuvwxyz"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
PREFHUB_DATA_DIR = Path(tempfile.mkdtemp(prefix="prefhub-test-data-"))
MEDIA_ROOT = PREFHUB_DATA_DIR / "media"
# An offline Hugging Face cache of the tests' own (tests/conftest.py seeds the placeholder names
# the tests use; tests/hub_cache.py writes the layout huggingface_hub reads).
PREFHUB_HF_HUB_CACHE = str(PREFHUB_DATA_DIR / "hf-hub")
PREFHUB_HUB_ONLINE = False
