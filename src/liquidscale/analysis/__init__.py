"""Thermodynamics from a trained functional: bulk EOS, coexistence, critical point, pair-structure poles, interfaces, pores."""
