"""The spatial CIFAR-10-C corruptions (blurs, weather, elastic) and their helpers.

Internal module of :mod:`neuroadapt.data.corruptions`, which validates the input, converts it
and calls these operations. Every operation here has the signature ``op(x, c, rng, s)``:

* ``x`` -- float64 image ``(H, W, C)`` with values in [0, 1] (``C`` is 1 or 3);
* ``c`` -- the CIFAR-10-C parameter(s) of the requested severity (see ``CIFAR10C_PARAMS``);
* ``rng`` -- a ``numpy.random.Generator`` (the only source of randomness);
* ``s`` -- the size scale ``min(H, W) / 32``: lengths in pixels that the CIFAR-10-C definitions
  give for 32x32 images are multiplied by ``s`` so that the corruption looks the same,
  relative to the image, at any size;

and returns a float64 image of the same shape, *not yet clipped* (the caller clips to [0, 1]
and rounds to uint8).

The definitions follow Hendrycks & Dietterich (ICLR 2019) and the CIFAR-10 variant of their
generation script; the differences are listed in ``docs/corruptions.md``.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = [
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "elastic_transform",
    "disk_kernel",
    "motion_blur_kernel",
    "apply_motion_blur",
    "centre_zoom",
    "plasma_fractal",
    "frost_texture",
]

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as OpenCV's RGB2GRAY


def _gray(x: np.ndarray) -> np.ndarray:
    """(H, W, 1) luminance of an (H, W, C) image; a grey image is its own luminance."""
    if x.shape[-1] == 1:
        return x
    return (x @ _LUMA)[..., None]


# ----------------------------------------------------------------------------- kernels


def _gauss1d(sigma: float, half: int) -> np.ndarray:
    """Normalised samples of a Gaussian at -half..half (a delta when sigma is ~0)."""
    i = np.arange(-half, half + 1, dtype=np.float64)
    if sigma < 1e-6:
        return (i == 0).astype(np.float64)
    g = np.exp(-(i**2) / (2.0 * sigma**2))
    return g / g.sum()


def disk_kernel(radius: float, alias_blur: float, s: float = 1.0) -> np.ndarray:
    """The defocus kernel: a pixel disk of ``radius`` smoothed by a small Gaussian.

    The disk holds the integer offsets with ``dx**2 + dy**2 <= radius**2`` (so radius < 1 is a
    single pixel), normalised to sum 1, then blurred by a Gaussian of standard deviation
    ``alias_blur`` truncated to ``max(1, round(s))`` pixels (3x3 at 32x32, as in CIFAR-10-C,
    where it anti-aliases the disk and, for radius < 1, *is* the blur).
    """
    half_g = max(1, int(round(s)))
    half = int(math.floor(radius)) + half_g
    i = np.arange(-half, half + 1, dtype=np.float64)
    disk = ((i[:, None] ** 2 + i[None, :] ** 2) <= radius**2).astype(np.float64)
    disk /= disk.sum()
    g = _gauss1d(alias_blur, half_g)
    k = ndimage.convolve(disk, np.outer(g, g), mode="constant")
    return k / k.sum()


def motion_blur_kernel(radius: float, sigma: float, angle_deg: float):
    """Weights and integer (dy, dx) offsets of a one-sided motion blur along ``angle_deg``.

    Constructed like ImageMagick's ``-motion-blur radius x sigma + angle`` (which CIFAR-10-C
    used via Wand): ``width = 2 * ceil(radius) + 1`` taps; tap ``i`` has weight
    ``exp(-i**2 / (2 sigma**2))`` (normalised) and reads the pixel ``i`` steps along the
    direction ``(cos angle, sin angle)`` (x to the right, y down), each offset rounded to the
    nearest pixel. The blur therefore smears in one direction only.
    """
    width = 2 * int(math.ceil(radius)) + 1
    i = np.arange(width, dtype=np.float64)
    sig = max(float(sigma), 1e-6)
    w = np.exp(-(i**2) / (2.0 * sig**2))
    w /= w.sum()
    a = math.radians(angle_deg)
    dx = np.ceil(i * math.cos(a) - 0.5).astype(np.int64)
    dy = np.ceil(i * math.sin(a) - 0.5).astype(np.int64)
    return w, dy, dx


def apply_motion_blur(x: np.ndarray, radius: float, sigma: float, angle_deg: float) -> np.ndarray:
    """``out[y, x] = sum_i w_i * in[y + dy_i, x + dx_i]`` with edge-replicated borders."""
    w, dy, dx = motion_blur_kernel(radius, sigma, angle_deg)
    keep = w > 1e-12  # taps that contribute nothing are skipped (exactly the same result)
    w, dy, dx = w[keep], dy[keep], dx[keep]
    h, wd = x.shape[:2]
    p = int(max(np.abs(dy).max(), np.abs(dx).max()))
    xp = np.pad(x, ((p, p), (p, p), (0, 0)), mode="edge")
    out = np.zeros_like(x)
    for wi, oy, ox in zip(w, dy, dx):
        out += wi * xp[p + oy : p + oy + h, p + ox : p + ox + wd]
    return out


def _zoom_taps(n: int, zoom: float):
    """Source index and weight of the two taps of a 1-D bilinear magnification about the centre."""
    c = (n - 1) / 2.0
    u = np.clip(c + (np.arange(n) - c) / zoom, 0.0, n - 1.0)  # source coordinate of each output
    i0 = np.minimum(np.floor(u).astype(np.int64), n - 2)
    return i0, u - i0


def centre_zoom(x: np.ndarray, zoom: float) -> np.ndarray:
    """Magnify ``x`` (H, W, C) by ``zoom`` >= 1 about the image centre, bilinear, same size.

    Output pixel ``(i, j)`` samples the input at ``(c_y + (i - c_y) / zoom, c_x + (j - c_x) / zoom)``
    with ``c`` the image centre ``((H - 1) / 2, (W - 1) / 2)``; bilinear interpolation is
    separable, so rows are interpolated first, then columns.
    """
    if zoom == 1.0:
        return x.copy()
    h, w = x.shape[:2]
    i0, fy = _zoom_taps(h, zoom)
    x = x[i0] * (1.0 - fy)[:, None, None] + x[i0 + 1] * fy[:, None, None]
    j0, fx = _zoom_taps(w, zoom)
    return x[:, j0] * (1.0 - fx)[None, :, None] + x[:, j0 + 1] * fx[None, :, None]


def plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """Diamond-square height map (``mapsize`` a power of two), wrapped at the edges, in [0, 1].

    Each midpoint is the mean of its four neighbours plus uniform noise in
    ``[-wibble**2, wibble**2]`` -- the amplitude CIFAR-10-C's generator actually used (its
    noise term is ``wibble * U(-wibble, wibble)``) -- with ``wibble = 100`` at the coarsest
    step, divided by ``wibbledecay`` at each finer one.
    """
    m = np.zeros((mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def noisy_mean(total):
        return total / 4.0 + wibble * rng.uniform(-wibble, wibble, total.shape)

    while step >= 2:
        half = step // 2
        corners = m[0::step, 0::step]
        # squares: centre of each square = mean of its 4 corners (+ noise)
        total = corners + np.roll(corners, -1, axis=0)
        total = total + np.roll(total, -1, axis=1)
        m[half::step, half::step] = noisy_mean(total)
        # diamonds: the edge midpoints, from the two adjacent corners and centres
        centres = m[half::step, half::step]
        m[0::step, half::step] = noisy_mean(
            centres + np.roll(centres, 1, axis=0) + corners + np.roll(corners, -1, axis=1)
        )
        m[half::step, 0::step] = noisy_mean(
            centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=0)
        )
        step = half
        wibble /= wibbledecay
    m -= m.min()
    top = m.max()
    return m / top if top > 0 else m


def frost_texture(h: int, w: int, rng: np.random.Generator, s: float = 1.0) -> np.ndarray:
    """A procedural frost texture (h, w, 3) in [0, 1] -- stands in for CIFAR-10-C's frost photos.

    1. *Haze*: four octaves of Gaussian-smoothed white noise (widths 1, 2, 4, 8 px times ``s``,
       amplitudes halving with each finer octave), wrapped at the borders, scaled to [0, 1].
    2. *Crystals*: ``round(24 * h * w / (32 s)**2)`` needles (at least 3), each with a random
       start, angle and length U(4, 14) px times ``s``, and two side branches of 30-60 % of its
       length at +-60 degrees (the hexagonal habit of ice); drawn with bilinear splats every
       half pixel, widened by a Gaussian of 0.6 px times ``s`` and saturated with
       ``1 - exp(-2 a)``.
    3. Grey level ``0.15 + 0.3 haze + 0.6 crystals`` (clipped), tinted pale blue by channel
       gains (0.86, 0.93, 1.0); mean about 0.5. Not calibrated against the frost photos.
    """
    # 1. haze
    haze = np.zeros((h, w))
    for k, width in enumerate((8.0, 4.0, 2.0, 1.0)):
        n = ndimage.gaussian_filter(rng.standard_normal((h, w)), width * s, mode="wrap")
        sd = n.std()
        haze += (0.5**k) * (n / sd if sd > 0 else n)
    haze -= haze.min()
    top = haze.max()
    haze = haze / top if top > 0 else haze
    # 2. crystals
    n_needles = max(3, int(round(24 * h * w / (32.0 * s) ** 2)))
    start = rng.uniform([-0.1 * h, -0.1 * w], [1.1 * h, 1.1 * w], size=(n_needles, 2))
    angle = rng.uniform(0.0, 2 * np.pi, n_needles)
    length = rng.uniform(4.0, 14.0, n_needles) * s
    bright = rng.uniform(0.5, 1.0, n_needles)
    at = rng.uniform(0.2, 0.8, (n_needles, 2))  # where along the needle the branches sprout
    frac = rng.uniform(0.3, 0.6, (n_needles, 2))
    segs = [(start, angle, length, bright)]
    for b, turn in enumerate((np.pi / 3, -np.pi / 3)):
        root = start + (at[:, b] * length)[:, None] * np.stack([np.sin(angle), np.cos(angle)], 1)
        segs.append((root, angle + turn, frac[:, b] * length, 0.8 * bright))
    canvas = np.zeros((h + 2, w + 2))
    for p0, ang, ln, br in segs:
        n_pts = int(np.ceil(2 * ln.max())) + 1
        t = np.linspace(0.0, 1.0, n_pts)
        ys = p0[:, 0:1] + t[None] * (ln * np.sin(ang))[:, None]
        xs = p0[:, 1:2] + t[None] * (ln * np.cos(ang))[:, None]
        val = np.broadcast_to(br[:, None], ys.shape)
        ys, xs, val = ys.ravel() + 1, xs.ravel() + 1, val.ravel()
        inside = (ys >= 0) & (ys < h + 1) & (xs >= 0) & (xs < w + 1)
        ys, xs, val = ys[inside], xs[inside], val[inside]
        y0, x0 = np.floor(ys).astype(np.int64), np.floor(xs).astype(np.int64)
        fy, fx = ys - y0, xs - x0
        for oy, ox, wt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                           (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
            idx = (y0 + oy) * (w + 2) + (x0 + ox)
            canvas += np.bincount(idx, val * wt, minlength=canvas.size).reshape(canvas.shape)
    canvas = ndimage.gaussian_filter(canvas[1:-1, 1:-1], 0.6 * s, mode="constant")
    crystals = 1.0 - np.exp(-2.0 * canvas)
    # 3. grey level and tint
    grey = np.clip(0.15 + 0.3 * haze + 0.6 * crystals, 0.0, 1.0)
    return grey[..., None] * np.array([0.86, 0.93, 1.0])


# ----------------------------------------------------------------------------- blurs


def defocus_blur(x, c, rng, s):
    radius, alias_blur = c
    k = disk_kernel(radius * s, alias_blur * s, s)
    return ndimage.correlate(x, k[:, :, None], mode="mirror")


def glass_blur(x, c, rng, s):
    sigma, delta, iterations = c
    sig = sigma * s
    d = max(1, int(round(delta * s)))
    h, w = x.shape[:2]
    y = ndimage.gaussian_filter(x, (sig, sig, 0), mode="nearest", truncate=4.0)
    y = np.round(np.clip(y, 0, 1) * 255.0) / 255.0  # CIFAR-10-C shuffles a uint8 image
    rows = np.arange(h - d, d, -1)  # bottom-up and right-to-left, as in CIFAR-10-C
    cols = np.arange(w - d, d, -1)
    if rows.size and cols.size:
        pos = (rows[:, None] * w + cols[None, :]).ravel()
        perm = list(range(h * w))
        for _ in range(iterations):
            # offsets in [-d, d - 1]: the range CIFAR-10-C's randint(-d, d) draws from
            off = rng.integers(-d, d, size=(pos.size, 2))
            partner = (pos + off[:, 0] * w + off[:, 1]).tolist()
            for p, q in zip(pos.tolist(), partner):
                perm[p], perm[q] = perm[q], perm[p]
        y = y.reshape(h * w, -1)[np.asarray(perm)].reshape(x.shape)
    return ndimage.gaussian_filter(y, (sig, sig, 0), mode="nearest", truncate=4.0)


def motion_blur(x, c, rng, s):
    radius, sigma = c
    angle = rng.uniform(-45.0, 45.0)
    return apply_motion_blur(x, radius * s, sigma * s, angle)


def zoom_blur(x, c, rng, s):
    z_max = c
    n = int(round((z_max - 1.0) / 0.01))
    zooms = 1.0 + 0.01 * np.arange(n + 1)  # 1.00, 1.01, ..., z_max
    out = x.copy()  # the clean image counts twice (once more as zoom 1.00), as in CIFAR-10-C
    for z in zooms:
        out += centre_zoom(x, float(z))
    return out / (len(zooms) + 1)


# ----------------------------------------------------------------------------- weather


def snow(x, c, rng, s):
    loc, scale, zoom, threshold, radius, sigma, keep = c
    h, w = x.shape[:2]
    layer = rng.normal(loc, scale, size=(h, w, 1))
    layer = centre_zoom(layer, float(zoom) * max(s, 1.0))  # flakes of CIFAR's size, relatively
    layer[layer < threshold] = 0.0
    layer = np.clip(layer, 0.0, 1.0)
    angle = rng.uniform(-135.0, -45.0)
    layer = apply_motion_blur(layer, radius * s, sigma * s, angle)
    x = keep * x + (1.0 - keep) * np.maximum(x, _gray(x) * 1.5 + 0.5)
    return x + layer + np.rot90(layer, k=2)


def frost(x, c, rng, s):
    keep, amount = c
    h, w = x.shape[:2]
    tex = frost_texture(h, w, rng, s)
    if x.shape[-1] == 1:
        tex = _gray(tex)
    return keep * x + amount * tex


def fog(x, c, rng, s):
    amount, decay = c
    h, w = x.shape[:2]
    mapsize = 1 << max(1, (max(h, w) - 1).bit_length())  # smallest power of two >= H, W
    top = x.max()
    x = x + amount * plasma_fractal(mapsize, decay, rng)[:h, :w, None]
    return x * top / (top + amount)


# ----------------------------------------------------------------------------- elastic


def _affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix A with dst = A @ [src, 1] for three (x, y) point pairs."""
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def elastic_transform(x, c, rng, s):
    h, w, ch = x.shape
    size = min(h, w)  # CIFAR-10-C's IMSIZE
    alpha, sigma, jitter = (f * size for f in c)
    # random affine: three points around the centre, each moved by U(-jitter, jitter)
    cx, cy, half = w // 2, h // 2, size // 3
    src = np.array([[cx + half, cy + half], [cx + half, cy - half], [cx - half, cy - half]], float)
    dst = src + rng.uniform(-jitter, jitter, size=(3, 2))
    fwd = _affine_from_points(src, dst)  # (x, y) -> (x', y')
    inv = np.linalg.inv(np.vstack([fwd, [0.0, 0.0, 1.0]]))[:2]  # output -> input, (x, y)
    # in (row, col) index order: swap the x / y roles
    m = np.array([[inv[1, 1], inv[1, 0]], [inv[0, 1], inv[0, 0]]])
    off = np.array([inv[1, 2], inv[0, 2]])
    matrix = np.eye(3)
    matrix[:2, :2] = m
    x = ndimage.affine_transform(x, matrix, offset=np.append(off, 0.0), order=1, mode="mirror")
    # smooth random displacement field
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect", truncate=3) * alpha
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, (h, w)), sigma, mode="reflect", truncate=3) * alpha
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    out = np.empty_like(x)
    coords = np.stack([yy + dy, xx + dx])
    for k in range(ch):
        out[..., k] = ndimage.map_coordinates(x[..., k], coords, order=1, mode="reflect")
    return out
