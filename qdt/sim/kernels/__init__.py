"""Fast kernels for circuits shaped like the paper's VQC: a rotation tree that prepares each
row's state (:mod:`~qdt.sim.kernels.tree`), then layers the whole batch shares
(:mod:`~qdt.sim.kernels.layered`, :mod:`~qdt.sim.kernels.heisenberg`), fused in
:mod:`~qdt.sim.kernels.fused`."""
