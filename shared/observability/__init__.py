"""observability (being built; see the issue tracker)."""

__all__: list[str] = []
