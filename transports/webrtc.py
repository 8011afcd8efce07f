"""Browser calls over WebRTC: the call page, its signalling routes and the transport.

The page (``transports/static``) is a plain ``RTCPeerConnection`` client that works
offline. It posts its SDP offer to ``POST /api/offer``, trickles late ICE candidates
with ``PATCH /api/offer`` and speaks RTVI over a data channel. Pipecat's
``SmallWebRTCRequestHandler`` answers the offers.

Both signalling requests must be ``application/json`` (anything else: 415, so a
cross-site form or ``text/plain`` post is refused before it is read). An offer for a new
connection first passes the router's :class:`OfferGate` (the server's: origin, credentials,
call cap; see ``bot/web/call_access.py``), which returns the call's slot. A new peer
connection is handed to ``on_connection`` (with the caller's parameters and the slot) only
once it is actually connected; one that is not connected within ``connect_timeout_s`` is
closed and its slot released, so an offer nobody follows up starts no call and leaves no
record.

The bodies of both requests are read and checked in :mod:`transports.webrtc_signalling`.
Takes plain values (the server passes them from settings); reads no configuration.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from loguru import logger
from pipecat.transports.base_transport import TransportParams
from pipecat.transports.smallwebrtc.connection import IceServer, SmallWebRTCConnection
from pipecat.transports.smallwebrtc.request_handler import SmallWebRTCRequestHandler
from pipecat.transports.smallwebrtc.transport import SmallWebRTCTransport

from transports.webrtc_signalling import json_object, parse_offer, parse_patch

STATIC_DIR = Path(__file__).parent / "static"
PAGE = "index.html"

MEDIA_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

DEFAULT_CONNECT_TIMEOUT_S = 10.0


class Admitted(Protocol):
    """What an admitted offer holds until its call ends (a place under the call cap)."""

    def release(self) -> None:
        """Give the place back (idempotent)."""
        ...


class OfferGate(Protocol):
    """Decides which signalling requests are accepted (the server's policy)."""

    async def admit(
        self, request: Request, body: Mapping[str, Any], params: Mapping[str, str]
    ) -> Admitted:
        """Admit an offer for a new connection (a new call) or raise an ``HTTPException``.

        ``params`` are the caller's parameters exactly as the call will get them.
        """
        ...

    async def allow(self, request: Request) -> None:
        """Accept a request about an existing connection or raise an ``HTTPException``.

        Such requests are renegotiations and trickled ICE candidates.
        """
        ...


class _NothingHeld:
    def release(self) -> None:
        pass


class OpenGate:
    """An :class:`OfferGate` that accepts every request (tests of the signalling alone)."""

    async def admit(
        self, request: Request, body: Mapping[str, Any], params: Mapping[str, str]
    ) -> Admitted:
        """Accept."""
        return _NothingHeld()

    async def allow(self, request: Request) -> None:
        """Accept."""


OnConnection = Callable[[SmallWebRTCConnection, dict[str, str], Admitted], Awaitable[None]]
"""Called once per new peer connection, when it is connected, with the caller's parameters
(e.g. ``caller``) and what its offer was admitted with (release it when the call ends)."""


class PeerOwners(Protocol):
    """Which process holds each peer connection, when several serve one deployment.

    The browser trickles its ICE candidates (``PATCH /api/offer``) in requests of their own,
    which a load balancer may send to another process than the one that answered the offer.
    """

    async def hold(self, pc_id: str) -> Callable[[], Coroutine[Any, Any, None]]:
        """Record that this process holds ``pc_id``; returns what lets it go."""
        ...

    async def forward_patch(self, pc_id: str, body: dict[str, Any]) -> bool:
        """Hand a trickle-ICE request to the process holding ``pc_id``; whether one took it."""
        ...


class WebRTCRouter(APIRouter):
    """The call page and its signalling routes; ``close()`` ends every peer connection."""

    def __init__(self, handler: SmallWebRTCRequestHandler, ice_servers: list[IceServer]) -> None:
        super().__init__()
        self.handler = handler
        self.ice_servers = ice_servers
        self.pending: set[asyncio.Task[None]] = set()
        """Peer connections waiting to connect (one watcher task each)."""

    async def add_candidates(self, body: dict[str, Any]) -> None:
        """Add trickled ICE candidates (a ``PATCH /api/offer`` body another process received).

        Raises:
            HTTPException: 400 for a malformed body, 404 for a peer not held here.
        """
        try:
            await self.handler.handle_patch_request(parse_patch(body))
        except (ValueError, AssertionError, TypeError, IndexError):
            raise HTTPException(400, "an ICE candidate could not be parsed") from None

    async def close(self) -> None:
        """Stop waiting for peers and disconnect every open peer connection (app shutdown)."""
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)
        await self.handler.close()


def create_webrtc_router(
    on_connection: OnConnection,
    *,
    ice_servers: list[str | IceServer] | None = None,
    gate: OfferGate | None = None,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    peers: PeerOwners | None = None,
) -> WebRTCRouter:
    """Build the routes of the browser call page.

    Routes:
        ``GET /``: the call page (``#caller=ID``, or ``?caller=ID``, is sent in the
        offer's ``request_data`` and passed on to ``on_connection``;
        ``?raw=1`` turns off the browser's echo cancellation, noise suppression and
        gain control, for tests that feed a file as the microphone).
        ``GET /static/{name}``: the page's script and style sheet.
        ``GET /api/webrtc-config``: the ICE servers the page should use.
        ``POST /api/offer``: an SDP offer in (``application/json``), the SDP answer and
        ``pc_id`` out.
        ``PATCH /api/offer``: trickled ICE candidates for a ``pc_id``.

    Args:
        on_connection: Awaited once per new peer connection, once it is connected, with
            the connection, the caller's parameters (the offer request's query parameters
            merged with its ``request_data`` object, string values only) and what the gate
            admitted the offer with.
        ice_servers: STUN/TURN servers for the server side and the page: URLs or
            ``IceServer`` objects. None or empty for host candidates only.
        gate: Which offers are accepted; None accepts all (:class:`OpenGate`).
        connect_timeout_s: How long a new peer connection may take to connect before it
            is closed without a call.
        peers: Where the deployment's processes record the peers they hold, so that a
            trickle-ICE request for another process's peer reaches it (None: one process).

    Returns:
        The router; include it in the app and await its ``close()`` at shutdown.

    """
    servers = [IceServer(urls=s) if isinstance(s, str) else s for s in ice_servers or []]
    handler = SmallWebRTCRequestHandler(ice_servers=servers or None)
    router = WebRTCRouter(handler, servers)
    static_files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}

    @router.get("/", include_in_schema=False)
    async def call_page() -> FileResponse:
        return FileResponse(STATIC_DIR / PAGE, headers={"Cache-Control": "no-cache"})

    @router.get("/static/{name}", include_in_schema=False)
    async def static_file(name: str) -> FileResponse:
        path = static_files.get(name)
        if path is None:
            raise HTTPException(404, "no such file")
        suffix = path.suffix.lower()
        media_type = MEDIA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "text/plain"
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})

    @router.get("/api/webrtc-config")
    async def webrtc_config() -> dict[str, Any]:
        return {"iceServers": [_ice_server_json(s) for s in servers]}

    offer_gate: OfferGate = gate or OpenGate()
    live: set[str] = set()  # pc_ids of this router's peer connections that are not closed

    async def forget_when_closed(connection: SmallWebRTCConnection) -> None:
        pc_id = connection.pc_id
        live.add(pc_id)
        release = await peers.hold(pc_id) if peers is not None else None

        def on_state() -> None:
            nonlocal release
            if connection.pc.connectionState in ("closed", "failed"):
                live.discard(pc_id)
                if release is not None:  # once
                    task = asyncio.create_task(release())
                    release = None
                    router.pending.add(task)
                    task.add_done_callback(router.pending.discard)

        connection.pc.on("connectionstatechange", on_state)

    async def await_peer(
        connection: SmallWebRTCConnection, params: dict[str, str], admitted: Admitted
    ) -> None:
        """Hand the connection on once connected; close it and release its slot if not."""
        pc = connection.pc
        changed = asyncio.Event()
        pc.on("connectionstatechange", changed.set)
        try:
            async with asyncio.timeout(connect_timeout_s):
                while pc.connectionState not in ("connected", "failed", "closed"):
                    await changed.wait()
                    changed.clear()
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            admitted.release()
            raise
        finally:
            pc.remove_listener("connectionstatechange", changed.set)
        if pc.connectionState != "connected":
            logger.info(
                f"WebRTC peer {connection.pc_id} not connected within {connect_timeout_s:g}s "
                f"({pc.connectionState}): closed, no call"
            )
            admitted.release()
            live.discard(connection.pc_id)
            await connection.disconnect()
            return
        try:
            await on_connection(connection, params, admitted)
        except Exception:
            logger.exception(f"WebRTC call could not start for peer {connection.pc_id}")
            admitted.release()
            await connection.disconnect()

    @router.post("/api/offer")
    async def offer(request: Request) -> JSONResponse:
        body = await json_object(request)
        offer_request, params = parse_offer(body, request.query_params)
        admitted: Admitted | None = None
        if offer_request.pc_id is not None and offer_request.pc_id in live:
            await offer_gate.allow(request)  # renegotiates an existing call: no new slot
        else:
            offer_request.pc_id = None  # an unknown id makes a new connection: a new call
            admitted = await offer_gate.admit(request, body, params)
        watching = False

        async def connected(connection: SmallWebRTCConnection) -> None:
            nonlocal watching
            if admitted is None:  # the renegotiated connection closed meanwhile: no new call
                await connection.disconnect()
                return
            await forget_when_closed(connection)
            task = asyncio.create_task(
                await_peer(connection, params, admitted), name=f"webrtc-{connection.pc_id}"
            )
            router.pending.add(task)
            task.add_done_callback(router.pending.discard)
            watching = True

        try:
            answer = await handler.handle_web_request(offer_request, connected)
        except HTTPException:
            raise
        except (ValueError, AssertionError, TypeError) as e:
            logger.warning(f"WebRTC offer rejected: {type(e).__name__}")
            raise HTTPException(400, "the SDP offer could not be accepted") from None
        except Exception:
            logger.exception("WebRTC offer failed")
            return JSONResponse({"detail": "the call could not be set up"}, status_code=500)
        finally:
            if admitted is not None and not watching:
                admitted.release()  # no connection was made: nothing will connect
        return JSONResponse(answer)

    @router.patch("/api/offer")
    async def ice_candidates(request: Request) -> dict[str, str]:
        body = await json_object(request)
        patch = parse_patch(body)
        await offer_gate.allow(request)
        if peers is not None and patch.pc_id not in live:  # another process's peer?
            if await peers.forward_patch(patch.pc_id, body):
                return {"status": "ok"}
        try:
            await handler.handle_patch_request(patch)
        except HTTPException:
            raise
        except (ValueError, AssertionError, TypeError, IndexError):
            raise HTTPException(400, "an ICE candidate could not be parsed") from None
        return {"status": "ok"}

    return router


def create_webrtc_transport(
    connection: SmallWebRTCConnection,
    *,
    audio_in_sample_rate: int = 16000,
    audio_out_sample_rate: int = 24000,
) -> SmallWebRTCTransport:
    """Build the transport of one browser call: audio both ways, no video.

    Args:
        connection: The peer connection ``on_connection`` was given.
        audio_in_sample_rate: Rate the caller's audio is resampled to.
        audio_out_sample_rate: Rate of the bot's audio sent to the browser.

    Returns:
        The transport; put its ``input()`` and ``output()`` in the pipeline.

    """
    params = TransportParams(
        audio_in_enabled=True,
        audio_in_sample_rate=audio_in_sample_rate,
        audio_out_enabled=True,
        audio_out_sample_rate=audio_out_sample_rate,
        video_in_enabled=False,
        video_out_enabled=False,
    )
    return SmallWebRTCTransport(webrtc_connection=connection, params=params)


def _ice_server_json(server: IceServer) -> dict[str, Any]:
    """Render an ICE server as the browser's ``RTCIceServer`` dictionary."""
    entry: dict[str, Any] = {"urls": server.urls}
    if server.username:
        entry["username"] = server.username
    if server.credential:
        entry["credential"] = server.credential
    return entry
