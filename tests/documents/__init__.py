"""Tests of the document generation product."""
