"""The 15 CIFAR-10-C corruptions, with CIFAR-10-C's parameters, for images of any size.

Hendrycks & Dietterich, "Benchmarking Neural Network Robustness to Common Corruptions and
Perturbations", ICLR 2019. The parameters are those of the CIFAR-10 variant (``CIFAR10C_PARAMS``;
the ImageNet-C ones are stronger), so that a model's error on data corrupted here is comparable
to its error on the released CIFAR-10-C files. The table, and every way these implementations
differ from the original generation script, are in ``docs/corruptions.md``.

Every corruption is a function ``f(image, severity, rng=None) -> uint8 array``:

* ``image``: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``; ``uint8`` (0..255) or floating point
  (0..1); any size with ``H, W >= 4``;
* ``severity``: 1..5;
* ``rng``: a ``numpy.random.Generator``; the only source of randomness, so the result is a
  function of (image, severity, generator state). The six deterministic corruptions
  (``DETERMINISTIC``) accept ``rng=None``.

The result is ``uint8`` with the shape of ``image``. Lengths that CIFAR-10-C gives in pixels of
a 32x32 image (blur radii, displacement sizes) are scaled by ``min(H, W) / 32``; per-pixel
operations (noise, brightness, contrast, JPEG) are unscaled. Tiny images (e.g. raw 8x8
digits) therefore get sub-pixel blurs that hardly change them -- upsample them to 32x32 first
(``neuroadapt.data.digits.resample``) to corrupt them as CIFAR-10-C corrupts CIFAR.

``corrupt(images, name, severity, seed)`` applies one corruption to a batch ``(N, H, W[, C])``;
image ``i`` uses the generator ``default_rng(SeedSequence(seed, spawn_key=(start_index + i,)))``
so a batch can be processed in chunks, or one image regenerated alone, with the same result.
"""
from __future__ import annotations

import io
import numbers

import numpy as np

from neuroadapt.data import corruptions_spatial as _sp
from neuroadapt.errors import InvalidInputError, ShapeError, UnsupportedOptionError

__all__ = [
    "CORRUPTIONS",
    "CORRUPTION_NAMES",
    "CIFAR10C_PARAMS",
    "DETERMINISTIC",
    "SEVERITIES",
    "corrupt",
    "get_corruption",
    "check_severity",
    "image_seed",
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
]

SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIDE = 4

#: CIFAR-10-C parameters per corruption, severity 1..5 (reference sheet §5; snow and
#: elastic_transform severities 1-4 from the CIFAR variant of the original generation script,
#: which the sheet does not list). Meaning of each entry: see ``docs/corruptions.md``.
CIFAR10C_PARAMS: dict[str, tuple] = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # sigma, on [0, 1]
    "shot_noise": (500, 250, 100, 75, 50),  # photons at full intensity
    "impulse_noise": (0.01, 0.02, 0.03, 0.05, 0.07),  # fraction of values hit
    "defocus_blur": ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)),  # radius, alias blur
    "glass_blur": ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2)),  # sigma, delta, iterations
    "motion_blur": ((6, 1), (6, 1.5), (6, 2), (8, 2), (9, 2.5)),  # radius, sigma
    "zoom_blur": (1.05, 1.10, 1.15, 1.20, 1.25),  # largest zoom
    "snow": (
        (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
        (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
        (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
        (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
        (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
    ),  # mean, std, zoom, threshold, blur radius, blur sigma, image weight
    "frost": ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45)),  # image weight, frost weight
    "fog": ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75)),  # amount, wibble decay
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to HSV value
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor about the channel mean
    "elastic_transform": (
        (0.0, 0.0, 0.08),
        (0.05, 0.2, 0.07),
        (0.08, 0.06, 0.06),
        (0.1, 0.04, 0.05),
        (0.1, 0.03, 0.03),
    ),  # alpha, sigma, affine jitter -- as fractions of the image side (x 32 for CIFAR)
    "pixelate": (0.95, 0.9, 0.85, 0.75, 0.65),  # down-sampling factor
    "jpeg_compression": (80, 65, 58, 50, 40),  # JPEG quality
}

CORRUPTION_NAMES: tuple[str, ...] = tuple(CIFAR10C_PARAMS)
DETERMINISTIC = frozenset({"defocus_blur", "zoom_blur", "brightness", "contrast", "pixelate", "jpeg_compression"})


# ----------------------------------------------------------------------------- pixel-wise ops
# Same contract as corruptions_spatial: op(x float (H, W, C) in [0, 1], c, rng, s) -> float.


def _gaussian_noise(x, c, rng, s):
    return x + rng.normal(0.0, c, size=x.shape)


def _shot_noise(x, c, rng, s):
    return rng.poisson(x * c) / c


def _impulse_noise(x, c, rng, s):
    # salt-and-pepper, per value (channels independently): a fraction c of the values is
    # replaced, half of them (in expectation) by 1, the other half by 0
    hit = rng.random(x.shape) < c
    salt = rng.random(x.shape) < 0.5
    out = x.copy()
    out[hit & salt] = 1.0
    out[hit & ~salt] = 0.0
    return out


def _brightness(x, c, rng, s):
    # Adding c to the HSV value V = max(R, G, B) with hue and saturation fixed scales the RGB
    # triple by V' / V (a black pixel, V = 0, has S = 0 and becomes grey V').
    v = x.max(axis=-1, keepdims=True)
    v_new = np.minimum(v + c, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v > 0, x * (v_new / np.where(v > 0, v, 1.0)), v_new)


def _contrast(x, c, rng, s):
    mean = x.mean(axis=(0, 1), keepdims=True)
    return (x - mean) * c + mean


def _to_pil(x):
    from PIL import Image

    u8 = np.round(np.clip(x, 0, 1) * 255.0).astype(np.uint8)
    return Image.fromarray(u8[..., 0] if u8.shape[-1] == 1 else u8, mode="L" if u8.shape[-1] == 1 else "RGB")


def _from_pil(img, shape):
    return np.asarray(img, dtype=np.float64).reshape(shape) / 255.0


def _pixelate(x, c, rng, s):
    from PIL import Image

    h, w = x.shape[:2]
    img = _to_pil(x)
    img = img.resize((max(1, int(w * c)), max(1, int(h * c))), Image.BOX)
    return _from_pil(img.resize((w, h), Image.BOX), x.shape)


def _jpeg_compression(x, c, rng, s):
    from PIL import Image

    buf = io.BytesIO()
    _to_pil(x).save(buf, format="JPEG", quality=int(c))
    buf.seek(0)
    with Image.open(buf) as img:
        return _from_pil(img.convert("L" if x.shape[-1] == 1 else "RGB"), x.shape)


_OPS = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "defocus_blur": _sp.defocus_blur,
    "glass_blur": _sp.glass_blur,
    "motion_blur": _sp.motion_blur,
    "zoom_blur": _sp.zoom_blur,
    "snow": _sp.snow,
    "frost": _sp.frost,
    "fog": _sp.fog,
    "brightness": _brightness,
    "contrast": _contrast,
    "elastic_transform": _sp.elastic_transform,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
}

_DOCS = {
    "gaussian_noise": "Additive Gaussian noise x + N(0, sigma^2) per value.",
    "shot_noise": "Poisson (shot) noise Poisson(c * x) / c per value.",
    "impulse_noise": "Salt-and-pepper noise on a fraction of the values (channels independent).",
    "defocus_blur": "Convolution with an anti-aliased disk (radius scaled by min(H, W)/32).",
    "glass_blur": "Gaussian blur, local pixel swaps within +-delta, Gaussian blur again.",
    "motion_blur": "One-sided Gaussian line blur along a random angle in U(-45, 45) degrees.",
    "zoom_blur": "Mean of the image and its centred zooms 1.00, 1.01, ..., z.",
    "snow": "Zoomed, thresholded, motion-blurred noise flakes over a whitened image.",
    "frost": "Blend with a seeded procedural frost texture (CIFAR-10-C uses frost photos).",
    "fog": "Adds a diamond-square plasma fractal and rescales.",
    "brightness": "Adds c to the HSV value channel.",
    "contrast": "Scales each channel about its mean by c.",
    "elastic_transform": "Random affine warp, then a smoothed random displacement field.",
    "pixelate": "PIL box down-sampling by c and box up-sampling back.",
    "jpeg_compression": "PIL JPEG encode/decode at the given quality.",
}


# ----------------------------------------------------------------------------- validation


def check_severity(severity, where: str = "severity") -> int:
    """``severity`` as an int in 1..5; :class:`InvalidInputError` otherwise."""
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral) or not 1 <= int(severity) <= 5:
        raise InvalidInputError(
            f"{where}: severity must be an integer 1..5 (CIFAR-10-C's levels), got {severity!r}"
        )
    return int(severity)


def get_corruption(name: str):
    """The corruption function called ``name``; :class:`UnsupportedOptionError` listing the 15 otherwise."""
    if not isinstance(name, str) or name not in CORRUPTIONS:
        raise UnsupportedOptionError(
            f"unknown corruption {name!r}; the CIFAR-10-C corruptions are: {', '.join(CORRUPTION_NAMES)}"
        )
    return CORRUPTIONS[name]


def _check_pixels(arr: np.ndarray, where: str) -> None:
    if arr.dtype == np.uint8:
        return
    if not np.issubdtype(arr.dtype, np.floating):
        raise InvalidInputError(
            f"{where}: images must be uint8 (0..255) or float (0..1), got dtype {arr.dtype}; "
            f"convert with .astype(np.uint8) or divide by the maximum and use float"
        )
    if arr.size and not np.isfinite(arr).all():
        raise InvalidInputError(f"{where}: images contain NaN or inf values")
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise InvalidInputError(
            f"{where}: float images must lie in [0, 1], found values in "
            f"[{float(arr.min()):.4g}, {float(arr.max()):.4g}]; divide 0..255 images by 255"
        )


def _check_image_shape(shape: tuple, where: str, batched: bool) -> None:
    spatial = shape[1:] if batched else shape
    expect = "(N, H, W) or (N, H, W, C)" if batched else "(H, W) or (H, W, C)"
    if len(spatial) not in (2, 3) or (len(spatial) == 3 and spatial[2] not in (1, 3)):
        raise ShapeError(f"{where}: images must be {expect} with C = 1 or 3, got shape {shape}")
    h, w = spatial[:2]
    if h < MIN_SIDE or w < MIN_SIDE:
        hint = " (a single (H, W, C) image passed as a batch? use images[None])" if batched else ""
        raise ShapeError(
            f"{where}: images must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {h}x{w} "
            f"from shape {shape}{hint}"
        )


def _check_rng(rng, name: str):
    if rng is None:
        if name in DETERMINISTIC:
            return None
        raise InvalidInputError(
            f"{name}: needs a seeded numpy.random.Generator, e.g. rng=np.random.default_rng(0)"
        )
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(
            f"{name}: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
            f"got {type(rng).__name__}"
        )
    return rng


def _apply(name: str, image, severity, rng) -> np.ndarray:
    where = f"{name}()"
    arr = np.asarray(image)
    _check_image_shape(arr.shape, where, batched=False)
    _check_pixels(arr, where)
    sev = check_severity(severity, where)
    rng = _check_rng(rng, name)
    x = arr.astype(np.float64) / 255.0 if arr.dtype == np.uint8 else arr.astype(np.float64)
    x3 = x[..., None] if x.ndim == 2 else x
    s = min(x3.shape[:2]) / 32.0
    out = _OPS[name](x3, CIFAR10C_PARAMS[name][sev - 1], rng, s)
    out = np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out.reshape(arr.shape)


def _make(name: str):
    def corruption(image, severity: int, rng: np.random.Generator | None = None) -> np.ndarray:
        return _apply(name, image, severity, rng)

    corruption.__name__ = corruption.__qualname__ = name
    corruption.__module__ = __name__
    rng_note = "ignored (deterministic; may be None)" if name in DETERMINISTIC else "required"
    corruption.__doc__ = (
        f"{_DOCS[name]}\n\n"
        f"CIFAR-10-C parameters, severity 1..5: {CIFAR10C_PARAMS[name]}.\n\n"
        f"image: (H, W[, C]) uint8 or float in [0, 1], C in (1, 3); severity: 1..5; "
        f"rng: numpy.random.Generator, {rng_note}. Returns uint8 with the shape of image."
    )
    return corruption


gaussian_noise = _make("gaussian_noise")
shot_noise = _make("shot_noise")
impulse_noise = _make("impulse_noise")
defocus_blur = _make("defocus_blur")
glass_blur = _make("glass_blur")
motion_blur = _make("motion_blur")
zoom_blur = _make("zoom_blur")
snow = _make("snow")
frost = _make("frost")
fog = _make("fog")
brightness = _make("brightness")
contrast = _make("contrast")
elastic_transform = _make("elastic_transform")
pixelate = _make("pixelate")
jpeg_compression = _make("jpeg_compression")

#: name -> corruption function, in CIFAR-10-C's order.
CORRUPTIONS = {name: globals()[name] for name in CORRUPTION_NAMES}


def image_seed(seed, index: int) -> np.random.SeedSequence:
    """The seed sequence of image ``index`` under ``seed`` (an int or a SeedSequence)."""
    if isinstance(seed, np.random.SeedSequence):
        return np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + (int(index),))
    return np.random.SeedSequence(int(seed), spawn_key=(int(index),))


def corrupt(images, name: str, severity: int, seed=0, start_index: int = 0) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` to a batch; returns uint8 of the same shape.

    ``images``: ``(N, H, W)`` or ``(N, H, W, C)`` (C = 1 or 3), uint8 or float in [0, 1]; a
    single image is ``images[None]``. ``seed``: a non-negative int (or a
    ``numpy.random.SeedSequence``); image ``i`` gets its own generator from
    ``SeedSequence(seed, spawn_key=(start_index + i,))``, so results do not depend on how a set
    is split into batches.
    """
    fn = get_corruption(name)
    sev = check_severity(severity, f"corrupt({name!r})")
    if not isinstance(seed, np.random.SeedSequence) and (
        isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0
    ):
        raise InvalidInputError(f"corrupt({name!r}): seed must be a non-negative int, got {seed!r}")
    arr = np.asarray(images)
    where = f"corrupt({name!r})"
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise ShapeError(f"{where}: images must be a non-empty batch (N, H, W[, C]), got shape {arr.shape}")
    _check_image_shape(arr.shape, where, batched=True)
    _check_pixels(arr, where)
    out = np.empty(arr.shape, dtype=np.uint8)
    for i in range(arr.shape[0]):
        rng = np.random.default_rng(image_seed(seed, start_index + i))
        out[i] = fn(arr[i], sev, rng)
    return out
