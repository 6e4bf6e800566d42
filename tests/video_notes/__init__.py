"""Tests of the video notes product."""
