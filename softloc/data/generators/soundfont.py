"""General-MIDI drum kits from SoundFonts (SF2 / SF3), rendered with tinysoundfont.

Each drum preset (bank 128) of a SoundFont is one kit: every key 35-81 is rendered as one-shots
at several velocities with `tinysoundfont <https://pypi.org/project/tinysoundfont/>`_ (an
optional dependency: ``pip install --no-deps tinysoundfont``; its ``pyaudio`` dependency is only
needed for live playback), named with
:data:`~softloc.data.generators.kit_formats.GM_PERCUSSION_NAMES` and classified by the same name
table as every other kit. The preset list is read from the file's
headers, without the synthesiser.
"""

from __future__ import annotations

import functools
import os
import re
import struct
from pathlib import Path

import numpy as np

from softloc.data.formats import GM_DRUM_MAP
from softloc.data.generators.kit_formats import (
    GM_PERCUSSION_NAMES,
    ROLE_LABELS,
    KitInstrument,
    SampleKit,
    classify_instrument,
    make_one_shot,
)

__all__ = ["read_sf2_kits", "sf2_drum_presets"]

# MIDI velocities of the rendered layers and seconds per hit (cymbals ring longer).
_SF2_VELOCITIES = (40, 70, 100, 127)
_SF2_SECONDS = {"crash": 3.0, "ride": 2.5}
_SF2_DEFAULT_SECONDS = 1.5


def _tinysoundfont():
    try:
        import tinysoundfont
    except ImportError:
        raise ImportError("reading SF2 drum kits needs tinysoundfont: "
                          "pip install --no-deps tinysoundfont") from None
    return tinysoundfont


def _sf2_preset_headers(path: Path) -> list[tuple[str, int, int]]:
    """``(name, program, bank)`` of every preset header (``pdta/phdr``) of an SF2 file."""
    with open(path, "rb") as f:
        riff, _, form = struct.unpack("<4sI4s", f.read(12))
        if riff != b"RIFF" or form != b"sfbk":
            raise ValueError(f"{path}: not a SoundFont 2 file (no RIFF sfbk header)")
        while True:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError(f"{path}: no preset headers (pdta/phdr chunk) found")
            cid, size = struct.unpack("<4sI", head)
            if cid == b"LIST" and f.read(4) == b"pdta":
                end = f.tell() + size - 4
                while f.tell() < end:
                    sid, ssize = struct.unpack("<4sI", f.read(8))
                    if sid == b"phdr":
                        data = f.read(ssize)
                        return [(rec[0].split(b"\0", 1)[0].decode("latin-1").strip(), rec[1],
                                 rec[2]) for rec in struct.iter_unpack("<20sHH14x", data)][:-1]
                    f.seek(ssize + (ssize & 1), 1)
            elif cid == b"LIST":
                f.seek(size - 4 + (size & 1), 1)
            else:
                f.seek(size + (size & 1), 1)


def sf2_drum_presets(path: str | os.PathLike) -> list[tuple[int, str]]:
    """``(program, name)`` of the drum presets (bank 128) of an SF2 / SF3 file, read from its
    preset headers (no synthesiser needed).

    Presets named ``"<name of an earlier preset> <number>"`` (``Standard 3``) are variants that
    reuse the samples of that preset and are left out, as are the GM/GS sound-effect sets
    (``SFX``), which hold no drums.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a SoundFont 2 file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SoundFont file not found")
    out: list[tuple[int, str]] = []
    for name, program, bank in sorted(_sf2_preset_headers(path), key=lambda h: h[1]):
        if bank != 128 or any(p == program for p, _ in out):
            continue
        base = re.sub(r"\s+\d+$", "", name)
        if (base != name and any(n == base for _, n in out)) or re.search(r"(?i)\bsfx\b", name):
            continue
        out.append((program, name))
    return out


@functools.lru_cache(maxsize=2)
def _loaded_synth(path: str, sample_rate: int):
    """A synthesiser with the SoundFont loaded (kept for the next presets of the same file)."""
    tsf = _tinysoundfont()
    synth = tsf.Synth(samplerate=sample_rate)
    try:
        sfid = synth.sfload(path)
    except Exception as e:  # noqa: BLE001 - tinysoundfont raises plain Exceptions
        raise ValueError(f"{path}: cannot load the SoundFont ({e})") from None
    return synth, sfid


def read_sf2_kits(path: str | os.PathLike, *, programs: list[int] | tuple[int, ...],
                  sample_rate: int) -> list[SampleKit]:
    """Render General-MIDI drum presets (bank 128) of an SF2 / SF3 file, one kit per program.

    Every key 35-81 that sounds is rendered at MIDI velocities 40, 70, 100 and 127 (each layer
    played for the velocities nearest to it; percussion keys at 127 only) and named after
    :data:`GM_PERCUSSION_NAMES`. The kits of one file share a family (they share recordings).

    Raises:
        ImportError: tinysoundfont is not installed.
        ValueError: not a SoundFont, or no such drum preset.
    """
    path = Path(path)
    synth, sfid = _loaded_synth(str(path), int(sample_rate))
    kits = []
    for program in programs:
        try:
            synth.program_select(9, sfid, 128, int(program), is_drums=True)
        except Exception as e:  # noqa: BLE001
            raise ValueError(f"{path}: no drum preset {program} in bank 128 ({e})") from None
        preset = synth.sfpreset_name(sfid, 128, int(program)) or str(program)
        instruments = tuple(_render_sf2_key(synth, key, sample_rate, f"{path}: preset {program}")
                            for key in GM_PERCUSSION_NAMES)
        kits.append(SampleKit(f"{path.stem} {preset}", path.stem, "sf2", sample_rate,
                              tuple(i for i in instruments if i is not None), str(path)))
    return kits


def _render_sf2_key(synth, key: int, sample_rate: int, where: str) -> KitInstrument | None:
    gm_name = GM_PERCUSSION_NAMES[key]
    role = classify_instrument(gm_name)
    assert role is not None and ROLE_LABELS[role] == GM_DRUM_MAP.get(key), (key, gm_name)
    vels = np.array(_SF2_VELOCITIES) / 127
    edges = np.concatenate([[0.0], (vels[1:] + vels[:-1]) / 2, [1.0]])
    n = int(_SF2_SECONDS.get(role, _SF2_DEFAULT_SECONDS) * sample_rate)
    samples = []
    # percussion distractors: one layer (the loudest) is enough
    for j, vel in enumerate(_SF2_VELOCITIES):
        if role == "perc" and j < len(_SF2_VELOCITIES) - 1:
            continue
        synth.sounds_off(9)
        synth.generate(256)  # let the voices of the previous hit go
        synth.noteon(9, key, vel)
        buf = np.frombuffer(synth.generate(n), dtype=np.float32)
        buf = 0.5 * (buf[0::2] + buf[1::2])  # interleaved stereo -> mono
        lo = 0.0 if role == "perc" else edges[j]
        shot = make_one_shot(buf, sample_rate, lo_velocity=lo, hi_velocity=edges[j + 1],
                             source=f"{where} key {key} velocity {vel}")
        if shot is not None:
            samples.append(shot)
    return KitInstrument(gm_name, role, tuple(samples)) if samples else None
