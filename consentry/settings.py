"""Django settings. Operators configure Consentry through `CONSENTRY_*` environment
variables only (see consentry/config.py and the README's configuration table)."""

from __future__ import annotations

import dj_database_url

from consentry import config as _config
from consentry.oauth import keys as _oidc_keys
from consentry.oauth.hashers import ClientSecretHasher as _client_secret_hasher

CONFIG = _config.load()

BASE_DIR = _config.Path(__file__).resolve().parent
VAR_DIR = CONFIG.var
DEBUG = CONFIG.debug
SECRET_KEY = CONFIG.secret_key
ALLOWED_HOSTS = CONFIG.allowed_hosts
PUBLIC_URL = CONFIG.public_url
# Key for app-scoped person ids (consentry/oauth/pairwise.py); never rotate it casually:
# every app-scoped id ever issued is derived from it.
PAIRWISE_KEY = _config.env("PAIRWISE_KEY") or _config.read_or_create_secret(
    VAR_DIR / "pairwise_key", lambda: _config.secrets.token_hex(32)
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "oauth2_provider",
    "ninja",  # serves the Graph API docs page's assets locally (no CDN)
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_tasks",
    "django_tasks_db",
    *(["django_rq"] if CONFIG.redis_url else []),
    "consentry.people",
    "consentry.accounts",
    "consentry.oauth",
    "consentry.grants",
    "consentry.ledger",
    "consentry.graph",
    "consentry.world",
    "consentry.web",
    "consentry.notices",
    "consentry.staff",
    "consentry.developers",
    "consentry.privacy",
    "consentry.detection",
    "consentry.incidents",
    "consentry.ops",
    "consentry.replay",
]

# consentry.web.middleware.X is Django's X, skipped on machine endpoints
# (/v1/, the OAuth token, introspection, userinfo, revocation and JWKS endpoints,
# /.well-known/, /healthz), which never use cookies.
MIDDLEWARE = [
    # Outermost: request id, JSON request log, latency metric, security headers.
    "consentry.ops.middleware.OpsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "consentry.web.middleware.SessionMiddleware",
    "consentry.web.middleware.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "consentry.web.middleware.CsrfViewMiddleware",
    "consentry.web.middleware.AuthenticationMiddleware",
    # Marks request.user.is_verified() once a staff member passed their TOTP check.
    "consentry.web.middleware.OTPMiddleware",
    "consentry.privacy.middleware.RememberLanguageMiddleware",
    "consentry.web.middleware.MessageMiddleware",
    "consentry.oauth.edge.OAuthEdgeMiddleware",  # bad input on /oauth/ is a 400, not a 500
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it watches the outcome of authentication.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "consentry.urls"
WSGI_APPLICATION = "consentry.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------
# Persistent connections, checked before reuse: opening one (and, on SQLite, its PRAGMAs)
# cost a tenth of each API call (issue "Performance").
DATABASES = {
    "default": dj_database_url.parse(CONFIG.database_url, conn_max_age=600, conn_health_checks=True)
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg's connection pool (issue "Production at scale"), in place of Django's
    # persistent connections: each process keeps at most `max_size` connections, a request
    # borrows one and hands it back at its end, and the pool checks a connection that sat
    # idle before lending it (a restarted server's dead connections are replaced); one
    # handed back within the last two seconds is lent unchecked (consentry/db/pool.py).
    DATABASES["default"]["ENGINE"] = "consentry.db.postgresql"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # The hot path's own statements are prepared on their second run on a connection
    # (consentry/db/prepared.py); the ORM's client-side bound queries never are.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": int(_config.env("DB_POOL_SIZE", "8")),
        "timeout": 10,
        "max_idle": 300,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend, with write transactions queued in process (consentry/db/sqlite3).
    DATABASES["default"]["ENGINE"] = "consentry.db.sqlite3"
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at
        # BEGIN so concurrent writers queue on busy_timeout instead of failing mid-way.
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
            "PRAGMA busy_timeout=10000; PRAGMA cache_size=-65536;"
        ),
        "transaction_mode": "IMMEDIATE",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: Redis when configured (shared between workers), else in-process -------------
if CONFIG.redis_url:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CONFIG.redis_url,
            # Lets several deployments (or test runs) share one Redis database.
            "KEY_PREFIX": _config.env("CACHE_PREFIX"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "consentry.ops.cache.LocalCache"}}  # LocMemCache, leaner
# Harvest detection's figures shared by every worker process (consentry.detection.shared),
# under the same key prefix as the cache.
DETECTION_REDIS_URL = CONFIG.redis_url
DETECTION_REDIS_PREFIX = _config.env("CACHE_PREFIX")
# Bearer token facts cached in the shared Redis for this long (consentry.oauth.tokens:
# revocations still count from the next request on); 0 = ask the database every time.
TOKEN_CACHE_SECONDS = 300 if CONFIG.redis_url else 0

# --- Background work: Django's Tasks API (django-tasks backport) ------------------------
# The database backend by default (a worker thread inside `consentry serve`, or
# `consentry worker`); RQ on Redis when CONSENTRY_REDIS_URL is set.
if CONFIG.redis_url:
    TASKS = {"default": {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": ["default"]}}
    RQ_QUEUES = {"default": {"URL": CONFIG.redis_url, "DEFAULT_TIMEOUT": 3600}}
else:
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}

# --- Email: notices also go out by mail. Console by default; SMTP from CONSENTRY_EMAIL_URL
# (smtp://user:password@host:587 or smtps://... for TLS on connect).
EMAIL_BACKEND, _email = _config.email_settings(_config.env("EMAIL_URL"))
globals().update(_email)
DEFAULT_FROM_EMAIL = _config.env("EMAIL_FROM", "Consentry <no-reply@localhost>")

# --- Second factor for staff (django-otp, TOTP) -----------------------------------------
OTP_TOTP_ISSUER = "Consentry"

# --- People and authentication ----------------------------------------------------------
AUTH_USER_MODEL = "people.Person"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    # Client secrets only (OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"]); never a password.
    "consentry.oauth.hashers.ClientSecretHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/privacy/"  # where sign-in leads: the privacy center

# Login throttling (django-axes): lock a username+address pair after 5 failures for 15 min.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The sign-in form posts the email as `username` (Django's AuthenticationForm); without this
# axes looks for an `email` credential, finds none, and keys every lockout on None.
AXES_USERNAME_FORM_FIELD = "username"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

# --- Security headers and cookies -------------------------------------------------------
SESSION_COOKIE_SECURE = CONFIG.https
CSRF_COOKIE_SECURE = CONFIG.https
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_HSTS_SECONDS = 31536000 if CONFIG.https else 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if CONFIG.https else None
CSRF_TRUSTED_ORIGINS = [PUBLIC_URL]
CSRF_FAILURE_VIEW = "consentry.web.refusals.csrf_failure"  # JSON on JSON endpoints

# --- Languages: person-facing pages come in English and Dutch ---------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("nl", "Nederlands")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "UTC"
USE_TZ = True

# --- Static files, served by WhiteNoise under `consentry serve` --------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns about a missing root
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

# --- Logging: never log request bodies, tokens or secrets -------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "consentry.ops.logs.JsonFormatter"},  # one JSON object a line
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": _config.env("LOG_FORMAT", "json"),  # CONSENTRY_LOG_FORMAT=plain
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"consentry": {"level": "INFO"}},
}

# --- OAuth 2.1 / OpenID Connect (django-oauth-toolkit) -----------------------------------
# Models are swapped (consentry.oauth.models) so grants and pairwise subjects hang off them.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth.AccessToken"
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth.RefreshToken"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth.IDToken"
OAUTH2_PROVIDER_GRANT_MODEL = "oauth.Grant"
OAUTH2_PROVIDER: dict[str, object] = {
    # OAuth 2.1: authorization code + PKCE S256 only (consentry.oauth.server.Server drops
    # the implicit, password, client-credentials and device grants and `plain` PKCE).
    "OAUTH2_SERVER_CLASS": "consentry.oauth.server.Server",
    "OIDC_SERVER_CLASS": "consentry.oauth.server.Server",
    "OAUTH2_VALIDATOR_CLASS": "consentry.oauth.validators.ConsentryValidator",
    "PKCE_REQUIRED": True,
    # Exact redirect URI matching (RFC 9700 section 2.1, 4.1.3); HTTPS, or HTTP on loopback.
    # http only for loopback redirect URIs: consentry.oauth.actions.check_redirect_uri.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"],
    "ALLOW_URI_WILDCARDS": False,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    "ID_TOKEN_EXPIRE_SECONDS": 3600,
    "REFRESH_TOKEN_EXPIRE_SECONDS": 90 * 24 * 3600,
    "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
    "REQUEST_APPROVAL_PROMPT": "auto",
    # The RFC 9700 switches of django-oauth-toolkit, all on.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,  # only SHA-256 of tokens at rest
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
    # OpenID Connect: RS256 ID tokens, pairwise subjects, RP-initiated logout.
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": _config.env("OIDC_RSA_PRIVATE_KEY")
    or _config.read_or_create_secret(VAR_DIR / "oidc_rsa_key.pem", _oidc_keys.new_rsa_private_key),
    # Empty: derived from the request (tests run on live_server's random port).
    "OIDC_ISS_ENDPOINT": "" if DEBUG else PUBLIC_URL,
    "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OIDC_SUBJECT_TYPES_SUPPORTED": ["pairwise"],
    "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
    "OAUTH2_GRANT_TYPES_SUPPORTED": ["authorization_code", "refresh_token"],
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "OIDC_RP_INITIATED_LOGOUT_STRICT_REDIRECT_URIS": True,
    # The person is always asked before an app signs them out (RP-Initiated Logout 1.0 2).
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": True,
    "OIDC_RP_INITIATED_LOGOUT_DELETE_TOKENS": False,  # signing out is not revoking consent
    "SCOPES": {
        "openid": "Sign you in",
        "profile": "Your name and profile picture",
        "email": "Your email address",
        "user_birthday": "Your birthday",
        "user_hometown": "Your hometown",
        "user_location": "Your current city",
        "user_relationships": "Your relationship status",
        "user_likes": "Your likes",
        "user_posts": "Your posts",
        "user_friends": "Your friends who also use the app",
    },
    "DEFAULT_SCOPES": ["openid", "profile"],
    # Client secrets are 128 random characters: a fast salted hash (consentry.oauth.hashers),
    # argon2 stays for people's passwords; older argon2 secrets are upgraded on use.
    # An instance, not a name: it works whatever PASSWORD_HASHERS says (tests swap them).
    "CLIENT_SECRET_HASHER": _client_secret_hasher(),
}
# Failed client authentication is throttled per (client id, source address), never per
# client id alone (consentry/oauth/throttle.py): after CLIENT_AUTH_FREE_FAILURES failures
# each one delays that pair 1, 2, 4, ... seconds (429 + Retry-After), up to the maximum.
CLIENT_AUTH_FREE_FAILURES = 5
CLIENT_AUTH_MAX_DELAY_SECONDS = 300
CLIENT_AUTH_FAILURE_WINDOW_SECONDS = 900
AXES_LOCKOUT_TEMPLATE = "accounts/lockout.html"

# --- Graph API limits (docs/rules.md rule 4); Application.limits overrides them per app ------
# with the keys "requests_per_minute", "token_requests_per_minute", "subjects_per_day".
GRAPH_RATE_APP_PER_MINUTE = int(_config.env("RATE_APP_PER_MINUTE", "1200"))
GRAPH_RATE_TOKEN_PER_MINUTE = int(_config.env("RATE_TOKEN_PER_MINUTE", "300"))
GRAPH_SUBJECTS_PER_APP_PER_DAY = int(_config.env("RATE_APP_SUBJECTS_PER_DAY", "1000000"))

# --- Developer platform: callbacks to apps (consentry.developers) ------------------------
# Plain-HTTP callback URLs on a loopback address (the server would call itself) only in
# development; production callbacks are https.
CALLBACKS_ALLOW_HTTP_LOOPBACK = DEBUG
