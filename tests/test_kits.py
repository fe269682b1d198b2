"""Sample kits: one-shot onsets, the name table, the four readers, discovery, hold-out, splits.

Every kit here is built in ``tmp_path``; nothing needs the Debian kit packages.
"""

import hashlib
import logging
import struct

import numpy as np
import pytest
import soundfile as sf

from softloc.data.formats import GM_DRUM_MAP
from softloc.data.generators import kits as kits_mod
from softloc.data.generators.kit_formats import (
    GM_PERCUSSION_NAMES,
    PRE_ROLL_S,
    ROLE_LABELS,
    classify_instrument,
    find_sound_start,
    make_one_shot,
    read_folder_kit,
    read_hydrogen_kit,
    read_sfz_kit,
)
from softloc.data.generators.kits import (
    discover_kits,
    is_evaluation_holdout,
    load_kits,
    split_kits,
)
from softloc.data.generators.soundfont import read_sf2_kits, sf2_drum_presets

SR = 16000


def _hit(kind: str, *, lead_s: float = 0.0, noise_db: float | None = None, seed: int = 0,
         dur_s: float = 0.25, sr: int = SR) -> np.ndarray:
    """A synthetic one-shot: ``lead_s`` of silence (or noise at ``noise_db`` dBFS), then a hit
    with a 1-sample attack and an exponential decay."""
    rng = np.random.default_rng(seed)
    n_lead, n = int(round(lead_s * sr)), int(dur_s * sr)
    t = np.arange(n) / sr
    if kind == "kick":
        body = np.sin(2 * np.pi * 60 * t) * np.exp(-t / 0.08)
    elif kind == "tom":
        body = np.sin(2 * np.pi * 150 * t) * np.exp(-t / 0.1)
    else:
        body = rng.standard_normal(n) * np.exp(-t / (0.02 if kind == "hat" else 0.06))
    body = 0.8 * body / np.abs(body).max()
    x = np.concatenate([np.zeros(n_lead), body])
    if noise_db is not None:
        x += 10 ** (noise_db / 20) * rng.standard_normal(x.size)
    return x.astype(np.float32)


# ---------------------------------------------------------------------------- sound start

@pytest.mark.parametrize("lead_s,noise_db", [(0.2, None), (0.2, -60.0), (0.137, -45.0),
                                             (0.0, None), (0.05, -70.0)])
@pytest.mark.parametrize("kind", ["kick", "snare", "hat"])
def test_sound_start_is_where_the_hit_begins_not_the_file_start(kind, lead_s, noise_db):
    x = _hit(kind, lead_s=lead_s, noise_db=noise_db, seed=3)
    assert find_sound_start(x, sample_rate=SR) == pytest.approx(lead_s, abs=0.0015)


def test_sound_start_of_silence_is_zero():
    assert find_sound_start(np.zeros(1000, np.float32), sample_rate=SR) == 0.0


def test_one_shot_keeps_the_pre_roll_and_reports_the_onset_in_what_it_kept():
    x = _hit("snare", lead_s=0.3, noise_db=-55.0)
    shot = make_one_shot(x, SR)
    assert shot.onset_s == pytest.approx(PRE_ROLL_S, abs=0.0015)
    # the kept audio is the original from (sound start - pre-roll) on
    cut = int(round((0.3 - shot.onset_s) * SR))
    n = min(shot.audio.size - int(0.005 * SR), 2000)
    assert np.allclose(shot.audio[:n], x[cut:cut + n], atol=1e-6)
    assert not shot.audio.flags.writeable
    assert make_one_shot(np.zeros(500, np.float32), SR) is None


# ---------------------------------------------------------------------------- name table

@pytest.mark.parametrize("name,role", [
    ("Kick", "kick"), ("BassDrum", "kick"), ("c3 - bass drum 1", "kick"), ("bd1", "kick"),
    ("Snare Jazz", "snare"), ("snare1", "snare"), ("PowR_SN_1", "snare"),
    ("Stick", "snare_alt"), ("Hand Clap", "snare_alt"), ("Side Stick", "snare_alt"),
    ("Closed HH", "hihat_closed"), ("closehihat3", "hihat_closed"), ("Hat Ring 1", "hihat_closed"),
    ("Open HH", "hihat_open"), ("openhat2", "hihat_open"), ("Hat Op Dirty", "hihat_open"),
    ("Side OHH", "hihat_open"), ("Hi Hat Free", "hihat_open"),
    ("Pedal HH", "hihat_pedal"), ("VariBreaks Hat 1 Pd", "hihat_pedal"),
    ("Floor Tom", "tom"), ("tom2_1", "tom"), ("Crash Left", "crash"), ("cra_Rock_a", "crash"),
    ("Ride Bell", "ride"), ("Ride Cymbal 1", "ride"), ("Cowbell", "perc"),
    ("Open Hi Conga", "perc"), ("Tambourine", "perc"),
    ("Snare Roll", None), ("FX", None), ("Sample: beats_08-37.flac", None), ("17", None),
])
def test_instrument_names_map_to_the_documented_roles(name, role):
    assert classify_instrument(name) == role


def test_gm_names_give_the_labels_of_the_gm_drum_map():
    for key, name in GM_PERCUSSION_NAMES.items():
        role = classify_instrument(name)
        assert role is not None, name
        assert ROLE_LABELS[role] == GM_DRUM_MAP.get(key), (key, name)
    assert set(GM_DRUM_MAP) <= set(GM_PERCUSSION_NAMES)


# ---------------------------------------------------------------------------- readers

def _write(path, x, sr=SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr)


_H2_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>Tiny Test Kit</name>
 <instrumentList>
  <instrument><id>0</id><name>Kick</name><volume>0.5</volume>
   <layer><filename>kick_soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
   <layer><filename>kick_hard.wav</filename><min>0.5</min><max>1</max><gain>2</gain></layer>
  </instrument>
  <instrument><id>1</id><name>Snare</name><filename>sn.flac</filename></instrument>
  <instrument><id>2</id><name>Closed HH</name>
   <instrumentComponent><layer><filename>hh.wav</filename><min>0</min><max>1</max></layer>
   </instrumentComponent></instrument>
  <instrument><id>3</id><name>Snare Roll</name>
   <layer><filename>roll.wav</filename><min>0</min><max>1</max></layer></instrument>
  <instrument><id>4</id><name>Tom Hi</name>
   <layer><filename>missing.wav</filename><min>0</min><max>1</max></layer></instrument>
 </instrumentList>
</drumkit_info>
"""


def _hydrogen_kit(folder):
    folder.mkdir(parents=True)
    (folder / "drumkit.xml").write_text(_H2_XML)
    _write(folder / "kick_soft.wav", 0.3 * _hit("kick", lead_s=0.04, noise_db=-60))
    _write(folder / "kick_hard.wav", _hit("kick", lead_s=0.02))
    _write(folder / "sn.flac", _hit("snare", lead_s=0.1, noise_db=-50))
    _write(folder / "hh.wav", _hit("hat"))
    _write(folder / "roll.wav", _hit("snare"))
    return folder


def test_hydrogen_kit_layers_volumes_and_onsets(tmp_path):
    kit = read_hydrogen_kit(_hydrogen_kit(tmp_path / "h2"), sample_rate=SR)
    assert kit.name == "Tiny Test Kit" and kit.kind == "hydrogen" and kit.missing_labels() == []
    roles = {i.name: i.role for i in kit.instruments}
    assert roles == {"Kick": "kick", "Snare": "snare", "Closed HH": "hihat_closed"}
    kick = kit.by_role()["kick"][0]
    assert [(s.lo_velocity, s.hi_velocity, s.gain) for s in kick.samples] == [
        (0.0, 0.5, 0.5), (0.5, 1.0, 1.0)]
    for inst in kit.instruments:
        for s in inst.samples:
            expected = 0.0 if s.source.endswith("hh.wav") else PRE_ROLL_S  # hh.wav: no lead
            assert s.onset_s == pytest.approx(expected, abs=0.0015)


def test_hydrogen_kit_reports_bad_xml_with_file_and_line(tmp_path):
    (tmp_path / "drumkit.xml").write_text("<drumkit_info>\n<name>x</name>\n<oops>\n")
    with pytest.raises(ValueError, match=r"drumkit.xml:4: not well-formed"):
        read_hydrogen_kit(tmp_path, sample_rate=SR)


def test_sfz_kit_regions_inherit_and_map_by_name_or_gm_key(tmp_path):
    _write(tmp_path / "smp" / "s1.wav", _hit("kick", lead_s=0.03))
    _write(tmp_path / "smp" / "s2.wav", _hit("kick", seed=1))
    _write(tmp_path / "smp" / "snare_a.wav", _hit("snare", lead_s=0.01, noise_db=-50))
    _write(tmp_path / "smp" / "x42.wav", _hit("hat"))
    _write(tmp_path / "smp" / "x49.wav", _hit("hat", seed=4))
    (tmp_path / "kit.sfz").write_text(
        "// a comment\n<control> default_path=smp/\n"
        "<group> key=c2 volume=-6\n"
        "<region> sample=s1.wav lovel=0 hivel=63\n"
        "<region> sample=s2.wav lovel=64 hivel=127\n"
        "<region> sample=s2.wav trigger=release\n"
        "<group>\n<region> sample=snare_a.wav lokey=60 hikey=62 // by its name\n"
        "<region> sample=x42.wav key=42\n<region> sample=x49.wav key=c#3\n")
    kit = read_sfz_kit(tmp_path / "kit.sfz", sample_rate=SR)
    by = kit.by_role()
    assert set(by) == {"kick", "snare", "hihat_closed", "crash"}  # c#3 = 49, crash cymbal 1
    kick = by["kick"][0]
    assert [(round(s.lo_velocity * 127), round(s.hi_velocity * 127)) for s in kick.samples] == [
        (0, 63), (64, 127)]
    assert all(s.gain == pytest.approx(10 ** (-6 / 20)) for s in kick.samples)
    assert by["snare"][0].samples[0].gain == 1.0


def test_sfz_errors_name_file_and_line(tmp_path):
    (tmp_path / "bad.sfz").write_text("<region>\n sample=kick.wav key=h2\n")
    with pytest.raises(ValueError, match=r"bad.sfz:2: expected a MIDI key"):
        read_sfz_kit(tmp_path / "bad.sfz", sample_rate=SR)


def _folder_kit(root):
    _write(root / "Kicks" / "01.wav", _hit("kick", lead_s=0.05, noise_db=-60))
    _write(root / "Kicks" / "02.wav", _hit("kick", seed=2))
    _write(root / "snare_soft.wav", 0.4 * _hit("snare"))
    _write(root / "hh closed.wav", _hit("hat"))
    _write(root / "ohh.wav", _hit("hat", seed=5, dur_s=0.5))
    _write(root / "tom_hi.wav", _hit("tom"))
    _write(root / "tom_lo.wav", _hit("tom", seed=1))
    _write(root / "fx_zap.wav", _hit("snare"))
    (root / "readme.txt").write_text("not audio")
    return root


def test_folder_kit_classes_from_file_or_folder_names_and_round_robin(tmp_path):
    kit = read_folder_kit(_folder_kit(tmp_path / "my kit"), sample_rate=SR)
    by = kit.by_role()
    assert set(by) == {"kick", "snare", "hihat_closed", "hihat_open", "tom"}
    assert [len(i.samples) for i in by["kick"]] == [2]  # 01, 02: round-robin of one kick
    assert len(by["tom"]) == 2  # tom_hi and tom_lo are two toms
    onsets = sorted(s.onset_s for s in by["kick"][0].samples)
    assert onsets == pytest.approx([0.0, PRE_ROLL_S], abs=0.0015)


# ---------------------------------------------------------------------------- SF2

def _chunk(cid: bytes, data: bytes) -> bytes:
    return cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _tiny_sf2(path, samples: dict[int, np.ndarray], sr: int = SR) -> None:
    """A minimal SoundFont 2: one drum preset (bank 128, program 0), one instrument with one
    zone per key playing its sample at its own pitch."""
    smpl, shdr, igen, ibag = b"", b"", b"", b""
    for i, (key, x) in enumerate(samples.items()):
        start = len(smpl) // 2
        smpl += (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes() + bytes(92)
        end = start + x.size
        shdr += struct.pack("<20sIIIIIBbHH", f"s{key}".encode(), start, end, start, end, sr,
                            key, 0, 0, 1)
        ibag += struct.pack("<HH", 2 * i, 0)
        igen += struct.pack("<HBB", 43, key, key) + struct.pack("<HH", 53, i)
    n = len(samples)
    shdr += struct.pack("<20sIIIIIBbHH", b"EOS", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    ibag += struct.pack("<HH", 2 * n, 0)
    igen += struct.pack("<HH", 0, 0)
    pdta = _list(
        b"pdta",
        _chunk(b"phdr", struct.pack("<20sHHHIII", b"Tiny Drums", 0, 128, 0, 0, 0, 0)
               + struct.pack("<20sHHHIII", b"Tiny Drums 1", 1, 128, 1, 0, 0, 0)
               + struct.pack("<20sHHHIII", b"EOP", 0, 0, 2, 0, 0, 0)),
        _chunk(b"pbag", struct.pack("<HHHHHH", 0, 0, 1, 0, 2, 0)),
        _chunk(b"pmod", bytes(10)),
        _chunk(b"pgen", struct.pack("<HHHHHH", 41, 0, 41, 0, 0, 0)),
        _chunk(b"inst", struct.pack("<20sH", b"Tiny", 0) + struct.pack("<20sH", b"EOI", n)),
        _chunk(b"ibag", ibag), _chunk(b"imod", bytes(10)), _chunk(b"igen", igen),
        _chunk(b"shdr", shdr))
    info = _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)),
                 _chunk(b"isng", b"EMU8000\0"), _chunk(b"INAM", b"tiny\0\0"))
    body = b"sfbk" + info + _list(b"sdta", _chunk(b"smpl", smpl)) + pdta
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


@pytest.fixture
def tiny_sf2(tmp_path):
    path = tmp_path / "tiny.sf2"
    _tiny_sf2(path, {36: _hit("kick", lead_s=0.02), 38: _hit("snare"), 42: _hit("hat"),
                     49: _hit("hat", seed=3, dur_s=0.6)})
    return path


def test_sf2_presets_are_read_from_the_headers_and_variants_left_out(tiny_sf2):
    assert sf2_drum_presets(tiny_sf2) == [(0, "Tiny Drums")]


def test_sf2_kit_renders_gm_keys_with_their_gm_roles(tiny_sf2):
    pytest.importorskip("tinysoundfont")
    (kit,) = read_sf2_kits(tiny_sf2, programs=[0], sample_rate=SR)
    assert kit.kind == "sf2" and kit.family == "tiny" and kit.missing_labels() == []
    assert {i.name: i.role for i in kit.instruments} == {
        "Bass Drum 1": "kick", "Acoustic Snare": "snare", "Closed Hi-Hat": "hihat_closed",
        "Crash Cymbal 1": "crash"}
    kick = kit.by_role()["kick"][0]
    assert len(kick.samples) == 4
    assert kick.samples[0].lo_velocity == 0.0 and kick.samples[-1].hi_velocity == 1.0
    assert all(abs(s.onset_s - PRE_ROLL_S) <= 0.002 for s in kick.samples)  # 20 ms lead cut
    peaks = [np.abs(s.audio).max() for s in kick.samples]
    assert peaks == sorted(peaks)  # louder layers for higher velocities


# ---------------------------------------------------------------------------- discovery

def test_discovery_finds_every_kind_and_never_the_evaluation_holdout(tmp_path, monkeypatch,
                                                                      tiny_sf2):
    lib = tmp_path / "lib"
    _hydrogen_kit(lib / "drumkits" / "Tiny H2")
    _hydrogen_kit(lib / "drumkits" / "My Secret-Kit 2.0")
    _write(lib / "sfz" / "smp" / "kick.wav", _hit("kick"))
    (lib / "sfz" / "k.sfz").write_text("<region> sample=smp/kick.wav key=36\n")
    tiny_sf2.rename(lib / "tiny.sf2")
    folder = _folder_kit(tmp_path / "one-shots")
    # a stand-in hold-out entry (the real entries are not named in code or tests), of a length
    # no real entry has: the set is read at each call, so extending it is enough
    digest = (13, hashlib.sha256(b"mysecretkit20").hexdigest()[:16])
    assert 13 not in {n for n, _ in kits_mod.EVALUATION_HOLDOUT}
    monkeypatch.setattr(kits_mod, "EVALUATION_HOLDOUT", kits_mod.EVALUATION_HOLDOUT | {digest})
    assert is_evaluation_holdout("drums", "MY_SECRET kit 2.0") and not is_evaluation_holdout("kit")
    found = discover_kits([lib, folder, lib / "tiny.sf2"], system=False)
    assert [(s.kind, s.name) for s in found] == [
        ("hydrogen", "Tiny Test Kit"), ("sfz", "k"), ("folder", "one-shots"),
        ("sf2", "tiny Tiny Drums")]
    assert discover_kits([lib / "drumkits" / "My Secret-Kit 2.0"], system=False) == []
    assert [s.kind for s in discover_kits([lib], system=False, exclude=["TINY"])] == ["sfz"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        discover_kits([tmp_path / "nope"], system=False)


def test_load_kits_skips_kits_without_all_three_classes(tmp_path, caplog):
    _write(tmp_path / "perc" / "conga.wav", _hit("tom"))
    _write(tmp_path / "perc" / "kick.wav", _hit("kick"))
    good = _folder_kit(tmp_path / "good")
    sources = discover_kits([tmp_path / "perc", good], system=False)
    with caplog.at_level(logging.INFO):
        kits = load_kits(sources, sample_rate=SR)
    assert [k.name for k in kits] == ["good"]
    assert "no instrument for HH/SD" in caplog.text


def test_split_keeps_families_whole_and_disjoint_and_is_seeded(tmp_path):
    from softloc.data.generators.kit_formats import SampleKit

    kits = [SampleKit(f"{fam} {i}", fam, "sf2", SR, ()) for fam in "abcdefghij"
            for i in range(1 + (fam == "c") * 3)]
    s1 = split_kits(kits, seed=1)
    assert split_kits(kits, seed=1) == s1
    fams = {k: {x.family for x in v} for k, v in s1.items()}
    assert all(fams[a].isdisjoint(fams[b]) for a, b in [("train", "valid"), ("train", "test"),
                                                        ("valid", "test")])
    assert len(fams["test"]) == len(fams["valid"]) == 2 and len(fams["train"]) == 6
    assert sum(len(v) for v in s1.values()) == len(kits)  # family c's four presets stay together
    assert any(split_kits(kits, seed=s) != s1 for s in range(2, 6))
    two = split_kits(kits[:2], seed=0)
    assert [len(two[k]) for k in ("train", "valid", "test")] == [1, 0, 1]
