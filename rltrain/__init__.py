"""rltrain: config-driven reinforcement learning with its value estimates in view."""

__version__ = "0.1.0"
