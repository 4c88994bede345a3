"""The dashboard's Broadcasts page: compose a text or one of the bot's cards, pick or combine segments with a live
recipient count and what the send costs, preview it as LINE draws it, confirm the count, then watch the job.

    GET  /admin/broadcasts                    read: the latest jobs; with `broadcast`, the composer
    POST /admin/broadcasts/estimate           broadcast: the form's dry run as JSON (count, cost, messages)
    POST /admin/broadcasts                    broadcast: without confirmed=yes, the confirmation page (the count
                                              now, the cost, the preview); with it, the job (once per draft)
                                              and a 303 to its page
    GET  /admin/broadcasts/{id}               read: the job, its progress live (the page polls …/progress)
    GET  /admin/broadcasts/{id}/progress      read: the job view as JSON
    POST /admin/broadcasts/{id}/cancel        broadcast: 303 back to the job's page
    POST /admin/broadcasts/{id}/resume        broadcast: likewise
The segment "everyone" also needs `broadcast_everyone` (owners). Everything goes through Broadcasts
(bot/broadcasts/service.py) with by = "web:EMAIL", so the job and the audit log name the staff member.
"""
from __future__ import annotations

import dataclasses
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from bot.broadcasts import cards
from bot.broadcasts.service import SCHEDULE_AHEAD_MAX, BroadcastError, Broadcasts
from bot.line.flex import CardError
from bot.services import Services
from bot.web.dashboard.auth import Staff, requires
from bot.web.dashboard.render import language, refusal, render, translator
from rewards import segments
from rewards.segments import SegmentError

DRAFTS = uuid.UUID("8a3f0e64-5c1d-4f7b-9b2e-2d6c4a9e1f53")  # namespace: a draft's job id
DRAFT = re.compile(r"^[0-9a-f]{32}$")
LIVE = ("queued", "scheduled", "running")  # the page keeps polling while the job is in one of these
CANCELLABLE = ("queued", "scheduled", "running", "paused")
LANGUAGES = ("ja", "en")
LIST_LIMIT = 30
NAV = [("/admin/broadcasts", "dash_nav_broadcasts", "read")]  # the dashboard's nav (bot/web/dashboard/__init__.py)


class Refused(Exception):
    """The form asks for something this staff member may not do (the segment everyone without the permission)."""


@dataclass(frozen=True)
class Draft:
    """The composer's form, as sent: everything the confirmation page carries on to the job."""

    text: str
    card: str
    card_lang: str
    audience: str  # everyone | segments
    picks: tuple[str, ...]
    combine: str  # all | any
    when: str  # now | later
    scheduled_at: str
    draft: str  # the form's id: one job per draft, however often it is sent

    @classmethod
    def read(cls, form: Any) -> Draft:
        def one(name: str, default: str = "") -> str:
            return str(form.get(name, default)).strip()

        return cls(text=str(form.get("text", "")).replace("\r\n", "\n"), card=one("card"),
                   card_lang=one("card_lang", "ja"),
                   audience=one("audience", "segments"), picks=tuple(str(v) for v in form.getall("segment", [])),
                   combine=one("combine", "all"), when=one("when", "now"), scheduled_at=one("scheduled_at"),
                   draft=one("draft"))

    def segment(self) -> Any:
        """The segment JSON: None for everyone, else the picks combined."""
        if self.audience == "everyone":
            return None
        return segments.combine(list(self.picks), self.combine)

    def body(self, services: Services) -> dict[str, Any]:
        """The request body Broadcasts takes (bot/broadcasts/service.py); BroadcastError for a bad draft."""
        messages: list[dict[str, Any]] = []
        if self.text.strip():
            messages.append({"type": "text", "text": self.text})
        if self.card:
            try:
                messages.append(cards.message(services, self.card, self.card_lang))
            except CardError as exc:
                raise BroadcastError("INVALID_CARD", str(exc)) from exc
        if not messages:
            raise BroadcastError("INVALID_MESSAGES", "write a text or choose a card")
        body: dict[str, Any] = {"text": self.text} if messages == [{"type": "text", "text": self.text}] \
            else {"messages": messages}
        try:
            segment = self.segment()
        except SegmentError as exc:
            raise BroadcastError("INVALID_SEGMENT", exc.message) from exc
        if segment is not None:
            body["segment"] = segment
        if self.when == "later":
            if not self.scheduled_at:
                raise BroadcastError("INVALID_SCHEDULED_AT", "choose when to send it")
            body["scheduled_at"] = self.scheduled_at
        return body


Texts = Any  # t(key, **values): the page's language
# refusals the composer explains in the page's language (the service's own message follows, for the detail)
EXPLAINED = ("INVALID_TEXT", "INVALID_MESSAGES", "INVALID_SEGMENT", "UNKNOWN_PLACEHOLDER", "INVALID_SCHEDULED_AT",
             "INVALID_CARD", "INVALID_DRAFT", "FORBIDDEN")


def explain(t: Texts, code: str) -> str:
    return str(t("dash_bc_error_" + code.lower())) if code in EXPLAINED else ""


def cost_lines(t: Texts, answer: dict[str, Any]) -> list[tuple[str, str]]:
    """What an estimate says, as (kind, line) in the page's language: the count, what LINE counts, the month's
    quota and what goes beyond it (the composer shows these live; the confirmation page, once)."""
    n = "{:,}".format
    lines = [("count", t("dash_bc_js_recipients", count=n(answer["total"]))),
             ("messages", t("dash_bc_js_messages", messages=n(answer["messages"]), objects=answer["message_objects"]))]
    quota = answer["quota"]
    if quota is None:
        lines.append(("warn", t("dash_bc_js_quota_unknown")))
    elif quota["limit"] is None:
        lines.append(("quota", t("dash_bc_js_quota_unlimited", used=n(quota["used"]))))
    else:
        lines.append(("quota", t("dash_bc_js_quota", used=n(quota["used"]), limit=n(quota["limit"]))))
        if answer["over_quota"]:
            lines.append(("warn", t("dash_bc_js_over", over=n(answer["over_quota"]), yen=n(answer["yen"]))))
            lines.append(("warn", t("dash_bc_js_over_pause")))
        else:
            lines.append(("ok", t("dash_bc_js_within")))
    return lines


def describe(t: Texts, segment: Any, rules: Any, lang: str) -> str:
    """A segment in words, as the composer names its parts (JSON for what the composer cannot make)."""
    if segment == "everyone":
        return str(t("dash_bc_everyone"))
    if isinstance(segment, dict) and len(segment) == 1:
        (key, value), = segment.items()
        if key in ("all", "any") and isinstance(value, list):
            return (" AND " if key == "all" else " OR ").join(describe(t, v, rules, lang) for v in value)
        named = next((name for name, preset in segments.PRESETS.items() if preset == segment), None)
        if named:
            return str(t("dash_bc_seg_" + named))
        if key == "tier" and isinstance(value, list) and len(value) == 1:
            return str(t("dash_bc_seg_tier", tier=rules.tier_label(value[0], lang)))
        if key == "language" and isinstance(value, list) and len(value) == 1 and value[0] in LANGUAGES:
            return str(t("dash_bc_seg_language_" + value[0]))
    return json.dumps(segment, ensure_ascii=False)


def job_id(staff: Staff, draft: Draft, body: dict[str, Any]) -> str:
    """The job a confirmed draft makes: the same form sent again (a double click, a reload) finds the same job;
    a draft changed after going back in the browser is another broadcast."""
    what = json.dumps(body, ensure_ascii=False, sort_keys=True)
    return uuid.uuid5(DRAFTS, f"{staff.email}:{draft.draft}:{what}").hex


def _may_send(staff: Staff, draft: Draft) -> None:
    if draft.audience == "everyone" and not staff.may("broadcast_everyone"):
        raise Refused("only an owner may broadcast to everyone")


def _shop_time(services: Services, iso: str | None) -> str:
    if not iso:
        return ""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return moment.astimezone(services.program.rules.timezone).strftime("%Y-%m-%d %H:%M")


def _progress(services: Services, view: dict[str, Any]) -> dict[str, Any]:
    total, done = view["total"], view["sent"] + view["failed"]
    return {"reason": None, **view, "percent": 100 if view["status"] == "done" or not total else min(100, done * 100 // total),
            "live": view["status"] in LIVE, "can_cancel": view["status"] in CANCELLABLE,
            "can_resume": view["status"] == "paused",
            "created_local": _shop_time(services, view["created_at"]),
            "scheduled_local": _shop_time(services, view["scheduled_at"]),
            "finished_local": _shop_time(services, view["finished_at"])}


def setup(app: web.Application, services_key: web.AppKey[Services]) -> None:
    def services_of(request: web.Request) -> Services:
        return request.app[services_key]

    def service(request: web.Request) -> Broadcasts:
        return Broadcasts(services_of(request))

    def common(request: web.Request) -> dict[str, Any]:
        return {"public_base_url": services_of(request).settings.public_base_url.rstrip("/")}

    def composer(request: web.Request, staff: Staff, draft: Draft | None = None) -> dict[str, Any]:
        rules = services_of(request).program.rules
        lang = language(request)
        if draft is None:
            draft = Draft(text="", card="", card_lang=lang, audience="segments", picks=(), combine="all", when="now",
                          scheduled_at="", draft=uuid.uuid4().hex)
        elif not DRAFT.fullmatch(draft.draft):  # brought back to edit without its id: a new one
            draft = dataclasses.replace(draft, draft=uuid.uuid4().hex)
        shop_now = datetime.fromtimestamp(services_of(request).program.now_ms() / 1000, rules.timezone)
        return {
            "cards": cards.choices(services_of(request), lang), "presets": list(segments.PRESETS),
            "tiers": [(tier.name, tier.label_in(lang)) for tier in rules.tiers], "languages": LANGUAGES,
            "may_everyone": staff.may("broadcast_everyone"), "draft": draft,
            "timezone": str(rules.timezone),
            # the schedule's input: from now to the service's farthest (shop time, as the input reads it)
            "at_min": shop_now.strftime("%Y-%m-%dT%H:%M"),
            "at_max": (shop_now + SCHEDULE_AHEAD_MAX - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")}

    async def page_with(request: web.Request, staff: Staff, draft: Draft | None = None) -> web.StreamResponse:
        services = services_of(request)
        jobs = [_progress(services, v) for v in await service(request).latest(LIST_LIMIT)]
        context: dict[str, Any] = {"jobs": jobs, "may_send": staff.may("broadcast"), **common(request)}
        if staff.may("broadcast"):
            context.update(composer(request, staff, draft))
        return render(request, staff, "broadcasts.html", **context)

    @requires("read")
    async def page(request: web.Request, staff: Staff) -> web.StreamResponse:
        return await page_with(request, staff)

    async def dry_run(request: web.Request, staff: Staff, draft: Draft) -> tuple[dict[str, Any], list[dict]]:
        """The draft's estimate and the messages its first recipient would get (as typed when it reaches
        nobody); Refused or BroadcastError when it cannot be sent."""
        _may_send(staff, draft)
        b = service(request)
        body = draft.body(services_of(request))
        answer = await b.estimate(body)
        preview = answer.pop("preview")
        return answer, preview[0]["messages"] if preview else b.messages(body)

    @requires("broadcast")
    async def estimate(request: web.Request, staff: Staff) -> web.StreamResponse:
        t = translator(request, language(request))
        try:
            answer, messages = await dry_run(request, staff, Draft.read(await request.post()))
        except (Refused, BroadcastError) as exc:
            code, message, status = ("FORBIDDEN", str(exc), 403) if isinstance(exc, Refused) else (
                exc.code, exc.message, exc.status)
            return web.json_response({"error": {"code": code, "message": message, "text": explain(t, code)}},
                                     status=status)
        lines = [{"kind": kind, "text": text} for kind, text in cost_lines(t, answer)]
        return web.json_response({**answer, "lines": lines, "preview": messages})

    @requires("broadcast")
    async def create(request: web.Request, staff: Staff) -> web.StreamResponse:
        form = await request.post()
        draft = Draft.read(form)
        if draft.audience == "everyone" and not staff.may("broadcast_everyone"):
            return await refusal(request, staff, 403)
        if form.get("edit") == "yes":  # back from the confirmation: the composer with this draft
            return await page_with(request, staff, draft)
        lang = language(request)
        t = translator(request, lang)
        try:
            if not DRAFT.fullmatch(draft.draft):
                raise BroadcastError("INVALID_DRAFT", "the form has no draft id: open the composer again")
            if form.get("confirmed") != "yes":
                answer, messages = await dry_run(request, staff, draft)
                return render(request, staff, "broadcast_confirm.html", draft=draft, estimate=answer,
                              lines=cost_lines(t, answer), preview=messages, error=None,
                              who=describe(t, draft.segment() or "everyone", services_of(request).program.rules,
                                           lang), **common(request))
            body = draft.body(services_of(request))
            job = await service(request).create(body, by=staff.who, job_id=job_id(staff, draft, body))
        except BroadcastError as exc:
            return render(request, staff, "broadcast_confirm.html", status=exc.status, draft=draft,
                          error=explain(t, exc.code) or exc.message, detail=exc.message, error_code=exc.code)
        raise web.HTTPSeeOther(f"/admin/broadcasts/{job['id']}")

    async def job_view(request: web.Request) -> dict[str, Any] | None:
        view = await service(request).get(request.match_info["job_id"])
        return None if view is None else _progress(services_of(request), view)

    @requires("read")
    async def job(request: web.Request, staff: Staff) -> web.StreamResponse:
        view = await job_view(request)
        content = await service(request).content(request.match_info["job_id"])
        if view is None or content is None:
            return await refusal(request, staff, 404)
        lang = language(request)
        who = describe(translator(request, lang), content["segment"], services_of(request).program.rules, lang)
        return render(request, staff, "broadcast_job.html", job=view, may_send=staff.may("broadcast"), who=who,
                      preview=content["messages"], **common(request))

    @requires("read")
    async def progress(request: web.Request, staff: Staff) -> web.StreamResponse:
        view = await job_view(request)
        if view is None:
            return web.json_response({"error": {"code": "UNKNOWN_BROADCAST", "message": "no broadcast with that id"}},
                                     status=404)
        return web.json_response(view, headers={"Cache-Control": "no-store"})

    def action(name: str) -> Any:
        @requires("broadcast")
        async def handler(request: web.Request, staff: Staff) -> web.StreamResponse:
            job_id = request.match_info["job_id"]
            content = await service(request).content(job_id)
            if content is None:
                return await refusal(request, staff, 404)
            if name == "resume" and content["segment"] == "everyone" and not staff.may("broadcast_everyone"):
                return await refusal(request, staff, 403)  # resuming sends to everyone: an owner's, as creating it
            try:
                await getattr(service(request), name)(job_id, staff.who)
            except BroadcastError as exc:
                if exc.status == 404:
                    return await refusal(request, staff, 404)
                # pressed twice (cancelled already, no longer paused): the job's page shows how it stands
            raise web.HTTPSeeOther(f"/admin/broadcasts/{job_id}")
        return handler

    r = app.router
    r.add_get("/admin/broadcasts", page)
    r.add_post("/admin/broadcasts", create)
    r.add_post("/admin/broadcasts/estimate", estimate)
    r.add_get("/admin/broadcasts/{job_id}", job)
    r.add_get("/admin/broadcasts/{job_id}/progress", progress)
    r.add_post("/admin/broadcasts/{job_id}/cancel", action("cancel"))
    r.add_post("/admin/broadcasts/{job_id}/resume", action("resume"))
