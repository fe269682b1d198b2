"""Built-in piano music for the synthetic piano dataset: generated performances, no downloads.

A performance is a list of key presses (:class:`~softloc.data.midi.Note`: key-down time,
key-up time, MIDI pitch, velocity) and sustain-pedal intervals. :func:`generate_performance`
writes one as a sequence of short sections (2-4 bars) in one key, each with one texture:

* **scales**: runs in 8ths, triplets or 16ths over 1-3 octaves, up, down or both, one hand or
  two hands in octaves, over a held bass;
* **arpeggios**: broken chords over 1-3 octaves in the right hand, a bass note per bar;
* **chords**: block chords of 3-4 notes (right hand) over bass octaves (left hand), in half
  notes, quarters or repeated 8ths;
* **melody with accompaniment**: a stepwise melody with leaps and rhythm patterns over an
  Alberti bass, an oom-pah (waltz in 3/4) or broken chords;
* **chorale**: four-voice chords on every beat;
* **figures**: trills and repeated notes.

Chords follow a random walk over the diatonic triads and sevenths of the key (major or harmonic
minor). Performance: tempo 56-160 BPM with a slow random drift and a ritardando at section ends,
phrase dynamics (crescendo or diminuendo over a section, accents on downbeats, jitter), chord
asynchrony and timing jitter of a few ms, legato or staccato articulation, and a legato
("syncopated") sustain pedal in about half of the sections. Registers are drawn per section so
that, over a few minutes, every key from A0 (21) to C8 (108) is played.

Two presses of one key closer than :data:`MIN_REPEAT_S` are merged (the later is dropped; a
piano key cannot be struck again that fast, and the ±50 ms evaluation could not tell them apart),
and a key is released before it is struck again. Everything is a deterministic function of the
``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from softloc.data.midi import Note

__all__ = [
    "MIN_REPEAT_S",
    "Performance",
    "excerpt",
    "generate_performance",
    "sounding_notes",
]

#: Two presses of one key at least this far apart (seconds); closer ones are merged.
MIN_REPEAT_S = 0.08
_LOW, _HIGH = 21, 108
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 11)  # harmonic minor
# Chord-degree random walk (0-based scale degrees): likely next chords of each degree.
_NEXT = {0: (3, 4, 5, 1, 0), 1: (4, 6, 4), 2: (5, 3), 3: (4, 0, 1, 6), 4: (0, 5, 0, 3),
         5: (1, 3, 4), 6: (0, 4)}  # fmt: skip
_TEXTURES = ("scale", "arpeggio", "chords", "melody", "chorale", "figure")
_TEXTURE_P = (0.18, 0.2, 0.17, 0.3, 0.1, 0.05)


@dataclass(frozen=True)
class Performance:
    """Key presses and pedal of one piece of music.

    Attributes:
        notes: key presses sorted by (onset, pitch); ``offset_s`` is the key release.
        sustain_s: sustain-pedal intervals ``(down_s, up_s)``, sorted and disjoint.
        duration_s: length of the piece in seconds (audio is rendered this long).
    """

    notes: list[Note]
    sustain_s: list[tuple[float, float]]
    duration_s: float


class _Clock:
    """Beats -> seconds under a drifting tempo (a piecewise-linear map, one segment per beat)."""

    def __init__(self, rng: np.random.Generator, bpm: float, n_beats: int) -> None:
        drift = np.cumsum(rng.normal(0.0, 0.012, n_beats))
        drift -= np.linspace(0.0, drift[-1], n_beats) * rng.uniform(0.0, 1.0)
        factor = np.clip(np.exp(drift), 0.85, 1.18)
        self.beat_s = 60.0 / bpm / factor  # seconds per beat, per beat
        self.start_s = np.concatenate([[0.0], np.cumsum(self.beat_s)])

    def slow_down(self, first_beat: int, n_beats: int, amount: float) -> None:
        """Ritardando: the beats ``[first_beat, first_beat + n_beats)`` up to ``amount`` longer."""
        stop = min(first_beat + n_beats, self.beat_s.size)
        if stop <= first_beat:
            return
        self.beat_s[first_beat:stop] *= 1.0 + amount * np.linspace(0.2, 1.0, stop - first_beat)
        self.start_s = np.concatenate([[0.0], np.cumsum(self.beat_s)])

    def time(self, beat: float) -> float:
        i = int(min(max(np.floor(beat), 0), self.beat_s.size - 1))
        return float(self.start_s[i] + (beat - i) * self.beat_s[i])


def _fold(pitch: int, low: int = _LOW, high: int = _HIGH) -> int:
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def _scale_pitches(tonic: int, mode: Sequence[int]) -> np.ndarray:
    """Every MIDI pitch of the key in 0..127, ascending."""
    pcs = {(tonic + m) % 12 for m in mode}
    return np.array([p for p in range(128) if p % 12 in pcs])


def _chord(tonic: int, mode: Sequence[int], degree: int, seventh: bool) -> list[int]:
    """Pitch classes (0-11) of the chord on a scale degree: root, third, fifth (, seventh)."""
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    return [(tonic + mode[(degree + s) % 7]) % 12 for s in steps]


def _voicing(pcs: Sequence[int], around: int, n: int) -> list[int]:
    """``n`` chord tones in close position starting near ``around``."""
    out: list[int] = []
    p = around
    while len(out) < n:
        if p % 12 in pcs:
            out.append(p)
        p += 1
    return [_fold(x) for x in out]


def _nearest(scale: np.ndarray, pitch: float) -> int:
    return int(scale[np.argmin(np.abs(scale - pitch))])


class _Writer:
    """Collects notes of a section in beats; converts them to seconds with humanisation."""

    def __init__(self, rng, clock: _Clock, v_start: float, v_end: float, beats_per_bar: int,
                 b0: float, b1: float, legato: float) -> None:
        self.rng, self.clock, self.bpb = rng, clock, beats_per_bar
        self.v_start, self.v_end, self.b0, self.b1 = v_start, v_end, b0, b1
        self.legato = legato
        self.notes: list[Note] = []

    def add(self, beat: float, length_beats: float, pitches: Sequence[int], *,
            hand: str = "right", accent: float = 0.0) -> None:
        rng = self.rng
        frac = (beat - self.b0) / max(self.b1 - self.b0, 1e-9)
        vel = self.v_start + (self.v_end - self.v_start) * frac + accent
        if abs((beat - self.b0) % self.bpb) < 1e-6:  # downbeat
            vel += 7.0
        if hand == "left":
            vel -= 8.0
        t = self.clock.time(beat) + rng.normal(0.0, 0.006)
        end = self.clock.time(beat + length_beats * self.legato)
        spread = rng.uniform(0.0, 0.02) if len(pitches) > 1 else 0.0
        for k, p in enumerate(sorted(pitches)):
            on = max(0.0, t + (rng.uniform(0.0, spread) if k else 0.0))
            v = int(np.clip(round(vel + rng.normal(0.0, 6.0)), 12, 127))
            self.notes.append(Note(on, max(on + 0.03, end + rng.normal(0.0, 0.01)),
                                   _fold(int(p)), v))


def _section(rng, w: _Writer, texture: str, key, chords, b0: float, bars: int) -> None:
    """Write ``bars`` bars of one texture from beat ``b0`` (one chord per bar)."""
    tonic, mode, scale = key
    bpb = w.bpb
    lo_c = int(rng.integers(24, 56))  # bass register
    hi_c = int(rng.integers(52, 100))  # melody / right-hand register
    sub = int(rng.choice([2, 3, 4]))  # notes per beat of runs and arpeggios
    step = float(rng.choice([0.5, 1.0, 2.0]))  # chord repetition in beats
    two_hands = rng.random() < 0.35
    direction = int(rng.choice([1, -1]))
    idx = int(np.searchsorted(scale, hi_c - 12))
    span = int(rng.integers(1, 4))
    trill = rng.random() < 0.6
    accomp = str(rng.choice(["alberti", "oompah", "broken"]))
    mel = _nearest(scale, hi_c)
    for bar in range(bars):
        beat0 = b0 + bar * bpb
        pcs = chords[bar]
        bass = _fold(_voicing(pcs, lo_c, 1)[0], 21, 72)
        if texture == "scale":
            for k in range(bpb * sub):
                idx += direction
                if not 0 <= idx < scale.size or not _LOW + 12 <= scale[idx] < _HIGH or \
                        rng.random() < 0.04:
                    direction = -direction
                    idx = int(np.clip(idx + 2 * direction, 0, scale.size - 1))
                p = int(scale[idx])
                w.add(beat0 + k / sub, 1.0 / sub, [p, p - 12] if two_hands else [p])
            w.add(beat0, bpb, [bass], hand="left")
        elif texture == "arpeggio":
            tones = _voicing(pcs, hi_c - 12, 3 * span + 1)
            seq = tones + tones[-2:0:-1] if span > 1 or rng.random() < 0.6 else tones
            for k in range(bpb * sub):
                w.add(beat0 + k / sub, 1.5 / sub, [seq[k % len(seq)]])
            w.add(beat0, bpb, [bass, bass + 12 if bass + 12 <= 72 else bass], hand="left")
        elif texture == "chords":
            voicing = _voicing(pcs, hi_c - 5, int(rng.integers(3, 5)))
            for k in np.arange(0.0, bpb, step):
                w.add(beat0 + k, step, voicing, accent=4.0 if k == 0 else 0.0)
            w.add(beat0, bpb, [bass, bass - 12 if bass - 12 >= _LOW else bass], hand="left")
        elif texture == "chorale":
            for k in range(bpb):
                pcs_k = pcs if k < bpb // 2 else chords[bar + 1]
                upper = _voicing(pcs_k, hi_c - 7, 3)
                w.add(beat0 + k, 1.0, [*upper, _fold(_voicing(pcs_k, lo_c, 1)[0], 21, 72)])
        elif texture == "figure":
            p = _nearest(scale, hi_c)
            q = int(scale[min(np.searchsorted(scale, p) + 1, scale.size - 1)])
            for k in range(bpb * sub):
                w.add(beat0 + k / sub, 1.0 / sub, [q if trill and k % 2 else p])
            w.add(beat0, bpb, _voicing(pcs, lo_c, 3), hand="left")
        else:  # melody with accompaniment
            mel = _melody_bar(rng, w, scale, pcs, beat0, mel)
            _accompaniment(w, accomp, bass, _voicing(pcs, max(lo_c, 33), 3), beat0)


def _melody_bar(rng, w: _Writer, scale: np.ndarray, pcs, beat0: float, mel: int) -> int:
    bpb = w.bpb
    rhythm = [[1.0] * bpb, [0.5, 0.5] * bpb, [1.5, 0.5] + [1.0] * (bpb - 2),
              [2.0] + [1.0] * (bpb - 2), [0.5] * (2 * bpb - 2) + [1.0]][int(rng.integers(5))]
    pos = 0.0
    for dur in rhythm:
        idx = int(np.searchsorted(scale, mel))
        idx = int(np.clip(idx + int(rng.choice([-2, -1, -1, 1, 1, 2, 0, -4, 3, 5])), 0,
                          scale.size - 1))
        mel = int(np.clip(scale[idx], 40, 105))
        if rng.random() < 0.5:  # lean towards chord tones
            mel = _nearest(np.array(_voicing(pcs, mel - 6, 4)), mel)
        w.add(beat0 + pos, dur, [mel], accent=5.0)
        pos += dur
    return mel


def _accompaniment(w: _Writer, kind: str, bass: int, tones: list[int], beat0: float) -> None:
    bpb = w.bpb
    if kind == "alberti":
        for k, j in enumerate([0, 2, 1, 2] * bpb):
            if k / 2 < bpb:
                w.add(beat0 + k / 2, 0.5, [tones[j]], hand="left")
    elif kind == "oompah":
        w.add(beat0, 1.0, [bass], hand="left")
        for k in range(1, bpb):
            w.add(beat0 + k, 0.7, tones[1:], hand="left")
    else:
        for k in range(2 * bpb):
            w.add(beat0 + k / 2, 1.0, [([bass] + tones)[k % 4]], hand="left")


def generate_performance(rng: np.random.Generator, duration_s: float) -> Performance:
    """A generated piano performance of ``duration_s`` seconds (see the module docstring).

    Args:
        rng: the random generator (everything is drawn from it).
        duration_s: length of the piece; notes start in ``[0.05 s, duration_s - 0.3 s)``.

    Returns:
        a :class:`Performance`.

    Raises:
        ValueError: ``duration_s < 1``.
    """
    if not duration_s >= 1.0:
        raise ValueError(f"generate_performance: `duration_s` must be >= 1 second, "
                         f"got {duration_s}")
    bpm = float(rng.uniform(56, 160))
    bpb = 3 if rng.random() < 0.25 else 4
    n_beats = int(duration_s * 160 / 60 / 0.85) + 16
    clock = _Clock(rng, bpm, n_beats)
    mode = _MAJOR if rng.random() < 0.6 else _MINOR
    tonic = int(rng.integers(12))
    key = (tonic, mode, _scale_pitches(tonic, mode))
    lead_beats = float(rng.uniform(0.0, 1.0))
    notes: list[Note] = []
    pedal: list[tuple[float, float]] = []
    bar = 0
    degree = 0
    while True:
        bars = int(rng.integers(2, 5))
        b0 = bar * bpb
        if clock.time(b0 + lead_beats) > duration_s - 0.5:
            break
        clock.slow_down(b0 + (bars - 1) * bpb, bpb, float(rng.uniform(0.0, 0.25)))
        chords = []
        for _ in range(bars + 1):
            chords.append(_chord(tonic, mode, degree, seventh=rng.random() < 0.25))
            degree = int(rng.choice(_NEXT[degree]))
        texture = str(rng.choice(_TEXTURES, p=_TEXTURE_P))
        v0 = float(rng.uniform(35, 105))
        v1 = float(np.clip(v0 + rng.normal(0, 18), 25, 120))
        legato = float(rng.choice([0.45, 0.95, 1.0]) if texture != "chorale" else 1.0)
        start = b0 + lead_beats
        w = _Writer(rng, clock, v0, v1, bpb, start, start + bars * bpb, legato)
        _section(rng, w, texture, key, chords, start, bars)
        notes.extend(w.notes)
        if texture in ("arpeggio", "chords", "chorale", "melody") and rng.random() < 0.55:
            for k in range(bars):
                down = clock.time(start + k * bpb) + rng.uniform(0.03, 0.09)
                up = clock.time(start + (k + 1) * bpb) - rng.uniform(0.02, 0.06)
                if up > down:
                    pedal.append((down, up))
        bar += bars
    kept = [n for n in notes if 0.05 <= n.onset_s < duration_s - 0.3]
    kept = _clean(kept, duration_s)
    pedal = [(a, min(b, duration_s)) for a, b in pedal if a < duration_s - 0.1]
    return Performance(notes=kept, sustain_s=pedal, duration_s=float(duration_s))


def _clean(notes: list[Note], duration_s: float) -> list[Note]:
    """Merge presses of one key closer than MIN_REPEAT_S; release a key before its next press."""
    by_pitch: dict[int, list[Note]] = {}
    for n in sorted(notes, key=lambda n: (n.onset_s, n.pitch)):
        same = by_pitch.setdefault(n.pitch, [])
        if same and n.onset_s - same[-1].onset_s < MIN_REPEAT_S:
            continue
        same.append(n)
    out = []
    for same in by_pitch.values():
        for k, n in enumerate(same):
            off = min(n.offset_s, duration_s)
            if k + 1 < len(same):
                off = min(off, same[k + 1].onset_s - 0.01)
            out.append(Note(float(n.onset_s), float(max(off, n.onset_s + 0.02)), n.pitch,
                            n.velocity))
    return sorted(out, key=lambda n: (n.onset_s, n.pitch))


def sounding_notes(notes: Sequence[Note], sustain_s: Sequence[tuple[float, float]]
                   ) -> list[Note]:
    """Notes with their offsets moved to when the SOUND is damped under the sustain pedal.

    A key released while the pedal is down keeps sounding until the pedal comes up; a key struck
    again cuts its previous note (the damper falls and the hammer strikes the same string). What
    a synthesizer must play when it does not implement the pedal itself.

    Args:
        notes: key presses (``offset_s`` = key release).
        sustain_s: pedal intervals ``(down_s, up_s)``.

    Returns:
        notes sorted by (onset, pitch), ``offset_s`` = end of sound.
    """
    downs = np.array([a for a, _ in sustain_s], dtype=np.float64)
    ups = np.array([b for _, b in sustain_s], dtype=np.float64)
    by_pitch: dict[int, list[Note]] = {}
    for n in sorted(notes, key=lambda n: (n.onset_s, n.pitch)):
        by_pitch.setdefault(n.pitch, []).append(n)
    out = []
    for same in by_pitch.values():
        for k, n in enumerate(same):
            off = n.offset_s
            i = int(np.searchsorted(downs, off, side="right")) - 1
            if i >= 0 and ups[i] > off:
                off = ups[i]
            if k + 1 < len(same):
                off = min(off, same[k + 1].onset_s)
            out.append(Note(n.onset_s, max(off, n.onset_s), n.pitch, n.velocity))
    return sorted(out, key=lambda n: (n.onset_s, n.pitch))


def excerpt(notes: Sequence[Note], sustain_s: Sequence[tuple[float, float]], start_s: float,
            duration_s: float) -> Performance:
    """The part of a performance in ``[start_s, start_s + duration_s)``, re-timed to start at 0.

    Notes pressed before ``start_s`` are left out (their sound began earlier); notes pressed in
    the excerpt keep their release, cut at its end; pedal intervals are clipped to it.
    """
    end_s = start_s + duration_s
    kept = [Note(n.onset_s - start_s, min(n.offset_s, end_s) - start_s, n.pitch, n.velocity)
            for n in notes if start_s <= n.onset_s < end_s]
    pedal = [(max(a, start_s) - start_s, min(b, end_s) - start_s) for a, b in sustain_s
             if b > start_s and a < end_s]
    return Performance(notes=sorted(kept, key=lambda n: (n.onset_s, n.pitch)),
                       sustain_s=[(a, b) for a, b in pedal if b > a], duration_s=duration_s)
