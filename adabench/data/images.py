"""Reading a sample's image safely: every image becomes an 8-bit RGB PIL image, or a one-line
error that names the sample and its file.

Image files users bring are not always what they say: 0-byte files, corrupt or truncated PNGs,
16-bit greyscale, CMYK JPEGs, palette images with transparency, animated GIFs. `to_rgb` maps
every readable mode to RGB the way the LLaVA-1.5 evaluation does (`convert("RGB")`, alpha
dropped), with two exceptions that `convert` gets wrong: 16-bit images are scaled to 8 bits
(not clipped to white), and an animated image contributes its first frame. `check_images`
decodes every image of a suite before anything is measured, so a bad file stops a run with one
line — or, when the user asks to skip bad samples, is left out and listed.
"""

from __future__ import annotations

import os
from pathlib import Path

from adabench.errors import UserError

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


class ImageSource:
    """Something that decodes one sample's image when called (lazily: nothing is kept)."""

    def __call__(self):
        """Returns the image as an RGB PIL image (decoded now, not cached)."""
        raise NotImplementedError

    def describe(self) -> str:
        """Returns where the image comes from, for error messages (a path or a dataset row)."""
        raise NotImplementedError


class FileImage(ImageSource):
    """The image stored in the file `path`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def __call__(self):
        """Returns the file's image as an RGB PIL image; OSError/ValueError when unreadable."""
        from PIL import Image

        with Image.open(self.path) as image:
            image.load()  # decode now: a truncated file fails here, not inside the processor
            return to_rgb(image)

    def describe(self) -> str:
        return str(self.path)


def to_rgb(image):
    """Returns `image` as an 8-bit RGB PIL image: the first frame of an animated image, 16-bit
    greyscale scaled by 1/257 (not clipped), palette and alpha images through RGBA (alpha
    dropped, as LLaVA's `convert("RGB")` does), CMYK and the rest by `convert("RGB")`."""
    from PIL import Image

    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    if image.mode == "RGB":
        return image.copy()  # a copy outlives the file it was read from
    if image.mode in SIXTEEN_BIT_MODES:
        import numpy as np

        values = np.asarray(image, dtype=np.float64)
        scale = 257.0 if values.max(initial=0) > 255 else 1.0
        grey = np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if image.mode == "F":
        import numpy as np

        values = np.clip(np.rint(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return Image.fromarray(values, mode="L").convert("RGB")
    if image.mode in ("P", "PA", "LA", "La", "RGBa") or "transparency" in image.info:
        return image.convert("RGBA").convert("RGB")
    return image.convert("RGB")


def describe_source(sample) -> str:
    """Returns where `sample`'s image comes from (a file path, a dataset row, or "in memory")."""
    source = getattr(sample, "image_source", None)
    return source.describe() if isinstance(source, ImageSource) else "in memory"


def read_image(sample):
    """Returns `sample`'s image as an 8-bit RGB PIL image. Raises UserError naming the sample id
    and the file when it cannot be decoded (0-byte, corrupt, truncated, missing, too large)."""
    try:
        image = sample.image
        if image is None:
            raise ValueError("the sample has no image")
        image.load()
        return image if image.mode == "RGB" else to_rgb(image)  # lazy sources gave RGB already
    except UserError:
        raise
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBomb…
        raise UserError(
            f"sample {sample.id!r}: image {describe_source(sample)} cannot be read "
            f"({exc.__class__.__name__}: {_short(exc)}); fix or remove it, or pass "
            "--skip-bad-samples to leave such samples out (they are listed in meta.json)"
        ) from exc


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


def check_images(samples: list, skip_bad: bool = False) -> tuple[list, list[dict]]:
    """Returns (the samples whose image decodes, one row per sample left out: sample_id, image,
    problem, message — the one-line error). Every image is decoded once. Without `skip_bad` the first bad image raises the
    UserError of `read_image` instead."""
    good, bad = [], []
    for sample in samples:
        try:
            read_image(sample)
        except UserError as exc:
            if not skip_bad:
                raise
            bad.append(
                {
                    "sample_id": sample.id,
                    "image": describe_source(sample),
                    "problem": _short(exc.__cause__ or exc),
                    "message": str(exc),
                }
            )
            continue
        good.append(sample)
    return good, bad
