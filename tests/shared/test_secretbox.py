"""SecretBox: Fernet tokens for stored secrets, keys from settings, rotation."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from logistics_shared.secretbox import SecretBox, UndecryptableSecret, parse_keys, secrets_key
from logistics_shared.settings import SettingsError, load_settings

#: Fixed, so that every xdist worker collects the same parameters.
OLD = "n6JhD1bpvcquIGfMv7EW7Xf0TQk7cxObFxbmhnUXmBI="
NEW = "xsuU3U8PZsLzdu0AcOk5ybVMzPOJsJV9rvGs0yIpSvw="


def settings(tmp_path: Path, **ini: str):
    return load_settings("shipping", {"var_dir": str(tmp_path), **ini}, environ={})


def test_a_round_trip_is_not_the_plaintext_and_differs_every_time():
    box = SecretBox(parse_keys(NEW))
    first, second = box.encrypt("whsec-0123456789"), box.encrypt("whsec-0123456789")
    assert "whsec" not in first and first != second
    assert box.decrypt(first) == box.decrypt(second) == "whsec-0123456789"
    assert box.decrypt(box.encrypt("ünïcødé ✓")) == "ünïcødé ✓"
    assert first.isascii()


def test_rotation_the_first_key_encrypts_every_key_decrypts():
    old_token = SecretBox(parse_keys(OLD)).encrypt("s1")
    both = SecretBox(parse_keys(f"{NEW}, {OLD}"))
    assert both.decrypt(old_token) == "s1"
    new_token = both.encrypt("s2")
    assert SecretBox(parse_keys(NEW)).decrypt(new_token) == "s2"
    with pytest.raises(UndecryptableSecret):
        SecretBox(parse_keys(OLD)).decrypt(new_token)
    # rotate(): the old token again under the first key, so the old key can go.
    rotated = both.rotate(old_token)
    assert SecretBox(parse_keys(NEW)).decrypt(rotated) == "s1"


@pytest.mark.parametrize("token", ["", "not-a-token", "gAAAAA" + "A" * 80, "under another key"])
def test_a_token_no_key_opens_is_a_clear_error(token):
    if token == "under another key":
        token = SecretBox(parse_keys(OLD)).encrypt("x")
    box = SecretBox(parse_keys(NEW))
    with pytest.raises(UndecryptableSecret, match="LOGISTICS_SECRETS_KEY"):
        box.decrypt(token)
    with pytest.raises(UndecryptableSecret):
        box.rotate(token)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "no key"),
        (" , ", "no key"),
        ("too-short", "key 1 of 1 is not a Fernet key"),
        (f"{NEW},{NEW[:-2]}", "key 2 of 2 is not a Fernet key"),
    ],
)
def test_bad_keys_stop_start_up_naming_the_setting_and_never_echo_a_key(raw, message):
    with pytest.raises(SettingsError) as caught:
        parse_keys(raw)
    assert message in str(caught.value)
    assert "LOGISTICS_SECRETS_KEY" in str(caught.value)
    assert "Fernet.generate_key()" in str(caught.value)  # says how to make one
    assert NEW not in str(caught.value) and NEW[:-2] not in str(caught.value)


def test_the_setting_is_used_when_set(tmp_path):
    box = SecretBox.from_settings(settings(tmp_path, secrets_key=f"{NEW},{OLD}"))
    assert SecretBox(parse_keys(NEW)).decrypt(box.encrypt("x")) == "x"
    assert not (tmp_path / "secrets-key").exists()


def test_required_off_the_embedded_default(tmp_path):
    pg = settings(tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(SettingsError, match=r"'secrets_key' \(LOGISTICS_SECRETS_KEY\) is required"):
        SecretBox.from_settings(pg)
    assert not (tmp_path / "secrets-key").exists()


def test_generated_once_under_the_var_dir_on_the_embedded_default(tmp_path):
    first = SecretBox.from_settings(settings(tmp_path))
    path = tmp_path / "secrets-key"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    token = first.encrypt("kept")
    # A restart (another process) reads the same key.
    assert SecretBox.from_settings(settings(tmp_path)).decrypt(token) == "kept"
    assert secrets_key(settings(tmp_path)) == path.read_text().strip()
    assert [p.name for p in tmp_path.iterdir()] == ["secrets-key"]  # no temporary file left


def test_processes_starting_together_agree_on_one_key(tmp_path):
    found: list[str] = []
    start = threading.Barrier(8)

    def read() -> None:
        start.wait()
        found.append(secrets_key(settings(tmp_path)))

    threads = [threading.Thread(target=read) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1
    assert sorted(os.listdir(tmp_path)) == ["secrets-key"]


def test_a_broken_generated_file_says_which_file(tmp_path):
    (tmp_path / "secrets-key").write_text("garbage\n")
    with pytest.raises(SettingsError, match="secrets-key"):
        SecretBox.from_settings(settings(tmp_path))
