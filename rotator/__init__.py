"""keyrotator: hands out rotated provider API keys to client applications."""

__version__ = "0.1.0"
