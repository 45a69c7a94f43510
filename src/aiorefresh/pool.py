from ._clients import *  # noqa: F403 - moved to _clients (ClientPool, ClientFactory, PoolStats)
