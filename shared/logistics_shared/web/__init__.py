"""The Pyramid side of the platform kit: problems, bodies, endpoints, ops, docs."""
