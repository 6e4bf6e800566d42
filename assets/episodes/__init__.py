"""Episodes product assets (see assets.py)."""
