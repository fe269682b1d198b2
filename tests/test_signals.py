"""softloc.data.signals: CSV / NumPy readers, the dispatcher, normalisation and windows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from softloc.data.signal_store import cut_windows, window_bounds
from softloc.data.signals import (
    Signal,
    SignalError,
    channel_stats,
    normalize_channels,
    read_csv_signal,
    read_npy_signal,
    read_signal,
    write_signal,
)


def _write_csv(path, header, rows):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


# ----------------------------------------------------------------------------- CSV

def test_csv_with_time_column_gives_rate_channels_and_channel_major_data(tmp_path):
    t = np.arange(50) / 125.0
    a, b = np.sin(t), np.cos(t)
    rows = [(f"{ti:.6f}", f"{ai:.6f}", f"{bi:.6f}") for ti, ai, bi in zip(t, a, b, strict=True)]
    p = _write_csv(tmp_path / "x.csv", ["Time", "acc_x", "acc_y"], rows)
    sig = read_csv_signal(p)
    assert sig.channels == ("acc_x", "acc_y")
    assert sig.rate_hz == pytest.approx(125.0, rel=1e-4)
    assert sig.data.shape == (2, 50) and sig.data.dtype == np.float32
    np.testing.assert_allclose(sig.data[0], a, atol=1e-6)
    np.testing.assert_allclose(sig.data[1], b, atol=1e-6)


def test_csv_without_time_column_needs_rate(tmp_path):
    p = _write_csv(tmp_path / "x.csv", ["ecg"], [(0.1,), (0.2,), (0.3,)])
    with pytest.raises(SignalError, match=r"x\.csv: unknown sampling rate \(field 'rate_hz'\)"):
        read_csv_signal(p)
    sig = read_csv_signal(p, rate_hz=250)
    assert sig.rate_hz == 250 and sig.data.shape == (1, 3)


def test_csv_rate_mismatch_names_file_and_field(tmp_path):
    p = _write_csv(tmp_path / "x.csv", ["t", "v"], [(i / 100, i) for i in range(5)])
    with pytest.raises(SignalError, match=r"x\.csv: rate mismatch in field 'rate_hz': 250 Hz"):
        read_csv_signal(p, rate_hz=250)


@pytest.mark.parametrize("rows, match", [
    ([(0.0, 1), (0.01, "abc")], r"x\.csv:3: column 'v' is not a number, got 'abc'"),
    ([(0.0, 1), (0.01, 2, 3)], r"x\.csv:3: expected 2 fields"),
    ([(0.0, 1), (0.01, "nan")], r"x\.csv:3: column 'v' is not finite"),
    ([(0.0, 1), (0.01, 2), (0.005, 3)], r"x\.csv:4: column 't' must increase"),
    ([(0.0, 1), (0.01, 2), (0.02, 3), (0.04, 3)],
     r"x\.csv:5: column 't' is not uniformly sampled"),
])
def test_csv_errors_name_file_and_line(tmp_path, rows, match):
    p = _write_csv(tmp_path / "x.csv", ["t", "v"], rows)
    with pytest.raises(SignalError, match=match):
        read_csv_signal(p)


def test_csv_line_numbers_count_comments_and_blank_lines(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("# exported by a logger\nt,v\n\n0.0,1\n# pause\n0.1,2\n0.2,x\n")
    with pytest.raises(SignalError, match=r"x\.csv:7: column 'v' is not a number"):
        read_csv_signal(p)


def test_csv_bad_header(tmp_path):
    p = _write_csv(tmp_path / "x.csv", ["1.0", "2.0"], [(1, 2)])
    with pytest.raises(SignalError, match=r"x\.csv:1: bad header; expected a row of channel names"):
        read_csv_signal(p, rate_hz=10)
    p = _write_csv(tmp_path / "y.csv", ["a", "a"], [(1, 2)])
    with pytest.raises(SignalError, match=r"y\.csv:1: bad header; expected distinct"):
        read_csv_signal(p, rate_hz=10)


def test_csv_missing_file():
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        read_csv_signal("nope.csv", rate_hz=1)


# ----------------------------------------------------------------------------- NumPy

def test_write_signal_round_trips_through_npy_and_sidecar(tmp_path):
    rng = np.random.default_rng(0)
    sig = Signal(rng.normal(size=(3, 40)).astype(np.float32), 62.5, ("a", "b", "c"),
                 ("g", "g", "deg"))
    npy = write_signal(tmp_path / "signals" / "rec1", sig)
    assert npy.name == "rec1.npy"
    meta = json.loads(npy.with_suffix(".json").read_text())
    assert meta == {"rate_hz": 62.5, "channels": ["a", "b", "c"], "units": ["g", "g", "deg"]}
    back = read_signal(npy)
    np.testing.assert_array_equal(back.data, sig.data)
    assert (back.rate_hz, back.channels, back.units) == (62.5, sig.channels, sig.units)
    with pytest.raises(FileExistsError, match="rec1.npy"):
        write_signal(tmp_path / "signals" / "rec1.npy", sig)


def test_npy_one_dimensional_is_one_channel_and_needs_a_rate(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(10.0))
    with pytest.raises(SignalError, match=r"x\.json: unknown sampling rate \(field 'rate_hz'\)"):
        read_npy_signal(tmp_path / "x.npy")
    sig = read_npy_signal(tmp_path / "x.npy", rate_hz=5)
    assert sig.data.shape == (1, 10) and sig.channels == ("ch0",)


def test_npy_sidecar_errors(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 10)))
    (tmp_path / "x.json").write_text('{"rate_hz": 100, "channels": ["a"]}')
    with pytest.raises(SignalError, match=r"x\.json: field 'channels' must list 2"):
        read_npy_signal(tmp_path / "x.npy")
    (tmp_path / "x.json").write_text('{"rate_hz": -1}')
    with pytest.raises(SignalError, match=r"x\.json: field 'rate_hz' must be a number > 0"):
        read_npy_signal(tmp_path / "x.npy")
    (tmp_path / "x.json").write_text('{"rate_hz": 100,')
    with pytest.raises(SignalError, match=r"x\.json:1: not valid JSON"):
        read_npy_signal(tmp_path / "x.npy")
    (tmp_path / "x.json").write_text('{"rate_hz": 100}')
    with pytest.raises(SignalError, match=r"x\.json: rate mismatch in field 'rate_hz'"):
        read_npy_signal(tmp_path / "x.npy", rate_hz=200)


def test_npz_reads_signal_rate_and_channels(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    np.savez(tmp_path / "x.npz", signal=x, rate_hz=4.0, channels=np.array(["p", "q"]))
    sig = read_signal(tmp_path / "x.npz")
    np.testing.assert_array_equal(sig.data, x)
    assert sig.rate_hz == 4.0 and sig.channels == ("p", "q")
    np.savez(tmp_path / "y.npz", data=x)
    with pytest.raises(SignalError, match=r"y\.npz: no array 'signal' \(field 'signal'\)"):
        read_signal(tmp_path / "y.npz")


def test_npy_rejects_non_finite_and_non_numeric(tmp_path):
    np.save(tmp_path / "x.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(SignalError, match="NaN or infinite"):
        read_npy_signal(tmp_path / "x.npy", rate_hz=1)
    np.save(tmp_path / "y.npy", np.zeros((2, 2, 2)))
    with pytest.raises(SignalError, match=r"y\.npy: field 'signal' must be a non-empty numeric"):
        read_npy_signal(tmp_path / "y.npy", rate_hz=1)


def test_read_signal_unknown_suffix(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    with pytest.raises(SignalError, match=r"x\.wav: unknown signal format '\.wav'"):
        read_signal(tmp_path / "x.wav")


def test_signal_select_by_name_and_index():
    sig = Signal(np.arange(6, dtype=np.float32).reshape(3, 2), 10.0, ("a", "b", "c"))
    assert sig.select(["c", 0]).channels == ("c", "a")
    np.testing.assert_array_equal(sig.select(["c"]).data, [[4, 5]])
    with pytest.raises(ValueError, match="no channel 'z'"):
        sig.select(["z"])
    with pytest.raises(ValueError, match="must name each of the 3 channels"):
        Signal(np.zeros((3, 2), dtype=np.float32), 1.0, ("a",))


# ----------------------------------------------------------------------------- normalisation

def test_zscore_matches_numpy_mean_and_std_per_channel():
    rng = np.random.default_rng(1)
    x = rng.normal(loc=[[5.0], [-2.0]], scale=[[3.0], [0.1]], size=(2, 1000)).astype(np.float32)
    y = normalize_channels(x)
    ref = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    np.testing.assert_allclose(y, ref, atol=1e-4)


def test_robust_stats_ignore_a_huge_artefact():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 10001))
    x[0, :20] = 1e4  # an electrode pop
    center, scale = channel_stats(x, method="robust")
    assert abs(center[0, 0]) < 0.05 and abs(scale[0, 0] - 1.0) < 0.05
    assert channel_stats(x)[1][0, 0] > 100  # the z-score scale is ruined by it


def test_normalize_with_given_stats_and_constant_channel():
    x = np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 4.0]], dtype=np.float32)
    center, scale = channel_stats(x)
    assert scale[0, 0] == 1.0  # constant channel: scale 1, not a division by zero
    y = normalize_channels(x * 2, stats=(center, scale))
    np.testing.assert_allclose(y[1], (x[1] * 2 - 2.0) / np.std([0, 2, 4]), rtol=1e-6)
    with pytest.raises(ValueError, match="`stats` must be two"):
        normalize_channels(x, stats=(center[:1], scale))
    with pytest.raises(ValueError, match="`method` must be one of"):
        channel_stats(x, method="minmax")


# ----------------------------------------------------------------------------- windows

def test_window_bounds_cover_every_sample_once_with_back_to_back_windows():
    b = window_bounds(1000, 100.0, window_s=3.0)
    assert b.tolist() == [[0, 300], [300, 600], [600, 900], [900, 1000]]
    covered = np.zeros(1000, int)
    for a, z in b:
        covered[a:z] += 1
    assert (covered == 1).all()


def test_window_bounds_with_hop_and_short_signal():
    b = window_bounds(1000, 100.0, window_s=4.0, hop_s=3.0)
    assert b.tolist() == [[0, 400], [300, 700], [600, 1000]]
    assert window_bounds(50, 100.0, window_s=4.0).tolist() == [[0, 50]]
    with pytest.raises(ValueError, match="at least one sample"):
        window_bounds(10, 10.0, window_s=0.01)
    with pytest.raises(ValueError, match="`hop_s` must be"):
        window_bounds(10, 10.0, window_s=1.0, hop_s=0)


def test_cut_windows_pads_with_zeros_and_reports_lengths():
    x = np.arange(10, dtype=np.float32)[None].repeat(2, 0)
    w, lengths, starts = cut_windows(x, 2.0, window_s=2.0)  # 4 samples per window
    assert w.shape == (3, 2, 4)
    assert lengths.tolist() == [4, 4, 2] and starts.tolist() == [0, 4, 8]
    np.testing.assert_array_equal(w[2, 0], [8, 9, 0, 0])
    np.testing.assert_array_equal(w[1, 1], [4, 5, 6, 7])


def test_a_non_utf8_csv_signal_names_the_file_line_and_byte(tmp_path):
    from softloc.data.signals import SignalError, read_csv_signal

    path = tmp_path / "s.csv"
    path.write_bytes(b"time,ecg\n0,1\n0.01,caf\xe9\n")
    with pytest.raises(SignalError, match=r"s\.csv:3: not UTF-8 text \(byte 0xe9\)"):
        read_csv_signal(path, rate_hz=100.0)
