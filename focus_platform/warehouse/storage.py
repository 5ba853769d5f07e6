"""Object-store configuration shared by the landing zone and the warehouse: local, ``s3://``, ``gs://``.

One ``StorageConfig`` gives the options Polars and deltalake take (``storage_options``) and what the
boto3 / google-cloud-storage clients take. Credentials come from the environment (the providers'
usual chains: ``AWS_ACCESS_KEY_ID`` …, instance roles, ``GOOGLE_APPLICATION_CREDENTIALS``) or from
explicit values a Dagster resource fills from ``EnvVar``; they are never logged, printed or put in
metadata: ``redacted()`` is what may be shown.

S3-compatible endpoints (moto, MinIO): ``AWS_ENDPOINT_URL`` (+ ``AWS_ALLOW_HTTP=true`` for http).
Concurrent Delta commits on S3 need no lock service: deltalake ≥ 1.0 commits with S3's conditional
put (``If-None-Match: *``), so two writers of one table cannot both create the same log entry; the
loser retries (see ``Warehouse._commit``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

SECRET_KEYS = ("secret", "token", "password", "key_id", "access_key", "service_account_key", "credential")


def scheme(uri: str) -> str:
    """'' for local paths (and file://), else the URI scheme ('s3', 'gs', …)."""
    if "://" not in uri or uri.startswith("file://"):
        return ""
    return uri.split("://", 1)[0].lower()


def split_bucket(uri: str) -> tuple[str, str]:
    """s3://bucket/some/prefix → ('bucket', 'some/prefix')."""
    rest = uri.split("://", 1)[1]
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"{uri}: no bucket")
    return bucket, prefix.strip("/")


@dataclass(frozen=True)
class StorageConfig:
    """Where objects live and how to reach them. Empty fields fall back to the environment."""

    endpoint_url: str = ""  # S3-compatible endpoint (moto, MinIO); else AWS_ENDPOINT_URL / AWS
    region: str = ""  # else AWS_REGION / AWS_DEFAULT_REGION
    allow_http: bool | None = None  # else AWS_ALLOW_HTTP
    aws_access_key_id: str = field(default="", repr=False)  # else the AWS credential chain
    aws_secret_access_key: str = field(default="", repr=False)
    aws_session_token: str = field(default="", repr=False)
    gcs_project: str = ""  # else the google-auth default project
    gcs_service_account_path: str = field(default="", repr=False)  # else GOOGLE_APPLICATION_CREDENTIALS

    # -- for Polars and deltalake --------------------------------------------------------------
    def storage_options(self, uri: str) -> dict[str, str] | None:
        """The ``storage_options`` of Polars / deltalake for objects under ``uri`` (None: local)."""
        kind = scheme(uri)
        if kind == "s3":
            endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
            region = self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
            allow_http = self.allow_http
            if allow_http is None:
                allow_http = os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true" or \
                    bool(endpoint and endpoint.startswith("http://"))
            opts: dict[str, str] = {}
            if endpoint:
                opts["AWS_ENDPOINT_URL"] = endpoint
            if region:
                opts["AWS_REGION"] = region
            if allow_http:
                opts["AWS_ALLOW_HTTP"] = "true"
            if self.aws_access_key_id:
                opts["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id
                opts["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key
                if self.aws_session_token:
                    opts["AWS_SESSION_TOKEN"] = self.aws_session_token
            return opts or None
        if kind in ("gs", "gcs"):
            opts = {}
            if self.gcs_service_account_path:
                opts["GOOGLE_SERVICE_ACCOUNT"] = self.gcs_service_account_path
            emulator = os.environ.get("STORAGE_EMULATOR_HOST")
            if emulator:  # fake GCS servers speaking the XML API (gcp-storage-emulator does not)
                opts["GOOGLE_BASE_URL"] = emulator if "://" in emulator else f"http://{emulator}"
                opts["GOOGLE_SKIP_SIGNATURE"] = "true"
                opts["ALLOW_HTTP"] = "true"
            return opts or None
        return None

    # -- for the SDK clients -------------------------------------------------------------------
    def boto3_client(self):
        import boto3

        opts = self.storage_options("s3://x") or {}
        kwargs = {}
        if opts.get("AWS_ENDPOINT_URL"):
            kwargs["endpoint_url"] = opts["AWS_ENDPOINT_URL"]
        if opts.get("AWS_REGION"):
            kwargs["region_name"] = opts["AWS_REGION"]
        if self.aws_access_key_id:
            kwargs.update(aws_access_key_id=self.aws_access_key_id, aws_secret_access_key=self.aws_secret_access_key,
                          aws_session_token=self.aws_session_token or None)
        return boto3.client("s3", **kwargs)

    def gcs_client(self):
        from google.cloud import storage

        if self.gcs_service_account_path:
            return storage.Client.from_service_account_json(self.gcs_service_account_path,
                                                            project=self.gcs_project or None)
        if os.environ.get("STORAGE_EMULATOR_HOST"):
            from google.auth.credentials import AnonymousCredentials

            return storage.Client(project=self.gcs_project or "emulator", credentials=AnonymousCredentials())
        return storage.Client(project=self.gcs_project or None)

    def redacted(self, uri: str) -> dict[str, str]:
        """The options with every credential masked: what may be logged or shown."""
        return {k: ("***" if any(s in k.lower() for s in SECRET_KEYS) else v)
                for k, v in (self.storage_options(uri) or {}).items()}


def storage_handler(root: str, options: dict[str, str] | None):
    """A pyarrow-style filesystem over ``root`` with deltalake's own object store (same options)."""
    from deltalake.fs import DeltaStorageHandler

    return DeltaStorageHandler(root, options)
