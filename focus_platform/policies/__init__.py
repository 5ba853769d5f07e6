"""Policies as data: rules that turn signals (budgets, anomalies, failed checks, failed runs) into actions,
in shadow, canary or enforce mode, with a daily limit and a kill switch; every evaluation recorded (no
Dagster here).

``read_policies`` reads ``<landing>/policies/*.yaml``; ``evaluate`` gives the ``POLICY_ACTIONS`` rows of one
evaluation of ``SIGNALS``, sending enforced actions through ``alert_sender(alerts config)``; ``action_rates`` (M6)
and ``shadow_lag`` (M12) are its service-level figures.
"""

from focus_platform.policies.evaluate import action_rates, evaluate, shadow_lag
from focus_platform.policies.model import (
    OUTCOMES,
    POLICY_ACTIONS,
    SIGNALS,
    Action,
    Policy,
    PolicyError,
    PolicySet,
    Trigger,
)
from focus_platform.policies.read import POLICIES_FOLDER, read_policies
from focus_platform.policies.send import alert_sender

__all__ = ["OUTCOMES", "POLICIES_FOLDER", "POLICY_ACTIONS", "SIGNALS", "Action", "Policy", "PolicyError",
           "PolicySet", "Trigger", "action_rates", "alert_sender", "evaluate", "read_policies", "shadow_lag"]
