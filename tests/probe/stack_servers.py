"""Echo servers on the stacks users deploy, each started with a configuration the test hides
from the probe: ``python stack_servers.py STACK PORT JSON``.

Each one echoes every message on 127.0.0.1:PORT and prints ``listening on
ws://127.0.0.1:PORT`` once it accepts connections. The JSON holds the stack's own options,
passed through as they are:

| stack      | options                                                               |
|------------|-----------------------------------------------------------------------|
| websockets | ``deflate`` (``ServerPerMessageDeflateFactory`` keywords or null),    |
|            | ``max_size``, ``ping_interval``, ``ping_timeout``                     |
| aiohttp    | ``WebSocketResponse`` keywords; ``/plain`` serves compress=False      |
| uvicorn    | ``uvicorn.Config`` ``ws_*`` keywords; the ASGI app echoes             |
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any


async def websockets_server(port: int, opts: dict[str, Any]) -> None:
    from websockets.asyncio.server import serve
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

    async def echo(ws: Any) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except Exception:  # a closed connection ends the echo, nothing more
            pass

    deflate = opts.get("deflate")
    extensions = [ServerPerMessageDeflateFactory(**deflate)] if deflate is not None else None
    async with serve(echo, "127.0.0.1", port, extensions=extensions, compression=None,
                     max_size=opts.get("max_size"), ping_interval=opts.get("ping_interval"),
                     ping_timeout=opts.get("ping_timeout")):
        print(f"listening on ws://127.0.0.1:{port}", flush=True)
        await asyncio.Future()


async def aiohttp_server(port: int, opts: dict[str, Any]) -> None:
    from aiohttp import WSMsgType, web

    def handler(**kwargs: Any) -> Any:
        async def handle(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(**kwargs)
            await ws.prepare(request)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    await ws.send_bytes(msg.data)
            return ws
        return handle

    app = web.Application()
    app.router.add_get("/", handler(**opts))
    app.router.add_get("/plain", handler(**dict(opts, compress=False)))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"listening on ws://127.0.0.1:{port}", flush=True)
    await asyncio.Future()


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny ASGI echo application (what a FastAPI or Starlette endpoint boils down to)."""
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "websocket":
        return
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            if event.get("text") is not None:
                await send({"type": "websocket.send", "text": event["text"]})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
        else:
            return


async def uvicorn_server(port: int, opts: dict[str, Any]) -> None:
    import uvicorn

    config = uvicorn.Config(echo_app, host="127.0.0.1", port=port, ws="websockets",
                            log_level="warning", lifespan="on", **opts)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    print(f"listening on ws://127.0.0.1:{port}", flush=True)
    await task


SERVERS = {"websockets": websockets_server, "aiohttp": aiohttp_server,
           "uvicorn": uvicorn_server}

if __name__ == "__main__":
    name, port, options = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    asyncio.run(SERVERS[name](port, options))
