"""`diffusion` routes: a diffusers pipeline in this process, its loading, shape and memory."""
