"""Redis access: key builders, the Lua script registry and the ``RedisPort`` adapters.

Nothing here connects at import; ``redis_from_settings`` builds an adapter that connects
on its first command.
"""

from shared.redis.client import RedisPort, TcpRedis, UpstashRedis, redis_from_settings
from shared.redis.keys import (
    Keys,
    hour_end,
    hour_key,
    hour_label,
    month_end,
    month_key,
    month_key_from_label,
    month_label,
    seconds_until,
    seconds_until_hour_end,
    seconds_until_month_end,
)
from shared.redis.scripts import Script, ScriptRegistry, default_registry, is_noscript

__all__ = [
    "Keys",
    "RedisPort",
    "Script",
    "ScriptRegistry",
    "TcpRedis",
    "UpstashRedis",
    "default_registry",
    "hour_end",
    "hour_key",
    "hour_label",
    "is_noscript",
    "month_end",
    "month_key",
    "month_key_from_label",
    "month_label",
    "redis_from_settings",
    "seconds_until",
    "seconds_until_hour_end",
    "seconds_until_month_end",
]
