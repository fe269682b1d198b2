"""Paper experiments: orchestration only, configuration in, results out (no argument parsing,
no drawing, no file formats of their own: ``softloc.cli`` parses, ``softloc.plots`` draws,
``softloc._io`` and ``softloc.data.formats`` write).

* :mod:`softloc.experiments.drums`: LoCo §6 / SoftLoc §5.1.2 on built-in drums, ``softloc demo``.
* :mod:`softloc.experiments.robustness`: SoftLoc's noise grid (Fig. 5, Table 1);
  :mod:`softloc.experiments.softness_sweep`: its softness sweep (Fig. 6); both built on
  :mod:`softloc.experiments.noise_study`.
* :mod:`softloc.experiments.digits`: LoCo §8, digits along a Hilbert curve, scored by
  :mod:`softloc.experiments.digits_scores`.
"""
