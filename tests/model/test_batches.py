"""Training batches keyed by seed and epoch (agelens.model.batches)."""

from __future__ import annotations

import numpy as np

from agelens.model.batches import epoch_keyed_batches, key_random_layers_to_epoch, steps_per_epoch

N, SIDE = 21, 8


def _data():
    x = np.random.default_rng(0).integers(0, 256, (N, SIDE, SIDE, 3), dtype=np.uint8)
    return x, {"row": np.arange(N, dtype=np.float32)[:, None]}, np.linspace(0.5, 1.5, N).astype(np.float32)


def _epochs(first: int, epochs: int, augment: float = 1.0, seed: int = 5) -> list[list[tuple]]:
    """Each epoch's batches as (pixels, rows, weights), split at ``steps_per_epoch``."""
    x, y, w = _data()
    ds = epoch_keyed_batches(
        x, y, w, batch_size=4, augment=augment, seed=seed, first_epoch=first, epochs=epochs
    )
    batches = [(p.numpy(), t["row"].numpy().ravel().astype(int), k.numpy()) for p, t, k in ds]
    steps = steps_per_epoch(N, 4)
    assert len(batches) == steps * (epochs - first)
    return [batches[i : i + steps] for i in range(0, len(batches), steps)]


def test_every_epoch_holds_every_photo_once_with_its_targets_and_weight() -> None:
    x, _, w = _data()
    for epoch in _epochs(0, 3, augment=0.0):
        rows = np.concatenate([r for _, r, _ in epoch])
        assert sorted(rows) == list(range(N))
        for pixels, r, weights in epoch:
            np.testing.assert_array_equal(pixels, x[r].astype(np.float32))  # augment 0: the photos as given
            np.testing.assert_array_equal(weights, w[r])


def test_epochs_differ_in_order_and_augmentation() -> None:
    e0, e1 = _epochs(0, 2)
    assert not np.array_equal(np.concatenate([r for _, r, _ in e0]), np.concatenate([r for _, r, _ in e1]))
    x = _data()[0]
    pixels, rows, _ = e0[0]
    assert not np.array_equal(pixels, x[rows].astype(np.float32))
    assert pixels.dtype == np.float32 and pixels.min() >= 0 and pixels.max() <= 255


def test_an_epoch_is_the_same_batches_whichever_epoch_the_run_started_at() -> None:
    """What makes a resumed run the uninterrupted one: epoch 2 alone equals epoch 2 of 0..2."""
    whole, alone = _epochs(0, 3), _epochs(2, 3)
    for (pa, ra, wa), (pb, rb, wb) in zip(whole[2], alone[0], strict=True):
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(wa, wb)


def test_another_seed_gives_other_batches() -> None:
    a, b = _epochs(0, 1, seed=5)[0], _epochs(0, 1, seed=6)[0]
    assert not np.array_equal(np.concatenate([r for _, r, _ in a]), np.concatenate([r for _, r, _ in b]))


def test_dropout_draws_are_keyed_to_the_epoch_and_keep_their_seed() -> None:
    import keras

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dropout(0.5, seed=11)(inputs))
    state = next(v for v in model.non_trainable_variables if v.path.endswith("seed_generator_state"))
    x = np.ones((2, 4), np.float32)
    model(x, training=True)  # one draw advances the counter
    key_random_layers_to_epoch(model, 3)
    first = np.asarray(model(x, training=True))
    model(x, training=True)
    key_random_layers_to_epoch(model, 3)
    np.testing.assert_array_equal(np.asarray(model(x, training=True)), first)  # same epoch, same mask
    assert int(np.asarray(state.value)[0]) == 11
    key_random_layers_to_epoch(model, 4)
    assert not np.array_equal(np.asarray(model(x, training=True)), first)
