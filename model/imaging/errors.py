"""Why an upload cannot be read: each error's `code` is stable and machine-readable, its message
is for people. The service maps them to HTTP statuses (`app.errors`)."""

from __future__ import annotations


class PreprocessError(Exception):
    """A bad input image."""

    code = "invalid_image"


class EmptyImage(PreprocessError):
    code = "empty_image"


class NotAnImage(PreprocessError):
    code = "not_an_image"


class CorruptImage(PreprocessError):
    code = "corrupt_image"


class TruncatedImage(CorruptImage):
    code = "truncated_image"


class UnsupportedImage(PreprocessError):
    """A valid image this service cannot read (a colour mode Pillow converts to nothing else)."""

    code = "unsupported_image"


class ImageTooLarge(PreprocessError):
    code = "image_too_large"


class NoInk(PreprocessError):
    code = "no_ink"


class NotADigit(PreprocessError):
    """The image was read, but the model does not see a digit in it (model.refusal)."""

    code = "not_a_digit"


class SeveralDigits(PreprocessError):
    """The image holds several digits side by side: a number, which `/predict/number` reads."""

    code = "several_digits"

    def __init__(self, count: int) -> None:
        super().__init__(
            f"this image holds {count} digits side by side, not one; send it to /predict/number to read the number"
        )
        self.count = count


class TooManyDigits(PreprocessError):
    """More digits than `/predict/number` reads in one image."""

    code = "too_many_digits"
