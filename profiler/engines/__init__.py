"""Engines: run an exported artifact (or an eager checkpoint) behind one interface."""
