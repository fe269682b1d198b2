"""Paper experiments, one module each; a module may add ``softloc experiment <name>`` through a
``register_cli(subparsers)`` function (listed in ``softloc.cli.EXPERIMENT_MODULES``).

* :mod:`softloc.experiments.drums`: LoCo §6 / SoftLoc §5.1.2 on built-in drums, ``softloc demo``.
"""
