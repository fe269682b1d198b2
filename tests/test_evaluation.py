import mir_eval
import numpy as np
import pytest

from softloc.evaluation import evaluate_folders


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
    with pytest.raises(FileNotFoundError, match="b.txt: detection file missing"):
        evaluate_folders(ref, est)
    split = tmp_path / "split.txt"
    split.write_text("a\n")
    res = evaluate_folders(ref, est, split_file=split)
    assert res["settings"]["n_files"] == 1
    assert res["per_class"]["KD"]["recall"] == pytest.approx(0.0)


def test_folder_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope: folder not found"):
        evaluate_folders(tmp_path / "nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no reference files"):
        evaluate_folders(tmp_path / "empty", tmp_path)
    _write(tmp_path / "r", "a.txt", "1,0 KD\n")
    _write(tmp_path / "e", "a.txt", "")
    with pytest.raises(ValueError, match=r"r/a.txt:1:"):
        evaluate_folders(tmp_path / "r", tmp_path / "e")
