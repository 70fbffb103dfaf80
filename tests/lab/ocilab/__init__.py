"""ocilab (docstring written below)."""

from .lab import OciLab, OciNode, Vnic, sweep_leftovers  # noqa: F401
from .reference import reference_sign  # noqa: F401
