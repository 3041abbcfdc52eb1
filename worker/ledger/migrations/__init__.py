"""The ledger's Alembic migrations (``env.py``, ``versions/``).

Shipped inside the package, so an installed worker migrates its own database.
"""
