"""The one typed settings object: read from the environment and `.env`, validated once.

Nothing else in callagent reads configuration. Every setting is declared once
below (a pydantic-settings field: its environment variable, default and a
one-line description); ``.env.example`` is generated from these declarations
(``callagent config example``) so the two never drift apart.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import AfterValidator, BeforeValidator, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REFERENCE_AGENT = Path(__file__).parent / "agents" / "dental_front_desk.yaml"


class SettingsError(ValueError):
    """Start-up configuration is wrong; the message names each setting and its fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"callagent cannot start; fix these settings (.env or environment):\n{lines}"
        )


def _lowercase(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _flag(value: object) -> object:
    """Read a yes/no setting: 1/true/yes/on or 0/false/no/off, in any case."""
    if not isinstance(value, str):
        return value
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError("expected true or false")


class _SecretMarker:
    """Marks a setting whose value never appears in an error message."""


Secret = Annotated[str, _SecretMarker()]
Flag = Annotated[bool, BeforeValidator(_flag)]
UserPath = Annotated[Path, AfterValidator(Path.expanduser)]

# Enum-like settings accept any case ("WebRTC") and hold the lower-case value.
TransportChoice = Annotated[
    Literal["auto", "webrtc", "daily", "livekit"], BeforeValidator(_lowercase)
]
STTName = Annotated[Literal["moonshine", "cartesia"], BeforeValidator(_lowercase)]
TTSChoice = Annotated[Literal["auto", "piper", "cartesia"], BeforeValidator(_lowercase)]
LLMChoice = Annotated[Literal["auto", "none", "groq", "openai"], BeforeValidator(_lowercase)]
CallerIdStorage = Annotated[Literal["hash", "redact", "plain"], BeforeValidator(_lowercase)]
CRMName = Annotated[Literal["none", "sqlite", "rest", "hubspot"], BeforeValidator(_lowercase)]
RetentionAction = Annotated[Literal["delete", "anonymise"], BeforeValidator(_lowercase)]
JournalSyncChoice = Annotated[Literal["flush", "fsync"], BeforeValidator(_lowercase)]
LogFormat = Annotated[Literal["text", "json"], BeforeValidator(_lowercase)]

# What an ``auto`` choice resolves to (see Settings.transport, .tts and .llm).
TransportName = Literal["webrtc", "daily", "livekit"]
TTSName = Literal["piper", "cartesia"]
LLMName = Literal["none", "groq", "openai"]


class Settings(BaseSettings):
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

    # Server
    host: str = Field(
        default="127.0.0.1",
        validation_alias="CALLAGENT_HOST",
        description="Address the server listens on (0.0.0.0 on a PaaS).",
    )
    port: int = Field(
        default=7860,
        validation_alias="PORT",
        description="Port the server listens on (PaaS platforms set PORT).",
    )
    public_url: str = Field(
        default="",
        validation_alias="CALLAGENT_PUBLIC_URL",
        description=(
            "Public https base URL (e.g. https://agent.example.com) used in TwiML stream URLs and "
            "signature checks; empty = derived from each request's Host header, on a loopback "
            "CALLAGENT_HOST only (elsewhere the Twilio routes need it)."
        ),
    )
    log_level: str = Field(
        default="INFO",
        validation_alias="CALLAGENT_LOG_LEVEL",
        description="Log level: DEBUG, INFO, WARNING or ERROR.",
    )
    log_format: LogFormat = Field(
        default="text",
        validation_alias="CALLAGENT_LOG_FORMAT",
        description=(
            "Log line format: text for people, json (one object per line, with the call "
            "id) for log collectors."
        ),
    )
    data_dir: UserPath = Field(
        default=Path("data"),
        validation_alias="CALLAGENT_DATA_DIR",
        description="Folder for the call database and other state.",
    )
    cache_dir: UserPath = Field(
        default=Path.home() / ".cache" / "callagent",
        validation_alias="CALLAGENT_CACHE_DIR",
        description="Folder for derived model files (optimised ASR graphs, trained NLU heads).",
    )

    # Call admission: who may start a call, and how many (bot/web/admission.py)
    max_calls: int = Field(
        default=20,
        validation_alias="CALLAGENT_MAX_CALLS",
        description=(
            "Calls (and browser offers waiting to connect) this process carries at once; more "
            "get 503 / WebSocket close 1013 with Retry-After (about 20 fit a 2-core server)."
        ),
    )
    call_rate_per_minute: float = Field(
        default=30.0,
        validation_alias="CALLAGENT_CALL_RATE_PER_MINUTE",
        description=(
            "Calls one client address may start per minute on each call-starting route "
            "(token bucket, CALLAGENT_CALL_RATE_BURST at once); more get 429; 0 = no limit."
        ),
    )
    call_rate_burst: int = Field(
        default=10,
        validation_alias="CALLAGENT_CALL_RATE_BURST",
        description="Calls one client address may start at once before the per-minute rate.",
    )
    trusted_proxies: str = Field(
        default="",
        validation_alias="CALLAGENT_TRUSTED_PROXIES",
        description=(
            "Comma-separated proxy addresses/networks (e.g. 10.0.0.0/8,127.0.0.1) whose "
            "X-Forwarded-For names the client; empty = the connecting address is the client."
        ),
    )
    allowed_origins: str = Field(
        default="",
        validation_alias="CALLAGENT_ALLOWED_ORIGINS",
        description=(
            "Comma-separated page origins (https://www.example.com) besides the server's own "
            "that may post browser-call offers to /api/offer."
        ),
    )
    webrtc_connect_timeout_secs: float = Field(
        default=10.0,
        validation_alias="CALLAGENT_WEBRTC_CONNECT_TIMEOUT_SECS",
        description=(
            "A browser offer whose peer connection is not connected after this long is closed; "
            "no call starts and nothing is recorded."
        ),
    )
    call_token_ttl_secs: int = Field(
        default=120,
        validation_alias="CALLAGENT_CALL_TOKEN_TTL_SECS",
        description=(
            "Lifetime of a single-use browser call token minted at POST /api/call-tokens "
            "(needed for browser calls when the server is not on loopback)."
        ),
    )

    # Agent and dialogue
    agent_file: UserPath = Field(
        default=REFERENCE_AGENT,
        validation_alias="CALLAGENT_AGENT_FILE",
        description="The agent definition (YAML).",
    )
    transport_choice: TransportChoice = Field(
        default="auto",
        validation_alias="CALLAGENT_TRANSPORT",
        description=(
            "Where browser-side calls run: webrtc (built-in page, no cloud), daily or livekit; "
            "auto = daily with DAILY_API_KEY/DAILY_ROOM_URL, livekit with LIVEKIT_URL, "
            "else webrtc. "
            "Twilio phone calls are always served at /twilio/voice."
        ),
    )
    stt: STTName = Field(
        default="moonshine",
        validation_alias="CALLAGENT_STT",
        description="Speech-to-text: moonshine (embedded) or cartesia.",
    )
    tts_choice: TTSChoice = Field(
        default="auto",
        validation_alias="CALLAGENT_TTS",
        description=(
            "Text-to-speech: piper (embedded) or cartesia; "
            "auto = cartesia with CARTESIA_API_KEY, else piper."
        ),
    )
    llm_choice: LLMChoice = Field(
        default="auto",
        validation_alias="CALLAGENT_LLM",
        description=(
            "Dialogue LLM for turns the deterministic agent cannot answer: none, groq "
            "(needs GROQ_API_KEY) or openai (any OpenAI-compatible URL in LLM_BASE_URL); "
            "auto = groq with GROQ_API_KEY, openai with LLM_BASE_URL, else none."
        ),
    )
    vad_stop_secs: float = Field(
        default=0.2,
        validation_alias="CALLAGENT_VAD_STOP_SECS",
        description="Silence (s) before a pause is checked as end of turn.",
    )
    vad_start_secs: float = Field(
        default=0.064,
        validation_alias="CALLAGENT_VAD_START_SECS",
        description=(
            "Speech (s) before the caller counts as talking (and a barge-in stops the bot): "
            "two 32 ms VAD windows."
        ),
    )
    vad_noise_gate: Flag = Field(
        default=True,
        validation_alias="CALLAGENT_VAD_NOISE_GATE",
        description=(
            "Only count speech that stands out of the caller's background noise (babble, TV)."
        ),
    )
    early_turn_secs: float = Field(
        default=0.1,
        validation_alias="CALLAGENT_EARLY_TURN_SECS",
        description=(
            "After this much quiet (s) the embedded STT and the end-of-turn model start work, "
            "before the VAD confirms the pause (0 = wait for the VAD)."
        ),
    )
    semantic_turn_grace_secs: float = Field(
        default=0.2,
        validation_alias="CALLAGENT_SEMANTIC_TURN_GRACE_SECS",
        description=(
            "After the VAD's pause, how long (s) before a turn that the agent already "
            "understands as a complete request ends, without waiting on the end-of-turn model."
        ),
    )
    turn_max_pause_secs: float = Field(
        default=1.2,
        validation_alias="CALLAGENT_TURN_MAX_PAUSE_SECS",
        description=(
            "Longest pause (s) after which a turn ends even when the end-of-turn model "
            "judges the caller unfinished."
        ),
    )
    turn_second_look_secs: float = Field(
        default=0.2,
        validation_alias="CALLAGENT_TURN_SECOND_LOOK_SECS",
        description=(
            "When the end-of-turn model calls a pause unfinished, ask it again after this much "
            "more silence (s) instead of waiting for the longest pause (0 = never)."
        ),
    )
    turn_model_after_transcript_from_calls: int = Field(
        default=6,
        validation_alias="CALLAGENT_TURN_MODEL_AFTER_TRANSCRIPT_FROM_CALLS",
        description=(
            "From this many simultaneous calls on, Smart Turn waits for the pause's transcript "
            "and runs only if the transcript is not already a request the agent understands "
            "(saves an inference per understood turn when the cores are busy); 0 = never."
        ),
    )
    no_early_runs_from_calls: int = Field(
        default=6,
        validation_alias="CALLAGENT_NO_EARLY_RUNS_FROM_CALLS",
        description=(
            "From this many simultaneous calls on, nothing is transcribed or judged for end of "
            "turn before the VAD confirms a pause (early runs that a caller who goes on talking "
            "wastes take the cores confirmed turns wait for); 0 = never."
        ),
    )
    audio_batch_from_calls: int = Field(
        default=4,
        validation_alias="CALLAGENT_AUDIO_BATCH_FROM_CALLS",
        description=(
            "From this many simultaneous calls on, phone audio enters the pipeline in 40 ms "
            "frames instead of 20 ms (a quarter less event-loop work per call; VAD decisions "
            "up to 20 ms later); 0 = never."
        ),
    )
    audio_batch_60ms_from_calls: int = Field(
        default=12,
        validation_alias="CALLAGENT_AUDIO_BATCH_60MS_FROM_CALLS",
        description=(
            "From this many simultaneous calls on, phone audio enters the pipeline in 60 ms "
            "frames (a further 8 % less event-loop work; VAD decisions up to 40 ms later); "
            "0 = never."
        ),
    )
    asr_threads: int = Field(
        default=1,
        validation_alias="CALLAGENT_ASR_THREADS",
        description="onnxruntime threads per ASR inference.",
    )
    asr_beam_width: int = Field(
        default=2,
        ge=1,
        le=8,
        validation_alias="CALLAGENT_ASR_BEAM_WIDTH",
        description=(
            "Readings the embedded ASR keeps while decoding (1 = greedy); also the most "
            "readings (N-best) handed to the NLU. Caller phrasings, 3 voices, phone line "
            "(callagent bench speech-domain): WER clean/10 dB babble 16.2/52.7 % greedy, "
            "14.6/48.3 % beam 2 (decode 1.3x), 14.4/46.8 % beam 4 (1.9x)."
        ),
    )
    whole_turn_stt: bool = Field(
        default=False,
        validation_alias="CALLAGENT_WHOLE_TURN_STT",
        description=(
            "A caller turn the VAD split into several segments gets its text from one "
            "transcription of the turn's whole audio (embedded STT only; single-segment "
            "turns are unchanged). Offline (bench noise-path, dev requests) WER 91.4 -> "
            "86.5 % in 10 dB babble, 19.7 -> 18.6 % clean; off until measured on the call "
            "bench (the first call-bench run had a bug since fixed)."
        ),
    )
    whole_turn_max_pause_secs: float = Field(
        default=0.4,
        ge=0.0,
        le=5.0,
        validation_alias="CALLAGENT_WHOLE_TURN_MAX_PAUSE_SECS",
        description=(
            "Longest pause (s) kept between two segments of a turn transcribed whole (the "
            "middle of a longer pause is cut out)."
        ),
    )
    asr_lm_weight: float = Field(
        default=0.0,
        ge=0.0,
        le=2.0,
        validation_alias="CALLAGENT_ASR_LM_WEIGHT",
        description=(
            "Weight of the agent-file word language model biasing the embedded ASR "
            "(shallow fusion; 0 = off). Needs a beam width above 1 to have choices. With "
            "beam 4: 0.1 took caller-phrasing WER 14.4/46.8 -> 13.4/44.7 % (clean/babble); "
            "0.2 helped clean but hurt babble, 0.4 hurt both."
        ),
    )
    asr_unsure_confidence: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        validation_alias="CALLAGENT_ASR_UNSURE_CONFIDENCE",
        description=(
            "Recogniser confidence (geometric mean of the turn's token probabilities) below "
            "which the caller's words count as doubtful: never taken for a clear out-of-scope "
            "request, no sentiment read from them, the keypad offered on repeated repairs "
            "(0 = off). Dev requests, flite slt voice: clean turns 5th percentile 0.61 (1 of "
            "131 below 0.5); 10 dB babble median 0.41 (105 of 131 below 0.5)."
        ),
    )
    asr_lm_word_bonus: float = Field(
        default=0.3,
        ge=0.0,
        le=5.0,
        validation_alias="CALLAGENT_ASR_LM_WORD_BONUS",
        description="Score added per word when the ASR language model is on.",
    )
    asr_lm_corpus_dir: UserPath | None = Field(
        default=None,
        validation_alias="CALLAGENT_ASR_LM_CORPUS_DIR",
        description=(
            "Folder with clinc150/ and banking77/ texts, the general English the ASR "
            "language model mixes with the agent's words (default: ../shared/datasets "
            "beside the repository; missing: the agent's words alone)."
        ),
    )

    # Cloud services (all optional)
    groq_api_key: Secret = Field(
        default="",
        validation_alias="GROQ_API_KEY",
        description="Groq API key (console.groq.com).",
    )
    groq_model: str = Field(
        default="llama-3.3-70b-versatile",
        validation_alias="GROQ_MODEL",
        description="Groq chat model.",
    )
    llm_base_url: str = Field(
        default="",
        validation_alias="LLM_BASE_URL",
        description="OpenAI-compatible base URL (e.g. http://localhost:8000/v1).",
    )
    llm_api_key: Secret = Field(
        default="",
        validation_alias="LLM_API_KEY",
        description="API key for LLM_BASE_URL (if it needs one).",
    )
    llm_model: str = Field(
        default="",
        validation_alias="LLM_MODEL",
        description="Model name at LLM_BASE_URL.",
    )
    cartesia_api_key: Secret = Field(
        default="",
        validation_alias="CARTESIA_API_KEY",
        description="Cartesia API key.",
    )
    cartesia_voice_id: str = Field(
        default="71a7ad14-091c-4e8e-a314-022ece01c121",
        validation_alias="CARTESIA_VOICE_ID",
        description="Cartesia voice id.",
    )
    daily_api_key: Secret = Field(
        default="",
        validation_alias="DAILY_API_KEY",
        description="Daily API key (creates rooms).",
    )
    daily_room_url: str = Field(
        default="",
        validation_alias="DAILY_ROOM_URL",
        description="An existing Daily room URL to join.",
    )
    daily_api_url: str = Field(
        default="https://api.daily.co/v1",
        validation_alias="DAILY_API_URL",
        description="Daily REST API base URL.",
    )
    livekit_url: str = Field(
        default="",
        validation_alias="LIVEKIT_URL",
        description="LiveKit server URL (wss://...).",
    )
    livekit_api_key: Secret = Field(
        default="",
        validation_alias="LIVEKIT_API_KEY",
        description="LiveKit API key.",
    )
    livekit_api_secret: Secret = Field(
        default="",
        validation_alias="LIVEKIT_API_SECRET",
        description="LiveKit API secret.",
    )
    livekit_room: str = Field(
        default="callagent",
        validation_alias="LIVEKIT_ROOM",
        description="LiveKit room the bot joins.",
    )

    # Twilio
    twilio_account_sid: str = Field(
        default="",
        validation_alias="TWILIO_ACCOUNT_SID",
        description="Twilio account SID (AC...).",
    )
    twilio_auth_token: Secret = Field(
        default="",
        validation_alias="TWILIO_AUTH_TOKEN",
        description="Twilio auth token: signs webhooks and hangs calls up.",
    )
    twilio_api_base_url: str = Field(
        default="https://api.twilio.com",
        validation_alias="TWILIO_API_BASE_URL",
        description="Twilio REST API root (a local fake in tests).",
    )
    twilio_validate_signatures: Flag = Field(
        default=True,
        validation_alias="TWILIO_VALIDATE_SIGNATURES",
        description=(
            "Reject Twilio webhooks/streams without a valid X-Twilio-Signature "
            "(needs TWILIO_AUTH_TOKEN)."
        ),
    )
    twilio_insecure_accept_unsigned: Flag = Field(
        default=False,
        validation_alias="CALLAGENT_TWILIO_INSECURE_ACCEPT_UNSIGNED",
        description=(
            "DANGEROUS: serve /twilio/* on a non-loopback CALLAGENT_HOST without signature "
            "checks (no TWILIO_AUTH_TOKEN): anyone can then place calls and forge streams."
        ),
    )

    # Call records and the operator dashboard
    database_url: Secret = Field(
        default="",
        validation_alias="DATABASE_URL",
        description=(
            "Call-record database (postgresql://user:password@host/db); "
            "empty = SQLite at <CALLAGENT_DATA_DIR>/calls.db."
        ),
    )
    caller_id_storage: CallerIdStorage = Field(
        default="hash",
        validation_alias="CALLAGENT_CALLER_ID_STORAGE",
        description=(
            "How call records keep the caller's number: hash (salted SHA-256), "
            "redact (last 2 digits) or plain; hash and redact also mask phone numbers, "
            "e-mails, names, digits and dates in stored transcripts and summaries."
        ),
    )
    retention_days: int = Field(
        default=0,
        ge=0,
        validation_alias="CALLAGENT_RETENTION_DAYS",
        description=(
            "Call records older than this many days are deleted or anonymised at start-up "
            "and daily (CALLAGENT_RETENTION_ACTION); 0 = kept forever."
        ),
    )
    retention_action: RetentionAction = Field(
        default="delete",
        validation_alias="CALLAGENT_RETENTION_ACTION",
        description=(
            "What happens to records past CALLAGENT_RETENTION_DAYS: delete, or anonymise "
            "(caller id, summary and turn texts cleared; statistics kept)."
        ),
    )
    caller_id_salt: Secret = Field(
        default="",
        validation_alias="CALLAGENT_CALLER_ID_SALT",
        description=(
            "Salt of hashed caller ids; empty = a random one generated once into "
            "<CALLAGENT_DATA_DIR>/caller-id-salt (set the same value on servers sharing a "
            "database)."
        ),
    )
    operator_token: Secret = Field(
        default="",
        validation_alias="CALLAGENT_OPERATOR_TOKEN",
        description=(
            "Bearer token for /api/calls, /dashboard and /docs (16+ characters); empty = they "
            "answer 403, except on a loopback-only server, which prints a one-time login link."
        ),
    )
    operator_session_hours: float = Field(
        default=12.0,
        validation_alias="CALLAGENT_OPERATOR_SESSION_HOURS",
        description="A dashboard login lasts at most this long (hours).",
    )
    operator_session_idle_minutes: float = Field(
        default=30.0,
        validation_alias="CALLAGENT_OPERATOR_SESSION_IDLE_MINUTES",
        description="A dashboard login ends after this long without a request (minutes).",
    )

    records_journal_sync: JournalSyncChoice = Field(
        default="flush",
        validation_alias="CALLAGENT_RECORDS_JOURNAL_SYNC",
        description=(
            "Each call-record write goes to <CALLAGENT_DATA_DIR>/records-journal first: "
            "flush (to the OS; survives a killed process) or fsync (journal and spool to disk; "
            "with PostgreSQL survives a power cut; ~4 ms per turn)."
        ),
    )
    worker_heartbeat_secs: float = Field(
        default=10.0,
        gt=0,
        validation_alias="CALLAGENT_WORKER_HEARTBEAT_SECS",
        description="How often this server process records in the call database that it is alive.",
    )
    worker_stale_secs: float = Field(
        default=60.0,
        gt=0,
        validation_alias="CALLAGENT_WORKER_STALE_SECS",
        description=(
            "A server process silent this long is dead: its open calls are closed as failed "
            "(at least 3x CALLAGENT_WORKER_HEARTBEAT_SECS)."
        ),
    )

    # CRM (caller record prefetch and write-back)
    crm: CRMName = Field(
        default="sqlite",
        validation_alias="CALLAGENT_CRM",
        description=(
            "Caller CRM: sqlite (embedded, CALLAGENT_CRM_DB), rest (any HTTP CRM, CRM_REST_*), "
            "hubspot (HUBSPOT_ACCESS_TOKEN) or none."
        ),
    )
    crm_db: str = Field(
        default="",
        validation_alias="CALLAGENT_CRM_DB",
        description="Embedded CRM file; empty = <CALLAGENT_DATA_DIR>/crm.db.",
    )
    crm_seed_demo: Flag = Field(
        default=True,
        validation_alias="CALLAGENT_CRM_SEED_DEMO",
        description=(
            "Seed the embedded CRM with the reference agent's demo customers when it is empty "
            "(set false in production)."
        ),
    )
    crm_prefetch_budget_ms: int = Field(
        default=500,
        validation_alias="CALLAGENT_CRM_PREFETCH_BUDGET_MS",
        description=(
            "The call goes on without the caller's record after this long "
            "(a late one is still used)."
        ),
    )
    crm_timeout_secs: float = Field(
        default=2.0,
        validation_alias="CRM_TIMEOUT_SECS",
        description="Per-request timeout of the REST and HubSpot CRMs.",
    )
    crm_retries: int = Field(
        default=2,
        validation_alias="CRM_RETRIES",
        description="Retries of a failed REST/HubSpot CRM request (429, 5xx, network).",
    )
    crm_rest_lookup_url: str = Field(
        default="",
        validation_alias="CRM_REST_LOOKUP_URL",
        description=(
            "REST CRM lookup URL template, e.g. https://crm.example.com/api/customers?phone={phone}."
        ),
    )
    crm_rest_write_url: str = Field(
        default="",
        validation_alias="CRM_REST_WRITE_URL",
        description=(
            "REST CRM write-back webhook (POST JSON), e.g. https://crm.example.com/api/"
            "customers/{customer_id}/events; empty = no write-back."
        ),
    )
    crm_rest_auth_header: Secret = Field(
        default="",
        validation_alias="CRM_REST_AUTH_HEADER",
        description="Header sent to the REST CRM, e.g. 'Authorization: Bearer abc123'.",
    )
    crm_rest_field_map: str = Field(
        default="",
        validation_alias="CRM_REST_FIELD_MAP",
        description=(
            "REST CRM JSON -> record fields, e.g. 'record=data,first_name=firstName,"
            "appointments=upcoming,appointments[].starts_at=start' "
            "(see integrations/crm/rest_crm.py)."
        ),
    )
    hubspot_access_token: Secret = Field(
        default="",
        validation_alias="HUBSPOT_ACCESS_TOKEN",
        description="HubSpot private app token (CRM scopes).",
    )
    hubspot_api_base_url: str = Field(
        default="https://api.hubapi.com",
        validation_alias="HUBSPOT_API_BASE_URL",
        description="HubSpot API root (a local fake in tests).",
    )

    # Escalation to a person
    screen_pop_url: str = Field(
        default="",
        validation_alias="CALLAGENT_SCREEN_POP_URL",
        description=(
            "Agent-desktop webhook that receives the hand-off summary (signed JSON POST) before a "
            "transfer; empty = none."
        ),
    )
    screen_pop_secret: Secret = Field(
        default="",
        validation_alias="CALLAGENT_SCREEN_POP_SECRET",
        description="HMAC-SHA256 key signing screen-pop POSTs (X-Callagent-Signature).",
    )
    screen_pop_attempts: int = Field(
        default=3,
        validation_alias="CALLAGENT_SCREEN_POP_ATTEMPTS",
        description="Screen-pop delivery attempts (retries included).",
    )
    screen_pop_timeout_secs: float = Field(
        default=2.0,
        validation_alias="CALLAGENT_SCREEN_POP_TIMEOUT_SECS",
        description="Per-attempt timeout of a screen-pop POST.",
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
        return {
            key: value.strip() if isinstance(value, str) else value
            for key, value in data.items()
            if value is not None and value != ""
        }

    @property
    def transport(self) -> TransportName:
        """Where browser-side calls run; ``auto`` picks daily, then livekit, by their keys."""
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
        if self.call_rate_per_minute < 0:
            p.append("CALLAGENT_CALL_RATE_PER_MINUTE must be 0 (no limit) or more.")
        if self.call_rate_burst < 1:
            p.append("CALLAGENT_CALL_RATE_BURST must be 1 or more.")
        if self.webrtc_connect_timeout_secs <= 0:
            p.append("CALLAGENT_WEBRTC_CONNECT_TIMEOUT_SECS must be more than 0 (e.g. 10).")
        if not 10 <= self.call_token_ttl_secs <= 3600:
            p.append("CALLAGENT_CALL_TOKEN_TTL_SECS must be between 10 and 3600 seconds.")
        p += _list_problems(self)
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
}


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
        if any(isinstance(m, _SecretMarker) for m in info.metadata)
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
