import re

import numpy as np
import pytest
import soundfile as sf

from softloc.data.layout import (
    CountWindow,
    DatasetError,
    count_windows,
    load_dataset,
    read_annotation_file,
    read_counts_csv,
    read_split_file,
    write_annotation_file,
    write_counts_csv,
)

SR = 8000


def _make_root(tmp_path, stems=("a", "b", "c"), duration_s=4.0, channels=1, rate=SR):
    root = tmp_path / "ds"
    (root / "audio").mkdir(parents=True)
    (root / "annotations").mkdir()
    for s in stems:
        sf.write(root / "audio" / f"{s}.wav", np.zeros((int(duration_s * rate), channels)), rate)
    return root


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _where(path, line):
    return re.escape(f"{path}:{line}:")


# ----------------------------------------------------------------------------- annotation files

def test_read_annotation_file_accepts_tabs_spaces_comments_and_sorts(tmp_path):
    p = _write(tmp_path / "x.txt", "# onsets\n1.5\tSD\n\n0.25 KD\n0.5   chh\n")
    assert read_annotation_file(p) == [(0.25, "KD"), (0.5, "chh"), (1.5, "SD")]


@pytest.mark.parametrize("line,what", [
    ("0,12 KD", "onset time is not a number"),
    ("abc\tKD", "onset time is not a number"),
    ("0.5KD", "expected 2 fields"),
    ("0.5", "expected 2 fields"),
    ("0.5\tKD\textra", "the third field is not a score"),
    ("0.5\tKD\t0.9\tx", "expected 2 fields"),
    ("-0.1\tKD", "onset time is negative"),
    ("nan\tKD", "onset time is not finite"),
    ("inf\tSD", "onset time is not finite"),
])
def test_read_annotation_file_errors_name_file_line_and_expectation(tmp_path, line, what):
    p = _write(tmp_path / "ann.txt", f"0.1\tHH\n{line}\n")
    with pytest.raises(DatasetError, match=_where(p, 2) + ".*" + re.escape(what)):
        read_annotation_file(p)


def test_annotation_round_trip_and_no_silent_overwrite(tmp_path):
    events = [(1.0, "SD"), (0.123456, "KD")]
    p = tmp_path / "sub" / "a.txt"
    write_annotation_file(p, events)
    assert read_annotation_file(p) == sorted(events)
    with pytest.raises(FileExistsError, match="already exists"):
        write_annotation_file(p, [])
    assert read_annotation_file(p) == sorted(events)
    write_annotation_file(p, [(2.0, "HH")], overwrite=True)
    assert read_annotation_file(p) == [(2.0, "HH")]
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.txt"]  # no temp files left
    with pytest.raises(ValueError, match="labels must be non-empty strings without whitespace"):
        write_annotation_file(tmp_path / "b.txt", [(0.0, "hi hat")])


# ----------------------------------------------------------------------------- counts.csv

@pytest.mark.parametrize("row,what", [
    ("a,0,1.5,KD,2,9", "expected 5 comma-separated fields"),
    ("a,0,1.5,KD", "expected 5 comma-separated fields"),
    ("a,x,1.5,KD,2", "`start` is not a number"),
    ("a,0,1.5s,KD,2", "`end` is not a number"),
    ("a,-1,1.5,KD,2", "`start` is negative"),
    ("a,1.5,1.5,KD,2", "`end` must be greater than `start`"),
    ("a,2,1.5,KD,2", "`end` must be greater than `start`"),
    ("a,0,1.5,KD,2.5", "`count` must be a non-negative integer"),
    ("a,0,1.5,KD,-1", "`count` must be a non-negative integer"),
    ("a,0,1.5,KD,two", "`count` must be a non-negative integer"),
    (",0,1.5,KD,1", "empty `file`"),
    ("a,0,1.5,,1", "empty `label`"),
])
def test_read_counts_csv_errors_name_file_line_and_expectation(tmp_path, row, what):
    p = _write(tmp_path / "counts.csv", f"file,start,end,label,count\na,0,1.5,SD,1\n{row}\n")
    with pytest.raises(DatasetError, match=_where(p, 3) + ".*" + re.escape(what)):
        read_counts_csv(p)


def test_read_counts_csv_rejects_bad_header_and_empty_file(tmp_path):
    p = _write(tmp_path / "counts.csv", "stem,start,end,label,count\n")
    with pytest.raises(DatasetError, match=_where(p, 1) + ".*bad header; expected "
                       "'file,start,end,label,count'"):
        read_counts_csv(p)
    p = _write(tmp_path / "counts.csv", "\n")
    with pytest.raises(DatasetError, match=_where(p, 1) + ".*empty file"):
        read_counts_csv(p)


def test_counts_csv_round_trip(tmp_path):
    windows = [CountWindow("a", 0.0, 1.5, {"KD": 2, "SD": 0}),
               CountWindow("a", 0.5, 2.0, {"KD": 1})]
    p = tmp_path / "counts.csv"
    write_counts_csv(p, windows, classes=("KD", "SD"))
    rows = read_counts_csv(p)
    assert [r[1:] for r in rows] == [("a", 0.0, 1.5, "KD", 2), ("a", 0.0, 1.5, "SD", 0),
                                     ("a", 0.5, 2.0, "KD", 1), ("a", 0.5, 2.0, "SD", 0)]
    assert [r[0] for r in rows] == [2, 3, 4, 5]


def test_count_windows_match_brute_force_counting():
    rng = np.random.default_rng(0)
    events = [(float(t), str(lab)) for t, lab in
              zip(rng.uniform(0, 10, 200), rng.choice(["KD", "SD", "HH"], 200), strict=True)]
    events += [(1.5, "KD"), (3.0, "SD")]  # exactly on window edges: [start, end) semantics
    wins = count_windows("x", events, 10.0, window_s=1.5, hop_s=0.5, classes=("KD", "SD"))
    assert [w.start_s for w in wins] == pytest.approx(np.arange(18) * 0.5)
    assert all(w.end_s == pytest.approx(w.start_s + 1.5) for w in wins)
    for w in wins:
        for c in ("KD", "SD"):
            assert w.counts[c] == sum(1 for t, lab in events
                                      if lab == c and w.start_s <= t < w.end_s)
        assert "HH" not in w.counts
    short = count_windows("y", [(0.2, "KD")], 1.0, window_s=1.5)
    assert [(w.start_s, w.end_s, w.counts) for w in short] == [(0.0, 1.0, {"KD": 1})]


# ----------------------------------------------------------------------------- splits

def test_read_split_file_rejects_duplicates_and_strips_suffixes(tmp_path):
    p = _write(tmp_path / "train.txt", "a\nb.wav\n\n# c\n")
    assert read_split_file(p) == [(1, "a"), (2, "b")]
    p = _write(tmp_path / "valid.txt", "a\nb\na.flac\n")
    with pytest.raises(DatasetError, match=_where(p, 3) + ".*listed twice.*first on line 1"):
        read_split_file(p)
    p = _write(tmp_path / "test.txt", "a b\n")
    with pytest.raises(DatasetError, match=_where(p, 1) + ".*one stem per line"):
        read_split_file(p)


# ----------------------------------------------------------------------------- load_dataset

def test_load_dataset_reads_a_complete_layout(tmp_path):
    root = _make_root(tmp_path, channels=2, rate=22050)
    _write(root / "annotations" / "a.txt", "0.5\tKD\n1.0\tSD\n1.2\ttom\n")
    _write(root / "annotations" / "b.txt", "0.7\tKD\n")
    _write(root / "counts.csv", "file,start,end,label,count\n"
                                "a,0,1.5,KD,1\na,0,1.5,SD,1\nc.wav,1,2.5,SD,0\nc,1,2.5,KD,3\n")
    _write(root / "splits" / "train.txt", "a\nb\n")
    _write(root / "splits" / "test.txt", "c\n")
    idx = load_dataset(root, labels=["KD", "SD"])
    assert idx.classes == ("KD", "SD") and idx.stems == ("a", "b", "c")
    assert idx.durations_s["a"] == pytest.approx(4.0)
    assert idx.events["a"] == [(0.5, "KD"), (1.0, "SD")]  # 'tom' is not a class
    assert idx.events["c"] is None and not idx.has_events("c")
    assert [(w.start_s, w.end_s, dict(w.counts)) for w in idx.count_windows["c"]] == \
        [(1.0, 2.5, {"SD": 0, "KD": 3})]
    assert idx.count_windows["b"] == []
    assert idx.splits == {"train": ["a", "b"], "valid": [], "test": ["c"]}
    # Without `labels`, classes are every label found; label_map renames.
    idx2 = load_dataset(root, label_map={"tom": "TT"})
    assert idx2.classes == ("KD", "SD", "TT")
    assert idx2.events["a"][-1] == (1.2, "TT")


def test_load_dataset_seeded_split_is_deterministic_and_partitions(tmp_path):
    root = _make_root(tmp_path, stems=[f"s{i:02d}" for i in range(20)], duration_s=0.1)
    a, b = load_dataset(root, split_seed=3), load_dataset(root, split_seed=3)
    assert a.splits == b.splits and a.split_source == "seeded (seed=3)"
    assert [len(a.splits[k]) for k in ("train", "valid", "test")] == [14, 3, 3]
    assert sorted(sum(a.splits.values(), [])) == list(a.stems)
    assert load_dataset(root, split_seed=4).splits != a.splits


def test_load_dataset_named_annotation_folder(tmp_path):
    root = _make_root(tmp_path)
    _write(root / "noisy" / "a.txt", "0.55\tKD\n")
    assert load_dataset(root, annotations="noisy").events["a"] == [(0.55, "KD")]
    with pytest.raises(FileNotFoundError, match="annotation folder not found"):
        load_dataset(root, annotations="missing")


@pytest.mark.parametrize("setup,path,line,what", [
    (lambda r: _write(r / "counts.csv", "file,start,end,label,count\nzz,0,1.5,KD,1\n"),
     "counts.csv", 2, "unknown file 'zz'"),
    (lambda r: _write(r / "counts.csv", "file,start,end,label,count\na,3,5,KD,1\n"),
     "counts.csv", 2, "window end 5 s is after the end of a.wav"),
    (lambda r: _write(r / "counts.csv",
                      "file,start,end,label,count\na,0,1.5,KD,1\na,0,1.5,KD,2\n"),
     "counts.csv", 3, "duplicate row for (a, 0, 1.5, KD) (first on line 2)"),
    (lambda r: _write(r / "counts.csv", "file,start,end,label,count\na,0,1.5,KD,1\n"
                                        "a,0,1.5,SD,0\na,0.5,2,KD,1\n"),
     "counts.csv", 4, "window (a, 0.5, 2) has no row for class(es) ['SD']"),
    (lambda r: _write(r / "splits" / "train.txt", "a\nzz\n"),
     "splits/train.txt", 2, "unknown stem 'zz'"),
    (lambda r: (_write(r / "splits" / "train.txt", "a\nb\n"),
                _write(r / "splits" / "test.txt", "c\nb\n")),
     "splits/test.txt", 2, "stem 'b' is also in splits/train.txt"),
    (lambda r: _write(r / "annotations" / "a.txt", "0.1\tSD\n0.2 SD 1 x\n"),
     "annotations/a.txt", 2, "expected 2 fields"),
])
def test_load_dataset_errors_name_file_line_and_expectation(tmp_path, setup, path, line, what):
    root = _make_root(tmp_path)
    setup(root)
    with pytest.raises(DatasetError, match=_where(root / path, line) + ".*" + re.escape(what)):
        load_dataset(root)


def test_load_dataset_errors_for_missing_or_inconsistent_files(tmp_path):
    root = _make_root(tmp_path)
    _write(root / "annotations" / "zz.txt", "0.1\tKD\n")
    with pytest.raises(DatasetError, match=re.escape(str(root / "annotations" / "zz.txt"))
                       + ".*unknown stem 'zz'.*expected a matching audio file"):
        load_dataset(root)
    (root / "annotations" / "zz.txt").unlink()
    _write(root / "annotations" / "a.txt", "9.5\tKD\n")
    with pytest.raises(DatasetError, match="onset 9.5 s is after the end of a.wav"):
        load_dataset(root)
    (root / "annotations" / "a.txt").unlink()
    sf.write(root / "audio" / "a.flac", np.zeros(100), SR)
    with pytest.raises(DatasetError, match="two audio files share the stem 'a'"):
        load_dataset(root)
    (root / "audio" / "a.flac").unlink()
    (root / "audio" / "b.wav").write_text("not audio")
    with pytest.raises(DatasetError, match=re.escape(str(root / "audio" / "b.wav"))
                       + ": cannot read the audio header"):
        load_dataset(root)
    with pytest.raises(DatasetError, match="audio folder not found"):
        load_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="dataset folder not found"):
        load_dataset(tmp_path / "nope")


def test_with_events_replaces_events_for_label_noise(tmp_path):
    root = _make_root(tmp_path)
    _write(root / "annotations" / "a.txt", "0.5\tKD\n")
    idx = load_dataset(root)
    noisy = idx.with_events({"a": [(0.9, "KD"), (0.52, "KD")]})
    assert noisy.events["a"] == [(0.52, "KD"), (0.9, "KD")]
    assert idx.events["a"] == [(0.5, "KD")]
    with pytest.raises(ValueError, match="unknown stems"):
        idx.with_events({"zz": []})


def test_summary_reports_files_and_events_per_split(tmp_path):
    root = _make_root(tmp_path)
    _write(root / "annotations" / "a.txt", "0.5\tKD\n1.0\tSD\n1.5\tKD\n")
    _write(root / "splits" / "train.txt", "a\nb\n")
    _write(root / "splits" / "test.txt", "c\n")
    text = load_dataset(root).summary()
    assert re.search(r"train\s+2\s+0\.1\s+1\s+0\s+KD=2, SD=1", text)
    assert re.search(r"test\s+1\s+0\.1\s+0\s+0\s+KD=0, SD=0", text)


def test_labels_differing_only_by_case_across_files_are_an_error(tmp_path):
    root = _make_root(tmp_path)
    _write(root / "annotations" / "a.txt", "0.5\tKD\n")
    _write(root / "annotations" / "b.txt", "0.7\tkd\n")
    with pytest.raises(DatasetError, match=r"label 'kd' differs from 'KD' .*a\.txt\) only by case"):
        load_dataset(root)
    # a label_map that folds them is the way out
    assert load_dataset(root, label_map={"kd": "KD"}).classes == ("KD",)
    _write(root / "annotations" / "b.txt", "0.7\tKD\n")
    _write(root / "counts.csv", "file,start,end,label,count\na,0,1.5,Kd,1\n")
    with pytest.raises(DatasetError, match=_where(root / "counts.csv", 2) + " label 'Kd'"):
        load_dataset(root)


def test_audio_of_every_soundfile_format_is_found(tmp_path):
    root = _make_root(tmp_path, stems=("a",))
    sf.write(root / "audio" / "b.aiff", np.zeros(SR * 2), SR)
    sf.write(root / "audio" / "c.ogg", np.zeros(SR * 2), SR, format="OGG", subtype="OPUS")
    assert load_dataset(root).stems == ("a", "b", "c")
