"""Settings for every environment: dev, test and production read the same variables.

Values come from the process environment; a secret may also come from ``NAME_FILE``.
A bad value fails loudly at start-up rather than half-working later.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = env(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true or false)")


def env_int(name: str, default: int) -> int:
    raw = env(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in (env(name, default) or "").split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# A developer's machine: fixed dev keys allowed, cookies over plain HTTP. Never in production.
DEV = env_bool("LIFETIME_DEV", False)

# Development gets a fixed, clearly-marked key; anything else must set SECRET_KEY.
_DEV_SECRET = "dev-insecure-secret-key-change-me-for-anything-but-a-laptop-0123456789"
SECRET_KEY = env("SECRET_KEY") or (_DEV_SECRET if DEBUG or DEV else None)
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY is not set (or set DEBUG=true / LIFETIME_DEV=true for development)")

# Key for secrets stored in the database (application database connections):
# one or more Fernet keys, comma separated, the first used to encrypt (rotation).
_DEV_FIELD_KEY = "ZGV2LW9ubHktZmllbGQta2V5LTAxMjM0NTY3ODlhYmM="
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEY", "") or ([_DEV_FIELD_KEY] if SECRET_KEY == _DEV_SECRET else [])
if not FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEY is not set: generate one with "
        "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`"
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_celery_beat",
    "axes",
    "csp",
    "core.apps.CoreConfig",
    "environments",
    "deployments",
]

MIDDLEWARE = [
    # Outermost: inside /lifetimeapi/ every error is JSON and no cookie is set, whatever raised it.
    "deployments.api.errors.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Before the CSRF check, which reads (and spools) the whole body of a form post.
    "core.request_limits.RequestBodyLimitMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "core.session_limits.SessionLimitsMiddleware",
    # A refusal a view did not catch is still a sentence for the person, never a 500.
    "core.middleware.RefusalMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "core.refusal_audit.RefusalAuditMiddleware",
    "lifetime.errors.MalformedInputMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into a 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "lifetime.urls"

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
                "lifetime.context_processors.console",
            ],
        },
    },
]

WSGI_APPLICATION = "lifetime.wsgi.application"

DATABASE_URL = env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lifetime")
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
except Exception as exc:  # dj_database_url raises several kinds for a bad URL
    raise ImproperlyConfigured(f"DATABASE_URL is malformed: {exc}") from exc
if _db.get("ENGINE") != "django.db.backends.postgresql":
    raise ImproperlyConfigured("DATABASE_URL must be a PostgreSQL URL (postgres://...)")
_db["CONN_HEALTH_CHECKS"] = True
_db.setdefault("TEST", {})["NAME"] = env("TEST_DATABASE_NAME") or f"test_{_db['NAME']}"
DATABASES = {"default": _db}
# The rehearsal server: a PostgreSQL the console owns (never a target's), where Prepare rehearses a
# plan's SQL on a copy of the target's schema. The URL's user creates the scratch databases; the
# scripts run as REHEARSAL_ROLE, which has no superuser, server-program or server-file rights.
# scripts/bootstrap.sh starts a private one at this address when nothing answers there.
REHEARSAL_DATABASE_URL = env("REHEARSAL_DATABASE_URL", "postgres://postgres@127.0.0.1:54329/postgres")
if not REHEARSAL_DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured("REHEARSAL_DATABASE_URL must be a PostgreSQL URL (postgres://...)")
REHEARSAL_ROLE = env("REHEARSAL_ROLE", "lifetime_rehearsal")
REHEARSAL_ROLE_PASSWORD = env("REHEARSAL_ROLE_PASSWORD", "") or ""
# Rows of the table the rehearsal server's throughputs are measured on (at most once a week): large
# enough that sorts spill to disk as they do on big tables. The tests use a small one.
REHEARSAL_CALIBRATION_ROWS = env_int("REHEARSAL_CALIBRATION_ROWS", 1_000_000)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env_int("PASSWORD_MIN_LENGTH", 12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# --- sign-in: throttling and lockout (django-axes) ------------------------------------------
# Ten wrong passwords from one client address, or for one username, lock further attempts out
# for the cool-off time (429). The client address is the socket's peer unless the console is
# told how many proxies stand in front of it (core.signin.client_ip): a forged
# X-Forwarded-For never changes who is counted.
AXES_FAILURE_LIMIT = env_int("SIGNIN_FAILURE_LIMIT", 10)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env_int("SIGNIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "core.signin.client_ip"
AXES_USERNAME_CALLABLE = "core.signin.attempted_username"
AXES_LOCKOUT_CALLABLE = "core.signin.locked_out_response"
AXES_VERBOSE = False
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured("TRUSTED_PROXY_COUNT cannot be negative")
AUTHENTICATION_BACKENDS = [
    "core.signin.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# --- single sign-on: OpenID Connect (mozilla-django-oidc) -----------------------------------
# Off unless a client id is set. Local accounts keep working next to it (break-glass).
OIDC_RP_CLIENT_ID = env("OIDC_RP_CLIENT_ID", "") or ""
OIDC_RP_CLIENT_SECRET = env("OIDC_RP_CLIENT_SECRET", "") or ""
OIDC_OP_AUTHORIZATION_ENDPOINT = env("OIDC_OP_AUTHORIZATION_ENDPOINT", "") or ""
OIDC_OP_TOKEN_ENDPOINT = env("OIDC_OP_TOKEN_ENDPOINT", "") or ""
OIDC_OP_USER_ENDPOINT = env("OIDC_OP_USER_ENDPOINT", "") or ""
OIDC_OP_JWKS_ENDPOINT = env("OIDC_OP_JWKS_ENDPOINT", "") or ""
OIDC_RP_SIGN_ALGO = env("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env("OIDC_RP_SCOPES", "openid email profile groups")
OIDC_GROUPS_CLAIM = env("OIDC_GROUPS_CLAIM", "groups")
# Which provider groups give which rights: "group=Environment:level,...;group=infra-admin".
OIDC_GROUP_ROLES = env("OIDC_GROUP_ROLES", "") or ""
SSO_LABEL = env("SSO_LABEL", "Sign in with single sign-on")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10)
OIDC_AUTHENTICATE_CLASS = "core.signin.SingleSignOnRequestView"
OIDC_CALLBACK_CLASS = "core.signin.SingleSignOnCallbackView"
LOGIN_REDIRECT_URL_FAILURE = "/login/?sso=incomplete"
SSO_ENABLED = bool(OIDC_RP_CLIENT_ID)
if SSO_ENABLED:
    _missing = [
        name
        for name in ("OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_USER_ENDPOINT")
        if not globals()[name]
    ]
    if _missing or (OIDC_RP_SIGN_ALGO.startswith("RS") and not OIDC_OP_JWKS_ENDPOINT):
        raise ImproperlyConfigured(
            "OIDC_RP_CLIENT_ID is set but the provider is incomplete: set "
            + ", ".join(_missing or ["OIDC_OP_JWKS_ENDPOINT"])
        )
    AUTHENTICATION_BACKENDS.append("core.signin.SingleSignOnBackend")

# --- sessions: idle and absolute limits, recent authentication for production ----------------
SESSION_IDLE_SECONDS = env_int("SESSION_IDLE_MINUTES", 30) * 60
SESSION_ABSOLUTE_SECONDS = env_int("SESSION_ABSOLUTE_HOURS", 12) * 3600
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_SECONDS
# Deploy Now, Continue and Abort on an environment of kind Production ask for the password (or a
# new single sign-on) when the last one is older than this.
REAUTH_MAX_AGE_SECONDS = env_int("REAUTH_MAX_AGE_MINUTES", 5) * 60

# --- request bodies, refused by their declared size before anything reads them ---------------
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 1024 * 1024)
# How long a link to a version's content (GET /applications/{app}/versions/{ver}/content) works.
CONTENT_LINK_SECONDS = env_int("CONTENT_LINK_SECONDS", 15 * 60)
MAX_UPLOAD_BODY_BYTES = env_int("MAX_UPLOAD_BODY_BYTES", 65 * 1024 * 1024)
MAX_ANONYMOUS_BODY_BYTES = 64 * 1024

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

# Where the console keeps bundles, compiled binaries and mobile packages (content-addressed,
# deployments.artifacts.store): the local folder ARTIFACT_ROOT, or an S3-compatible object store
# shared by every web process and stage worker when ARTIFACT_S3_BUCKET is set.
ARTIFACT_ROOT = Path(env("ARTIFACT_ROOT", str(BASE_DIR / "var" / "artifacts")))
ARTIFACT_S3_BUCKET = env("ARTIFACT_S3_BUCKET", "") or ""
if ARTIFACT_S3_BUCKET:
    _s3_options = {
        "bucket_name": ARTIFACT_S3_BUCKET,
        # Blobs are named by their digest: the same name holds the same bytes.
        "file_overwrite": True,
        "default_acl": None,
        "querystring_auth": False,
        "location": (env("ARTIFACT_S3_PREFIX", "") or "").strip("/"),
        "endpoint_url": env("ARTIFACT_S3_ENDPOINT_URL", "") or None,
        "region_name": env("ARTIFACT_S3_REGION", "") or None,
        "addressing_style": env("ARTIFACT_S3_ADDRESSING_STYLE", "") or None,
        # Unset: boto3's own chain (instance role, AWS_* variables, ~/.aws).
        "access_key": env("ARTIFACT_S3_ACCESS_KEY_ID", "") or None,
        "secret_key": env("ARTIFACT_S3_SECRET_ACCESS_KEY", "") or None,
        "verify": env("ARTIFACT_S3_CA_BUNDLE", "") or None,
    }
    if _s3_options["endpoint_url"] and not str(_s3_options["endpoint_url"]).startswith(("http://", "https://")):
        raise ImproperlyConfigured("ARTIFACT_S3_ENDPOINT_URL must be an http(s):// URL")
    if _s3_options["addressing_style"] not in (None, "path", "virtual", "auto"):
        raise ImproperlyConfigured("ARTIFACT_S3_ADDRESSING_STYLE must be path, virtual or auto")
    _artifact_storage = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": _s3_options}
else:
    _artifact_storage = {"BACKEND": "deployments.artifacts.store.LocalArtifactStorage"}

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(BASE_DIR / "var" / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "artifacts": _artifact_storage,
    "staticfiles": {
        # No manifest: pages render even before collectstatic (tests, first start); vendored
        # files carry their version in their name.
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# Where front-end agents fetch artifacts from (the console's own base URL as agents see it).
CONSOLE_BASE_URL = env("CONSOLE_BASE_URL", "http://127.0.0.1:8000")
# Releases each front-end keeps per application after a Continue (never fewer than current + previous).
RELEASES_KEPT = max(2, env_int("RELEASES_KEPT", 5))
# Networks the console may call on the inside (webhook targets, front-ends' health URLs), e.g.
# 10.0.0.0/8: anything not public is refused otherwise (core.outbound). Tests and the demo
# allow loopback; cloud metadata addresses are refused whatever this says.
OUTBOUND_ALLOWED_NETWORKS = env_list("OUTBOUND_ALLOWED_NETWORKS", "")
for _network in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"OUTBOUND_ALLOWED_NETWORKS: {_network!r} is not a network (write it like 10.0.0.0/8)"
        ) from None
# Bearer token that front-end agents present to download artifacts.
AGENT_TOKEN = env("AGENT_TOKEN") or ("dev-agent-token" if SECRET_KEY == _DEV_SECRET else None)
if not AGENT_TOKEN:
    raise ImproperlyConfigured("AGENT_TOKEN is not set: front-end agents need it to download artifacts")
# Bearer token Prometheus presents for /metrics (deployments.status.metrics). Without one, /metrics
# answers only on a developer's machine (LIFETIME_DEV=true).
METRICS_TOKEN = env("METRICS_TOKEN", "") or ""
# The development keys are published with the code: a console that uses one may listen on loopback
# only (lifetime/gunicorn_conf.py refuses to bind elsewhere; `check --deploy` fails, core.checks).
# scripts/up.sh generates keys of its own instead, under .data/secrets/.
PUBLISHED_SECRETS_IN_USE = [
    name
    for name, published in (
        ("SECRET_KEY", SECRET_KEY == _DEV_SECRET),
        ("FIELD_ENCRYPTION_KEY", FIELD_ENCRYPTION_KEYS[0] == _DEV_FIELD_KEY),
        ("AGENT_TOKEN", AGENT_TOKEN == "dev-agent-token"),
    )
    if published
]

# Security: hardened when DEBUG is off, each switch overridable from the environment.
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not (DEBUG or DEV))
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not (DEBUG or DEV))
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
# Messages live in the session, never in a cookie of their own: a message may carry a value the
# user must see once (a generated secret is rendered in the answer instead, but belt and braces).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Content-Security-Policy: scripts and styles from the console's own static files only; no
# inline script, no style attribute, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Renderings shared by the viewers of a status page, keyed by the version of what they show:
# kept in each web process, so that a page never waits on Redis and works without it.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "lifetime",
        "OPTIONS": {"MAX_ENTRIES": 2000},
    }
}

# Celery: Redis is the broker and result backend; PostgreSQL stays the source of truth.
REDIS_URL = env("REDIS_URL", "redis://127.0.0.1:6379/0")
if not (REDIS_URL or "").startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured("REDIS_URL must be a redis:// URL")

# Sessions are read from Redis and written to PostgreSQL too (core.sessions): a status page's poll
# costs no session query, a sign-out is seen by every web process at once, and without Redis the
# sessions are read from PostgreSQL alone.
SESSION_ENGINE = "core.sessions"
SESSION_CACHE_ALIAS = "sessions"
SESSION_CACHE_SECONDS = env_int("SESSION_CACHE_SECONDS", 300)
CACHES["sessions"] = {
    "BACKEND": "django.core.cache.backends.redis.RedisCache",
    "LOCATION": REDIS_URL,
    "KEY_PREFIX": "lifetime-session",
    "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "stages"
CELERY_TASK_CREATE_MISSING_QUEUES = True
CELERY_TASK_ROUTES = {
    # Notifications have their own queue so that a slow webhook never delays a stage; the stage
    # worker consumes both (-Q stages,notifications).
    "deployments.tasks.deliver_notification": {"queue": "notifications"},
    "deployments.tasks.*": {"queue": "stages"},
}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "lifetime@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Beat: the reaper of dead stages and the expiry of old prepared plans.
STAGE_HEARTBEAT_SECONDS = env_int("STAGE_HEARTBEAT_SECONDS", 5)
STAGE_STALE_SECONDS = env_int("STAGE_STALE_SECONDS", 30)
CELERY_BEAT_SCHEDULE = {
    "reap-stale-stages": {
        "task": "deployments.tasks.reap_stale_stages",
        "schedule": float(env_int("STAGE_REAP_SECONDS", 10)),
    },
    "expire-prepared-plans": {"task": "deployments.tasks.expire_prepared_plans", "schedule": 300.0},
    "run-scheduled-continues": {"task": "deployments.tasks.run_scheduled_continues", "schedule": 15.0},
    # Queued plans start when a plan frees their target; this catches a moment that was missed.
    "start-queued-plans": {"task": "deployments.tasks.start_queued_plans", "schedule": 30.0},
    "warn-expiring-plans": {"task": "deployments.tasks.warn_expiring_plans", "schedule": 300.0},
    # The environment board shows each front-end agent's last answer, and the front-ends that run
    # other versions than recorded (deployments.stages.drift).
    "check-frontends": {
        "task": "deployments.tasks.check_frontends",
        "schedule": float(env_int("FRONTEND_CHECK_SECONDS", 30)),
    },
}
# Notifications: tries per delivery, first delay between tries (doubled each time), expiry warning.
NOTIFICATION_MAX_ATTEMPTS = env_int("NOTIFICATION_MAX_ATTEMPTS", 6)
NOTIFICATION_RETRY_DELAY_SECONDS = env_int("NOTIFICATION_RETRY_DELAY_SECONDS", 10)
PREPARED_PLAN_EXPIRY_WARNING_HOURS = env_int("PREPARED_PLAN_EXPIRY_WARNING_HOURS", 12)
