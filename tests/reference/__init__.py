"""Slow, simple re-implementations that tests compare the library against."""
