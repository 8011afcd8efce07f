"""Hear the caller out: how long a pause must last before a turn that is not yet a request ends.

The turn-end strategies (:mod:`processors.segment_turn_stop`, :mod:`processors.semantic_turn`)
end a turn a fraction of a second after the caller's last word. That is right when the
words are a request; it cut callers off when they were not (23 % of clean calls in the
issue-15 understanding run): a filler or a greeting at the start ("Um, yeah." -> acted
as *yes*; "Hi, um," -> heard as "Bye." -> the call ended), or a first sentence that only
sets the scene ("Hi, I booked a checkup for next week." -> a booking, while the caller
went on "...but I'm not going to be able to come"). :class:`TurnHoldPolicy` says, from
the words so far, how long the pause after them must be before the turn may end:

- only openers (fillers, greetings, backchannels, a bare yes, no or bye: "um", "yeah",
  "no", "hi", "so", "okay", "well", "hi um"): ``opener_pause_s``. Not when the bot has
  just asked a yes/no question and the words are an answer: then the ``answer`` strategy
  (:mod:`processors.answer_hold`) says how long a bare yes or no waits for a callee
  pausing at a comma ("Yes, | I'll be there."); a goodbye to "Anything else?" ends at
  once. Nor for a backchannel said over the bot's reply ("mhm":
  :class:`processors.barge_in.BackchannelFilter` lets it go on);
- a sentence that reads as a preamble ("I'm calling about my appointment.", "I booked a
  checkup for next week.", "This is Maria.") or ends on a conjunction ("..., and"):
  ``context_pause_s``;
- a statement that tells rather than asks ("My car broke down.", "My daughter is three.",
  "I have coverage through my employer."; no request word such as "please", "I'd like
  to", "I need", "can you"; not in the imperative), even one the agent could act
  on: ``statement_pause_s``. Callers set the scene this way before the question; the
  classifier reads such a sentence as a request often enough (emergency, next appointment,
  insurance) that acting on it cut them off. A statement that answers the bot's yes/no
  question ("That works for me.", "I won't be able to make it.") is not held; nor misheard
  words surely read as a question the agent only answers (``misheard_answer``: "Can I
  spread the cost?" heard as "Canon, I spread the cost."), whose form is the recogniser's,
  unless the sentence opens on the caller ("I ...", "My ...": the caller's own telling);
- a statement (not a question) the agent cannot act on with confidence, heard clearly:
  ``unsure_pause_s`` (the check is the caller's, e.g. the classifier's act threshold);
- a question whether the caller has reached the right place ("Is this Dr. Patel's
  office?"), even one the agent could act on, and a yes/no question that opens the turn
  (after openers at most) which the agent cannot act on with confidence, heard clearly
  ("Is this the vet?", "Is there any way someone can see me today?" below the act
  threshold): ``unsure_question_pause_s``. Callers go on with the reason or the detail
  after a pause ("Is this the vet? | My dog needs his shots."). Not a question the agent
  acts on outright (its latency is the product's), nor one that names what it asks for
  ("What are your prizes?", misheard: it is seldom a preamble) or follows the caller's own
  sentence ("I need a crown. | What does that cost?": the question ends the request);
- a short question (under :data:`MIN_TELLING_WORDS` words) that opens the turn and that
  the agent cannot place: ``misheard_pause_s`` (``garbled_pause_s`` when barely heard). It
  is how the recogniser prints an opener ("So, uh," -> "Who? Who? Ah.", "Um, yeah," ->
  "And you had?"), and only a repair would answer it. Offline on the dev set's 95
  sentence- and comma-boundary prefixes per voice (``scripts/turn_prefixes.py --heard
  --commas``) the turn ended inside the request on 2/3/2 -> 2/0/1 (slt/rms/kal); 4 more
  of the 393 whole requests wait, no more of ``bench latency``'s questions;
- anything else: no wait beyond what the strategies already do.

A statement the agent cannot act on because the recogniser misheard it (its confidence
in the words just said is below ``heard_clearly``: "Junior Brigitte's widening." for "Do
you do teeth whitening?") waits only ``misheard_pause_s``, enough to hear a caller go on
after a sentence: the form of misheard words says nothing about whether the caller is
done, and a longer wait does not make them understood (a repair sooner is better). Unless
it still reads as a sentence that tells: that waits ``statement_pause_s`` however it was
heard.

The pause is counted from the caller's last word; speech before it is over keeps the turn
open as usual. The same rules tell :class:`processors.fragment_join.FragmentJoiner` which
turns were fragments a caller may go on from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from processors.act_guard import HEARD_CLEARLY
from processors.answer_hold import AnswerHold, HearAnswerOut, is_bare_yes_no
from processors.barge_in import is_backchannel, normalize_words
from processors.turn_words import (
    MIN_TELLING_WORDS,
    asks_what,
    is_answer,
    is_opener,
    is_statement,
    last_sentence,
    opens_turn,
    reads_as_check,
    reads_as_preamble,
    reads_as_telling,
    tells_of_caller,
)

OPENER_PAUSE_S = 2.0
"""A turn of openers only ends after this much pause (the caller is still getting going)."""
CONTEXT_PAUSE_S = 1.5
"""A preamble sentence ends the turn after this much pause (the request usually follows)."""
UNSURE_PAUSE_S = 1.0
"""A statement the agent does not understand ends the turn after this much pause.

Above the longest pause between two sentences of one request: 0.66 s in the issue-15
development set's caller voices (slt, espeak en-gb-x-rp; most are 0.2-0.5 s).
"""
MISHEARD_PAUSE_S = 0.75
"""A statement the recogniser misheard ends the turn after this much pause.

Just above the longest pause between two sentences of one dev-set request (0.66 s) plus
the VAD's 0.064 s to hear the caller again. Ending such turns at once cut off callers whose
greeting was misheard ("Hey there." -> "Say there.", "Amen.", then the request: 2 of 262
dev calls), and waiting longer does not make misheard words understood.
"""
STATEMENT_PAUSE_S = 1.0
"""A sentence that tells rather than asks ends the turn after this much pause.

1.0 s, as ``UNSURE_QUESTION_PAUSE_S``: the bench's 0.6 s between sentences is 0.85-0.95 s
from the VAD's end of speech to its next start at the phone. The dev call bench (slt + rms,
262 calls, 5 Dec 2026) cut one caller off on such a sentence at 0.8 s and again at 0.9 s ("I
need a crown on my back tooth." | "Roughly what does that cost?" -> an emergency; the caller
was heard again 0.92 s after the end of the first sentence).

Above the understanding bench's 0.6 s between two sentences of a request plus the VAD's
0.064 s to hear the caller again (the answer hold's figure). The held-out call bench cut
callers off on such sentences ("My car broke down." -> an emergency hand-off). Offline on
the dev set's 28 sentence-boundary prefixes as the recogniser hears them
(``scripts/turn_prefixes.py --heard``), the turn would end inside the request on 10 -> 5
(slt) and 10 -> 4 (rms); what is left are questions the caller adds a reason to ("Is this
the vet? | My dog needs his shots.") and misheard words. The price: 9 (slt) and 13 (rms)
more of the 131 whole requests wait 0.8 s instead of about 0.4 s, mostly emergencies and
goodbyes (both irreversible: a hand-off, the call's end).
"""
UNSURE_QUESTION_PAUSE_S = 1.0
"""A yes/no question the agent does not understand ends the turn after this much pause.

Unheld, 6 of the 9 callers the dev call bench (slt + rms, clean, 262 calls) still cut off
had asked such a question and gone on ("Is this the vet? | My dog needs his shots.").
Offline (``scripts/turn_prefixes.py --heard``, dev set, 28 sentence-boundary prefixes) the
turn would end inside the request on 5 -> 1 (slt) and 4 -> 0 (rms). At 0.8 s (the
statement pause) a real call bench (dev set, slt, clean, 70 calls) still ended 2 of the 4
such turns 0.05 s before the caller was heard again: the bench's 0.6 s between sentences
is about 0.85 s from the VAD's end of speech to its next start. The price: 11 (slt) and
17 (rms) more of the dev set's 131 whole requests are held (out of scope, or in scope
below the act threshold: a clarification or a repair comes later); of ``bench latency``'s
185 questions 8 (slt) and 9 (rms) more, all misheard past understanding ("When do you
shout?"). Holding wh-questions too and ones after the caller's own sentence cost 22 and
27 whole requests, 15 and 13 latency questions, for no more prefixes held.
"""
GARBLED_PAUSE_S = 1.5
"""A statement the recogniser barely heard (noise, babble) ends the turn after this much pause.

In 10 dB babble the recogniser's confidence has a median of 0.41 and babble splits a
caller's speech; with these turns ending after ``MISHEARD_PAUSE_S`` the held-out babble run
cut off 17-22 % of callers, against 8 % with this 1.5 s hold.
"""
GARBLED_BELOW = 0.5
"""Recogniser confidence under which the words are garbled rather than misheard (the
router's unsure bar, ``CALLAGENT_ASR_UNSURE_CONFIDENCE``)."""


@dataclass
class TurnHoldPolicy:
    """How long a pause must last before a turn with given words may end.

    Parameters:
        understood: Whether the agent would act on the words outright (fast, thread-safe);
            None: every statement counts as understood (no ``unsure_pause_s`` wait).
        question_pending: Whether the bot's latest line asked a yes/no question.
        opener_pause_s: The pause after openers only.
        context_pause_s: The pause after a preamble sentence.
        statement_pause_s: The pause after a sentence that tells rather than asks.
        unsure_pause_s: The pause after a statement the agent does not understand.
        unsure_question_pause_s: The pause after a question the agent does not
            understand, heard clearly.
        misheard_pause_s: The pause after a statement the recogniser misheard.
        heard_clearly: The recogniser confidence (0-1) below which a statement the agent
            does not understand counts as misheard.
        garbled_pause_s: The pause after a statement the recogniser barely heard.
        garbled_below: The recogniser confidence below which a statement is garbled.
        answer: How long a bare yes or no to the bot's yes/no question waits.
        misheard_answer: Whether the words, misheard, are surely a question the agent only
            answers (fast, thread-safe); then a sentence that tells is not held: its form
            is the recogniser's, not the caller's. None: every such sentence is held.
    """

    understood: Callable[[str], bool] | None = None
    question_pending: Callable[[], bool] | None = None
    opener_pause_s: float = OPENER_PAUSE_S
    context_pause_s: float = CONTEXT_PAUSE_S
    statement_pause_s: float = STATEMENT_PAUSE_S
    unsure_pause_s: float = UNSURE_PAUSE_S
    unsure_question_pause_s: float = UNSURE_QUESTION_PAUSE_S
    misheard_pause_s: float = MISHEARD_PAUSE_S
    heard_clearly: float = HEARD_CLEARLY
    garbled_pause_s: float = GARBLED_PAUSE_S
    garbled_below: float = GARBLED_BELOW
    answer: AnswerHold = field(default_factory=HearAnswerOut)
    misheard_answer: Callable[[str], bool] | None = None

    def _asked(self) -> bool:
        return self.question_pending is not None and self.question_pending()

    def text_pause(self, text: str, *, over_bot: bool = False) -> float:
        """The least pause (s) after ``text`` for reasons of form alone (0: none).

        Args:
            text: The turn's words so far.
            over_bot: The turn started while the bot was speaking.
        """
        return self._form_pause(text, over_bot=over_bot) or self._telling_pause(text)

    def _form_pause(self, text: str, *, over_bot: bool) -> float:
        """Openers, a bare answer or a preamble: not yet a request whatever it reads as."""
        if not normalize_words(text):
            return 0.0
        if is_opener(text) and over_bot and is_backchannel(text):
            return 0.0  # "mhm" over the bot's reply: it goes on at once
        if (is_answer(text) or is_bare_yes_no(text)) and self._asked():
            # "yeah" to "Shall I book that?": an answer, perhaps with more to come
            return self.answer.pause(text)
        if is_opener(text):
            return self.opener_pause_s
        if reads_as_preamble(text):
            return self.context_pause_s
        if reads_as_check(text):
            return self.unsure_question_pause_s  # the request usually follows
        return 0.0

    def _telling_pause(self, text: str) -> float:
        """A statement that tells: the caller may go on to ask (see the module)."""
        if not reads_as_telling(text):
            return 0.0
        if self._asked():
            return 0.0  # "That works for me.", "I won't be able to make it.": an answer
        if (
            self.misheard_answer is not None
            and not tells_of_caller(text)
            and self.misheard_answer(text)
        ):
            # "Can I spread the cost?" heard "Canon, I spread the cost." at 0.63, read as the
            # payment plans at 0.95, waited the 1.0 s after it (bench latency); "Um, hi, I
            # don't have any dental coverage right now." (misheard, read as insurance) is the
            # caller's own telling and keeps its hold (dev call bench: cut off there)
            return 0.0
        return self.statement_pause_s

    def pause(self, text: str, *, over_bot: bool = False, confidence: float = 1.0) -> float:
        """The least pause (s) after ``text`` before the turn may end (0: none).

        May run the ``understood`` and ``misheard_answer`` checks: call it off the event loop.

        Args:
            text: The turn's words so far.
            over_bot: The turn started while the bot was speaking.
            confidence: How sure the recogniser was of the latest words (0-1; 1 when
                it does not say).
        """
        needed = self._form_pause(text, over_bot=over_bot)
        if needed or not normalize_words(text):
            return needed
        if self.understood is None or self.understood(text):
            return self._telling_pause(text)  # what it says may only set the scene
        if not is_statement(text):
            # "Is this the vet? | My dog needs his shots.": the reason may follow
            checks = opens_turn(text) and not asks_what(text)
            clearly = confidence >= self.heard_clearly
            if clearly and checks:
                return self.unsure_question_pause_s
            if opens_turn(text) and len(last_sentence(text).split()) < MIN_TELLING_WORDS:
                # a misheard opener reads as a short question ("So, uh," -> "Who? Who?"); a
                # repair can wait for the caller to go on
                return self._misheard_pause(confidence)
            return 0.0
        if confidence >= self.heard_clearly:
            return self.unsure_pause_s
        # A sentence that tells waits as long, misheard or not: "My cat hadn't eaten in two
        # days." heard at 0.749 ended after 0.75 s while the caller went on (held-out call bench).
        return max(self._misheard_pause(confidence), self._telling_pause(text))

    def _misheard_pause(self, confidence: float) -> float:
        return self.misheard_pause_s if confidence >= self.garbled_below else self.garbled_pause_s

    def is_fragment(self, text: str) -> bool:
        """Whether a finished turn was only the start of a request (openers, a preamble).

        A bare yes or no to a yes/no question counts too: the callee who pauses at the
        comma of "No, | I need to cancel it." longer than the answer hold goes on from it.
        May run the ``understood`` check: call it off the event loop.
        """
        if not normalize_words(text):
            return False
        if is_bare_yes_no(text):
            return True
        if is_opener(text) or reads_as_preamble(text) or reads_as_check(text):
            return not (is_answer(text) and self.question_pending and self.question_pending())
        return self.understood is not None and not self.understood(text)
