"""`python -m noiseproof` runs the command line."""

from noiseproof.cli import main

main()
