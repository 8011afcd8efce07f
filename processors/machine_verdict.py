"""Who answered an outbound call: what was heard, the strategies that judge it, the report.

The answering-machine detector (:mod:`processors.answering_machine`) keeps an
:class:`Evidence` of the callee's first seconds (speech spans from a VAD, the ASR's
transcripts, beeps, the provider's verdict) and asks each :class:`VerdictStrategy` in
turn; the first that is sure decides. Times are seconds of the callee's audio since the
answer.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from integrations.outbound.dispositions import MachineVerdict
from integrations.speech.beep import Beep

PROVIDER_VERDICTS: dict[str, MachineVerdict] = {
    "human": MachineVerdict.HUMAN,
    "machine_start": MachineVerdict.MACHINE,
    "machine_end_beep": MachineVerdict.MACHINE,
    "machine_end_silence": MachineVerdict.MACHINE,
    "machine_end_other": MachineVerdict.MACHINE,
    "fax": MachineVerdict.MACHINE,
    "unknown": MachineVerdict.UNKNOWN,
}
"""Twilio ``AnsweredBy`` values and what they mean here."""

GREETING_ENDED = frozenset({"machine_end_beep", "machine_end_silence", "machine_end_other"})
"""``AnsweredBy`` values sent once the machine's greeting is over: leave the message now."""

NO_MESSAGE = frozenset({"fax"})
"""``AnsweredBy`` values where no spoken message can be left."""

MACHINE_PHRASES: tuple[str, ...] = (
    r"leave (a|your|me a|us a|my)( \w+)? (message|name|number)",
    r"\bnot avail",
    r"unavailable",
    r"(after|at) the (tone|beep|signal)",
    r"voice ?mail",
    r"voice message",
    r"mail ?box",
    r"press (1|2|3|one|two|three|zero|star|pound)",
    r"(can ?not|can't|cannot|unable to) (take|come to|answer|get to)",
    r"you('ve| have)? reach",
    r"miss(ed)? your call",
    r"away from (my|the)",
    r"record (your|a) message",
    r"your call (has been|is being)",
    r"forwarded to",
    r"(person|number|subscriber|party) you (are|have) (calling|called|dialed|dialled|trying)",
    r"(try|call) (again )?later",
    r"get back to you",
    r"return your call",
    r"listen carefully",
    r"thank you for calling",
    r"welcome to",
    r"menu options",
)
"""What greetings, carrier messages and IVR menus say and people picking up do not.

Loose where the embedded ASR clips words ("you reach Maria", "not avail-"). A receptionist
also says "thank you for calling ...", but their whole greeting ("..., this is Maria, how
can I help you?") is longer than the timing strategy lets a person's hello be anyway."""

MACHINE_HINTS: tuple[str, ...] = (
    r"\byou'?ve\b",
    r"reach",  # "you breach", "we have reached"
    r"\bleave\b",
    r"\bmessage",
    r"\bplease\b",
    r"\bnot (here|home|in|able)\b",
    r"\b(tone|beep)\b",
    r"\brecord",
    r"\bthank you for\b",
    r"\bwelcome\b",
    r"\bthe (person|number|subscriber|party|customer)\b",
    r"\bavailable\b",
    r"\b(right now|at the moment)\b",
    r"\byour call\b",
    r"\b(office|hours|extension)\b",
)
"""Words a machine's greeting starts with, not enough alone: the start of a phrase the
1 s pieces cut ("you've ... | reached"), or a greeting's common words. Heard, the timing
strategy takes a long greeting for a machine sooner."""

PERSON_CUES: tuple[str, ...] = (
    r"\bspeaking\b",
    r"\bresidence\b",
    r"\bwho('?s| is) (this|that|it|calling|there)\b",
    r"\bwho am i\b",
    r"\b(how )?(can|may) i help\b",
    r"\bwhat can i do\b",
)
"""What people picking up say and greetings rarely do ("Maria speaking", "Carter
residence", "who's calling?"): heard, the timing strategy leaves a long first utterance
undecided (the words, the beep and the provider still decide)."""


@dataclass
class SpeechSpan:
    """One stretch of the callee's speech (end None: still speaking)."""

    start_s: float
    end_s: float | None = None


@dataclass
class Evidence:
    """What has been heard of the callee so far."""

    now_s: float = 0.0
    speech: list[SpeechSpan] = field(default_factory=list)
    transcripts: list[str] = field(default_factory=list)
    beeps: list[Beep] = field(default_factory=list)
    sound: list[SpeechSpan] = field(default_factory=list)
    """Stretches of sound well above the line's quiet, whether or not the VAD took them
    for speech (a fallback for voices it does not hear)."""
    provider: str | None = None
    """The provider's verdict (Twilio ``AnsweredBy``), when one came."""
    words_pending: bool = False
    """Speech was sent to the STT and its words are not in yet."""

    @property
    def speaking(self) -> bool:
        """The callee is speaking now."""
        return bool(self.speech) and self.speech[-1].end_s is None

    @property
    def last_speech_end_s(self) -> float | None:
        """Where the callee last stopped speaking (None: never spoke, or speaking now)."""
        if not self.speech or self.speech[-1].end_s is None:
            return None
        return self.speech[-1].end_s

    def first_greeting(self, join_secs: float) -> SpeechSpan | None:
        """The callee's first words as one span: spans less than ``join_secs`` apart join.

        ``end_s`` is None while the callee is still speaking them.
        """
        if not self.speech:
            return None
        start = self.speech[0].start_s
        end = self.speech[0].end_s
        for span in self.speech[1:]:
            if end is None or span.start_s - end >= join_secs:
                break
            end = span.end_s
        return SpeechSpan(start, end)

    def settled(self, span: SpeechSpan, join_secs: float) -> bool:
        """No more speech can join ``span``: it ended ``join_secs`` or more ago."""
        return span.end_s is not None and self.now_s - span.end_s >= join_secs


class Stage(Enum):
    """Where the detector is in the call."""

    LISTENING = "listening"
    """Before the opening: the callee's first words (or silence)."""
    OPENED = "opened"
    """The opening is out, the verdict not yet in."""
    THROUGH = "through"
    """A person (or nobody): the call goes on as any other."""
    WAITING_FOR_BEEP = "waiting"
    """A machine: waiting for its beep or the end of its greeting."""
    DONE = "done"
    """The message was left (or could not be): the call is ending."""


@dataclass
class AnsweringMachineReport:
    """What the detector decided and when (seconds of callee audio since the answer).

    Parameters:
        verdict: The verdict (None: none yet).
        source: The strategy that decided.
        decided_after_s: When it decided.
        opening_at_s: When the opening was pushed (None: never).
        first_words_end_s: Where the callee's first words ended (VAD), if they spoke.
        withdrawn: The opening had gone out before a machine verdict (it was stopped).
        openings_held: Times the callee went on talking after the opening went out (it
            was stopped, and went out again at their next pause).
        beep_at_s: Where the beep ended, if one was heard.
        voicemail_at_s: When the voicemail line was pushed to the TTS.
        voicemail_heard_at_s: When the bot started speaking it (the output transport).
        disposition: The outcome pushed (``voicemail-left``, ``machine-no-message``).
    """

    verdict: MachineVerdict | None = None
    source: str = ""
    decided_after_s: float | None = None
    opening_at_s: float | None = None
    first_words_end_s: float | None = None
    withdrawn: bool = False
    openings_held: int = 0
    beep_at_s: float | None = None
    voicemail_at_s: float | None = None
    voicemail_heard_at_s: float | None = None
    disposition: str | None = None

    @property
    def message_after_beep_s(self) -> float | None:
        """From the beep's end to the message starting (heard if known, else pushed)."""
        started = self.voicemail_heard_at_s or self.voicemail_at_s
        if started is None or self.beep_at_s is None:
            return None
        return started - self.beep_at_s


@dataclass(frozen=True)
class Verdict:
    """A strategy's decision: who answered, and which strategy said so."""

    verdict: MachineVerdict
    source: str


class VerdictStrategy(ABC):
    """Judges the evidence: a verdict when sure, else None (ask again later)."""

    source: str = ""

    @abstractmethod
    def decide(self, evidence: Evidence) -> Verdict | None:
        """The verdict the evidence supports, or None."""

    def _verdict(self, verdict: MachineVerdict) -> Verdict:
        return Verdict(verdict, self.source)


class ProviderVerdict(VerdictStrategy):
    """The telephony provider's own detection (Twilio ``AnsweredBy``), when it gave one.

    ``unknown`` decides nothing: the other strategies go on listening.
    """

    source = "provider"

    def decide(self, evidence: Evidence) -> Verdict | None:
        """Human or machine as the provider said."""
        verdict = PROVIDER_VERDICTS.get(evidence.provider or "")
        if verdict is None or verdict is MachineVerdict.UNKNOWN:
            return None
        return self._verdict(verdict)


class BeepVerdict(VerdictStrategy):
    """A beep is a machine: people do not answer with a pure tone."""

    source = "beep"

    def decide(self, evidence: Evidence) -> Verdict | None:
        """Machine once a beep was heard."""
        return self._verdict(MachineVerdict.MACHINE) if evidence.beeps else None


def spoken_text(evidence: Evidence) -> str:
    """The transcripts so far, lower-cased, punctuation out, one space between words."""
    text = " ".join(evidence.transcripts).lower().replace("\u2019", "'")
    return " ".join(re.sub(r"[^\w' ]+", " ", text).split())


def any_of(patterns: Sequence[str]) -> re.Pattern[str]:
    """One expression matching any of ``patterns``."""
    return re.compile("|".join(f"(?:{p})" for p in patterns))


class WordsVerdict(VerdictStrategy):
    """A machine when the transcripts say what greetings say ("leave a message"...).

    Args:
        phrases: Regular expressions matched against the lower-cased transcripts.
    """

    source = "words"

    def __init__(self, phrases: Sequence[str] = MACHINE_PHRASES):
        self._pattern = any_of(phrases)

    def decide(self, evidence: Evidence) -> Verdict | None:
        """Machine when any transcript so far has a machine phrase."""
        if self._pattern.search(spoken_text(evidence)):
            return self._verdict(MachineVerdict.MACHINE)
        return None


class SpeechTimingVerdict(VerdictStrategy):
    """People say a short "hello?" and wait; machines talk on.

    How long is too long for a person depends on what was understood of it so far (the
    words arrive in 1 s pieces, a little after they are said): a machine's words (see
    :data:`MACHINE_HINTS`) make a long greeting a machine sooner; a person's (see
    :data:`PERSON_CUES`) leave it to the other strategies.

    Args:
        long_greeting_secs: First words (pauses shorter than ``pause_secs`` included)
            this long are a machine's greeting when nothing said them a person's or a
            machine's (slow long hellos, "Yes, good afternoon, Carter residence.", take
            up to 3.5 s; Twilio's ``MachineDetectionSpeechThreshold`` is 2.4 s).
        hinted_greeting_secs: ...this long once a machine's words were heard in them.
        person_cue_secs: ...this long once a person's words were heard (None: never).
        pause_secs: Quiet after short first words that makes them a person's.
        words_wait_secs: ...and how much longer a person's verdict waits for the words
            of the first utterance still being transcribed (its last piece may have a
            machine's words).
        machine_hints: Regular expressions for a machine's words.
        person_cues: Regular expressions for a person's words.
        sound_fallback: With no speech heard by the VAD at all, a long stretch of sound
            (:attr:`Evidence.sound`) is a machine's greeting too.
    """

    source = "timing"

    def __init__(
        self,
        *,
        long_greeting_secs: float = 4.0,
        hinted_greeting_secs: float = 2.4,
        person_cue_secs: float | None = None,
        pause_secs: float = 1.0,
        words_wait_secs: float = 1.5,
        machine_hints: Sequence[str] = MACHINE_HINTS,
        person_cues: Sequence[str] = PERSON_CUES,
        sound_fallback: bool = True,
    ):
        self.long_greeting_secs = long_greeting_secs
        self.hinted_greeting_secs = hinted_greeting_secs
        self.person_cue_secs = person_cue_secs
        self.pause_secs = pause_secs
        self.words_wait_secs = words_wait_secs
        self._hints = any_of(machine_hints)
        self._cues = any_of(person_cues)
        self._sound_fallback = sound_fallback

    def threshold(self, evidence: Evidence) -> float | None:
        """How long first words may go on before they are a machine's (None: no limit)."""
        text = spoken_text(evidence)
        if text and self._cues.search(text):
            return self.person_cue_secs
        if text and self._hints.search(text):
            return self.hinted_greeting_secs
        return self.long_greeting_secs

    def decide(self, evidence: Evidence) -> Verdict | None:
        """Machine for a long greeting, human for short words then a pause."""
        greeting = evidence.first_greeting(self.pause_secs)
        if greeting is None:
            if self._sound_fallback and evidence.sound:
                return self._long_sound(evidence)
            return None
        end = greeting.end_s if greeting.end_s is not None else evidence.now_s
        limit = self.threshold(evidence)
        if limit is not None and end - greeting.start_s >= limit:
            return self._verdict(MachineVerdict.MACHINE)
        if evidence.settled(greeting, self.pause_secs) and not (
            evidence.words_pending
            and not evidence.settled(greeting, self.pause_secs + self.words_wait_secs)
        ):
            return self._verdict(MachineVerdict.HUMAN)
        return None

    def _long_sound(self, evidence: Evidence) -> Verdict | None:
        """Sound the VAD never took for speech: only a long unbroken stretch decides."""
        first = evidence.sound[0]
        end = first.end_s if first.end_s is not None else evidence.now_s
        if end - first.start_s >= self.long_greeting_secs:
            return self._verdict(MachineVerdict.MACHINE)
        return None


def own_strategies(
    *,
    long_greeting_secs: float = 4.0,
    hinted_greeting_secs: float = 2.4,
    pause_secs: float = 1.0,
) -> list[VerdictStrategy]:
    """The agent's own detection alone: a beep, the words, the speech's timing.

    For calls whose provider detects nothing (a SIP trunk has no carrier AMD; the browser).
    """
    return [
        BeepVerdict(),
        WordsVerdict(),
        SpeechTimingVerdict(
            long_greeting_secs=long_greeting_secs,
            hinted_greeting_secs=hinted_greeting_secs,
            pause_secs=pause_secs,
        ),
    ]


def default_strategies(
    *,
    long_greeting_secs: float = 4.0,
    hinted_greeting_secs: float = 2.4,
    pause_secs: float = 1.0,
) -> list[VerdictStrategy]:
    """The provider's word first (Twilio ``AnsweredBy``), then :func:`own_strategies`."""
    return [
        ProviderVerdict(),
        *own_strategies(
            long_greeting_secs=long_greeting_secs,
            hinted_greeting_secs=hinted_greeting_secs,
            pause_secs=pause_secs,
        ),
    ]
