"""Tools for trying leadroute without a CRM: ``leadroute demo`` and synthetic, realistic leads."""
