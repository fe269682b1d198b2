"""The softness sweep on a tiny synthetic drum set, and its Nadaraya–Watson surface."""

import csv

import numpy as np
import pytest

from softloc.cli import main
from softloc.config import load_config
from softloc.data import synthesize_drum_dataset
from softloc.experiments.softness_sweep import run_softness_sweep, softness_surface

SMALL = (
    "features.sample_rate=22050", "features.n_fft=1024", "features.win_length=551",
    "features.hop_length=110", "features.n_mels=40", "model.conv_filters=[4,4,4,4]",
    "model.pool_sizes=[2,2,2,3]", "model.lstm_units=8", "model.hidden_units=8",
    "data.rate_factors=[1.0]", "data.batch_size=4", "train.num_threads=1",
    "inference.batch_size=16",
)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep") / "data"
    synthesize_drum_dataset(root, seed=0, n_train_files=3, n_valid_files=1, n_test_files=1,
                            file_duration_s=8.0, n_train_kits=2, n_valid_kits=1, n_test_kits=1,
                            sample_rate=22050)
    return root


def test_softness_sweep_writes_rows_surface_and_resumes(tiny_data, tmp_path):
    out = tmp_path / "sweep"
    kwargs = dict(preset="demo", n_runs=2, sigma_range_ms=(0.0, 80.0),
                  softness_range_ms=(10.0, 150.0), max_steps=2, overrides=SMALL, verbose=False)
    result = run_softness_sweep(tiny_data, out, **kwargs)
    assert (result.trained, result.skipped) == (2, 0)
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["run_id"]) for r in rows] == [0, 1]
    for r in rows:
        assert 0.0 <= float(r["sigma_ms"]) <= 80.0 and 10.0 <= float(r["softness_ms"]) <= 150.0
        # the run was trained at the drawn softness
        run_config = load_config(out / r["run"] / "config.yaml")
        assert run_config.loss.softness_ms == float(r["softness_ms"])
        tp = float(r["recall"]) * int(r["n_ref"])
        assert tp == pytest.approx(round(tp), abs=1e-4)
        assert float(r["f1"]) == pytest.approx(2 * tp / (int(r["n_ref"]) + int(r["n_est"])),
                                               abs=1e-5)
    assert len({(r["sigma_ms"], r["softness_ms"]) for r in rows}) == 2
    assert (out / "softness_sweep.png").read_bytes()[:4] == b"\x89PNG"
    again = run_softness_sweep(tiny_data, out, **dict(kwargs, n_runs=2))
    assert (again.trained, again.skipped) == (0, 2)


def test_surface_is_the_nadaraya_watson_estimate():
    rows = [{"sigma_ms": s, "softness_ms": h, "f1": f}
            for s, h, f in ((10, 20, 0.9), (80, 20, 0.5), (50, 140, 0.8))]
    gx, gy, surface = softness_surface(rows, bandwidth_ms=30.0, sigma_range_ms=(0, 100),
                                       softness_range_ms=(0, 150), n_grid=11)
    assert surface.shape == (11, 11)
    np.testing.assert_allclose(gx, np.arange(0, 101, 10))
    np.testing.assert_allclose(gy, np.arange(0, 151, 15))
    # grid point (sigma=10, softness=15) vs a direct Gaussian-weighted mean
    pts = np.array([[10, 20], [80, 20], [50, 140]], float)
    w = np.exp(-0.5 * (((pts - [10.0, 15.0]) / 30.0) ** 2).sum(1))
    assert surface[1, 1] == pytest.approx(100 * (w @ [0.9, 0.5, 0.8]) / w.sum())
    failed = [{"sigma_ms": 1, "softness_ms": 2, "f1": ""}]
    assert np.isnan(softness_surface(failed, bandwidth_ms=5.0, sigma_range_ms=(0, 10),
                                     softness_range_ms=(0, 10), n_grid=3)[2]).all()


def test_bad_sweep_arguments_are_refused(tiny_data, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"run_softness_sweep: `n_runs` must be an int >= 1"):
        run_softness_sweep(tiny_data, tmp_path / "x", n_runs=0)
    with pytest.raises(ValueError, match=r"`sigma_range_ms` must be \(low, high\)"):
        run_softness_sweep(tiny_data, tmp_path / "x", sigma_range_ms=(50.0, 10.0))
    with pytest.raises(ValueError, match=r"`bandwidth_ms` must be > 0"):
        run_softness_sweep(tiny_data, tmp_path / "x", bandwidth_ms=0.0)
    assert not (tmp_path / "x").exists()
    rc = main(["experiment", "softness-sweep", "--data", str(tiny_data), "--out",
               str(tmp_path / "y"), "--sigma-range", "0,10,20"])
    assert rc == 2
    assert "--sigma-range: expected LOW,HIGH in ms" in capsys.readouterr().err
