"""Property tests of every parser (hypothesis): whatever bytes a file holds, a reader returns
well-formed events or raises ONE line of ``DatasetError`` (a ``ValueError``) naming the file;
never another exception, never NaN or negative times."""

from __future__ import annotations

import math
import warnings

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from softloc.data.formats import (  # noqa: E402
    DatasetError,
    read_annotation_file,
    read_counts_csv,
    read_events_any,
    read_events_json,
    read_idmt_xml,
    read_softness_csv,
    read_split_file,
)

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text built from the characters that matter to these formats, plus arbitrary unicode.
_TOKENS = st.sampled_from(["0", "1.5", "-2", "1e309", "nan", "inf", "KD", "kd", "SD", "#", ",",
                           "\t", " ", "\n", "\r\n", "\x00", "\"", "file,start,end,label,count",
                           "file,softness_ms", "OnsetTime\tOffsetTime\tMidiPitch", "60",
                           "<event>", "</event>", "<onsetSec>", "</onsetSec>", "<instrument>",
                           "</instrument>", "{", "}", "[", "]", "\"time_s\":", "\"label\":",
                           "\u00b2", "\ufeff", "99999999999999999999"])
_TEXT = st.lists(st.one_of(_TOKENS, st.text(max_size=4)), max_size=40).map("".join)
_BYTES = st.one_of(_TEXT.map(lambda t: t.encode("utf-8")), st.binary(max_size=200),
                   _TEXT.map(lambda t: t.encode("latin-1", errors="replace")))


def _check_events(events) -> None:
    assert isinstance(events, list)
    for t, label in events:
        assert isinstance(t, float) and math.isfinite(t) and t >= 0
        assert isinstance(label, str) and label and not any(c.isspace() for c in label)
    assert [t for t, _ in events] == sorted(t for t, _ in events)
    assert len(set(events)) == len(events)  # duplicates dropped


def _run(reader, path, data: bytes, errors=DatasetError):
    path.write_bytes(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return reader(path)
    except errors as err:
        msg = str(err)
        assert "\n" not in msg, msg
        assert msg.startswith(str(path)), msg
        return None


@pytest.mark.parametrize("suffix", [".txt", ".xml", ".json"])
@SETTINGS
@given(data=_BYTES)
def test_event_readers_return_clean_events_or_one_line_errors(tmp_path, suffix, data):
    reader = {".txt": read_annotation_file, ".xml": read_idmt_xml,
              ".json": read_events_json}[suffix]
    events = _run(reader, tmp_path / f"x{suffix}", data)
    if events is not None:
        _check_events(events)
    events = _run(read_events_any, tmp_path / f"y{suffix}", data)
    if events is not None:
        _check_events(events)


@SETTINGS
@given(data=_BYTES)
def test_maps_reader_returns_clean_events_or_one_line_errors(tmp_path, data):
    body = b"OnsetTime\tOffsetTime\tMidiPitch\n" + data
    events = _run(read_events_any, tmp_path / "m.txt", body)
    if events is not None:
        _check_events(events)
        assert all(0 <= int(label) <= 127 for _, label in events)


@SETTINGS
@given(data=_BYTES, header=st.booleans())
def test_counts_reader_returns_valid_rows_or_one_line_errors(tmp_path, data, header):
    body = (b"file,start,end,label,count\n" if header else b"") + data
    rows = _run(read_counts_csv, tmp_path / "counts.csv", body)
    for line, file_, start, end, label, count in rows or []:
        assert line >= 1 and file_ and label
        assert 0 <= start < end and math.isfinite(end)
        assert isinstance(count, int) and 0 <= count <= 1_000_000


@SETTINGS
@given(data=_BYTES)
def test_split_reader_returns_unique_stems_or_one_line_errors(tmp_path, data):
    rows = _run(read_split_file, tmp_path / "train.txt", data)
    if rows is not None:
        stems = [s for _, s in rows]
        assert len(stems) == len(set(stems))
        assert all(s and not any(c.isspace() for c in s) for s in stems)


@SETTINGS
@given(data=_BYTES, header=st.booleans())
def test_softness_reader_returns_non_negative_values_or_one_line_errors(tmp_path, data, header):
    body = (b"file,softness_ms\n" if header else b"") + data
    table = _run(read_softness_csv, tmp_path / "softness.csv", body)
    for stem, value in (table or {}).items():
        assert stem and value >= 0 and not math.isnan(value)


@SETTINGS
@given(data=_BYTES)
def test_segment_reader_returns_ordered_segments_or_one_line_errors(tmp_path, data):
    from softloc.data.formats import read_segment_file

    segments = _run(read_segment_file, tmp_path / "s.txt", data)
    for start_s, end_s, label in segments or []:
        assert 0 <= start_s <= end_s and math.isfinite(end_s)
        assert label and label == label.strip()


# A valid MIDI header followed by arbitrary bytes, or arbitrary bytes alone: the MIDI readers
# (pretty_midi / mido underneath) must turn every failure into one DatasetError line.
_MIDI = st.one_of(st.binary(max_size=120),
                  st.binary(max_size=120).map(lambda b: b"MThd\x00\x00\x00\x06\x00\x01\x00\x01"
                                              b"\x01\xe0MTrk" + b))


@SETTINGS
@given(data=_MIDI)
def test_midi_readers_return_notes_or_one_line_errors(tmp_path, data):
    from softloc.data.formats import read_midi_drums
    from softloc.data.midi import read_midi

    events = _run(read_midi_drums, tmp_path / "d.mid", data)
    if events is not None:
        _check_events(events)
    notes = _run(read_midi, tmp_path / "p.mid", data)
    if notes is not None:
        for n in notes.notes:
            assert 0 <= n.onset_s <= n.offset_s and math.isfinite(n.offset_s)
            assert 0 <= n.pitch <= 127


_CSV_SIGNAL = st.lists(st.one_of(st.sampled_from(["time,ecg\n", "t,a,b\n", "0,1\n", "0.01,2\n",
                                                  "0.02,nan\n", "x,y\n", "1e400,1\n", ",,\n",
                                                  "#c\n", "\n", "0.03,\n"]),
                                 st.text(max_size=6)), max_size=12).map("".join)


@SETTINGS
@given(data=st.one_of(_CSV_SIGNAL.map(lambda t: t.encode("utf-8")), _BYTES))
def test_csv_signal_reader_returns_a_consistent_signal_or_one_line_errors(tmp_path, data):
    from softloc.data.signals import SignalError, read_csv_signal

    sig = _run(lambda p: read_csv_signal(p, rate_hz=100.0), tmp_path / "s.csv", data,
                      (SignalError, DatasetError))
    if sig is not None:
        assert sig.data.ndim == 2 and sig.data.shape[0] == len(sig.channels) >= 1
        assert sig.data.shape[1] >= 1 and sig.rate_hz > 0


@SETTINGS
@given(data=_BYTES)
def test_mstcn_and_subject_readers_return_clean_tables_or_one_line_errors(tmp_path, data):
    from softloc.data.mstcn import read_bundle, read_ground_truth, read_mapping
    from softloc.data.signals import SignalError
    from softloc.data.subjects import read_subjects_csv

    classes = _run(read_mapping, tmp_path / "mapping.txt", data, DatasetError)
    if classes is not None:
        assert len(set(classes)) == len(classes) and all(classes)
    labels = _run(lambda p: read_ground_truth(p, ("a", "b", "KD")), tmp_path / "g.txt",
                         data, DatasetError)
    if labels is not None:
        assert labels.ndim == 1 and ((labels >= 0) & (labels < 3)).all()
    stems = _run(read_bundle, tmp_path / "b.bundle", data, DatasetError)
    assert stems is None or all(s and s == s.strip() for s in stems)
    subjects = _run(read_subjects_csv, tmp_path / "subjects.csv", data, SignalError)
    assert subjects is None or all(k and v for k, v in subjects.items())
