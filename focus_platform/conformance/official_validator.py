"""Run the official FinOps FOCUS validator on a FOCUS Parquet file.

The official validator is the PyPI package ``focus-validator`` (pinned to 2.2.1). It
cannot live in the project's environment: 2.2.1 needs Python >= 3.12 (on 3.11 pip
silently resolves to 1.0.0) and pins ``polars<2`` and ``pandera<0.27``, while this
project runs polars 2. ``.ci/setup_validator.sh`` therefore builds a separate venv
(default ``.data/validator-venv``, override with ``FOCUS_VALIDATOR_VENV``) and this
module runs the validator there as a subprocess. No Dagster import here.

How it is run (exact command, from a private working directory)::

    <venv>/bin/focus-validator --data-file /abs/path/file.parquet \
        --validate-version 1.2 --block-download --applicability-criteria ALL \
        --output-type unittest --output-destination <workdir>/focus_validator_report.xml

* ``--block-download``: use the rule model bundled in the wheel (``model-1.2.0.1.json``)
  and never reach out to GitHub.
* ``--applicability-criteria ALL``: without it every rule gated on a provider capability
  (commitment discounts, capacity reservations, ...) is silently left out.
* The validator's exit code is 0 even when rules fail, so the result is read from the
  JUnit-style XML (``--output-type unittest``). It exits non-zero only when it crashes
  (unreadable file, missing rule model, ...); that raises :class:`ValidatorError` with
  the stderr tail.
* 2.2.1 opens ``focus_validator/rules/currency_codes.csv`` relative to the *current
  directory*, so every run gets a fresh working directory holding a symlink (or copy)
  of that file from the installed package. The validator's own log file
  (``focus_validator_detailed.log``) lands there too, next to the XML.

Reading the XML: each ``<testcase name="RULE-ID :: Function">`` is one rule of the
requirements model; ``<failure>``, ``<skipped>`` and ``<error>`` children give the status.
Only LEAF rules are counted as failures: a rule whose model ``Function`` is
``Composite`` just aggregates other rules (``CheckModelRule``), so it fails whenever a
leaf under it fails and would count the same defect several times. Composites are
listed separately in :attr:`ValidatorReport.failed_composite_rules`. The function is
taken from the bundled rule model when it can be read (the XML names it too, except
for errored rules). Failure messages in the XML are only "<Function> check for
<Column>", so the message reported per rule is the model's ``MustSatisfy`` sentence.
"Errored" rules (``<error>``, in the XML's ``Base`` suite) could not be evaluated,
typically because a column they need is missing; they are reported apart and also
make the run not OK. The XML has no "not applicable" count: with ``ALL`` criteria no
rule is filtered out; rules the validator cannot evaluate (dynamic rules, unimplemented
checks, MAY rules) are ``skipped`` and counted in :attr:`ValidatorReport.skipped_rules`.

Parquet typing (established by experiment with 2.2.1 on the 6-row sample; the
rule outcomes were identical, and value checks such as EffectiveCost-C-005-C and
ListUnitPrice-C-004-C fired identically on seeded defects, for every variant):

* ``Decimal(38, 12)`` money/quantity columns: accepted as they are. The validator's
  Parquet loader (polars 1.x) casts every FOCUS Decimal column to Float64 after reading,
  and its type check accepts DECIMAL/DOUBLE/FLOAT. No float copy is needed.
* ``timestamp[us|ns|ms, tz=UTC]``: accepted. Caveat (validator bug, not ours): a typed
  datetime column that contains a null is *dropped* by the loader, so a null
  ChargePeriodStart is reported as the column being absent (presence rule failed,
  the column's own rules "errored") rather than as a nullability failure. The defect
  is still reported, under a different rule id.
* ``large_string``, Polars ``Enum``/``Categorical`` (Parquet dictionary) string columns:
  accepted; the loader casts FOCUS string columns to Utf8.
* ``x_`` columns of type ``List[str]``, struct, decimal or naive datetime: accepted and
  ignored (the validator's ColumnHandling rules are dynamic and skipped).
* Parquet written by deltalake (arrow-rs) reads the same as Parquet written by Polars.

So the file is passed through unchanged; no temporary copy is written.

Known validator / rule-model defects are allow-listed in ``validator_allowlist.toml``
(one table per rule id with a ``reason``); see that file for the evidence. Also known:
2.2.1 evaluates OR-of-allowed-values rules at dataset level (a rule passes when at
least one row matches), so a single bad value among good ones is NOT caught by e.g.
ChargeCategory-C-003-M; our own row-level checks must cover allowed values.

Command line::

    python -m focus_platform.conformance.official_validator FILE.parquet [--focus-version 1.2]

prints a summary table and exits 1 when there are unexpected (not allow-listed)
failures or errored rules, 2 when the validator is missing or crashed, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

VALIDATOR_VERSION = "2.2.1"
ENV_VENV = "FOCUS_VALIDATOR_VENV"
DEFAULT_VENV = Path(".data") / "validator-venv"
DEFAULT_TIMEOUT_S = 900.0
ALLOWLIST_FILE = "validator_allowlist.toml"
REPORT_XML_NAME = "focus_validator_report.xml"
CURRENCY_CODES_REL = Path("focus_validator") / "rules" / "currency_codes.csv"
SETUP_HINT = (
    "run `bash .ci/setup_validator.sh` from the repo root "
    f"(focus-validator {VALIDATOR_VERSION} needs Python >= 3.12 in its own venv)"
)

__all__ = [
    "ValidatorError",
    "ValidatorNotFoundError",
    "ValidatorReport",
    "find_validator",
    "load_allowlist",
    "main",
    "parse_unittest_xml",
    "run_official_validator",
]


class ValidatorNotFoundError(RuntimeError):
    """No venv with the official validator could be found."""


class ValidatorError(RuntimeError):
    """The official validator crashed, timed out or wrote no readable report."""


# --------------------------------------------------------------------------- locating


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def _venv_candidates(venv: str | os.PathLike[str] | None = None) -> list[Path]:
    raw = venv if venv is not None else os.environ.get(ENV_VENV) or DEFAULT_VENV
    path = Path(raw).expanduser()
    if path.is_absolute():
        return [path]
    # Relative paths: the setup script is run from the repo root; also try the cwd.
    out: list[Path] = []
    for base in (_repo_root(), Path.cwd()):
        cand = (base / path).resolve()
        if cand not in out:
            out.append(cand)
    return out


def _venv_bin(venv: Path) -> Path:
    return venv / ("Scripts" if os.name == "nt" else "bin")


def _venv_python(venv: Path) -> Path | None:
    for name in ("python.exe", "python") if os.name == "nt" else ("python3", "python"):
        cand = _venv_bin(venv) / name
        if cand.exists():
            return cand
    return None


def _is_exe(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_validator(venv: str | os.PathLike[str] | None = None) -> Path | None:
    """The ``focus-validator`` executable of the validator venv (or its python).

    Looks in ``venv``, else ``$FOCUS_VALIDATOR_VENV``, else ``.data/validator-venv``
    (relative paths against the repo root, then the cwd). Returns the console script
    when present, else the venv's python if it can import ``focus_validator`` (run as
    ``python -m focus_validator.main``), else ``None``.
    """
    for cand in _venv_candidates(venv):
        script = _venv_bin(cand) / ("focus-validator.exe" if os.name == "nt" else "focus-validator")
        if _is_exe(script):
            return script
        py = _venv_python(cand)
        if py is not None and _site_package_dir(cand) is not None:
            return py
    return None


def _venv_of(exe: Path) -> Path:
    return exe.parent.parent


def _site_package_dir(venv: Path) -> Path | None:
    """``.../site-packages/focus_validator`` inside the venv, without running it."""
    patterns = ("lib/python3*/site-packages/focus_validator", "Lib/site-packages/focus_validator")
    for pattern in patterns:
        for hit in sorted(venv.glob(pattern)):
            if hit.is_dir():
                return hit
    return None


def _validator_package_dir(exe: Path) -> Path:
    venv = _venv_of(exe)
    found = _site_package_dir(venv)
    if found is not None:
        return found
    py = _venv_python(venv)
    if py is None:
        raise ValidatorNotFoundError(f"no python in validator venv {venv}; {SETUP_HINT}")
    proc = subprocess.run(
        [str(py), "-c", "import focus_validator, os; print(os.path.dirname(focus_validator.__file__))"],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=120,
    )
    if proc.returncode != 0:
        raise ValidatorNotFoundError(
            f"focus_validator is not importable in {venv}: {proc.stderr.strip()[-2000:]}; {SETUP_HINT}"
        )
    return Path(proc.stdout.strip())


def _command_prefix(exe: Path) -> list[str]:
    if exe.name.startswith("focus-validator"):
        return [str(exe)]
    return [str(exe), "-m", "focus_validator.main"]


def _clean_env() -> dict[str, str]:
    """Environment for the validator: nothing from this project's interpreter leaks in."""
    env = dict(os.environ)
    leaky = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "LOGGING_CONFIG", "PYENV_VERSION")
    for key in leaky:
        env.pop(key, None)
    env["PYTHONNOUSERSITE"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    return env


# ----------------------------------------------------------------------- allow-list


def load_allowlist(path: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Rule id -> reason, from the TOML shipped in this package (or ``path``).

    Each table is one rule id and must carry a non-empty ``reason`` string; other keys
    (``issue``, ``evidence``, ...) are documentation only.
    """
    if path is None:
        package = resources.files(__package__ or "focus_platform.conformance")
        text = package.joinpath(ALLOWLIST_FILE).read_text("utf-8")
        where = ALLOWLIST_FILE
    else:
        text = Path(path).read_text("utf-8")
        where = str(path)
    data = tomllib.loads(text)
    out: dict[str, str] = {}
    for rule_id, entry in data.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: [{rule_id}] must be a table with a reason")
        reason = entry.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"{where}: [{rule_id}] needs a non-empty 'reason' string")
        out[rule_id] = " ".join(reason.split())
    return out


# ---------------------------------------------------------------------------- report


@dataclass
class ValidatorReport:
    """Outcome of one validator run, counted on LEAF rules only."""

    data_file: Path
    focus_version: str
    passed_leaf_rules: list[str]
    failed_leaf_rules: dict[str, str]
    allowlisted: dict[str, str]
    unexpected_failures: dict[str, str]
    errored_rules: dict[str, str]
    failed_composite_rules: list[str]
    skipped_rules: list[str]
    total_rules: int
    raw_xml_path: Path | None = None
    command: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    validator_version: str = VALIDATOR_VERSION

    @property
    def skipped_count(self) -> int:
        return len(self.skipped_rules)

    @property
    def ok(self) -> bool:
        """No failure outside the allow-list and no rule that could not be evaluated."""
        return not self.unexpected_failures and not self.errored_rules

    def summary_table(self) -> str:
        lines = [
            f"focus-validator {self.validator_version} | FOCUS {self.focus_version} | {self.data_file}",
            (
                f"rules: {self.total_rules} | leaf passed: {len(self.passed_leaf_rules)} | "
                f"leaf failed: {len(self.failed_leaf_rules)} (allow-listed {len(self.allowlisted)}, "
                f"unexpected {len(self.unexpected_failures)}) | errored: {len(self.errored_rules)} | "
                f"skipped: {self.skipped_count} | composites failed: {len(self.failed_composite_rules)}"
            ),
        ]
        rows: list[tuple[str, str, str]] = []
        rows += [(r, "FAIL", m) for r, m in sorted(self.unexpected_failures.items())]
        rows += [(r, "ERROR", m) for r, m in sorted(self.errored_rules.items())]
        rows += [(r, "ALLOWED", self.allowlisted[r]) for r in sorted(self.allowlisted)]
        if rows:
            width = max(len(r[0]) for r in rows)
            lines.append("")
            lines.append(f"{'rule'.ljust(width)}  {'status':7}  detail")
            lines.append(f"{'-' * width}  {'-' * 7}  {'-' * 40}")
            for rule_id, status, msg in rows:
                lines.append(f"{rule_id.ljust(width)}  {status:7}  {_shorten(msg, 160)}")
        if self.raw_xml_path is not None:
            lines.append("")
            lines.append(f"raw XML: {self.raw_xml_path}")
        if self.ok:
            lines.append("OK")
        else:
            why = []
            if self.unexpected_failures:
                why.append(f"{len(self.unexpected_failures)} unexpected leaf failure(s)")
            if self.errored_rules:
                why.append(f"{len(self.errored_rules)} errored rule(s)")
            lines.append("NOT OK: " + ", ".join(why))
        return "\n".join(lines)


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _load_rule_model(package_dir: Path | None, focus_version: str) -> dict[str, dict]:
    """The bundled requirements model (rule id -> rule), or {} if it cannot be read."""
    if package_dir is None:
        return {}
    models = sorted((package_dir / "rules").glob(f"model-{focus_version}*.json"))
    if not models:
        return {}
    try:
        data = json.loads(models[-1].read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    rules = data.get("ModelRules")
    return rules if isinstance(rules, dict) else {}


def parse_unittest_xml(
    xml_path: str | os.PathLike[str],
    *,
    allowlist: Mapping[str, str] | None = None,
    rule_model: Mapping[str, Mapping] | None = None,
    data_file: str | os.PathLike[str] = "",
    focus_version: str = "1.2",
) -> ValidatorReport:
    """Turn the validator's ``--output-type unittest`` XML into a :class:`ValidatorReport`.

    A rule is a composite when the model says ``Function == "Composite"`` (or, without
    a model entry, when the XML names its check type ``Composite``); composites are never
    counted as failures of their own.
    """
    allow = dict(allowlist or {})
    model = rule_model or {}
    try:
        root = ET.parse(xml_path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise ValidatorError(f"cannot read validator XML {xml_path}: {exc}") from exc

    passed: list[str] = []
    failed: dict[str, str] = {}
    errored: dict[str, str] = {}
    composites_failed: list[str] = []
    skipped: list[str] = []
    seen: set[str] = set()

    for case in root.iter("testcase"):
        name = case.get("name", "")
        rule_id, _, check_type = (part.strip() for part in name.partition("::"))
        if not rule_id or rule_id in seen:
            continue
        seen.add(rule_id)
        entry = model.get(rule_id) or {}
        function = entry.get("Function") or check_type
        is_composite = function == "Composite"
        must = ((entry.get("ValidationCriteria") or {}).get("MustSatisfy") or "").strip()

        failure, skip, error = case.find("failure"), case.find("skipped"), case.find("error")
        if error is not None:
            errored[rule_id] = (error.get("message") or must or "errored").strip()
        elif failure is not None:
            if is_composite:
                composites_failed.append(rule_id)
            else:
                failed[rule_id] = must or (failure.get("message") or "failed").strip()
        elif skip is not None:
            skipped.append(rule_id)
        elif not is_composite:
            passed.append(rule_id)

    allowlisted = {r: allow[r] for r in failed if r in allow}
    unexpected = {r: m for r, m in failed.items() if r not in allow}
    return ValidatorReport(
        data_file=Path(data_file),
        focus_version=focus_version,
        passed_leaf_rules=sorted(passed),
        failed_leaf_rules=dict(sorted(failed.items())),
        allowlisted=dict(sorted(allowlisted.items())),
        unexpected_failures=dict(sorted(unexpected.items())),
        errored_rules=dict(sorted(errored.items())),
        failed_composite_rules=sorted(composites_failed),
        skipped_rules=sorted(skipped),
        total_rules=len(seen),
        raw_xml_path=Path(xml_path),
    )


# ------------------------------------------------------------------------------- run


def _prepare_workdir(output_dir: str | os.PathLike[str] | None, package_dir: Path) -> Path:
    if output_dir is None:
        workdir = Path(tempfile.mkdtemp(prefix="focus-validator-"))
    else:
        workdir = Path(output_dir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    source = package_dir / "rules" / "currency_codes.csv"
    if not source.is_file():
        raise ValidatorNotFoundError(f"{source} missing from the validator install; {SETUP_HINT}")
    target = workdir / CURRENCY_CODES_REL
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            target.symlink_to(source)
        except OSError:
            shutil.copyfile(source, target)
    return workdir


def _log_errors(workdir: Path, limit: int = 20) -> str:
    log = workdir / "focus_validator_detailed.log"
    try:
        lines = log.read_text("utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    bad = [ln for ln in lines if "[ERROR]" in ln or "[CRITICAL]" in ln]
    return "\n".join(bad[-limit:])


def run_official_validator(
    parquet_path: str | os.PathLike[str],
    *,
    focus_version: str = "1.2",
    timeout: float = DEFAULT_TIMEOUT_S,
    allowlist: Mapping[str, str] | None = None,
    venv: str | os.PathLike[str] | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
) -> ValidatorReport:
    """Run focus-validator on ``parquet_path`` and return the leaf-rule outcome.

    ``allowlist`` defaults to :func:`load_allowlist` (pass ``{}`` for none).
    ``output_dir`` receives the XML and the validator's log (default: a new temp dir,
    kept so that ``raw_xml_path`` stays readable). Raises :class:`ValidatorNotFoundError`
    when no validator venv exists and :class:`ValidatorError` when the validator
    crashes, times out or writes no report.
    """
    data_file = Path(parquet_path).resolve()
    if not data_file.is_file():
        raise FileNotFoundError(data_file)
    exe = find_validator(venv)
    if exe is None:
        tried = ", ".join(str(p) for p in _venv_candidates(venv))
        raise ValidatorNotFoundError(f"no focus-validator venv found (tried {tried}); {SETUP_HINT}")
    package_dir = _validator_package_dir(exe)
    workdir = _prepare_workdir(output_dir, package_dir)
    xml_path = workdir / REPORT_XML_NAME
    if xml_path.exists():
        xml_path.unlink()

    cmd = [
        *_command_prefix(exe),
        "--data-file", str(data_file),
        "--validate-version", focus_version,
        "--block-download",
        "--applicability-criteria", "ALL",
        "--output-type", "unittest",
        "--output-destination", str(xml_path),
        *extra_args,
    ]  # fmt: skip
    started = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, cwd=workdir, env=_clean_env(), capture_output=True, text=True,
            errors="replace", timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr or ""
        if isinstance(stderr, bytes):
            stderr = stderr.decode("utf-8", "replace")
        raise ValidatorError(
            f"focus-validator timed out after {timeout:.0f}s on {data_file}\n"
            f"command: {' '.join(cmd)}\nstderr (tail):\n{stderr[-4000:]}"
        ) from exc
    duration = time.monotonic() - started

    if proc.returncode != 0 or not xml_path.is_file():
        why = f"exit code {proc.returncode}" if proc.returncode != 0 else "no XML report written"
        raise ValidatorError(
            f"focus-validator crashed ({why}) on {data_file}\n"
            f"command: {' '.join(cmd)}\ncwd: {workdir}\n"
            f"stderr (tail):\n{proc.stderr[-4000:]}\n"
            f"stdout (tail):\n{proc.stdout[-1000:]}\n"
            f"validator log errors:\n{_log_errors(workdir)}"
        )

    report = parse_unittest_xml(
        xml_path,
        allowlist=load_allowlist() if allowlist is None else allowlist,
        rule_model=_load_rule_model(package_dir, focus_version),
        data_file=data_file,
        focus_version=focus_version,
    )
    if report.total_rules == 0:
        raise ValidatorError(f"focus-validator reported no rules for {data_file}; see {xml_path}")
    report.command = cmd
    report.duration_s = duration
    return report


# ------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m focus_platform.conformance.official_validator",
        description="Run the official FOCUS validator (focus-validator "
        f"{VALIDATOR_VERSION}) on a FOCUS Parquet file; leaf rules only, minus the allow-list.",
    )
    parser.add_argument("parquet", help="FOCUS Parquet file")
    parser.add_argument("--focus-version", default="1.2")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S)
    parser.add_argument(
        "--venv", default=None, help=f"validator venv (default ${ENV_VENV} or {DEFAULT_VENV})"
    )
    parser.add_argument("--output-dir", default=None, help="where to keep the XML and validator log")
    parser.add_argument("--allowlist", default=None, help="allow-list TOML (default: the packaged one)")
    parser.add_argument("--no-allowlist", action="store_true", help="report every failing leaf rule")
    args = parser.parse_args(argv)

    allow = {} if args.no_allowlist else load_allowlist(args.allowlist)
    try:
        report = run_official_validator(
            args.parquet,
            focus_version=args.focus_version,
            timeout=args.timeout,
            allowlist=allow,
            venv=args.venv,
            output_dir=args.output_dir,
        )
    except (ValidatorNotFoundError, ValidatorError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(report.summary_table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
