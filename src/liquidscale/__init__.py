"""liquidscale: ab initio multiscale modelling of liquids, from PySCF labels to neural cDFT phase diagrams."""

__version__ = "0.1.0"
