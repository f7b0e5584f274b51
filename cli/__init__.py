"""The stageroute command line (a thin Typer layer over the ``stageroute`` library)."""
