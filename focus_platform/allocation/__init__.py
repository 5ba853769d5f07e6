"""Allocation: owners for every FOCUS row — account catalog, rules as data, tags, pools, Kubernetes splits (no Dagster)."""
