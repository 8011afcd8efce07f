"""The held-out answer set for ``callagent bench amd``: nothing the detector was tuned on.

Other hellos, voicemail greetings, carrier messages and IVR menus than
:data:`simulator.bench.amd_answers.TUNING`, other voices (flite ``kal16``; espeak-ng's
Scottish, Caribbean, received-pronunciation and klatt variants), other noise levels and
beep tones. Measured with another seed (``--seed 1017`` by default in the full-path
bench), so the figures are not those of the set the thresholds were chosen on.
"""

from __future__ import annotations

from simulator.bench.amd_answers import Phrasing
from simulator.voices.noise import NoiseSpec

HELD_OUT = Phrasing(
    "held-out",
    short_hellos=("Hello there?", "Yep?", "Hallo?", "Mm, hello?", "Yes, hello.", "Hey."),
    long_hellos=(
        "Hello, this is Sam, who am I speaking with?",
        "Hi there, Laura here.",
        "Yes, good afternoon, Carter residence.",
        "Hello? Sorry, I was driving.",
        "Hey, what's up?",
        "Hello, Ben speaking, how can I help?",
    ),
    personal=(
        "Hi, this is Olivia. I'm not around at the moment, so leave your name and number "
        "and I'll call you back.",
        "You've got Mike. Can't talk right now. Leave a message.",
        "Hello, you have reached Linda and Robert. We are unable to come to the phone. "
        "Please leave a message after the beep.",
        "Hey, it's Chris, I'm probably out on a run. Drop me a message and I'll get back "
        "to you soon.",
        "Hi, Emma here. I'm in a meeting, please leave a short message.",
    ),
    carrier=(
        "Please leave a message for five five five, zero one two three. When you are "
        "finished, hang up, or press pound for more options.",
        "The wireless customer you are calling is not available. Please try your call again later.",
        "Sorry, the mailbox of the person you are calling is not set up yet. Goodbye.",
        "Record your message after the tone. When you are done, simply hang up.",
    ),
    ivr=(
        "Hello, and thank you for calling Green Valley Pharmacy. To refill a prescription, "
        "press one. To speak to a pharmacist, press two.",
        "You have reached the offices of Miller and Sons. If you know your party's "
        "extension, you may dial it at any time.",
        "Welcome to Northside Clinic. Please hold while we connect your call. Your call "
        "is important to us.",
    ),
    voices=(
        "kal16",
        "espeak:en-gb-scotland",
        "espeak:en-029",
        "espeak:en-us+f2",
        "espeak:en-gb-x-rp+f4",
        "espeak:en-us+m5",
        "espeak:en-us+klatt2",
    ),
    noises=(
        NoiseSpec("babble", 12.0),
        NoiseSpec("pink", 10.0),
        NoiseSpec("white", 15.0),
        NoiseSpec("babble", 18.0),
    ),
    beep_hz=(600.0, 950.0, 1200.0, 1700.0),
)
"""Answers unlike the tuning set's (see the module's docstring)."""
