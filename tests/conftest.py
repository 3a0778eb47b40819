"""Session hooks of the test suite."""

# Files whose module fixtures run a campaign or a long training, longest first (make test's --durations, 2026-12-08).
# `make test` runs one pytest-xdist worker per core with whole files per worker in collection order: started first,
# none of them is left to run alone at the end.
LONGEST_FIRST = (
    "test_cdft_network.py",
    "test_workflow_reruns.py",
    "test_lj_campaign.py",
    "test_pets_campaign.py",
    "test_mlip_training.py",
    "test_cdft_temperature.py",
    "test_reference_qm.py",
    "test_slurm.py",
)


def pytest_collection_modifyitems(items) -> None:
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort: the rest keep their order
