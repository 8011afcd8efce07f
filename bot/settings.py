"""The one typed settings object: read from the environment and `.env`, validated once.

Nothing else in callagent reads configuration. Every setting is declared once, in
its group under ``bot/config/`` (a pydantic-settings field: its environment variable,
default and a one-line description); :class:`Settings` joins the groups and adds
loading and the cross-field checks. ``.env.example`` is generated from these declarations
(``callagent config example``) so the two never drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values
from pydantic import ValidationError, model_validator
from pydantic_settings import SettingsConfigDict

from bot.config.admission import AdmissionSettings
from bot.config.cloud import CloudSettings
from bot.config.crm import CRMSettings
from bot.config.dialer import DialerSettings
from bot.config.dialogue import DialogueSettings
from bot.config.escalation import EscalationSettings
from bot.config.queue import QueueSettings
from bot.config.records import RecordsSettings
from bot.config.server import ServerSettings
from bot.config.serving import ServingSettings
from bot.config.shared_state import SharedStateSettings
from bot.config.sip import SipSettings, sip_problems
from bot.config.twilio import TwilioSettings
from bot.setting_types import (
    REFERENCE_AGENT,
    SIP_DEFAULT_LISTEN,
    LLMName,
    SecretMarker,
    TransportName,
    TTSName,
)

__all__ = ["REFERENCE_AGENT", "Settings", "SettingsError"]


class SettingsError(ValueError):
    """Start-up configuration is wrong; the message names each setting and its fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"callagent cannot start; fix these settings (.env or environment):\n{lines}"
        )


class Settings(
    SipSettings,
    SharedStateSettings,
    QueueSettings,
    DialerSettings,
    EscalationSettings,
    CRMSettings,
    RecordsSettings,
    TwilioSettings,
    CloudSettings,
    DialogueSettings,
    AdmissionSettings,
    ServingSettings,
    ServerSettings,
):
    """Every setting callagent reads. Build it with :meth:`Settings.load`.

    Each field reads the environment variable named by its ``validation_alias``
    (exact case); the environment wins over ``.env``, and an empty value counts as
    unset. The ``auto`` service choices are kept as ``transport_choice``,
    ``tts_choice`` and ``llm_choice``; ``transport``, ``tts`` and ``llm`` give the
    service they select.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        case_sensitive=True,
        extra="ignore",
        frozen=True,
    )

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, dotenv_path: Path | None = None
    ) -> Settings:
        """Read settings from ``.env`` then the environment (which wins), and validate them.

        Args:
            env: Variables to use instead of ``os.environ`` (tests).
            dotenv_path: The ``.env`` file; defaults to ``./.env`` when ``env`` is not given.

        Raises:
            SettingsError: naming every bad or missing setting and how to fix it.
        """
        try:
            if env is None and dotenv_path is None:
                return cls()  # pydantic-settings reads the environment and ./.env
            values: dict[str, str | None] = {}
            if dotenv_path is not None and dotenv_path.exists():
                values.update(dotenv_values(dotenv_path))
            values.update(os.environ if env is None else env)
            return cls.model_validate(values)
        except ValidationError as e:
            raise SettingsError(_problems(e)) from None

    @model_validator(mode="before")
    @classmethod
    def _unset_empty_values(cls, data: Any) -> Any:
        """An empty variable counts as unset; values are read without surrounding blanks."""
        if not isinstance(data, dict):
            return data
        values = {
            key: value.strip() if isinstance(value, str) else value
            for key, value in data.items()
            if value is not None and value != ""
        }
        transport = values.get("CALLAGENT_TRANSPORT")
        if isinstance(transport, str) and transport.lower() == "sip":
            values.setdefault("CALLAGENT_SIP_LISTEN", SIP_DEFAULT_LISTEN)
        return values

    @property
    def transport(self) -> TransportName:
        """Where browser-side calls run; ``auto`` picks daily, then livekit, by their keys.

        ``sip`` serves SIP trunk calls beside the web server (``CALLAGENT_SIP_LISTEN``,
        loopback by default); the browser page stays on the built-in WebRTC.
        """
        if self.transport_choice == "sip":
            return "webrtc"
        if self.transport_choice != "auto":
            return self.transport_choice
        if self.daily_api_key or self.daily_room_url:
            return "daily"
        return "livekit" if self.livekit_url else "webrtc"

    @property
    def tts(self) -> TTSName:
        """The text-to-speech engine; ``auto`` is cartesia with its key, else piper."""
        if self.tts_choice != "auto":
            return self.tts_choice
        return "cartesia" if self.cartesia_api_key else "piper"

    @property
    def llm(self) -> LLMName:
        """The dialogue LLM; ``auto`` is groq with its key, openai with a URL, else none."""
        if self.llm_choice != "auto":
            return self.llm_choice
        return "groq" if self.groq_api_key else "openai" if self.llm_base_url else "none"

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        """Check that the chosen services have what they need.

        Raises:
            SettingsError: naming every bad or missing setting and how to fix it.
        """
        p: list[str] = []
        if not 0 < self.port < 65536:
            p.append(f"PORT={self.port}: must be 1-65535.")
        if not self.agent_file.is_file():
            p.append(
                f"CALLAGENT_AGENT_FILE={self.agent_file}: no such file; point it at an agent YAML."
            )
        p += _agent_file_problems(self)
        if self.transport == "daily" and not (self.daily_api_key or self.daily_room_url):
            p.append(
                "CALLAGENT_TRANSPORT=daily needs DAILY_API_KEY or DAILY_ROOM_URL; set one in .env."
            )
        if self.transport == "livekit":
            for env, value in (
                ("LIVEKIT_URL", self.livekit_url),
                ("LIVEKIT_API_KEY", self.livekit_api_key),
                ("LIVEKIT_API_SECRET", self.livekit_api_secret),
            ):
                if not value:
                    p.append(f"CALLAGENT_TRANSPORT=livekit needs {env}; set it in .env.")
        if (self.stt == "cartesia" or self.tts == "cartesia") and not self.cartesia_api_key:
            p.append("CALLAGENT_STT/CALLAGENT_TTS=cartesia needs CARTESIA_API_KEY; set it in .env.")
        if self.llm == "groq" and not self.groq_api_key:
            p.append(
                "CALLAGENT_LLM=groq needs GROQ_API_KEY; set it in .env (or CALLAGENT_LLM=none)."
            )
        if self.llm == "openai" and not (self.llm_base_url and self.llm_model):
            p.append("CALLAGENT_LLM=openai needs LLM_BASE_URL and LLM_MODEL; set both in .env.")
        if self.twilio_account_sid and not self.twilio_account_sid.startswith("AC"):
            p.append("TWILIO_ACCOUNT_SID must start with 'AC' (copy it from the Twilio console).")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            p.append("CALLAGENT_PUBLIC_URL must start with https:// (or http:// for local tests).")
        if not 0 <= self.early_turn_secs < self.vad_stop_secs and self.early_turn_secs != 0:
            p.append("CALLAGENT_EARLY_TURN_SECS must be 0 or less than CALLAGENT_VAD_STOP_SECS.")
        if not 0 <= self.semantic_turn_grace_secs <= self.turn_max_pause_secs:
            p.append(
                "CALLAGENT_SEMANTIC_TURN_GRACE_SECS must be between 0 and "
                "CALLAGENT_TURN_MAX_PAUSE_SECS (default 0.2)."
            )
        if self.turn_model_after_transcript_from_calls < 0:
            p.append(
                "CALLAGENT_TURN_MODEL_AFTER_TRANSCRIPT_FROM_CALLS must be 0 (never) or a "
                "number of calls."
            )
        if self.no_early_runs_from_calls < 0:
            p.append("CALLAGENT_NO_EARLY_RUNS_FROM_CALLS must be 0 (never) or a number of calls.")
        if self.audio_batch_from_calls < 0:
            p.append("CALLAGENT_AUDIO_BATCH_FROM_CALLS must be 0 (never) or a number of calls.")
        if self.audio_batch_60ms_from_calls < 0:
            p.append(
                "CALLAGENT_AUDIO_BATCH_60MS_FROM_CALLS must be 0 (never) or a number of calls."
            )
        if not 0 <= self.turn_second_look_secs < self.turn_max_pause_secs:
            p.append(
                "CALLAGENT_TURN_SECOND_LOOK_SECS must be 0 (off) or less than "
                "CALLAGENT_TURN_MAX_PAUSE_SECS (default 0.2)."
            )
        if self.database_url and not self.database_url.startswith(
            ("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")
        ):
            p.append("DATABASE_URL must be a postgresql://... (or sqlite:///...) URL.")
        if self.operator_token and len(self.operator_token) < 16:
            p.append(
                "CALLAGENT_OPERATOR_TOKEN is too short: use 16+ characters, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'."
            )
        if not (
            0 < self.operator_session_hours <= 24 * 365
            and 0 < self.operator_session_idle_minutes <= 60 * 24 * 365
        ):
            p.append(
                "CALLAGENT_OPERATOR_SESSION_HOURS and CALLAGENT_OPERATOR_SESSION_IDLE_MINUTES "
                "must be above 0 and at most a year (defaults 12 and 30)."
            )
        if self.crm == "rest" and not self.crm_rest_lookup_url:
            p.append("CALLAGENT_CRM=rest needs CRM_REST_LOOKUP_URL; set it in .env.")
        if self.crm == "hubspot" and not self.hubspot_access_token:
            p.append("CALLAGENT_CRM=hubspot needs HUBSPOT_ACCESS_TOKEN; set it in .env.")
        if self.crm_rest_auth_header and ":" not in self.crm_rest_auth_header:
            p.append("CRM_REST_AUTH_HEADER must look like 'Header-Name: value'.")
        if self.screen_pop_url and not self.screen_pop_secret:
            p.append(
                "CALLAGENT_SCREEN_POP_URL needs CALLAGENT_SCREEN_POP_SECRET to sign the POSTs."
            )
        if self.screen_pop_url and not self.screen_pop_url.startswith(("http://", "https://")):
            p.append("CALLAGENT_SCREEN_POP_URL must start with https:// (or http:// for tests).")
        if self.max_calls < 1:
            p.append("CALLAGENT_MAX_CALLS must be 1 or more (calls this process carries at once).")
        p += _serving_problems(self)
        if self.call_rate_per_minute < 0:
            p.append("CALLAGENT_CALL_RATE_PER_MINUTE must be 0 (no limit) or more.")
        if self.call_rate_burst < 1:
            p.append("CALLAGENT_CALL_RATE_BURST must be 1 or more.")
        if self.webrtc_connect_timeout_secs <= 0:
            p.append("CALLAGENT_WEBRTC_CONNECT_TIMEOUT_SECS must be more than 0 (e.g. 10).")
        if not 10 <= self.call_token_ttl_secs <= 3600:
            p.append("CALLAGENT_CALL_TOKEN_TTL_SECS must be between 10 and 3600 seconds.")
        p += _list_problems(self)
        p += sip_problems(self)
        if self.crm_prefetch_budget_ms < 0:
            p.append("CALLAGENT_CRM_PREFETCH_BUDGET_MS must be 0 or more.")
        if self.worker_stale_secs < 3 * self.worker_heartbeat_secs:
            p.append(
                "CALLAGENT_WORKER_STALE_SECS must be at least 3x CALLAGENT_WORKER_HEARTBEAT_SECS "
                "(a live process must not be taken for dead after one late heartbeat)."
            )
        if self.log_level.upper() not in {"TRACE", "DEBUG", "INFO", "WARNING", "ERROR"}:
            p.append(f"CALLAGENT_LOG_LEVEL={self.log_level}: use DEBUG, INFO, WARNING or ERROR.")
        if p:
            raise SettingsError(p)
        return self

    @property
    def records_database_url(self) -> str:
        """The call-record database: ``DATABASE_URL``, else SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'calls.db').expanduser().resolve()}"

    @property
    def campaign_queue_url(self) -> str:
        """The campaign job queue: ``CALLAGENT_QUEUE_URL``, else SQLite in the data folder."""
        from integrations.outbound.queue import default_queue_url

        return self.queue_url or default_queue_url(self.data_dir)

    @property
    def twilio_signatures_checked(self) -> bool:
        """Whether Twilio's requests must carry a valid ``X-Twilio-Signature``."""
        return bool(self.twilio_validate_signatures and self.twilio_auth_token)

    @property
    def twilio_hang_up_enabled(self) -> bool:
        """Whether calls can be hung up through Twilio's REST API."""
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @classmethod
    def example_env(cls) -> str:
        """Render ``.env.example``: every setting, its default and what it does."""
        lines = [
            "# callagent settings. Copy to .env; every line is optional (defaults shown).",
            "# With none set, the agent runs fully offline on the embedded speech stack.",
            "# Generated by `callagent config example`; do not edit by hand.",
        ]
        for name, info in cls.model_fields.items():
            default = _EXAMPLE_DEFAULTS.get(name, info.default)
            if isinstance(default, bool):
                default = "true" if default else "false"
            lines += ["", f"# {info.description}", f"# {info.validation_alias}={default}"]
        return "\n".join(lines) + "\n"


_EXAMPLE_DEFAULTS = {
    "cache_dir": "~/.cache/callagent",
    "agent_file": "(the bundled dental front desk agent)",
    "agent_files": "(the bundled appointment reminders agent)",
}


def _agent_file_problems(settings: Settings) -> list[str]:
    """Every listed agent file exists, and no two agents share a key (the file's stem)."""
    p: list[str] = []
    keys = {settings.agent_file.stem: settings.agent_file}
    for path in settings.more_agent_files:
        if not path.is_file():
            p.append(f"CALLAGENT_AGENT_FILES: {path}: no such file; list agent YAML files.")
        elif path.stem in keys:
            p.append(
                f"CALLAGENT_AGENT_FILES: {path} and {keys[path.stem]} have the same agent key "
                f"{path.stem!r} (the file name); rename one."
            )
        else:
            keys[path.stem] = path
    return p


def _serving_problems(settings: Settings) -> list[str]:
    """Check the worker count, the drain time and the recycling limits."""
    p: list[str] = []
    if settings.workers < 1:
        p.append("CALLAGENT_WORKERS must be 1 or more (server processes on the port).")
    if settings.drain_secs < 0:
        p.append("CALLAGENT_DRAIN_SECS must be 0 or more seconds (e.g. 300; 25 on Heroku).")
    if settings.recycle_after_calls < 0 or settings.recycle_after_mb < 0:
        p.append(
            "CALLAGENT_RECYCLE_AFTER_CALLS and CALLAGENT_RECYCLE_AFTER_MB must be 0 (never) "
            "or more."
        )
    return p


def _list_problems(settings: Settings) -> list[str]:
    """Check the comma-separated admission lists (proxy networks, page origins)."""
    import ipaddress
    from urllib.parse import urlsplit

    p: list[str] = []
    for item in filter(None, (i.strip() for i in settings.trusted_proxies.split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            p.append(
                f"CALLAGENT_TRUSTED_PROXIES: {item!r} is not an address or network "
                "(e.g. 10.0.0.0/8,127.0.0.1)."
            )
    for item in filter(None, (i.strip() for i in settings.allowed_origins.split(","))):
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/"):
            p.append(
                f"CALLAGENT_ALLOWED_ORIGINS: {item!r} is not an origin (e.g. https://www.example.com)."
            )
    return p


def _problems(error: ValidationError) -> list[str]:
    """Turn pydantic's report into one line per setting: its variable, value and fix."""
    secrets = {
        str(info.validation_alias)
        for info in Settings.model_fields.values()
        if any(isinstance(m, SecretMarker) for m in info.metadata)
    }
    problems: list[str] = []
    for item in error.errors():
        cause = item.get("ctx", {}).get("error")
        if isinstance(cause, SettingsError):  # the cross-setting checks, already worded
            problems += cause.problems
            continue
        env = str(item["loc"][0]) if item["loc"] else "settings"
        shown = "***" if env in secrets else item["input"]
        message = str(cause) if isinstance(cause, ValueError) else item["msg"]
        problems.append(f"{env}={shown}: {message}")
    return problems
