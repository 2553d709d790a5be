import keras
import numpy as np
import pytest

from keras_caps import CapsNet, MarginLoss, margin_loss, reconstruction_loss
from tests.helpers import np_caps_loss


def test_margin_and_reconstruction_match_reference():
    rng = np.random.default_rng(0)
    y = np.eye(10)[rng.integers(0, 10, 8)]
    lengths = rng.uniform(0, 1, (8, 10))
    x, x_recon = rng.uniform(0, 1, (8, 28, 28, 1)), rng.uniform(0, 1, (8, 28, 28, 1))
    margin = keras.ops.convert_to_numpy(margin_loss(y, lengths)).mean()
    recon = keras.ops.convert_to_numpy(reconstruction_loss(x, x_recon)).mean()
    np.testing.assert_allclose(margin + 0.392 * recon, np_caps_loss(y, lengths, x, x_recon, 0.392), rtol=1e-5)
    np.testing.assert_allclose(margin, np_caps_loss(y, lengths, x, x, 0.0), rtol=1e-5)


def test_margin_loss_known_values():
    # Right class at length 0.9 and others at 0.1 cost nothing.
    assert float(keras.ops.sum(margin_loss([[0, 1.0]], [[0.1, 0.9]]))) == 0.0
    # Present class at 0.4: (0.9-0.4)^2; absent at 0.6: 0.5*(0.6-0.1)^2.
    value = float(keras.ops.sum(margin_loss([[1.0, 0]], [[0.4, 0.6]])))
    assert value == pytest.approx(0.25 + 0.125, rel=1e-6)


def test_margin_loss_as_keras_loss_round_trips():
    loss = MarginLoss(m_plus=0.8)
    clone = MarginLoss.from_config(loss.get_config())
    y, p = np.eye(3)[[0, 2]], np.array([[0.5, 0.2, 0.3], [0.1, 0.1, 0.95]])
    assert float(clone(y, p)) == pytest.approx(float(loss(y, p)))
    assert clone.m_plus == 0.8


def test_capsnet_loss_equals_reference_caps_loss():
    """The model's total loss is the seed's caps_loss on its own outputs."""
    model = CapsNet(input_shape=(28, 28, 1), classes=10, conv_filters=16, primary_channels=4)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, (5, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 10, 5)
    y = np.eye(10)[labels]
    out = model.forward(x, labels)
    pred = model(x)
    loss = float(model.compute_loss(x, labels, pred, training=True))
    expected = np_caps_loss(
        y,
        keras.ops.convert_to_numpy(out["scores"]).astype("float64"),
        x,
        keras.ops.convert_to_numpy(out["reconstruction"]).astype("float64"),
        0.392,
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def np_authors_margin(y, lengths):
    """Sarasra/models research/capsules `_margin_loss` (margin 0.4 around 0.5, downweight 0.5),
    then `evaluate`'s reduce_mean over the batch and the classes."""
    errors = lengths - 0.5
    positive = y * np.clip(0.4 - errors, 0, None) ** 2
    negative = (1 - y) * np.clip(errors + 0.4, 0, None) ** 2
    return np.mean(0.5 * positive + 0.5 * 0.5 * negative)


def test_the_authors_loss_form_matches_their_code_and_weighs_reconstruction_20x():
    rng = np.random.default_rng(2)
    y = np.eye(10)[rng.integers(0, 10, 6)]
    lengths = rng.uniform(0, 1, (6, 10))
    form = dict(present_weight=0.5, down_weight=0.25, class_reduction="mean")
    authors = keras.ops.convert_to_numpy(margin_loss(y, lengths, **form)).mean()
    np.testing.assert_allclose(authors, np_authors_margin(y, lengths), rtol=1e-5)
    ports = keras.ops.convert_to_numpy(margin_loss(y, lengths)).mean()
    np.testing.assert_allclose(authors * 20, ports, rtol=1e-5)  # 0.5 / 10 classes
    clone = MarginLoss.from_config(MarginLoss(**form).get_config())
    assert float(clone(y, lengths)) == pytest.approx(float(authors), rel=1e-5)
    with pytest.raises(ValueError, match="`class_reduction` must be 'sum' or 'mean'"):
        MarginLoss(class_reduction="max")


def test_capsnet_with_the_authors_loss_form():
    """The model's loss: the authors' margin plus lam_recon times the mean squared error
    (0.0005 x the per-image sum over 784 pixels = 0.392 x the mean, as in their code)."""
    model = CapsNet(input_shape=(28, 28, 1), classes=10, conv_filters=16, primary_channels=4, loss_form="authors")
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 10, 4)
    out = model.forward(x, labels)
    loss = float(model.compute_loss(x, labels, model(x), training=True))
    scores = keras.ops.convert_to_numpy(out["scores"]).astype("float64")
    recon = keras.ops.convert_to_numpy(out["reconstruction"]).astype("float64")
    expected = np_authors_margin(np.eye(10)[labels], scores) + 0.0005 * np.mean(((recon - x) ** 2).sum(axis=(1, 2, 3)))
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert CapsNet.from_config(model.get_config()).loss_form == "authors"
    with pytest.raises(ValueError, match="`loss_form` must be one of ports, authors"):
        CapsNet(loss_form="mine")


def test_the_authors_loss_is_the_ports_with_reconstruction_at_7_84_scaled_by_a_twentieth():
    """On 10 classes the authors' margin is 1/20 of the ports': their loss is 0.05 x the
    ports' with `lam_recon` 20 x 0.392 = 7.84. Adam's steps do not change with the loss's
    scale (up to its epsilon), so `--loss_form authors` trains as `--lam_recon 7.84` does."""
    small = dict(input_shape=(28, 28, 1), classes=10, conv_filters=16, primary_channels=4)
    authors = CapsNet(**small, loss_form="authors")
    ports = CapsNet(**small, lam_recon=7.84)
    ports.set_weights(authors.get_weights())
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, (4, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 10, 4)
    loss_authors = float(authors.compute_loss(x, labels, authors(x), training=True))
    loss_ports = float(ports.compute_loss(x, labels, ports(x), training=True))
    np.testing.assert_allclose(loss_authors, 0.05 * loss_ports, rtol=1e-5)
