"""Property tests of softloc.counting (hypothesis): for any probabilities or logits (exactly 0
and 1, +-1e4, +-inf, subnormal-producing logits near +-740), any lengths and any counts (above
k_max, above the number of frames), the fast backends return what the log-space reference
backend returns, never NaN, a log-probability <= 0, and finite gradients; invalid input raises
one line of ``ValueError`` or ``TypeError`` naming the function.

The reference is the oracle here; it is itself tested against enumeration, scipy and closed
forms in ``test_counting.py``. Its float64 sums are rough for logits of ~1e12 and more, so the
logits drawn here stay within 1e6 (larger ones are checked against closed forms there).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from softloc.counting import (  # noqa: E402
    count_distribution,
    count_log_likelihood,
    cpu_options,
    set_cpu_options,
)

FAST = ("cpu", "tree")
# A few seconds per test on CI; SOFTLOC_EXAMPLES=1000 for a thorough local run.
SETTINGS = settings(
    max_examples=int(os.environ.get("SOFTLOC_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Logits: ordinary ones, and the values where p or 1 - p leaves float64's normal range.
_SPECIAL_LOGITS = [0.0, 1e4, -1e4, 1e6, -1e6, 745.5, -745.5, 730.0, -730.0, 720.0, -720.0,
                   40.0, -40.0, 36.8, -36.8]  # fmt: skip
_LOGIT = st.one_of(
    st.floats(-30, 30),
    st.sampled_from(_SPECIAL_LOGITS),
    st.floats(-2e4, 2e4),
    st.sampled_from([math.inf, -math.inf]),
)
# Probabilities: exactly 0 and 1, tiny and nearly 1 (subnormal p is out of scope: its
# derivative 1 / p is not a float64).
_PROB = st.one_of(
    st.floats(0, 1, allow_subnormal=False),
    st.sampled_from([0.0, 1.0, 0.5, 1e-300, 1e-30, 1.0 - 1e-16, 1.0 - 1e-9]),
)


@st.composite
def problems(draw, *, logits: bool):
    """(x, counts, lengths, k_max): x (batch, class, time) float64, lengths (batch,)."""
    b, c = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    t_len = draw(st.integers(1, 24))
    k_max = draw(st.integers(1, 12))
    values = draw(st.lists(_LOGIT if logits else _PROB, min_size=b * c * t_len,
                           max_size=b * c * t_len))  # fmt: skip
    x = torch.tensor(values, dtype=torch.float64).reshape(b, c, t_len)
    counts = torch.tensor(draw(st.lists(st.integers(0, t_len + k_max + 3), min_size=b * c,
                                        max_size=b * c))).reshape(b, c)  # fmt: skip
    lengths = None
    if draw(st.booleans()):
        lengths = torch.tensor(draw(st.lists(st.integers(1, t_len), min_size=b, max_size=b)))
    return x, counts, lengths, k_max


@pytest.fixture
def chunked_cpu():
    """Restores the cpu backend's settings; a test that draws ``chunks`` cuts rows into chunks
    of >= 2 steps (as long rows are cut): the chunked kernel paths."""
    old = cpu_options()
    yield
    set_cpu_options(**old)


def _value_and_grad(fn, x):
    v = x.clone().requires_grad_()
    out = fn(v)
    finite = torch.isfinite(out)
    (grad,) = torch.autograd.grad(torch.where(finite, out, 0.0).sum(), v)
    return out.detach(), grad


def _assert_matches_reference(got, want, got_g, want_g, logits):
    assert not torch.isnan(got).any()
    # -inf exactly where the reference has -inf (an impossible count), equal values elsewhere.
    assert torch.equal(torch.isneginf(got), torch.isneginf(want))
    fin = torch.isfinite(want)
    torch.testing.assert_close(got[fin], want[fin], rtol=1e-6, atol=1e-9)
    assert torch.isfinite(got_g).all()
    # The reference's gradient is NaN at p = 0 / 1 (logit +-inf) and where log p = -inf enters
    # a row; compare the rows where it is finite.
    rows = torch.isfinite(want_g).all(-1)
    scale = 1.0 if logits else 1.0 + want_g[rows].abs()
    assert ((got_g[rows] - want_g[rows]).abs() <= 1e-6 * scale).all()


@SETTINGS
@given(data=problems(logits=True), backend=st.sampled_from(FAST), chunks=st.booleans())
def test_log_likelihood_of_any_logits_matches_the_reference(data, backend, chunks, chunked_cpu):
    x, counts, lengths, k_max = data
    set_cpu_options(min_chunk_steps=2 if chunks else 256)

    def ll(v, name):
        return count_log_likelihood(v, counts, k_max, lengths=lengths, logits=True, backend=name)

    got, got_g = _value_and_grad(lambda v: ll(v, backend), x)
    want, want_g = _value_and_grad(lambda v: ll(v, "reference"), x)
    assert (got <= 1e-12).all()  # a log-probability; the loss -ll is >= 0
    _assert_matches_reference(got, want, got_g, want_g, logits=True)
    # -inf only where the count is impossible: certain frames (logit +-inf) rule it out.
    steps = x.shape[-1] if lengths is None else lengths[:, None]
    valid = torch.arange(x.shape[-1])[None, None, :] < torch.as_tensor(steps)[..., None]
    sure = ((x == math.inf) & valid).sum(-1)
    maybe = ((x > -math.inf) & valid).sum(-1)
    n = counts.clamp(max=k_max)
    possible = torch.where(n < k_max, (sure <= n) & (n <= maybe), maybe >= k_max)
    assert torch.equal(torch.isfinite(got), possible)


@SETTINGS
@given(data=problems(logits=False), backend=st.sampled_from(FAST), chunks=st.booleans())
def test_log_likelihood_of_any_probabilities_matches_the_reference(
    data, backend, chunks, chunked_cpu
):
    x, counts, lengths, k_max = data
    set_cpu_options(min_chunk_steps=2 if chunks else 256)

    def ll(v, name):
        return count_log_likelihood(v, counts, k_max, lengths=lengths, backend=name)

    got, got_g = _value_and_grad(lambda v: ll(v, backend), x)
    want, want_g = _value_and_grad(lambda v: ll(v, "reference"), x)
    assert (got <= 1e-12).all()
    # The reference's autograd loses the gradient of a p below ~1e-290: its logaddexp weights, of
    # the order of p, fall out of float64's normal range and are flushed to 0 (found with p =
    # 2.2e-308, where the exact d/dp is 1/7 and the fast backends give it). Those rows' values
    # are still compared; their gradients only have to be finite.
    tiny = ((x > 0) & (x < 1e-290)).any(-1, keepdim=True)
    want_g = torch.where(tiny, torch.nan, want_g)
    _assert_matches_reference(got, want, got_g, want_g, logits=False)


@SETTINGS
@given(data=problems(logits=True), backend=st.sampled_from(FAST), log=st.booleans())
def test_distribution_of_any_logits_matches_the_reference(data, backend, log):
    x, _, lengths, k_max = data
    weights = torch.linspace(0.5, 1.5, k_max + 1, dtype=torch.float64)  # no 0 * -inf

    def dist(v, name):
        out = count_distribution(v, k_max, lengths=lengths, log=log, logits=True, backend=name)
        return out * weights

    got, got_g = _value_and_grad(lambda v: dist(v, backend), x)
    want, want_g = _value_and_grad(lambda v: dist(v, "reference"), x)
    if not log:  # values in [0, 1] summing to 1 (the weights are 1 / k_max apart)
        probs = count_distribution(x, k_max, lengths=lengths, logits=True, backend=backend)
        assert (probs >= 0).all() and (probs <= 1).all()
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:2], dtype=x.dtype))
    fin = torch.isfinite(want)
    assert not torch.isnan(got).any() and torch.equal(torch.isfinite(got), fin)
    torch.testing.assert_close(got[fin], want[fin], rtol=1e-6, atol=1e-9)
    assert torch.isfinite(got_g).all()
    rows = torch.isfinite(want_g).all(-1)
    assert ((got_g[rows] - want_g[rows]).abs() <= 1e-6 * (1 + want_g[rows].abs())).all()


@SETTINGS
@given(data=problems(logits=True), backend=st.sampled_from(FAST))
def test_float32_logits_give_the_float64_result_rounded(data, backend):
    x, counts, lengths, k_max = data
    x32 = x.float()
    kw = dict(lengths=lengths, logits=True, backend=backend)
    got = count_log_likelihood(x32, counts, k_max, **kw)
    want = count_log_likelihood(x32.double(), counts, k_max, **kw)
    assert got.dtype == torch.float32 and not torch.isnan(got).any()
    torch.testing.assert_close(got, want.float(), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------------------------------------
# Invalid input: one line of ValueError / TypeError naming the function

_ANY_FLOAT = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-0.5, 1.5]))


@SETTINGS
@given(
    values=st.lists(_ANY_FLOAT, min_size=6, max_size=6),
    counts=st.lists(st.one_of(st.integers(-3, 10), _ANY_FLOAT), min_size=2, max_size=2),
    lengths=st.one_of(st.none(), st.lists(st.integers(-2, 5), min_size=1, max_size=1)),
    k_max=st.one_of(st.integers(-1, 4), st.floats(0, 3), st.just(True)),
    logits=st.booleans(),
    backend=st.sampled_from(["cpu", "tree", "reference", "gpu"]),
)
def test_invalid_input_raises_one_line(values, counts, lengths, k_max, logits, backend):
    x = torch.tensor(values, dtype=torch.float64).reshape(1, 2, 3)
    count_t = torch.tensor(counts).reshape(1, 2)
    len_t = None if lengths is None else torch.tensor(lengths)
    try:
        out = count_log_likelihood(x, count_t, k_max, lengths=len_t, logits=logits, backend=backend)
    except (ValueError, TypeError) as err:
        message = str(err)
        assert message.startswith("count_log_likelihood: ") and "\n" not in message, message
        return
    assert not torch.isnan(out).any() and (out <= 1e-12).all()
    # It succeeded, so the input was valid: check that it really was.
    assert not torch.isnan(x).any() and (logits or ((x >= 0) & (x <= 1)).all())
    # (as the function received them: torch.tensor makes float lists float32, where e.g.
    # -4e-187 is -0.0, a valid count)
    received = count_t.double().numpy()
    assert np.all(np.isfinite(received)) and received.min() >= 0


@SETTINGS
@given(
    shape=st.lists(st.integers(0, 3), min_size=1, max_size=4),
    k_max=st.integers(1, 3),
    log=st.booleans(),
    backend=st.sampled_from(["cpu", "tree", "reference"]),
)
def test_any_shape_gives_a_result_or_one_line(shape, k_max, log, backend):
    x = torch.full(shape, 0.25, dtype=torch.float64)
    try:
        out = count_distribution(x, k_max, log=log, backend=backend)
    except (ValueError, TypeError) as err:
        assert str(err).startswith("count_distribution: ") and "\n" not in str(err)
        assert len(shape) != 3
        return
    assert out.shape == (*shape[:2], k_max + 1) and not torch.isnan(out).any()
