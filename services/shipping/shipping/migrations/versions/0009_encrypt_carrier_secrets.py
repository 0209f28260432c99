"""carriers' webhook secrets encrypted at rest (Fernet, the LOGISTICS_SECRETS_KEY setting)

The expand step: a new column ``webhook_secret_encrypted`` gets every existing
secret as a token, and ``webhook_secret`` (the plaintext) becomes nullable. The code
of this release reads the token (falling back to the plaintext for a carrier an older
replica created during the rollout) and writes only the token, leaving the plaintext
NULL. The plaintext of carriers created before stays where it is for now: the previous
release, which may still serve (a rollout, a rollback), verifies its carriers' webhooks
with it. Clearing it is a contract step for a later release (encrypt any row still
without a token, then ``UPDATE carriers SET webhook_secret = NULL``, with its
``# contract:`` marker naming 0009).

The key comes from the settings the migrate command runs with (``logistics migrate``
passes them; a bare ``alembic`` reads the environment), and is needed only when there
are rows to encrypt, so a fresh database migrates without one.

Revision ID: 0009
Revises: 0008
"""

from typing import Any

import sqlalchemy as sa
from alembic import context, op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PLAINTEXT_ONLY = "SELECT code, webhook_secret FROM carriers WHERE webhook_secret_encrypted IS NULL"
SEAL = "UPDATE carriers SET webhook_secret_encrypted = :sealed WHERE code = :code"
TOKEN_ONLY = "SELECT code, webhook_secret_encrypted FROM carriers WHERE webhook_secret IS NULL"  # noqa: S105
UNSEAL = "UPDATE carriers SET webhook_secret = :plain WHERE code = :code"


def _box() -> Any:
    from logistics_shared.secretbox import SecretBox
    from logistics_shared.settings import load_settings

    config = context.config
    settings = config.attributes.get("settings") if config is not None else None
    return SecretBox.from_settings(settings if settings is not None else load_settings("shipping"))


def upgrade() -> None:
    with op.batch_alter_table("carriers") as batch:
        batch.add_column(sa.Column("webhook_secret_encrypted", sa.Text(), nullable=True))
        batch.alter_column("webhook_secret", existing_type=sa.Text(), nullable=True)
    bind = op.get_bind()
    rows = bind.execute(sa.text(PLAINTEXT_ONLY)).all()
    if rows:
        box = _box()
        bind.execute(sa.text(SEAL), [{"code": code, "sealed": box.encrypt(plain)} for code, plain in rows])


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(TOKEN_ONLY)).all()
    if rows:
        box = _box()
        bind.execute(sa.text(UNSEAL), [{"code": code, "plain": box.decrypt(token)} for code, token in rows])
    with op.batch_alter_table("carriers") as batch:
        batch.alter_column("webhook_secret", existing_type=sa.Text(), nullable=False)
        batch.drop_column("webhook_secret_encrypted")
