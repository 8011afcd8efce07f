"""Dashboard pages for outbound campaigns: progress, contacts and outcomes, pause/resume/cancel.

Routes:
    GET  /dashboard/campaigns                    every campaign with its progress
    GET  /dashboard/campaigns/{id}               rules, progress, outcomes, contacts (?offset=)
    POST /dashboard/campaigns/{id}/{action}      pause, resume or cancel, then back to the page

The buttons post with the operator's session cookie, which is SameSite=Strict (no other
site's page can send it); a post whose ``Origin`` is another site is refused as well.
The export links go to the JSON API (``/api/campaigns/{id}/export``), which takes the
same session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from loguru import logger

from bot.call.records import CallRecords
from bot.operator.auth import NOT_CONFIGURED, OperatorAuth
from bot.operator.campaigns_api import CampaignStores, no_op
from bot.operator.dashboard import _locked_out, _message, _page  # pyright: ignore[reportPrivateUsage]
from integrations.outbound.campaign_types import CampaignNotFound, CampaignStateError

PAGE = 100
ACTIONS = ("pause", "resume", "cancel")


def create_campaigns_dashboard_router(
    records: Callable[[], CallRecords | None],
    auth: OperatorAuth,
    on_campaign_changed: Callable[[str], None] = no_op,
) -> APIRouter:
    """The ``/dashboard/campaigns`` pages."""
    router = APIRouter(prefix="/dashboard/campaigns")
    stores = CampaignStores(records)

    async def guard(request: Request) -> Response | None:
        if not auth.configured:
            return _message(request, "Campaigns", NOT_CONFIGURED, 403)
        access = await auth.check(request)
        if access.granted:
            return None
        if access.retry_after_s:
            return _locked_out(request, access.retry_after_s)
        return RedirectResponse(f"/dashboard/login?next={quote(request.url.path)}", 303)

    def unavailable(request: Request, error: Exception) -> Response:
        logger.error(f"dashboard: campaigns page failed ({type(error).__name__})")
        return _message(request, "Campaigns", "The call-record database is unavailable.", 503)

    @router.get("")
    async def campaigns_page(request: Request) -> Response:
        """Every campaign, newest first, with its progress."""
        if (refused := await guard(request)) is not None:
            return refused
        if records() is None:
            return _message(request, "Campaigns", "Call records are not enabled.", 503)
        try:
            found = await asyncio.to_thread(stores().campaigns, limit=200)
        except Exception as e:  # noqa: BLE001
            return unavailable(request, e)
        rows = [_summary(c) for c in found]
        return _page(request, "campaigns.html", "Campaigns", campaigns=rows)

    @router.get("/{campaign_id}")
    async def campaign_page(
        request: Request, campaign_id: str, offset: int = Query(0, ge=0, le=10_000_000)
    ) -> Response:
        """One campaign: rules, progress, outcomes and a page of contacts."""
        if (refused := await guard(request)) is not None:
            return refused
        if records() is None:
            return _message(request, "Campaign", "Call records are not enabled.", 503)
        store = stores()

        def read() -> tuple[Any, Any]:
            return store.campaign(campaign_id), store.contacts(
                campaign_id, limit=PAGE, offset=offset
            )

        try:
            info, contacts = await asyncio.to_thread(read)
        except CampaignNotFound:
            return _message(request, "Campaign", f"No campaign {campaign_id}.", 404)
        except Exception as e:  # noqa: BLE001
            return unavailable(request, e)
        return _page(
            request,
            "campaign.html",
            f"Campaign {info.name}",
            campaign=_summary(info),
            rules=info.rules,
            contacts=contacts,
            offset=offset,
            page=PAGE,
            actions=_actions(info.state),
        )

    @router.post("/{campaign_id}/{action}")
    async def campaign_action(request: Request, campaign_id: str, action: str) -> Response:
        """Pause, resume or cancel, then back to the campaign's page."""
        if (refused := await guard(request)) is not None:
            return refused
        if action not in ACTIONS:
            return _message(request, "Campaign", "No such action.", 404)
        if not _same_origin(request):
            return _message(request, "Campaign", "Refused: the form came from another site.", 403)
        try:
            info = await asyncio.to_thread(getattr(stores(), action), campaign_id)
        except CampaignNotFound:
            return _message(request, "Campaign", f"No campaign {campaign_id}.", 404)
        except CampaignStateError as e:
            return _message(request, "Campaign", str(e), 409)
        except Exception as e:  # noqa: BLE001
            return unavailable(request, e)
        if action == "resume":
            on_campaign_changed(info.id)
        return RedirectResponse(f"/dashboard/campaigns/{quote(info.id)}", 303)

    return router


def _same_origin(request: Request) -> bool:
    """No ``Origin`` (older browsers, tools) or this server's own."""
    origin = request.headers.get("origin")
    if not origin:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _actions(state: str) -> list[str]:
    return {
        "running": ["pause", "cancel"],
        "paused": ["resume", "cancel"],
    }.get(state, [])


def _summary(info: Any) -> dict[str, Any]:
    progress = info.progress
    finished = progress.total - progress.count("pending") - progress.count("dialing")
    return {
        "id": info.id,
        "name": info.name,
        "agent": info.agent,
        "state": info.state,
        "created_at": info.created_at,
        "progress": progress,
        "finished": finished,
        "percent": 0 if not progress.total else round(100 * finished / progress.total),
    }
