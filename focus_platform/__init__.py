"""focus-platform: raw cloud billing exports to FOCUS 1.2 Delta tables."""

__version__ = "0.1.0"
