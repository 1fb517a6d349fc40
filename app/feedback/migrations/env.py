"""Alembic's environment: runs on the connection `app.feedback.db.migrate` hands it (its lock held),
or on the URL in DIGITS_FEEDBACK_DB for Alembic's own command line."""

from __future__ import annotations

import os

from alembic import context

from app.feedback.db import Base, make_engine

connection = context.config.attributes.get("connection")
if connection is None:  # alembic -c ... upgrade head: the URL from the environment
    engine = make_engine(os.environ["DIGITS_FEEDBACK_DB"])
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    context.run_migrations()
