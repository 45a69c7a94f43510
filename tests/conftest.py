pytest_plugins = ["aiorefresh.testing"]
