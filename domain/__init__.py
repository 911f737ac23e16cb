"""Venue-neutral domain types shared by every layer: orders, fills and order outcomes (``orders``), the views
strategies and the gate read the market and the portfolio through (``views``), and config-field handling
(``params``). Imports nothing else of the project."""
