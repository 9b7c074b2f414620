"""Time-shift augmentation of log-mel batches: shapes, padding, clip content, seeding, recipe wiring."""
import pytest
import torch

from polyjepa.audio.augment import TimeShift, padding_frames, shift_time, trailing_padding


def padded_batch(lengths, n_mels=4, frames=20, seed=0):
    """(B, 1, n_mels, frames) random real frames followed by 0 padding, like load_audio's output."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), 1, n_mels, frames, generator=g)
    for b, n in enumerate(lengths):
        x[b, ..., n:] = 0
    return x


def test_trailing_padding_counts_only_the_end():
    x = padded_batch([20, 13, 5])
    x[1, ..., 2] = 0                                  # a silent frame inside the clip is not trailing padding
    assert trailing_padding(x).tolist() == [0, 7, 15]
    assert padding_frames(x)[1, 2] and padding_frames(x).sum().item() == 0 + 8 + 15


def test_shift_time_moves_frames_and_fills_with_padding():
    x = padded_batch([20, 20, 20])
    y = shift_time(x, torch.tensor([3, 0, -4]))
    assert y.shape == x.shape
    assert torch.equal(y[0, ..., 3:], x[0, ..., :-3]) and (y[0, ..., :3] == 0).all()
    assert torch.equal(y[1], x[1])
    assert torch.equal(y[2, ..., :-4], x[2, ..., 4:]) and (y[2, ..., -4:] == 0).all()


@pytest.mark.parametrize("max_shift", [0, 3, 30])
def test_keep_clip_moves_every_clip_inside_its_padding(max_shift):
    lengths = [20, 17, 10, 4, 12, 1]
    x = padded_batch(lengths)
    aug = TimeShift(max_shift=max_shift)
    for seed in range(20):
        s = aug.shifts(x, torch.Generator().manual_seed(seed))
        assert s.dtype == torch.int64 and s.shape == (len(lengths),)
        assert (s >= 0).all() and (s <= torch.tensor([min(max_shift, 20 - n) for n in lengths])).all()
        y = aug(x, torch.Generator().manual_seed(seed))
        assert y.shape == x.shape and y.dtype == x.dtype
        for b, n in enumerate(lengths):                     # the whole clip, unchanged, at its new place
            k = int(s[b])
            assert torch.equal(y[b, ..., k:k + n], x[b, ..., :n])
            assert (y[b, ..., :k] == 0).all() and (y[b, ..., k + n:] == 0).all()


def test_shifts_cover_the_allowed_range_and_follow_the_generator():
    x = padded_batch([8] * 64)                              # 12 frames of padding each
    aug = TimeShift(max_shift=5)
    a = aug(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, aug(x, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, aug(x, torch.Generator().manual_seed(8)))
    seen = torch.cat([aug.shifts(x, torch.Generator().manual_seed(s)) for s in range(10)])
    assert set(seen.tolist()) == set(range(6))


def test_free_shifts_are_symmetric_and_p_leaves_samples_alone():
    x = padded_batch([20] * 64)
    free = TimeShift(max_shift=3, keep_clip=False)
    seen = torch.cat([free.shifts(x, torch.Generator().manual_seed(s)) for s in range(10)])
    assert set(seen.tolist()) == set(range(-3, 4))
    assert torch.equal(TimeShift(max_shift=3, p=0.0)(x, torch.Generator().manual_seed(0)), x)
    some = TimeShift(max_shift=3, keep_clip=False, p=0.5).shifts(x, torch.Generator().manual_seed(0))
    assert 0 < (some == 0).sum() < 64
    with pytest.raises(ValueError, match="max_shift"):
        TimeShift(max_shift=-1)
    with pytest.raises(ValueError, match="p must be"):
        TimeShift(p=1.5)


def test_recipe_builds_the_time_shift_augment():
    from polyjepa.build import build_augment
    from polyjepa.config import load_recipe

    cfg = load_recipe("ajepa", ["augment.name=time_shift", "augment.max_shift=8"])
    aug = build_augment(cfg)
    assert isinstance(aug, TimeShift) and aug.max_shift == 8 and aug.keep_clip
