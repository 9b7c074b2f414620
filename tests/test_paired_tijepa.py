"""TI-JEPA: the cross-attention fusion, the energy, frozen encoders, masks, bad input and a tiny recipe."""
import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polyjepa.errors import UserError

needs_text = pytest.mark.skipif(importlib.util.find_spec("tokenizers") is None,
                                reason="the text tower needs the optional 'tokenizers' package (extra 'text')")


def _tiny_method(freeze=True, seed=0, grid_side=4):
    from polyjepa.masks import MultiBlockMasker
    from polyjepa.models.encoder import Backbone, vit_encoder
    from polyjepa.models.predictor import MaskTokenPredictor
    from polyjepa.paired.text import TextTransformer
    from polyjepa.paired.tijepa import TIJEPA, CrossAttentionFusion
    from polyjepa.tokenizers.patch2d import PatchEmbed2D

    torch.manual_seed(seed)
    tok = PatchEmbed2D(image_size=(2 * grid_side, 2 * grid_side), patch_size=2, in_channels=3, dim=16)
    image = Backbone(tok, vit_encoder("micro", dim=16, depth=1, heads=2)).requires_grad_(False)  # as an EMA copy
    text = TextTransformer(vocab_size=20, max_len=6, dim=12, depth=1, heads=2)
    fusion = CrossAttentionFusion(dim=16, text_dim=12, depth=1, heads=2)
    predictor = MaskTokenPredictor(in_dim=16, dim=8, depth=1, heads=2, pos_embed=tok.position_embedding(8))
    masker = MultiBlockMasker(grid=tok.grid, n_targets=2, min_keep=2)
    return TIJEPA(image_encoder=image, text_encoder=text, fusion=fusion, predictor=predictor, masker=masker,
                  freeze_encoders=freeze)


def _pairs_data(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 8, 8, generator=g)
    ids = torch.randint(2, 20, (n, 2, 6), generator=g)
    ids[:, :, 4:] = 0                                                   # padding at the end
    return images, ids


def test_cross_attention_equals_a_direct_per_head_computation():
    from polyjepa.paired.tijepa import CrossAttentionLayer

    torch.manual_seed(0)
    layer = CrossAttentionLayer(16, 12, heads=4)
    for p in layer.parameters():                                        # non-zero biases too
        torch.nn.init.normal_(p, std=0.3)
    x, t = torch.randn(3, 5, 16), torch.randn(3, 7, 12)
    keep = torch.ones(3, 7, dtype=torch.bool)
    keep[0, 4:] = False
    keep[2] = False                                                     # no real token at all
    out = layer.attend(x, t, keep)
    q = F.layer_norm(x, (16,), layer.norm_x.weight, layer.norm_x.bias, 1e-6) @ layer.q.weight.T + layer.q.bias
    kv = F.layer_norm(t, (12,), layer.norm_t.weight, layer.norm_t.bias, 1e-6) @ layer.kv.weight.T + layer.kv.bias
    k, v = kv[..., :16], kv[..., 16:]
    for b in range(3):
        heads = []
        for h in range(4):
            sl = slice(4 * h, 4 * h + 4)
            scores = q[b, :, sl] @ k[b, :, sl].T / 2.0                   # sqrt(head size 4)
            scores = scores.masked_fill(~keep[b], float("-inf"))
            heads.append(torch.softmax(scores, -1) @ v[b, :, sl] if keep[b].any() else torch.zeros(5, 4))
        want = torch.cat(heads, -1) @ layer.proj.weight.T + layer.proj.bias
        if not keep[b].any():
            want = torch.zeros(5, 16)                                   # no read-out without text
        assert torch.allclose(out[b], want, atol=1e-5), b
    assert torch.allclose(layer(x, t, keep), x + out + layer.mlp(layer.norm2(x + out)), atol=1e-6)


def test_one_text_token_adds_one_vector_to_every_patch_and_a_zero_token_adds_nothing():
    from polyjepa.paired.tijepa import CrossAttentionFusion

    torch.manual_seed(1)
    fusion = CrossAttentionFusion(dim=16, text_dim=12, depth=1, heads=2)
    layer = fusion.layers[0]
    x, t = torch.randn(2, 9, 16), torch.randn(2, 1, 12)
    keep = torch.ones(2, 1, dtype=torch.bool)
    out = layer.attend(x, t, keep)
    v = (F.layer_norm(t, (12,), eps=1e-6) @ layer.kv.weight.T + layer.kv.bias)[..., 16:]
    want = v @ layer.proj.weight.T + layer.proj.bias                   # (2, 1, 16): W_o (W_v LN(t) + b_v) + b_o
    assert torch.allclose(out, want.expand(-1, 9, -1), atol=1e-5)      # the same vector for every patch
    assert out.abs().max() > 1e-4
    # a single all-zero token: LN(0) = 0 and the biases start at zero, so the attention adds nothing
    zero = torch.zeros(2, 1, 12)
    assert torch.equal(layer.attend(x, zero, keep), torch.zeros_like(x))
    no_text = x + layer.mlp(layer.norm2(x))                            # the layer without its attention branch
    assert torch.allclose(fusion(x, zero, keep), no_text, atol=1e-6)
    # no real token at all: the text's values do not matter
    none = torch.zeros(2, 1, dtype=torch.bool)
    assert torch.allclose(fusion(x, t, none), no_text, atol=1e-6)
    assert torch.allclose(fusion(x, 100 * torch.randn(2, 1, 12), none), no_text, atol=1e-6)


def test_loss_and_energy_match_an_independent_computation():
    method = _tiny_method().eval()
    images, ids = _pairs_data(4)
    ids = ids[:, 0]
    g = torch.Generator().manual_seed(3)
    ci, ti = method.masker(4, g)
    out = method.loss({"images": images, "ids": ids, "context_idx": ci, "target_idx": ti})
    # direct: one sample at a time, explicit indexing and normalisation
    want, per_pair = [], []
    for b in range(4):
        t, _ = method.text_encoder.tokens(ids[b:b + 1])
        keep = ids[b:b + 1] != 0
        tokens = method.image_encoder.tokenizer(images[b:b + 1])
        z = method.image_encoder.encoder(tokens[:, ci[b]])
        h = method.image_encoder.encoder(tokens)
        s = method.target_fusion(h, t, keep)
        s = (s - s.mean(-1, keepdim=True)) / torch.sqrt(s.var(-1, unbiased=False, keepdim=True) + 1e-5)
        p = method.predictor(method.fusion(z, t, keep), ci[b:b + 1], ti[b:b + 1])[0]  # (M, Nt, D)
        sq = (p - s[0][ti[b]]) ** 2
        want.append(sq)
        per_pair.append(float(sq.detach().mean()))
    assert out["loss"].item() == pytest.approx(float(torch.stack(want).mean()), rel=1e-5)
    # the energy of each pair with its own masks is that pair's squared error
    for b in range(4):
        t, keep = method.text_tokens(ids[b:b + 1])
        h = method.image_encoder(images[b:b + 1])
        z = method.image_encoder(images[b:b + 1], keep_idx=ci[b:b + 1])
        e = method.energy(z, method.targets(h, t, keep), t, keep, ci[b:b + 1], ti[b:b + 1])
        assert e.item() == pytest.approx(per_pair[b], rel=1e-5)


@pytest.mark.parametrize("freeze", [True, False])
def test_frozen_encoders_get_no_gradient_and_do_not_change(freeze):
    from polyjepa.paired.tijepa_run import train_tijepa

    method = _tiny_method(freeze=freeze)
    images, ids = _pairs_data(12)
    enc = {k: v.clone() for k, v in {**dict(method.image_encoder.named_parameters(prefix="i")),
                                     **dict(method.text_encoder.named_parameters(prefix="t"))}.items()}
    fus = {k: v.clone() for k, v in method.fusion.named_parameters()}
    tgt = {k: v.clone() for k, v in method.target_fusion.named_parameters()}
    g = torch.Generator().manual_seed(0)
    method.attach(images, ids)
    method.target_fusion.requires_grad_(True)    # would collect gradients if the target path kept a graph
    out = method.loss(method.make_batch(torch.arange(8)[:, None], g))
    out["loss"].backward()
    method.target_fusion.requires_grad_(False)
    for m in (method.fusion, method.predictor):
        for name, p in m.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad is None for p in method.target_fusion.parameters())
    encoder_grads = [p.grad for m in (method.image_encoder, method.text_encoder) for p in m.parameters()]
    if freeze:
        assert all(gr is None for gr in encoder_grads)
    else:
        assert any(gr is not None and gr.abs().sum() > 0 for gr in encoder_grads)
    method.zero_grad(set_to_none=True)
    train_tijepa(method, images, ids, seed=0, steps=3, batch_size=8, lr=1e-2)
    now = {**dict(method.image_encoder.named_parameters(prefix="i")),
           **dict(method.text_encoder.named_parameters(prefix="t"))}
    changed = [k for k in enc if not torch.equal(enc[k], now[k])]
    if freeze:
        assert changed == []
    else:                                                               # both encoders learn
        assert any(k.startswith("i") for k in changed) and any(k.startswith("t") for k in changed)
    assert any(not torch.equal(fus[k], v) for k, v in method.fusion.named_parameters())
    # the target fusion moved by EMA towards the online fusion, not by gradient
    moved = [k for k, v in method.target_fusion.named_parameters() if not torch.equal(tgt[k], v)]
    assert moved and all(not p.requires_grad for p in method.target_fusion.parameters())


def test_ema_step_is_the_lerp_of_the_schedule():
    from polyjepa.targets.ema import momentum_at

    method = _tiny_method()
    with torch.no_grad():
        for p in method.fusion.parameters():
            p.add_(1.0)
    before = [p.clone() for p in method.target_fusion.parameters()]
    m = method.update_target(3, 10)
    assert m == pytest.approx(momentum_at(3, 10, 0.996, 1.0))
    for b, t, o in zip(before, method.target_fusion.parameters(), method.fusion.parameters()):
        assert torch.allclose(t, m * b + (1 - m) * o, atol=1e-6)


def test_batches_keep_the_ijepa_mask_invariants_and_are_seeded():
    method = _tiny_method(grid_side=6)
    images, ids = _pairs_data(10)
    images = torch.randn(10, 3, 12, 12)
    method.attach(images, ids)
    x = torch.arange(10)[:, None]
    a = method.make_batch(x, torch.Generator().manual_seed(5))
    b = method.make_batch(x, torch.Generator().manual_seed(5))
    for k in ("ids", "context_idx", "target_idx"):
        assert torch.equal(a[k], b[k])
    ci, ti = a["context_idx"], a["target_idx"]
    assert ci.shape[0] == ti.shape[0] == 10 and ti.shape[1] == 2
    assert ci.min() >= 0 and ci.max() < 36 and ti.min() >= 0 and ti.max() < 36
    for row in range(10):
        assert not set(ci[row].tolist()) & set(ti[row].flatten().tolist())      # disjoint
        assert len(set(ci[row].tolist())) == ci.shape[1]
        # each caption drawn is one of that image's captions
        assert any(torch.equal(a["ids"][row], ids[row, j]) for j in range(ids.shape[1]))
    rows, cols = ti // 6, ti % 6
    h = rows.amax(-1) - rows.amin(-1) + 1
    w = cols.amax(-1) - cols.amin(-1) + 1
    assert torch.equal(h * w, torch.full_like(h, ti.shape[-1]))                 # rectangular blocks
    assert torch.equal(a["images"], images)


def _shapes_npz(path, n_train=40, n_test=12, seed=0, bad=None):
    """Coloured squares in one of four corners with captions naming colour and corner (the card's CPU demo)."""
    rng = np.random.default_rng(seed)
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    corners = {"top left": (0, 0), "top right": (0, 4), "bottom left": (4, 0), "bottom right": (4, 4)}
    n = n_train + n_test
    images = np.zeros((n, 8, 8, 3), np.uint8)
    captions = []
    for i in range(n):
        c, k = rng.choice(list(colours)), rng.choice(list(corners))
        r, q = corners[k]
        images[i, r:r + 4, q:q + 4] = colours[c]
        captions.append([f"a {c} square at the {k}", f"{c} block {k}"])
    captions = np.array(captions)
    split = np.array(["train"] * n_train + ["test"] * n_test)
    if bad == "length":
        captions = captions[:-1]
        split = split[:-1]
    if bad == "missing":
        captions[3, 1] = ""
    np.savez(path, images=images, captions=captions, split=split)
    return path


TINY = ["image_encoder.patch_size=2", "image_encoder.dim=16", "image_encoder.depth=1", "image_encoder.heads=2",
        "image_encoder.predictor_dim=8", "image_encoder.predictor_depth=1", "image_encoder.predictor_heads=2",
        "image_encoder.epochs=1", "image_encoder.batch_size=16", "text_encoder.dim=16", "text_encoder.depth=1",
        "text_encoder.heads=2", "text_encoder.epochs=1", "text_encoder.batch_size=16", "fusion.heads=2",
        "predictor.dim=8", "predictor.depth=1", "predictor.heads=2", "masker.n_targets=2", "masker.min_keep=2",
        "train.max_epochs=2", "train.batch_size=16", "data.max_len=8"]


@needs_text
def test_tiny_recipe_runs_end_to_end_and_writes_its_run(tmp_path):
    import json

    from polyjepa.runner import pretrain

    data = _shapes_npz(tmp_path / "shapes.npz")
    lines = []
    s = pretrain("tijepa-flickr8k", data=str(data), out=str(tmp_path / "run"), overrides=TINY,
                 echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert s["n_train"] == 40 and s["n_test"] == 12
    keys = {f"{v}_{s}" for v in ("tijepa", "unfrozen", "random") for s in ("energy", "energy_centred", "probe")}
    keys |= {"frozen_cca", "raw_cca"}
    assert set(s["results"]) == keys
    for row in s["results"].values():
        assert 0 <= row["match_auc"] <= 1 and 0 <= row["a2b_r1"] <= row["a2b_r5"] <= row["a2b_r10"] <= 1
        assert 1 <= row["b2a_medr"] <= 12
    assert s["built"]["frozen_encoders"] is True and "ViT 1 blocks x 16" in s["built"]["image_encoder"]
    assert s["training"]["tijepa"]["steps"] == 4
    assert np.isfinite(s["diagnostics"]["tijepa"]["final_loss"])
    assert (tmp_path / "run" / "model.safetensors").exists()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["recipe"] == "tijepa-flickr8k"
    assert any("TI-JEPA, energy" in line for line in lines)


@needs_text
@pytest.mark.parametrize("bad, message", [("length", "side a has 52 items but side b has 51 texts"),
                                          ("missing", r"missing values in 1 row\(s\) \(3\)")])
def test_bad_pairs_give_one_clear_line(tmp_path, bad, message):
    from polyjepa.runner import pretrain

    data = _shapes_npz(tmp_path / "bad.npz", bad=bad)
    with pytest.raises(UserError, match=message) as err:
        pretrain("tijepa-flickr8k", data=str(data), out=str(tmp_path / "run"), overrides=TINY,
                 echo=lambda *a, **k: None)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "run").exists()


@needs_text
def test_non_image_pairs_and_missing_data_are_refused(tmp_path):
    from polyjepa.runner import pretrain

    path = tmp_path / "vec.npz"
    np.savez(path, features=np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32),
             text=np.array([f"item {i % 3} words" for i in range(30)]))
    with pytest.raises(UserError, match="side a is vector, not images") as err:
        pretrain("tijepa-flickr8k", data=str(path), out=str(tmp_path / "run"), overrides=TINY,
                 echo=lambda *a, **k: None)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="pass --data PATH"):
        pretrain("tijepa-flickr8k", out=str(tmp_path / "run2"), overrides=TINY, echo=lambda *a, **k: None)


def test_double_centring_removes_image_and_caption_levels():
    from polyjepa.paired.tijepa_run import double_centre

    rng = np.random.default_rng(0)
    additive = rng.normal(size=(5, 1)) + rng.normal(size=(1, 7))
    assert np.allclose(double_centre(additive), 0)
    inter = rng.normal(size=(5, 7))
    c = double_centre(additive + inter)
    assert np.allclose(c, double_centre(inter)) and np.allclose(c.mean(0), 0) and np.allclose(c.mean(1), 0)


def _recorded_losses(method):
    """Wrap the method's loss so that every step's value is kept."""
    seen, inner = [], method.loss

    def loss(batch):
        out = inner(batch)
        seen.append(float(out["loss"].detach()))
        return out

    method.loss = loss
    return seen


def test_encoder_outputs_computed_once_give_the_same_training():
    from polyjepa.paired.tijepa import encode_pairs
    from polyjepa.paired.tijepa_run import train_tijepa

    images, ids = _pairs_data(12)
    runs = []
    for cached in (False, True):
        method = _tiny_method()
        seen = _recorded_losses(method)
        encoded = encode_pairs(method.image_encoder, method.text_encoder, images, ids) if cached else None
        calls = []
        hook = method.text_encoder.embed.register_forward_hook(lambda *a: calls.append(1))
        train_tijepa(method, images, ids, seed=3, steps=8, batch_size=5, lr=1e-2, encoded=encoded)
        hook.remove()
        assert (calls == []) == cached                     # the cached run never runs the text encoder
        runs.append((seen, [p.detach().clone() for p in method.fusion.parameters()]))
    (a, wa), (b, wb) = runs
    assert len(a) == len(b) == 8 and a[0] != a[-1]
    assert np.allclose(a, b, rtol=0, atol=1e-5), (a, b)
    assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(wa, wb))


def test_encoded_pairs_match_the_encoders_run_directly():
    from polyjepa.paired.tijepa import encode_pairs
    from polyjepa.paired.tijepa_run import fixed_masks, pair_outputs, pooled_features, side_features

    method = _tiny_method().eval()
    images, ids = _pairs_data(7)
    ids[2, 1] = 0                                                       # an empty caption
    enc = encode_pairs(method.image_encoder, method.text_encoder, images, ids, chunk=3)
    with torch.no_grad():
        assert torch.allclose(enc.h, method.image_encoder(images), atol=1e-6)
        t, _ = method.text_encoder.tokens(ids.reshape(-1, 6))
        assert torch.allclose(enc.t.reshape(14, 6, -1), t, atol=1e-6)
        img, txt = pooled_features(enc)
        assert np.allclose(img, method.image_encoder(images).mean(1).numpy(), atol=1e-6)
        assert np.allclose(txt.reshape(14, -1), method.text_encoder(ids.reshape(-1, 6)).numpy(), atol=1e-6)
        masks = fixed_masks(method.masker, 2, seed=0)
        direct = side_features(method, images, ids, masks, chunk=3)
        read = side_features(method, images, ids, masks, chunk=3, encoded=enc)
        for x, y in zip(direct, read):
            for u, v in zip(x if isinstance(x, list) else [x], y if isinstance(y, list) else [y]):
                assert torch.allclose(u.float(), v.float(), atol=1e-6)
        z0 = method.image_encoder(images, keep_idx=masks[0][0].expand(7, -1))
        assert torch.allclose(read[1][0], z0, atol=1e-6)                # the encoder on the context patches alone
        img_idx, cap_idx = np.arange(7), np.arange(0, 14, 2)
        energy, emb = pair_outputs(method, read, img_idx, cap_idx, masks)
        none, emb_only = pair_outputs(method, read, img_idx, cap_idx, [])
        assert none is None and np.allclose(emb, emb_only) and energy.shape == (7,)


def test_batches_restored_from_their_state_draw_what_the_original_draws():
    from polyjepa.paired.tijepa_run import Batches

    for cut in (0, 2, 3, 5):                                            # 3 batches of 3 per epoch of 10
        g = torch.Generator().manual_seed(4)
        a = Batches(10, 3, g)
        for _ in range(cut):
            next(a)
            torch.rand(2, generator=g)                                  # other draws from the same generator
        tensors, meta = a.state()
        want = []
        for _ in range(5):
            want.append(next(a))
            want.append(torch.rand(2, generator=g))
        b = Batches(10, 3, torch.Generator().manual_seed(99))
        b.restore(tensors, meta)
        got = []
        for _ in range(5):
            got.append(next(b))
            got.append(torch.rand(2, generator=b.generator))
        assert all(torch.equal(x, y) for x, y in zip(want, got)), cut


RESUMABLE = [*TINY, "train.checkpoint_every=1", "train.keep_checkpoints=100", "eval.baselines=false"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from polyjepa.runner import pretrain

    root = tmp_path_factory.mktemp("tijepa_resume")
    data = _shapes_npz(root / "shapes.npz")
    s = pretrain("tijepa-flickr8k", data=str(data), out=str(root / "run"), overrides=RESUMABLE,
                 echo=lambda *a, **k: None)
    return root / "run", s


def _cut_back(src, dst, step):
    """A copy of run ``src`` as if it had been killed right after writing checkpoint ``step``."""
    import json
    import shutil

    shutil.copytree(src, dst)
    for p in (dst / "checkpoints").glob("step-*"):
        if int(p.name.split("-")[1]) > step:
            shutil.rmtree(p)
    (dst / "checkpoints" / "latest.json").write_text(json.dumps({"checkpoint": f"step-{step:07d}", "step": step}))
    for name in ("summary.json", "model.safetensors", "report.md"):
        (dst / name).unlink()
    return dst


KEPT = ("pretraining", "training", "results", "diagnostics")


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _weights(run):
    from safetensors.torch import load_file

    return load_file(run / "model.safetensors")


@needs_text
# cut inside the image encoder, the text encoder, the fusion's second epoch and the ablation
@pytest.mark.parametrize("step", [1, 5, 10, 13])
def test_a_resumed_run_ends_as_the_uninterrupted_one(uninterrupted, tmp_path, step):
    from polyjepa.runner import pretrain

    run, want = uninterrupted
    assert want["training"]["tijepa"]["steps"] == 4 and want["pretraining"]["text"]["steps"] == 5
    cut = _cut_back(run, tmp_path / "cut", step)
    lines = []
    got = pretrain(resume=str(cut), echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    stage = {1: "image", 5: "text", 10: "tijepa", 13: "unfrozen"}[step]
    assert any(f"continues from step-{step:07d} (stage {stage}," in line for line in lines), lines
    flat_got, flat_want = _flat({k: got[k] for k in KEPT}), _flat({k: want[k] for k in KEPT})
    assert flat_got.keys() == flat_want.keys() and len(flat_got) > 40
    assert flat_got == pytest.approx(flat_want, rel=1e-6, abs=1e-7)
    a, b = _weights(run), _weights(cut)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


@needs_text
def test_a_resume_may_lower_the_learning_rate_and_it_takes_effect(uninterrupted, tmp_path):
    from polyjepa.runner import pretrain
    from polyjepa.train.checkpoint import load_checkpoint

    run, _ = uninterrupted
    cut = _cut_back(run, tmp_path / "cut", 10)                          # the fusion after 3 of its 4 steps
    live, _, meta = load_checkpoint(cut / "checkpoints" / "step-0000010")
    assert meta["stage"] == "tijepa" and meta["progress"]["steps"] == 3
    pretrain(resume=str(cut), overrides=["train.lr=1e-9"], echo=lambda *a, **k: None)
    assert "lr: 1.0e-09" in (cut / "config.yaml").read_text()
    got, full = _weights(cut), _weights(run)
    trained = [k for k in got if k.startswith(("fusion.", "predictor."))]
    assert trained
    # the last step at lr 1e-9 leaves the fusion and predictor where the checkpoint had them ...
    assert all(torch.allclose(got[k], live[f"tijepa.{k}"], atol=1e-7) for k in trained)
    # ... where the uninterrupted run's last step moved them
    assert max(float((full[k] - live[f"tijepa.{k}"]).abs().max()) for k in trained) > 1e-5


@needs_text
def test_a_tijepa_run_is_refused_by_probe_with_one_clear_line(uninterrupted):
    from polyjepa.runner import load_run_method

    run, _ = uninterrupted
    with pytest.raises(UserError, match="'probe' and 'embed' do not read it") as err:
        load_run_method(run)
    assert "\n" not in str(err.value)


def test_a_finished_stage_without_its_weights_in_the_checkpoint_is_refused(tmp_path):
    from polyjepa.paired.tijepa_run import finished_stage
    from polyjepa.train.stages import StageCheckpoints

    ckpts = StageCheckpoints(tmp_path, every=1)
    ckpts.finished = {"image": {"steps": 2, "first_loss": 1.0, "last_loss": 0.5}}
    ckpts.weights = {"text": {"weight": torch.zeros(2)}}
    with pytest.raises(UserError, match=r"lacks its weights \['image'\]") as err:
        finished_stage(ckpts, "image", {"image": torch.nn.Linear(2, 2)})
    assert "\n" not in str(err.value)
    assert finished_stage(ckpts, "fusion", {"fusion": torch.nn.Linear(2, 2)}) is None      # not finished: train it
    layer = torch.nn.Linear(2, 2)
    ckpts.finished["text"] = {"steps": 1, "last_loss": 0.1, "seconds": 3.0}       # seconds: not a result
    ckpts.weights["text"] = {k: torch.full_like(v, 7.0) for k, v in layer.state_dict().items()}
    assert finished_stage(ckpts, "text", {"text": layer}) == {"steps": 1, "last_loss": 0.1}
    assert torch.all(layer.weight == 7.0)
