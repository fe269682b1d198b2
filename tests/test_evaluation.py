import mir_eval
import numpy as np
import pytest

from softloc.data.formats import write_events
from softloc.evaluation import coverage_report, evaluate_folders


def _write(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)


def test_scores_agree_with_mir_eval_per_class(tmp_path):
    ref, est = tmp_path / "ref", tmp_path / "est"
    _write(ref, "a.txt", "1.0\tKD\n2.0\tSD\n3.0\tKD\n")
    _write(est, "a.txt", "1.03\tKD\n2.2\tSD\n3.049\tKD\n4.0\tKD\n")
    res = evaluate_folders(ref, est)
    f, p, r = mir_eval.onset.f_measure(np.array([1.0, 3.0]), np.array([1.03, 3.049, 4.0]),
                                       window=0.05)
    assert res["per_class"]["KD"]["f1"] == pytest.approx(f)
    assert res["per_class"]["KD"]["precision"] == pytest.approx(p)
    assert res["per_class"]["KD"]["recall"] == pytest.approx(r)
    assert res["per_class"]["SD"]["f1"] == pytest.approx(0.0)
    # pooled over classes: 2 matches, 3 references, 4 detections
    assert res["overall"]["f1"] == pytest.approx(2 * 2 / (3 + 4))


def test_split_file_selects_stems_and_missing_detections_are_errors(tmp_path):
    ref, est = tmp_path / "ref", tmp_path / "est"
    _write(ref, "a.txt", "1.0\tKD\n")
    _write(est, "a.txt", "")
    _write(ref, "b.txt", "1.0\tKD\n")
    split = tmp_path / "split.txt"
    split.write_text("a\nb\n")
    with pytest.raises(FileNotFoundError, match="b.*: detection file missing"):
        evaluate_folders(ref, est, split_file=split)
    split.write_text("a\n")
    res = evaluate_folders(ref, est, split_file=split)
    assert res["settings"]["n_files"] == 1
    assert res["per_class"]["KD"]["recall"] == pytest.approx(0.0)
    with pytest.raises(FileNotFoundError, match="b.*: detection file missing"):
        evaluate_folders(ref, est, files=["a.wav", "b"])


def test_without_a_list_the_intersection_is_scored_and_the_rest_reported(tmp_path):
    ref, est = tmp_path / "ref", tmp_path / "est"
    for stem in ("a", "b", "c"):
        _write(ref, f"{stem}.txt", "1.0\tKD\n")
    _write(est, "a.txt", "1.0\tKD\n")
    _write(est, "b.txt", "")
    _write(est, "z.txt", "2.0\tKD\n")
    res = evaluate_folders(ref, est)
    assert res["coverage"]["scored"] == ["a", "b"]
    assert res["coverage"]["missing_estimates"] == ["c"]
    assert res["coverage"]["missing_references"] == ["z"]
    assert res["overall"]["tp"] == 1 and res["overall"]["fn"] == 1 and res["overall"]["fp"] == 0
    report = coverage_report(res)
    assert "scored 2 file(s)" in report and "no detection file: 1 (c)" in report
    assert "no reference file: 1 (z)" in report


def test_every_format_detect_writes_and_every_annotation_format_is_read(tmp_path):
    ref, est = tmp_path / "ref", tmp_path / "est"
    ref.mkdir()
    events = [(0.5, "KD", 0.9), (1.0, "SD", 0.8), (1.5, "HH", 0.7)]
    # references: text, IDMT xml, MIDI; MAPS for a pitched file
    write_events(ref / "t.txt", events)
    (ref / "x.xml").write_text("<t>" + "".join(
        f"<event><onsetSec>{t}</onsetSec><instrument>{lab}</instrument></event>"
        for t, lab, _ in events) + "</t>")
    write_events(ref / "m.mid", events, fmt="midi")
    (ref / "p.txt").write_text("OnsetTime\tOffsetTime\tMidiPitch\n0.5\t0.9\t60\n1.0\t1.2\t64\n")
    # detections in each format detect writes (p: pitched labels -> piano track)
    est.mkdir()
    write_events(est / "t.json", events, fmt="json", metadata={"model": "m"})
    write_events(est / "x.mid", events, fmt="midi")
    write_events(est / "m.txt", events)
    write_events(est / "p.mid", [(0.5, "60", 1.0), (1.01, "64", 1.0)], fmt="midi")
    res = evaluate_folders(ref, est)
    assert res["coverage"]["scored"] == ["m", "p", "t", "x"]
    assert res["overall"]["f1"] == pytest.approx(1.0)
    assert set(res["per_class"]) == {"HH", "KD", "SD", "60", "64"}
    only = evaluate_folders(ref, est, classes=["KD"])
    assert list(only["per_class"]) == ["KD"] and only["overall"]["n_ref"] == 3


def test_empty_policy_is_passed_through(tmp_path):
    ref, est = tmp_path / "ref", tmp_path / "est"
    _write(ref, "a.txt", "1.0\tKD\n")
    _write(est, "a.txt", "1.0\tKD\n")
    _write(ref, "b.txt", "")
    _write(est, "b.txt", "")
    skip = evaluate_folders(ref, est)
    one = evaluate_folders(ref, est, empty_policy="one")
    zero = evaluate_folders(ref, est, empty_policy="zero")
    assert skip["overall"]["f1_file_mean"] == pytest.approx(1.0)  # b left out
    assert one["overall"]["f1_file_mean"] == pytest.approx(1.0)
    assert zero["overall"]["f1_file_mean"] == pytest.approx(0.5)  # b scores 0, as mir_eval
    with pytest.raises(ValueError, match="empty_policy"):
        evaluate_folders(ref, est, empty_policy="nan")


def test_folder_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope: folder not found"):
        evaluate_folders(tmp_path / "nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="nothing to score.*0 reference file"):
        evaluate_folders(tmp_path / "empty", tmp_path)
    _write(tmp_path / "r", "a.txt", "1,0 KD\n")
    _write(tmp_path / "e", "a.txt", "")
    with pytest.raises(ValueError, match=r"r/a.txt:1:"):
        evaluate_folders(tmp_path / "r", tmp_path / "e")
