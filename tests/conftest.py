"""The fixtures come from tests/support/fixtures.py; the helpers tests import are in tests/support/. Here: which
modules also run on the test Redis Cluster (SHOKAI_TEST_CLUSTER=1 pytest -m cluster)."""
from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.fixtures", "tests.support.dashboard"]

# the modules that drive the whole bot through Redis; `make test` runs them a second time on a cluster
CLUSTER_MODULES = frozenset({
    "test_story", "test_referrals", "test_redelivery", "test_catalog", "test_rules_engine", "test_crash",
    "test_admin_api", "test_line_faults", "test_cluster", "test_ledger_properties",
    "test_admin_api_more", "test_staff", "test_stats", "test_broadcasts", "test_notices", "test_profile",
    "test_flex_cards", "test_richmenu", "test_hot_path", "test_ledger_codec",
    "test_health", "test_bursts", "test_friend_coupon",
    "test_prompts", "test_account_link", "test_shopify_discount", "test_imports", "test_outbound_webhooks",
    "test_shopify_webhooks", "test_privacy", "test_experiments", "test_budget", "test_whatif",
})


# the fault tests bound by timing (leases renewed in time, SIGKILLs landing mid-work, a flood answered by reply):
# `make test` runs them on their own after the rest, which it spreads over two processes
SERIAL_MODULES = frozenset({"test_takeover", "test_chaos", "test_crash", "test_fairness", "test_bursts"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in CLUSTER_MODULES:
            item.add_marker(pytest.mark.cluster)
        if item.module is not None and item.module.__name__.rsplit(".", 1)[-1] in SERIAL_MODULES:
            item.add_marker(pytest.mark.serial)
