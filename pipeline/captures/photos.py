"""Reading photos and framing them: resize, then crop, with the intrinsics carried along exactly.

A photo of W x H pixels is resized to `resize = (W', H')` (Pillow's Lanczos filter, which is what the seed's
`Image.ANTIALIAS` was) and cropped to the box `crop = (left, top, right, bottom)` of the resized image, as
the seed did for the fruit still lifes: 4032x3024 -> 96x72 -> (16, 4, 80, 68) -> 64x64. With pixel corners
at integer coordinates (docs/formats.md), resizing scales `fx, cx` by W'/W and `fy, cy` by H'/H, and cropping
subtracts the box's corner from `cx, cy`; no other change to K is exact, so none is made.

Photos are read as stored: EXIF orientation is not applied (the seed did not either), grey or palette photos
become RGB, and an alpha channel is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from pipeline.captures.scene import CaptureError

#: Suffixes taken as photos (compared in lower case); other files in a capture folder are not views.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Framing:
    """Resize, then crop.

    Attributes:
        resize: (width, height) to resize to first, or None to keep the photo's size.
        crop: (left, top, right, bottom) box in the resized image, or None for all of it.
    """

    resize: tuple[int, int] | None = None
    crop: tuple[int, int, int, int] | None = None

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of a framed photo of `width` x `height`."""
        if self.resize is not None:
            width, height = self.resize
        if self.crop is not None:
            left, top, right, bottom = self.crop
            if not (0 <= left < right <= width and 0 <= top < bottom <= height):
                raise CaptureError(f"crop box {self.crop} does not fit in {width}x{height} (the photo after "
                                   f"resize {self.resize}); pass a box inside it")
            width, height = right - left, bottom - top
        return width, height

    def apply_K(self, K: np.ndarray, width: int, height: int) -> np.ndarray:
        """K (3, 3) of a `width` x `height` photo -> K of the framed image (float64)."""
        K = np.array(K, dtype=np.float64)
        if self.resize is not None:
            K[0] *= self.resize[0] / width
            K[1] *= self.resize[1] / height
            K[2] = [0.0, 0.0, 1.0]
        if self.crop is not None:
            K[0, 2] -= self.crop[0]
            K[1, 2] -= self.crop[1]
        return K

    def apply(self, image: Image.Image) -> Image.Image:
        """The framed image."""
        self.output_size(*image.size)  # checks the box
        if self.resize is not None and image.size != self.resize:
            image = image.resize(self.resize, Image.Resampling.LANCZOS)
        if self.crop is not None:
            image = image.crop(self.crop)
        return image

    def describe(self) -> str:
        return f"resize {self.resize or 'none'}, crop {self.crop or 'none'}"


#: The seed's framing of the 4032x3024 fruit photos: 96x72, then the 64x64 box (16, 4, 80, 68).
SEED_FRAMING = Framing(resize=(96, 72), crop=(16, 4, 80, 68))


def square_framing(width: int, height: int, size: int) -> Framing:
    """Resize so the shorter side is `size` (aspect kept, rounded), then crop the centred `size` x `size` square."""
    scale = size / min(width, height)
    w, h = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (w - size) // 2, (h - size) // 2
    return Framing(resize=(w, h), crop=(left, top, left + size, top + size))


def open_photo(path: Path) -> Image.Image:
    """The photo at `path` as an RGB Pillow image, fully decoded.

    Raises:
        CaptureError: the file is missing, not an image, or truncated; the message names it and the fix.
    """
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB") if image.mode != "RGB" else image.copy()
    except FileNotFoundError:
        raise CaptureError(f"{path}: no such photo; restore it or remove its entry") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise CaptureError(f"{path}: cannot read it as an image ({type(err).__name__}: {err}); replace it with a "
                           f"readable {'/'.join(PHOTO_SUFFIXES)} file or remove it (and its pose)") from None


def photo_size(path: Path) -> tuple[int, int]:
    """(width, height) from the photo's header, without decoding it.

    Raises:
        CaptureError: the file is not an image.
    """
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise CaptureError(f"{path}: cannot read it as an image ({type(err).__name__}: {err}); replace it with a "
                           f"readable {'/'.join(PHOTO_SUFFIXES)} file or remove it (and its pose)") from None


def read_framed(path: Path, framing: Framing) -> np.ndarray:
    """uint8 (H, W, 3) sRGB of the photo at `path` after `framing`."""
    return np.asarray(framing.apply(open_photo(path)), dtype=np.uint8)


def list_photos(folder: Path) -> list[Path]:
    """Photos of `folder` (PHOTO_SUFFIXES, hidden files skipped), sorted by name: never directory order."""
    return sorted((p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in PHOTO_SUFFIXES),
                  key=lambda p: p.name)
