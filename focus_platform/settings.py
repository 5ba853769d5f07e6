"""The one error of a setting read from the environment (no Dagster here): every module that reads a
``FOCUS_*`` variable (landing and warehouse roots, drop share, retention, time travel) raises it with a
message naming the variable, its value and what is allowed; the CLI prints it as one line."""


class SettingError(ValueError):
    """A setting outside its allowed values; the message names the variable, its value and what is allowed."""
