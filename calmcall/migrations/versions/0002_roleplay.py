"""role-play: calls against a simulated caller and their turns

Revision ID: 0002
Revises: 0001

A call belongs to one organisation and learner, like an attempt. Its state (anger,
patience, phase, what was shown when) is stored as JSON after every turn, so any API
worker can take the next turn; turns are numbered per call and unique, so two workers
racing on one call cannot both record turn n. Idempotency keys are per organisation
(calls) and per call (turns).
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("org_id", sa.Integer, sa.ForeignKey("organisations.id"), nullable=False, index=True),
        sa.Column("learner_id", sa.Integer, sa.ForeignKey("learners.id"), nullable=False, index=True),
        sa.Column("scenario_id", sa.String(100), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("anger", sa.Integer, nullable=False),
        sa.Column("n_turns", sa.Integer, nullable=False),
        sa.Column("state", sa.JSON, nullable=False),
        sa.Column("scorecard", sa.JSON, nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("org_id", "idempotency_key"),
    )
    op.create_table(
        "call_turns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("call_id", sa.String(40), sa.ForeignKey("calls.id"), nullable=False, index=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("say", sa.Text, nullable=False),
        sa.Column("caller", sa.Text, nullable=False),
        sa.Column("anger", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("call_id", "n"),
        sa.UniqueConstraint("call_id", "idempotency_key"),
    )


def downgrade() -> None:
    op.drop_table("call_turns")
    op.drop_table("calls")
