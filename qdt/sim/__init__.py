"""The torch simulator behind the ``statevector`` and ``density`` executors: any circuit as a
generic gate program (:mod:`qdt.sim.program`, :mod:`qdt.sim.engine`), and fast kernels for the
paper's circuit shape (:mod:`qdt.sim.kernels`)."""
