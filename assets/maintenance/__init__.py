"""Platform maintenance: the lineage warehouse asset (``lineage.py``), retention and lineage jobs (``defs.py``)."""
