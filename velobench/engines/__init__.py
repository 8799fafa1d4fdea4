"""Engines: how a generation is run and measured. One module per engine."""
