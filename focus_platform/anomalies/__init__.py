"""Cost anomaly detection: daily usage cost per series against a seasonal baseline, incidents, top contributors,
suppression windows and known one-offs (no Dagster here)."""

from focus_platform.anomalies.detect import COST_ANOMALIES, AnomalyResult, detect
from focus_platform.anomalies.settings import (
    SETTINGS_FILE,
    AnomalyError,
    AnomalySettings,
    OneOff,
    Suppression,
    read_anomaly_settings,
)

__all__ = ["COST_ANOMALIES", "SETTINGS_FILE", "AnomalyError", "AnomalyResult", "AnomalySettings", "OneOff",
           "Suppression", "detect", "read_anomaly_settings"]
