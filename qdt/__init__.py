"""qdt: multi-agent quantum reinforcement learning for digital-twin placement in 6G edge systems."""

from qdt.errors import QdtError, QdtInputError

__all__ = ["QdtError", "QdtInputError", "__version__"]
__version__ = "0.1.0"
