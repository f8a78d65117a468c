"""Every console script of raftkv and its argument parsing (docs/architecture.md): nothing
imports this package; it imports the libraries below it."""
