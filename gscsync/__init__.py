"""gscsync: Google Search Console performance data into SQLite, day by day."""

__version__ = "0.1.0"

__all__ = ["__version__"]
