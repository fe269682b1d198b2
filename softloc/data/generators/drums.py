"""The drum dataset generator: recorded and synthetic kits, played like a drummer, recorded like a
band, written in the generic layout (no downloads).

* **Kits** (:mod:`~softloc.data.generators.kits`): every recorded kit found in the system folders
  (Debian's ``hydrogen-drumkits`` and ``fluid-soundfont-gm``) and in the paths given as ``kits``
  (Hydrogen, SFZ, SF2, folders of one-shots), never the kits reserved for evaluation, plus
  synthetic kits (:mod:`~softloc.data.generators.synthetic_kits`). When no recorded kit is found
  (e.g. on CI) the synthetic kits are used alone, and a warning says so.
* **Splits**: recorded kits are split by family (:func:`~softloc.data.generators.kits.split_kits`)
  and synthetic kits are separate draws per split, so that valid and test kits are never heard in
  training.
* **Playing** (:mod:`~softloc.data.generators.grooves`): twelve styles, fills, ghost notes,
  flams, open / pedal hi-hats, ride sections, crashes, toms and percussion (unlabelled
  distractors), humanised timing and velocity. Each hit takes the velocity layer of its
  instrument that covers its velocity, cycling round-robin through the samples of that layer;
  one-shots are scaled by velocity, instruments levelled per role with a random mix balance, open
  hats choked by the next closed hat. Optionally, on a share of the training files, every
  instrument is retuned and recoloured (``vary_kits``, :func:`vary_instrument`) or each role is
  played by another training kit's instrument (``mix_kits``).
* **Recording** (:mod:`~softloc.data.generators.recording`): room reverb, microphone colour, bus
  compression, noise floor, level, and on a fraction ``backing_music`` of the files synthesised
  music under the drums at a random drums-to-music ratio.

The annotated onset of a hit is where the sound of its sample starts, as placed in the track
(:func:`~softloc.data.generators.kit_formats.find_sound_start`). Two hits of one class closer than
30 ms are annotated once, at the louder one. Everything is a deterministic function of ``seed``
and of the kits found.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soxr

from softloc._checks import check_real
from softloc._io import atomic_write_text
from softloc.data.formats import (
    write_annotation_file,
    write_counts_csv,
    write_split_file,
    write_wav,
)
from softloc.data.generators.grooves import SCATTERED, STYLES, Hit, perform
from softloc.data.generators.kit_formats import ROLE_LABELS, KitInstrument, OneShot, SampleKit
from softloc.data.generators.kits import discover_kits, load_kits, split_kits
from softloc.data.generators.recording import (
    apply_recording_chain,
    colour_eq,
    draw_recording_chain,
)
from softloc.data.generators.synthetic_kits import make_synthetic_kit
from softloc.data.layout import DatasetIndex, count_windows, load_dataset

__all__ = ["DRUM_CLASSES", "render_drum_track", "synthesize_drum_dataset", "vary_instrument"]

log = logging.getLogger(__name__)

#: The labelled classes, in the canonical order (same as IDMT-SMT-Drums).
DRUM_CLASSES = ("HH", "KD", "SD")

# Synthetic kit ids are offset per split so that train / valid / test kits never coincide.
_KIT_OFFSET = {"train": 0, "valid": 10_000, "test": 20_000}
_SPLIT_CODE = {"train": 0, "valid": 1, "test": 2}
# Mix level of each role in dB (re the kick), before a random +-3 dB per track.
_ROLE_LEVEL_DB = {"kick": 0.0, "snare": -1.0, "snare_alt": -4.0, "hihat_closed": -8.0,
                  "hihat_open": -8.0, "hihat_pedal": -11.0, "tom": -3.0, "crash": -9.0,
                  "ride": -10.0, "perc": -12.0}
_MERGE_S = 0.03


# ----------------------------------------------------------------------------- playing

def _pick_sample(inst: KitInstrument, velocity: float, counter: int) -> OneShot:
    """The sample of the layer covering ``velocity`` (else the nearest), round-robin."""
    cands = [s for s in inst.samples if s.lo_velocity <= velocity <= s.hi_velocity]
    if not cands:
        dist = [min(abs(velocity - s.lo_velocity), abs(velocity - s.hi_velocity))
                for s in inst.samples]
        cands = [s for s, d in zip(inst.samples, dist, strict=True) if d == min(dist)]
    return cands[counter % len(cands)]


def vary_instrument(inst: KitInstrument, *, rng: np.random.Generator, sample_rate: int,
                    max_semitones: float = 3.0, max_eq_db: float = 6.0) -> KitInstrument:
    """The same instrument retuned and recoloured, as if another drum of its kind.

    Every one-shot is played back at one rate factor ``2 ** (u / 12)``, ``u ~ U[-max_semitones,
    max_semitones]`` (a higher, shorter drum or a lower, longer one: pitch and decay change
    together, as between drum sizes), then filtered by one random EQ (low shelf, peak and high
    shelf, each ``U[-max_eq_db, max_eq_db]`` dB). The annotated sound start moves with the rate
    (``onset_s / factor``); velocity layers, gains and names are kept.

    Args:
        inst: the instrument.
        rng: draws the tuning and the EQ.
        sample_rate: of the one-shots, in Hz.
        max_semitones: largest retuning, >= 0.
        max_eq_db: largest gain of each EQ band, >= 0.

    Returns:
        a new :class:`KitInstrument` (float32 one-shots).
    """
    fn = "vary_instrument"
    max_semitones = check_real(fn, "max_semitones", max_semitones, minimum=0.0)
    max_eq_db = check_real(fn, "max_eq_db", max_eq_db, minimum=0.0)
    u = rng.uniform
    factor = 2.0 ** (u(-max_semitones, max_semitones) / 12.0)
    eq = {"low_shelf_db": u(-max_eq_db, max_eq_db),
          "low_shelf_hz": float(np.exp(u(np.log(80.0), np.log(400.0)))),
          "peak_db": u(-max_eq_db, max_eq_db),
          "peak_hz": float(np.exp(u(np.log(300.0), np.log(8000.0)))), "peak_q": u(0.7, 2.0),
          "high_shelf_db": u(-max_eq_db, max_eq_db),
          "high_shelf_hz": float(np.exp(u(np.log(3000.0), np.log(10000.0))))}
    samples = []
    for shot in inst.samples:
        # soxr compensates its filter delay, so a sound start at onset_s lands at onset_s / factor
        x = np.asarray(shot.audio, dtype=np.float32)
        if factor != 1.0:
            x = soxr.resample(x, sample_rate * factor, sample_rate)
        if max_eq_db > 0:
            x = colour_eq(x, sample_rate=sample_rate, **eq).astype(np.float32)
        else:
            x = x.copy()
        x.setflags(write=False)
        samples.append(dataclasses.replace(shot, audio=x, onset_s=shot.onset_s / factor))
    return dataclasses.replace(inst, samples=tuple(samples))


def _choose_instruments(rng, kit: SampleKit) -> dict[str, list[KitInstrument]]:
    """For one track: one instrument per role (toms and crashes: up to three / two)."""
    out = {}
    for role, insts in kit.by_role().items():
        out[role] = _pick_role(rng, role, insts)
    return out


def _pick_role(rng, role: str, insts: Sequence[KitInstrument]) -> list[KitInstrument]:
    order = [insts[i] for i in rng.permutation(len(insts))]
    return order[:3] if role == "tom" else order[:2] if role == "crash" else order[:1]


def _mix_instruments(rng, kit: SampleKit, donors: Sequence[SampleKit],
                     chosen: dict[str, list[KitInstrument]]) -> tuple[dict, dict[str, str]]:
    """``chosen`` with each role's instruments taken, with ``rng``, from one of ``kit`` and the
    ``donors`` that have the role; and role -> the name of the kit it came from."""
    out, source = {}, {}
    for role in sorted(chosen):
        cands = [kit] + [d for d in donors if role in d.by_role() and d is not kit]
        k = cands[int(rng.integers(len(cands)))]
        out[role] = chosen[role] if k is kit else _pick_role(rng, role, k.by_role()[role])
        source[role] = k.name
    return out, source


def _play(rng, kit: SampleKit, hits: Sequence[Hit], duration_s: float,
          vary: np.random.Generator | None = None,
          mix: tuple[np.random.Generator, Sequence[SampleKit]] | None = None,
          info: dict | None = None) -> np.ndarray:
    """The dry mix of ``hits`` on ``kit``, ``duration_s`` long (float64).

    With ``mix = (rng, donors)``, each role is played by an instrument of ``kit`` or of one of
    the ``donors`` (kits at the same sample rate), drawn with that rng; ``info["kit_mix"]`` then
    names the kit of every role. With ``vary``, every instrument played is then varied by
    :func:`vary_instrument` with draws from ``vary``.
    """
    sr = kit.sample_rate
    n = int(round(duration_s * sr))
    out = np.zeros(n + 5 * sr)
    chosen = _choose_instruments(rng, kit)
    if mix is not None:
        chosen, source = _mix_instruments(mix[0], kit, mix[1], chosen)
        if info is not None:
            info["kit_mix"] = source
    if vary is not None:
        chosen = {role: [vary_instrument(i, rng=vary, sample_rate=sr) for i in insts]
                  for role, insts in sorted(chosen.items())}
    level = {r: 10 ** ((db + rng.uniform(-3, 3)) / 20) for r, db in _ROLE_LEVEL_DB.items()}
    norm = {id(i): 1.0 / max(float(np.abs(s.audio).max()) * s.gain for s in i.samples)
            for insts in chosen.values() for i in insts}
    counters = {id(i): int(rng.integers(16)) for insts in chosen.values() for i in insts}
    chokes = np.array([h.time_s for h in hits if h.role in ("hihat_closed", "hihat_pedal")])
    for h in hits:
        insts = chosen[h.role]
        inst = insts[h.slot % len(insts)]
        shot = _pick_sample(inst, h.velocity, counters[id(inst)])
        counters[id(inst)] += 1
        gain = (level[h.role] * norm[id(inst)] * shot.gain
                * (h.velocity / max(shot.hi_velocity, 1e-3)) ** 1.5)
        x = shot.audio
        if h.role == "hihat_open":  # choked by the next closed / pedal hat
            later = chokes[chokes > h.time_s + 1e-3]
            if later.size:
                m = min(x.size, int((later[0] - h.time_s + shot.onset_s + 0.01) * sr))
                fade = min(m, int(0.01 * sr))
                x = x[:m] * np.concatenate([np.ones(m - fade), np.linspace(1.0, 0.0, fade)])
        i0 = int(round((h.time_s - shot.onset_s) * sr))
        if i0 < 0:
            x, i0 = x[-i0:], 0
        out[i0:i0 + x.size] += gain * x
    return out[:n]


def _annotate(hits: Sequence[Hit]) -> list[tuple[float, str]]:
    """Labelled onsets; two hits of one class within 30 ms are one event, at the louder hit."""
    kept: list[Hit] = []
    last: dict[str, int] = {}
    for h in sorted(hits, key=lambda h: h.time_s):
        label = ROLE_LABELS[h.role]
        if label is None:
            continue
        j = last.get(label)
        if j is not None and h.time_s - kept[j].time_s < _MERGE_S:
            if h.velocity > kept[j].velocity:
                kept[j] = h
            continue
        last[label] = len(kept)
        kept.append(h)
    return sorted((round(h.time_s, 6), ROLE_LABELS[h.role]) for h in kept)


def _render(rng, kit: SampleKit, duration_s: float, *, backing_music: float,
            style: str | None = None,
            vary: np.random.Generator | None = None,
            mix: tuple[np.random.Generator, Sequence[SampleKit]] | None = None,
            ) -> tuple[np.ndarray, list[tuple[float, str]], dict]:
    hits, info = perform(rng, duration_s, available=frozenset(kit.by_role()), style=style)
    dry = _play(rng, kit, hits, duration_s, vary=vary, mix=mix, info=info)
    chain = draw_recording_chain(rng=rng, backing_music_probability=backing_music)
    audio = apply_recording_chain(dry, chain, rng=rng, sample_rate=kit.sample_rate,
                                  bpm=info["bpm"])
    info = {**info, "bpm": round(info["bpm"], 2), "recording": chain.to_dict()}
    return audio, _annotate(hits), info


def render_drum_track(*, seed: int, kit_id: int | None = None, kit: SampleKit | None = None,
                      duration_s: float = 30.0, sample_rate: int = 44100,
                      backing_music: float = 0.0,
                      style: str | None = None) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Render one drum track and its KD / SD / HH onsets.

    Args:
        seed: seed of the track (performance, mix, recording).
        kit_id: a synthetic kit (a deterministic parameter draw; different ids differ). Give
            either ``kit_id`` or ``kit``.
        kit: a recorded kit (:func:`~softloc.data.generators.kits.load_kits`), at
            ``sample_rate``.
        duration_s: length in seconds (default 30).
        sample_rate: in Hz (default 44100).
        backing_music: probability of synthesised music under the drums (default 0).
        style: a groove style of :data:`~softloc.data.generators.grooves.STYLES` (default: a
            random one).

    Returns:
        ``(audio, events)``: float32 mono ``(samples,)`` and sorted ``(onset_s, label)`` of the
        labelled hits (toms, cymbals and percussion are not in ``events``).
    """
    fn = "render_drum_track"
    if not duration_s > 0:
        raise ValueError(f"{fn}: `duration_s` must be > 0, got {duration_s}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate < 8000:
        raise ValueError(f"{fn}: `sample_rate` must be an int >= 8000, got {sample_rate!r}")
    if (kit_id is None) == (kit is None):
        raise ValueError(f"{fn}: give exactly one of `kit_id` and `kit`")
    if style is not None and style not in STYLES:
        raise ValueError(f"{fn}: `style` must be one of {tuple(STYLES)}, got {style!r}")
    if kit is None:
        kit = make_synthetic_kit(seed=seed, kit_id=int(kit_id), sample_rate=sample_rate)
    elif kit.sample_rate != sample_rate:
        raise ValueError(f"{fn}: `kit` is at {kit.sample_rate} Hz, `sample_rate` is "
                         f"{sample_rate}; load the kit at the sample rate of the track")
    audio, events, _ = _render(np.random.default_rng([seed, 2]), kit, duration_s,
                               backing_music=backing_music, style=style)
    return audio, events


# ----------------------------------------------------------------------------- dataset

def _slug(kit: SampleKit) -> str:
    if kit.kind == "synthetic":
        return kit.name.split()[-1]
    return "-" + re.sub(r"[^a-z0-9]+", "-", kit.name.lower()).strip("-")


def _split_kit_lists(seed: int, sample_rate: int, kit_paths, system_kits: bool,
                     n_synthetic: dict[str, int], n_files: dict[str, int],
                     exclude: Sequence[str] = ()) -> dict[str, list[SampleKit]]:
    """The kits each split plays, in the order its files cycle through them.

    Recorded kits are split by family before they are read; each split's recorded and synthetic
    kits are shuffled with ``seed`` and read lazily, in that order, until there are as many
    usable kits as files (so a small dataset reads few kits).
    """
    sources = discover_kits(kit_paths, system=system_kits, exclude=exclude)
    if not sources:
        log.warning("synthesize_drum_dataset: no recorded drum kit found (searched %s); using "
                    "synthetic kits only. Install the Debian packages hydrogen-drumkits and "
                    "fluid-soundfont-gm, or pass kits=[...] (--kits).",
                    "the system kit folders" if system_kits else "only the given paths")
    by_split = split_kits(sources, seed=seed)
    out = {}
    for split, n_synth in n_synthetic.items():
        entries: list = by_split[split] + [_KIT_OFFSET[split] + k for k in range(n_synth)]
        if n_files[split] and not entries:
            raise ValueError(f"synthesize_drum_dataset: no kit for the {split} split (no recorded "
                             f"kit went there and `n_{split}_kits` is 0)")
        order = np.random.default_rng([seed, 11, _SPLIT_CODE[split]]).permutation(len(entries))
        kits: list[SampleKit] = []
        for j in order:
            if len(kits) == n_files[split]:
                break
            e = entries[j]
            if isinstance(e, int):
                kits.append(make_synthetic_kit(seed=seed, kit_id=e, sample_rate=sample_rate))
            else:
                kits += load_kits([e], sample_rate=sample_rate)
        if n_files[split] and not kits:
            raise ValueError(f"synthesize_drum_dataset: none of the kits of the {split} split "
                             f"could be read (see the log); add synthetic kits "
                             f"(`n_{split}_kits`)")
        out[split] = kits
    return out


def synthesize_drum_dataset(out_dir: str | os.PathLike, *, seed: int = 0,
                            kits: Sequence[str | os.PathLike] = (), system_kits: bool = True,
                            exclude_kits: Sequence[str] = (),
                            n_train_files: int = 40, n_valid_files: int = 6,
                            n_test_files: int = 10, file_duration_s: float = 30.0,
                            n_train_kits: int = 10, n_valid_kits: int = 3, n_test_kits: int = 5,
                            backing_music: float = 0.2, scattered: float = 0.0,
                            vary_kits: float = 0.0, mix_kits: float = 0.0, sample_rate: int = 44100,
                            window_s: float = 1.5, hop_s: float = 0.5,
                            overwrite: bool = False) -> DatasetIndex:
    """Write a KD / SD / HH drum dataset in the generic layout and return its index.

    Writes ``out_dir/audio/*.wav`` (16-bit mono), ``annotations/*.txt`` (exact onsets: where
    each labelled sound starts), ``counts.csv`` (counts per class in ``window_s`` windows at
    ``hop_s`` steps, for every file), ``splits/{train,valid,test}.txt`` and ``synth_drums.json``
    (the settings, the kits of every split, and per file its kit, style, tempo and recording
    chain). Each split's kits are shuffled with ``seed`` and its files cycle through them (with
    fewer files than kits, only the kits played are read); stems are
    ``<split>_<index>_kit<kit>``. The default size is 20 min of training audio (40 x 30 s),
    3 min of validation and 5 min of test audio.

    Args:
        out_dir: target folder; must be absent or empty unless ``overwrite``.
        seed: everything is a deterministic function of it and of the kits found (default 0).
        kits: recorded kits to use besides the system ones (see
            :func:`~softloc.data.generators.kits.discover_kits`).
        system_kits: also use the kits installed in the system folders (default True).
        exclude_kits: names of kits never to use (kept for your own evaluation): a kit is left
            out when its name or a folder / file name on its path contains one of them, ignoring
            case and punctuation (``discover_kits(exclude=...)``).
        n_train_files, n_valid_files, n_test_files: files per split.
        file_duration_s: length of each file in seconds (default 30).
        n_train_kits, n_valid_kits, n_test_kits: synthetic kits per split, added to the recorded
            kits of that split (default 10 / 3 / 5; 0 is allowed when recorded kits are found).
        backing_music: fraction (probability per file) of files with music under the drums.
        scattered: probability per *training* file of a scattered performance
            (:data:`~softloc.data.generators.grooves.SCATTERED`: every instrument struck at
            random times, no groove), so that a window's counts cannot be told from its rhythm
            alone (default 0; validation and test files are always grooves).
        vary_kits: probability per *training* file that every instrument it plays is retuned
            and recoloured (:func:`vary_instrument`: +-3 semitones, +-6 dB EQ bands), so that
            the network hears more drums than the kits hold (default 0; validation and test
            files play their kits as recorded).
        mix_kits: probability per *training* file that each of its roles (kick, snare, hi-hat,
            toms, ...) is played by an instrument of a random training kit that has the role,
            so that the network meets combinations no single kit holds (default 0). The
            manifest's ``kit_mix`` names the kit of every role of such a file.
        sample_rate: in Hz (default 44100).
        window_s, hop_s: counts.csv windows (default 1.5 s every 0.5 s, as in the paper).
        overwrite: allow writing into a non-empty folder: files of the same names are replaced
            and the audio/annotation files of an earlier run of this generator (listed in its
            ``synth_drums.json``) are removed; other files stay.

    Returns:
        the :class:`~softloc.data.layout.DatasetIndex` of the written dataset (read back and
        validated with :func:`~softloc.data.layout.load_dataset`).

    Raises:
        FileExistsError: ``out_dir`` is not empty and ``overwrite`` is False.
        FileNotFoundError: a path in ``kits`` does not exist.
        ValueError: a bad size or rate, or a split left without kits.
    """
    fn = "synthesize_drum_dataset"
    for name, value, lo in (("n_train_files", n_train_files, 1),
                            ("n_valid_files", n_valid_files, 0),
                            ("n_test_files", n_test_files, 0), ("n_train_kits", n_train_kits, 0),
                            ("n_valid_kits", n_valid_kits, 0), ("n_test_kits", n_test_kits, 0),
                            ("sample_rate", sample_rate, 8000)):
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ValueError(f"{fn}: `{name}` must be an int >= {lo}, got {value!r}")
    if not file_duration_s >= window_s > 0 or not hop_s > 0:
        raise ValueError(f"{fn}: need file_duration_s >= window_s > 0 and hop_s > 0, got "
                         f"file_duration_s={file_duration_s}, window_s={window_s}, hop_s={hop_s}")
    if not 0.0 <= backing_music <= 1.0:
        raise ValueError(f"{fn}: `backing_music` must lie in [0, 1], got {backing_music}")
    for name, value in (("scattered", scattered), ("vary_kits", vary_kits),
                        ("mix_kits", mix_kits)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{fn}: `{name}` must lie in [0, 1], got {value}")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out}: folder is not empty; choose a new folder or pass "
                              "overwrite=True")
    t0 = time.perf_counter()
    if overwrite:
        _remove_earlier_outputs(out)
    sizes = {"train": n_train_files, "valid": n_valid_files, "test": n_test_files}
    split_kits_ = _split_kit_lists(seed, sample_rate, kits, system_kits,
                                   {"train": n_train_kits, "valid": n_valid_kits,
                                    "test": n_test_kits}, sizes, exclude_kits)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[str]] = {}
    windows, manifest = [], []
    for split, n_files in sizes.items():
        splits[split] = []
        for i in range(n_files):
            kit = split_kits_[split][i % len(split_kits_[split])]
            stem = f"{split}_{i:03d}_kit{_slug(kit)}"
            rng = np.random.default_rng([seed, _SPLIT_CODE[split], i])
            # Its own stream: with scattered=0 every file is the one earlier versions wrote.
            scatter = (split == "train" and np.random.default_rng(
                [seed, _SPLIT_CODE[split], i, 1]).random() < scattered)
            vary_rng = np.random.default_rng([seed, _SPLIT_CODE[split], i, 2])
            vary = split == "train" and vary_rng.random() < vary_kits
            mix_rng = np.random.default_rng([seed, _SPLIT_CODE[split], i, 3])
            mix = split == "train" and mix_rng.random() < mix_kits
            audio, events, info = _render(rng, kit, file_duration_s, backing_music=backing_music,
                                          style=SCATTERED if scatter else None,
                                          vary=vary_rng if vary else None,
                                          mix=(mix_rng, split_kits_[split]) if mix else None)
            info = {**info, "varied_kit": bool(vary)}
            _write_wav(out / "audio" / f"{stem}.wav", audio, sample_rate, overwrite)
            write_annotation_file(out / "annotations" / f"{stem}.txt", events,
                                  overwrite=overwrite)
            windows += count_windows(stem, events, file_duration_s, window_s=window_s,
                                     hop_s=hop_s, classes=DRUM_CLASSES)
            splits[split].append(stem)
            manifest.append({"stem": stem, "split": split, "kit": kit.name,
                             "kit_kind": kit.kind, "kit_family": kit.family,
                             "n_events": {c: sum(1 for _, lab in events if lab == c)
                                          for c in DRUM_CLASSES}, **info})
    write_counts_csv(out / "counts.csv", windows, classes=DRUM_CLASSES, overwrite=overwrite)
    for split, stems in splits.items():
        write_split_file(out / "splits" / f"{split}.txt", stems, overwrite=overwrite)
    settings = {"generator": "softloc.data.generators.drums", "seed": seed,
                "file_duration_s": file_duration_s, "sample_rate": sample_rate,
                "window_s": window_s, "hop_s": hop_s, "classes": list(DRUM_CLASSES),
                "backing_music": backing_music, "scattered": scattered, "vary_kits": vary_kits,
                "mix_kits": mix_kits,
                "system_kits": system_kits,
                "exclude_kits": list(exclude_kits),
                "kit_paths": [str(k) for k in kits],
                "kits": {s: [{"name": k.name, "kind": k.kind, "family": k.family,
                              "source": k.source} for k in ks] for s, ks in split_kits_.items()},
                "sizes": {k: {"files": v} for k, v in sizes.items()},
                "seconds_to_generate": round(time.perf_counter() - t0, 2), "files": manifest}
    atomic_write_text(out / "synth_drums.json", json.dumps(settings, indent=1))
    return load_dataset(out, labels=DRUM_CLASSES)


def _remove_earlier_outputs(out: Path) -> None:
    """Delete the audio and annotation files an earlier run of this generator listed in
    ``synth_drums.json`` (a smaller rerun would otherwise leave them in the dataset); files the
    generator did not write stay."""
    try:
        earlier = json.loads((out / "synth_drums.json").read_text())
        stems = [str(f["stem"]) for f in earlier.get("files", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return  # no readable manifest: replace same-named files only
    for stem in stems:
        if Path(stem).name != stem:  # a manifest names files, never paths
            continue
        for path in (out / "audio" / f"{stem}.wav", out / "annotations" / f"{stem}.txt"):
            path.unlink(missing_ok=True)


def _write_wav(path: Path, audio: np.ndarray, sr: int, overwrite: bool) -> None:
    write_wav(path, audio, sr, overwrite=overwrite)
