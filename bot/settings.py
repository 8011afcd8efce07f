"""The one typed settings object: read from the environment and `.env`, validated once.

Nothing else in callagent reads configuration. Every setting is declared once
below with its default and a one-line description; ``.env.example`` is
generated from these declarations (``callagent config example``) so the two
never drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

from dotenv import dotenv_values

TransportName = Literal["auto", "webrtc", "daily", "livekit"]
STTName = Literal["moonshine", "cartesia"]
TTSName = Literal["auto", "piper", "cartesia"]
LLMName = Literal["auto", "none", "groq", "openai"]
CallerIdStorage = Literal["hash", "redact", "plain"]
CRMName = Literal["none", "sqlite", "rest", "hubspot"]
LogFormat = Literal["text", "json"]

REFERENCE_AGENT = Path(__file__).parent / "agents" / "dental_front_desk.yaml"


class SettingsError(ValueError):
    """Start-up configuration is wrong; the message names each setting and its fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"callagent cannot start; fix these settings (.env or environment):\n{lines}"
        )


def _setting(env: str, default: Any, doc: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"env": env, "doc": doc, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Every setting callagent reads. Build it with :meth:`Settings.load`."""

    # Server
    host: str = _setting(
        "CALLAGENT_HOST", "127.0.0.1", "Address the server listens on (0.0.0.0 on a PaaS)."
    )
    port: int = _setting("PORT", 7860, "Port the server listens on (PaaS platforms set PORT).")
    public_url: str = _setting(
        "CALLAGENT_PUBLIC_URL",
        "",
        "Public https base URL (e.g. https://agent.example.com) used in TwiML stream URLs and "
        "signature checks; empty = derived from each request's Host header.",
    )
    log_level: str = _setting(
        "CALLAGENT_LOG_LEVEL", "INFO", "Log level: DEBUG, INFO, WARNING or ERROR."
    )
    log_format: LogFormat = _setting(
        "CALLAGENT_LOG_FORMAT", "text", "Log lines as text, or as JSON (one object a line)."
    )
    data_dir: Path = _setting(
        "CALLAGENT_DATA_DIR", Path("data"), "Folder for the call database and other state."
    )
    cache_dir: Path = _setting(
        "CALLAGENT_CACHE_DIR",
        Path.home() / ".cache" / "callagent",
        "Folder for derived model files (optimised ASR graphs, trained NLU heads).",
    )

    # Agent and dialogue
    agent_file: Path = _setting(
        "CALLAGENT_AGENT_FILE", REFERENCE_AGENT, "The agent definition (YAML)."
    )
    transport: TransportName = _setting(
        "CALLAGENT_TRANSPORT",
        "auto",
        "Where browser-side calls run: webrtc (built-in page, no cloud), daily or livekit; "
        "auto = daily with DAILY_API_KEY/DAILY_ROOM_URL, livekit with LIVEKIT_URL, else webrtc. "
        "Twilio phone calls are always served at /twilio/voice.",
    )
    stt: STTName = _setting(
        "CALLAGENT_STT", "moonshine", "Speech-to-text: moonshine (embedded) or cartesia."
    )
    tts: TTSName = _setting(
        "CALLAGENT_TTS",
        "auto",
        "Text-to-speech: piper (embedded) or cartesia; "
        "auto = cartesia with CARTESIA_API_KEY, else piper.",
    )
    llm: LLMName = _setting(
        "CALLAGENT_LLM",
        "auto",
        "Dialogue LLM for turns the deterministic agent cannot answer: none, groq "
        "(needs GROQ_API_KEY) or openai (any OpenAI-compatible URL in LLM_BASE_URL); "
        "auto = groq with GROQ_API_KEY, openai with LLM_BASE_URL, else none.",
    )
    vad_stop_secs: float = _setting(
        "CALLAGENT_VAD_STOP_SECS", 0.2, "Silence (s) before a pause is checked as end of turn."
    )
    vad_start_secs: float = _setting(
        "CALLAGENT_VAD_START_SECS",
        0.064,
        "Speech (s) before the caller counts as talking (and a barge-in stops the bot): "
        "two 32 ms VAD windows.",
    )
    vad_noise_gate: bool = _setting(
        "CALLAGENT_VAD_NOISE_GATE",
        True,
        "Only count speech that stands out of the caller's background noise (babble, TV).",
    )
    early_turn_secs: float = _setting(
        "CALLAGENT_EARLY_TURN_SECS",
        0.1,
        "After this much quiet (s) the embedded STT and the end-of-turn model start work, "
        "before the VAD confirms the pause (0 = wait for the VAD).",
    )
    semantic_turn_grace_secs: float = _setting(
        "CALLAGENT_SEMANTIC_TURN_GRACE_SECS",
        0.2,
        "After the VAD's pause, how long (s) before a turn that the agent already "
        "understands as a complete request ends, without waiting on the end-of-turn model.",
    )
    turn_max_pause_secs: float = _setting(
        "CALLAGENT_TURN_MAX_PAUSE_SECS",
        1.2,
        "Longest pause (s) after which a turn ends even when the end-of-turn model "
        "judges the caller unfinished.",
    )
    turn_second_look_secs: float = _setting(
        "CALLAGENT_TURN_SECOND_LOOK_SECS",
        0.2,
        "When the end-of-turn model calls a pause unfinished, ask it again after this much "
        "more silence (s) instead of waiting for the longest pause (0 = never).",
    )
    turn_model_after_transcript_from_calls: int = _setting(
        "CALLAGENT_TURN_MODEL_AFTER_TRANSCRIPT_FROM_CALLS",
        6,
        "From this many simultaneous calls on, Smart Turn waits for the pause's transcript "
        "and runs only if the transcript is not already a request the agent understands "
        "(saves an inference per understood turn when the cores are busy); 0 = never.",
    )
    no_early_runs_from_calls: int = _setting(
        "CALLAGENT_NO_EARLY_RUNS_FROM_CALLS",
        6,
        "From this many simultaneous calls on, nothing is transcribed or judged for end of "
        "turn before the VAD confirms a pause (early runs that a caller who goes on talking "
        "wastes take the cores confirmed turns wait for); 0 = never.",
    )
    audio_batch_from_calls: int = _setting(
        "CALLAGENT_AUDIO_BATCH_FROM_CALLS",
        4,
        "From this many simultaneous calls on, phone audio enters the pipeline in 40 ms "
        "frames instead of 20 ms (a quarter less event-loop work per call; VAD decisions "
        "up to 20 ms later); 0 = never.",
    )
    audio_batch_60ms_from_calls: int = _setting(
        "CALLAGENT_AUDIO_BATCH_60MS_FROM_CALLS",
        12,
        "From this many simultaneous calls on, phone audio enters the pipeline in 60 ms "
        "frames (a further 8 % less event-loop work; VAD decisions up to 40 ms later); "
        "0 = never.",
    )
    asr_threads: int = _setting(
        "CALLAGENT_ASR_THREADS", 1, "onnxruntime threads per ASR inference."
    )

    # Cloud services (all optional)
    groq_api_key: str = _setting(
        "GROQ_API_KEY", "", "Groq API key (console.groq.com).", secret=True
    )
    groq_model: str = _setting("GROQ_MODEL", "llama-3.3-70b-versatile", "Groq chat model.")
    llm_base_url: str = _setting(
        "LLM_BASE_URL", "", "OpenAI-compatible base URL (e.g. http://localhost:8000/v1)."
    )
    llm_api_key: str = _setting(
        "LLM_API_KEY", "", "API key for LLM_BASE_URL (if it needs one).", secret=True
    )
    llm_model: str = _setting("LLM_MODEL", "", "Model name at LLM_BASE_URL.")
    llm_timeout_secs: float = _setting(
        "LLM_TIMEOUT_SECS", 3.0, "Seconds before an LLM reply is abandoned for an apology."
    )
    cartesia_api_key: str = _setting("CARTESIA_API_KEY", "", "Cartesia API key.", secret=True)
    cartesia_voice_id: str = _setting(
        "CARTESIA_VOICE_ID", "71a7ad14-091c-4e8e-a314-022ece01c121", "Cartesia voice id."
    )
    daily_api_key: str = _setting(
        "DAILY_API_KEY", "", "Daily API key (creates rooms).", secret=True
    )
    daily_room_url: str = _setting("DAILY_ROOM_URL", "", "An existing Daily room URL to join.")
    daily_api_url: str = _setting(
        "DAILY_API_URL", "https://api.daily.co/v1", "Daily REST API base URL."
    )
    livekit_url: str = _setting("LIVEKIT_URL", "", "LiveKit server URL (wss://...).")
    livekit_api_key: str = _setting("LIVEKIT_API_KEY", "", "LiveKit API key.", secret=True)
    livekit_api_secret: str = _setting("LIVEKIT_API_SECRET", "", "LiveKit API secret.", secret=True)
    livekit_room: str = _setting("LIVEKIT_ROOM", "callagent", "LiveKit room the bot joins.")

    # Twilio
    twilio_account_sid: str = _setting("TWILIO_ACCOUNT_SID", "", "Twilio account SID (AC...).")
    twilio_auth_token: str = _setting(
        "TWILIO_AUTH_TOKEN",
        "",
        "Twilio auth token: signs webhooks and hangs calls up.",
        secret=True,
    )
    twilio_api_base_url: str = _setting(
        "TWILIO_API_BASE_URL",
        "https://api.twilio.com",
        "Twilio REST API root (a local fake in tests).",
    )
    twilio_validate_signatures: bool = _setting(
        "TWILIO_VALIDATE_SIGNATURES",
        True,
        "Reject Twilio webhooks/streams without a valid X-Twilio-Signature "
        "(needs TWILIO_AUTH_TOKEN).",
    )

    # Call records and the operator dashboard
    database_url: str = _setting(
        "DATABASE_URL",
        "",
        "Call-record database (postgresql://user:password@host/db); "
        "empty = SQLite at <CALLAGENT_DATA_DIR>/calls.db.",
        secret=True,
    )
    caller_id_storage: CallerIdStorage = _setting(
        "CALLAGENT_CALLER_ID_STORAGE",
        "hash",
        "How call records keep the caller's number: hash (salted SHA-256), "
        "redact (last 2 digits) or plain.",
    )
    caller_id_salt: str = _setting(
        "CALLAGENT_CALLER_ID_SALT",
        "",
        "Salt of hashed caller ids; empty = a random one generated once into "
        "<CALLAGENT_DATA_DIR>/caller-id-salt (set the same value on servers sharing a database).",
        secret=True,
    )
    operator_token: str = _setting(
        "CALLAGENT_OPERATOR_TOKEN",
        "",
        "Bearer token for /api/calls and /dashboard (16+ characters); empty = both answer 403.",
        secret=True,
    )

    # CRM (caller record prefetch and write-back)
    crm: CRMName = _setting(
        "CALLAGENT_CRM",
        "sqlite",
        "Caller CRM: sqlite (embedded, CALLAGENT_CRM_DB), rest (any HTTP CRM, CRM_REST_*), "
        "hubspot (HUBSPOT_ACCESS_TOKEN) or none.",
    )
    crm_db: str = _setting(
        "CALLAGENT_CRM_DB", "", "Embedded CRM file; empty = <CALLAGENT_DATA_DIR>/crm.db."
    )
    crm_seed_demo: bool = _setting(
        "CALLAGENT_CRM_SEED_DEMO",
        True,
        "Seed the embedded CRM with the reference agent's demo customers when it is empty "
        "(set false in production).",
    )
    crm_prefetch_budget_ms: int = _setting(
        "CALLAGENT_CRM_PREFETCH_BUDGET_MS",
        500,
        "The call goes on without the caller's record after this long (a late one is still used).",
    )
    crm_timeout_secs: float = _setting(
        "CRM_TIMEOUT_SECS", 2.0, "Per-request timeout of the REST and HubSpot CRMs."
    )
    crm_retries: int = _setting(
        "CRM_RETRIES", 2, "Retries of a failed REST/HubSpot CRM request (429, 5xx, network)."
    )
    crm_rest_lookup_url: str = _setting(
        "CRM_REST_LOOKUP_URL",
        "",
        "REST CRM lookup URL template, e.g. https://crm.example.com/api/customers?phone={phone}.",
    )
    crm_rest_write_url: str = _setting(
        "CRM_REST_WRITE_URL",
        "",
        "REST CRM write-back webhook (POST JSON), e.g. https://crm.example.com/api/"
        "customers/{customer_id}/events; empty = no write-back.",
    )
    crm_rest_auth_header: str = _setting(
        "CRM_REST_AUTH_HEADER",
        "",
        "Header sent to the REST CRM, e.g. 'Authorization: Bearer abc123'.",
        secret=True,
    )
    crm_rest_field_map: str = _setting(
        "CRM_REST_FIELD_MAP",
        "",
        "REST CRM JSON -> record fields, e.g. 'record=data,first_name=firstName,"
        "appointments=upcoming,appointments[].starts_at=start' (see integrations/crm/rest_crm.py).",
    )
    hubspot_access_token: str = _setting(
        "HUBSPOT_ACCESS_TOKEN", "", "HubSpot private app token (CRM scopes).", secret=True
    )
    hubspot_api_base_url: str = _setting(
        "HUBSPOT_API_BASE_URL",
        "https://api.hubapi.com",
        "HubSpot API root (a local fake in tests).",
    )

    # Escalation to a person
    screen_pop_url: str = _setting(
        "CALLAGENT_SCREEN_POP_URL",
        "",
        "Agent-desktop webhook that receives the hand-off summary (signed JSON POST) before a "
        "transfer; empty = none.",
    )
    screen_pop_secret: str = _setting(
        "CALLAGENT_SCREEN_POP_SECRET",
        "",
        "HMAC-SHA256 key signing screen-pop POSTs (X-Callagent-Signature).",
        secret=True,
    )
    screen_pop_attempts: int = _setting(
        "CALLAGENT_SCREEN_POP_ATTEMPTS", 3, "Screen-pop delivery attempts (retries included)."
    )
    screen_pop_timeout_secs: float = _setting(
        "CALLAGENT_SCREEN_POP_TIMEOUT_SECS", 2.0, "Per-attempt timeout of a screen-pop POST."
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
        values: dict[str, str] = {}
        path = dotenv_path if dotenv_path is not None else (Path(".env") if env is None else None)
        if path is not None and path.exists():
            values.update({k: v for k, v in dotenv_values(path).items() if v is not None})
        values.update(os.environ if env is None else env)

        kwargs: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            name = f.metadata["env"]
            raw = values.get(name)
            if raw is None or raw == "":
                continue
            try:
                kwargs[f.name] = _convert(str(f.type), raw.strip())
            except ValueError as e:
                shown = "***" if f.metadata["secret"] else raw
                problems.append(f"{name}={shown}: {e}")
        if problems:
            raise SettingsError(problems)
        settings = cls(**kwargs)._resolved()
        settings.validate()
        return settings

    def _resolved(self) -> Settings:
        """Turn every ``auto`` choice into the service the configured keys select."""
        transport = self.transport
        if transport == "auto":
            transport = (
                "daily"
                if self.daily_api_key or self.daily_room_url
                else "livekit"
                if self.livekit_url
                else "webrtc"
            )
        tts = self.tts if self.tts != "auto" else ("cartesia" if self.cartesia_api_key else "piper")
        llm = self.llm
        if llm == "auto":
            llm = "groq" if self.groq_api_key else "openai" if self.llm_base_url else "none"
        return replace(self, transport=transport, tts=tts, llm=llm)

    def validate(self) -> None:
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
        if self.crm_prefetch_budget_ms < 0:
            p.append("CALLAGENT_CRM_PREFETCH_BUDGET_MS must be 0 or more.")
        if self.log_level.upper() not in {"TRACE", "DEBUG", "INFO", "WARNING", "ERROR"}:
            p.append(f"CALLAGENT_LOG_LEVEL={self.log_level}: use DEBUG, INFO, WARNING or ERROR.")
        if p:
            raise SettingsError(p)

    @property
    def records_database_url(self) -> str:
        """The call-record database: ``DATABASE_URL``, else SQLite in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'calls.db').expanduser().resolve()}"

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
        for f in fields(cls):
            default = _EXAMPLE_DEFAULTS.get(f.name, f.default)
            if isinstance(default, bool):
                default = "true" if default else "false"
            lines += ["", f"# {f.metadata['doc']}", f"# {f.metadata['env']}={default}"]
        return "\n".join(lines) + "\n"


_EXAMPLE_DEFAULTS = {
    "cache_dir": "~/.cache/callagent",
    "agent_file": "(the bundled dental front desk agent)",
}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _convert(annotation: str, raw: str) -> Any:
    converters: dict[str, Callable[[str], Any]] = {
        "str": str,
        "int": int,
        "float": float,
        "Path": lambda s: Path(s).expanduser(),
        "bool": _bool,
    }
    if annotation in converters:
        try:
            return converters[annotation](raw)
        except ValueError:
            raise ValueError(f"expected a {annotation}") from None
    choices: tuple[str, ...] = get_args(globals()[annotation])
    if raw.lower() not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")
    return raw.lower()


def _bool(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError("expected true or false")
