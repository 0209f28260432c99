"""Shipping's REST schemas, one module per area, built from the shared common types.

Component names in the OpenAPI document are the class names: rename with care.
"""
