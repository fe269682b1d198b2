"""softloc.data.subjects: subjects.csv, seeded splits and leave-one-subject-out folds by subject."""

from __future__ import annotations

import itertools

import pytest

from softloc.data.signals import SignalError
from softloc.data.subjects import (
    leave_one_subject_out,
    read_subjects_csv,
    subject_splits,
    write_subjects_csv,
)

SUBJECTS = {"a1": "A", "a2": "A", "b1": "B", "c1": "C", "c2": "C", "c3": "C", "d1": "D",
            "e1": "E", "f1": "F", "g1": "G"}


def test_subjects_csv_round_trip_and_errors(tmp_path):
    write_subjects_csv(tmp_path / "subjects.csv", SUBJECTS)
    assert read_subjects_csv(tmp_path / "subjects.csv") == SUBJECTS
    with pytest.raises(FileExistsError):
        write_subjects_csv(tmp_path / "subjects.csv", SUBJECTS)
    (tmp_path / "s.csv").write_text("stem,subject\na1,A\na1,B\n")
    with pytest.raises(SignalError, match=r"s\.csv:3: stem 'a1' listed twice \(first on line 2\)"):
        read_subjects_csv(tmp_path / "s.csv")
    (tmp_path / "s.csv").write_text("file,who\n")
    with pytest.raises(SignalError, match=r"s\.csv:1: bad header; expected 'stem,subject'"):
        read_subjects_csv(tmp_path / "s.csv")
    (tmp_path / "s.csv").write_text("stem,subject\na1\n")
    with pytest.raises(SignalError, match=r"s\.csv:2: expected 2 non-empty fields"):
        read_subjects_csv(tmp_path / "s.csv")
    with pytest.raises(ValueError, match="without commas"):
        write_subjects_csv(tmp_path / "t.csv", {"x": "a,b"})


@pytest.mark.parametrize("seed", range(5))
def test_split_never_puts_a_subject_on_two_sides_and_covers_every_stem(seed):
    splits = subject_splits(SUBJECTS, seed=seed)
    sides = {SUBJECTS[s]: k for k, stems in splits.items() for s in stems}
    for k, stems in splits.items():
        assert all(sides[SUBJECTS[s]] == k for s in stems)
    assert sorted(itertools.chain(*splits.values())) == sorted(SUBJECTS)
    # 7 subjects: round(4.9) = 5 train, round(1.05) = 1 valid, 1 test
    n_subj = {k: len({SUBJECTS[s] for s in v}) for k, v in splits.items()}
    assert n_subj == {"train": 5, "valid": 1, "test": 1}


def test_split_is_seeded():
    assert subject_splits(SUBJECTS, seed=4) == subject_splits(SUBJECTS, seed=4)
    assert len({str(subject_splits(SUBJECTS, seed=s)) for s in range(8)}) > 1
    with pytest.raises(ValueError, match="`fractions` must be 3 non-negative numbers"):
        subject_splits(SUBJECTS, fractions=(0.5, 0.5, 0.5))


def test_leave_one_subject_out_holds_out_each_subject_exactly_once():
    folds = leave_one_subject_out(SUBJECTS, n_valid_subjects=2, seed=1)
    assert [f.test_subject for f in folds] == sorted(set(SUBJECTS.values()))
    for f in folds:
        assert {SUBJECTS[s] for s in f.test} == {f.test_subject}
        assert sorted(f.test) == sorted(s for s, p in SUBJECTS.items() if p == f.test_subject)
        assert len({SUBJECTS[s] for s in f.valid}) == 2
        assert not {SUBJECTS[s] for s in f.train} & {SUBJECTS[s] for s in f.valid + f.test}
        assert sorted(f.train + f.valid + f.test) == sorted(SUBJECTS)


def test_leave_one_subject_out_errors():
    with pytest.raises(ValueError, match="at least 2 subjects"):
        leave_one_subject_out({"a": "A", "b": "A"})
    with pytest.raises(ValueError, match=r"`n_valid_subjects` must be an int in \[0, 5\]"):
        leave_one_subject_out(SUBJECTS, n_valid_subjects=6)
    with pytest.raises(ValueError, match="is empty"):
        subject_splits({})


def test_subjects_csv_with_lone_cr_line_ends_reads_like_lf(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_bytes(b"stem,subject\r100,alice\r101,bob\r")
    b.write_bytes(b"stem,subject\n100,alice\n101,bob\n")
    assert read_subjects_csv(a) == read_subjects_csv(b) == {"100": "alice", "101": "bob"}
