"""The ``aer`` executor: qiskit-aer, exact or with shots, parametric or device-derived noise."""
