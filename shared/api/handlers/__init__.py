"""Route handlers: parse an ``ApiRequest``, call one service, render an ``ApiResponse``."""

__all__: list[str] = []
