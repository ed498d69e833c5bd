"""The import upload size limit (``PREFHUB_MAX_IMPORT_BYTES``): one check for the page and the API.

``ImportSizeLimit`` is an upload handler that stops reading an upload as soon as it passes the limit
(before it fills the disk) and marks the request; the rest of the body is drained, not stored.
"""

from __future__ import annotations

import io

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest

from annotate.errors import ServiceError


class ImportTooLarge(ServiceError):
    status_code = 413
    code = "too_large"


def import_max_bytes() -> int:
    return int(settings.PREFHUB_MAX_IMPORT_BYTES)


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f}".removesuffix(".0") + f" {unit}"
        n /= 1024
    return f"{n} bytes"


def import_too_large_message(limit: int | None = None) -> str:
    return (
        f"That file is too large: the limit is {human_bytes(import_max_bytes() if limit is None else limit)}."
    )


class ImportSizeLimit(FileUploadHandler):
    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        request.import_too_large = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # The declared length includes the form's other fields: allow a little slack for them.
        if content_length and content_length > self.limit + 64 * 1024:
            self.request.import_too_large = True

    def receive_data_chunk(self, raw_data, start):
        if self.request.import_too_large or start + len(raw_data) > self.limit:
            self.request.import_too_large = True
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None


def import_size_limit_install(request: HttpRequest) -> None:
    """Put the size limit first among the request's upload handlers (before the body is parsed)."""
    if request.method == "POST":
        request.upload_handlers.insert(0, ImportSizeLimit(request, import_max_bytes()))


def import_size_limit_check(request: HttpRequest) -> None:
    """After the body was parsed: refuse (413) an upload the limit cut off."""
    if getattr(request, "import_too_large", False):
        raise ImportTooLarge(import_too_large_message())


# Request bodies that are the import file itself (no multipart form): read as they arrive.
RAW_IMPORT_TYPES = (
    "application/x-ndjson",
    "application/jsonl",
    "application/gzip",
    "application/octet-stream",
)


class _BoundedBody(io.RawIOBase):
    """The request body as a binary stream that refuses (413) to read past ``limit`` bytes."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        self._request = request
        self._limit = limit
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._request.read(len(buffer))
        self._read += len(data)
        if self._read > self._limit:
            raise ImportTooLarge(import_too_large_message(self._limit))
        buffer[: len(data)] = data
        return len(data)


def import_body_stream(request: HttpRequest) -> io.RawIOBase:
    """The body of a raw import upload (``RAW_IMPORT_TYPES``), streamed into the import as it
    arrives (no temporary file); a declared or actual length over the limit is a 413."""
    limit = import_max_bytes()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise ImportTooLarge(import_too_large_message(limit))
    return _BoundedBody(request, limit)
