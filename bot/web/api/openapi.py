"""The OpenAPI 3.1 description of /api/v1, served at GET /api/v1/openapi.json.

Built from the small tables below. A test checks that every /api/v1 route of the app is described here
and nothing else is, and that the document is valid OpenAPI 3.1. Add an endpoint: add a line to PATHS.
"""
from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from bot.line.limits import MESSAGES_PER_REQUEST_MAX, TEXT_MAX

USER_ID = {"type": "string", "pattern": "^U[0-9a-f]{32}$"}
ERROR = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
OBJECT = {"type": "object"}


def _obj(required: list[str], **properties: Any) -> dict[str, Any]:
    """A request body: these fields and no other (an unknown field is 400 UNKNOWN_FIELD)."""
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": False}


def _path_param(name: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema or {"type": "string"}}


def _query(name: str, schema: dict[str, Any], required: bool = False, description: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
    if description:
        out["description"] = description
    return out


PAGE = [_query("offset", {"type": "integer", "minimum": 0}), _query("limit", {"type": "integer", "minimum": 1,
                                                                              "maximum": 500})]
CUSTOMER_ID = {"type": "string", "pattern": "^[\\x21-\\x7a\\x7c\\x7e]{1,128}$",
               "description": "the shop's own customer id (printable ASCII without spaces, { or })"}
CONVERSION = _obj(["order_id", "amount"], order_id={"type": "string", "maxLength": 128}, user_id=USER_ID,
                  customer_id={**CUSTOMER_ID, "description": "instead of user_id: the shop's customer; linked, the "
                               "order is the linked member's (200); not linked yet, it is kept and answered 202 "
                               "{order_id, status: unattributed}, and credited when the customer links within "
                               "[account_link] unattributed_days"},
                  amount={"type": "integer", "minimum": 0},
                  occurred_at={"type": "string", "format": "date-time",
                               "description": "from 366 days ago to 5 minutes ahead; no offset: the shop's time "
                                              "zone"},
                  fingerprint={"type": "string", "maxLength": 128,
                               "description": "a hash the shop derives from e.g. the delivery address or payment "
                                              "token (never the raw value); a referred friend's order carrying one "
                                              "of the referrer's sends the referral to review"})
CONVERSION["oneOf"] = [{"required": ["user_id"]}, {"required": ["customer_id"]}]
BROADCAST = {"type": "object", "additionalProperties": False, "properties": {
    "text": {"type": "string", "maxLength": TEXT_MAX},
    "messages": {"type": "array", "minItems": 1, "maxItems": MESSAGES_PER_REQUEST_MAX, "items": OBJECT},
    "segment": {"description": "absent: every member who has not blocked the account; otherwise segment JSON "
                               "combining all / any / not over conditions (README, rewards/segments.py)"},
    "scheduled_at": {"type": "string", "format": "date-time",
                     "description": "send once due: from 5 minutes ago to 366 days ahead; no offset: the shop's "
                                    "time zone"},
    "dry_run": {"type": "boolean", "description": "answer the count and a preview; store nothing"}}}
REASON = _obj([], reason={"type": "string", "maxLength": 500})
WEBHOOK_EVENTS = ["member.joined", "member.linked", "referral.pending", "referral.completed", "referral.voided",
                  "reward.claimed", "points.expired"]  # bot/deliveries/outbound.py EVENTS (a test keeps them equal)
WEBHOOK = _obj(["url", "events"], url={"type": "string", "format": "uri", "maxLength": 2000},
               events={"type": "array", "minItems": 1, "items": {"enum": WEBHOOK_EVENTS}})
_USER = {"type": "string", "pattern": "^U[0-9a-f]{32}$"}
# each event's `data` (the payload is {type, timestamp, data}), described under the document's `webhooks`
EVENT_DATA: dict[str, tuple[str, dict[str, Any]]] = {
    "member.joined": ("A new friend followed the account (once per member, ever)", {"user_id": _USER}),
    "member.linked": ("A member linked their LINE account to a shop customer (account link)",
                      {"user_id": _USER, "customer_id": {"type": "string"}}),
    "referral.pending": ("A friend was attributed to a referrer's code; it completes with their qualifying order "
                         "(or at once when the rules' trigger is the join: then referral.completed follows)",
                         {"referrer_user_id": _USER, "friend_user_id": _USER}),
    "referral.completed": ("The referrer was paid for a friend (their order qualified, or staff approved it)",
                           {"referrer_user_id": _USER, "friend_user_id": _USER,
                            "referrer_points": {"type": "integer"}}),
    "referral.voided": ("A referral voided: staff voided it, or the order that completed it was refunded (what it "
                        "paid is taken back)",
                        {"referrer_user_id": _USER, "friend_user_id": _USER}),
    "reward.claimed": ("A member spent points on a catalog reward and got its coupon",
                       {"user_id": _USER, "reward_id": {"type": "string"}, "claim_id": {"type": "string"},
                        "cost": {"type": "integer"}, "coupon_code": {"type": "string"},
                        "expires_at": {"type": ["string", "null"], "format": "date-time"}}),
    "points.expired": ("Points of a member expired (the rules' [expiry])",
                       {"user_id": _USER, "points": {"type": "integer", "minimum": 1}}),
}


def _webhooks() -> dict[str, Any]:
    """OpenAPI 3.1's `webhooks`: what we POST to a registered endpoint, one entry per event."""
    headers = {"webhook-id": "the delivery's id (msg_…), the same on every retry: dedupe on it",
               "webhook-timestamp": "this attempt's time, unix seconds (refuse it more than 5 minutes off)",
               "webhook-signature": "v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\" keyed "
                                    "with the secret's base64-decoded part after whsec_>"}
    out = {}
    for name, (summary, data) in EVENT_DATA.items():
        payload = {"type": "object", "required": ["type", "timestamp", "data"], "properties": {
            "type": {"const": name}, "timestamp": {"type": "string", "format": "date-time"},
            "data": {"type": "object", "required": sorted(data), "properties": copy.deepcopy(data)}}}
        out[name] = {"post": {
            "summary": summary, "operationId": "webhook_" + name.replace(".", "_"),
            "parameters": [{"name": h, "in": "header", "required": True, "description": d,
                            "schema": {"type": "string"}} for h, d in headers.items()],
            "requestBody": {"required": True, "content": {"application/json": {"schema": payload}}},
            "responses": {"200": {"description": "any 2xx: delivered; anything else (or no answer within 10 s) "
                                                 "is retried: after 5 s, then the gap doubles up to an hour, for "
                                                 "24 hours"}}}}
    return out

# (method, path, summary, path params, query params, request body schema or None, success status)
PATHS: list[tuple[str, str, str, list[dict], list[dict], dict | None, int]] = [
    ("post", "/api/v1/conversions", "Report a purchase (idempotent by order_id)", [], [], CONVERSION, 200),
    ("post", "/api/v1/conversions/{order_id}/refund", "Reverse what an order awarded, once",
     [_path_param("order_id")], [], None, 200),
    ("get", "/api/v1/members", "Find a member by invite code (or link, or user id)", [],
     [_query("code", {"type": "string"}, required=True)], None, 200),
    ("get", "/api/v1/members/{user_id}", "A member's points, tier, referrals and welcome coupon",
     [_path_param("user_id", USER_ID)], [], None, 200),
    ("patch", "/api/v1/members/{user_id}", "Set the birthday (once) and gift_referral_reward",
     [_path_param("user_id", USER_ID)], [], _obj([], birthday={"type": "string", "pattern": "^([0-9]{4}-)?[0-9]{2}-[0-9]{2}$"},
                                                 gift_referral_reward={"type": "boolean"}), 200),
    ("get", "/api/v1/members/{user_id}/ledger", "A member's ledger entries, newest first",
     [_path_param("user_id", USER_ID)], PAGE, None, 200),
    ("get", "/api/v1/members/{user_id}/export", "Everything kept about one member, as JSON (APPI); `keys` lists "
     "the Redis keys it was read from", [_path_param("user_id", USER_ID)], [], None, 200),
    ("delete", "/api/v1/members/{user_id}", "Erase a member's personal data (APPI): points forfeited, the ledger's "
     "amounts kept under a pseudonym, audited; afterwards this and the export answer 404",
     [_path_param("user_id", USER_ID)], [], None, 200),
    ("post", "/api/v1/members/{user_id}/adjustments", "A manual points adjustment (Idempotency-Key header)",
     [_path_param("user_id", USER_ID)], [], _obj(["points", "reason"], points={"type": "integer"},
                                                 reason={"type": "string", "maxLength": 500},
                                                 operation_id={"type": "string", "maxLength": 128}), 200),
    ("post", "/api/v1/events", "A custom event the rules name (review, share…), once per event_id; value: a "
     "review's stars, for [prompts] event_min_value", [], [],
     _obj(["user_id", "name", "event_id"], user_id=USER_ID, name={"type": "string"}, event_id={"type": "string"},
          value={"type": "integer", "minimum": 0, "maximum": 1_000_000}),
     200),
    ("get", "/api/v1/referrals", "Referrals by status (refused = voided); review also lists referrals flagged as "
     "part of a referral ring ([rings]), each with ring: {group, score, reasons, cleared}", [],
     [_query("status", {"type": "string", "enum": ["pending", "review", "completed", "voided", "refused"]},
             required=True), *PAGE], None, 200),
    ("get", "/api/v1/referrals/{friend_id}", "One referral with its evidence: fingerprints on both sides' orders, "
     "timing (follow, attribution, order), the pair's history, a ring flag", [_path_param("friend_id", USER_ID)],
     [], None, 200),
    ("post", "/api/v1/referrals/{friend_id}/approve", "Approve a referral held for review (pays both once); "
     "for one only flagged as part of a referral ring, clear the flag (ring_cleared: true)",
     [_path_param("friend_id", USER_ID)], [], REASON, 200),
    ("post", "/api/v1/referrals/{friend_id}/void", "Void a pending or reviewed referral",
     [_path_param("friend_id", USER_ID)], [], REASON, 200),
    ("get", "/api/v1/rewards", "The reward catalog with stock", [], [], None, 200),
    ("post", "/api/v1/rewards/{reward_id}/stock", "Add (or remove) stock", [_path_param("reward_id")], [],
     _obj(["add"], add={"type": "integer"}), 200),
    ("post", "/api/v1/rewards/{reward_id}/codes", "Upload codes to a reward's pool", [_path_param("reward_id")], [],
     _obj(["codes"], codes={"type": "array", "items": {"type": "string"}, "maxItems": 10000}), 200),
    ("get", "/api/v1/coupons/{token}", "Look up a scanned coupon", [_path_param("token")], [], None, 200),
    ("post", "/api/v1/coupons/{token}/use", "Mark a coupon used (once; 409 after; Idempotency-Key header)",
     [_path_param("token")], [], None, 200),
    ("post", "/api/v1/broadcasts", "Queue a broadcast (dry_run: 200 with count and preview)", [], [], BROADCAST,
     202),
    ("get", "/api/v1/broadcasts", "The latest broadcasts, newest first", [],
     [_query("limit", {"type": "integer", "minimum": 1, "maximum": 500})], None, 200),
    ("get", "/api/v1/broadcasts/{job_id}", "A broadcast's progress", [_path_param("job_id")], [], None, 200),
    ("post", "/api/v1/broadcasts/{job_id}/cancel", "Stop a broadcast between batches (409 when finished)",
     [_path_param("job_id")], [], None, 200),
    ("post", "/api/v1/broadcasts/{job_id}/resume", "Carry on a paused broadcast (409 when not paused)",
     [_path_param("job_id")], [], None, 200),
    ("get", "/api/v1/stats", "Running totals and the numbers by day (report)", [],
     [_query("days", {"type": "integer", "minimum": 1, "maximum": 90})], None, 200),
    ("get", "/api/v1/budget", "[budget]: each monthly budget's spend, cap, share and state, and the referral "
     "completions held for it", [], [], None, 200),
    ("post", "/api/v1/budget/release", "Release referral completions held for the budget (all, or friend_ids): "
     "approved past the cap, each paid once, audited", [], [],
     _obj([], friend_ids={"type": "array", "items": USER_ID, "maxItems": 500},
          reason={"type": "string", "maxLength": 500}), 200),
    ("get", "/api/v1/experiments", "Offer experiments ([[experiments]] in the rules): per arm, referrers, invites "
     "shown, shares, attributions, completions, completion rate, K-factor, cost per friend in yen, with 95% intervals "
     "and whether the arms differ yet", [], [], None, 200),
    ("post", "/api/v1/experiments/{experiment_id}/end", "End an experiment: everyone gets the winning arm's offer "
     "from now on (audited once; the same winner again changes nothing, another is 409 ALREADY_ENDED)",
     [_path_param("experiment_id")], [], _obj(["winner"], winner={"type": "string", "maxLength": 40}), 200),
    ("get", "/api/v1/audit", "The audit log, oldest first, paged by cursor", [],
     [_query("after", {"type": "string"}, description="the `next` of the previous page"),
      _query("limit", {"type": "integer", "minimum": 1, "maximum": 500})], None, 200),
    ("get", "/api/v1/exports/members.csv", "Every member as CSV (streamed)", [], [], None, 200),
    ("get", "/api/v1/exports/ledger.csv", "Every ledger entry as CSV (streamed)", [], [], None, 200),
    ("get", "/api/v1/staff", "Staff: from STAFF_USER_IDS and added here", [], [], None, 200),
    ("post", "/api/v1/staff/{user_id}", "Make a user staff", [_path_param("user_id", USER_ID)], [], None, 200),
    ("delete", "/api/v1/staff/{user_id}", "Remove a staff member added here", [_path_param("user_id", USER_ID)], [],
     None, 200),
    ("post", "/api/v1/account-links", "The shop's server, after its customer logged in: a nonce for LINE's account "
     "link (10 minutes, once) and the redirect_url to send the customer to", [], [],
     _obj(["link_token", "customer_id"], link_token={"type": "string", "maxLength": 256}, customer_id=CUSTOMER_ID),
     201),
    ("get", "/api/v1/customers/{customer_id}", "The member linked to a shop customer (as GET /members/{user_id}); "
     "404 UNKNOWN_CUSTOMER when none", [_path_param("customer_id", CUSTOMER_ID)], [], None, 200),
    ("post", "/api/v1/imports/members", "Import the shop's members from CSV (friends from before: never referable "
     "as new; an opening balance once per member; a customer link): up to 1,000 rows answered at once, longer files "
     "a job (202)", [], [], None, 200),
    ("post", "/api/v1/imports/orders", "Import past orders from CSV: they count for \"already a customer\" and tiers "
     "by spend and earn nothing (no points, no referral step, no notice); longer files a job (202)", [], [], None,
     200),
    ("get", "/api/v1/imports/{import_id}", "An import job's progress (kept 7 days)",
     [_path_param("import_id", {"type": "string", "pattern": "^[0-9a-f]{32}$"})], [], None, 200),
    ("post", "/api/v1/webhooks", "Register an outbound webhook endpoint (Standard Webhooks; the events under "
     "`webhooks` below): 201 {id, url, events, secret: \"whsec_…\" (shown this once), enabled, …}. url: https, or "
     "http to a loopback address (400 INVALID_URL); unknown event names: 400 UNKNOWN_EVENT", [], [], WEBHOOK, 201),
    ("get", "/api/v1/webhooks", "The endpoints: {webhooks: [{id, url, events, secret (masked), enabled, "
     "disabled_at, disabled_reason, failing_since, created_at}]}", [], [], None, 200),
    ("patch", "/api/v1/webhooks/{id}", "Enable an endpoint again after it was disabled for failing "
     "(body {\"enabled\": true}); deliveries resume with the next event", [_path_param("id")], [],
     _obj(["enabled"], enabled={"const": True}), 200),
    ("delete", "/api/v1/webhooks/{id}", "Delete an endpoint; its pending deliveries are dropped",
     [_path_param("id")], [], None, 200),
    ("get", "/api/v1/webhooks/{id}/deliveries", "An endpoint's deliveries, newest first, each with every attempt",
     [_path_param("id")], [_query("limit", {"type": "integer", "minimum": 1, "maximum": 500})], None, 200),
    ("get", "/api/v1/shopify/data-requests", "Shopify's customers/data_request webhooks kept for staff, oldest first, "
     "each with what we hold about the customer: answer the store within 30 days", [], [], None, 200),
    ("get", "/api/v1/openapi.json", "This document", [], [], None, 200),
]


# success bodies described field by field (the others: an object)
RESPONSES: dict[str, dict[str, Any]] = {
    "/api/v1/members/{user_id}": {"type": "object", "properties": {
        "friend_coupon": {"type": ["object", "null"], "required": ["code"],
                          "properties": {"code": {"type": "string"}},
                          "description": "the welcome coupon a referral gave this member ([referral.friend_coupon]); "
                                         "null: none (yet). Its code names the member when it comes back on an "
                                         "order"},
        "customer_id": {"type": ["string", "null"], "description": "the shop customer linked to this member (account "
                                                                  "link); null: none"}}},
}


RESPONSES["/api/v1/customers/{customer_id}"] = RESPONSES["/api/v1/members/{user_id}"]  # the same member view

# CSV imports (README "Importing what the shop already has"): a text/csv body, line 1 the header
ROW_ERRORS = {"type": "array", "items": {"type": "object", "required": ["line", "code"], "properties": {
    "line": {"type": "integer", "minimum": 2, "description": "the file's line, the header being line 1"},
    "code": {"type": "string", "description": "why the row stored nothing (README: the row codes)"}}}}
IMPORTED = {"type": "object", "required": ["imported", "skipped", "errors"], "properties": {
    "imported": {"type": "integer", "description": "rows that changed something"},
    "skipped": {"type": "integer", "description": "rows already imported: nothing changed (the same file again)"},
    "errors": ROW_ERRORS}}
IMPORT_JOB = {"type": "object", "required": ["id", "kind", "status", "lines_read", "imported", "skipped", "errors",
                                             "errors_total", "created_at", "finished_at"], "properties": {
    "id": {"type": "string"}, "kind": {"enum": ["members", "orders"]},
    "status": {"enum": ["running", "done", "failed", "interrupted"],
               "description": "interrupted: its process stopped; post the same file again to finish it (rows done "
                              "are skipped)"},
    "lines_read": {"type": "integer", "description": "lines of the file read so far, the header included"},
    "imported": {"type": "integer"}, "skipped": {"type": "integer"},
    "errors": {**ROW_ERRORS, "description": "the first 1,000 row errors"},
    "errors_total": {"type": "integer"}, "created_at": {"type": "integer", "description": "ms"},
    "finished_at": {"type": ["integer", "null"], "description": "ms"}}}
RESPONSES["/api/v1/imports/members"] = IMPORTED
RESPONSES["/api/v1/imports/orders"] = IMPORTED
RESPONSES["/api/v1/imports/{import_id}"] = IMPORT_JOB
INTERVAL = {"type": ["object", "null"], "required": ["value", "low", "high"],
            "properties": {"value": {"type": "number"}, "low": {"type": "number"}, "high": {"type": "number"}},
            "description": "the estimate and its 95% interval; null until there is something to estimate"}
COUNT = {"type": "integer", "minimum": 0}
RESPONSES["/api/v1/experiments"] = {"type": "object", "required": ["experiments"], "properties": {"experiments": {
    "type": "array", "items": {"type": "object", "required": ["id", "status", "arms", "significant", "methods"],
                               "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "starts": {"type": "string"},
        "ends": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["scheduled", "running", "ended", "over"],
                   "description": "ended: won by `ended.winner` (POST .../end); over: past its `ends`"},
        "ended": {"type": ["object", "null"], "properties": {"winner": {"type": "string"}, "at": {"type": "integer"},
                                                              "by": {"type": "string"}}},
        "significant": {"type": "boolean", "description": "an arm's completion rate differs from the first arm's"},
        "alpha": {"type": "number"}, "methods": OBJECT,
        "arms": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "share": COUNT, "offer": OBJECT, "referrers": COUNT, "invites_shown": COUNT,
            "shares": COUNT, "attributions": COUNT, "completions": COUNT, "completion_rate": INTERVAL,
            "converting_referrers": INTERVAL, "k_factor": INTERVAL, "points": COUNT, "cost_yen": COUNT,
            "cost_per_friend_yen": INTERVAL,
            "vs_first": {"type": ["object", "null"], "properties": {
                "z": {"type": "number"}, "p": {"type": "number"}, "significant": {"type": "boolean"}}}}}}}}}}}
CSV_BODIES = {
    "/api/v1/imports/members": "header user_id[,customer_id][,points][,joined_at] in any order (only user_id "
                               "required); UTF-8, a BOM and CRLF are fine; one row a line, at most 4,096 bytes; "
                               "64 MiB in all",
    "/api/v1/imports/orders": "header order_id,amount,occurred_at and user_id and/or customer_id (each row names "
                              "its buyer by exactly one); UTF-8, a BOM and CRLF are fine; one row a line, at most "
                              "4,096 bytes; 64 MiB in all",
}
CSV_ANSWERS = {
    "202": "more than 1,000 rows: a job, {id}; follow it at GET /api/v1/imports/{id}",
    "400": "the header is empty, names an unknown or doubled column, or lacks a required one (nothing imported)",
    "408": "BODY_TIMEOUT: the body stalled", "413": "BODY_TOO_LARGE: over 64 MiB",
    "415": "UNSUPPORTED_MEDIA_TYPE: not Content-Type text/csv"}

# answers besides the success status, by (method, path)
OTHER_SUCCESS = {("post", "/api/v1/conversions"): {
    "202": "kept: the customer_id is not linked to a LINE user yet; {order_id, status: \"unattributed\"}, credited "
           "when the customer links within [account_link] unattributed_days"}}

# The LIFF page's two calls (README "Invites through LIFF"): no admin token, an ID token from LINE instead.
LIFF_BODY = _obj(["id_token", "code"], id_token={"type": "string", "description": "liff.getIDToken(), verified with "
                                                                             "LINE; the user is its `sub`"},
                 code={"type": "string", "pattern": "^[2-9A-HJ-NP-Z]{8}$"})
LIFF_PATHS = [
    ("/liff/v1/attribution", "Attribute the LIFF page's viewer to an invite code: 200 {status: pending | "
     "awaiting_follow | refused, reason?, message}; the same request again answers the current status"),
    ("/liff/v1/shares", "Count a completed liff.shareTargetPicker share, once per person, code and day: 200 "
     "{counted}"),
]


def _liff_responses() -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {"200": {"description": "OK", "content": {"application/json": {"schema": OBJECT}}},
            "400": {"description": "the body is malformed (nothing changed)", **error},
            "401": {"description": "INVALID_ID_TOKEN: LINE refused the token, or it is for another channel", **error},
            "404": {"description": "LIFF_DISABLED: LIFF_ID is not set", **error},
            "429": {"description": "too many unknown codes or refused tokens from this address", **error},
            "503": {"description": "LINE_UNAVAILABLE: LINE's verify did not answer; try again", **error}}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "schema": {"type": "string"}, "description": description}


# Shopify's webhooks (README "Connect your Shopify store"): no admin token, Shopify's HMAC instead
SHOPIFY_WEBHOOK = {"post": {
    "summary": "A Shopify webhook (orders/paid, refunds/create, customers/data_request, customers/redact, "
               "shop/redact; other topics: 200, counted), verified and queued durably, then 200",
    "operationId": "post_webhooks_shopify", "security": [],
    "parameters": [
        _header("X-Shopify-Hmac-Sha256", "base64 HMAC-SHA256 of the raw body keyed with SHOPIFY_WEBHOOK_SECRET"),
        _header("X-Shopify-Topic", "the topic, e.g. orders/paid"),
        _header("X-Shopify-Webhook-Id", "the webhook's id: the same id again changes nothing"),
        _header("X-Shopify-Shop-Domain", "the store, e.g. example.myshopify.com"),
        {**_header("X-Shopify-Triggered-At", "when the event happened (orders an order's webhooks)"),
         "required": False}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": OBJECT}}},
    "responses": {
        "200": {"description": "queued (or a duplicate, or a topic we do not handle)"},
        "400": {"description": "signed, but a required header or the topic's required fields are missing"},
        "401": {"description": "X-Shopify-Hmac-Sha256 missing or wrong: nothing stored"},
        "404": {"description": "SHOPIFY_WEBHOOK_SECRET is not set"},
        "413": {"description": "the body is over 1 MiB"},
        "503": {"description": "Redis did not take it: Shopify retries"}}}}


def _responses(success: int, path: str) -> dict[str, Any]:
    content = ({"text/csv": {"schema": {"type": "string"}}} if path.endswith(".csv")
               else {"application/json": {"schema": copy.deepcopy(RESPONSES.get(path, OBJECT))}})
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {str(success): {"description": "OK", "content": content},
            "400": {"description": "the request is malformed", **error},
            "401": {"description": "no bearer token", **error},
            "403": {"description": "wrong bearer token, or ADMIN_TOKEN unset", **error},
            "404": {"description": "not found", **error},
            "409": {"description": "conflicts with the current state", **error}}


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, path_params, query, body, success in PATHS:
        operation: dict[str, Any] = {"summary": summary, "operationId": f"{method}_{path}".replace("/api/v1/", "")
                                     .replace("/", "_").replace("{", "").replace("}", "").replace(".", "_"),
                                     "responses": _responses(success, path)}
        for status, description in OTHER_SUCCESS.get((method, path), {}).items():
            operation["responses"][status] = {"description": description,
                                              "content": {"application/json": {"schema": OBJECT}}}
        if path_params or query:
            operation["parameters"] = copy.deepcopy(path_params + query)
        if body is not None:
            operation["requestBody"] = {"required": body is not REASON,  # approve/void take an optional reason
                                        "content": {"application/json": {"schema": copy.deepcopy(body)}}}
        paths.setdefault(path, {})[method] = operation
    for path, described in CSV_BODIES.items():
        operation = paths[path]["post"]
        operation["requestBody"] = {"required": True, "content": {"text/csv": {"schema": {"type": "string",
                                                                                          "description": described}}}}
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        for status, description in CSV_ANSWERS.items():
            body = ({"content": {"application/json": {"schema": _obj(["id"], id={"type": "string"})}}}
                    if status == "202" else error)
            operation["responses"][status] = {"description": description, **body}
    for path, summary in LIFF_PATHS:
        paths[path] = {"post": {"summary": summary, "security": [],
                                "operationId": "post_" + path.strip("/").replace("/", "_"),
                                "requestBody": {"required": True,
                                                "content": {"application/json": {"schema": copy.deepcopy(LIFF_BODY)}}},
                                "responses": _liff_responses()}}
    paths["/webhooks/shopify"] = copy.deepcopy(SHOPIFY_WEBHOOK)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Shokai admin API", "version": "1",
                 "description": "Every call needs Authorization: Bearer $ADMIN_TOKEN. Errors are "
                                "{\"error\": {\"code\", \"message\"}} with a 4xx status."},
        "paths": paths,
        "webhooks": _webhooks(),
        "components": {"schemas": {"Error": ERROR},
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


def setup(app: web.Application) -> None:
    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(document())

    app.router.add_get("/api/v1/openapi.json", openapi)
