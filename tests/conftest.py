import os

import numpy as np
import pytest
import torch

try:  # property tests (hypothesis): the same examples on every run unless asked to explore
    from hypothesis import settings as _hypothesis_settings

    # "ci" (default): derandomised, so a suite run never fails on a case a random draw happened
    # to find today; SOFTLOC_HYPOTHESIS=explore (with SOFTLOC_EXAMPLES=1000) searches anew -
    # what it finds becomes a regression test.
    _hypothesis_settings.register_profile("ci", derandomize=True)
    _hypothesis_settings.register_profile("explore", derandomize=False)
    _hypothesis_settings.load_profile(os.environ.get("SOFTLOC_HYPOTHESIS", "ci"))
except ImportError:  # the property tests skip themselves
    pass


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 - pins legacy global state some libraries still draw from
    yield
