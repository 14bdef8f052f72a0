"""The ``ibm`` executor: IBM Quantum devices (and fake devices in local testing mode) through
Qiskit Runtime, with crash-safe jobs, account handling and readout mitigation."""
