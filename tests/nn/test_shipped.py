"""ShippedModel: one load per process, a reload when the file changes, nothing stale after a
failed reload."""

import os

import pytest

from gnnalloc.nn import ShippedModel


def test_loads_once_and_again_when_the_file_changes(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_text("one")
    calls = []

    def load(p):
        calls.append(p)
        return p.read_text()

    shipped = ShippedModel(path, load)
    assert shipped() == "one" and shipped() == "one"
    assert len(calls) == 1
    path.write_text("two")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a visibly newer file
    assert shipped() == "two"
    assert len(calls) == 2


def test_a_failed_reload_raises_and_keeps_nothing_stale(tmp_path):
    path = tmp_path / "model.ckpt"
    path.write_text("good")

    def load(p):
        text = p.read_text()
        if text != "good":
            raise ValueError("checkpoint: corrupt")
        return text

    shipped = ShippedModel(path, load)
    assert shipped() == "good"
    path.write_text("bad")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    for _ in range(2):  # the second call must try again, not hand back the old model
        with pytest.raises(ValueError, match="corrupt"):
            shipped()
