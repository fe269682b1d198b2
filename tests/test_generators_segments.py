"""The built-in segmentation generator: grammar, durations, noise statistics, layout and folds."""

from __future__ import annotations

import numpy as np
import pytest

from softloc.data.generators.segments import (
    SEGMENT_CLASSES,
    generate_segment_dataset,
    sample_script,
    synthesize_segment_videos,
)
from softloc.data.mstcn import list_splits, load_mstcn
from softloc.metrics.segments import segment_bounds

SMALL = dict(n_subjects=2, videos_per_subject=2, frame_rate=5.0, n_features=8)


def test_same_seed_same_data_other_seed_other_data():
    a = synthesize_segment_videos(**SMALL, seed=3)
    b = synthesize_segment_videos(**SMALL, seed=3)
    c = synthesize_segment_videos(**SMALL, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.features, y.features)
        np.testing.assert_array_equal(x.labels, y.labels)
    assert not np.array_equal(a[0].labels[:50], c[0].labels[:50]) or \
        not np.allclose(a[0].features[:, :50], c[0].features[:, :50])


@pytest.mark.parametrize("seed", range(30))
def test_scripts_follow_the_salad_grammar(seed):
    script = sample_script(np.random.default_rng(seed))
    assert script[0] == script[-1] == "background"
    actions = [a for a in script if a != "background"]
    assert actions[0] == "take_bowl" and actions[-1] == "serve_salad"
    assert set(script) <= set(SEGMENT_CLASSES)
    cuts = [a for a in actions if a.startswith("cut_")]
    assert len({c[4:] for c in cuts}) >= 2  # at least two ingredients
    for i, a in enumerate(actions):
        if a.startswith("cut_"):
            assert actions[i + 1] == "place_" + a[4:]
    # no two background segments in a row (they would merge into one)
    assert all(not (x == y == "background") for x, y in zip(script[:-1], script[1:], strict=True))


def test_labels_are_the_script_and_durations_have_the_class_means():
    videos = synthesize_segment_videos(n_subjects=4, videos_per_subject=10, frame_rate=2.0,
                                       n_features=2, seed=0)
    durations: dict[str, list[float]] = {}
    for v in videos:
        classes, starts, ends = segment_bounds(v.labels)
        assert v.features.shape == (2, v.labels.size) and v.features.dtype == np.float32
        for c, s, e in zip(classes.tolist(), starts.tolist(), ends.tolist(), strict=True):
            durations.setdefault(SEGMENT_CLASSES[c], []).append((e - s) / 2.0)
    # per-subject speed factors are log-normal(0, 0.15): class means within ~25 %
    assert np.mean(durations["cut_cucumber"]) == pytest.approx(30.0, rel=0.25)
    assert np.mean(durations["place_tomato"]) == pytest.approx(6.0, rel=0.25)
    total_s = [v.labels.size / 2.0 for v in videos]
    assert 100 < np.mean(total_s) < 300


def test_noise_has_the_stated_temporal_correlation():
    # Same seed with and without noise: the difference is the noise itself. Half of its
    # variance is AR(1) with time constant corr_s, half white, so the autocorrelation at lag
    # k >= 1 frames is 0.5 * exp(-k / (corr_s * rate)).
    kw = dict(n_subjects=1, videos_per_subject=3, frame_rate=10.0, n_features=16, seed=1)
    clean = synthesize_segment_videos(noise_std=0.0, **kw)
    noisy = synthesize_segment_videos(noise_std=2.0, noise_corr_s=1.0, **kw)
    noise = np.concatenate([(n.features - c.features).astype(np.float64)
                            for n, c in zip(noisy, clean, strict=True)], axis=1)
    assert noise.std() == pytest.approx(2.0, rel=0.05)
    for lag in (1, 5, 10):
        r = np.mean([np.corrcoef(row[:-lag], row[lag:])[0, 1] for row in noise])
        assert r == pytest.approx(0.5 * np.exp(-lag / 10.0), abs=0.04)


def test_classes_are_separable_with_temporal_context_not_frame_by_frame():
    videos = synthesize_segment_videos(n_subjects=2, videos_per_subject=3, frame_rate=5.0,
                                       n_features=32, seed=2)
    x = np.concatenate([v.features for v in videos], axis=1).T
    y = np.concatenate([v.labels for v in videos])
    means = np.stack([x[y == c].mean(0) if (y == c).any() else np.full(32, np.inf)
                      for c in range(len(SEGMENT_CLASSES))])

    def accuracy(feats):
        dist = ((feats[:, None, :] - means[None]) ** 2).sum(-1)
        return float(np.mean(dist.argmin(1) == y))

    kernel = np.ones(15) / 15  # 3 s of context
    smoothed = np.concatenate([
        np.stack([np.convolve(row, kernel, mode="same") for row in v.features]).T for v in videos
    ])
    frame_acc, context_acc = accuracy(x), accuracy(smoothed)
    assert frame_acc < 0.9  # a single frame is often ambiguous
    assert context_acc > frame_acc + 0.05 and context_acc > 0.6


def test_dataset_is_written_in_the_mstcn_layout_with_folds_by_subject(tmp_path):
    root = generate_segment_dataset(tmp_path / "segs", n_subjects=3, videos_per_subject=2,
                                    n_folds=3, frame_rate=5.0, n_features=4, seed=0)
    assert list_splits(root) == [1, 2, 3]
    tested = []
    for k in (1, 2, 3):
        train = load_mstcn(root, split=k, subset="train", frame_rate=5.0)
        test = load_mstcn(root, split=k, subset="test", frame_rate=5.0)
        assert train.classes == SEGMENT_CLASSES and train.n_features == 4
        test_subjects = {v.name.split("-")[0] for v in test.videos}
        assert test_subjects == {f"s{k:02d}"}
        assert not test_subjects & {v.name.split("-")[0] for v in train.videos}
        tested += [v.name for v in test.videos]
    assert sorted(tested) == sorted(v.name for v in load_mstcn(root, subset="all").videos)
    with pytest.raises(FileExistsError):
        generate_segment_dataset(root, n_subjects=3, videos_per_subject=2, n_folds=3,
                                 frame_rate=5.0, n_features=4)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"generate_segment_dataset: `n_folds` must be <= "
                                         r"n_subjects=2"):
        generate_segment_dataset("unused", n_subjects=2, n_folds=3)
    with pytest.raises(ValueError, match=r"synthesize_segment_videos: `noise_std` must be >= 0"):
        synthesize_segment_videos(noise_std=-1.0)
    with pytest.raises(ValueError, match=r"synthesize_segment_videos: `frame_rate`"):
        synthesize_segment_videos(frame_rate=0.0)
    with pytest.raises(TypeError, match=r"synthesize_segment_videos: `seed` must be an int"):
        synthesize_segment_videos(seed=1.5)
