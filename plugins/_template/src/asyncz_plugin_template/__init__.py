"""A template asyncz plugin: the ``template-every`` trigger and an event-counting hook plugin."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
