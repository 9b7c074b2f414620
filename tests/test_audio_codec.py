"""The JEPA audio codec: masking, both training stages' gradients, tokens, and the WAV round trip."""
import numpy as np
import pytest
import torch

from polyjepa.audio.codec import JEPACodec, span_mask

from .test_audio_data import tone_clips, write_npz

TINY_CODEC = ["method.dim=16", "method.levels=[5,5,5]", "train.max_epochs=1", "train.batch_size=16",
              "decoder_training.epochs=1", "data.frames=32", "data.n_mels=16"]


def test_span_mask_covers_about_the_ratio_and_is_never_empty_or_full():
    g = torch.Generator().manual_seed(0)
    m = span_mask(400, 40, ratio=0.5, span=(2, 5), generator=g)
    assert m.shape == (400, 40) and m.any(1).all() and (~m).any(1).all()
    assert 0.4 < m.float().mean() < 0.6
    again = span_mask(400, 40, ratio=0.5, span=(2, 5), generator=torch.Generator().manual_seed(0))
    assert torch.equal(m, again)
    with pytest.raises(ValueError, match="span"):
        span_mask(2, 10, ratio=0.5, span=(3, 2), generator=g)


def test_codec_shapes_tokens_and_bitrate():
    codec = JEPACodec(n_mels=16, dim=16, stride=4, levels=(8, 5, 5)).eval()
    x = torch.randn(3, 16, 32)
    tokens = codec.encode(x)
    assert tokens.shape == (3, 8) and tokens.dtype == torch.int64
    assert tokens.min() >= 0 and tokens.max() < 200
    # decoding the tokens is the reconstruction path through the quantiser
    assert torch.allclose(codec.decode(tokens), codec.reconstruct(x), atol=1e-5)
    assert codec.bits_per_second(100.0) == pytest.approx(np.log2(200) * 25)
    with pytest.raises(ValueError, match="power of 2"):
        JEPACodec(n_mels=16, stride=3)


def test_jepa_stage_trains_encoder_predictor_and_mask_token_not_the_target():
    codec = JEPACodec(n_mels=16, dim=16, stride=2)
    x, valid = torch.randn(4, 16, 24), torch.ones(4, 24, dtype=torch.bool)
    out = codec.jepa_loss(x, valid, torch.Generator().manual_seed(0))
    out["loss"].backward()
    for p in codec.jepa_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert all(p.grad is None for p in codec.target.parameters())
    before = [p.clone() for p in codec.target.parameters()]
    with torch.no_grad():
        for p in codec.encoder.parameters():
            p.add_(1.0)
    codec.update_target(0, 10)                                     # momentum 0.996: a small step towards the encoder
    moved = [(a - b).abs().max() for a, b in zip(codec.target.parameters(), before)]
    assert all(abs(float(m) - 0.004) < 1e-4 for m in moved)


def test_decoder_stage_trains_only_the_bottleneck_and_decoder():
    from polyjepa.audio.codec_run import train_codec

    codec = JEPACodec(n_mels=8, dim=8, stride=2, levels=(3, 3))
    enc = [p.clone() for p in codec.encoder.parameters()]
    dec = [p.clone() for p in codec.decoder.parameters()]
    x = torch.randn(16, 8, 12)
    valid = torch.ones(16, 12, dtype=torch.bool)
    valid[:, 10:] = False
    rows = train_codec(codec, x, valid, jepa_epochs=0, decoder_epochs=2, batch_size=8)
    assert "jepa" not in rows and np.isfinite(rows["decoder"]["loss"])
    assert all(torch.equal(a, b) for a, b in zip(enc, codec.encoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(dec, codec.decoder.parameters()))
    # padding frames count in no loss: the L1 term is the mean over the real frames only
    codec.eval()
    r = codec.reconstruct(x)
    l1 = codec.recon_loss(x, valid)["l1"]
    assert torch.allclose(l1, ((r - x).abs()[:, :, :10]).mean(), atol=1e-5)


def test_codec_run_and_wav_round_trip_keep_length_and_rate(tmp_path):
    import soundfile as sf

    from polyjepa.cli import main
    from polyjepa.runner import pretrain

    clips, y = tone_clips(60)
    data = write_npz(tmp_path / "tones.npz", clips, y, take=np.arange(60) % 50)
    s = pretrain("codec-fsdd", data=str(data), out=str(tmp_path / "codec"), overrides=TINY_CODEC,
                 echo=lambda *a: None)
    assert s["bits_per_second"] == pytest.approx(np.log2(125) * 25) and s["n_test"] == 10
    assert 0 <= s["accuracy_decoded_mel"] <= 1 and s["mel_db"] > 0
    run = str(tmp_path / "codec")
    wav = tmp_path / "in.wav"
    sf.write(wav, clips[0], 8000, subtype="PCM_16")
    assert main(["codec", "encode", run, str(wav), "--out", str(tmp_path / "t.npz")]) == 0
    with np.load(tmp_path / "t.npz", allow_pickle=False) as z:
        assert z["tokens"].ndim == 1 and int(z["sample_rate"]) == 8000
    assert main(["codec", "decode", run, str(tmp_path / "t.npz"), "--out", str(tmp_path / "out.wav"), "--iters", "4"]) == 0
    info = sf.info(str(tmp_path / "out.wav"))
    assert info.samplerate == 8000 and info.frames == len(clips[0]) and info.channels == 1
    # a stereo 24-bit file at another rate is averaged and resampled; its decoded length is at the codec's rate
    sf.write(tmp_path / "st.wav", np.stack([clips[1], clips[1]], 1), 16000, subtype="PCM_24")
    assert main(["codec", "encode", run, str(tmp_path / "st.wav"), "--out", str(tmp_path / "st.npz")]) == 0
    assert main(["codec", "decode", run, str(tmp_path / "st.npz"), "--out", str(tmp_path / "st_out.wav"),
                 "--iters", "2"]) == 0
    assert sf.info(str(tmp_path / "st_out.wav")).frames == int(np.ceil(len(clips[1]) / 2))


def test_codec_commands_refuse_bad_input_in_one_line(tmp_path, capsys):
    import soundfile as sf

    from polyjepa.cli import main

    (tmp_path / "text.wav").write_text("not audio")
    sf.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 8000)
    sf.write(tmp_path / "nan.wav", np.full(800, np.nan, np.float32), 8000, subtype="FLOAT")
    sf.write(tmp_path / "short.wav", 0.1 * np.ones(50, np.float32), 8000)
    run = tmp_path / "run"
    run.mkdir()
    assert main(["codec", "encode", str(run), str(tmp_path / "text.wav"), "--out", str(tmp_path / "t.npz")]) == 2
    assert "not a codec run" in capsys.readouterr().err
    # with a codec run (tiny, untrained weights are enough to check the input handling)
    from polyjepa.audio.codec_run import encode_wav
    from polyjepa.errors import UserError

    _tiny_run(run)
    for name, msg in [("text.wav", "cannot read audio"), ("empty.wav", "no samples"), ("nan.wav", "NaN"),
                      ("short.wav", "too short")]:
        with pytest.raises(UserError, match=msg):
            encode_wav(run, tmp_path / name, tmp_path / "t.npz")
    assert main(["codec", "decode", str(run), str(tmp_path / "text.wav"), "--out", str(tmp_path / "o.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("polyjepa: error:") and err.count("\n") == 1


def _tiny_run(run):
    import hashlib
    import json

    from safetensors.torch import save_file

    codec = JEPACodec(n_mels=16, dim=8, stride=2, levels=(3, 3))
    save_file({k: v.contiguous() for k, v in codec.state_dict().items()}, run / "codec.safetensors")
    meta = {"sample_rate": 8000, "mean": 0.0, "std": 1.0,
            "mel": {"n_mels": 16, "win_ms": 25.0, "hop_ms": 10.0, "n_fft": None, "f_min": 20.0, "f_max": None,
                    "window": "povey"}}
    (run / "codec.json").write_text(json.dumps({
        "meta": meta, "method": {"dim": 8, "stride": 2, "levels": [3, 3]}, "n_mels": 16,
        "sha256": hashlib.sha256((run / "codec.safetensors").read_bytes()).hexdigest()}))
