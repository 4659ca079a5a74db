"""Which models are on the GPU, decided in one place (see manager.py)."""
