"""Fast kernels for circuits shaped like the paper's VQC: the state-vector product kernel
(:mod:`~qdt.sim.kernels.product`, with its small-register path :mod:`~qdt.sim.kernels.product_unitary`),
the density kernel for noise on the trainable layers (:mod:`~qdt.sim.kernels.product_density`), and
for noise on every gate of small registers a sparse prefix with a Heisenberg suffix
(:mod:`~qdt.sim.kernels.fused`)."""
