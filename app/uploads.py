"""Reading images out of request bodies: the one definition of what an upload may be, used by
every request path (`app.routers.predict` and `app.fastpath`).

A body is a raw image with an `image/*` content type, or multipart/form-data whose file parts are
the images. The body arrives whole (its size is bounded by `app.middleware.RequestContext`);
python-multipart's parser splits it without spooling parts to files.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from app.errors import InvalidMultipart, MissingFile, PayloadTooLarge, ServiceError, TooManyFiles, UnsupportedMediaType

ACCEPTED = "multipart/form-data (field 'file') or a raw body with an image/* content type"
#: Text fields a multipart body may carry beside its files (as Starlette's form parser allows).
MAX_FIELDS = 16


@dataclass(frozen=True)
class Upload:
    filename: str | None
    data: bytes
    content_type: str | None = None  # a multipart file part's own Content-Type, if it has one


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    name: str = ""
    filename: str | None = None  # None for a text field


class _TooManyFiles(Exception):
    pass


def media_type(content_type: str) -> str:
    """`image/png` of `image/png; charset=x`, lower case; '' when there is none."""
    return content_type.split(";", 1)[0].strip().lower()


def read_single(content_type: str, body: bytes, limit: int) -> Upload:
    """The one image of a /predict request."""
    media = media_type(content_type)
    if media.startswith("image/"):
        if len(body) > limit:
            raise PayloadTooLarge(f"image is over the {limit}-byte limit")
        return Upload(None, body)
    if media != "multipart/form-data":
        raise UnsupportedMediaType(f"content type '{media or 'none'}' is not accepted; send {ACCEPTED}")
    try:
        parts = _parse_multipart(content_type, body, max_files=1)
    except _TooManyFiles:
        raise TooManyFiles("send one image in field 'file'; use /predict/batch for several") from None
    part = next((p for p in parts if p.name == "file"), None)
    if part is None or part.filename is None:
        raise MissingFile("multipart field 'file' with an image file is required")
    return _upload(part, limit)


def read_form(content_type: str, body: bytes, limit: int) -> tuple[Upload, dict[str, str]]:
    """The one image (field `file`) and the text fields of a multipart request (POST /feedback);
    a text field's value decoded as UTF-8, a field sent twice keeping its first value."""
    media = media_type(content_type)
    if media != "multipart/form-data":
        raise UnsupportedMediaType(
            f"content type '{media or 'none'}' is not accepted; send multipart/form-data with field 'file'"
        )
    try:
        parts = _parse_multipart(content_type, body, max_files=1)
    except _TooManyFiles:
        raise TooManyFiles("send one image in field 'file'") from None
    part = next((p for p in parts if p.name == "file" and p.filename is not None), None)
    if part is None:
        raise MissingFile("multipart field 'file' with an image file is required")
    fields: dict[str, str] = {}
    for p in parts:
        if p.filename is None:
            fields.setdefault(p.name, _decode(b"".join(p.chunks), "utf-8"))
    return _upload(part, limit), fields


def read_batch(content_type: str, body: bytes, limit: int, max_files: int) -> list[Upload | ServiceError]:
    """The images of a /predict/batch request, in order; an oversized one is an error in its slot."""
    media = media_type(content_type)
    if media != "multipart/form-data":
        raise UnsupportedMediaType(
            f"content type '{media or 'none'}' is not accepted; send multipart/form-data with field 'files'"
        )
    try:
        parts = [p for p in _parse_multipart(content_type, body, max_files) if p.name == "files"]
    except _TooManyFiles:
        raise TooManyFiles(f"at most {max_files} files per request") from None
    if not parts:
        raise MissingFile("multipart field 'files' with at least one image file is required")
    if any(p.filename is None for p in parts):
        raise MissingFile("every 'files' entry must be a file upload; one is a text field")
    uploads: list[Upload | ServiceError] = []
    for part in parts:
        try:
            uploads.append(_upload(part, limit))
        except PayloadTooLarge as e:
            uploads.append(e)
    return uploads


def _upload(part: _Part, limit: int) -> Upload:
    data = b"".join(part.chunks)
    if len(data) > limit:
        raise PayloadTooLarge(f"image '{part.filename}' is over the {limit}-byte limit")
    return Upload(part.filename, data, media_type(_decode(part.headers.get(b"content-type", b""), "latin-1")) or None)


def _decode(value: bytes, charset: str) -> str:
    try:
        return value.decode(charset)
    except (UnicodeDecodeError, LookupError):
        return value.decode("latin-1")


def _parse_multipart(content_type: str, body: bytes, max_files: int) -> list[_Part]:
    """The parts of a whole multipart body, in order. Raises InvalidMultipart when it is malformed,
    and _TooManyFiles past `max_files` file parts."""
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise InvalidMultipart("malformed multipart body: Missing boundary in multipart.")
    charset = options.get(b"charset", b"utf-8").decode("latin-1")
    parts: list[_Part] = []
    header = b""
    files = fields = 0

    def on_part_begin() -> None:
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        nonlocal header
        header = data[start:end].lower()

    def on_header_value(data: bytes, start: int, end: int) -> None:
        headers = parts[-1].headers
        headers[header] = headers.get(header, b"") + data[start:end]

    def on_headers_finished() -> None:
        nonlocal files, fields
        part = parts[-1]
        _, params = parse_options_header(part.headers.get(b"content-disposition", b""))
        if b"name" not in params:
            raise InvalidMultipart(
                'malformed multipart body: The Content-Disposition header field "name" must be provided.'
            )
        part.name = _decode(params[b"name"], charset)
        if b"filename" in params:
            files += 1
            if files > max_files:
                raise _TooManyFiles
            part.filename = _decode(params[b"filename"], charset)
        else:
            fields += 1
            if fields > MAX_FIELDS:
                raise InvalidMultipart(
                    f"malformed multipart body: Too many fields. Maximum number of fields is {MAX_FIELDS}."
                )

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].chunks.append(data[start:end])

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_headers_finished": on_headers_finished,
                 "on_part_data": on_part_data}  # fmt: skip
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
    except FormParserError as e:
        raise InvalidMultipart("malformed multipart body: Invalid multipart data.") from e
    if parser.state != MultipartState.END:
        raise InvalidMultipart("malformed multipart body: the body ends before its closing boundary")
    return parts
