"""The bridge between spiking and conventional networks: ANN baselines (:mod:`biosim.bridge.ann`),
NeuroBench-style metrics (:mod:`biosim.bridge.metrics`) and comparison reports
(:mod:`biosim.bridge.compare`)."""
