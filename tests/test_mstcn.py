"""MS-TCN folder layout: round trip through the writer, and errors that name file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from softloc.data.formats import DatasetError
from softloc.data.mstcn import (
    MSTCNVideo,
    list_splits,
    load_mstcn,
    read_bundle,
    read_features,
    read_ground_truth,
    read_mapping,
    write_mstcn,
)

CLASSES = ("background", "cut_tomato", "place_tomato", "mix")


def _write_by_hand(root: Path) -> None:
    """A tiny dataset written without the module's writer (the reader's independent input)."""
    (root / "features").mkdir(parents=True)
    (root / "groundTruth").mkdir()
    (root / "splits").mkdir()
    (root / "mapping.txt").write_text("0 background\n1 cut_tomato\n2 place_tomato\n3 mix\n")
    labels = {"vid-a": ["background"] * 3 + ["cut_tomato"] * 4 + ["mix"] * 3,
              "vid-b": ["place_tomato"] * 5 + ["background"] * 2}
    for i, (name, frames) in enumerate(labels.items()):
        feats = np.arange(2 * len(frames), dtype=np.float64).reshape(2, len(frames)) + 100 * i
        np.save(root / "features" / f"{name}.npy", feats)
        (root / "groundTruth" / f"{name}.txt").write_text("\n".join(frames) + "\n")
    (root / "splits" / "train.split1.bundle").write_text("vid-a.txt\n")
    (root / "splits" / "test.split1.bundle").write_text("vid-b.txt\n\n")


def test_reads_a_hand_written_dataset(tmp_path):
    _write_by_hand(tmp_path)
    train = load_mstcn(tmp_path, split=1, subset="train", frame_rate=15.0)
    assert train.classes == CLASSES
    assert [v.name for v in train.videos] == ["vid-a"]
    video = train.videos[0]
    assert video.features.dtype == np.float32 and video.features.shape == (2, 10)
    assert video.labels.tolist() == [0] * 3 + [1] * 4 + [3] * 3
    assert train.frame_rate == 15.0 and train.n_features == 2
    test = load_mstcn(tmp_path, split=1, subset="test")
    assert [v.name for v in test.videos] == ["vid-b"]
    every = load_mstcn(tmp_path, subset="all")
    assert [v.name for v in every.videos] == ["vid-a", "vid-b"] and every.split is None
    assert list_splits(tmp_path) == [1]


def test_subsampling_keeps_every_kth_frame_and_divides_the_rate(tmp_path):
    _write_by_hand(tmp_path)
    full = load_mstcn(tmp_path, split=1, frame_rate=30.0)
    sub = load_mstcn(tmp_path, split=1, frame_rate=30.0, subsample=3)
    assert sub.frame_rate == 10.0
    np.testing.assert_array_equal(sub.videos[0].labels, full.videos[0].labels[::3])
    np.testing.assert_array_equal(sub.videos[0].features, full.videos[0].features[:, ::3])


def test_writer_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    videos = [
        MSTCNVideo(f"v{i}", rng.normal(size=(5, 20 + i)).astype(np.float32),
                   rng.integers(0, 4, size=20 + i))
        for i in range(4)
    ]
    write_mstcn(tmp_path, classes=CLASSES, videos=videos, splits={1: ["v0", "v1"], 2: ["v2", "v3"]})
    assert read_mapping(tmp_path / "mapping.txt") == CLASSES
    assert read_bundle(tmp_path / "splits" / "train.split1.bundle") == ["v2", "v3"]
    assert list_splits(tmp_path) == [1, 2]
    back = load_mstcn(tmp_path, split=2, subset="test")
    for want, got in zip(videos[2:], back.videos, strict=True):
        assert got.name == want.name
        np.testing.assert_array_equal(got.features, want.features)
        np.testing.assert_array_equal(got.labels, want.labels)
    with pytest.raises(FileExistsError, match="mapping.txt"):
        write_mstcn(tmp_path, classes=CLASSES, videos=videos)
    write_mstcn(tmp_path, classes=CLASSES, videos=videos, overwrite=True)


def test_length_tolerance_crops_to_the_shorter(tmp_path):
    _write_by_hand(tmp_path)
    np.save(tmp_path / "features" / "vid-a.npy", np.zeros((2, 11)))
    with pytest.raises(DatasetError, match=r"groundTruth/vid-a.txt: 10 frame labels, but .*11"):
        load_mstcn(tmp_path, split=1)
    data = load_mstcn(tmp_path, split=1, length_tolerance=1)
    assert data.videos[0].features.shape == (2, 10)


# --------------------------------------------------------------------------------------------
# Errors name the file and the line
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0 a\n1\n", r"mapping.txt:2: expected '<index> <class name>'"),
        ("0 a\nx b\n", r"mapping.txt:2: expected"),
        ("0 a\n0 b\n", r"mapping.txt:2: index 0 repeated"),
        ("0 a\n1 a\n", r"mapping.txt:2: class 'a' repeated \(first on line 1\)"),
        ("0 a\n2 b\n", r"mapping.txt: indices must be 0..1; missing \[1\]"),
        ("\n\n", r"mapping.txt: no classes"),
    ],
)
def test_bad_mapping_lines(tmp_path, text, match):
    (tmp_path / "mapping.txt").write_text(text)
    with pytest.raises(DatasetError, match=match):
        read_mapping(tmp_path / "mapping.txt")


def test_unknown_class_names_file_and_line(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("background\nbackground\ncut_tomatoe\n")
    with pytest.raises(DatasetError, match=r"v.txt:3: unknown class 'cut_tomatoe'; mapping.txt"):
        read_ground_truth(path, CLASSES)


def test_blank_line_between_frames_is_an_error_trailing_blanks_are_not(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("mix\n\nmix\n")
    with pytest.raises(DatasetError, match=r"v.txt:2: blank line"):
        read_ground_truth(path, CLASSES)
    path.write_text("mix\nmix\n\n\n")
    assert read_ground_truth(path, CLASSES).tolist() == [3, 3]
    path.write_text("\n")
    with pytest.raises(DatasetError, match="no frames"):
        read_ground_truth(path, CLASSES)


def test_missing_feature_file_names_it_and_the_bundle(tmp_path):
    _write_by_hand(tmp_path)
    (tmp_path / "features" / "vid-b.npy").unlink()
    with pytest.raises(DatasetError, match=r"features/vid-b.npy: missing feature file .*"
                                           r"test.split1.bundle"):
        load_mstcn(tmp_path, split=1, subset="test")


def test_bad_feature_arrays(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.zeros(4))
    with pytest.raises(DatasetError, match=r"f.npy: expected a \(feature, time\) array"):
        read_features(path)
    np.save(path, np.zeros((2, 3), dtype=np.int32))
    with pytest.raises(DatasetError, match="floating-point"):
        read_features(path)
    np.save(path, np.array([[0.0, np.nan]]))
    with pytest.raises(DatasetError, match="NaN or inf"):
        read_features(path)
    path.write_text("not numpy")
    with pytest.raises(DatasetError, match="not a readable .npy"):
        read_features(path)


def test_bundle_errors(tmp_path):
    path = tmp_path / "train.split1.bundle"
    path.write_text("a.txt\nb c.txt\n")
    with pytest.raises(DatasetError, match=r"bundle:2: expected one"):
        read_bundle(path)
    path.write_text("a.txt\nb\na\n")
    with pytest.raises(DatasetError, match=r"bundle:3: video 'a' repeated"):
        read_bundle(path)


def test_argument_errors(tmp_path):
    _write_by_hand(tmp_path)
    with pytest.raises(ValueError, match=r"load_mstcn: no split 7 .* folds found: \[1\]"):
        load_mstcn(tmp_path, split=7)
    with pytest.raises(ValueError, match=r"load_mstcn: `split` is required"):
        load_mstcn(tmp_path)
    with pytest.raises(ValueError, match=r"load_mstcn: `subset`"):
        load_mstcn(tmp_path, split=1, subset="val")
    with pytest.raises(ValueError, match=r"load_mstcn: `subsample` must be >= 1"):
        load_mstcn(tmp_path, split=1, subsample=0)
    with pytest.raises(ValueError, match=r"load_mstcn: `frame_rate`"):
        load_mstcn(tmp_path, split=1, frame_rate=0)
    with pytest.raises(DatasetError, match=r"mapping.txt: missing file"):
        load_mstcn(tmp_path / "nowhere", split=1)


def test_writer_rejects_inconsistent_videos(tmp_path):
    good = MSTCNVideo("v", np.zeros((2, 3), np.float32), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="equal time"):
        write_mstcn(tmp_path, classes=CLASSES,
                    videos=[MSTCNVideo("v", np.zeros((2, 4)), np.zeros(3, np.int64))])
    with pytest.raises(ValueError, match="labels outside"):
        write_mstcn(tmp_path, classes=CLASSES,
                    videos=[MSTCNVideo("v", np.zeros((2, 3)), np.full(3, 9))])
    with pytest.raises(ValueError, match="without whitespace"):
        write_mstcn(tmp_path, classes=("a b",), videos=[good])
    with pytest.raises(ValueError, match="repeated names"):
        write_mstcn(tmp_path, classes=CLASSES, videos=[good, good])
    with pytest.raises(ValueError, match=r"split 1 names unknown videos \['w'\]"):
        write_mstcn(tmp_path, classes=CLASSES, videos=[good], splits={1: ["w"]})
