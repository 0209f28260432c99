"""Thin HTTP views: parse (via ``@endpoint``), authorise, call the domain, render."""
