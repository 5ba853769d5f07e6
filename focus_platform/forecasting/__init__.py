"""Forecasts and budgets: spend rows, forecasting models and backtests, budget status (no Dagster here)."""
