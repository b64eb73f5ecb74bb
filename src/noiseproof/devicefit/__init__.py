"""Fitting a `measured` noise model from a user's device measurements (`noiseproof fit-device`):
the CSV schema and reader, the fit, the device YAML and the data-vs-fit plot."""
