"""softloc.data.physionet: WFDB records and annotations -> the generic layout.

Synthetic records are written with ``wfdb.wrsamp`` / ``wfdb.wrann`` (an independent writer);
the shared MIT-BIH record 100 is checked against the numbers of its README.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb

from softloc.data.layout import read_annotation_file, read_counts_csv, read_split_file
from softloc.data.physionet import (
    BEAT_SYMBOLS,
    import_wfdb,
    list_wfdb_records,
    read_wfdb,
    read_wfdb_events,
)
from softloc.data.signals import SignalError, read_signal
from softloc.data.subjects import read_subjects_csv

# wfdb's own writers (used here to make test records) warn about pandas deprecations.
pytestmark = pytest.mark.filterwarnings("ignore:.*inplace keyword")

MITBIH = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mitbih"
if not MITBIH.is_dir():
    MITBIH = Path("/work/shared/data/mitbih")
needs_mitbih = pytest.mark.skipif(not (MITBIH / "100.hea").is_file(),
                                  reason="shared MIT-BIH folder absent")


def _record(folder: Path, name: str, *, fs: int = 250, seconds: float = 25.0, seed: int = 0,
            samples=(100, 600, 1100, 1700, 2300, 3000, 3100, 5000),
            symbols=("N", "N", "+", "V", "N", "~", "N", "/"), ann_fs: int | None = None,
            custom_labels=None) -> np.ndarray:
    """Write a 2-channel record and its .atr; return the written physical signal (time, ch)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=0.5, size=(int(seconds * fs), 2))
    wfdb.wrsamp(name, fs=fs, units=["mV", "mV"], sig_name=["MLII", "V5"], p_signal=x,
                fmt=["16", "16"], write_dir=str(folder))
    wfdb.wrann(name, "atr", np.asarray(samples), symbol=list(symbols), write_dir=str(folder),
               fs=ann_fs if ann_fs is not None else fs, custom_labels=custom_labels)
    return x


@pytest.fixture
def wfdb_dir(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, name in enumerate(["r1", "r2", "r3", "r4"]):
        _record(src, name, seed=i)
    return src


# ----------------------------------------------------------------------------- reading

def test_read_wfdb_matches_the_written_physical_signal(tmp_path):
    x = _record(tmp_path, "r1")
    sig = read_wfdb(tmp_path / "r1")
    assert sig.rate_hz == 250 and sig.channels == ("MLII", "V5") and sig.units == ("mV", "mV")
    assert sig.data.shape == (2, x.shape[0])
    np.testing.assert_allclose(sig.data, x.T, atol=1e-3)  # 16-bit quantisation
    assert read_wfdb(tmp_path / "r1.hea", channels=["V5"]).channels == ("V5",)
    np.testing.assert_allclose(read_signal(tmp_path / "r1").data, sig.data)


def test_events_keep_beats_skip_non_beats_and_use_seconds(tmp_path):
    _record(tmp_path, "r1")
    ev = read_wfdb_events(tmp_path / "r1")
    # '+' and '~' are skipped; every other annotation is a beat at sample / fs.
    assert ev == [(s / 250, "beat") for s in (100, 600, 1700, 2300, 3100, 5000)]
    ev = read_wfdb_events(tmp_path / "r1", labels_from_symbols=True)
    assert [lab for _, lab in ev] == ["N", "N", "V", "N", "N", "/"]


def test_beat_symbols_are_the_mitbih_beat_codes():
    assert set(BEAT_SYMBOLS) == set("NLRBAaJSVrFejnE/fQ?")
    assert set(BEAT_SYMBOLS).isdisjoint(set("+~|[]!x()ptu`'^sT*D=\"@"))


def test_bad_header_names_the_record(tmp_path):
    (tmp_path / "bad.hea").write_text("this is not a header\n")
    with pytest.raises(SignalError, match=r"bad\.hea: bad header"):
        read_wfdb(tmp_path / "bad")
    with pytest.raises(FileNotFoundError, match=r"nope\.hea: WFDB header file not found"):
        read_wfdb(tmp_path / "nope")


def test_missing_annotation_file_names_record_and_extension(tmp_path):
    _record(tmp_path, "r1")
    with pytest.raises(FileNotFoundError, match=r"r1\.qrs: annotation file not found \(record "
                                                r"'r1', annotation 'qrs'\)"):
        read_wfdb_events(tmp_path / "r1", annotation="qrs")


def test_unknown_symbol_names_record_annotation_and_field(tmp_path):
    labels = pd.DataFrame({"label_store": [42], "symbol": ["Z"], "description": ["custom"]})
    _record(tmp_path, "r1", samples=(100, 200, 300), symbols=("N", "N", "Z"),
            custom_labels=labels)
    with pytest.raises(SignalError, match=r"r1\.atr: annotation 2 \(sample 300\): unknown symbol "
                                          r"'Z' in field 'symbol'"):
        read_wfdb_events(tmp_path / "r1")
    # declaring it a beat symbol makes it a beat
    assert len(read_wfdb_events(tmp_path / "r1", beat_symbols=("N", "Z"))) == 3


def test_rate_mismatch_between_annotation_and_header(tmp_path):
    _record(tmp_path, "r1", fs=360, ann_fs=250)
    with pytest.raises(SignalError, match=r"r1\.atr: rate mismatch in field 'fs': the annotations "
                                          r"are at 250 Hz but header r1\.hea says 360 Hz"):
        read_wfdb_events(tmp_path / "r1")


def test_annotation_past_the_end_is_an_error(tmp_path):
    _record(tmp_path, "r1", seconds=2.0, samples=(100, 900), symbols=("N", "N"))
    with pytest.raises(SignalError, match=r"r1\.atr: annotation 1: field 'sample' = 900 lies "
                                          "outside the record"):
        read_wfdb_events(tmp_path / "r1")


def test_list_records_uses_records_file_when_present(wfdb_dir):
    assert list_wfdb_records(wfdb_dir) == ["r1", "r2", "r3", "r4"]
    (wfdb_dir / "RECORDS").write_text("r3\nr1\n")
    assert list_wfdb_records(wfdb_dir) == ["r3", "r1"]
    (wfdb_dir / "RECORDS").write_text("r3\nr9\n")
    with pytest.raises(SignalError, match=r"RECORDS:2: record 'r9' has no header"):
        list_wfdb_records(wfdb_dir)


# ----------------------------------------------------------------------------- import

def _brute_counts(times, duration_s, window_s):
    n = int(np.floor(duration_s / window_s + 1e-9))
    return [sum(1 for t in times if k * window_s <= t < (k + 1) * window_s) for k in range(n)]


def test_import_writes_signals_events_counts_subjects_and_a_split(wfdb_dir, tmp_path):
    out = tmp_path / "ds"
    summary = import_wfdb(wfdb_dir, out, window_s=10.0, seed=3)
    assert summary.records == ("r1", "r2", "r3", "r4") and summary.classes == ("beat",)
    rows = read_counts_csv(out / "counts.csv")
    for rec in summary.records:
        sig = read_signal(out / "signals" / f"{rec}.npy")
        ref = read_wfdb(wfdb_dir / rec)
        np.testing.assert_array_equal(sig.data, ref.data)
        assert sig.rate_hz == 250
        ev = read_annotation_file(out / "annotations" / f"{rec}.txt")
        assert [t for t, _ in ev] == pytest.approx([s / 250 for s in
                                                    (100, 600, 1700, 2300, 3100, 5000)])
        counts = [c for _, f, s, e, lab, c in rows if f == rec]
        assert counts == _brute_counts([t for t, _ in ev], 25.0, 10.0)  # 2 whole windows
    assert read_subjects_csv(out / "subjects.csv") == {r: r for r in summary.records}
    split = {k: [s for _, s in read_split_file(out / "splits" / f"{k}.txt")]
             for k in ("train", "valid", "test")}
    assert sorted(sum(split.values(), [])) == list(summary.records)
    assert split == summary.splits


def test_import_split_test_and_labels_from_symbols(wfdb_dir, tmp_path):
    out = tmp_path / "ds"
    summary = import_wfdb(wfdb_dir, out, split="test", labels_from_symbols=True)
    assert summary.splits == {"train": [], "valid": [], "test": ["r1", "r2", "r3", "r4"]}
    assert summary.classes == ("/", "N", "V")
    rows = [r for r in read_counts_csv(out / "counts.csv") if r[1] == "r1"]
    # one row per (window, class); window [0, 10) s holds N at 0.4, 2.4, 9.2, 12.4 -> 3 N ...
    assert [(r[2], r[4], r[5]) for r in rows[:3]] == [(0.0, "/", 0), (0.0, "N", 3),
                                                       (0.0, "V", 1)]


def test_import_is_all_or_nothing_and_refuses_to_overwrite(wfdb_dir, tmp_path):
    (wfdb_dir / "r3.atr").unlink()
    out = tmp_path / "ds"
    with pytest.raises(FileNotFoundError, match=r"r3\.atr: annotation file not found"):
        import_wfdb(wfdb_dir, out)
    assert not out.exists()
    import_wfdb(wfdb_dir, out, records=["r1", "r2"])
    with pytest.raises(FileExistsError, match="r1.npy"):
        import_wfdb(wfdb_dir, out, records=["r1", "r2"])
    import_wfdb(wfdb_dir, out, records=["r1", "r2"], overwrite=True)


def test_import_argument_errors(wfdb_dir, tmp_path):
    with pytest.raises(ValueError, match="`split` must be None"):
        import_wfdb(wfdb_dir, tmp_path / "a", split="train")
    with pytest.raises(ValueError, match="`window_s` must be"):
        import_wfdb(wfdb_dir, tmp_path / "a", window_s=0)
    with pytest.raises(ValueError, match="no subject for records"):
        import_wfdb(wfdb_dir, tmp_path / "a", subjects={"r1": "p1"})


def test_import_groups_records_of_one_subject_on_one_side(wfdb_dir, tmp_path):
    subjects = {"r1": "p1", "r2": "p1", "r3": "p2", "r4": "p3"}
    for seed in range(6):
        s = import_wfdb(wfdb_dir, tmp_path / f"d{seed}", subjects=subjects, seed=seed)
        side = {r: k for k, v in s.splits.items() for r in v}
        assert side["r1"] == side["r2"]


# ----------------------------------------------------------------------------- shared record

@needs_mitbih
def test_shared_record_100_matches_its_readme():
    sig = read_wfdb(MITBIH / "100")
    assert sig.rate_hz == 360 and sig.channels == ("MLII",) and sig.n_samples == 650000
    ev = read_wfdb_events(MITBIH / "100")
    assert len(ev) == 2273  # README: "100: 2273 beats"
    assert ev[0] == (77 / 360, "beat")
    n_v = sum(lab == "V" for _, lab in read_wfdb_events(MITBIH / "106", labels_from_symbols=True))
    assert n_v == 520  # README: "106: 2027 (520 V)"


@needs_mitbih
def test_shared_record_import_counts_agree_with_annotation(tmp_path):
    out = tmp_path / "mitbih"
    s = import_wfdb(MITBIH, out, records=["100"], split="test")
    assert s.n_windows == {"100": 180}  # 1805.6 s -> 180 whole 10 s windows
    ev = read_annotation_file(out / "annotations" / "100.txt")
    rows = read_counts_csv(out / "counts.csv")
    assert [r[5] for r in rows] == _brute_counts([t for t, _ in ev], 650000 / 360, 10.0)
