"""The potential's own liquid-vapour coexistence by direct slab MD: the reference the cDFT binodal is checked against."""
