"""A synthetic piano dataset rendered with SoundFont pianos, in the generic layout.

Music: built-in generated performances (:mod:`softloc.data.generators.piano_music`: scales,
arpeggios, chords, melodies with accompaniment, tempo drift, dynamics, sustain pedal) and, if
given, the MIDI files of a folder (cut into excerpts). Sound: the SoundFont synthesizer
tinysoundfont playing General-MIDI piano programs 0-7 of ``.sf2``/``.sf3`` files (found in the
Debian SoundFont folders, :func:`~softloc.data.generators.soundfonts.discover_soundfonts`, or
named by the user), then a recording chain per file (room reverb, microphone colour, background
noise, level). The SoundFont machinery lives in :mod:`softloc.data.generators.soundfonts`; its
public names are re-exported here.

**Labels are sound onsets.** The label of a note is where its sound starts, not its note-on
time: for every (SoundFont, program, pitch, velocity) the isolated note is rendered and the
first time its energy envelope (RMS over :data:`ENVELOPE_S`) reaches
:data:`ONSET_THRESHOLD_DB` below its peak is measured (:func:`measure_sound_onset`). The delays
are a table per instrument (:func:`onset_delay_table`, velocities at :data:`TABLE_VELOCITIES`,
nearest one used), cached on disk. With the Debian fonts they are 0-13 ms (slow attacks of low
notes and harpsichords); SoundFonts whose samples begin with silence give much more.

**Train and test pianos differ.** An *instrument* is a (SoundFont, program). The test split is
played by the instruments of held-out SoundFont *families* (fonts whose names differ only by
``Mono``/``GM``/``GS``, such as FluidR3_GM and FluidR3Mono_GM, share their samples and are one
family, :func:`soundfont_family`); by default the family whose name sorts last is held out
(with the Debian packages fluid-soundfont-gm, fluidr3mono-gm-soundfont and csound-soundfont:
training on FluidR3, testing on csound's sf_GMbank). With a single family the programs are split
instead (``test_programs`` vs. the rest). Validation files use the training instruments and
music never used in training. Every choice is written to ``synth_piano.json``.

Reserved SoundFonts (``soundfonts.is_reserved_soundfont``: the one hold-out list of
``kits.is_evaluation_holdout``) are kept for
independent evaluation: discovery never returns them, even behind a symbolic link or an
alternatives alias.

Layout written (what ``softloc.data.layout.load_dataset`` reads): ``audio/<stem>.wav`` (16-bit
mono), ``annotations/<stem>.txt`` (sound onsets, labels ``"21"``..``"108"``),
``notes/<stem>.txt`` (the key presses as a MAPS note list: note-on times, for comparison),
``counts.csv`` (counts per pitch in ``window_s`` windows every ``hop_s``),
``splits/{train,valid,test}.txt`` and ``synth_piano.json``.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import signal

from softloc._io import atomic_write_text
from softloc.data.formats import (
    write_annotation_file,
    write_counts_csv,
    write_split_file,
    write_wav,
)
from softloc.data.generators.piano_music import (
    Performance,
    excerpt,
    generate_performance,
    sounding_notes,
)
from softloc.data.generators.soundfonts import (
    ENVELOPE_S,
    ONSET_THRESHOLD_DB,
    SOUNDFONT_DIRS,
    TABLE_VELOCITIES,
    Instrument,
    OnsetTable,
    PianoRenderer,
    TinySoundFontRenderer,
    discover_soundfonts,
    is_reserved_soundfont,
    measure_sound_onset,
    onset_delay_table,
    soundfont_family,
)
from softloc.data.layout import DatasetIndex, count_windows, load_dataset
from softloc.data.midi import PIANO_PITCHES, read_midi, write_maps_notes

__all__ = [
    "ENVELOPE_S",
    "GM_PIANO_PROGRAMS",
    "Instrument",
    "ONSET_THRESHOLD_DB",
    "OnsetTable",
    "PIANO_LABELS",
    "PianoRenderer",
    "SOUNDFONT_DIRS",
    "TABLE_VELOCITIES",
    "TinySoundFontRenderer",
    "discover_soundfonts",
    "is_reserved_soundfont",
    "measure_sound_onset",
    "onset_delay_table",
    "plan_instruments",
    "soundfont_family",
    "synthesize_piano_dataset",
]

#: General-MIDI programs of the piano family: acoustic grand, bright, electric grand,
#: honky-tonk, electric pianos 1 and 2, harpsichord, clavinet.
GM_PIANO_PROGRAMS: tuple[int, ...] = tuple(range(8))
#: Class labels of a piano dataset: the MIDI numbers of the 88 keys as strings.
PIANO_LABELS: tuple[str, ...] = tuple(str(p) for p in PIANO_PITCHES)
_SPLITS = ("train", "valid", "test")


# ----------------------------------------------------------------------------- instruments

def plan_instruments(renderer: PianoRenderer, soundfonts: Sequence[str | os.PathLike], *,
                     test_soundfonts: Sequence[str | os.PathLike] | None = None,
                     train_programs: Sequence[int] = GM_PIANO_PROGRAMS,
                     test_programs: Sequence[int] = (0, 1, 2, 3)
                     ) -> tuple[dict[str, list[Instrument]], str]:
    """Instruments of each split, with train and test pianos never shared.

    Args:
        renderer: lists each font's programs.
        soundfonts: every font to use (paths).
        test_soundfonts: fonts (paths, or file names) whose family is held out for test;
            default: the family whose name sorts last. Every font of a test family is test-only.
        train_programs: programs played in train (and valid).
        test_programs: programs played in test.

    Returns:
        ``({"train": [...], "valid": [...], "test": [...]}, how)``: valid uses the training
        instruments; ``how`` says which rule split them.

    Raises:
        ValueError: no font, or a split left without an instrument (the fonts lack the
            programs).

    Notes:
        Fonts passed here are used as given: :func:`discover_soundfonts` is what never returns
        a reserved font (an independent evaluation may render its own test set with one).
    """
    fn = "plan_instruments"
    fonts = [str(Path(f)) for f in soundfonts]
    if not fonts:
        raise ValueError(f"{fn}: no SoundFont; install fluid-soundfont-gm (Debian) or pass "
                         "`soundfonts=[...]` (.sf2/.sf3 files)")
    presets = {f: renderer.programs(f) for f in fonts}
    families = {f: soundfont_family(f) for f in fonts}
    if test_soundfonts is None:
        test_families = {sorted(set(families.values()))[-1]}
    else:
        names = {Path(t).name for t in test_soundfonts}
        unknown = names - {Path(f).name for f in fonts}
        if unknown:
            raise ValueError(f"{fn}: `test_soundfonts` {sorted(unknown)} are not among the "
                             f"SoundFonts {[Path(f).name for f in fonts]}")
        test_families = {families[f] for f in fonts if Path(f).name in names}

    def pick(fs: Sequence[str], programs: Sequence[int]) -> list[Instrument]:
        return [Instrument(f, p, presets[f][p]) for f in fs for p in programs if p in presets[f]]

    test_fonts = [f for f in fonts if families[f] in test_families]
    train_fonts = [f for f in fonts if families[f] not in test_families]
    if train_fonts:
        train, test = pick(train_fonts, train_programs), pick(test_fonts, test_programs)
        how = (f"SoundFont families held out for test: {sorted(test_families)} (test pianos "
               "never heard in training)")
    else:
        held = [p for p in train_programs if p not in test_programs]
        train, test = pick(fonts, held), pick(fonts, test_programs)
        how = (f"one SoundFont family only: test programs {list(test_programs)}, train programs "
               f"{held} (test pianos are other presets of the same fonts)")
    for split, insts in (("train", train), ("test", test)):
        if not insts:
            raise ValueError(f"{fn}: no {split} instrument: the fonts {fonts} lack the programs "
                             f"{list(train_programs if split == 'train' else test_programs)}")
    return {"train": train, "valid": list(train), "test": test}, how


# ----------------------------------------------------------------------------- recording chain

def _butter(cutoff_hz: float, sr: int, btype: str = "lowpass", order: int = 1):
    return signal.butter(order, min(cutoff_hz, 0.45 * sr) / (sr / 2), btype=btype, output="sos")


def _record(rng: np.random.Generator, dry: np.ndarray, sr: int) -> np.ndarray:
    """Room reverb, microphone colour, background noise and level of one recording.

    Reverb: exponentially decaying noise (RT60 0.3-1.6 s, low-passed at 2.5-9 kHz, 5-25 ms
    pre-delay, 0.1-0.45 of the dry energy) added to the dry signal, so the direct sound and its
    onset are unchanged. Colour: first-order high cut at 5-18 kHz, low cut at 20-120 Hz. Noise:
    low-passed white noise at -70 to -42 dB re the peak. Level: peak at 0.3-0.95.
    """
    n = dry.size
    rt60 = rng.uniform(0.3, 1.6)
    m = int(rt60 * sr)
    ir = rng.standard_normal(m) * np.exp(-6.9 * np.arange(m) / sr / rt60)
    ir[: int(rng.uniform(0.005, 0.025) * sr)] = 0.0  # pre-delay of the reflections
    ir = signal.sosfilt(_butter(rng.uniform(2500, 9000), sr, order=2), ir)
    ir *= rng.uniform(0.1, 0.45) / (np.sqrt(np.sum(ir ** 2)) + 1e-12)
    wet = dry + signal.oaconvolve(dry, ir.astype(np.float32))[:n]
    wet = signal.sosfilt(_butter(rng.uniform(20, 120), sr, "highpass"),
                         signal.sosfilt(_butter(rng.uniform(5000, 18000), sr), wet))
    wet /= np.abs(wet).max() + 1e-9
    noise = signal.sosfilt(_butter(rng.uniform(1000, 12000), sr), rng.standard_normal(n))
    wet += 10 ** (rng.uniform(-70, -42) / 20) * noise / (np.std(noise) + 1e-12)
    return (wet / (np.abs(wet).max() + 1e-9) * rng.uniform(0.3, 0.95)).astype(np.float32)


# ----------------------------------------------------------------------------- music

def _midi_music(seed: int, midi_dir: Path, budgets_s: dict[str, float], file_duration_s: float
                ) -> dict[str, list[tuple[str, Performance]]]:
    """Excerpts of a MIDI folder's files; each file goes to one split (seeded, by duration)."""
    files = sorted(p for p in midi_dir.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
    if not files:
        raise FileNotFoundError(f"{midi_dir}: no .mid/.midi files found")
    order = np.random.default_rng([seed, 7]).permutation(len(files))
    assigned = {s: 0.0 for s in _SPLITS}
    out: dict[str, list[tuple[str, Performance]]] = {s: [] for s in _SPLITS}
    for k in order:
        midi = read_midi(files[k])
        if not midi.notes:
            continue
        open_splits = [s for s in _SPLITS if budgets_s[s] > 0 and assigned[s] < budgets_s[s]]
        if not open_splits:
            break
        split = min(open_splits, key=lambda s: assigned[s] / budgets_s[s])
        n_excerpts = int(math.ceil(midi.end_s / file_duration_s))
        for e in range(n_excerpts):
            if assigned[split] >= budgets_s[split]:
                break
            perf = excerpt(midi.notes, midi.sustain_s, e * file_duration_s, file_duration_s)
            if len(perf.notes) >= 3:
                rel = files[k].relative_to(midi_dir)
                out[split].append((f"{rel}@{e * file_duration_s:g}s", perf))
                assigned[split] += file_duration_s
    return out


def _music(seed: int, midi_dir: Path | None, budgets_s: dict[str, float],
           file_duration_s: float, generated: bool) -> dict[str, list[tuple[str, Performance]]]:
    """``{split: [(source, performance)]}``: MIDI excerpts first, generated music fills up."""
    music = ({s: [] for s in _SPLITS} if midi_dir is None
             else _midi_music(seed, midi_dir, budgets_s, file_duration_s))
    if generated:
        for k, split in enumerate(_SPLITS):
            missing = budgets_s[split] - file_duration_s * len(music[split])
            for i in range(int(math.ceil(missing / file_duration_s - 1e-9))):
                rng = np.random.default_rng([seed, k, i, 11])
                music[split].append(("generated", generate_performance(rng, file_duration_s)))
    return music


# ----------------------------------------------------------------------------- the dataset

def _check_args(fn: str, minutes: float, valid_minutes: float, test_minutes: float,
                file_duration_s: float, window_s: float, hop_s: float, sample_rate: int) -> None:
    for name, value, lo in (("minutes", minutes, 0.0), ("valid_minutes", valid_minutes, 0.0),
                            ("test_minutes", test_minutes, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                not math.isfinite(value) or value < lo:
            raise ValueError(f"{fn}: `{name}` must be a number >= {lo}, got {value!r}")
    if not minutes > 0:
        raise ValueError(f"{fn}: `minutes` (training audio) must be > 0, got {minutes!r}")
    if not file_duration_s >= max(window_s, 2.0) or not window_s > 0 or not hop_s > 0:
        raise ValueError(f"{fn}: need file_duration_s >= max(window_s, 2) and window_s, hop_s > 0"
                         f", got file_duration_s={file_duration_s}, window_s={window_s}, "
                         f"hop_s={hop_s}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 16000:
        raise ValueError(f"{fn}: `sample_rate` must be an int >= 16000, got {sample_rate!r}")


def synthesize_piano_dataset(
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    soundfonts: Sequence[str | os.PathLike] | None = None,
    midi_dir: str | os.PathLike | None = None,
    minutes: float = 20.0,
    valid_minutes: float = 3.0,
    test_minutes: float = 5.0,
    file_duration_s: float = 30.0,
    test_soundfonts: Sequence[str | os.PathLike] | None = None,
    train_programs: Sequence[int] = GM_PIANO_PROGRAMS,
    test_programs: Sequence[int] = (0, 1, 2, 3),
    generated_music: bool = True,
    sample_rate: int = 44100,
    window_s: float = 1.5,
    hop_s: float = 0.5,
    cache_dir: str | os.PathLike | None = None,
    renderer: PianoRenderer | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] | None = None,
) -> DatasetIndex:
    """Render a piano dataset with sound-onset labels in the generic layout; return its index.

    See the module docstring for the music, the instruments, the labels and the files written.

    Args:
        out_dir: target folder; must be absent or empty unless ``overwrite``.
        seed: everything is a deterministic function of it (default 0).
        soundfonts: ``.sf2``/``.sf3`` files; default :func:`discover_soundfonts`.
        midi_dir: a folder of MIDI files to render too (cut into ``file_duration_s`` excerpts;
            each file goes to one split); generated music fills what they leave.
        minutes: training audio in minutes (default 20), rounded up to whole files.
        valid_minutes: validation audio (default 3; 0 writes no ``valid.txt``).
        test_minutes: test audio on unseen pianos (default 5).
        file_duration_s: length of each file (default 30 s).
        test_soundfonts: fonts whose family plays the test split (see :func:`plan_instruments`).
        train_programs: GM programs of the training pianos (default 0-7).
        test_programs: GM programs of the test pianos (default 0-3: acoustic, bright, electric
            grand, honky-tonk).
        generated_music: fill the splits with built-in music (default True).
        sample_rate: in Hz (default 44100).
        window_s, hop_s: counts.csv windows (default 1.5 s every 0.5 s).
        cache_dir: folder of the onset-delay tables (default ``$XDG_CACHE_HOME`` or
            ``~/.cache``, then ``softloc/piano-onsets``).
        renderer: the synthesizer (default :class:`TinySoundFontRenderer`); tests inject one.
        overwrite: allow writing into a non-empty folder.
        progress: called with a line of text per rendered file.

    Returns:
        the :class:`~softloc.data.layout.DatasetIndex` of the written dataset (classes
        :data:`PIANO_LABELS`).

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        FileNotFoundError: a SoundFont or ``midi_dir`` does not exist.
        ValueError: bad sizes or rates; no usable SoundFont or program (see
            :func:`plan_instruments`).
    """
    fn = "synthesize_piano_dataset"
    _check_args(fn, minutes, valid_minutes, test_minutes, file_duration_s, window_s, hop_s,
                sample_rate)
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty; choose a new folder or pass "
                              "overwrite=True")
    fonts = discover_soundfonts() if soundfonts is None else [Path(f) for f in soundfonts]
    for f in fonts:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: SoundFont not found")
    if midi_dir is not None and not Path(midi_dir).is_dir():
        raise FileNotFoundError(f"{midi_dir}: MIDI folder not found")
    if cache_dir is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        cache_dir = Path(base) / "softloc" / "piano-onsets"
    t0 = time.perf_counter()
    renderer = renderer or TinySoundFontRenderer(sample_rate)
    instruments, how = plan_instruments(renderer, fonts, test_soundfonts=test_soundfonts,
                                        train_programs=train_programs,
                                        test_programs=test_programs)
    budgets = {"train": 60.0 * minutes, "valid": 60.0 * valid_minutes,
               "test": 60.0 * test_minutes}
    music = _music(seed, None if midi_dir is None else Path(midi_dir), budgets,
                   file_duration_s, generated_music)
    tables: dict[Instrument, OnsetTable] = {}
    windows, manifest, splits = [], [], {}
    render_s = audio_s = 0.0
    for k, split in enumerate(_SPLITS):
        insts = instruments[split]
        order = np.random.default_rng([seed, k, 3]).permutation(len(insts))
        splits[split] = []
        for i, (source, perf) in enumerate(music[split]):
            inst = insts[order[i % len(insts)]]
            if inst not in tables:
                tables[inst] = onset_delay_table(renderer, inst, sample_rate=sample_rate,
                                                 cache_dir=cache_dir)
            stem = f"{split}_{i:03d}"
            t1 = time.perf_counter()
            events, n_notes = _render_file(out, stem, perf, inst, tables[inst], renderer,
                                           np.random.default_rng([seed, k, i, 5]), sample_rate,
                                           overwrite)
            render_s += time.perf_counter() - t1
            audio_s += perf.duration_s
            windows += count_windows(stem, events, perf.duration_s, window_s=window_s,
                                     hop_s=hop_s, classes=PIANO_LABELS)
            splits[split].append(stem)
            manifest.append({"stem": stem, "split": split, "source": source,
                             "soundfont": Path(inst.soundfont).name, "program": inst.program,
                             "preset": inst.name, "n_notes": n_notes, "n_labels": len(events)})
            if progress is not None:
                progress(f"{stem}: {Path(inst.soundfont).name} program {inst.program} "
                         f"({inst.name}), {len(events)} notes")
    write_counts_csv(out / "counts.csv", windows, classes=PIANO_LABELS, overwrite=overwrite)
    for split, stems in splits.items():
        if stems:
            write_split_file(out / "splits" / f"{split}.txt", stems, overwrite=overwrite)
    delays = {f"{Path(t.instrument.soundfont).name}:{t.instrument.program}":
              {"mean_ms": round(1000 * float(np.nanmean(t.delays_s)), 2),
               "max_ms": round(1000 * float(np.nanmax(t.delays_s)), 2)}
              for t in tables.values()}
    settings = {
        "generator": "softloc.data.generators.piano", "seed": seed,
        "file_duration_s": file_duration_s, "sample_rate": sample_rate, "window_s": window_s,
        "hop_s": hop_s, "labels": "sound onsets (note-on + measured delay); notes/ holds "
        "note-on times", "onset_threshold_db": ONSET_THRESHOLD_DB, "envelope_s": ENVELOPE_S,
        "split_rule": how,
        "instruments": {s: [[Path(x.soundfont).name, x.program, x.name] for x in v]
                        for s, v in instruments.items()},
        "onset_delays": delays, "midi_dir": None if midi_dir is None else str(midi_dir),
        "seconds_to_generate": round(time.perf_counter() - t0, 2),
        "render_speed_x_realtime": round(audio_s / max(render_s, 1e-9), 1), "files": manifest,
    }
    atomic_write_text(out / "synth_piano.json", json.dumps(settings, indent=1))
    return load_dataset(out, labels=PIANO_LABELS)


def _render_file(out: Path, stem: str, perf: Performance, inst: Instrument, table: OnsetTable,
                 renderer: PianoRenderer, rng: np.random.Generator, sample_rate: int,
                 overwrite: bool) -> tuple[list[tuple[float, str]], int]:
    """Render one file and write its audio, labels and note list; return (events, n_notes)."""
    keys = set(table.pitches)
    notes = [n for n in perf.notes if n.pitch in keys
             and not math.isnan(table.delay_s(n.pitch, n.velocity))]
    dry = renderer.render(sounding_notes(notes, perf.sustain_s), instrument=inst,
                          duration_s=perf.duration_s, sample_rate=sample_rate)
    audio = _record(rng, np.asarray(dry, dtype=np.float32), sample_rate)
    events = []
    for n in notes:
        t = n.onset_s + table.delay_s(n.pitch, n.velocity)
        if t < perf.duration_s - 0.02:
            events.append((round(t, 6), str(n.pitch)))
    write_wav(out / "audio" / f"{stem}.wav", audio, sample_rate, overwrite=overwrite)
    write_annotation_file(out / "annotations" / f"{stem}.txt", events, overwrite=overwrite)
    write_maps_notes(out / "notes" / f"{stem}.txt", notes, overwrite=overwrite)
    return sorted(events, key=lambda e: (e[0], int(e[1]))), len(notes)
