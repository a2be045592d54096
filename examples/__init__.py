"""Example applications built on Goldwire (each runs as its own process)."""
