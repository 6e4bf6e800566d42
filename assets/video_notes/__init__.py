"""Video notes: thin assets and checks (``assets.py``, helpers in ``support.py``); ``defs.py`` holds the product's defs."""
