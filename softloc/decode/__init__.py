"""Frame outputs -> events: every decoder of softloc, and window stitching.

This package turns a detector's frame-level output into timed events (``decoders``), after the
outputs of overlapping windows are stitched into one series per file (``stitching``).

Conventions:
    * Frame ``i`` of a sequence at ``frame_rate`` frames per second is stamped at
      ``i / frame_rate + time_offset_s`` seconds (:func:`softloc.timebase.frames_to_seconds`,
      the one frame <-> seconds conversion).
    * Decoders take ONE sequence laid out as ``(class, time)`` (a numpy array or a torch tensor;
      tensors are detached and copied to the CPU) and return an :class:`Events`: flat arrays
      sorted by time, then class. Loop over the batch dimension yourself.
    * An event needs a value STRICTLY above ``threshold`` (``p > threshold``, the original
      trigger rule); a value equal to the threshold is not an event.

Decoders:
    * :func:`threshold_events`: runs of frames with ``p > threshold``, one event per run, at the
      run's peak. For count-trained (LoCo) and SoftLoc models, whose outputs are per-frame event
      probabilities.
    * :func:`pick_peaks`: local maxima above a threshold at least ``min_distance_frames`` apart,
      for heat-map (one-sided Gaussian target) baselines; like madmom's ``peak_picking`` and
      ``scipy.signal.find_peaks``.
    * :func:`pick_normalized_peaks`: :func:`pick_peaks` on ``activation / max Φ_σ``, for
      outputs trained on sum-normalised heat maps (the one-sided baseline).
    * :func:`pick_mass_peaks`: :func:`pick_peaks` on the :func:`local_mass` (probability mass
      within ±h frames), for outputs that spread each event over several frames (L_SLL alone).
    * :func:`decode_events`: any of the four above by name (:data:`DECODERS`); the loss
      registry (``softloc.losses.registry``) names the decoder that fits each loss.
    * :func:`window_mass_events`: the original code's "cleaning" rule (emit the earliest frame
      whose forward window holds enough mass), kept to reproduce the published numbers.
    * :func:`stitch_windows`: overlap-average predictions of overlapping windows into one series
      covering a whole file, before decoding.
    * :func:`softloc.decode.refine.snap_to_signal_peaks`: after decoding, move events onto the
      input signal's own extrema (R-peak correction for time series; needs ``wfdb``).
"""

from softloc.decode.decoders import (
    DECODERS,
    DEFAULT_THRESHOLDS,
    decode_events,
    local_mass,
    pick_mass_peaks,
    pick_normalized_peaks,
    pick_peaks,
    threshold_events,
    window_mass_events,
)
from softloc.decode.events import Events
from softloc.decode.stitching import stitch_windows

__all__ = [
    "DECODERS",
    "DEFAULT_THRESHOLDS",
    "Events",
    "decode_events",
    "local_mass",
    "pick_mass_peaks",
    "pick_normalized_peaks",
    "pick_peaks",
    "stitch_windows",
    "threshold_events",
    "window_mass_events",
]
