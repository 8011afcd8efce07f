"""Hears an answering machine's beep: a near-pure tone held for a moment.

A voicemail beep is one sine tone (usually 400-2500 Hz, often 1 kHz) for 0.2-1.5 s. Speech
is not: even a held vowel spreads its energy over a ladder of harmonics whose pitch
drifts, and hold music plays chords and notes rich in overtones. So a 20 ms hop counts as
*tonal* when, over a 40 ms Hann window,

- it is loud enough (``min_level_db`` dBFS),
- its strongest spectral peak lies inside ``band_hz``,
- at least ``min_concentration`` of the window's energy lies within ``peak_width_hz`` of
  that peak (a pure tone: about 0.99; a vowel: 0.2-0.6; white noise at 10 dB below a tone
  still leaves about 0.9), and
- the peak holds its frequency (within ``max_drift_hz`` of the previous hop).

A run of tonal hops of at least ``min_secs`` is a beep; it ends at the first hop that is
not tonal (one stray hop is forgiven). numpy only; PCM16 mono at 8 or 16 kHz, fed in
chunks of any size (typically 20 ms); times are seconds of audio fed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOP_SECS = 0.02
WINDOW_SECS = 0.04
FFT_SIZE = 2048


@dataclass(frozen=True)
class Beep:
    """One tone heard.

    Parameters:
        start_s: Where it began (seconds of audio fed).
        end_s: Where it ended.
        freq_hz: Its frequency (median over its hops).
    """

    start_s: float
    end_s: float
    freq_hz: float

    @property
    def duration_s(self) -> float:
        """How long the tone lasted."""
        return self.end_s - self.start_s


class BeepDetector:
    """Streaming beep detector: feed PCM, get the beeps that ended.

    Args:
        sample_rate: 8000 or 16000.
        min_secs: Shortest tone that counts as a beep.
        band_hz: Where a beep's frequency may lie.
        min_concentration: Share of a window's energy that must lie at its peak.
        peak_width_hz: Half-width of the band around the peak counted as "at the peak".
        max_drift_hz: How far the peak may move from one hop to the next.
        min_level_db: Quietest window (dBFS) that can be a tone.
    """

    def __init__(
        self,
        sample_rate: int,
        *,
        min_secs: float = 0.15,
        band_hz: tuple[float, float] = (400.0, 2500.0),
        min_concentration: float = 0.7,
        peak_width_hz: float = 70.0,
        max_drift_hz: float = 15.0,
        min_level_db: float = -45.0,
    ):
        if sample_rate not in (8000, 16000):
            raise ValueError("the beep detector takes 8 or 16 kHz audio")
        self._rate = sample_rate
        self._hop = int(sample_rate * HOP_SECS)
        self._window_len = int(sample_rate * WINDOW_SECS)
        self._window = np.hanning(self._window_len).astype(np.float64)
        self._freqs = np.fft.rfftfreq(FFT_SIZE, 1.0 / sample_rate)
        self._band = band_hz
        self._min_concentration = min_concentration
        self._width = peak_width_hz
        self._drift = max_drift_hz
        self._min_hops = max(1, round(min_secs / HOP_SECS))
        # mean square of a full-scale int16 sine at min_level_db, times the window's energy
        self._min_power = (10 ** (min_level_db / 10.0)) * 32768.0**2
        self._buffer = np.zeros(0, dtype=np.float64)
        self._hops_done = 0  # hops analysed so far
        self._run: list[float] = []  # peak frequencies of the current tonal run
        self._run_start = 0
        self._misses = 0
        self._last_tonal_hop: int | None = None

    @property
    def now_s(self) -> float:
        """Seconds of audio analysed so far."""
        return self._hops_done * HOP_SECS

    @property
    def in_tone(self) -> bool:
        """A tone long enough to be a beep is sounding now."""
        return len(self._run) >= self._min_hops and self._misses == 0

    @property
    def last_tonal_s(self) -> float | None:
        """Where the last tonal hop (beep or not yet) ended; None: no tone heard yet."""
        if self._last_tonal_hop is None:
            return None
        return (self._last_tonal_hop + 1) * HOP_SECS + WINDOW_SECS / 2

    def feed(self, pcm16: bytes) -> list[Beep]:
        """Analyse more audio; the beeps that ended in it, oldest first."""
        usable = len(pcm16) - len(pcm16) % 2
        samples = np.frombuffer(pcm16[:usable], dtype="<i2").astype(np.float64)
        self._buffer = np.concatenate([self._buffer, samples])
        ended: list[Beep] = []
        while self._buffer.size >= self._window_len:
            beep = self._step(self._buffer[: self._window_len])
            self._buffer = self._buffer[self._hop :]
            if beep is not None:
                ended.append(beep)
        return ended

    def flush(self) -> list[Beep]:
        """End of the audio: a tone still sounding ends here."""
        beep = self._close(self._hops_done)
        return [beep] if beep is not None else []

    def tonal_peak(self, window: np.ndarray) -> float | None:
        """The frequency of a window's pure tone, or None when it is not one."""
        power = float(np.mean(window * window))
        if power < self._min_power:
            return None
        spectrum = np.abs(np.fft.rfft(window * self._window, FFT_SIZE)) ** 2
        total = float(spectrum.sum())
        if total <= 0:
            return None
        peak_bin = int(np.argmax(spectrum))
        peak = float(self._freqs[peak_bin])
        if not self._band[0] <= peak <= self._band[1]:
            return None
        near = np.abs(self._freqs - peak) <= self._width
        if float(spectrum[near].sum()) / total < self._min_concentration:
            return None
        return peak

    def _step(self, window: np.ndarray) -> Beep | None:
        hop = self._hops_done
        self._hops_done += 1
        peak = self.tonal_peak(window)
        if peak is not None:
            self._last_tonal_hop = hop
        steady = peak is not None and (
            not self._run or abs(peak - float(np.median(self._run[-3:]))) <= self._drift
        )
        if peak is not None and steady:
            if not self._run:
                self._run_start = hop
            self._run.append(peak)
            self._misses = 0
            return None
        if self._run and self._misses == 0 and len(self._run) >= 2:
            self._misses = 1  # one stray hop inside a tone is forgiven
            return None
        beep = self._close(hop - self._misses)
        if peak is not None:  # a new tone at another pitch starts here
            self._run_start = hop
            self._run = [peak]
        return beep

    def _close(self, end_hop: int) -> Beep | None:
        run, self._run, self._misses = self._run, [], 0
        if len(run) < self._min_hops:
            return None
        # a hop's window reaches one window past its start: the tone ends where the
        # last tonal window's audio does, less the half window still rising into it
        start = self._run_start * HOP_SECS + WINDOW_SECS / 2
        end = end_hop * HOP_SECS + WINDOW_SECS / 2
        return Beep(start_s=round(start, 3), end_s=round(end, 3), freq_hz=float(np.median(run)))
