"""SoundFont pianos: finding SoundFonts, rendering notes, and where each note's sound starts.

* :func:`discover_soundfonts`: the ``.sf2``/``.sf3`` files of the Debian/Ubuntu SoundFont
  folders (:data:`SOUNDFONT_DIRS`), never one reserved for evaluation (the one hold-out list of
  :func:`softloc.data.generators.kits.is_evaluation_holdout`, matched on the file name and on the
  name a link resolves to: the fluidr3mono package installs an alternatives alias under a
  reserved name); :func:`soundfont_family` groups fonts that share
  their samples.
* :class:`TinySoundFontRenderer`: the default :class:`PianoRenderer`, tinysoundfont playing one
  General-MIDI program (bank 0) of a font, sample-accurately (a note starts at
  ``round(onset_s * sample_rate)``; a piece renders as the sum of its notes played alone).
* :func:`measure_sound_onset` and :func:`onset_delay_table`: the delay from note-on to the start
  of the sound, measured on the isolated note for every pitch and velocity of an instrument and
  cached on disk. A note's sound starts when its envelope (RMS over :data:`ENVELOPE_S`, centred)
  first reaches :data:`ONSET_THRESHOLD_DB` below its peak.

Nothing here refers to pretty_midi's bundled SoundFont.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from softloc._io import atomic_write_text
from softloc.data.generators.kits import is_evaluation_holdout
from softloc.data.midi import PIANO_PITCHES, Note

__all__ = [
    "ENVELOPE_S",
    "Instrument",
    "ONSET_THRESHOLD_DB",
    "OnsetTable",
    "PianoRenderer",
    "SOUNDFONT_DIRS",
    "TABLE_VELOCITIES",
    "TinySoundFontRenderer",
    "discover_soundfonts",
    "is_reserved_soundfont",
    "measure_sound_onset",
    "onset_delay_table",
    "soundfont_family",
]

#: Folders searched by :func:`discover_soundfonts` (Debian/Ubuntu SoundFont packages).
SOUNDFONT_DIRS: tuple[str, ...] = ("/usr/share/sounds/sf2", "/usr/share/sounds/sf3",
                                   "/usr/share/soundfonts")
#: Velocities at which onset delays are measured; a note uses the nearest.
TABLE_VELOCITIES: tuple[int, ...] = (8, 24, 40, 56, 72, 88, 104, 120)
#: Sound onset: the envelope first reaches this level relative to its peak (dB of amplitude).
ONSET_THRESHOLD_DB = -20.0
#: Length of the centred RMS window of the onset envelope, in seconds.
ENVELOPE_S = 0.001

_LEAD_S = 0.02  # silence before an isolated note
_ISOLATED_S = 0.3  # rendered after its note-on (the attack peaks well before)


class Instrument(NamedTuple):
    """A piano sound: a SoundFont file and a General-MIDI program (bank 0)."""

    soundfont: str
    program: int
    name: str = ""


class PianoRenderer(Protocol):
    """What renders notes to audio (the default is :class:`TinySoundFontRenderer`).

    ``cache_id`` names the renderer and its version for the onset cache (``None``: never
    cached). ``programs(soundfont)`` maps the bank-0 programs a font has to their names.
    ``render(notes, ...)`` returns mono float32 audio of ``round(duration_s * sample_rate)``
    samples in which each note sounds from ``onset_s`` to ``offset_s`` (the end of its sound:
    pedal already applied, see :func:`~softloc.data.generators.piano_music.sounding_notes`).
    """

    cache_id: str | None

    def programs(self, soundfont: str) -> dict[int, str]: ...

    def render(self, notes: Sequence[Note], *, instrument: Instrument, duration_s: float,
               sample_rate: int) -> np.ndarray: ...


# ----------------------------------------------------------------------------- SoundFonts

def is_reserved_soundfont(path: str | os.PathLike) -> bool:
    """Whether ``path`` (or the file a link resolves to) is a SoundFont reserved for independent
    evaluation (:func:`~softloc.data.generators.kits.is_evaluation_holdout`, the hold-out list
    the drum kits use too; its names are not written in the code)."""
    p = Path(path)
    names = {p.name}
    try:
        names.add(p.resolve().name)
    except OSError:
        pass
    return is_evaluation_holdout(*names)


def discover_soundfonts(dirs: Sequence[str | os.PathLike] = SOUNDFONT_DIRS) -> list[Path]:
    """The ``.sf2``/``.sf3`` files in ``dirs`` (not recursive), reserved fonts excluded.

    Links are resolved and each file is returned once (the resolved path), sorted by name.
    Whether a font has piano programs is checked later (:func:`plan_instruments`).
    """
    found: dict[Path, Path] = {}
    for d in dirs:
        folder = Path(d)
        if not folder.is_dir():
            continue
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() not in (".sf2", ".sf3") or is_reserved_soundfont(p):
                continue
            try:
                real = p.resolve(strict=True)
            except (OSError, RuntimeError):
                continue
            if real.is_file():
                found.setdefault(real, real)
    return sorted(found, key=lambda p: (p.name.lower(), str(p)))


def soundfont_family(path: str | os.PathLike) -> str:
    """Family of a SoundFont: its name without suffix, ``mono``, ``gm``/``gs`` tokens and
    separators, lower case. Fonts of one family are assumed to share their samples.

    Example:
        >>> soundfont_family("/x/FluidR3_GM.sf2") == soundfont_family("FluidR3Mono_GM.sf3")
        True
        >>> soundfont_family("sf_GMbank.sf2")
        'sfgmbank'
    """
    stem = Path(path).stem.lower()
    stem = re.sub(r"mono", "", stem)
    stem = re.sub(r"[_\-\s.](gm|gs)$", "", stem)
    return re.sub(r"[\s_.\-]", "", stem)


class TinySoundFontRenderer:
    """Renders notes with tinysoundfont (one synthesizer per SoundFont, kept loaded).

    Args:
        sample_rate: output rate in Hz (default 44100).
        max_voices: polyphony per SoundFont (default 256).
    """

    def __init__(self, sample_rate: int = 44100, *, max_voices: int = 256) -> None:
        import tinysoundfont  # local: an optional dependency of data generation only

        self._tsf = tinysoundfont
        self.sample_rate = int(sample_rate)
        self.max_voices = int(max_voices)
        self._synths: dict[str, tuple[object, int]] = {}
        version = getattr(tinysoundfont, "__version__", "")
        self.cache_id: str | None = f"tinysoundfont{version}"

    def _synth(self, soundfont: str):
        if soundfont not in self._synths:
            synth = self._tsf.Synth(samplerate=self.sample_rate)
            try:
                sfid = synth.sfload(soundfont, max_voices=self.max_voices)
            except Exception as err:  # tinysoundfont raises a bare Exception on bad files
                raise ValueError(f"{soundfont}: cannot load SoundFont ({err})") from None
            self._synths[soundfont] = (synth, sfid)
        return self._synths[soundfont]

    def programs(self, soundfont: str) -> dict[int, str]:
        synth, sfid = self._synth(soundfont)
        out = {}
        for program in range(128):
            try:
                name = synth.sfpreset_name(sfid, 0, program)
            except Exception:  # noqa: BLE001 - no such preset
                name = None
            if name:
                out[program] = str(name)
        return out

    def render(self, notes: Sequence[Note], *, instrument: Instrument, duration_s: float,
               sample_rate: int) -> np.ndarray:
        if sample_rate != self.sample_rate:
            raise ValueError(f"TinySoundFontRenderer.render: built for {self.sample_rate} Hz, "
                             f"asked for {sample_rate} Hz")
        synth, sfid = self._synth(instrument.soundfont)
        sr = self.sample_rate
        synth.sounds_off()
        self._generate(synth, int(0.05 * sr))  # let released voices die out (fast release)
        synth.program_select(0, sfid, 0, int(instrument.program))
        events = sorted([(n.onset_s, 1, n.pitch, n.velocity or 80) for n in notes]
                        + [(n.offset_s, 0, n.pitch, 0) for n in notes])  # offs before ons
        total = int(round(duration_s * sr))
        out = np.zeros(total, dtype=np.float32)
        pos = 0
        for t, on, pitch, velocity in events:
            i = min(int(round(t * sr)), total)
            if i > pos:
                out[pos:i] = self._generate(synth, i - pos)
                pos = i
            if on:
                synth.noteon(0, int(pitch), int(np.clip(velocity, 1, 127)))
            else:
                synth.noteoff(0, int(pitch))
        if total > pos:
            out[pos:] = self._generate(synth, total - pos)
        synth.notes_off()
        return out

    @staticmethod
    def _generate(synth, n: int) -> np.ndarray:
        stereo = np.frombuffer(synth.generate(n), dtype=np.float32).reshape(-1, 2)
        return stereo.mean(axis=1)


# ----------------------------------------------------------------------------- onset delays

def measure_sound_onset(audio: np.ndarray, sample_rate: int, *,
                        threshold_db: float = ONSET_THRESHOLD_DB,
                        envelope_s: float = ENVELOPE_S) -> float:
    """Time in seconds at which a sound starts: its envelope first reaches ``threshold_db``
    below the envelope's peak.

    The envelope is the RMS over a centred window of ``envelope_s`` (so it can lead by up to
    ``envelope_s / 2``).

    Args:
        audio: mono samples ``(samples,)`` holding one sound.
        sample_rate: in Hz.
        threshold_db: level relative to the peak, in dB of amplitude (default -20: 10 %).
        envelope_s: RMS window length in seconds (default 1 ms).

    Returns:
        the onset time in seconds from the first sample.

    Raises:
        ValueError: ``audio`` is not 1-D, or silent (peak 0), or a bad option.
    """
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"measure_sound_onset: `audio` must be 1-D and non-empty, got shape "
                         f"{x.shape}")
    if not threshold_db < 0 or not envelope_s > 0:
        raise ValueError(f"measure_sound_onset: need threshold_db < 0 and envelope_s > 0, got "
                         f"{threshold_db}, {envelope_s}")
    n = max(1, int(round(envelope_s * sample_rate)))
    env = np.sqrt(np.convolve(x * x, np.ones(n) / n, mode="same"))
    peak = float(env.max())
    if not peak > 0:
        raise ValueError("measure_sound_onset: `audio` is silent; expected one sound")
    return float(np.argmax(env >= peak * 10.0 ** (threshold_db / 20.0)) / sample_rate)


class OnsetTable(NamedTuple):
    """Delays (seconds) from note-on to sound onset of one instrument.

    ``delays_s[i, j]`` is for ``pitches[i]`` at ``velocities[j]``; NaN where the note is silent.
    """

    instrument: Instrument
    pitches: tuple[int, ...]
    velocities: tuple[int, ...]
    delays_s: np.ndarray

    def delay_s(self, pitch: int, velocity: int | None) -> float:
        """Delay of a note: the nearest measured velocity (NaN: the note is silent)."""
        i = self.pitches.index(int(pitch))
        v = 80 if velocity is None else int(velocity)
        j = int(np.argmin(np.abs(np.asarray(self.velocities) - v)))
        return float(self.delays_s[i, j])


def _cache_path(cache_dir: Path, renderer: PianoRenderer, instrument: Instrument,
                sample_rate: int, velocities: Sequence[int]) -> Path:
    st = os.stat(instrument.soundfont)
    key = json.dumps([renderer.cache_id, os.path.realpath(instrument.soundfont), st.st_size,
                      st.st_mtime_ns, instrument.program, sample_rate, list(velocities),
                      ONSET_THRESHOLD_DB, ENVELOPE_S, _LEAD_S, _ISOLATED_S])
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return cache_dir / f"{Path(instrument.soundfont).stem}-p{instrument.program}-{digest}.json"


def onset_delay_table(renderer: PianoRenderer, instrument: Instrument, *,
                      sample_rate: int = 44100, velocities: Sequence[int] = TABLE_VELOCITIES,
                      pitches: Sequence[int] = PIANO_PITCHES,
                      cache_dir: str | os.PathLike | None = None) -> OnsetTable:
    """Measure note-on -> sound-onset delays of every pitch and velocity of an instrument.

    Each note is rendered alone (``_LEAD_S`` of silence, then the note held for
    ``_ISOLATED_S``) and its onset found by :func:`measure_sound_onset`; the delay is that
    onset minus the note-on time, clipped at 0 (the centred envelope window can lead a hard
    attack by half its length).

    Args:
        renderer: a :class:`PianoRenderer`.
        instrument: the SoundFont and program.
        sample_rate: in Hz.
        velocities: MIDI velocities to measure.
        pitches: MIDI pitches to measure (default the 88 keys).
        cache_dir: folder of cached tables (JSON, keyed by renderer, font file, size, mtime,
            program, rate and measurement settings); ``None`` or a renderer without
            ``cache_id``: no cache.

    Returns:
        an :class:`OnsetTable`.
    """
    velocities, pitches = tuple(int(v) for v in velocities), tuple(int(p) for p in pitches)
    path = None
    if cache_dir is not None and renderer.cache_id is not None:
        path = _cache_path(Path(cache_dir), renderer, instrument, sample_rate, velocities)
        if path.is_file():
            data = json.loads(path.read_text())
            if data.get("pitches") == list(pitches):
                delays = np.array(data["delays_s"], dtype=np.float64)
                return OnsetTable(instrument, pitches, velocities, delays)
    delays = np.full((len(pitches), len(velocities)), np.nan)
    for i, pitch in enumerate(pitches):
        for j, velocity in enumerate(velocities):
            note = Note(_LEAD_S, _LEAD_S + _ISOLATED_S, pitch, velocity)
            audio = renderer.render([note], instrument=instrument,
                                    duration_s=_LEAD_S + _ISOLATED_S, sample_rate=sample_rate)
            if np.abs(audio).max() > 1e-6:
                onset = measure_sound_onset(audio, sample_rate)
                delays[i, j] = max(0.0, onset - _LEAD_S)
    if path is not None:
        payload = {"instrument": list(instrument), "pitches": list(pitches),
                   "velocities": list(velocities),
                   "delays_s": [[None if math.isnan(d) else round(d, 6) for d in row]
                                for row in delays]}
        atomic_write_text(path, json.dumps(payload))
        delays = np.array(json.loads(path.read_text())["delays_s"], dtype=np.float64)
    return OnsetTable(instrument, pitches, velocities, delays)
