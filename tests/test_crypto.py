"""Encryption at rest: MultiFernet, and `keys rotate` re-encrypting everything under the first key."""

import pytest
from cryptography.fernet import Fernet, InvalidToken

from webapp import crypto
from webapp.extensions import db
from webapp.models import Practice, XeroConnection


def test_round_trip_and_none(app):
    token = crypto.encrypt("secret-value")
    assert token != "secret-value" and crypto.decrypt(token) == "secret-value"
    assert crypto.encrypt(None) is None and crypto.decrypt(None) is None


def test_bad_keys_give_a_clear_error():
    with pytest.raises(crypto.KeyConfigError, match="Fernet keys"):
        crypto.build("not-a-key")
    with pytest.raises(crypto.KeyConfigError, match="empty"):
        crypto.build(" , ")


def test_keys_rotate_moves_everything_to_the_first_key(app, runner, make_practice):
    old_key = app.config["TOKEN_ENCRYPTION_KEYS"]
    practice = make_practice("north")
    conn = XeroConnection(practice_id=practice.id, tenant_id="t1",
                          access_token_encrypted=crypto.encrypt("access-1"),
                          refresh_token_encrypted=crypto.encrypt("refresh-1"))
    db.session.add(conn)
    db.session.commit()
    new_key = Fernet.generate_key().decode()
    app.config["TOKEN_ENCRYPTION_KEYS"] = f"{new_key},{old_key}"
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "Re-encrypted 2 rows" in result.output
    app.config["TOKEN_ENCRYPTION_KEYS"] = new_key  # the old key is gone
    db.session.expire_all()
    assert crypto.decrypt(db.session.get(XeroConnection, conn.id).refresh_token_encrypted) == "refresh-1"
    assert crypto.decrypt(db.session.get(Practice, practice.id).cliniko_api_key_encrypted) == "key-north-au1"
    app.config["TOKEN_ENCRYPTION_KEYS"] = old_key
    with pytest.raises(InvalidToken):
        crypto.decrypt(db.session.get(XeroConnection, conn.id).access_token_encrypted)
