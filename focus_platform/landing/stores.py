"""Landing zones in object storage: ``s3://bucket/prefix`` (boto3) and ``gs://bucket/prefix``
(google-cloud-storage), with the interface of ``LocalStore``.

Keys are relative to the root prefix, '/'-separated. ``list`` pages through the bucket listing
(``page_size`` objects a request) and returns every object under a prefix with its size, time and
ETag; ``folder_exists`` says whether anything (a "folder" placeholder included) is under a prefix,
which tells a missing source location from an empty one; ``read_bytes`` / ``open`` read one object (a
missing one raises ``ObjectMissing``). A listing or read the store refuses (no bucket, no access, no endpoint) raises ``DeliveryError`` naming the
URI and the store's reason; ``uri`` and ``storage_options`` let Polars read the object directly. A
key that could escape the root (``..``, a leading ``/``) is refused before any request.
"""

from __future__ import annotations

import io
from datetime import timezone
from typing import BinaryIO

from focus_platform.landing.zone import (
    DeliveryError,
    LandedObject,
    LocalStore,
    ObjectMissing,
    check_key,
)
from focus_platform.warehouse.storage import StorageConfig, scheme, split_bucket

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000  # S3's and GCS's largest listing page


class _BucketStore:
    def __init__(self, root: str, config: StorageConfig | None = None, *, page_size: int = DEFAULT_PAGE_SIZE):
        self.root_uri = root.rstrip("/")
        self.bucket, self.prefix = split_bucket(self.root_uri)
        self.config = config or StorageConfig()
        self.page_size = page_size
        self.storage_options = self.config.storage_options(self.root_uri)

    @property
    def root(self) -> str:
        return self.root_uri

    def _full(self, key: str) -> str:
        key = check_key(key.rstrip("/")) if key.rstrip("/") else ""
        return f"{self.prefix}/{key}" if self.prefix and key else (self.prefix or key)

    def _relative(self, name: str) -> str:
        return name[len(self.prefix) + 1:] if self.prefix else name

    def _list_prefix(self, prefix: str) -> str:
        full = self._full(prefix)
        return f"{full}/" if full else ""

    def uri(self, key: str) -> str:
        return f"{self.scheme}://{self.bucket}/{self._full(key)}"

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.read_bytes(key))

    def _unlisted(self, prefix: str, exc: Exception) -> DeliveryError:
        return DeliveryError(f"{self.uri(prefix)}: cannot be listed ({str(exc).splitlines()[0]})")

    def _unread(self, key: str, exc: Exception) -> DeliveryError:
        return DeliveryError(f"{self.uri(key)}: cannot be read ({str(exc).splitlines()[0]})")

    def __repr__(self) -> str:  # never the credentials
        return f"{type(self).__name__}({self.root_uri!r})"


class S3Store(_BucketStore):
    scheme = "s3"

    def __init__(self, root: str, config: StorageConfig | None = None, *, page_size: int = DEFAULT_PAGE_SIZE):
        super().__init__(root, config, page_size=page_size)
        self._client = self.config.boto3_client()

    def list(self, prefix: str) -> list[LandedObject]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self._client.get_paginator("list_objects_v2")
        out = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._list_prefix(prefix),
                                           PaginationConfig={"PageSize": self.page_size}):
                for o in page.get("Contents", []):
                    if o["Key"].endswith("/"):
                        continue  # "folder" placeholder objects
                    out.append(LandedObject(self._relative(o["Key"]), int(o["Size"]),
                                            o["LastModified"].astimezone(timezone.utc),
                                            str(o.get("ETag", "")).strip('"')))
        except (ClientError, BotoCoreError) as exc:
            raise self._unlisted(prefix, exc) from exc
        return sorted(out, key=lambda o: o.key)

    def folder_exists(self, prefix: str) -> bool:
        """Whether any object (a "folder" placeholder included) is under the prefix."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            page = self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._list_prefix(prefix), MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._unlisted(prefix, exc) from exc
        return bool(page.get("KeyCount"))

    def stat(self, key: str) -> LandedObject | None:
        from botocore.exceptions import ClientError

        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return LandedObject(key, int(head["ContentLength"]), head["LastModified"].astimezone(timezone.utc),
                            str(head.get("ETag", "")).strip('"'))

    def read_bytes(self, key: str) -> bytes:
        return self.open(key).read()

    def open(self, key: str) -> BinaryIO:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._client.get_object(Bucket=self.bucket, Key=self._full(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ObjectMissing(key) from exc
            raise self._unread(key, exc) from exc
        except BotoCoreError as exc:
            raise self._unread(key, exc) from exc


class GCSStore(_BucketStore):
    scheme = "gs"

    def __init__(self, root: str, config: StorageConfig | None = None, *, page_size: int = DEFAULT_PAGE_SIZE):
        super().__init__(root, config, page_size=page_size)
        self._client = self.config.gcs_client()
        self._bucket = self._client.bucket(self.bucket)

    def list(self, prefix: str) -> list[LandedObject]:
        from google.api_core.exceptions import GoogleAPIError

        out = []
        try:
            pages = self._client.list_blobs(self.bucket, prefix=self._list_prefix(prefix),
                                            page_size=self.page_size).pages
            for page in pages:
                out.extend(self._object(b) for b in page if not b.name.endswith("/"))
        except GoogleAPIError as exc:
            raise self._unlisted(prefix, exc) from exc
        return sorted(out, key=lambda o: o.key)

    def folder_exists(self, prefix: str) -> bool:
        """Whether any object (a "folder" placeholder included) is under the prefix."""
        from google.api_core.exceptions import GoogleAPIError

        try:
            return any(True for _ in self._client.list_blobs(self.bucket, prefix=self._list_prefix(prefix),
                                                              max_results=1))
        except GoogleAPIError as exc:
            raise self._unlisted(prefix, exc) from exc

    def _object(self, b) -> LandedObject:
        return LandedObject(self._relative(b.name), int(b.size or 0), b.updated.astimezone(timezone.utc),
                            f"{b.etag}/{b.generation}")

    def stat(self, key: str) -> LandedObject | None:
        b = self._bucket.get_blob(self._full(key))
        return self._object(b) if b is not None else None

    def read_bytes(self, key: str) -> bytes:
        from google.api_core.exceptions import GoogleAPIError, NotFound

        try:
            return self._bucket.blob(self._full(key)).download_as_bytes()
        except NotFound as exc:
            raise ObjectMissing(key) from exc
        except GoogleAPIError as exc:
            raise self._unread(key, exc) from exc


def open_store(root: str, config: StorageConfig | None = None, *, page_size: int = DEFAULT_PAGE_SIZE):
    """The store of a landing root: a local directory, ``s3://bucket/prefix`` or ``gs://bucket/prefix``
    (``page_size``: objects per listing request, 1 to 1000)."""
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size={page_size!r}: not a whole number of objects per listing request; "
                         f"allowed: 1 to {MAX_PAGE_SIZE}")
    kind = scheme(root)
    if kind == "":
        return LocalStore(root[len("file://"):] if root.startswith("file://") else root)
    if kind in ("s3", "s3a"):
        return S3Store(root, config, page_size=page_size)
    if kind in ("gs", "gcs"):
        return GCSStore(root, config, page_size=page_size)
    raise ValueError(f"landing zone root {root!r}: unsupported scheme {kind}:// (use a folder, s3:// or gs://)")
