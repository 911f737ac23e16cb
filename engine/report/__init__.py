"""The session report: one self-contained HTML file (inline SVG plots, statistics per strategy)."""
