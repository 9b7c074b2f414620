"""View maker invariants: shapes, determinism under a generator, crops inside the image, blur, jitter."""
import pytest
import torch

from polyjepa.multiview import ViewMaker, gaussian_blur, resized_crop


def images(b=6, c=1, h=16, w=16, seed=0):
    return torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_shapes_and_determinism():
    vm = ViewMaker(n_global=2, n_local=3, local_size=(8, 8), blur=0.5)
    x = images()
    a = vm(x, torch.Generator().manual_seed(1))
    b = vm(x, torch.Generator().manual_seed(1))
    c = vm(x, torch.Generator().manual_seed(2))
    assert a["global"].shape == (2, 6, 1, 16, 16) and a["local"].shape == (3, 6, 1, 8, 8)
    assert torch.equal(a["global"], b["global"]) and torch.equal(a["local"], b["local"])
    assert not torch.equal(a["global"], c["global"])
    assert not torch.equal(a["global"][0], a["global"][1])  # two different views of each image


def test_full_crop_without_jitter_is_the_identity_and_flip_mirrors():
    x = images()
    g = torch.Generator().manual_seed(0)
    same = resized_crop(x, g, size=(16, 16), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(same, x, atol=1e-5)
    flipped = resized_crop(x, g, size=(16, 16), scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=1.0)
    assert torch.allclose(flipped, x.flip(-1), atol=1e-5)
    vm = ViewMaker(n_global=1, global_scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter=0.0, blur=0.0)
    assert torch.allclose(vm(x, g)["global"][0], x, atol=1e-5)


def test_crop_of_a_constant_region_stays_inside_the_image():
    # An image that is 1 everywhere: any crop inside it (border padding never reached) stays 1.
    x = torch.ones(32, 1, 16, 16)
    out = resized_crop(x, torch.Generator().manual_seed(3), size=(8, 8), scale=(0.05, 1.0))
    assert torch.allclose(out, torch.ones_like(out))
    # A crop of a horizontal ramp keeps values within the ramp's range and is monotone along the row.
    ramp = torch.linspace(0, 1, 16).expand(8, 1, 16, 16).clone()
    out = resized_crop(ramp, torch.Generator().manual_seed(4), size=(16, 16), scale=(0.1, 0.5))
    assert out.min() >= 0 and out.max() <= 1
    assert (out.diff(dim=-1) >= -1e-6).all()


def test_gaussian_blur_matches_reference_and_preserves_constants():
    x = images(b=2, c=2, h=12, w=12)
    sigma = torch.tensor([0.8, 1.5])
    out = gaussian_blur(x, sigma, radius=3)
    for i in range(2):
        t = torch.arange(-3, 4, dtype=torch.float32)
        k = torch.exp(-t ** 2 / (2 * sigma[i] ** 2))
        k = k / k.sum()
        pad = torch.nn.functional.pad(x[i:i + 1], (3, 3, 3, 3), mode="reflect")
        ref = torch.nn.functional.conv2d(pad, (k[:, None] * k[None, :]).expand(2, 1, 7, 7), groups=2)
        assert torch.allclose(out[i:i + 1], ref, atol=1e-5)
    const = torch.full((3, 1, 10, 10), 2.5)
    assert torch.allclose(gaussian_blur(const, torch.tensor([0.5, 1.0, 2.0]), radius=6), const, atol=1e-5)


def test_photometric_jitter_ranges():
    vm = ViewMaker(n_global=1, jitter=1.0, brightness=0.4, contrast=0.0, blur=0.0)
    x = images(b=64)
    y = vm.photometric(x, torch.Generator().manual_seed(0))
    shift = (y - x).mean((1, 2, 3))
    assert torch.allclose(y - x, shift[:, None, None, None].expand_as(x), atol=1e-5)  # brightness: a constant shift
    assert shift.abs().max() <= 0.4 + 1e-6 and shift.std() > 0.1
    vm = ViewMaker(n_global=1, jitter=1.0, brightness=0.0, contrast=0.5, blur=0.0)
    y = vm.photometric(x, torch.Generator().manual_seed(0))
    ratio = y.std((1, 2, 3)) / x.std((1, 2, 3))
    assert ratio.min() >= 0.5 - 1e-5 and ratio.max() <= 1.5 + 1e-5
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError):
        ViewMaker(n_local=2)  # no local_size
    with pytest.raises(ValueError):
        ViewMaker(global_scale=(0.0, 1.0))
    with pytest.raises(ValueError):
        ViewMaker(flip=2.0)


def _image_batch(b=4, c=1, h=16, w=16):
    return torch.arange(b * c * h * w, dtype=torch.float32).reshape(b, c, h, w)


def _find(sub: torch.Tensor, img: torch.Tensor) -> bool:
    """Whether ``sub`` (C, h, w) is an exact sub-array of ``img`` (C, H, W)."""
    h, w = sub.shape[-2:]
    windows = img.unfold(1, h, 1).unfold(2, w, 1)            # (C, H-h+1, W-w+1, h, w)
    return bool((windows == sub[:, None, None]).all(-1).all(-1).all(0).any())


def test_crop_mode_views_are_exact_sub_arrays():
    x = _image_batch()
    vm = ViewMaker(n_global=2, n_local=3, global_size=(12, 12), local_size=(8, 8), mode="crop",
                   jitter=1.0, brightness=0.9, blur=1.0, flip=1.0)  # photometry and flips are ignored
    v = vm(x, torch.Generator().manual_seed(0))
    assert v["global"].shape == (2, 4, 1, 12, 12) and v["local"].shape == (3, 4, 1, 8, 8)
    for group in (v["global"], v["local"]):
        for view in group:
            for i in range(x.shape[0]):
                assert _find(view[i], x[i])
    # the offsets are random: not every view is the top-left corner
    assert not torch.equal(v["local"][0], v["local"][1])


def test_crop_resize_mode_applies_no_photometry():
    x = torch.randn(3, 1, 16, 16)
    kw = dict(n_global=2, global_scale=(0.3, 1.0), jitter=1.0, brightness=0.9, contrast=0.9, blur=1.0)
    v = ViewMaker(mode="crop_resize", **kw)(x, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    expect = torch.stack([resized_crop(x, g, size=(16, 16), scale=(0.3, 1.0)) for _ in range(2)])
    assert torch.equal(v["global"], expect)


def test_shared_mode_differs_between_views_by_the_crop_only():
    # identity crops (whole image, no resize): shared photometry makes every view the same image,
    # while the original mode draws each view's photometry anew
    x = torch.randn(5, 1, 16, 16)
    kw = dict(n_global=3, global_scale=(1.0, 1.0), ratio=(1.0, 1.0), jitter=1.0, brightness=0.5, contrast=0.5, blur=0.5)
    shared = ViewMaker(mode="shared", **kw)(x, torch.Generator().manual_seed(2))["global"]
    assert torch.allclose(shared[0], shared[1], atol=1e-6) and torch.allclose(shared[0], shared[2], atol=1e-6)
    assert not torch.allclose(shared[0], x, atol=1e-3)  # the photometry was applied
    original = ViewMaker(mode="original", **kw)(x, torch.Generator().manual_seed(2))["global"]
    assert not torch.allclose(original[0], original[1], atol=1e-3)


def test_unknown_view_mode_and_oversized_crop_are_refused():
    with pytest.raises(ValueError, match="views.mode"):
        ViewMaker(mode="crops")
    with pytest.raises(ValueError, match="larger than the image"):
        ViewMaker(mode="crop", global_size=(20, 20))(torch.zeros(1, 1, 16, 16), torch.Generator())
