"""Built-in providers, one module each, registered as ordinary plugins (see ``explorer.plugins``)."""
