"""Settings shared by every environment, safe on their own: DEBUG is off, there is no secret key
(Django refuses to start without ``DJANGO_SECRET_KEY``) and no host is allowed until
``DJANGO_ALLOWED_HOSTS`` names it. Development defaults live in ``config.settings.local`` (what
``manage.py`` uses), production hardening in ``config.settings.production`` (what wsgi/asgi and the
Celery app use when ``DJANGO_SETTINGS_MODULE`` is not set).

Storage defaults are the embedded, zero-setup ones: SQLite in ``var/`` and a Celery broker on
kombu's filesystem transport in ``var/broker`` (a real worker process, no services). Set
``DATABASE_URL`` for PostgreSQL and ``CELERY_BROKER_URL`` (or ``REDIS_URL``) for Redis. Importing
settings creates no folders: ``config.runtime.runtime_dirs_ensure`` makes the ones in use at start-up.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("PREFHUB_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(str(env_file))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")  # empty: Django refuses to run
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "core",
    "annotate",
    "generation",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "core.api_slashes.ApiTrailingSlashMiddleware",  # before CommonMiddleware's APPEND_SLASH
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions serialise writers at BEGIN, so the claim/submit services stay correct
    # on SQLite without SELECT ... FOR UPDATE; the timeout makes concurrent writers wait, not fail.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 30, "init_command": "PRAGMA journal_mode=WAL;"}
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
    # The server probes an idle client after this many seconds (then every 10 s, 6 times), so the
    # session of a worker machine that died (power, network) ends within about two minutes, and
    # with it the job lock it held (core.jobs.run_alone), long before its message is redelivered.
    # The system default is two hours. A DATABASE_URL that sets ?options= keeps its own.
    _keepalive = env.int("PREFHUB_DB_KEEPALIVE_S", default=60)
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "options",
        f"-c tcp_keepalives_idle={_keepalive} -c tcp_keepalives_interval=10 -c tcp_keepalives_count=6",
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = ["annotate.auth_backends.ThrottledModelBackend"]
# Sign-in throttling (annotate/services/auth.py): failures only, per (account, client address) and
# per address; each consecutive lockout of a key lasts twice as long, up to the maximum.
LOGIN_MAX_FAILURES = env.int("LOGIN_MAX_FAILURES", default=5)
LOGIN_MAX_FAILURES_PER_IP = env.int("LOGIN_MAX_FAILURES_PER_IP", default=50)
LOGIN_LOCKOUT_SECONDS = env.int("LOGIN_LOCKOUT_SECONDS", default=900)
LOGIN_LOCKOUT_MAX_SECONDS = env.int("LOGIN_LOCKOUT_MAX_SECONDS", default=24 * 3600)
# The reverse proxies in front of the app (addresses or networks). Only a request from one of them
# has its client address read from PREFHUB_CLIENT_IP_HEADER; by default REMOTE_ADDR is the client.
PREFHUB_TRUSTED_PROXIES = env.list("PREFHUB_TRUSTED_PROXIES", default=[])
PREFHUB_CLIENT_IP_HEADER = env.str("PREFHUB_CLIENT_IP_HEADER", default="HTTP_X_FORWARDED_FOR")
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotate:home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("DJANGO_STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploads: imports are streamed from a temporary file; anything above this is refused with a 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
PREFHUB_MAX_IMPORT_BYTES = env.int("PREFHUB_MAX_IMPORT_BYTES", default=512 * 1024 * 1024)
# Decompressed size limit for gzip imports (a small gzip bomb stops here, with a line error).
PREFHUB_MAX_IMPORT_DECOMPRESSED_BYTES = env.int("PREFHUB_MAX_IMPORT_DECOMPRESSED_BYTES", default=4 * 1024**3)
# Per imported prompt: more candidates, or more tasks (all_pairs grows as n^2), is a line error.
PREFHUB_MAX_CANDIDATES_PER_PROMPT = env.int("PREFHUB_MAX_CANDIDATES_PER_PROMPT", default=1000)
PREFHUB_MAX_TASKS_PER_PROMPT = env.int("PREFHUB_MAX_TASKS_PER_PROMPT", default=1000)
# After an import that wrote at least this many rows into a table (and a tenth of its rows), the
# table is ANALYZEd before COMMIT (PostgreSQL), so the first labeler gets the steady-state plan.
PREFHUB_IMPORT_ANALYZE_ROWS = env.int("PREFHUB_IMPORT_ANALYZE_ROWS", default=10_000)
# Bulk writes skip the per-row foreign-key checks of keys they guarantee themselves (rows of the same
# transaction, parents locked FOR KEY SHARE) when the database role may set session_replication_role
# (superuser, or PostgreSQL 15+: GRANT SET ON PARAMETER session_replication_role TO <role>).
PREFHUB_BULK_TRUSTED_FK = env.bool("PREFHUB_BULK_TRUSTED_FK", default=True)

# Model servers the platform may call on private/loopback addresses (SSRF guard for the openai
# backend); API keys for endpoints come from PREFHUB_KEY_* environment variables only.
PREFHUB_ALLOWED_MODEL_HOSTS = env.list("PREFHUB_ALLOWED_MODEL_HOSTS", default=[])
PREFHUB_REPORT_SYNC_MAX_ANNOTATIONS = env.int("PREFHUB_REPORT_SYNC_MAX_ANNOTATIONS", default=20_000)
# Models a generation worker keeps loaded (generation.backends.cache_size); loading another closes
# the oldest first, so the default 1 never lets two models share a GPU.
PREFHUB_BACKEND_CACHE_SIZE = env.int("PREFHUB_BACKEND_CACHE_SIZE", default=1)

# Where exports, trained models and generated artefacts live.
PREFHUB_DATA_DIR = Path(env.str("PREFHUB_DATA_DIR", default=str(VAR_DIR / "data")))
# Training runs name a Hugging Face Hub model only if it is in the local cache (checked at submit,
# core.paths.usable_model), unless PREFHUB_HUB_ONLINE lets the workers download it (HF_HUB_OFFLINE
# set in the environment still wins). Empty PREFHUB_HF_HUB_CACHE: huggingface_hub's own cache.
PREFHUB_HUB_ONLINE = env.bool("PREFHUB_HUB_ONLINE", default=False)
PREFHUB_HF_HUB_CACHE = env.str("PREFHUB_HF_HUB_CACHE", default="")

# --- Celery -------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")
CELERY_BROKER_FOLDER = Path(env.str("CELERY_BROKER_FOLDER", default=str(VAR_DIR / "broker")))
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded broker: a real worker process reads the same folder the web process writes to
    # (the folders are made at start-up, by config.runtime), through kombu's filesystem transport
    # with atomic publishing (core/broker.py: kombu's own lets a worker read a half-written message).
    CELERY_BROKER_TRANSPORT = "core.broker:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
#: A pending generation batch with no heartbeat or message for this long is sent again (embedded broker).
PREFHUB_GENERATION_ORPHAN_AFTER_S = env.int("PREFHUB_GENERATION_ORPHAN_AFTER_S", default=120)
#: A running judge job or re-route with no progress for this long is stalled (its worker died or was
#: stopped): the page says so, and on the embedded broker the sweep sends its message again.
PREFHUB_JOB_STALLED_AFTER_S = env.int("PREFHUB_JOB_STALLED_AFTER_S", default=600)
CELERY_TASK_ROUTES = {
    "generation.*": {"queue": "generation"},
    "training.*": {"queue": "training"},
}
CELERY_TASK_ALWAYS_EAGER = False
# Periodic sweeps (run `celery -A config beat`, or a worker with --beat as `run_platform` does).
CELERY_BEAT_SCHEDULE = {
    "outbox-flush": {"task": "annotate.outbox_flush", "schedule": 30.0},
    "leases-expire": {"task": "annotate.leases_expire", "schedule": 60.0},
    "task-priorities": {"task": "annotate.task_priorities_sweep", "schedule": 300.0},
    "training-runs-stale": {"task": "training.runs_fail_stale", "schedule": 120.0},
    "jobs-stalled": {
        "task": "annotate.jobs_resume_stalled",
        "schedule": env.float("PREFHUB_JOB_SWEEP_S", default=60.0),
    },
    "generation-orphans": {
        "task": "generation.batches_requeue_orphaned",
        "schedule": env.float("PREFHUB_GENERATION_SWEEP_S", default=60.0),
    },
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]

# Cache (rate-limit counters, report caching): Redis when REDIS_URL is set, else per-process memory.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "prefhub"}
    )
}
# API token lookups are cached this many seconds (annotate/services/tokens.py); revocation drops
# the entry at once, which reaches every process only through a shared cache, hence off without Redis.
API_TOKEN_CACHE_SECONDS = env.int("API_TOKEN_CACHE_SECONDS", default=60 if REDIS_URL else 0)
# On PostgreSQL, let the one-statement claim commit without waiting for the WAL flush (a lease is
# soft state: a crash can lose a just-made lease, never an annotation; annotate/services/leasing.py).
LEASE_CLAIM_ASYNC_COMMIT = env.bool("LEASE_CLAIM_ASYNC_COMMIT", default=False)

# --- API documentation (drf-spectacular) -------------------------------------------------------
API_DESCRIPTION = """\
Preference data collection, export, generation and training, over JSON.

**Signing in.** Send `Authorization: Bearer <token>`. Make and revoke tokens on your account's
*API tokens* page (`/accounts/tokens/`); a token can be narrowed to some projects, and then reaches
nothing else. In the browser, your session works too (this page uses it).

**Who may do what.** Your role in a project decides: labelers label, managers run the project
(settings, guidelines, members), researchers read data, export, generate and train. A project you
are not in (or your token does not reach) answers 404; a role that does not allow the action, 403.

**Errors.** Every 4xx answers `{"error": code, "detail": message}`, with `field` naming the bad
input and `details` holding every field's messages when there are several.

**Paths.** Every path answers with or without its trailing slash, for every method (no redirect);
the form listed here is the canonical one.

**Lists.** Lists page with `limit` (default 50, at most 1000) and `offset`, and answer
`{"count", "next", "previous", "results"}`.
"""
API_TAGS = [
    {"name": "Projects", "description": "Start projects and read their settings."},
    {"name": "Members", "description": "Who works on a project, in which role (managers)."},
    {"name": "Guidelines", "description": "Versioned labeling guidelines: read, and publish a new version."},
    {"name": "Imports", "description": "Bring prompts, responses and recorded preferences in from files."},
    {
        "name": "Tasks and annotations",
        "description": "A project's tasks and labels, read only (researchers).",
    },
    {"name": "Labeling", "description": "Claim a task, submit a judgment, skip or undo (labelers)."},
    {"name": "Exports", "description": "Versioned preference datasets built from the labels (researchers)."},
    {"name": "Generation", "description": "Model endpoints and jobs that write candidate responses."},
    {
        "name": "AI judges",
        "description": "Models that label pairs: judges, their jobs and costs, and re-routing (managers).",
    },
    {
        "name": "Training runs",
        "description": "Reward model, DPO, PPO and RL runs on an export (researchers).",
    },
]

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotate.authentication.BearerTokenAuthentication",  # first: 401 + WWW-Authenticate when refused
        "rest_framework.authentication.SessionAuthentication",
    ],
    "EXCEPTION_HANDLER": "core.api.api_exception_handler",
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "annotate.parsers.SafeJSONParser",  # deep nesting: 400, not a RecursionError
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON only: "?format=" is the import's file format (jsonl, hh-rlhf), not a renderer choice
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_PAGINATION_CLASS": "core.api.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Per-user rate limits on the write endpoints that cost the most (ScopedRateThrottle scopes).
    "DEFAULT_THROTTLE_RATES": {
        "claim": env.str("RATE_CLAIM", default="600/min"),
        "submit": env.str("RATE_SUBMIT", default="600/min"),
        "export": env.str("RATE_EXPORT", default="60/hour"),
        "jobs": env.str("RATE_JOBS", default="60/hour"),
        "runs": env.str("RATE_RUNS", default="30/hour"),
        "import": env.str("RATE_IMPORT", default="60/hour"),
        # per client address: each request mails a reset link to the address it names
        "password_reset": env.str("RATE_PASSWORD_RESET", default="5/hour"),
    },
}
# The API documentation (/api/schema/, /api/docs/): every operation's summary, description and tag
# are written where the view is declared (extend_schema); docstrings are for developers and never
# reach the published document (tests/test_api_schema.py holds both to that).
SPECTACULAR_SETTINGS = {
    "TITLE": "PrefHub API",
    "DESCRIPTION": API_DESCRIPTION,
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "DISABLE_DOCSTRING_DESCRIPTIONS": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "TAGS": API_TAGS,
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "annotate.models.Role",
        "ProjectKindEnum": "annotate.models.TaskKind",
        "JobStateEnum": "core.jobs.JobState",
        "AssignmentStateEnum": "annotate.models.AssignmentState",
        "RunKindEnum": "training.models.RunKind",
        "GenerationTaskModeEnum": "generation.models.TaskMode",
    },
    # Swagger UI from vendored assets (drf-spectacular-sidecar), CSP-clean with the split view.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "persistAuthorization": True},
}

# Who may start projects from the app: staff always; every signed-in user when this is on.
PREFHUB_ANYONE_CAN_CREATE_PROJECTS = env.bool("PREFHUB_ANYONE_CAN_CREATE_PROJECTS", default=False)
# Password-reset mail: printed to the console unless a real backend is configured.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="prefhub@localhost")

# --- Security headers (django-csp 4) ---------------------------------------------------------
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"no_refusal_tracebacks": {"()": "core.logs.NoTracebackForRefusals"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["no_refusal_tracebacks"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
