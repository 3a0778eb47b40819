"""Implementation checks of the workflow's figures (liquidscale.plotting conventions), on figures drawn from real
analysis outputs: the exact square-well fluid (a transition: binodal, critical point, Widom lines, pores,
interface) and exact hard rods (no transition: every missing result must be said, not drawn as an empty box).

Checked for every figure: each axis names a unit (lab units for water and CO2, "reduced" for the reduced
fluids); a missing result is in a title or above the figure and no text sits inside a data area; no axes is
empty; no legend overlaps a data area (window extents); reference and experimental curves are grey or black
with their own legend entry. Budget: about 60 s on one core (two analyses of exact functionals, ~22 s; drawing ~35 s).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["figure.max_open_warning"] = 0  # the module keeps its figures to inspect them

import numpy as np
import pytest
from test_analysis_pipeline import HARD_ROD_UNITS, SQUARE_WELL_BANDS, exact_hard_rod_profiles, one_band_coverage, square_well_analysis

from liquidscale.analysis import figures
from liquidscale.analysis.run import AnalysisSettings, run_analysis
from liquidscale.cdft.figures import heldout_profiles, pick_runs, training_curve
from liquidscale.cdft.heldout import canonical_prediction
from liquidscale.config import validate_config
from liquidscale.fluids.hard_rods import PercusHardRods
from liquidscale.mlip import convergence, training
from liquidscale.plotting import AxisUnits

LAB = {"length_unit": "Å", "energy_unit": "eV", "temperature_unit": "K", "dimension": 3}
REDUCED_3D = {"length_unit": "sigma", "energy_unit": "epsilon", "temperature_unit": "epsilon/k_B", "dimension": 3}
# system -> (units its data carry, what its axis labels must say)
SYSTEM_UNITS = {
    "water": (LAB, ("kg/m³", "[K]", "MPa", "[nm]")),
    "co2": (LAB, ("kg/m³", "[K]", "MPa", "[nm]")),
    "lj": (REDUCED_3D, ("ρσ³ (reduced)", "k_BT/ε (reduced)", "pσ³/ε (reduced)", "z/σ (reduced)")),
    "pets": (REDUCED_3D, ("ρσ³ (reduced)", "k_BT/ε (reduced)", "pσ³/ε (reduced)", "z/σ (reduced)")),
    "hard_rods": (HARD_ROD_UNITS, ("ρσ (reduced)", "(reduced", "βpσ (reduced)", "z/σ (reduced)")),
}
UNIT_MARKS = ("[", "(reduced", "(dimensionless)")
GREYS = {"k", "black", "0.5", "0.35", "0.25"}


@pytest.fixture(scope="module")
def square_well(tmp_path_factory):
    out = tmp_path_factory.mktemp("square_well")
    square_well_analysis(out, SQUARE_WELL_BANDS)
    return out


@pytest.fixture(scope="module")
def hard_rods(tmp_path_factory):
    out = tmp_path_factory.mktemp("hard_rods")
    metadata = {**HARD_ROD_UNITS, "architecture": {"temperature_range": [1.0, 1.0]}, "coverage": one_band_coverage(1.0, 0.9, 0.95)}
    settings = AnalysisSettings.from_config(validate_config({"systems": ["hard_rods"]})["analysis"])
    functional = PercusHardRods(dz=0.02)
    run_analysis(functional, metadata, settings, out, {"test": True}, exact_hard_rod_profiles(functional))
    return out


def analysis_figures(folder, system):
    units, _ = SYSTEM_UNITS[system]
    axes = AxisUnits(system, units)
    return {name: build(folder, axes) for name, build in figures.BUILDERS.items()}


def heldout_figure(system="hard_rods"):
    """The cdft held-out figure of exact hard rods re-solved canonically in their own potentials."""
    functional = PercusHardRods(dz=0.02)
    ds = exact_hard_rod_profiles(functional)
    runs = []
    for k in pick_runs(ds["T"].values):
        rho, V = ds["rho"].values[k], ds["V_ext"].values[k]
        prediction = canonical_prediction(functional, V, 1.0, float(rho.mean()), rho)
        runs.append({"run": int(ds["run"].values[k]), "T": 1.0, "rho_simulated": rho, "rho_predicted": prediction.rho,
                     "max_abs_drho": float(np.abs(prediction.rho - rho).max()), "beyond_training_density": False})
    return heldout_profiles(ds["z"].values, runs, SYSTEM_UNITS[system][0], system)


def stage_figures():
    """The mlip and cdft figures, from tables shaped as the stages write them."""
    rows = [{"iteration": k, "force_rmse": 0.4 - 0.1 * k, "bulk_force_rmse": 0.6 - 0.1 * k, "accurate": 0.3 * k, "candidate": 0.9 - 0.3 * k, "failed": 0.1} for k in range(3)]
    steps = np.arange(0, 1000, 100.0)
    curves = [{"step": steps, "rmse_e_trn": np.exp(-steps / 500) + m, "rmse_f_trn": np.exp(-steps / 400) + m} for m in (0.1, 0.2)]
    history = np.column_stack([np.arange(1, 21), np.exp(-np.arange(20) / 5), np.exp(-np.arange(20) / 6) + 0.01, np.full(20, 1e-3)])
    return {"mlip convergence": convergence.figure(rows, "water"), "mlip learning curves": training.learning_curves_figure(curves, "water iteration 000"),
            "cdft training curve": training_curve([history], "water"), "cdft training curve, ensemble": training_curve([history, 1.2 * history], "water"), "cdft held-out profiles": heldout_figure()}


@pytest.fixture(scope="module")
def every_figure(square_well, hard_rods):
    """Every figure kind, for every system type, with and without a transition, drawn (layout done)."""
    found = {}
    for system in ("water", "pets", "hard_rods"):  # lab units, reduced 3D, reduced 1D (co2 and lj draw as water and pets)
        for folder, case in ((square_well, "transition"), (hard_rods, "no transition")):
            found.update({f"{system} {case} {name}": fig for name, fig in analysis_figures(folder, system).items()})
    found |= stage_figures()
    for fig in found.values():
        fig.canvas.draw()
    yield found
    import matplotlib.pyplot as plt

    plt.close("all")


def data_points(ax) -> np.ndarray:
    """Display coordinates of every plotted line vertex and scatter offset of ``ax``."""
    points = [line.get_transform().transform(np.column_stack(line.get_data()).astype(float)) for line in ax.lines if len(line.get_xdata())]
    points += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections if len(c.get_offsets())]
    points = [p[np.isfinite(p).all(1)] for p in points]
    return np.concatenate(points) if points else np.empty((0, 2))


def has_data(ax) -> bool:
    return any(len(line.get_xdata()) for line in ax.lines) or bool(ax.collections) or bool(ax.images)


def test_axis_labels_carry_units_for_each_system_type(square_well):
    import pandas as pd

    for system, (units, expected) in SYSTEM_UNITS.items():
        axes = AxisUnits(system, units)
        rho, T, p, z = expected
        assert rho in axes.rho_label and T in axes.T_label and p in axes.p_label and z in axes.length_label("position", "z"), system
        for name, fig in analysis_figures(square_well, system).items():
            labels = [label for ax in fig.axes for label in (ax.get_xlabel(), ax.get_ylabel())]
            assert labels and all(any(mark in label for mark in UNIT_MARKS) for label in labels), (system, name, labels)
            if name == "phase_diagram":
                assert fig.axes[0].get_xlabel() == axes.rho_label and fig.axes[0].get_ylabel() == axes.T_label
            if name == "profiles":
                assert all(ax.get_xlabel() == axes.length_label("position", "z") for ax in fig.axes)
    for name, fig in stage_figures().items():
        labels = [label for ax in fig.axes for label in (ax.get_xlabel(), ax.get_ylabel()) if label not in ("iteration", "epoch", "training step")]
        assert all(any(mark in label for mark in UNIT_MARKS) for label in labels), (name, labels)
    # water is drawn in lab units: the square-well's densities appear converted
    water = analysis_figures(square_well, "water")["phase_diagram"].axes[0]
    vapour = next(line for line in water.lines if line.get_label() == "binodal (equal mu, p)")
    np.testing.assert_allclose(vapour.get_xdata(), AxisUnits("water", LAB).rho(pd.read_csv(square_well / "binodal.csv")["rho_vapour"]))


def test_missing_results_are_said_in_a_title_and_never_drawn_over_data(hard_rods, every_figure):
    import pandas as pd

    reason = pd.read_csv(hard_rods / "critical_point.csv")["reason"].iloc[0]
    drawn = analysis_figures(hard_rods, "hard_rods")
    # nothing to draw in the phase diagram: no axes, the reason above
    assert drawn["phase_diagram"].axes == [] and reason[:40] in drawn["phase_diagram"].get_suptitle().replace("\n", " ")
    # profiles: the held-out panel stays, the missing interface is said above it
    (profiles,) = drawn["profiles"].axes
    assert "no free interface" in drawn["profiles"].get_suptitle() and has_data(profiles)
    # water with no transition: experiment drawn, the reason in the panel's title
    (ax,) = analysis_figures(hard_rods, "water")["phase_diagram"].axes
    assert "critical point not found" in ax.get_title() and any("experiment" in line.get_label() for line in ax.lines)
    for name, fig in every_figure.items():
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            area = ax.get_window_extent(renderer)
            inside = [t.get_text() for t in ax.texts if t.get_text() and t.get_window_extent(renderer).overlaps(area)]
            assert not inside, (name, inside)


def test_no_empty_axes(every_figure):
    for name, fig in every_figure.items():
        assert fig.axes or fig.get_suptitle(), name  # a figure with nothing to draw says why
        for ax in fig.axes:
            assert has_data(ax), (name, ax.get_title())


def test_legends_lie_outside_every_data_area(every_figure):
    checked = 0
    for name, fig in every_figure.items():
        renderer = fig.canvas.get_renderer()
        for legend in [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
            box = legend.get_window_extent(renderer)
            for ax in fig.axes:
                if box.overlaps(ax.get_window_extent(renderer)):
                    points = data_points(ax)
                    covered = (points[:, 0] >= box.x0) & (points[:, 0] <= box.x1) & (points[:, 1] >= box.y0) & (points[:, 1] <= box.y1)
                    assert not covered.any(), (name, ax.get_title())
            checked += 1
    assert checked > 20


def test_reference_and_experiment_curves_are_grey_and_in_the_legend(square_well):
    from matplotlib.colors import to_rgb

    for name, fig in {**analysis_figures(square_well, "water"), **stage_figures()}.items():
        legend = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        for ax in fig.axes:
            for line in ax.lines:
                label = line.get_label()
                if any(word in label for word in ("experiment", "Kelvin", "simulated (held out)", "bulk binodal")):
                    r, g, b = to_rgb(line.get_color())
                    assert r == g == b and label in legend, (name, label)
                elif label in legend and "Widom" not in label and label != "binodal":
                    assert len({*to_rgb(line.get_color())}) > 1, (name, label)  # results are coloured


def test_pets_comparison_draws_feos_as_a_black_dashed_reference(square_well):
    pytest.importorskip("feos")
    from liquidscale.analysis.pets_reference import comparison_figure
    from liquidscale.fluids.pets import PetsFluid

    fig = comparison_figure(square_well, PetsFluid())
    fig.canvas.draw()
    for ax in fig.axes:
        (feos,) = [line for line in ax.lines if line.get_label() == "FeOs PeTS (reference)"]
        assert feos.get_color() == "k" and feos.get_linestyle() == "--"
        assert all(mark in ax.get_xlabel() + ax.get_ylabel() for mark in ("(reduced)",)) and has_data(ax)
        assert not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())


def test_lj_comparison_draws_the_literature_black_dashed_and_pets_grey(square_well):
    pytest.importorskip("feos")
    from matplotlib.colors import to_rgb

    from liquidscale.analysis.lj_reference import comparison_figure
    from liquidscale.fluids.pets import PetsFluid

    fig = comparison_figure(square_well, PetsFluid())
    fig.canvas.draw()
    for ax in fig.axes:
        (literature,) = [line for line in ax.lines if line.get_label().startswith("LJTS literature")]
        assert literature.get_color() == "k" and literature.get_linestyle() == "--"
        (pets,) = [line for line in ax.lines if line.get_label().startswith("FeOs PeTS")]
        r, g, b = to_rgb(pets.get_color())
        assert r == g == b and pets.get_linestyle() == ":"
        assert "(reduced)" in ax.get_xlabel() and "(reduced)" in ax.get_ylabel() and has_data(ax)
        assert not ax.get_legend().get_window_extent().overlaps(ax.get_window_extent())
