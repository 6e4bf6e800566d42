"""Envelope encryption: round trip, binding to the row, tamper detection, rotation, 0600, KMS over HTTP."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import stat

import boto3
import pytest
from moto.server import ThreadedMotoServer

from resources.secrets_envelope import (
    AssociatedData,
    AwsKmsKeyProvider,
    DecryptionFailed,
    Envelope,
    EnvelopeCipher,
    KeyringInsecure,
    LocalKeyring,
)

TOKEN = "AQX-very-secret-access-token-" + "x" * 300
AD = AssociatedData("ws-1", "acct-1", "linkedin.access_token")


@pytest.fixture()
def keyring(tmp_path):
    return LocalKeyring(tmp_path / "keys" / "keyring.json")


def test_round_trip_and_json_storage(keyring):
    cipher = EnvelopeCipher(keyring)
    env = cipher.encrypt(TOKEN, AD)
    assert TOKEN.encode() not in env.ciphertext and TOKEN not in env.to_json()
    again = Envelope.from_json(env.to_json())
    assert cipher.decrypt(again, AD).get_secret_value() == TOKEN
    # A fresh data key and nonce for every secret.
    other = cipher.encrypt(TOKEN, AD)
    assert other.wrapped_key != env.wrapped_key and other.ciphertext != env.ciphertext


@pytest.mark.parametrize(
    "wrong",
    [
        AssociatedData("ws-2", "acct-1", "linkedin.access_token"),
        AssociatedData("ws-1", "acct-2", "linkedin.access_token"),
        AssociatedData("ws-1", "acct-1", "linkedin.refresh_token"),
    ],
)
def test_ciphertext_moved_to_another_row_does_not_decrypt(keyring, wrong):
    cipher = EnvelopeCipher(keyring)
    env = cipher.encrypt(TOKEN, AD)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(env, wrong)
    # Not even with the wrapped key re-made for the new row: the ciphertext's own tag binds the AD too.
    foreign = cipher.encrypt("other", wrong)
    spliced = dataclasses.replace(env, wrapped_key=foreign.wrapped_key, key_id=foreign.key_id)
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(spliced, wrong)


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_key"])
def test_tampering_fails(keyring, field):
    cipher = EnvelopeCipher(keyring)
    env = cipher.encrypt(TOKEN, AD)
    raw = bytearray(getattr(env, field))
    raw[len(raw) // 2] ^= 0x01
    with pytest.raises(DecryptionFailed) as info:
        cipher.decrypt(dataclasses.replace(env, **{field: bytes(raw)}), AD)
    assert TOKEN not in str(info.value)


def test_garbage_envelope_json_is_a_typed_error():
    with pytest.raises(DecryptionFailed):
        Envelope.from_json("{not json")


def test_rotate_keeps_old_readable_and_rewrap_moves_to_new_key(tmp_path):
    path = tmp_path / "keyring.json"
    keyring = LocalKeyring(path)
    cipher = EnvelopeCipher(keyring)
    old = cipher.encrypt(TOKEN, AD)
    first_id = keyring.newest_key_id()
    new_id = keyring.rotate()
    assert new_id != first_id and keyring.key_ids() == [first_id, new_id]
    assert cipher.decrypt(old, AD).get_secret_value() == TOKEN
    assert cipher.needs_rewrap(old)
    moved = cipher.rewrap(old, AD)
    assert moved.key_id == new_id and moved.ciphertext == old.ciphertext and not cipher.needs_rewrap(moved)
    assert cipher.decrypt(moved, AD).get_secret_value() == TOKEN
    assert cipher.encrypt("new", AD).key_id == new_id
    # Another process (a fresh keyring object on the same file) reads both.
    other = EnvelopeCipher(LocalKeyring(path))
    assert other.decrypt(old, AD).get_secret_value() == TOKEN
    assert other.decrypt(moved, AD).get_secret_value() == TOKEN
    # rewrap checks the binding too: it cannot launder an envelope onto another row.
    with pytest.raises(DecryptionFailed):
        cipher.rewrap(old, AssociatedData("ws-2", "acct-1", "linkedin.access_token"))


def test_rotation_seen_by_a_process_that_loaded_the_keyring_earlier(tmp_path):
    path = tmp_path / "keyring.json"
    early = EnvelopeCipher(LocalKeyring(path))
    late = LocalKeyring(path)
    late.rotate()
    env = EnvelopeCipher(late).encrypt(TOKEN, AD)
    assert early.decrypt(env, AD).get_secret_value() == TOKEN


def test_keyring_file_is_0600_even_with_a_permissive_umask(tmp_path):
    previous = os.umask(0)
    try:
        keyring = LocalKeyring(tmp_path / "keyring.json")
        keyring.rotate()
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "keyring.json").stat().st_mode) == 0o600
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp file left behind
    for path in tmp_path.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


def test_concurrent_first_use_agrees_on_one_keyring(tmp_path):
    import threading

    path = tmp_path / "keyring.json"
    barrier = threading.Barrier(6)
    rings: list[LocalKeyring] = []
    errors: list[Exception] = []

    def open_ring() -> None:
        barrier.wait()
        try:
            rings.append(LocalKeyring(path))
        except Exception as exc:  # a half-written file would show up here
            errors.append(exc)

    threads = [threading.Thread(target=open_ring) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len({tuple(r.key_ids()) for r in rings}) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keyring.json"]


def test_concurrent_rotations_lose_no_key(tmp_path):
    import threading

    path = tmp_path / "keyring.json"
    LocalKeyring(path)
    made: list[str] = []
    barrier = threading.Barrier(4)

    def rotate() -> None:
        keyring = LocalKeyring(path)  # one object per "process"
        barrier.wait()
        for _ in range(5):
            made.append(keyring.rotate())

    threads = [threading.Thread(target=rotate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(made) <= set(LocalKeyring(path).key_ids()) and len(LocalKeyring(path).key_ids()) == 21


def test_keyring_readable_by_others_is_refused(tmp_path):
    path = tmp_path / "keyring.json"
    LocalKeyring(path)
    path.chmod(0o644)
    with pytest.raises(KeyringInsecure):
        LocalKeyring(path)


def test_secrets_never_show_in_repr_str_or_logs(keyring, caplog):
    cipher = EnvelopeCipher(keyring)
    env = cipher.encrypt(TOKEN, AD)
    secret = cipher.decrypt(env, AD)
    data_key = keyring.generate_data_key(AD)
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("kiln.test").info("token %s %r %s %r", secret, secret, env, data_key)
    text = caplog.text + repr(secret) + str(secret) + repr(env) + repr(data_key)
    assert TOKEN not in text and data_key.plaintext.hex() not in text
    assert "AQX" not in text


# ---- AWS KMS through moto's server over real HTTP --------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def kms_endpoint():
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def kms_client(kms_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return boto3.client("kms", region_name="us-east-1", endpoint_url=kms_endpoint)


def test_kms_provider_contract_over_http(kms_client, kms_endpoint):
    key_a = kms_client.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["Arn"]
    provider = AwsKmsKeyProvider(key_a, region_name="us-east-1", endpoint_url=kms_endpoint)
    cipher = EnvelopeCipher(provider)
    env = cipher.encrypt(TOKEN, AD)
    assert env.provider == "aws-kms" and env.key_id == key_a
    assert cipher.decrypt(env, AD).get_secret_value() == TOKEN
    # KMS checks the encryption context: the wrong row is refused by KMS itself.
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(env, AssociatedData("ws-1", "acct-2", "linkedin.access_token"))
    raw = bytearray(env.ciphertext)
    raw[0] ^= 1
    with pytest.raises(DecryptionFailed):
        cipher.decrypt(dataclasses.replace(env, ciphertext=bytes(raw)), AD)

    # Rotation: configure a new key; ReEncrypt moves the data key inside KMS.
    key_b = kms_client.create_key(KeySpec="SYMMETRIC_DEFAULT")["KeyMetadata"]["Arn"]
    rotated = EnvelopeCipher(AwsKmsKeyProvider(key_b, client=kms_client))
    assert rotated.decrypt(env, AD).get_secret_value() == TOKEN  # old stays readable
    moved = rotated.rewrap(env, AD)
    assert moved.key_id == key_b and not rotated.needs_rewrap(moved)
    assert rotated.decrypt(moved, AD).get_secret_value() == TOKEN
    json.loads(moved.to_json())


def test_local_envelope_is_not_accepted_by_the_kms_cipher(kms_client, keyring):
    key = kms_client.create_key()["KeyMetadata"]["Arn"]
    env = EnvelopeCipher(keyring).encrypt(TOKEN, AD)
    with pytest.raises(DecryptionFailed):
        EnvelopeCipher(AwsKmsKeyProvider(key, client=kms_client)).decrypt(env, AD)
