"""The one settings object, read from the environment (12-factor).

Every process (web, worker, CLI) builds ``Settings.from_env()`` once. Unset values
fall back to the embedded defaults: SQLite in ``./instance``, in-process reranking,
in-process cache. Setting ``SHOPRANK_REDIS_URL`` switches to Redis for the score
cache and Celery workers for reranking.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from reranking.depth import DepthPolicy
from reranking.loading import BACKENDS, ScorerSpec
from reranking.model_source import DEFAULT_MODEL
from reranking.passage_budget import MAX_PASSAGE_TOKENS, MIN_PASSAGE_TOKENS
from reranking.threads import WAIT_POLICIES

ENV_PREFIX = "SHOPRANK_"
DEV_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 - refused when env=production
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("text", "json")
MIN_PRODUCTION_SECRET_CHARS = 32  # secrets.token_urlsafe() gives 43


class ConfigError(ValueError):
    """A setting is present but unusable; the message names the variable."""


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _optional_str(raw: str) -> str | None:
    return raw or None


def _optional_int(raw: str) -> int | None:
    return int(raw) if raw.strip() else None


def _env(name: str, default: Any, parse: Callable[[str], Any] = str) -> Any:
    """Field metadata: which environment variable feeds a setting, and how to parse it."""
    return field(default=default, metadata={"env": ENV_PREFIX + name, "parse": parse})


@dataclass(frozen=True)
class Settings:
    env: str = _env("ENV", "development")  # development | test | production
    secret_key: str = _env("SECRET_KEY", DEV_SECRET_KEY)
    instance_dir: str = _env("INSTANCE_DIR", "instance")
    database_url: str | None = _env("DATABASE_URL", None, _optional_str)  # default: SQLite in instance_dir
    redis_url: str | None = _env("REDIS_URL", None, _optional_str)  # score cache + Celery result backend
    broker_url: str | None = _env("BROKER_URL", None, _optional_str)  # default: redis_url

    # Reranker
    reranker_model: str = _env("RERANKER_MODEL", DEFAULT_MODEL)
    reranker_device: str = _env("RERANKER_DEVICE", "auto")
    reranker_precision: str = _env("RERANKER_PRECISION", "auto")
    reranker_int8: bool = _env("RERANKER_INT8", True, _bool)
    reranker_max_length: int = _env("RERANKER_MAX_LENGTH", 512, int)
    reranker_allow_download: bool = _env("RERANKER_ALLOW_DOWNLOAD", True, _bool)
    reranker_threads: int | None = _env("RERANKER_THREADS", None, _optional_int)
    reranker_backend: str = _env("RERANKER_BACKEND", "auto")  # auto | torch | onnx (see reranking.loading)
    # OpenMP/BLAS threads of each web process (the e5 query encoder, numpy); see reranking.threads
    web_compute_threads: int = _env("WEB_COMPUTE_THREADS", 1, int)
    # passive | active | default: how idle OpenMP/ONNX Runtime pool threads wait (passive = sleep, no spinning)
    omp_wait_policy: str = _env("OMP_WAIT_POLICY", "passive")
    score_cache_ttl_seconds: int = _env("SCORE_CACHE_TTL_SECONDS", 7 * 24 * 3600, int)

    # Celery rerank workers (workers/). The prefixes let several deployments or test runs share one Redis.
    queue_prefix: str = _env("QUEUE_PREFIX", "")  # prepended to every broker key and the worker registry
    cache_key_prefix: str = _env("CACHE_KEY_PREFIX", "")  # prepended to pair-score cache keys
    rerank_soft_time_limit_seconds: float = _env("RERANK_SOFT_TIME_LIMIT_SECONDS", 30.0, float)
    rerank_hard_time_limit_seconds: float = _env("RERANK_HARD_TIME_LIMIT_SECONDS", 60.0, float)
    broker_visibility_timeout_seconds: float = _env("BROKER_VISIBILITY_TIMEOUT_SECONDS", 90.0, float)
    rerank_result_expires_seconds: int = _env("RERANK_RESULT_EXPIRES_SECONDS", 300, int)
    worker_batch_wait_ms: float = _env("WORKER_BATCH_WAIT_MS", 5.0, float)  # cross-request batching window

    # Search
    rerank_deadline_ms: int = _env("RERANK_DEADLINE_MS", 3000, int)
    rerank_max_documents: int = _env("RERANK_MAX_DOCUMENTS", 1000, int)
    max_query_chars: int = _env("MAX_QUERY_CHARS", 1000, int)
    first_stage_top_k: int = _env("FIRST_STAGE_TOP_K", 100, int)
    #: Deadline-aware rerank depth (docs/operations/scaling.md): most and fewest first-stage candidates a search
    #: reranks, the share of the time left that planned scoring may fill, and a job's fixed cost besides scoring.
    rerank_max_depth: int = _env("RERANK_MAX_DEPTH", 100, int)
    rerank_min_depth: int = _env("RERANK_MIN_DEPTH", 10, int)
    rerank_depth_safety: float = _env("RERANK_DEPTH_SAFETY", 0.7, float)
    rerank_overhead_ms: int = _env("RERANK_OVERHEAD_MS", 150, int)
    #: Passage token budget (docs/cpu-serving-sizing.md): title and attributes kept, the description cut to fit.
    #: None = the model's window (``RERANKER_MAX_LENGTH``); an experiment variant may set its own.
    rerank_passage_tokens: int | None = _env("RERANK_PASSAGE_TOKENS", None, _optional_int)
    #: Weight of BM25 hits relative to dense hits in reciprocal-rank fusion (see search.retrieval).
    first_stage_lexical_weight: float = _env("LEXICAL_WEIGHT", 0.25, float)
    # Index versions (search.index_files); default: one directory per database under instance_dir.
    index_dir: str | None = _env("INDEX_DIR", None, _optional_str)
    #: Exposures the database could not take during an outage wait here (and in Redis) until it is back.
    outbox_dir: str | None = _env("OUTBOX_DIR", None, _optional_str)
    index_poll_seconds: float = _env("INDEX_POLL_SECONDS", 1.0, float)  # how often a process reads catalog changes
    search_max_limit: int = _env("SEARCH_MAX_LIMIT", 100, int)  # most results one search may return
    #: Autocomplete's past searches (docs/shop.md, "What autocomplete trusts"): a phrase is suggested once this many
    #: distinct shoppers searched it on the shop and were shown results; 0 turns past-search suggestions off.
    suggest_min_shoppers: int = _env("SUGGEST_MIN_SHOPPERS", 5, int)

    # Web front end and HTTP APIs
    api_auth_required: bool = _env("API_AUTH_REQUIRED", True, _bool)  # bearer key on the rerank APIs
    api_rate_limit_per_minute: int = _env("API_RATE_LIMIT_PER_MINUTE", 600, int)  # per key; 0 = unlimited
    rerank_api_deadline_ms: int = _env("RERANK_API_DEADLINE_MS", 30000, int)  # rerank APIs wait longer than search
    events_max_batch: int = _env("EVENTS_MAX_BATCH", 500, int)
    #: PostgreSQL cancels a dashboard query running longer (0: no limit); the page answers 503 naming it.
    dashboard_statement_timeout_ms: int = _env("DASHBOARD_STATEMENT_TIMEOUT_MS", 30_000, int)
    #: Most candidates one POST /api/rank may carry (413 beyond); a variant ranks at most its first-stage top-K.
    rank_max_candidates: int = _env("RANK_MAX_CANDIDATES", 1000, int)
    #: Largest POST /api/rank body (413 before it is parsed): 1,000 shop-sized candidates fit in well under this.
    rank_max_request_bytes: int = _env("RANK_MAX_REQUEST_BYTES", 2 * 1024 * 1024, int)
    max_request_bytes: int = _env("MAX_REQUEST_BYTES", 8 * 1024 * 1024, int)
    demo_catalog: str = _env("DEMO_CATALOG", "data/catalog/demo_products.jsonl")

    # Security (docs/security.md). Rate limits count per minute; 0 turns a limit off.
    #: Per client IP on /api/search, /api/rank and /api/events (the shop's public, unauthenticated JSON endpoints).
    public_rate_limit_per_minute: int = _env("PUBLIC_RATE_LIMIT_PER_MINUTE", 1200, int)
    #: Per client IP on the dashboard login form (POSTs), so one host cannot spray passwords over many accounts.
    login_rate_limit_per_minute: int = _env("LOGIN_RATE_LIMIT_PER_MINUTE", 10, int)
    login_max_failures: int = _env("LOGIN_MAX_FAILURES", 5, int)  # wrong passwords in a row that lock an account
    login_lockout_seconds: int = _env("LOGIN_LOCKOUT_SECONDS", 900, int)  # how long a locked account stays locked
    #: Reverse proxies in front of the app that append X-Forwarded-For/-Proto (0: trust no such header).
    trusted_proxies: int = _env("TRUSTED_PROXIES", 0, int)

    # Experiments
    experiments_refresh_seconds: float = _env("EXPERIMENTS_REFRESH_SECONDS", 5.0, float)  # definitions snapshot age
    reporting_currency: str = _env("REPORTING_CURRENCY", "USD")  # revenue in the dashboard
    fx_rates: str = _env("FX_RATES", "")  # "EUR=1.08,JPY=0.0067": units of reporting currency; adds to the defaults

    # Operations: logs, metrics, the ops page (shoprank.observability)
    log_level: str = _env("LOG_LEVEL", "WARNING")  # DEBUG | INFO | WARNING | ERROR (the CLI's --log-level wins)
    log_format: str = _env("LOG_FORMAT", "text")  # text | json (one JSON object per line, with request_id)
    metrics_token: str = _env("METRICS_TOKEN", "")  # when set, GET /metrics needs "Authorization: Bearer <token>"
    worker_metrics_port: int = _env("WORKER_METRICS_PORT", 0, int)  # rerank worker's /metrics port; 0 = off
    ops_window_size: int = _env("OPS_WINDOW_SIZE", 2000, int)  # recent searches behind the ops page percentiles

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read every ``SHOPRANK_*`` variable; ``overrides`` win (tests, CLI flags)."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            if name in environ:
                try:
                    values[f.name] = f.metadata["parse"](environ[name])
                except ValueError:
                    raise ConfigError(f"{name}={environ[name]!r} is not a valid value") from None
        values.update(overrides)
        settings = cls(**values)
        settings.validate()
        return settings

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        self._validate_worker_settings()
        if self.env not in ("development", "test", "production"):
            raise ConfigError(f"SHOPRANK_ENV={self.env!r}: expected development, test or production")
        if self.reranker_backend not in BACKENDS:
            raise ConfigError(
                f"SHOPRANK_RERANKER_BACKEND={self.reranker_backend!r}: expected one of {', '.join(BACKENDS)}"
            )
        if self.omp_wait_policy not in WAIT_POLICIES:
            raise ConfigError(
                f"SHOPRANK_OMP_WAIT_POLICY={self.omp_wait_policy!r}: expected one of {', '.join(WAIT_POLICIES)}"
            )
        if self.web_compute_threads < 1:
            raise ConfigError(f"SHOPRANK_WEB_COMPUTE_THREADS={self.web_compute_threads}: must be at least 1")
        if self.reranker_threads is not None and self.reranker_threads < 1:
            raise ConfigError(f"SHOPRANK_RERANKER_THREADS={self.reranker_threads}: must be at least 1 (or empty)")
        if self.env == "production":
            self._validate_production()
        if not 0 <= self.first_stage_lexical_weight <= 10:
            raise ConfigError("SHOPRANK_LEXICAL_WEIGHT must be between 0 (dense only) and 10")
        for name in (
            "rerank_deadline_ms",
            "rerank_max_documents",
            "max_query_chars",
            "first_stage_top_k",
            "rerank_max_depth",
            "rerank_min_depth",
            "reranker_max_length",
            "search_max_limit",
            "rerank_api_deadline_ms",
            "events_max_batch",
            "rank_max_candidates",
            "max_request_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive")
        if not 0 < self.rerank_depth_safety <= 1 or self.rerank_overhead_ms < 0:
            raise ConfigError(
                f"{ENV_PREFIX}RERANK_DEPTH_SAFETY must be in (0, 1] and {ENV_PREFIX}RERANK_OVERHEAD_MS not negative"
            )
        if self.rerank_passage_tokens is not None and not (
            MIN_PASSAGE_TOKENS <= self.rerank_passage_tokens <= MAX_PASSAGE_TOKENS
        ):
            raise ConfigError(
                f"{ENV_PREFIX}RERANK_PASSAGE_TOKENS must be empty (the model's window) or a whole number from "
                f"{MIN_PASSAGE_TOKENS} to {MAX_PASSAGE_TOKENS}"
            )
        if self.experiments_refresh_seconds < 0:
            raise ConfigError(f"{ENV_PREFIX}EXPERIMENTS_REFRESH_SECONDS must not be negative")
        self._validate_operations_settings()
        for name in (
            "api_rate_limit_per_minute",
            "public_rate_limit_per_minute",
            "login_rate_limit_per_minute",
            "login_max_failures",
            "trusted_proxies",
            "suggest_min_shoppers",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be 0 (off) or positive")
        if self.login_max_failures and self.login_lockout_seconds <= 0:
            raise ConfigError(f"{ENV_PREFIX}LOGIN_LOCKOUT_SECONDS must be positive when LOGIN_MAX_FAILURES is set")

    def _validate_production(self) -> None:
        """Refuse the combinations that are fine on a laptop and a hole on the internet."""
        if self.secret_key == DEV_SECRET_KEY:
            raise ConfigError("SHOPRANK_SECRET_KEY must be set to a random value in production")
        if len(self.secret_key) < MIN_PRODUCTION_SECRET_CHARS:
            raise ConfigError(
                f"SHOPRANK_SECRET_KEY has {len(self.secret_key)} characters; production needs at least "
                f"{MIN_PRODUCTION_SECRET_CHARS} random ones "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
            )
        if not self.api_auth_required:
            raise ConfigError(
                "SHOPRANK_API_AUTH_REQUIRED=0 is refused in production: the rerank APIs would be open to anyone"
            )
        if self.login_max_failures == 0 or self.login_rate_limit_per_minute == 0:
            raise ConfigError(
                "SHOPRANK_LOGIN_MAX_FAILURES and SHOPRANK_LOGIN_RATE_LIMIT_PER_MINUTE must not be 0 in production: "
                "the dashboard login would allow unlimited password guessing"
            )

    def _validate_operations_settings(self) -> None:
        if self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(f"{ENV_PREFIX}LOG_LEVEL={self.log_level!r}: expected one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise ConfigError(f"{ENV_PREFIX}LOG_FORMAT={self.log_format!r}: expected text or json")
        if not 0 <= self.worker_metrics_port <= 65535:
            raise ConfigError(f"{ENV_PREFIX}WORKER_METRICS_PORT must be 0 (off) or a TCP port")
        if not 10 <= self.ops_window_size <= 100_000:
            raise ConfigError(f"{ENV_PREFIX}OPS_WINDOW_SIZE must be between 10 and 100000")

    def _validate_worker_settings(self) -> None:
        if not 0 < self.rerank_soft_time_limit_seconds <= self.rerank_hard_time_limit_seconds:
            raise ConfigError(f"{ENV_PREFIX}RERANK_SOFT_TIME_LIMIT_SECONDS must be positive and at most the hard limit")
        if self.broker_visibility_timeout_seconds <= self.rerank_hard_time_limit_seconds:
            # A shorter visibility timeout redelivers jobs that are still running on a live worker.
            raise ConfigError(
                f"{ENV_PREFIX}BROKER_VISIBILITY_TIMEOUT_SECONDS must exceed RERANK_HARD_TIME_LIMIT_SECONDS"
            )
        if self.rerank_result_expires_seconds <= 0 or not 0 <= self.worker_batch_wait_ms <= 50:
            raise ConfigError(
                f"{ENV_PREFIX}RERANK_RESULT_EXPIRES_SECONDS must be positive and WORKER_BATCH_WAIT_MS within 0..50"
            )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.instance_dir).resolve() / 'shoprank.db'}"

    @property
    def resolved_outbox_dir(self) -> Path:
        """``SHOPRANK_OUTBOX_DIR``, else ``instance_dir/outbox/<database>`` (see ``experiments.outbox``)."""
        if self.outbox_dir:
            return Path(self.outbox_dir)
        url = make_url(self.resolved_database_url)
        key = hashlib.blake2b(url.render_as_string(hide_password=True).encode(), digest_size=6).hexdigest()
        return Path(self.instance_dir).resolve() / "outbox" / f"{url.get_backend_name()}-{key}"

    @property
    def resolved_index_dir(self) -> Path:
        """``SHOPRANK_INDEX_DIR``, else ``instance_dir/index/<database>``: two databases never share an index."""
        if self.index_dir:
            return Path(self.index_dir)
        url = make_url(self.resolved_database_url)
        key = hashlib.blake2b(url.render_as_string(hide_password=True).encode(), digest_size=6).hexdigest()
        return Path(self.instance_dir).resolve() / "index" / f"{url.get_backend_name()}-{key}"

    @property
    def resolved_broker_url(self) -> str | None:
        return self.broker_url or self.redis_url

    def depth_policy(self) -> DepthPolicy:
        return DepthPolicy(
            min_depth=self.rerank_min_depth,
            safety=self.rerank_depth_safety,
            overhead_seconds=self.rerank_overhead_ms / 1000,
        )

    def scorer_spec(self, **overrides: Any) -> ScorerSpec:
        return ScorerSpec(
            model=self.reranker_model,
            device=self.reranker_device,
            precision=self.reranker_precision,
            int8=self.reranker_int8,
            max_length=self.reranker_max_length,
            allow_download=self.reranker_allow_download,
            num_threads=self.reranker_threads,
            backend=self.reranker_backend,
            passage_tokens=self.rerank_passage_tokens,
            spinning=self.omp_wait_policy != "passive",  # "default": ONNX Runtime's own (spinning)
        ).replace(**overrides)
