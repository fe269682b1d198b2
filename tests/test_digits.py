"""Tests for softloc.data.digits (IDX, MNIST, sklearn digits, canvases) and the digit model."""

from __future__ import annotations

import gzip
import itertools
import struct

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from softloc.data.digits import (
    CanvasStream,
    load_mnist,
    load_sklearn_digits,
    make_canvases,
    read_idx,
)
from softloc.hilbert import image_to_patches, sequence_centres_px
from softloc.models import build_model, model_spec
from softloc.models.digits import CONV_PRESETS, DigitDetector

# ------------------------------------------------------------------------------------------------
# IDX files, written here with struct (independent of the reader)
# ------------------------------------------------------------------------------------------------


def _idx_bytes(array: np.ndarray, code: int, fmt: str) -> bytes:
    head = struct.pack(">BBBB", 0, 0, code, array.ndim)
    head += b"".join(struct.pack(">i", d) for d in array.shape)
    body = b"".join(struct.pack(">" + fmt, v) for v in array.ravel().tolist())
    return head + body


def _write_mnist(folder, n_train=5, n_test=3, side=28, gz=False, dotted=False, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        data = _idx_bytes(arr, 0x08, "B")
        fname = name.replace("-idx", ".idx") if dotted else name
        if gz:
            with gzip.open(folder / (fname + ".gz"), "wb") as fh:
                fh.write(data)
        else:
            (folder / fname).write_bytes(data)
    return arrays


@pytest.mark.parametrize(
    "code, fmt, dtype",
    [
        (0x08, "B", np.uint8),
        (0x09, "b", np.int8),
        (0x0B, "h", np.int16),
        (0x0C, "i", np.int32),
        (0x0D, "f", np.float32),
        (0x0E, "d", np.float64),
    ],
)
def test_read_idx_round_trips_every_type_code(tmp_path, code, fmt, dtype):
    rng = np.random.default_rng(0)
    arr = (rng.random((3, 4, 2)) * 100 - (0 if dtype == np.uint8 else 50)).astype(dtype)
    path = tmp_path / "x.idx"
    path.write_bytes(_idx_bytes(arr, code, fmt))
    got = read_idx(path)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    np.testing.assert_array_equal(got, arr)


def test_read_idx_reads_gzip(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    with gzip.open(tmp_path / "a.gz", "wb") as fh:
        fh.write(_idx_bytes(arr, 0x08, "B"))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_read_idx_errors_name_the_file_and_the_expectation(tmp_path):
    good = _idx_bytes(np.zeros((2, 3), np.uint8), 0x08, "B")
    cases = {
        "short": (b"\x00\x00", r"short: expected an IDX header of at least 4 bytes, .* 2 bytes"),
        "magic": (b"\x01" + good[1:], r"magic: byte 0: not an IDX file: .*got 0x01000802"),
        "code": (good[:2] + b"\x07" + good[3:], r"code: byte 2: expected an IDX type code .*0x07"),
        "header": (good[:6], r"header: expected 12 header bytes for 2 dimensions"),
        "size": (good[:-1], r"size: byte 12: expected 6 data bytes for shape \(2, 3\) .*got 5"),
    }
    for name, (data, pattern) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=pattern):
            read_idx(tmp_path / name)
    (tmp_path / "bad.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"bad.gz: cannot read as gzip-compressed IDX"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


@pytest.mark.parametrize("gz, dotted", [(False, False), (True, False), (False, True)])
def test_load_mnist_keeps_the_split_and_scales_to_unit_range(tmp_path, gz, dotted):
    arrays = _write_mnist(tmp_path, gz=gz, dotted=dotted)
    ds = load_mnist(tmp_path)
    assert ds.source == "mnist" and ds.digit_px == 28
    np.testing.assert_allclose(ds.train_images, arrays["train-images-idx3-ubyte"] / 255.0)
    np.testing.assert_array_equal(ds.train_labels, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_allclose(ds.test_images, arrays["t10k-images-idx3-ubyte"] / 255.0)
    np.testing.assert_array_equal(ds.test_labels, arrays["t10k-labels-idx1-ubyte"])
    assert ds.train_images.dtype == np.float32 and ds.train_labels.dtype == np.int64


def test_load_mnist_resizes_on_request(tmp_path):
    from PIL import Image  # antialiased bilinear resizing as PIL defines it, independently

    arrays = _write_mnist(tmp_path)
    ds = load_mnist(tmp_path, digit_px=14)
    assert ds.train_images.shape == (5, 14, 14)
    for got, raw in zip(ds.train_images, arrays["train-images-idx3-ubyte"], strict=True):
        image = Image.fromarray((raw / 255.0).astype(np.float32), mode="F")
        expected = np.asarray(image.resize((14, 14), Image.BILINEAR))
        np.testing.assert_allclose(got, expected, atol=2e-5)


def test_load_mnist_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_mnist(tmp_path / "nope")
    with pytest.raises(
        FileNotFoundError, match="train-images-idx3-ubyte, train-images-idx3-ubyte.gz"
    ):
        load_mnist(tmp_path)
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(
        _idx_bytes(np.array([1, 2, 11], np.uint8), 8, "B")
    )
    with pytest.raises(
        ValueError, match=r"t10k-labels-idx1-ubyte: item 2: expected a digit label in 0..9, got 11"
    ):
        load_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(
        _idx_bytes(np.array([1, 2], np.uint8), 8, "B")
    )
    with pytest.raises(ValueError, match=r"t10k-labels-idx1-ubyte: expected 3 labels .* got 2"):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        _idx_bytes(np.zeros((2, 4), np.uint8), 8, "B")
    )
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte: expected square images .*\(2, 4\)"
    ):
        load_mnist(tmp_path)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03\x00")
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: expected 16 header bytes"):
        load_mnist(tmp_path)


def test_sklearn_digits_at_native_size_are_a_stratified_split_of_the_dataset():
    from sklearn.datasets import load_digits

    ref = load_digits()
    ds = load_sklearn_digits(digit_px=8)
    assert ds.source == "sklearn"
    assert len(ds.train_labels) + len(ds.test_labels) == len(ref.target)
    assert len(ds.test_labels) == 450
    both = np.concatenate([ds.train_images, ds.test_images]).reshape(len(ref.target), -1)
    key = lambda a: np.lexsort(a.T[::-1])  # noqa: E731  (sort rows lexicographically)
    ref_rows = ref.images.reshape(len(ref.target), -1) / 16.0
    np.testing.assert_allclose(both[key(both)], ref_rows[key(ref_rows)], atol=1e-7)
    # stratified: each class's test share is within one digit of 25 %
    for c in range(10):
        n_c = int((ref.target == c).sum())
        assert abs(int((ds.test_labels == c).sum()) - 0.25 * n_c) <= 1


def _bilinear_reference(img: np.ndarray, size: int) -> np.ndarray:
    """Naive bilinear resampling with half-pixel centres: source = (dst + 0.5) * in / out - 0.5."""
    n = img.shape[0]
    out = np.zeros((size, size))
    for r in range(size):
        for c in range(size):
            y = min(max((r + 0.5) * n / size - 0.5, 0.0), n - 1)
            x = min(max((c + 0.5) * n / size - 0.5, 0.0), n - 1)
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            y1, x1 = min(y0 + 1, n - 1), min(x0 + 1, n - 1)
            wy, wx = y - y0, x - x0
            out[r, c] = ((1 - wy) * (1 - wx) * img[y0, x0] + (1 - wy) * wx * img[y0, x1]
                         + wy * (1 - wx) * img[y1, x0] + wy * wx * img[y1, x1])  # fmt: skip
    return out


def test_sklearn_digits_are_upscaled_bilinearly():
    small = load_sklearn_digits(digit_px=8)
    big = load_sklearn_digits(digit_px=16)
    assert big.train_images.shape[1:] == (16, 16) and big.digit_px == 16
    np.testing.assert_array_equal(big.train_labels, small.train_labels)  # same split
    for i in (0, 7, 100):
        ref = _bilinear_reference(small.train_images[i].astype(np.float64), 16)
        np.testing.assert_allclose(big.train_images[i], ref, atol=1e-6)


def test_sklearn_digits_split_is_deterministic_and_seeded():
    a, b = load_sklearn_digits(seed=3), load_sklearn_digits(seed=3)
    np.testing.assert_array_equal(a.test_labels, b.test_labels)
    c = load_sklearn_digits(seed=4)
    assert not np.array_equal(a.test_images, c.test_images)
    with pytest.raises(ValueError, match="test_fraction"):
        load_sklearn_digits(test_fraction=1.0)
    with pytest.raises(TypeError, match="load_sklearn_digits: `digit_px` must be an int"):
        load_sklearn_digits(digit_px=16.0)


# ------------------------------------------------------------------------------------------------
# Canvases
# ------------------------------------------------------------------------------------------------


def _digits(n=20, s=8, seed=0):
    rng = np.random.default_rng(seed)
    imgs = rng.random((n, s, s)).astype(np.float32) * 0.9 + 0.1  # never zero: boxes are visible
    return imgs, np.arange(n) % 10


def test_canvases_hold_the_digits_at_their_centres_without_overlap():
    imgs, labs = _digits()
    cv = make_canvases(
        imgs,
        labs,
        n_canvases=50,
        canvas_px=32,
        min_digits=1,
        max_digits=4,
        rng=np.random.default_rng(1),
    )
    assert cv.images.shape == (50, 1, 32, 32) and cv.images.dtype == np.float32
    assert cv.counts.shape == (50, 10) and cv.counts.dtype == np.int64
    for i in range(50):
        k = len(cv.labels[i])
        assert 1 <= k <= 4
        np.testing.assert_array_equal(cv.counts[i], np.bincount(cv.labels[i], minlength=10))
        np.testing.assert_array_equal(cv.labels[i], labs[cv.indices[i]])
        tops = cv.centres_px[i] - 4.0
        assert np.all(tops == np.round(tops)) and tops.min() >= 0 and tops.max() <= 24
        for a, b in itertools.combinations(range(k), 2):
            assert np.abs(tops[a] - tops[b]).max() >= 8  # boxes disjoint
        rebuilt = np.zeros((32, 32), np.float32)
        for (t, l), j in zip(tops.astype(int), cv.indices[i], strict=True):
            rebuilt[t : t + 8, l : l + 8] = imgs[j]
        np.testing.assert_array_equal(cv.images[i, 0], rebuilt)


def test_single_digit_positions_are_uniform():
    imgs, labs = _digits(n=4)
    cv = make_canvases(
        imgs,
        labs,
        n_canvases=3000,
        canvas_px=16,
        min_digits=1,
        max_digits=1,
        rng=np.random.default_rng(2),
    )
    tops = np.concatenate(cv.centres_px)[:, 0] - 4.0  # 9 possible rows 0..8
    observed = np.bincount(tops.astype(int), minlength=9)
    assert chisquare(observed).pvalue > 1e-3
    n_digits = np.array([len(x) for x in cv.labels])
    assert set(n_digits.tolist()) == {1}


def test_digit_counts_are_uniform_in_range():
    imgs, labs = _digits()
    cv = make_canvases(
        imgs,
        labs,
        n_canvases=2000,
        canvas_px=40,
        min_digits=0,
        max_digits=3,
        rng=np.random.default_rng(3),
    )
    observed = np.bincount(cv.counts.sum(axis=1), minlength=4)
    assert chisquare(observed).pvalue > 1e-3
    assert observed[0] > 0  # empty canvases are allowed with min_digits=0


def test_make_canvases_rejects_bad_input():
    imgs, labs = _digits()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="cover more than half"):
        make_canvases(imgs, labs, n_canvases=1, canvas_px=16, max_digits=3, rng=rng)
    with pytest.raises(ValueError, match="min_digits <= max_digits"):
        make_canvases(imgs, labs, n_canvases=1, canvas_px=64, min_digits=3, max_digits=2, rng=rng)
    with pytest.raises(ValueError, match=r"`labels` must lie in \[0, 10\)"):
        make_canvases(imgs, labs + 1, n_canvases=1, canvas_px=64, rng=rng)
    with pytest.raises(ValueError, match=r"`images` must have shape \(n, digit_px, digit_px\)"):
        make_canvases(imgs[:, :4], labs, n_canvases=1, canvas_px=64, rng=rng)
    with pytest.raises(ValueError, match="must be >= the digit size"):
        make_canvases(imgs, labs, n_canvases=1, canvas_px=4, max_digits=0, min_digits=0, rng=rng)


def test_canvas_stream_is_reproducible_and_seeded():
    imgs, labs = _digits()

    def take(seed):
        stream = CanvasStream(imgs, labs, canvas_px=32, seed=seed, chunk=4)
        return list(itertools.islice(iter(stream), 6))

    a, b, c = take(0), take(0), take(1)
    assert a[0][0].shape == (1, 32, 32) and a[0][1].shape == (10,)
    assert a[0][1].dtype == torch.int64
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, c, strict=True))
    for x, y in a:  # the label is the number of digit boxes found in the image
        assert int(y.sum()) == int(round(float((x > 0).sum()) / 64))


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


def _tiny(**kw):
    args = dict(
        image_px=32,
        granularity_px=8,
        window_px=8,
        conv_channels=CONV_PRESETS["tiny"],
        lstm_units=6,
        hidden_units=5,
    )
    args.update(kw)
    return DigitDetector(**args)


def test_detector_maps_images_to_class_by_time_logits():
    m = _tiny()
    z = m(torch.rand(3, 1, 32, 32))
    assert z.shape == (3, 10, 16) and m.n_steps == 16
    assert z.dtype == torch.float32 and bool(torch.isfinite(z).all())
    assert len(sequence_centres_px(32, 8)) == z.shape[-1]
    # logits, not probabilities: the N(0, 1) head spreads them beyond [0, 1]
    assert bool((z < 0).any())


def test_output_bias_sets_the_initial_probability():
    m = _tiny(output_bias=-20.0)
    with torch.no_grad():
        for mod in (m.hidden, m.out):
            mod.weight.zero_()
    z = m(torch.rand(2, 1, 32, 32))
    torch.testing.assert_close(z, torch.full_like(z, -20.0))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_one_way_detector_is_causal_along_the_curve(batch_norm):
    # Changing pixels seen only by the windows of late curve steps must not change earlier outputs.
    torch.manual_seed(0)
    m = _tiny(bidirectional=False, batch_norm=batch_norm).eval()
    x = torch.rand(1, 1, 32, 32)
    y = x.clone()
    y[:, :, 0:8, 24:32] = torch.rand(1, 1, 8, 8)  # top-right cell = last step (window = cell)
    px, py = m(x), m(y)
    torch.testing.assert_close(px[..., :-1], py[..., :-1])
    assert not torch.allclose(px[..., -1], py[..., -1])


def test_bidirectional_detector_sees_the_whole_curve():
    # The first step's output depends on the pixels of the last cell (and the one-way LSTM's not).
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64, requires_grad=True)
    for bidirectional, reaches in ((True, True), (False, False)):
        m = _tiny(bidirectional=bidirectional).double().eval()
        (grad,) = torch.autograd.grad(m(x)[..., 0].sum(), x)
        assert bool(grad[0, 0, 0:8, 24:32].abs().sum() > 0) == reaches


def test_skipping_blank_windows_is_exact():
    m = _tiny(batch_norm=False, window_px=16)
    x = torch.zeros(2, 1, 32, 32)
    x[0, 0, 3:9, 5:12] = torch.rand(6, 7)
    reference = m.encoder(image_to_patches(x, window_px=16, granularity_px=8).flatten(0, 1))
    reference = reference.flatten(1).reshape(2, 16, -1)
    h, _ = m.lstm(m.norm(reference))
    expected = m.out(torch.sigmoid(m.hidden(h))).transpose(1, 2)
    torch.testing.assert_close(m(x), expected)
    torch.testing.assert_close(m(torch.zeros(1, 1, 32, 32)), expected[1:])


def test_gradients_reach_every_parameter():
    m = _tiny(window_px=16)
    x = torch.zeros(2, 1, 32, 32)
    x[:, :, 4:12, 10:18] = 1.0
    m(x).sum().backward()
    for name, param in m.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name


def test_encode_gives_one_feature_vector_per_window():
    m = _tiny(window_px=16)
    f = m.encode(torch.rand(5, 1, 16, 16))
    assert f.shape == (5, m.n_features) and m.n_features == 8 * 4 * 4
    with pytest.raises(
        ValueError, match=r"DigitDetector.encode: `patches` must have shape \(n, 1, 16, 16\)"
    ):
        m.encode(torch.rand(5, 1, 8, 8))


def test_vgg13_preset_builds_on_mnist_sized_windows():
    m = DigitDetector(
        image_px=32, granularity_px=16, window_px=28, conv_channels=CONV_PRESETS["vgg13"]
    )
    n_convs = sum(isinstance(x, torch.nn.Conv2d) for x in m.encoder)
    n_pools = sum(isinstance(x, torch.nn.MaxPool2d) for x in m.encoder)
    assert (n_convs, n_pools) == (10, 5)  # VGG-13 = 10 conv + 3 FC layers
    assert m.n_features == 512  # 28 -> 14 -> 7 -> 4 -> 2 -> 1
    with torch.no_grad():
        assert m(torch.rand(1, 1, 32, 32)).shape == (1, 10, 4)


def test_name_and_arguments_rebuild_the_same_model():
    m = build_model("digits", image_px=32, granularity_px=8, window_px=(16, 8),
                    conv_channels=CONV_PRESETS["tiny"], lstm_units=6, hidden_units=5,
                    output_bias=-3.0).eval()
    name, args = model_spec(m)
    assert name == "digits" and args["window_px"] == [16, 8]  # plain data, as a file stores it
    clone = build_model(name, **args)
    assert clone.window_px == (16, 8)
    clone.load_state_dict(m.state_dict())
    x = torch.rand(2, 1, 32, 32)
    torch.testing.assert_close(clone.eval()(x), m(x))


def test_detector_rejects_bad_input():
    m = _tiny()
    with pytest.raises(
        ValueError, match=r"DigitDetector: `images` must have shape \(batch, 1, 32, 32\)"
    ):
        m(torch.rand(1, 1, 64, 64))
    with pytest.raises(TypeError, match="floating-point"):
        m(torch.zeros(1, 1, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(batch, channel, height, width\)"):
        m(torch.rand(32, 32))
    with pytest.raises(ValueError, match="same parity"):
        _tiny(window_px=9)
    with pytest.raises(TypeError, match=r"`window_px` must be a positive int or a \(height"):
        _tiny(window_px=(16, 0))
    with pytest.raises(ValueError, match="power of two"):
        _tiny(image_px=48)
    with pytest.raises(ValueError, match="conv_channels"):
        _tiny(conv_channels=())
