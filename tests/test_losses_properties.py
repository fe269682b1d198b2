"""Property tests of softloc.losses (hypothesis): for any logits (+-1e4, +-1e300, +-inf) or
probabilities (exactly 0 and 1 included), any lengths, any counts (above k_max, above the
number of frames), every loss is >= 0, never NaN, and has a finite gradient; where a count is
impossible (certain frames rule it out) the count loss is +inf, with a finite gradient. The
cross-entropies equal torch's, the count loss the reference backend's; invalid input raises
one line of ``ValueError`` or ``TypeError`` naming the function.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from softloc.config import LossConfig  # noqa: E402
from softloc.counting import count_log_likelihood  # noqa: E402
from softloc.losses import (  # noqa: E402
    LOSS_NAMES,
    bce_loss,
    bootstrap_loss,
    build_loss,
    loco_loss,
    one_sided_loss,
    smoothed_targets,
    soft_localization_loss,
    softloc_loss,
)

# A few seconds per test on CI; SOFTLOC_EXAMPLES=1000 for a thorough local run.
SETTINGS = settings(
    max_examples=int(os.environ.get("SOFTLOC_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

_FINITE_LOGIT = st.one_of(
    st.floats(-30, 30),
    st.sampled_from([0.0, 1e4, -1e4, 745.5, -745.5, 40.0, -40.0]),
    st.floats(-1e5, 1e5),
)
_LOGIT = st.one_of(
    _FINITE_LOGIT, st.sampled_from([1e300, -1e300, math.inf, -math.inf]), st.floats()
).filter(lambda v: not math.isnan(v))
_PROB = st.one_of(
    st.floats(0, 1, allow_subnormal=False), st.sampled_from([0.0, 1.0, 1e-300, 1.0 - 1e-16])
)


@st.composite
def batches(draw, values):
    """(x, targets, counts, lengths, k_max) with x (batch, class, time) float64."""
    b, c, t_len = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 20))
    n = b * c * t_len
    x = torch.tensor(draw(st.lists(values, min_size=n, max_size=n)), dtype=torch.float64)
    labels = draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    targets = torch.tensor(labels, dtype=torch.float64).reshape(b, c, t_len)
    k_max = draw(st.integers(1, 10))
    counts = torch.tensor(draw(st.lists(st.integers(0, t_len + k_max + 2), min_size=b * c,
                                        max_size=b * c))).reshape(b, c)  # fmt: skip
    lengths = None
    if draw(st.booleans()):
        lengths = torch.tensor(draw(st.lists(st.integers(1, t_len), min_size=b, max_size=b)))
    return x.reshape(b, c, t_len), targets, counts, lengths, k_max


def _value_and_grad(fn, x):
    v = x.clone().requires_grad_()
    out = fn(v)
    finite = torch.isfinite(out)
    (grad,) = torch.autograd.grad(torch.where(finite, out, 0.0).sum(), v)
    return out.detach(), grad


def _assert_sane(out, grad, *, may_be_inf=False):
    assert not torch.isnan(out).any(), out
    assert (out >= 0).all(), out
    assert may_be_inf or torch.isfinite(out).all(), out
    assert torch.isfinite(grad).all(), grad


def _impossible(x, counts, lengths, k_max, logits):
    """Rows whose count certain frames rule out (the only rows with an infinite count loss)."""
    steps = x.shape[-1] if lengths is None else lengths[:, None]
    valid = torch.arange(x.shape[-1])[None, None, :] < torch.as_tensor(steps)[..., None]
    sure = (x == (math.inf if logits else 1.0)) & valid
    maybe = (x > (-math.inf if logits else 0.0)) & valid
    n = counts.clamp(max=k_max)
    ok = torch.where(n < k_max, (sure.sum(-1) <= n) & (n <= maybe.sum(-1)), maybe.sum(-1) >= k_max)
    return ~ok


@SETTINGS
@given(data=batches(_LOGIT))
def test_cross_entropies_of_any_logits(data):
    x, targets, _, lengths, _ = data
    out, grad = _value_and_grad(
        lambda v: bce_loss(v, targets, lengths=lengths, logits=True, reduction="none"), x
    )
    # +inf only where a logit of +-inf meets a label it rules out.
    _assert_sane(out, grad, may_be_inf=True)
    ruled_out = ((x == math.inf) & (targets < 1)) | ((x == -math.inf) & (targets > 0))
    valid = torch.isfinite(out) | ruled_out
    assert valid.all()
    finite = torch.isfinite(x)
    want = F.binary_cross_entropy_with_logits(
        torch.where(finite, x, 0.0), targets, reduction="none"
    )
    if lengths is not None:
        want = want * (torch.arange(x.shape[-1])[None, :] < lengths[:, None])[:, None, :]
    torch.testing.assert_close(out[finite], want[finite], rtol=1e-12, atol=1e-12)
    for beta in (0.0, 0.95):
        out, grad = _value_and_grad(
            lambda v, b=beta: bootstrap_loss(v, targets, beta=b, lengths=lengths, logits=True), x
        )
        _assert_sane(out, grad, may_be_inf=True)


@SETTINGS
@given(data=batches(_LOGIT))
def test_count_losses_of_any_logits(data):
    x, targets, counts, lengths, k_max = data
    out, grad = _value_and_grad(
        lambda v: loco_loss(v, counts, k_max, lengths=lengths, logits=True, reduction="none"), x
    )
    _assert_sane(out, grad, may_be_inf=True)
    assert torch.equal(torch.isinf(out), _impossible(x, counts, lengths, k_max, logits=True))
    if (x.abs() <= 1e5).all():  # where the reference backend's float64 sums are accurate
        want = -count_log_likelihood(x, counts, k_max, lengths=lengths, logits=True,
                                     backend="reference")  # fmt: skip
        torch.testing.assert_close(out, want, rtol=1e-6, atol=1e-9)
    for sigma, alpha, distance in (
        (2.0, 0.5, "squared"),
        (0.0, 0.3, "log"),
        (math.inf, 1.0, "log"),
    ):
        out, grad = _value_and_grad(
            lambda v, s=sigma, a=alpha, d=distance: softloc_loss(
                v, targets, s, a, k_max, lengths=lengths, counts=counts, logits=True, distance=d
            ),
            x,
        )
        _assert_sane(out, grad, may_be_inf=True)


@SETTINGS
@given(data=batches(_PROB))
def test_losses_of_any_probabilities(data):
    x, targets, counts, lengths, k_max = data
    out, grad = _value_and_grad(lambda v: bce_loss(v, targets, reduction="none"), x)
    _assert_sane(out, grad)
    torch.testing.assert_close(out, F.binary_cross_entropy(x, targets, reduction="none"))
    for fn in (
        lambda v: bootstrap_loss(v, targets, lengths=lengths),
        lambda v: soft_localization_loss(v, targets, 1.5, lengths=lengths),
        lambda v: soft_localization_loss(v, targets, 0.0, lengths=lengths, distance="log"),
        lambda v: soft_localization_loss(v, targets, 2.0, lengths=lengths, distance="log"),
        lambda v: one_sided_loss(v, targets, 1.5, lengths=lengths),
        lambda v: softloc_loss(v, targets, 1.0, 0.0, k_max, lengths=lengths),
    ):
        out, grad = _value_and_grad(fn, x)
        _assert_sane(out, grad)
    smooth = smoothed_targets(targets, 2.0, lengths=lengths, normalize="peak")
    assert ((smooth >= 0) & (smooth <= 1)).all()
    out, grad = _value_and_grad(
        lambda v: loco_loss(v, counts, k_max, lengths=lengths, reduction="none"), x
    )
    _assert_sane(out, grad, may_be_inf=True)
    assert torch.equal(torch.isinf(out), _impossible(x, counts, lengths, k_max, logits=False))


@SETTINGS
@given(data=batches(_FINITE_LOGIT), name=st.sampled_from(LOSS_NAMES), step=st.integers(0, 200))
def test_every_registered_loss_on_any_finite_logits(data, name, step):
    x, targets, counts, lengths, k_max = data
    config = LossConfig(name=name, k_max=k_max, softness_ms=30.0)
    loss = build_loss(config, frame_rate=100.0, max_steps=100)
    labels = {"targets": targets, "counts": counts}
    kw = {key: labels[key] for key in loss.requires}
    out, grad = _value_and_grad(lambda v: loss(v, lengths=lengths, step=step, **kw), x)
    # With finite logits a count is impossible only when it exceeds the valid frames.
    steps = torch.full((x.shape[0],), x.shape[-1]) if lengths is None else lengths
    possible = (counts.clamp(max=k_max) <= steps[:, None]).all()
    _assert_sane(out, grad, may_be_inf="counts" in loss.requires and not possible)


# ------------------------------------------------------------------------------------------
# Invalid input: one line of ValueError / TypeError naming the function

_ANY = st.one_of(st.floats(), st.sampled_from([-0.5, 1.5, 0.5]))


@SETTINGS
@given(
    values=st.lists(_ANY, min_size=6, max_size=6),
    labels=st.lists(_ANY, min_size=6, max_size=6),
    counts=st.lists(st.one_of(st.integers(-2, 9), _ANY), min_size=2, max_size=2),
    k_max=st.one_of(st.integers(-1, 4), st.just(2.5)),
    sigma=st.one_of(st.floats(), st.just(-1.0)),
    logits=st.booleans(),
    which=st.sampled_from(["bce", "bootstrap", "loco", "softloc", "sll", "one-sided"]),
)
def test_invalid_input_raises_one_line(values, labels, counts, k_max, sigma, logits, which):
    x = torch.tensor(values, dtype=torch.float64).reshape(1, 2, 3)
    y = torch.tensor(labels, dtype=torch.float64).reshape(1, 2, 3)
    c = torch.tensor(counts).reshape(1, 2)
    calls = {
        "bce": ("bce_loss", lambda: bce_loss(x, y, logits=logits)),
        "bootstrap": ("bootstrap_loss", lambda: bootstrap_loss(x, y, logits=logits)),
        "loco": ("loco_loss", lambda: loco_loss(x, c, k_max, logits=logits)),
        "softloc": (
            "softloc_loss",
            lambda: softloc_loss(x, y, sigma, 0.5, k_max, counts=c, logits=logits),
        ),
        "sll": ("soft_localization_loss", lambda: soft_localization_loss(x, y, sigma)),
        "one-sided": ("one_sided_loss", lambda: one_sided_loss(x, y, sigma)),
    }
    fn_name, call = calls[which]
    try:
        out = call()
    except (ValueError, TypeError) as err:
        message = str(err)
        assert message.startswith(f"{fn_name}: ") and "\n" not in message, message
        return
    assert not torch.isnan(out).any() and (out >= 0).all()
