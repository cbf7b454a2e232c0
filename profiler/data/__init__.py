"""Data files shipped with the package (the SCROLLS-format sample set)."""
