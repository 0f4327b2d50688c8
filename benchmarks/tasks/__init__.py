"""Worker-side modules: one per framework, each importing only that framework and ``common``."""
