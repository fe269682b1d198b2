"""The LoCo output head: its initialisation and the count-prior output bias (LoCo eq. 15).

Every softloc network ends in a per-step head whose last layer gives one pre-sigmoid score
(logit) per class; ``torch.sigmoid`` of it is the event probability p(t). Two choices of the
official code are shared by all of them and live here:

* :func:`init_loco_head`: N(0, 1) weights (not Glorot) on both layers of
  ``out(sigmoid(hidden(h)))``, zero hidden bias;
* :func:`prior_output_bias`: the output bias that makes Pr(no event of a class in one training
  window of ``window_steps`` steps) equal to ``omega`` at initialisation (LoCo eq. 15), so the
  first count losses are of a sensible size instead of pushing every p(t) down at once.

This module never imports Lightning or training code.
"""

from __future__ import annotations

import torch
from torch import nn

from softloc.counting import count_prior_bias

__all__ = ["init_loco_head", "prior_output_bias"]


def prior_output_bias(window_steps: int, omega: float) -> float:
    """Initial pre-sigmoid output bias: Pr(no event in ``window_steps`` steps) = ``omega``.

    LoCo eq. 15, ``b = log((1 - omega^(1/T)) / omega^(1/T))`` with ``T = window_steps``
    (:func:`softloc.counting.count_prior_bias`).

    Args:
        window_steps: steps (frames) of one training window, >= 1.
        omega: probability of an empty window at initialisation, in (0, 1). The SoftLoc drum
            code used exponent 2/T, i.e. omega = 0.64 here; LoCo used 0.8.

    Returns:
        the bias ``b``; ``sigmoid(b) = 1 - omega^(1/T)``.

    Raises:
        TypeError: ``window_steps`` is not an int.
        ValueError: ``window_steps < 1`` or ``omega`` outside (0, 1).

    Example:
        >>> round(prior_output_bias(400, 0.8), 4)
        -7.4911
    """
    return count_prior_bias(window_steps, omega)


def init_loco_head(hidden: nn.Linear, out: nn.Linear, output_bias: float) -> None:
    """Initialise the head ``out(sigmoid(hidden(h)))`` as the official code does.

    N(0, 1) weights on both layers, zero hidden bias, and ``output_bias`` on every output (use
    :func:`prior_output_bias`, LoCo eq. 15).

    Args:
        hidden: the hidden layer (its output goes through a sigmoid).
        out: the output layer (its output is the logit of p(t)).
        output_bias: initial bias of every output.
    """
    with torch.no_grad():
        nn.init.normal_(hidden.weight, 0.0, 1.0)
        nn.init.zeros_(hidden.bias)
        nn.init.normal_(out.weight, 0.0, 1.0)
        out.bias.fill_(float(output_bias))
