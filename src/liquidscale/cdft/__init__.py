"""Classical density functional theory on planar profiles: functionals (exact hard rods, neural c1), solver, thermodynamics."""
