"""trajstore: an open format, recorders and analyses for neural-network weight trajectories."""

__version__ = "0.1.0"

from .errors import TrajstoreError  # noqa: E402
from .layout import Layout, TensorSpec  # noqa: E402
from .live import log  # noqa: E402
from .reader import Trajectory, open  # noqa: E402
from .writer import Writer, create  # noqa: E402

__all__ = [
    "Layout", "TensorSpec", "Trajectory", "TrajstoreError", "Writer", "create", "log", "open", "__version__"
]
