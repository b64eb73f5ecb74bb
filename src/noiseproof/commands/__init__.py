"""The CLI commands, each in its own module (`command`), registered in noiseproof.cli."""
