"""The selftest product: its asset (``assets.py``); ``defs.py`` holds the product's defs."""
