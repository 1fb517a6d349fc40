"""app.uploads: what an upload may be, for every request path."""

from __future__ import annotations

import pytest

from app.errors import InvalidMultipart, MissingFile, PayloadTooLarge, TooManyFiles, UnsupportedMediaType
from app.uploads import Upload, media_type, read_batch, read_single
from tests.helpers import multipart

PNG = b"\x89PNG not really"


def test_media_type_is_the_bare_lower_case_type() -> None:
    assert media_type("Image/PNG; charset=x") == "image/png"
    assert media_type("") == ""


def test_a_raw_image_body_is_the_upload() -> None:
    assert read_single("image/png", PNG, 100) == Upload(None, PNG)


def test_a_raw_body_over_the_limit() -> None:
    with pytest.raises(PayloadTooLarge, match=r"^image is over the 10-byte limit$"):
        read_single("image/png", b"x" * 11, 10)


@pytest.mark.parametrize(("content_type", "shown"), [("text/plain", "text/plain"), ("", "none")])
def test_other_media_types_are_refused(content_type: str, shown: str) -> None:
    message = (
        f"content type '{shown}' is not accepted; send multipart/form-data (field 'file') or a raw body "
        "with an image/* content type"
    )
    with pytest.raises(UnsupportedMediaType) as e:
        read_single(content_type, b"hello", 100)
    assert e.value.message == message


def test_the_file_in_field_file_beside_text_fields() -> None:
    body, ctype = multipart([("note", None, b"hi"), ("file", "sieben.png", PNG)])
    assert read_single(ctype, body, 100) == Upload("sieben.png", PNG)


def test_a_utf8_file_name_is_decoded() -> None:
    body, ctype = multipart([("file", "é.png", PNG)])
    assert read_single(ctype, body, 100).filename == "é.png"


@pytest.mark.parametrize(
    ("parts", "error", "message"),
    [
        ([("file", "a.png", PNG), ("file", "b.png", PNG)], TooManyFiles, "send one image in field 'file'"),
        ([("other", "a.png", PNG)], MissingFile, "multipart field 'file' with an image file is required"),
        ([("file", None, PNG)], MissingFile, "multipart field 'file' with an image file is required"),
        ([("note", None, b"hi")], MissingFile, "multipart field 'file' with an image file is required"),
        ([(f"f{i}", None, b"x") for i in range(17)], InvalidMultipart, "Too many fields. Maximum number"),
        ([("file", "big.png", b"x" * 101)], PayloadTooLarge, "image 'big.png' is over the 100-byte limit"),
    ],
    ids=["two-files", "wrong-field", "text-not-file", "no-file", "17-fields", "part-too-large"],
)
def test_multipart_errors(parts: list[tuple[str, str | None, bytes]], error: type[Exception], message: str) -> None:
    body, ctype = multipart(parts)
    with pytest.raises(error, match=message):
        read_single(ctype, body, 100)


def test_a_file_outside_field_file_counts_as_a_second_file() -> None:
    body, ctype = multipart([("other", "a.png", PNG), ("file", "b.png", PNG)])
    with pytest.raises(TooManyFiles):
        read_single(ctype, body, 100)


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\nabc",
         "multipart/form-data; boundary=x", "the body ends before its closing boundary"),
        (b"", "multipart/form-data; boundary=x", "the body ends before its closing boundary"),
        (b"--x--\r\n", "multipart/form-data", "Missing boundary in multipart."),
        (b"--x\r\nContent-Disposition: form-data\r\n\r\nabc\r\n--x--\r\n", "multipart/form-data; boundary=x",
         'The Content-Disposition header field "name" must be provided.'),
    ],
    ids=["unclosed", "empty", "no-boundary", "no-name"],
)  # fmt: skip
def test_malformed_multipart_is_invalid(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(InvalidMultipart) as e:
        read_single(content_type, body, 100)
    assert e.value.message == f"malformed multipart body: {message}"


def test_batch_keeps_order_and_puts_an_oversized_file_in_its_slot() -> None:
    body, ctype = multipart([("files", "a.png", b"a"), ("note", None, b"n"), ("files", "big.png", b"x" * 11),
                             ("files", "c.png", b"c")])  # fmt: skip
    uploads = read_batch(ctype, body, 10, 4)
    assert uploads[0] == Upload("a.png", b"a")
    assert isinstance(uploads[1], PayloadTooLarge)
    assert uploads[1].message == "image 'big.png' is over the 10-byte limit"
    assert uploads[2] == Upload("c.png", b"c")
    assert len(uploads) == 3


@pytest.mark.parametrize(
    ("parts", "content_type", "error", "message"),
    [
        ([("files", f"{i}.png", b"x") for i in range(5)], None, TooManyFiles, "at most 4 files per request"),
        ([("note", None, b"n")], None, MissingFile, "multipart field 'files' with at least one image file is required"),
        ([("files", "a.png", b"a"), ("files", None, b"t")], None, MissingFile,
         "every 'files' entry must be a file upload; one is a text field"),
        ([], "image/png", UnsupportedMediaType,
         "content type 'image/png' is not accepted; send multipart/form-data with field 'files'"),
    ],
    ids=["too-many", "none", "text-field", "raw-body"],
)  # fmt: skip
def test_batch_errors(
    parts: list[tuple[str, str | None, bytes]], content_type: str | None, error: type[Exception], message: str
) -> None:
    body, ctype = multipart(parts)
    with pytest.raises(error) as e:
        read_batch(content_type or ctype, body, 10, 4)
    assert str(e.value) == message
