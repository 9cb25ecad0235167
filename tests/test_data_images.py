"""CIFAR-10-C corruptions, the CIFAR-10-C loader, sets made locally, and the CIFAR-10 wrapper.

Where a closed form or an independent implementation exists (colorsys's HSV, scipy's affine
resampling, noise statistics), the corruption is checked against it; every corruption is
checked for shape, dtype, determinism, effect and (where defined) growth with severity.
"""
from __future__ import annotations

import colorsys
import json
import os
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from neuroadapt.data import corruptions as C
from neuroadapt.data import corruptions_spatial as SP
from neuroadapt.data import images as I
from neuroadapt.errors import DataError, InvalidInputError, ShapeError, UnsupportedOptionError

NAMES = list(C.CORRUPTION_NAMES)
# Pixel difference to the clean image does not grow from severity 1 to 5 by definition for:
# frost (the image weight falls 1 -> 0.75 while the texture weight rises 0.2 -> 0.45, so the
# image gets fainter rather than further away) and elastic_transform (the random affine shrinks
# from 8 % to 3 % of the side while the local displacement field grows).
NOT_MONOTONE = {"frost", "elastic_transform"}


def _natural(n, h, w, c=None, seed=0):
    """Smooth random images with some texture (closer to photos than white noise)."""
    rng = np.random.default_rng(seed)
    shape = (n, h, w) if c is None else (n, h, w, c)
    x = rng.random(shape)
    sig = (0, 1.2, 1.2) if c is None else (0, 1.2, 1.2, 0)
    x = 0.7 * ndimage.gaussian_filter(x, sig) + 0.3 * x
    x = (x - x.min()) / (x.max() - x.min())
    return np.round(x * 255).astype(np.uint8)


RGB32 = _natural(20, 32, 32, 3)
GRAY28 = _natural(3, 28, 28, seed=1)
GRAY8 = _natural(3, 8, 8, seed=2)


def _mad(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


# ----------------------------------------------------------------------------- every corruption


@pytest.mark.parametrize("name", NAMES)
def test_corruption_contract(name):
    fn = C.CORRUPTIONS[name]
    mads = {}
    for sev in (1, 5):
        y = C.corrupt(RGB32, name, sev, seed=0)
        assert y.shape == RGB32.shape and y.dtype == np.uint8
        assert np.array_equal(y, C.corrupt(RGB32, name, sev, seed=0)), "not deterministic"
        mads[sev] = _mad(y, RGB32)
        assert mads[sev] > 0.2, f"{name} severity {sev} barely changes the images"
        changed = (y != RGB32).reshape(len(y), -1).any(axis=1).mean()
        assert changed >= 0.9, f"{name} severity {sev} leaves {1 - changed:.0%} of images unchanged"
    if name not in NOT_MONOTONE:
        assert mads[5] > mads[1], f"{name}: severity 5 ({mads[5]:.2f}) not stronger than 1 ({mads[1]:.2f})"
    if name not in C.DETERMINISTIC:
        assert not np.array_equal(C.corrupt(RGB32[:4], name, 5, seed=1), C.corrupt(RGB32[:4], name, 5, seed=0))
    # float input in [0, 1] gives the same result as the uint8 image it came from
    assert np.array_equal(C.corrupt(RGB32[:3], name, 3, seed=5), C.corrupt(RGB32[:3] / 255.0, name, 3, seed=5))
    # single images of other sizes and layouts; same generator state -> same result
    for img in (GRAY28[0], GRAY8[0], GRAY28[1][..., None], _natural(1, 64, 48, 3)[0]):
        a = fn(img, 5, np.random.default_rng(7))
        assert a.shape == img.shape and a.dtype == np.uint8
        assert np.array_equal(a, fn(img, 5, np.random.default_rng(7)))
    assert _mad(fn(GRAY28[0], 5, np.random.default_rng(7)), GRAY28[0]) > 0.2


def test_corrupt_is_batch_split_invariant():
    whole = C.corrupt(RGB32[:6], "snow", 4, seed=11)
    parts = np.concatenate([C.corrupt(RGB32[:2], "snow", 4, seed=11),
                            C.corrupt(RGB32[2:6], "snow", 4, seed=11, start_index=2)])
    assert np.array_equal(whole, parts)
    one = C.CORRUPTIONS["snow"](RGB32[3], 4, np.random.default_rng(C.image_seed(11, 3)))
    assert np.array_equal(one, whole[3])


@settings(max_examples=15, deadline=None)
@given(name=st.sampled_from(NAMES), h=st.integers(4, 40), w=st.integers(4, 40),
       channels=st.sampled_from([None, 1, 3]), as_float=st.booleans(), sev=st.integers(1, 5))
def test_any_size_keeps_shape_and_dtype(name, h, w, channels, as_float, sev):
    img = _natural(1, h, w, channels, seed=h * 41 + w)[0]
    x = img / 255.0 if as_float else img
    y = C.CORRUPTIONS[name](x, sev, np.random.default_rng(0))
    assert y.shape == img.shape and y.dtype == np.uint8


# ----------------------------------------------------------------------------- definitions


def test_params_table_matches_reference_sheet():
    P = C.CIFAR10C_PARAMS
    assert len(P) == 15 and all(len(v) == 5 for v in P.values())
    assert P["gaussian_noise"] == (0.04, 0.06, 0.08, 0.09, 0.10)
    assert P["contrast"] == (0.75, 0.5, 0.4, 0.3, 0.15)
    assert P["snow"][4] == (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8)
    assert tuple(32 * f for f in P["elastic_transform"][4]) == pytest.approx((3.2, 0.96, 0.96))
    assert P["jpeg_compression"] == (80, 65, 58, 50, 40)


def test_contrast_and_brightness_closed_forms():
    x = RGB32[:3]
    for sev, c in enumerate(C.CIFAR10C_PARAMS["contrast"], 1):
        f = x / 255.0
        m = f.mean(axis=(1, 2), keepdims=True)
        want = np.round(np.clip((f - m) * c + m, 0, 1) * 255)
        assert np.array_equal(C.corrupt(x, "contrast", sev), want)
    # brightness against colorsys (an independent HSV implementation), pixel by pixel
    pix = np.concatenate([RGB32[0].reshape(-1, 3)[:200], [[0, 0, 0], [255, 255, 255], [250, 10, 3]]])
    img = pix.reshape(1, -1, 1, 3).repeat(4, axis=2).astype(np.uint8)  # (1, 203, 4, 3)
    for sev, c in ((1, 0.05), (5, 0.3)):
        got = C.corrupt(img, "brightness", sev)[0, :, 0].astype(int)
        for p, g in zip(pix, got):
            h, s, v = colorsys.rgb_to_hsv(*(p / 255.0))
            want = np.round(np.array(colorsys.hsv_to_rgb(h, s, min(v + c, 1.0))) * 255)
            assert np.abs(g - want).max() <= 1
    grey = GRAY28[0]
    want = np.round(np.minimum(grey / 255 + 0.3, 1) * 255)
    assert np.abs(C.brightness(grey, 5) - want).max() <= 1  # x V'/V vs x + c: rounding only


def test_noise_statistics():
    flat = np.full((64, 64, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    d = C.gaussian_noise(flat, 1, rng).astype(float) - 128
    assert abs(d.std() / 255 - 0.04) < 0.002 and abs(d.mean()) < 0.5
    d = C.shot_noise(flat, 5, rng).astype(float) / 255  # Poisson(c x)/c: variance x / c
    assert abs(d.var() - (128 / 255) / 50) / ((128 / 255) / 50) < 0.1
    y = C.impulse_noise(flat, 5, rng)
    hit = (y == 0) | (y == 255)
    assert abs(hit.mean() - 0.07) < 0.01 and abs((y == 255).sum() / hit.sum() - 0.5) < 0.1


def test_defocus_kernel_and_blur():
    k = SP.disk_kernel(0.3, 0.4)  # radius < 1: a 3x3 Gaussian of sigma 0.4 (CIFAR-10-C severity 1)
    g = np.exp(-np.array([1.0, 0.0, 1.0]) / (2 * 0.4**2))
    g /= g.sum()
    c = k.shape[0] // 2
    assert np.allclose(k[c - 1:c + 2, c - 1:c + 2], np.outer(g, g)) and np.isclose(k.sum(), 1)
    assert np.count_nonzero(SP.disk_kernel(1.5, 0.0) > 1e-12) == 9  # radius 1.5: the 3x3 square
    delta = np.zeros((32, 32), np.uint8)  # 32x32: the CIFAR-10-C scale, no rescaling
    delta[16, 16] = 255
    out = C.defocus_blur(delta, 1).astype(float)
    assert np.abs(out[15:18, 15:18] - 255 * np.outer(g, g)).max() <= 0.5 + 1e-9
    assert out.sum() == pytest.approx(255, abs=5)


def test_motion_blur_kernel_follows_the_angle():
    w, dy, dx = SP.motion_blur_kernel(6, 1.0, 0.0)
    assert len(w) == 13 and np.isclose(w.sum(), 1) and np.all(np.diff(w) < 0)
    assert np.array_equal(dx, np.arange(13)) and not dy.any()
    w, dy, dx = SP.motion_blur_kernel(6, 1.0, 90.0)
    assert np.array_equal(dy, np.arange(13)) and not dx.any()
    img = np.zeros((21, 21, 1))
    img[10, 10] = 1.0
    out = SP.apply_motion_blur(img, 6, 2.0, 0.0)[..., 0]  # out[y, x] = sum_i w_i in[y, x + i]
    assert np.isclose(out.sum(), 1) and out[10, 10] == out.max()
    assert out[10, :10].sum() > 0.5 and out[10, 11:].sum() == 0 and out[:10].sum() == 0


def test_zoom_is_centred_bilinear():
    x = _natural(1, 17, 23, 2)[0] / 255.0
    for z in (1.03, 1.25):
        cy, cx = 8.0, 11.0
        ref = ndimage.affine_transform(x, [1 / z, 1 / z, 1], offset=[cy - cy / z, cx - cx / z, 0],
                                       order=1, mode="nearest")
        assert np.allclose(SP.centre_zoom(x, z), ref, atol=1e-12)
    img = RGB32[0]
    flipped = C.zoom_blur(img[:, ::-1], 4)
    assert np.array_equal(flipped, C.zoom_blur(img, 4)[:, ::-1])  # centred: commutes with flips
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert np.array_equal(C.zoom_blur(flat, 5), flat)


def test_glass_blur_swaps_are_a_local_permutation():
    x = RGB32[0] / 255.0
    y = SP.glass_blur(x, (0.0, 1, 2), np.random.default_rng(0), 1.0)  # no Gaussian blur
    assert np.allclose(np.sort(y.reshape(-1, 3), axis=0), np.sort(x.reshape(-1, 3), axis=0))
    assert not np.allclose(y, x)


def test_plasma_and_frost_textures():
    rng = np.random.default_rng(0)
    p = SP.plasma_fractal(32, 3.0, rng)
    assert p.shape == (32, 32) and p.min() == 0 and p.max() == 1
    t = SP.frost_texture(32, 32, np.random.default_rng(0))
    assert t.shape == (32, 32, 3) and 0 <= t.min() and t.max() <= 1 and 0.3 < t.mean() < 0.7
    assert np.array_equal(t, SP.frost_texture(32, 32, np.random.default_rng(0)))


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("severity", [0, 6, 2.5, True, "3", None])
def test_bad_severity(severity):
    with pytest.raises(InvalidInputError, match="severity"):
        C.corrupt(RGB32[:1], "contrast", severity)
    with pytest.raises(InvalidInputError, match="severity"):
        C.gaussian_noise(RGB32[0], severity, np.random.default_rng(0))


@pytest.mark.parametrize("shape", [(32,), (32, 32, 2), (32, 32, 4), (3, 3), (32, 3, 3), (2, 32, 32, 3, 1)])
def test_bad_image_shapes(shape):
    with pytest.raises(ShapeError):
        C.fog(np.zeros(shape, np.uint8), 1, np.random.default_rng(0))


def test_bad_batches_values_and_names():
    with pytest.raises(ShapeError, match=r"images\[None\]"):
        C.corrupt(RGB32[0], "fog", 1)  # a single (H, W, 3) image is not a batch
    with pytest.raises(ShapeError):
        C.corrupt(np.zeros((0, 32, 32, 3), np.uint8), "fog", 1)
    with pytest.raises(InvalidInputError, match="dtype"):
        C.corrupt(RGB32.astype(np.int64), "fog", 1)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        C.corrupt(RGB32.astype(np.float32), "fog", 1)
    bad = RGB32[:2] / 255.0
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        C.corrupt(bad, "fog", 1)
    with pytest.raises(UnsupportedOptionError, match="gaussian_noise"):
        C.corrupt(RGB32, "speckle", 1)
    with pytest.raises(InvalidInputError, match="Generator"):
        C.snow(RGB32[0], 1)
    with pytest.raises(InvalidInputError, match="Generator"):
        C.snow(RGB32[0], 1, rng=np.random.RandomState(0))
    with pytest.raises(InvalidInputError, match="seed"):
        C.corrupt(RGB32, "fog", 1, seed=-1)


# ----------------------------------------------------------------------------- CIFAR-10-C files


def _listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else None


def test_make_and_load_round_trip(tmp_path):
    imgs, labels = RGB32[:6], np.arange(6) % 3
    out = tmp_path / "c"
    info = I.make_corrupted_set(imgs, labels, out, corruptions=["gaussian_noise", "contrast"], seed=3)
    assert _listing(out) == ["contrast.npy", "gaussian_noise.npy", "info.json", "labels.npy"]
    assert info["severities"] == [1, 2, 3, 4, 5] and info["n_per_severity"] == 6
    arr = np.load(out / "gaussian_noise.npy")
    assert arr.shape == (30, 32, 32, 3) and arr.dtype == np.uint8
    assert np.load(out / "labels.npy").shape == (30,)
    for sev in (1, 3, 5):
        x, y = I.load_cifar10c(out, "gaussian_noise", sev)
        want = C.corrupt(imgs, "gaussian_noise", sev, seed=np.random.SeedSequence(3, spawn_key=(0, sev)))
        assert np.array_equal(x, want) and np.array_equal(y, labels) and y.dtype == np.int64
    assert I.cifar10c_corruptions(out) == ["gaussian_noise", "contrast"]
    # same seed, same set
    I.make_corrupted_set(imgs, labels, tmp_path / "d", corruptions=["gaussian_noise"], seed=3)
    assert np.array_equal(np.load(tmp_path / "d" / "gaussian_noise.npy"), arr)


def test_grey_subset_of_severities(tmp_path):
    out = tmp_path / "digits_c"
    I.make_corrupted_set(GRAY8, np.array([7, 1, 2]), out, severities=(5, 2), corruptions=["pixelate"])
    assert json.loads((out / "info.json").read_text())["severities"] == [2, 5]
    x, y = I.load_cifar10c(out, "pixelate", 5)
    assert x.shape == (3, 8, 8) and np.array_equal(y, [7, 1, 2])
    assert np.array_equal(x, C.corrupt(GRAY8, "pixelate", 5))
    with pytest.raises(DataError, match="severities"):
        I.load_cifar10c(out, "pixelate", 1)


def _released_layout(root, n=4, dtype=np.uint8, labels_n=None, total=None):
    root.mkdir(exist_ok=True)
    total = 5 * n if total is None else total
    arr = (np.arange(total)[:, None, None, None] * np.ones((1, 32, 32, 3))).astype(dtype)
    np.save(root / "fog.npy", arr)
    np.save(root / "labels.npy", (np.arange(labels_n or total) % 10).astype(np.uint8))


def test_load_released_layout(tmp_path):
    _released_layout(tmp_path, n=4)
    x, y = I.load_cifar10c(tmp_path, "fog", 2)  # rows [4, 8)
    assert x.shape == (4, 32, 32, 3) and x.dtype == np.uint8
    assert np.array_equal(x[:, 0, 0, 0], [4, 5, 6, 7]) and np.array_equal(y, [4, 5, 6, 7])


def test_loader_errors(tmp_path):
    with pytest.raises(DataError, match="Zenodo"):
        I.load_cifar10c(tmp_path / "nope", "fog", 1)
    _released_layout(tmp_path)
    with pytest.raises(DataError, match="snow.npy not found"):
        I.load_cifar10c(tmp_path, "snow", 1)
    with pytest.raises(UnsupportedOptionError):
        I.load_cifar10c(tmp_path, "rain", 1)
    for sev in (0, 6):
        with pytest.raises(InvalidInputError):
            I.load_cifar10c(tmp_path, "fog", sev)
    bad = tmp_path / "float"
    _released_layout(bad, dtype=np.float32)
    with pytest.raises(DataError, match="uint8"):
        I.load_cifar10c(bad, "fog", 1)
    odd = tmp_path / "odd"
    _released_layout(odd, total=23)
    with pytest.raises(DataError, match="multiple"):
        I.load_cifar10c(odd, "fog", 1)
    mism = tmp_path / "mism"
    _released_layout(mism, labels_n=7)
    with pytest.raises(DataError, match="labels"):
        I.load_cifar10c(mism, "fog", 1)
    nolab = tmp_path / "nolab"
    _released_layout(nolab)
    os.remove(nolab / "labels.npy")
    with pytest.raises(DataError, match="labels.npy not found"):
        I.load_cifar10c(nolab, "fog", 1)
    junk = tmp_path / "junk"
    _released_layout(junk)
    (junk / "fog.npy").write_bytes(b"not an npy file")
    with pytest.raises(DataError, match="readable"):
        I.load_cifar10c(junk, "fog", 1)
    pick = tmp_path / "pickled"
    _released_layout(pick)
    np.save(pick / "fog.npy", np.array([{"a": 1}] * 5, dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="readable"):
        I.load_cifar10c(pick, "fog", 1)


def test_make_set_bad_inputs_leave_nothing(tmp_path, monkeypatch):
    out = tmp_path / "x"
    cases = [
        (UnsupportedOptionError, dict(corruptions=["fog", "rain"])),
        (InvalidInputError, dict(severities=(1, 6))),
        (InvalidInputError, dict(severities=(0,))),
        (InvalidInputError, dict(severities=(2, 2))),
        (ShapeError, dict(labels=np.zeros(5, int))),
        (InvalidInputError, dict(labels=np.full(6, -1))),
        (ShapeError, dict(images=np.zeros((6, 32, 32, 5), np.uint8))),
        (InvalidInputError, dict(images=RGB32[:6].astype(np.float32))),
    ]
    for err, kw in cases:
        args = dict(images=RGB32[:6], labels=np.zeros(6, int), out_dir=out, corruptions=["fog"])
        args.update(kw)
        with pytest.raises(err):
            I.make_corrupted_set(**args)
        assert not out.exists(), kw
    # a failure half-way (second corruption) removes the staged files and the new folder
    real = C.corrupt

    def failing(images, name, *a, **k):
        if name == "contrast":
            raise RuntimeError("disk full")
        return real(images, name, *a, **k)

    monkeypatch.setattr(I, "corrupt", failing)
    with pytest.raises(RuntimeError):
        I.make_corrupted_set(RGB32[:2], np.zeros(2, int), out, corruptions=["fog", "contrast"])
    assert not out.exists()
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "readme.txt").write_text("mine")
    with pytest.raises(RuntimeError):
        I.make_corrupted_set(RGB32[:2], np.zeros(2, int), keep, corruptions=["fog", "contrast"])
    assert _listing(keep) == ["readme.txt"]
    monkeypatch.undo()
    # an existing set is not replaced unless asked
    I.make_corrupted_set(RGB32[:2], np.zeros(2, int), keep, corruptions=["fog"], severities=(1,))
    with pytest.raises(DataError, match="overwrite"):
        I.make_corrupted_set(RGB32[:2], np.zeros(2, int), keep, corruptions=["fog"], severities=(1,))
    I.make_corrupted_set(RGB32[:3], np.ones(3, int), keep, corruptions=["fog"], severities=(1,), overwrite=True)
    assert _listing(keep) == ["fog.npy", "info.json", "labels.npy", "readme.txt"]
    assert I.load_cifar10c(keep, "fog", 1)[0].shape == (3, 32, 32, 3)


# ----------------------------------------------------------------------------- CIFAR-10


def test_cifar10_missing_names_folder(tmp_path):
    with pytest.raises(DataError) as e:
        I.cifar10(tmp_path)
    msg = str(e.value)
    assert "cifar-10-batches-py" in msg and str(tmp_path) in msg and "download=True" in msg
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match="tar xzf"):
        I.cifar10(tmp_path)
    with pytest.raises(DataError):
        I.cifar10(None)


def test_cifar10_reads_torchvision_layout(tmp_path, monkeypatch):
    """Small batches in the python-pickle layout; torchvision's md5 check is bypassed."""
    import torchvision.datasets.cifar as tvc

    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = {}
    for name in I.CIFAR10_FILES[:-1]:
        x = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
        data[name] = x
        with open(folder / name, "wb") as f:
            pickle.dump({"data": x, "labels": [1, 2, 3]}, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    monkeypatch.setattr(tvc.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tvc, "check_integrity", lambda *a, **k: True)
    x, y = I.load_cifar10(tmp_path, train=False)
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8 and np.array_equal(y, [1, 2, 3])
    assert np.array_equal(x, data["test_batch"].reshape(3, 3, 32, 32).transpose(0, 2, 3, 1))
    x, y = I.load_cifar10(folder, train=True)  # the batches folder itself also works
    assert x.shape == (15, 32, 32, 3)
    monkeypatch.setattr(tvc.CIFAR10, "_check_integrity", lambda self: False)
    with pytest.raises(DataError, match="corrupted"):
        I.cifar10(tmp_path)
