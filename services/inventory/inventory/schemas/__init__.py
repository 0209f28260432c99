"""Inventory's REST schemas, one module per area, built from the shared common types.

Input schemas derive from ``StrictSchema`` (unknown fields are 422 at every
depth); output schemas are allow-lists: only the fields named here leave.
Component names in the OpenAPI document are the class names: rename with care.
"""
