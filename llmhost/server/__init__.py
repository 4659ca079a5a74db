"""The HTTP host around the routers: the app and its lifespan, the state the
routers share, the middleware (body size, keys), reload, the start-up preload and /metrics."""
