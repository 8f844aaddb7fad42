"""scoregrad: gradients of expectations of black-box functions, for PyTorch."""

from __future__ import annotations

from scoregrad import surrogate

__version__ = "0.1.0"

__all__ = ["surrogate", "__version__"]
