"""Operator commands run from a shell with the deployment's settings (no console needed).

``python -m shared.ops.costs``: the cost table (same query as GET /v1/admin/costs).
``python -m shared.ops.rollup``: run the daily rollup by hand, or backfill a range.
"""
