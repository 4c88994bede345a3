"""Prometheus counters and gauges, owned by the app (no module-level registry)."""
from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from bot.infra.redis_conn import ROUND_TRIPS


class RedisRoundTrips(Collector):
    """shokai_redis_round_trips_total, read from the plain counter the Redis connections bump (a Counter's
    lock on every command would cost more than the count is worth)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily("shokai_redis_round_trips",
                                  "Requests sent to Redis by this process (a command, a script call or a "
                                  "whole pipeline: one round trip each); not counted on a Redis Cluster",
                                  value=ROUND_TRIPS.count)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter("shokai_webhook_requests", "Webhook requests by HTTP status", ["status"],
                                registry=self.registry)
        # outcomes: queued, duplicate, and the skipped ones (malformed, not_a_user_chat, unhandled_type, and
        # bad_user_id: a user source whose userId is not LINE's U + 32 hex digits, never queued)
        self.events = Counter("shokai_webhook_events", "Webhook events by intake outcome", ["outcome"],
                              registry=self.registry)
        # POST /webhooks/shopify by topic (only for 200s: "-" otherwise, a bad request's header is not trusted)
        self.shopify_webhooks = Counter("shokai_shopify_webhooks", "Shopify webhook requests by topic and status",
                                        ["topic", "status"], registry=self.registry)
        self.handled = Counter("shokai_events_handled", "Events handled by the worker", ["outcome"],
                               registry=self.registry)
        self.line_calls = Counter("shokai_line_api_calls", "Messaging API calls", ["endpoint", "status"],
                                  registry=self.registry)
        self.answers_held = Counter("shokai_answers_held",
                                    "Answers not sent because their user was past the rules' [chat_pace]",
                                    registry=self.registry)
        self.postbacks_refused = Counter("shokai_postbacks_refused",
                                         "Postbacks refused as tampered (our prefix, a wrong mac)",
                                         registry=self.registry)
        # outbound webhooks ("webhook") and forwarded LINE bodies ("forward"): delivered, retry, failed, dropped
        self.delivery_attempts = Counter("shokai_delivery_attempts", "Delivery attempts by kind and outcome",
                                         ["kind", "outcome"], registry=self.registry)
        self.ack_seconds = Histogram("shokai_webhook_ack_seconds", "Time from request to 200",
                                     buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 2),
                                     registry=self.registry)
        # set from bot/web/health.py when /metrics is scraped (NaN when Redis did not answer)
        self.workers_live = Gauge("shokai_workers_live", "Workers whose heartbeat is younger than a lease",
                                  registry=self.registry)
        self.events_queued = Gauge("shokai_events_queued", "Events received and not yet finished",
                                   registry=self.registry)
        self.oldest_queued_seconds = Gauge("shokai_events_oldest_queued_seconds",
                                           "Age of the oldest event not yet finished (0 when none)",
                                           registry=self.registry)
        self.registry.register(RedisRoundTrips())
