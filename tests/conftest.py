# The helper modules listed after aiorefresh.testing hold the fixtures shared by the files each
# large test file was split into (test_iot_fetcher*.py, test_lease_pool*.py, test_sts_standin*.py).
# Loaded as plugins, their asserts are rewritten; a test module's own fixture of the same name
# (test_iot_server's ``server``, test_cache's ``sts``, test_client_pool's ``make_pool``) wins.
pytest_plugins = [
    "aiorefresh.testing",
    "_iot_fetcher_helpers",
    "_lease_pool_helpers",
    "_sts_standin_helpers",
]
