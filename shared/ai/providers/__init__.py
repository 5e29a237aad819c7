"""One module per AI provider: its wire format (``shared.ai.wire.Wire``) and a two-line
``AIClient`` subclass bound to it, nothing else.

The retry, jitter, budget and deadline policy is ``shared.ai.client.AIClient``'s; a
provider module holds the request shape, the response classification and the provider's
defaults (base URL, model). ``shared.ai.factory.CLIENTS`` names the providers
``AI_PROVIDER`` may choose.
"""
