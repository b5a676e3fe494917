"""Power network model (IEEE 34-bus DSO feeder with three IEEE 13-bus microgrids) and solvers."""
