"""The image endpoints of diffusion routes: `/vision/generate` and OpenAI's images API."""
