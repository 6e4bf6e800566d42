"""Tests of the platform: API, job state machine, Dagster glue, storage, retention, docs."""
