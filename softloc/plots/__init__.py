"""Every figure softloc draws, one module per figure family; each function takes computed
numbers (or a detector and an input), writes one image file and returns its path.

* :mod:`softloc.plots.detection`: LoCo Fig. 1 (:func:`plot_detection`: spectrogram, p(t),
  detections and the count distribution Y(k, t) of an audio excerpt, LoCo eq. 9; an image
  detector's detections, p(t) along the Hilbert curve and count distributions).
* :mod:`softloc.plots.noise_study`: SoftLoc Fig. 5 (:func:`plot_robustness`, F1 vs label noise)
  and Fig. 6 (:func:`plot_softness_surface`, F1 over noise σ and softness).
* :mod:`softloc.plots.digits`: LoCo Fig. 2 (:func:`plot_digit_detections`) and Fig. 3
  (:func:`plot_tsne`).
* :mod:`softloc.plots.segments`: the action-segmentation study (SoftLoc §5.3, Table 4 as
  curves, Fig. 10, colour bars).

Conventions: times in seconds, noise and softness in ms, scores as fractions in [0, 1] (drawn in
%), pixel coordinates ``(row, col)``. The experiments compute the numbers; these modules only
draw. matplotlib is imported when a figure is drawn, never on import, with the Agg backend
selected in one place (:mod:`softloc.plots._backend`); files are written atomically
(:func:`softloc._io.save_figure`, format from the suffix: .png, .pdf, .svg).
"""

from softloc.plots.detection import plot_detection, plot_image_detection, running_count_distribution
from softloc.plots.digits import plot_digit_detections, plot_tsne
from softloc.plots.noise_study import plot_robustness, plot_softness_surface
from softloc.plots.segments import (
    plot_segmentation_example,
    plot_segmentation_shifts,
    plot_segmentation_softness,
)

__all__ = [
    "plot_detection",
    "plot_digit_detections",
    "plot_image_detection",
    "plot_robustness",
    "plot_segmentation_example",
    "plot_segmentation_shifts",
    "plot_segmentation_softness",
    "plot_softness_surface",
    "plot_tsne",
    "running_count_distribution",
]
