"""The data model every stage shares: a position table (``embedding``), a relative term (``relative``) and the
one check of their numbers (``validate``). It imports nothing heavy and nothing from the rest of the package
but ``explorer.errors``."""
