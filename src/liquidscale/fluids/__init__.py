"""Reference fluids with known answers, side by side: they verify the cDFT and analysis machinery.

* ``hard_rods``: 1D hard rods, Percus' exact functional and Tonks' EOS (rung 1 of the ladder);
* ``square_well``: hard rods plus a mean-field square-well attraction, a 1D functional with an exact
  van der Waals transition (checks every analysis algorithm against closed forms);
* ``pets``: the 3D PeTS fluid (perturbed truncated-and-shifted Lennard-Jones) through FeOs's classical
  DFT: profiles to learn from and FeOs's own phase diagram to compare with (rung 2);
* ``ljts``: the Lennard-Jones fluid truncated and shifted at 2.5 sigma (the ``lj`` system) as published:
  coexisting densities, vapour pressure, surface tension and critical point from simulation correlations.
"""
