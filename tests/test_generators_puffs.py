"""softloc.data.generators.puffs: the synthetic puffMarker-like dataset and its layout files."""

from __future__ import annotations

import numpy as np
import pytest

from softloc.data.generators.puffs import (
    PUFF_FEATURES,
    generate_puff_dataset,
    simulate_session,
)
from softloc.data.layout import read_annotation_file, read_counts_csv, read_split_file
from softloc.data.signals import normalize_channels, read_signal
from softloc.data.subjects import leave_one_subject_out, read_subjects_csv
from softloc.models.lrm import LRM


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("puffs")
    return generate_puff_dataset(root, n_subjects=4, sessions_per_subject=3,
                                 cycles_per_session=300, window_cycles=50, cycle_s=4.0,
                                 seed=7)


def test_layout_files_agree_with_the_simulation(small):
    root = small.root
    assert len(PUFF_FEATURES) == 37 == len(set(PUFF_FEATURES))
    assert small.rate_hz == 0.25
    rows = read_counts_csv(root / "counts.csv")
    for stem in small.stems:
        sig = read_signal(root / "signals" / f"{stem}.npy")
        assert sig.data.shape == (37, 300) and sig.channels == PUFF_FEATURES
        assert sig.rate_hz == 0.25
        steps = small.puff_steps[stem]
        ev = read_annotation_file(root / "annotations" / f"{stem}.txt")
        assert [t for t, _ in ev] == [4.0 * k for k in steps]  # step k at k * cycle_s
        assert {lab for _, lab in ev} <= {"puff"}
        counts = [c for _, f, s, e, lab, c in rows if f == stem]
        brute = [int(np.sum((steps >= 50 * w) & (steps < 50 * (w + 1)))) for w in range(6)]
        assert counts == brute
    assert read_subjects_csv(root / "subjects.csv") == small.subjects
    sides = {}
    for name in ("train", "valid", "test"):
        for _, stem in read_split_file(root / "splits" / f"{name}.txt"):
            sides.setdefault(small.subjects[stem], set()).add(name)
    assert all(len(v) == 1 for v in sides.values())  # a subject on one side only
    assert len(sides) == 4


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    a = generate_puff_dataset(tmp_path / "a", n_subjects=2, sessions_per_subject=2,
                              cycles_per_session=100, seed=3)
    b = generate_puff_dataset(tmp_path / "b", n_subjects=2, sessions_per_subject=2,
                              cycles_per_session=100, seed=3)
    c = generate_puff_dataset(tmp_path / "c", n_subjects=2, sessions_per_subject=2,
                              cycles_per_session=100, seed=4)
    for stem in a.stems:
        x_a = np.load(a.root / "signals" / f"{stem}.npy")
        np.testing.assert_array_equal(x_a, np.load(b.root / "signals" / f"{stem}.npy"))
        assert not np.array_equal(x_a, np.load(c.root / "signals" / f"{stem}.npy"))
    with pytest.raises(FileExistsError):
        generate_puff_dataset(tmp_path / "a", n_subjects=2, sessions_per_subject=2,
                              cycles_per_session=100, seed=3)


def test_puff_cycles_breathe_deeper_with_the_hand_at_the_mouth():
    rng = np.random.default_rng(0)
    deeper, hand = [], []
    for _ in range(10):
        x, steps = simulate_session(rng, n_cycles=400)
        if steps.size == 0:
            continue
        other = np.setdiff1d(np.arange(400), steps)
        # same subject within a session: gains are common, so raw means compare
        i_stretch, i_hand = PUFF_FEATURES.index("stretch"), PUFF_FEATURES.index("hand_mouth")
        deeper.append(x[i_stretch, steps].mean() > x[i_stretch, other].mean())
        hand.append(x[i_hand, steps].mean() > x[i_hand, other].mean())
    assert len(deeper) >= 5 and all(deeper) and all(hand)


def _exact_f1(model, xs, truth):
    tp = fp = fn = 0
    for x, t in zip(xs, truth, strict=True):
        pred = np.flatnonzero(model.predict(x))
        hit = np.intersect1d(pred, t).size
        tp, fp, fn = tp + hit, fp + pred.size - hit, fn + t.size - hit
    return 2 * tp / max(1, 2 * tp + fp + fn)


def test_puffs_are_learnable_across_subjects_but_no_single_feature_suffices(small):
    x = {s: normalize_channels(np.load(small.root / "signals" / f"{s}.npy"), method="robust")
         for s in small.stems}
    fold = leave_one_subject_out(small.subjects)[0]
    lr = LRM(max_shift=0).fit([x[s] for s in fold.train], [small.puff_steps[s]
                                                             for s in fold.train])
    f1_lr = _exact_f1(lr, [x[s] for s in fold.test], [small.puff_steps[s] for s in fold.test])
    assert f1_lr > 0.8
    # the best threshold on any single feature, chosen on the TEST subject itself, is worse
    truth = np.concatenate([np.isin(np.arange(300), small.puff_steps[s]) for s in fold.test])
    feats = np.concatenate([x[s] for s in fold.test], axis=1)
    best = 0.0
    for f in range(37):
        for thr in np.quantile(feats[f], np.linspace(0.8, 0.995, 40)):
            for sign in (1, -1):
                pred = sign * feats[f] > sign * thr
                tp = np.sum(pred & truth)
                best = max(best, 2 * tp / max(1, pred.sum() + truth.sum()))
    assert best < f1_lr
