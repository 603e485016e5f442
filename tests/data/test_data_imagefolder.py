"""The image folder reader: layout, splits, preprocessing, lazy decoding, bad files."""
from __future__ import annotations

import numpy as np
import pytest

from eb_images import make_image_folder
from edgebranchy.data import load_dataset
from edgebranchy.data.splits import load_recorded
from edgebranchy.data.imagefolder import ImageArray, ImageSpec, image_files, load_image, scan
from edgebranchy.errors import EdgeBranchyError

PIL = pytest.importorskip("PIL", reason="Pillow is not installed")


@pytest.fixture
def folder(tmp_path):
    info = make_image_folder(tmp_path / "imgs")
    return tmp_path / "imgs", info


def test_scan_names_each_bad_file_in_one_line_and_skips_it(folder):
    root, info = folder
    lines = []
    paths, labels, classes = scan(root, log=lines.append)
    assert classes == ["cat", "dog", "fox"]
    assert len(paths) == info["good"] == 36
    assert np.bincount(labels).tolist() == [12, 12, 12]
    for bad in info["bad"]:
        named = [ln for ln in lines if str(bad) in ln]
        assert len(named) == 1 and "\n" not in named[0] and named[0].startswith("skipping")
    assert any("truncated" in ln for ln in lines if "cut.jpg" in ln)
    assert any("not an image file" in ln for ln in lines if "notes.txt" in ln)
    assert lines[-1] == "skipped 3 file(s) that are not usable images"


def test_strict_refuses_with_the_file_named(folder):
    root, info = folder
    with pytest.raises(EdgeBranchyError, match=r"broken\.png.*and 2 more.*`strict_images`"):
        load_dataset("imagefolder", root, image={"strict": True, "size": 16})


def test_bundle_shapes_splits_and_normalisation(folder, capsys):
    root, _ = folder
    b = load_dataset("imagefolder", root, image={"size": 20, "crop": 16})
    assert "skipped 3 file(s)" in capsys.readouterr().err
    assert b.input_shape == (3, 16, 16) and b.classes == ["cat", "dog", "fox"]
    assert len(b.train) + len(b.val) + len(b.test) == 36
    assert len(b.test) == 3 and len(b.val) == 3
    assert isinstance(b.train.x, ImageArray)
    x = b.train.x[np.array([0, 2])]
    assert x.dtype == np.uint8 and x.shape == (2, 3, 16, 16)
    assert len(b.norm.mean) == 3 and all(0 < s for s in b.norm.std)
    d = b.describe()
    assert d["image"] == {"size": 20, "crop": 16} and b.meta["input"]["crop"] == [16, 16]
    # a different seed moves the validation split, never the test split
    b2 = load_dataset("imagefolder", root, seed=1, image={"size": 20, "crop": 16})
    assert b2.test.x.paths == b.test.x.paths and b2.val.x.paths != b.val.x.paths
    # the checkpoint's record reloads the same split
    again = load_recorded(d)
    assert again.val.x.paths == b.val.x.paths and again.input_shape == (3, 16, 16)


def test_explicit_train_val_test_folders(tmp_path):
    make_image_folder(tmp_path / "s", per_class=8, splits=True, bad=False)
    b = load_dataset("imagefolder", tmp_path / "s", image={"size": 16})
    assert (len(b.train), len(b.val), len(b.test)) == (24, 6, 6)
    assert all("/val/" in p for p in b.val.x.paths) and all("/test/" in p for p in b.test.x.paths)
    with pytest.raises(EdgeBranchyError, match="holds the validation split"):
        load_dataset("imagefolder", tmp_path / "s", val_size=3, image={"size": 16})
    (tmp_path / "s" / "val" / "wolf").mkdir()
    with pytest.raises(EdgeBranchyError, match="wolf are not in the training classes"):
        load_dataset("imagefolder", tmp_path / "s", image={"size": 16})


def test_resize_then_centre_crop(tmp_path):
    from PIL import Image

    a = np.zeros((32, 64, 3), dtype=np.uint8)  # 64 wide, 32 high: left half red, right half blue
    a[:, :32] = (255, 0, 0)
    a[:, 32:] = (0, 0, 255)
    Image.fromarray(a).save(tmp_path / "wide.png")
    x = load_image(tmp_path / "wide.png", ImageSpec.make(16, 16))  # -> 32 x 16, crop the middle 16 columns
    assert x.shape == (3, 16, 16)
    assert (x[0, :, :7] > 240).all() and (x[2, :, :7] < 15).all()     # red on the left
    assert (x[2, :, 9:] > 240).all() and (x[0, :, 9:] < 15).all()     # blue on the right
    g = load_image(tmp_path / "wide.png", ImageSpec.make(16, 8, color="L"))
    assert g.shape == (1, 8, 8)


def test_lazy_decoding_and_bounded_cache(folder, monkeypatch):
    import edgebranchy.data.imagefolder as imf

    root, _ = folder
    b = load_dataset("imagefolder", root, image={"size": 16})
    calls = []
    real = imf.load_image
    monkeypatch.setattr(imf, "load_image", lambda p, s: calls.append(p) or real(p, s))
    sub = b.train.x.subset(np.arange(5))
    assert calls == [] and len(sub) == 5                       # subsetting decodes nothing
    small = ImageArray(sub.paths, sub.spec, cache_bytes=2 * 3 * 16 * 16)
    small[:]
    small[:]
    assert len(calls) == 5 + 3                                  # only two images fit the cache
    view = b.val.x_float(b.norm)
    assert not isinstance(view, np.ndarray) and len(view) == len(b.val)
    np.testing.assert_array_equal(view[1:3], b.norm.apply(b.val.x[1:3]))


def test_given_mean_std_and_errors(folder):
    root, _ = folder
    b = load_dataset("imagefolder", root, image={"size": 16, "mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]})
    assert b.norm.mean == [0.5, 0.4, 0.3]
    with pytest.raises(EdgeBranchyError, match="needs 3 value"):
        load_dataset("imagefolder", root, image={"size": 16, "mean": [0.5], "std": [0.2]})
    with pytest.raises(EdgeBranchyError, match="need 1 <= crop <= size"):
        load_dataset("imagefolder", root, image={"size": 16, "crop": 20})
    with pytest.raises(EdgeBranchyError, match="needs `data_dir`"):
        load_dataset("imagefolder")
    with pytest.raises(EdgeBranchyError, match="not found"):
        load_dataset("imagefolder", root / "nope")
    with pytest.raises(EdgeBranchyError, match="imagefolder only"):
        load_dataset("synthetic", image={"size": 16})


def test_image_files_expands_folders(folder):
    root, info = folder
    lines = []
    files = image_files([root / "dog", root / "cat" / "cat000.png"], log=lines.append)
    assert len(files) == 13 and lines == []
    files = image_files([root / "cat"], log=lines.append)
    assert len(files) == 12 and len(lines) == 4
    with pytest.raises(EdgeBranchyError, match="notes.txt"):
        image_files([root / "cat" / "notes.txt"], strict=True)
    with pytest.raises(EdgeBranchyError, match="no usable image"):
        image_files([root / "cat" / "notes.txt"], log=lines.append)
