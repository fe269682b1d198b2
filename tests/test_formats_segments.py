"""Tests of softloc.data.formats.segments: segment files of action segmentation."""

from __future__ import annotations

import pytest

from softloc.data.formats import (
    DatasetError,
    format_segments,
    read_segment_file,
    write_segment_file,
)


def test_round_trip_at_millisecond_precision(tmp_path):
    segs = [(0.0, 1.2344, "background"), (1.2344, 3.5, "cut_bread"), (3.5, 3.5, "x")]
    path = write_segment_file(tmp_path / "a.txt", segs)
    assert path.read_text() == "0.000\t1.234\tbackground\n1.234\t3.500\tcut_bread\n" \
                               "3.500\t3.500\tx\n"
    got = read_segment_file(path)
    assert [lab for _, _, lab in got] == ["background", "cut_bread", "x"]
    for (a, b, _), (c, d, _) in zip(got, segs, strict=True):
        assert abs(a - c) <= 5e-4 and abs(b - d) <= 5e-4
    assert format_segments([]) == ""


def test_an_existing_file_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("mine")
    with pytest.raises(FileExistsError):
        write_segment_file(path, [(0.0, 1.0, "a")])
    assert path.read_text() == "mine"
    write_segment_file(path, [(0.0, 1.0, "a")], overwrite=True)
    assert read_segment_file(path) == [(0.0, 1.0, "a")]


@pytest.mark.parametrize(("segment", "match"), [
    ((1.0, 0.5, "a"), "0 <= start_s <= end_s"),
    ((-1.0, 0.5, "a"), "0 <= start_s <= end_s"),
    ((0.0, float("inf"), "a"), "0 <= start_s <= end_s"),
    ((0.0, 1.0, "two words"), "without whitespace"),
    ((0.0, 1.0, ""), "without whitespace"),
])
def test_writer_refuses_bad_segments(tmp_path, segment, match):
    with pytest.raises(ValueError, match=match):
        write_segment_file(tmp_path / "a.txt", [segment])
    assert not (tmp_path / "a.txt").exists()


@pytest.mark.parametrize(("text", "line"), [
    ("0\t1\ta\n1\t2\n", 2),  # two fields
    ("0\t1\ta\n\nx\t2\tb\n", 3),  # not a number (blank lines are skipped but counted)
    ("2\t1\ta\n", 1),  # reversed
    ("-1\t1\ta\n", 1),  # negative
    ("0\tnan\ta\n", 1),
    ("0\t1\t \n", 1),  # no label
    ("0 1 a\n", 1),  # spaces, not tabs
])
def test_reader_errors_name_file_and_line(tmp_path, text, line):
    path = tmp_path / "s.txt"
    path.write_text(text)
    with pytest.raises(DatasetError, match=rf"s\.txt:{line}: expected '<start_s>"):
        read_segment_file(path)


def test_reader_rejects_non_utf8_naming_the_file(tmp_path):
    path = tmp_path / "s.txt"
    path.write_bytes(b"0\t1\tcaf\xe9\n")
    with pytest.raises(DatasetError, match=r"s\.txt:1: not UTF-8"):
        read_segment_file(path)
