"""Neural networks: the classical FC stack and the hybrid (VQC → FC) actor and critic."""
