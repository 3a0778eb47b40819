"""Sampling stage: many MD runs under random planar external potentials -> one-body density profiles.

``statepoints`` builds the run table from the config, ``initial`` places molecules, ``profiles``
accumulates density profiles during MD, ``batch`` runs one job of B replicas, ``aggregate`` streams
the batch files into the profile dataset of ``liquidscale.dataset``.
"""
