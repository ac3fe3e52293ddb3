"""The bridge between spiking and conventional networks: ANN baselines (:mod:`biosim.bridge.ann`),
NeuroBench-style metrics (:mod:`biosim.bridge.metrics`), ANN-to-SNN conversion
(:mod:`biosim.bridge.convert`) and NIR export/import (:mod:`biosim.bridge.nir`). The comparison of
named runs that uses them lives above, in :mod:`biosim.experiments.compare` (it drives runs), and its
report in :mod:`biosim.reports.comparison`."""
