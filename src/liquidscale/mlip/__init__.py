"""DeePMD potentials by concurrent learning: ensemble training, exploration, model-deviation selection.

One iteration ``i`` trains an ensemble of M DeePMD models (PyTorch backend) on every label of
iterations 0..i, explores with the newest models and selects the frames where they disagree; whole
molecules around the most uncertain atom are cut out and labelled by the reference stage as
iteration i+1. Modules: ``data`` (labelled data, held-out split, ``sel``), ``training`` (dp train /
freeze / test, metrics, learning curves), ``deepmd_potential`` (batched MD adapter, model
deviation), ``exploration`` (MD state points), ``selection`` (trust levels, clusters, DP-GEN
fractions), ``cli`` (what the Snakemake rules call).
"""
