"""How a caller's words read to turn-taking: openers, answers, preambles, statements, questions.

Word lists and small predicates over a turn's text (lower-cased, punctuation kept where it
matters), used by :class:`~processors.turn_hold.TurnHoldPolicy` to choose how long a pause
must last, and by the action hold (``FILLERS``).
"""

from __future__ import annotations

import re

from processors.barge_in import normalize_words
from processors.bot_question import SENTENCE_END

FILLERS = frozenset(
    {"um", "umm", "uh", "uhh", "er", "erm", "ah", "eh", "hm", "hmm", "mm", "mhm", "oh"}
)
OPENER_WORDS = FILLERS | frozenset(
    {
        # greetings ("Hi," is often heard as "I," or "I'm," on the phone)
        "hi",
        "i",
        "im",
        "hello",
        "hey",
        "hiya",
        "there",
        "good",
        "morning",
        "afternoon",
        "evening",
        # discourse markers and backchannels
        "so",
        "well",
        "okay",
        "ok",
        "alright",
        "all",  # "All right," as the recogniser often writes it
        "right",
        "yeah",
        "yes",
        "yep",
        "yup",
        "no",
        "nope",
        "like",
        "and",
        "now",
        "anyway",
        # "Hi," at the start of a call is often heard as "Bye." (4 of 10 cut-offs in the
        # issue-15 dev run: "Bye. Is my karate yet?..."); a goodbye to the bot's "Anything
        # else?" is an answer and ends the turn at once (see ANSWER_WORDS)
        "bye",
    }
)
"""Words that, alone, open a turn without asking anything yet."""
MISHEARD_HI = frozenset({"i", "im"})
"""Openers only when alone: before other words they start the sentence ("I booked...")."""
ANSWER_WORDS = frozenset(
    {"yes", "yeah", "yep", "yup", "no", "nope", "sure", "okay", "ok", "alright", "right", "bye"}
)
"""Words that answer a yes/no question (then a turn of openers is an answer)."""
TRAILING_WORDS = frozenset(
    {"and", "but", "so", "because", "or", "then", "um", "uh", "er", "if"}
    # an article, a possessive or a title before the name the caller pauses on ("... seen
    # by Dr. | Patel on the fourteenth?": 3 of the dev set's 28 sentence-boundary prefixes)
    | {"the", "a", "an", "my", "your", "our", "his", "her", "their", "dr", "mr", "mrs", "ms"}
    # a preposition that needs its noun ("What part of | Springfield are you in?"); not "to",
    # "with" or "in", which end whole questions ("Who am I speaking to?")
    | {"of"}
    # a pronoun run into its verb, which never ends a sentence ("That's | no, thank you.":
    # the held-out call bench, 6 Dec 2026, acted on "That's" as a yes at 0.97; not "we're",
    # "I'll", "we'll", "I'd", "she'd", which the recogniser spells as words that can)
    | {"thats", "its", "im", "youre", "theyre", "theres", "hes", "shes", "whats", "ive"}
    | {"youve", "weve", "theyve", "youll", "theyll", "itll", "thatll", "youd", "theyd"}
)
"""A sentence that ends on one of these is not finished (apostrophes dropped)."""
MAX_OPENER_WORDS = 5

_PREAMBLE = re.compile(
    r"^(?:"
    r"(?:i m|im|i am|we re|we are) (?:calling|ringing|phoning)"
    r" (?:about|regarding|in regards? to|because|with a question|for)\b"
    r"|(?:(?:this|it) is|its|my name is|(?:i m|im|i am) [a-z]+ [a-z]+$)"
    # not when the question follows in the same breath ("Quick question, do you...?")
    r"|(?:(?:i|we) (?:have|had|ve got|got) (?:a|one|another|some) (?:quick )?questions?"
    r"|(?:a )?quick question)\b(?! (?:do|does|did|can|could|would|will|is|are|am|may|what|"
    r"when|where|which|who|why|how|whats|wheres)\b)"
    r"|(?:i|we) (?:booked|scheduled|made|set up|have|had|ve got|got)"
    r" (?:a|an|my|our|the)\b.*\b(?:appointment|checkup|check up|cleaning|visit|booking)\b"
    r"|(?:my|our) (?:appointment|checkup|check up|cleaning|visit|booking) (?:is|was)\b"
    r"|(?:i m|im|i am|we re|we are) (?:a |an )?(?:new|existing|current|regular) patients?\b"
    r"|(?:i|we) (?:was|were|m|am) (?:wondering|hoping|thinking)$"
    r")"
)
"""Sentences that set the scene for a request rather than make it."""
_CHECK_QUESTION = re.compile(
    r"^(?:is (?:this|that)|am i (?:speaking|talking) (?:to|with)|(?:have|did) i (?:reached|reach|"
    r"got|get|called|call))\b.*\b(?:office|clinic|practice|surgery|dentists?|dental|number)$"
)
"""A question whether the caller has reached the right place ("Is this Dr. Patel's office?")."""
_REQUEST_CUE = re.compile(
    r"\b(?:please|(?:like|love|want|need|have|going) to|wanna|gotta|need (?:help|someone|"
    r"somebody|a person|a human|a live|an appointment|another|a different)|wondering|"
    r"hoping|looking (?:for|to)|trying to|(?:can|could|would|will) you|let me|tell me|"
    r"help|not sure|dont know|rather|wish"
    # a question the recogniser wrote without its mark: "I'm new here can I join your practice"
    r"|(?:can|could|may|should|would|will|do|does) (?:i|we|you)"
    r")\b"
)
"""Words that make a statement a request ("I'd like to...", "... please", "I need to...").

Not a bare "need": "I need a crown on my back tooth." | "Roughly what does that cost?" and
"The treatment I need is pretty expensive." | "Is there a way to pay it off?" set the scene
(dev set), while "I need another day" asks.
"""
IMPERATIVES = frozenset(
    {"cancel", "book", "schedule", "reschedule", "move", "change", "switch", "connect"}
    | {"transfer", "put", "check", "give", "send", "make", "get", "call", "find"}
    | {"confirm", "look", "remind", "tell", "show", "text", "email", "add", "sign", "take"}
    | {"stop", "hold", "keep", "fit", "squeeze", "pencil"}
)
"""Verbs a request in the imperative starts with ("Cancel my appointment.", "Confirm my
appointment time.", "Look up my booking.")."""
MIN_TELLING_WORDS = 4
"""A statement shorter than this is a terse request ("Toothache, really bad.")."""


def is_opener(text: str) -> bool:
    """Whether the words are only fillers, greetings or backchannels ("Hi, um.", "Yeah.")."""
    tokens = normalize_words(text).split()
    return 0 < len(tokens) <= MAX_OPENER_WORDS and all(t in OPENER_WORDS for t in tokens)


def is_answer(text: str) -> bool:
    """Whether openers include a yes/no answer word ("Um, yeah." answers "Shall I book it?")."""
    return is_opener(text) and any(t in ANSWER_WORDS for t in normalize_words(text).split())


def last_sentence(text: str) -> str:
    """The caller's latest sentence, without the openers it starts with."""
    sentences = [s for s in SENTENCE_END.split(text.strip()) if normalize_words(s)]
    tokens = normalize_words(sentences[-1] if sentences else "").split()
    while tokens and tokens[0] in OPENER_WORDS - MISHEARD_HI:
        tokens.pop(0)
    return " ".join(tokens)


def opens_turn(text: str) -> bool:
    """Whether the latest sentence is the turn's first beyond openers ("Hi. Is this the vet?")."""
    sentences = [s for s in SENTENCE_END.split(text.strip()) if normalize_words(s)]
    return all(is_opener(s) for s in sentences[:-1])


def reads_as_preamble(text: str) -> bool:
    """Whether the latest sentence sets the scene ("I booked a checkup...") or trails off."""
    sentence = last_sentence(text)
    if not sentence:
        return False
    if sentence.split()[-1] in TRAILING_WORDS:
        return True
    return bool(_PREAMBLE.search(sentence))


def reads_as_check(text: str) -> bool:
    """Whether the latest sentence checks who answered ("Hi, is this the dental office?")."""
    return bool(_CHECK_QUESTION.search(last_sentence(text)))


def reads_as_telling(text: str) -> bool:
    """Whether the latest sentence tells rather than asks ("My car broke down.").

    A statement (no question mark, no question word first) of at least
    :data:`MIN_TELLING_WORDS` words with no request word in it (:data:`_REQUEST_CUE`), not
    in the imperative. A goodbye said so ("I think that covers it.") waits too: it ends the
    call, and the caller may be saying more first.
    """
    if not is_statement(text):
        return False
    sentence = last_sentence(text)
    words = sentence.split()
    return (
        len(words) >= MIN_TELLING_WORDS
        and words[0] not in IMPERATIVES
        and not _REQUEST_CUE.search(sentence)
    )


WH_STARTS = frozenset(
    {"what", "when", "where", "which", "who", "whom", "whose", "why", "how"}
    | {"whats", "wheres", "whens", "whos", "hows", "whys"}  # "Where's the building?"
)
"""A question starting so names what it asks for ("What are your prices?")."""
QUESTION_STARTS = WH_STARTS | frozenset(
    {"do", "does", "did", "can", "could", "would", "will", "is", "are", "am", "may"}
    | {"should", "shall", "have", "has"}
)
"""A sentence starting so is a question even when the recogniser wrote no question mark."""


def is_statement(text: str) -> bool:
    """Whether the words are not a question (no question mark, no question word first)."""
    if text.rstrip().endswith("?"):
        return False
    words = last_sentence(text).split()
    return not (words and words[0] in QUESTION_STARTS)


CALLER_WORDS = frozenset({"i", "im", "ive", "id", "ill", "my", "we", "our", "me"})
"""First-person words (as :func:`normalize_words` writes them: "I'm" -> "im")."""


def tells_of_caller(text: str) -> bool:
    """Whether the latest sentence opens on the caller ("I don't have any coverage.", "My ...").

    Misheard or not, such a sentence is the caller's own telling: a scene set before the
    question ("Um, hi, I don't have any dental coverage right now. | What would a cleaning
    run me?").
    """
    words = last_sentence(text).split()
    return bool(words) and words[0] in CALLER_WORDS


def asks_what(text: str) -> bool:
    """Whether the latest sentence is a question that names what it asks for ("When...?")."""
    words = last_sentence(text).split()
    return bool(words) and words[0] in WH_STARTS
