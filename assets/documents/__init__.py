"""Document generation: the bulk-run asset (``assets.py``) and the engine it drives (``bulk*.py``); ``defs.py`` holds the product's defs."""
