"""Platform maintenance: artifact retention and the lineage warehouse (plain logic, no Dagster)."""
