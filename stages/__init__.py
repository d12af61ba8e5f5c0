"""One thin command-line entry point per DVC stage (python -m stages.<name>)."""
