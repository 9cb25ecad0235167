"""scikit-learn digits as spike trains: split, encodings, resampling, own data files."""
import numpy as np
import pytest
import torch

from neuroadapt.data import dataset_names, get_dataset_class, register_dataset
from neuroadapt.data.digits import (DigitsSpikes, latency_encode, load_digit_images, rate_encode, resample,
                                    stratified_split)
from neuroadapt.errors import ConfigError, DataError, InvalidInputError, ShapeError


@pytest.fixture(scope="module")
def digits():
    return DigitsSpikes(n_steps=10)


def test_registry():
    assert "digits" in dataset_names()
    assert get_dataset_class("digits") is DigitsSpikes
    with pytest.raises(ConfigError, match="known datasets: .*digits"):
        get_dataset_class("cifar-1000")
    register_dataset("digits_alias", "neuroadapt.data.digits:DigitsSpikes")
    assert get_dataset_class("digits_alias") is DigitsSpikes


def test_bundled_digits_split_is_stratified_and_deterministic(digits):
    assert digits.num_samples("train") + digits.num_samples("test") == 1797
    assert digits.n_inputs == 64 and digits.n_classes == 10
    test_counts = torch.bincount(digits.labels("test"), minlength=10)
    all_counts = test_counts + torch.bincount(digits.labels("train"), minlength=10)
    assert torch.all((test_counts.float() - 0.2 * all_counts.float()).abs() <= 0.5)
    images, labels = load_digit_images()
    tr1, te1 = stratified_split(labels, 0.2, seed=0)
    tr2, te2 = stratified_split(labels, 0.2, seed=0)
    _, te3 = stratified_split(labels, 0.2, seed=1)
    assert np.array_equal(te1, te2) and np.array_equal(tr1, tr2) and not np.array_equal(te1, te3)
    assert not set(tr1) & set(te1) and len(tr1) + len(te1) == len(labels)
    assert images.min() == 0.0 and images.max() == 1.0


def test_rate_encoding_replays_with_generator(digits):
    idx = torch.arange(5)
    x1, y1 = digits.batch("train", idx, torch.Generator().manual_seed(7))
    x2, _ = digits.batch("train", idx, torch.Generator().manual_seed(7))
    x3, _ = digits.batch("train", idx, torch.Generator().manual_seed(8))
    assert x1.shape == (10, 5, 64) and x1.dtype == torch.float32 and y1.shape == (5,)
    assert torch.equal(x1, x2) and not torch.equal(x1, x3)
    assert set(x1.unique().tolist()) <= {0.0, 1.0}
    # spike rate follows intensity: black pixels never fire, white ones always (gain 1)
    p = torch.tensor([[0.0, 1.0, 0.5]]).repeat(400, 1)
    spikes = rate_encode(p, 20, torch.Generator().manual_seed(0))
    rate = spikes.mean((0, 1))
    assert rate[0] == 0 and rate[1] == 1 and abs(rate[2] - 0.5) < 0.02


def test_latency_encoding_is_deterministic_and_exact():
    p = torch.tensor([[1.0, 0.5, 0.0, 0.05]])
    spikes = latency_encode(p, 11, threshold=0.1)
    assert spikes.shape == (11, 1, 4)
    assert spikes[:, 0, 0].nonzero().flatten().tolist() == [0]   # brightest: first step
    assert spikes[:, 0, 1].nonzero().flatten().tolist() == [5]   # half: (1 - 0.5) * 10
    assert spikes[:, 0, 2].sum() == 0 and spikes[:, 0, 3].sum() == 0  # at/below threshold: silent
    d = DigitsSpikes(n_steps=8, encoding="latency", max_train=4, max_test=4)
    a, _ = d.batch("test", torch.arange(4))
    b, _ = d.batch("test", torch.arange(4), torch.Generator().manual_seed(99))
    assert torch.equal(a, b) and torch.all(a.sum(0) <= 1)


def test_resample_and_resolution():
    img = torch.rand(3, 8, 8)
    assert resample(img, 8) is img
    assert resample(img, 16).shape == (3, 16, 16)
    d = DigitsSpikes(n_steps=4, resolution=12, max_train=8, max_test=8)
    assert d.n_inputs == 144 and d.batch("train", torch.arange(2), torch.Generator())[0].shape == (4, 2, 144)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="dataset.encoding"):
        DigitsSpikes(encoding="phase")
    with pytest.raises(ConfigError, match="n_steps"):
        DigitsSpikes(n_steps=0)
    with pytest.raises(ConfigError, match="test_fraction"):
        DigitsSpikes(test_fraction=1.0)
    with pytest.raises(ShapeError):
        rate_encode(torch.rand(2, 3, 4), 5)
    with pytest.raises(InvalidInputError):
        rate_encode(torch.tensor([[float("nan")]]), 5)


def test_own_npz_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((30, 64)).astype(np.float32)      # flat (N, H*W) is accepted
    np.savez(tmp_path / "digits.npz", images=images, labels=np.arange(30) % 10)
    d = DigitsSpikes(root=tmp_path, n_steps=3)
    assert d.num_samples("train") + d.num_samples("test") == 30 and d.n_inputs == 64

    with pytest.raises(DataError, match="not found"):
        DigitsSpikes(root=tmp_path / "missing")
    np.savez(tmp_path / "bad.npz", pictures=images)
    with pytest.raises(DataError, match="missing array"):
        load_digit_images(tmp_path / "bad.npz")
    np.savez(tmp_path / "range.npz", images=images * 16, labels=np.arange(30) % 10)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        load_digit_images(tmp_path / "range.npz")
    images[3, 5] = np.inf
    np.savez(tmp_path / "inf.npz", images=images, labels=np.arange(30) % 10)
    with pytest.raises(InvalidInputError, match="sample 3"):
        load_digit_images(tmp_path / "inf.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_digit_images(tmp_path / "junk.npz")
    np.savez(tmp_path / "shape.npz", images=rng.random((30, 63)), labels=np.arange(30) % 10)
    with pytest.raises(ShapeError, match="square"):
        load_digit_images(tmp_path / "shape.npz")
