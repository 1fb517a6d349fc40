"""Reading images out of requests: multipart fields or a raw image/* body, within the limits."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from app.errors import MissingFile, PayloadTooLarge, ServiceError, TooManyFiles, UnsupportedMediaType

ACCEPTED = "multipart/form-data (field 'file') or a raw body with an image/* content type"


@dataclass(frozen=True)
class Upload:
    filename: str | None
    data: bytes


class InvalidMultipart(ServiceError):
    status, code = 400, "invalid_multipart"


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _read_part(part: UploadFile, limit: int) -> bytes:
    data = await part.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"image '{part.filename}' is over the {limit}-byte limit")
    return data


async def read_single(request: Request, limit: int) -> Upload:
    """The one image of a /predict request."""
    media = _media_type(request)
    if media.startswith("image/"):
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"image is over the {limit}-byte limit")
        return Upload(None, bytes(body))
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"content type '{media or 'none'}' is not accepted; send {ACCEPTED}")
    try:
        async with request.form(max_files=1, max_fields=16) as form:
            part = form.get("file")
            if not isinstance(part, UploadFile):
                raise MissingFile("multipart field 'file' with an image file is required")
            return Upload(part.filename, await _read_part(part, limit))
    except HTTPException as e:  # starlette's multipart errors
        if "Too many files" in str(e.detail):
            raise TooManyFiles("send one image in field 'file'; use /predict/batch for several") from e
        raise InvalidMultipart(f"malformed multipart body: {e.detail}") from e


async def read_batch(request: Request, limit: int, max_files: int) -> list[Upload | ServiceError]:
    """The images of a /predict/batch request, in order; an oversized one is an error in its slot."""
    media = _media_type(request)
    if media != "multipart/form-data":
        raise UnsupportedMediaType(
            f"content type '{media or 'none'}' is not accepted; send multipart/form-data with field 'files'"
        )
    try:
        async with request.form(max_files=max_files, max_fields=16) as form:
            parts = form.getlist("files")
            if not parts:
                raise MissingFile("multipart field 'files' with at least one image file is required")
            if not all(isinstance(part, UploadFile) for part in parts):
                raise MissingFile("every 'files' entry must be a file upload; one is a text field")
            uploads: list[Upload | ServiceError] = []
            for part in parts:
                assert isinstance(part, UploadFile)
                try:
                    uploads.append(Upload(part.filename, await _read_part(part, limit)))
                except PayloadTooLarge as e:
                    uploads.append(e)
            return uploads
    except HTTPException as e:
        if "Too many files" in str(e.detail):
            raise TooManyFiles(f"at most {max_files} files per request") from e
        raise InvalidMultipart(f"malformed multipart body: {e.detail}") from e
