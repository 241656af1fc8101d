"""Database backends: Django's, with what Consentry needs on top (see each module)."""
