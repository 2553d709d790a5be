"""Turning any image file into what the model was trained on."""

import os
import warnings

import numpy as np


class ImageFileError(ValueError):
    """An image file that cannot be read; the message names it."""


def load_image(path):
    """Decodes an image file with Pillow, or raises ImageFileError naming it."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise ImageFileError(f"{path}: no such file.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse
            # there too rather than decode hundreds of megabytes.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return image.copy()
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise ImageFileError(f"{path}: too large to be a digit ({error}).") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageFileError(f"{path}: not a readable image ({error}).") from None


# Above this, images' edges (`border_brightness`) read as a light background: dark strokes on paper.
LIGHT_BACKGROUND = 0.5


def border_brightness(images):
    """The median of the images' outermost pixels, all channels (`(n, h, w, c)` floats in
    [0, 1]): near 0 for dark backgrounds (MNIST's), near 1 for light ones (scans)."""
    images = np.asarray(images)
    edges = (images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1])  # each (n, side, c)
    return float(np.median(np.concatenate(edges, axis=1)))


def _border_median(gray):
    """One grey image's background level `(h, w)`: its `border_brightness`."""
    return border_brightness(gray[None, :, :, None])


# PIL's mode for a model's channel count.
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def to_model_input(image, shape, digits=True, inverted=False):
    """A PIL image -> float32 `shape` (height, width, channels) in [0, 1].

    With `digits` and one channel (an MNIST model): grayscale; dark ink on
    light paper is inverted to MNIST's light-on-dark; the digit is cropped,
    scaled into the central 20/28 of the frame keeping its aspect ratio, and
    centred by its mass, as MNIST's digits are; for a model that inverts its
    images itself (`inverted`, `CapsNet`'s `invert_input`) that frame is
    given dark on light, as it was trained on. Otherwise the image is
    converted to the model's channels (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA)
    and resized to its size, as training images of another size were.
    """
    from PIL import Image

    height, width, channels = shape
    if channels not in _MODES:
        raise ValueError(f"Models with {channels} channels are not supported by the image loader (1 to 4).")
    if channels != 1 or not digits:
        resized = np.asarray(image.convert(_MODES[channels]).resize((width, height), Image.BILINEAR), np.float32)
        return resized.reshape(height, width, channels) / 255.0
    gray = np.asarray(image.convert("L"), np.float32) / 255.0
    if _border_median(gray) > LIGHT_BACKGROUND:
        gray = 1.0 - gray
    gray = np.clip(gray - _border_median(gray), 0, None)
    if gray.max() > 0:
        gray /= gray.max()
    rows, cols = np.nonzero(gray > 0.2)
    if len(rows):
        gray = gray[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    box = max(1, round(min(height, width) * 20 / 28))
    scale = box / max(gray.shape)
    size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
    digit = np.asarray(Image.fromarray((gray * 255).astype(np.uint8)).resize(size, Image.LANCZOS), np.float32) / 255
    canvas = np.zeros((height, width), np.float32)
    mass = digit.sum()
    cy, cx = ((np.indices(digit.shape) * digit).reshape(2, -1).sum(1) / mass) if mass else np.array(digit.shape) / 2
    top = int(np.clip(round(height / 2 - cy), 0, height - digit.shape[0]))
    left = int(np.clip(round(width / 2 - cx), 0, width - digit.shape[1]))
    canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
    return (1.0 - canvas if inverted else canvas)[..., None]
