"""Recorded drum samples: the one-shot model, the instrument -> class table, and the kit readers.

A *kit* is a set of instruments, each a list of recorded one-shots (velocity layers and
round-robin variants). Four formats are read into one :class:`SampleKit`:

* **Hydrogen** (``drumkit.xml`` + flac / wav / aiff): every ``<instrument>`` with its ``<layer>``
  elements (``<min>`` / ``<max>`` velocity in [0, 1], ``<gain>``), or one ``<filename>`` (old kits);
* **SFZ**: ``<region>`` headers with ``sample``, ``key`` / ``lokey`` / ``hikey``,
  ``lovel`` / ``hivel``, ``volume``, ``offset``, inherited from ``<global>`` / ``<master>`` /
  ``<group>``, ``default_path`` from ``<control>``; ``trigger=release`` regions are skipped;
* **SF2 / SF3** General-MIDI drum presets (bank 128), rendered note by note at several
  velocities (:mod:`softloc.data.generators.soundfont`);
* a **folder of one-shots**: the class of a file from its name, else from its folders.

Conventions:

* Audio is mono float32 at the sample rate asked for (stereo samples are averaged, others
  resampled with a polyphase filter). Velocities are in [0, 1] (MIDI velocity / 127).
* The **onset** of a one-shot is where its sound starts (:func:`find_sound_start`, an energy
  detector), not where its file starts: leading silence or noise is cut down to
  :data:`PRE_ROLL_S`, and :attr:`OneShot.onset_s` says where the sound starts in what is kept.
* Instruments get a *role* from their name (:data:`INSTRUMENT_NAME_RULES`, first match wins) and
  roles map to the labelled classes with :data:`ROLE_LABELS`: kicks -> KD, snares, side sticks,
  rim shots and claps -> SD, closed / open / pedal hi-hats -> HH; toms, crash, ride and percussion
  are unlabelled distractors. SF2 notes are named with the General-MIDI percussion names
  (:data:`GM_PERCUSSION_NAMES`); the labels agree with :data:`softloc.data.formats.GM_DRUM_MAP`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy import signal

__all__ = [
    "AUDIO_SUFFIXES",
    "GM_PERCUSSION_NAMES",
    "INSTRUMENT_NAME_RULES",
    "PRE_ROLL_S",
    "ROLE_LABELS",
    "KitInstrument",
    "OneShot",
    "SampleKit",
    "classify_instrument",
    "find_sound_start",
    "make_one_shot",
    "read_folder_kit",
    "read_hydrogen_kit",
    "read_sfz_kit",
]

log = logging.getLogger(__name__)

#: Role of an instrument -> labelled class (None: an unlabelled distractor that is played but never
#: annotated). Side stick, rim shot and clap count as SD, as in the General-MIDI map
#: (:data:`softloc.data.formats.GM_DRUM_MAP`) and the ENST-Drums map.
ROLE_LABELS: dict[str, str | None] = {
    "kick": "KD",
    "snare": "SD",
    "snare_alt": "SD",
    "hihat_closed": "HH",
    "hihat_open": "HH",
    "hihat_pedal": "HH",
    "tom": None,
    "crash": None,
    "ride": None,
    "perc": None,
}

_HAT = r"hat|\bhh\b|\b[cop]hh\b"
#: Instrument name -> role, the first matching rule wins (``re.search`` on the name lower-cased,
#: with camelCase and letter/digit boundaries split and other characters made spaces: "BassDrum"
#: -> "bass drum", "closehihat3" -> "closehihat 3"). A name no rule matches is not played; a rule
#: with role None marks sounds that are not single hits (rolls, loops, effects).
INSTRUMENT_NAME_RULES: tuple[tuple[str, str | None], ...] = (
    (r"\broll|\bfx\b|\bzap|revers|\bloop|\bsweep|\bempty|\bclick|metronome|\bnoise", None),
    # hand and Latin percussion first: "open hi conga", "cowbell", "hi bongo"
    (r"conga|bongo|djembe|cajon|timbale|agogo|cowbell|clave|block|tambourine|\btamb\b|shaker"
     r"|maraca|cabasa|guiro|cuica|triangle|vibraslap|whistle|\bsnaps?\b|glass|\bperc", "perc"),
    (rf"\bphh\b|(?=.*({_HAT})).*(pedal|foot|\bpd\b)", "hihat_pedal"),
    (rf"\bohh\b|(?=.*({_HAT})).*(open|\bop\b|\bfree\b|half|loose)", "hihat_open"),
    (_HAT, "hihat_closed"),
    (r"side ?stick|cross ?stick|\bstick|\brim|\bclaps?\b", "snare_alt"),
    (r"snare|\bsnr\b|\bsd\b|\bsn\b", "snare"),
    (r"kick|\bkik\b|\bkck\b|bass ?drum|\bbd\b|\bkd\b", "kick"),
    (r"\btoms?\b|\btom|floor|\bft\b|\btt\b", "tom"),
    (r"ride|\bbell\b|\brd\b", "ride"),
    (r"crash|splash|china|chinese|cymbal|\bcym|\bcr\b|\bcra\b", "crash"),
)
_RULES = tuple((re.compile(p), role) for p, role in INSTRUMENT_NAME_RULES)

#: General-MIDI percussion key names (GM 1 Level 1 Percussion Key Map, keys 35-81).
GM_PERCUSSION_NAMES: dict[int, str] = dict(enumerate((
    "Acoustic Bass Drum", "Bass Drum 1", "Side Stick", "Acoustic Snare", "Hand Clap",
    "Electric Snare", "Low Floor Tom", "Closed Hi-Hat", "High Floor Tom", "Pedal Hi-Hat",
    "Low Tom", "Open Hi-Hat", "Low-Mid Tom", "Hi-Mid Tom", "Crash Cymbal 1", "High Tom",
    "Ride Cymbal 1", "Chinese Cymbal", "Ride Bell", "Tambourine", "Splash Cymbal", "Cowbell",
    "Crash Cymbal 2", "Vibraslap", "Ride Cymbal 2", "Hi Bongo", "Low Bongo", "Mute Hi Conga",
    "Open Hi Conga", "Low Conga", "High Timbale", "Low Timbale", "High Agogo", "Low Agogo",
    "Cabasa", "Maracas", "Short Whistle", "Long Whistle", "Short Guiro", "Long Guiro", "Claves",
    "Hi Wood Block", "Low Wood Block", "Mute Cuica", "Open Cuica", "Mute Triangle",
    "Open Triangle"), start=35))

#: Audio kept before the sound start of a one-shot, in seconds.
PRE_ROLL_S = 0.005
#: File suffixes read as audio (what libsndfile reads).
AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")
_MAX_ONE_SHOT_S = 4.0
_TAIL_DB = -70.0


def _normalise_name(name: str) -> str:
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    s = re.sub(r"([A-Za-z])(\d)|(\d)([A-Za-z])", lambda m: " ".join(g for g in m.groups() if g), s)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", s.lower()).split())


def classify_instrument(name: str) -> str | None:
    """The role of an instrument from its name (:data:`INSTRUMENT_NAME_RULES`), or None.

    Examples:
        >>> [classify_instrument(n) for n in ("BassDrum", "Hat Op Dirty", "closehihat3", "Crash")]
        ['kick', 'hihat_open', 'hihat_closed', 'crash']
        >>> classify_instrument("Snare Roll") is None
        True
    """
    s = _normalise_name(name)
    for pattern, role in _RULES:
        if pattern.search(s):
            return role
    return None


# --------------------------------------------------------------------------------- one-shots

@dataclass(frozen=True)
class OneShot:
    """One recorded hit.

    Attributes:
        audio: ``(samples,)`` float32 mono, read-only.
        onset_s: where the sound starts in ``audio``, in seconds (at most :data:`PRE_ROLL_S`).
        lo_velocity, hi_velocity: the velocity range in [0, 1] this sample is played for.
        gain: linear gain the kit asks for (layer x instrument volume).
        source: where it came from (file, or file and note), for messages.
    """

    audio: np.ndarray
    onset_s: float
    lo_velocity: float = 0.0
    hi_velocity: float = 1.0
    gain: float = 1.0
    source: str = ""


@dataclass(frozen=True)
class KitInstrument:
    """One instrument of a kit: its name in the kit, its role, its one-shots."""

    name: str
    role: str
    samples: tuple[OneShot, ...]

    @property
    def label(self) -> str | None:
        """The annotated class (KD / SD / HH) or None for a distractor."""
        return ROLE_LABELS[self.role]


@dataclass(frozen=True)
class SampleKit:
    """A drum kit ready to play.

    Attributes:
        name: a readable name (folder, file, or file + preset).
        family: kits that share recordings share a family (every preset of one SF2 file); train /
            valid / test splits never divide a family.
        kind: ``"hydrogen"``, ``"sfz"``, ``"sf2"``, ``"folder"`` or ``"synthetic"``.
        sample_rate: of every one-shot, in Hz.
        instruments: the playable instruments (each with at least one one-shot).
        source: the file or folder read.
    """

    name: str
    family: str
    kind: str
    sample_rate: int
    instruments: tuple[KitInstrument, ...]
    source: str = ""
    _by_role: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def by_role(self) -> dict[str, list[KitInstrument]]:
        """Role -> the instruments of that role (roles the kit lacks are absent)."""
        if not self._by_role:
            for inst in self.instruments:
                self._by_role.setdefault(inst.role, []).append(inst)
        return self._by_role

    def missing_labels(self) -> list[str]:
        """Labelled classes the kit cannot play (a kit needs KD, SD and HH to be used)."""
        have = {ROLE_LABELS[r] for r in self.by_role()}
        return [c for c in ("HH", "KD", "SD") if c not in have]


def find_sound_start(audio: np.ndarray, *, sample_rate: int) -> float:
    """Where the sound of a one-shot starts, in seconds from the first sample.

    An energy onset detector: the energy in 1 ms frames every 0.5 ms up to 50 ms after the
    loudest sample; the noise floor is the 25th percentile of the frames before the loudest
    frame; the start is the first sample, in the rise that leads to the loudest frame, whose
    magnitude exceeds a threshold 15 dB above the floor but at least 45 dB under the peak (half
    way between floor and peak in dB when they are less than 30 dB apart; 45 dB under the peak
    when the loudest frame comes within 5 ms, too soon to measure a floor).

    Args:
        audio: ``(samples,)`` mono.
        sample_rate: in Hz.

    Returns:
        the start in seconds; 0.0 for a silent input.
    """
    x = np.asarray(audio)
    if x.size == 0:
        return 0.0
    x = x[: int(np.argmax(np.abs(x))) + int(0.05 * sample_rate)].astype(np.float64)
    hop = max(1, int(round(sample_rate * 0.0005)))
    win = 2 * hop
    if x.size < win:
        return 0.0
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(0, x.size - win + 1, hop)
    e_db = 10 * np.log10((c[starts + win] - c[starts]) / win + 1e-30)
    peak = int(np.argmax(e_db))
    peak_db = e_db[peak]
    if peak_db < -250:
        return 0.0
    if peak < 10:
        thr_db = peak_db - 45.0
    else:
        floor_db = np.percentile(e_db[:peak], 25)
        thr_db = (0.5 * (floor_db + peak_db) if peak_db - floor_db < 30
                  else max(floor_db + 15.0, peak_db - 45.0))
    below = np.flatnonzero(e_db[:peak + 1] < thr_db)
    first = int(below[-1]) + 1 if below.size else 0
    # sample-level refinement inside the first frame above the threshold (and the one before)
    lo = max(0, int(starts[first]) - hop)
    hit = np.flatnonzero(np.abs(x[lo:starts[first] + win]) >= 10 ** (thr_db / 20))
    i = lo + int(hit[0]) if hit.size else int(starts[first])
    return i / sample_rate


def _resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    if sr_in == sr_out:
        return x
    g = math.gcd(int(sr_in), int(sr_out))
    return signal.resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def make_one_shot(audio: np.ndarray, sample_rate: int, *, lo_velocity: float = 0.0,
                  hi_velocity: float = 1.0, gain: float = 1.0, source: str = "") -> OneShot | None:
    """A :class:`OneShot` from raw audio at ``sample_rate``: the sound start found, leading
    audio cut to :data:`PRE_ROLL_S`, the tail cut 70 dB under the peak (at most 4 s, faded).

    Returns:
        the one-shot, or None when ``audio`` is silent.
    """
    x = np.asarray(audio, dtype=np.float32)
    peak = float(np.abs(x).max()) if x.size else 0.0
    if not peak > 1e-6:
        return None
    start = int(round(find_sound_start(x, sample_rate=sample_rate) * sample_rate))
    keep = max(0, start - int(round(PRE_ROLL_S * sample_rate)))
    x = x[keep:]
    loud = np.flatnonzero(np.abs(x) > peak * 10 ** (_TAIL_DB / 20))
    end = min(int(loud[-1]) + 1 if loud.size else x.size, int(_MAX_ONE_SHOT_S * sample_rate))
    x = np.array(x[:end], dtype=np.float32)
    fade = min(x.size, int(0.005 * sample_rate))
    if fade:
        x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    x.setflags(write=False)
    return OneShot(x, (start - keep) / sample_rate, float(lo_velocity), float(hi_velocity),
                   float(gain), source)


def _read_audio(path: Path, sample_rate: int, *, offset: int = 0) -> np.ndarray:
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise ValueError(f"{path}: cannot read audio ({e})") from None
    mono = sum(data[offset:, c] for c in range(data.shape[1])) / data.shape[1]
    return _resample(np.asarray(mono, dtype=np.float32), sr, sample_rate)


# --------------------------------------------------------------------------------- Hydrogen

def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child_text(elem: ET.Element, name: str) -> str | None:
    for child in elem:
        if _local(child.tag) == name:
            return (child.text or "").strip()
    return None


def _float(text: str | None, default: float, where: str) -> float:
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {text!r}") from None


def read_hydrogen_kit(folder: str | os.PathLike, *, sample_rate: int,
                      name: str | None = None) -> SampleKit:
    """Read a Hydrogen drum kit (a folder with ``drumkit.xml``).

    Instruments are classified by their ``<name>``; the ones no rule classifies, and layers whose
    file is missing, are skipped (logged). A layer plays for velocities ``[<min>, <max>]``.

    Raises:
        FileNotFoundError: no ``drumkit.xml`` in ``folder``.
        ValueError: malformed XML (``path:line``) or an unreadable sample.
    """
    folder = Path(folder)
    xml = folder / "drumkit.xml"
    if not xml.is_file():
        raise FileNotFoundError(f"{xml}: not found (a Hydrogen kit folder holds drumkit.xml)")
    try:
        root = ET.parse(xml).getroot()
    except ET.ParseError as e:
        raise ValueError(f"{xml}:{e.position[0]}: not well-formed XML ({e.msg})") from None
    kit_name = name or _child_text(root, "name") or folder.name
    instruments = []
    for elem in root.iter():
        if _local(elem.tag) != "instrument":
            continue
        inst_name = _child_text(elem, "name") or ""
        role = classify_instrument(inst_name)
        if role is None:
            continue
        volume = _float(_child_text(elem, "volume"), 1.0, f"{xml}: {inst_name} volume") * _float(
            _child_text(elem, "gain"), 1.0, f"{xml}: {inst_name} gain")
        layers = [e for e in elem.iter() if _local(e.tag) == "layer"]
        specs = [(_child_text(e, "filename"), _float(_child_text(e, "min"), 0.0, str(xml)),
                  _float(_child_text(e, "max"), 1.0, str(xml)),
                  _float(_child_text(e, "gain"), 1.0, str(xml))) for e in layers]
        if not specs and _child_text(elem, "filename"):
            specs = [(_child_text(elem, "filename"), 0.0, 1.0, 1.0)]
        samples = []
        for fname, lo, hi, gain in specs:
            path = folder / (fname or "")
            if not fname or not path.is_file():
                log.info("%s: instrument %r: sample %r not found, skipped", xml, inst_name, fname)
                continue
            shot = make_one_shot(_read_audio(path, sample_rate), sample_rate, lo_velocity=lo,
                                 hi_velocity=hi, gain=gain * volume, source=str(path))
            if shot is not None:
                samples.append(shot)
        if samples:
            instruments.append(KitInstrument(inst_name, role, tuple(samples)))
    return SampleKit(kit_name, folder.name, "hydrogen", sample_rate, tuple(instruments),
                     str(folder))


# --------------------------------------------------------------------------------- SFZ

_NOTE_OFFSETS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}


def _sfz_key(value: str, where: str) -> int:
    """An SFZ key: a MIDI number or a note name (``c4`` = 60, ``c#4``, ``db4``)."""
    v = value.strip().lower()
    if re.fullmatch(r"-?\d+", v):
        return int(v)
    m = re.fullmatch(r"([a-g])([#b]?)(-?\d+)", v)
    if not m:
        raise ValueError(f"{where}: expected a MIDI key number or note name, got {value!r}")
    acc = {"#": 1, "b": -1, "": 0}[m.group(2)]
    return 12 * (int(m.group(3)) + 1) + _NOTE_OFFSETS[m.group(1)] + acc


def _parse_sfz(path: Path) -> list[dict[str, tuple[str, int]]]:
    """The opcodes ``{name: (value, line)}`` of every ``<region>``, with the opcodes inherited
    from ``<global>`` / ``<master>`` / ``<group>`` and ``default_path`` prefixed to samples."""
    levels: dict[str, dict[str, tuple[str, int]]] = {"global": {}, "master": {}, "group": {}}
    control: dict[str, tuple[str, int]] = {}
    regions: list[dict[str, tuple[str, int]]] = []
    current: dict[str, tuple[str, int]] | None = None
    token = re.compile(r"<(\w+)>|(\w+)=")
    for lineno, raw in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = raw.split("//", 1)[0]
        if line.lstrip().startswith("#"):
            continue  # #define / #include are not supported
        matches = list(token.finditer(line))
        for j, m in enumerate(matches):
            if m.group(1):
                header = m.group(1).lower()
                if header in levels:
                    below = {"global": ("master", "group"), "master": ("group",)}.get(header, ())
                    for name in (header, *below):
                        levels[name] = {}
                    current = levels[header]
                elif header == "region":
                    current = {**levels["global"], **levels["master"], **levels["group"]}
                    regions.append(current)
                else:
                    current = control if header == "control" else None
                continue
            end = matches[j + 1].start() if j + 1 < len(matches) else len(line)
            if current is not None:
                current[m.group(2).lower()] = (line[m.end():end].strip(), lineno)
    base = control.get("default_path", ("", 0))[0].replace("\\", "/")
    for ops in regions:
        if "sample" in ops:
            value, lineno = ops["sample"]
            ops["sample"] = (base + value.replace("\\", "/"), lineno)
    return regions


def read_sfz_kit(path: str | os.PathLike, *, sample_rate: int) -> SampleKit:
    """Read an SFZ drum kit.

    A region's role comes from its sample file name (then its folders), else from the
    General-MIDI name of its key when ``lokey == hikey``. Regions of one key range and role form
    one instrument; regions with the same velocity range are round-robin variants.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a bad key or number (``path:line``), an unreadable sample.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SFZ file not found")
    groups: dict[tuple, list[OneShot]] = {}
    names: dict[tuple, str] = {}
    for region in _parse_sfz(path):
        ops = {k: v for k, (v, _) in region.items()}

        def where(opcode: str, region=region) -> str:
            return f"{path}:{region.get(opcode, ('', 0))[1]}"

        if "sample" not in ops or ops.get("trigger", "attack") != "attack":
            continue
        lo_op = "lokey" if "lokey" in ops else "key"
        hi_op = "hikey" if "hikey" in ops else "key"
        lo = _sfz_key(ops.get(lo_op, "0"), where(lo_op))
        hi = _sfz_key(ops.get(hi_op, "127"), where(hi_op))
        sample = (path.parent / ops["sample"]).resolve()
        role = _role_from_path(sample, path.parent)
        if role is None and lo == hi and lo in GM_PERCUSSION_NAMES:
            role = classify_instrument(GM_PERCUSSION_NAMES[lo])
        if role is None:
            continue
        if not sample.is_file():
            raise ValueError(f"{where('sample')}: sample {ops['sample']!r} not found ({sample})")
        lovel = _float(ops.get("lovel"), 0.0, where("lovel")) / 127
        hivel = _float(ops.get("hivel"), 127.0, where("hivel")) / 127
        gain = 10 ** (_float(ops.get("volume"), 0.0, where("volume")) / 20)
        offset = int(_float(ops.get("offset"), 0.0, where("offset")))
        shot = make_one_shot(_read_audio(sample, sample_rate, offset=offset), sample_rate,
                             lo_velocity=lovel, hi_velocity=hivel, gain=gain,
                             source=where("sample"))
        if shot is not None:
            key = (lo, hi, role)
            groups.setdefault(key, []).append(shot)
            names.setdefault(key, sample.stem)
    instruments = tuple(KitInstrument(names[k], k[2], tuple(v)) for k, v in groups.items())
    return SampleKit(path.stem, path.stem, "sfz", sample_rate, instruments, str(path))


# --------------------------------------------------------------------------------- folders

def _role_from_path(path: Path, root: Path) -> str | None:
    role = classify_instrument(path.stem)
    if role is not None:
        return role
    try:
        parts = path.parent.relative_to(root).parts
    except ValueError:
        parts = path.parent.parts[-1:]
    for part in reversed(parts):
        role = classify_instrument(part)
        if role is not None:
            return role
    return None


def read_folder_kit(folder: str | os.PathLike, *, sample_rate: int) -> SampleKit:
    """Read a folder of one-shots (searched recursively) as one kit.

    The role of a file comes from its name (``kick_01.wav``, ``SD soft.flac``, ``ohh.wav``), else
    from the nearest folder name that classifies (``kit/snare/01.wav``). Files whose names differ
    only in digits (``snare_01``, ``snare_02``) are round-robin variants of one instrument, played
    at every velocity.

    Raises:
        FileNotFoundError: ``folder`` is not a folder.
        ValueError: an unreadable audio file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    groups: dict[tuple[str, str], list[OneShot]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES):
        role = _role_from_path(path, folder)
        if role is None:
            continue
        shot = make_one_shot(_read_audio(path, sample_rate), sample_rate, source=str(path))
        if shot is not None:
            rel = path.relative_to(folder)
            key = (role, str(rel.parent / re.sub(r"\d+", "", rel.stem)))
            groups.setdefault(key, []).append(shot)
    instruments = tuple(KitInstrument(name, role, tuple(v)) for (role, name), v in groups.items())
    return SampleKit(folder.name, folder.name, "folder", sample_rate, instruments, str(folder))
