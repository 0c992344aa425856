"""cesar-dashboard: the Streamlit ops console (reads the database read-only, acts through the API)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
