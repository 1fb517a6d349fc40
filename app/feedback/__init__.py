"""Corrections from the people who use the service: `POST /feedback` stores each one (the label, the
model's own answer on the image, read again, and the 28x28 inputs) in a database, SQLite or
PostgreSQL through SQLAlchemy, its schema kept by Alembic (`migrations/`); `GET /feedback/summary`
and `/metrics` say how often the model is right in the field; `python -m app.feedback export` writes
the records out for `python -m model.train --finetune ... --extra-images DIR` (docs/feedback.md)."""

import logging

# Alembic logs each plugin it sets up and each step it takes at INFO: not the service's news
logging.getLogger("alembic").setLevel(logging.WARNING)
