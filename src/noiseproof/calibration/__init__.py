"""Calibration after programming: a chip's digital parameters re-fitted on a few examples, its
analog weights kept as programmed (docs/calibration.md)."""
