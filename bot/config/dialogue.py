"""The agent file, speech, turn-taking and understanding."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from bot.setting_types import (
    REFERENCE_AGENT,
    REMINDER_AGENT,
    Flag,
    LLMChoice,
    STTName,
    TransportChoice,
    TTSChoice,
    UserPath,
)


class DialogueSettings(BaseSettings):
    """The agent file, speech, turn-taking and understanding."""

    agent_file: UserPath = Field(
        default=REFERENCE_AGENT,
        validation_alias="CALLAGENT_AGENT_FILE",
        description="The agent definition (YAML).",
    )
    agent_files: str = Field(
        default=str(REMINDER_AGENT),
        validation_alias="CALLAGENT_AGENT_FILES",
        description=(
            "More agent files this server serves besides CALLAGENT_AGENT_FILE, "
            "comma-separated (an outbound call names its agent by the file's stem); "
            "none = only the default agent."
        ),
    )
    transport_choice: TransportChoice = Field(
        default="auto",
        validation_alias="CALLAGENT_TRANSPORT",
        description=(
            "Where browser-side calls run: webrtc (built-in page, no cloud), daily or livekit; "
            "auto = daily with DAILY_API_KEY/DAILY_ROOM_URL, livekit with LIVEKIT_URL, "
            "else webrtc; sip = SIP trunk calls on CALLAGENT_SIP_LISTEN (127.0.0.1:5060 when "
            "unset) beside the built-in page (any other choice plus CALLAGENT_SIP_LISTEN: both). "
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
        default=True,
        validation_alias="CALLAGENT_WHOLE_TURN_STT",
        description=(
            "A caller turn the VAD split into several segments gets its text from one "
            "transcription of the turn's whole audio (embedded STT only; single-segment "
            "turns are unchanged). Offline (bench noise-path, dev requests) WER 91.4 -> "
            "86.5 % in 10 dB babble, 19.7 -> 18.6 % clean; nlu understanding --heard (dev, "
            "slt/rms/kal) in-scope acted right 52 -> 56 of 339 in 10 dB babble, 226 -> 227 "
            "clean, wrong clarifications 32 -> 26 and 12 -> 6, acted wrong unchanged; on "
            "the call bench (dev, slt+rms, 262 calls) complete-request p50 720 ms against "
            "700 ms without it."
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
        default=0.1,
        ge=0.0,
        le=2.0,
        validation_alias="CALLAGENT_ASR_LM_WEIGHT",
        description=(
            "Weight of the agent-file word language model biasing the embedded ASR "
            "(shallow fusion; 0 = off). Needs a beam width above 1 to have choices. With "
            "beam 4: 0.1 took caller-phrasing WER 14.4/46.8 -> 13.4/44.7 % (clean/babble); "
            "0.2 helped clean but hurt babble, 0.4 hurt both. Acted right on the dev "
            "requests heard offline (nlu understanding --heard, slt/rms/kal, beam 2, of "
            "393): clean 270 -> 274 at 0.1 (272 at 0.2; 274 without the general-English "
            "text), 10 dB babble 99 -> 100; acted wrong 6 -> 6 either way."
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
            "request, no sentiment read from them, the keypad offered on repeated repairs, "
            "not acted on unless the words that matter were heard well (0 = off). Dev "
            "requests, flite slt voice: clean turns 5th percentile 0.61 (1 of "
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

    nlu_tune_encoder: Flag = Field(
        default=True,
        validation_alias="CALLAGENT_NLU_TUNE_ENCODER",
        description=(
            "Tune the sentence encoder to each agent's examples before serving (first start "
            "only, about 2.5 min on 2 cores for the reference agent; cached by the examples' "
            "hash; needs the tune extra, else the stock encoder with a warning). Dev requests "
            "acted right: exact words 113 -> 118-119 of 131, heard through the phone line "
            "283 -> 302-307 of 393 (acted wrong 1 -> 4-5)."
        ),
    )

    @property
    def more_agent_files(self) -> tuple[Path, ...]:
        """The files of ``CALLAGENT_AGENT_FILES`` (the default agent's file left out)."""
        if self.agent_files.strip().lower() == "none":
            return ()
        paths = (Path(item.strip()).expanduser() for item in self.agent_files.split(","))
        default = self.agent_file.resolve()
        unique = dict.fromkeys(p for p in paths if str(p) != "." and p.resolve() != default)
        return tuple(unique)
