"""The procedural world (see WORLD.md): prompts.py (grammar, held-out rule), world.py (scenes, rendering, datasets)."""
