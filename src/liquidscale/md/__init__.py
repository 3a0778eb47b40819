"""Batched Langevin MD in torch for planar-inhomogeneous sampling (see :mod:`.engine`, :mod:`.potential`)."""
