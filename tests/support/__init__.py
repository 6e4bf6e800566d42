"""Test helpers shared across the suite: fixtures, fixture data, worker processes."""
