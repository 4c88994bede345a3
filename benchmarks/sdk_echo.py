"""The baseline: line-bot-sdk's own aiohttp echo example (examples/aiohttp-echo/app.py), written again.

Same shape as the SDK's example: `WebhookParser.parse` on the request text, then for every text message
`AsyncMessagingApi.reply_message` inline, awaited before the 200. The only changes: `LINE_API_BASE_URL`
points the client at the LINE stand-in, the port comes from `--port`, and the access log is off (the
bot under test runs without one too). It keeps nothing: no Redis, no dedup, no retries.

    LINE_CHANNEL_SECRET=… LINE_CHANNEL_ACCESS_TOKEN=… LINE_API_BASE_URL=http://127.0.0.1:9000 \\
        python -m benchmarks.sdk_echo --port 8001
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from aiohttp import web
from linebot.v3 import WebhookParser
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import (
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    ReplyMessageRequest,
    TextMessage,
)
from linebot.v3.webhooks import MessageEvent, TextMessageContent


class Handler:
    def __init__(self, line_bot_api: AsyncMessagingApi, parser: WebhookParser):
        self.line_bot_api = line_bot_api
        self.parser = parser

    async def echo(self, request: web.Request) -> web.Response:
        signature = request.headers["X-Line-Signature"]
        body = await request.text()
        try:
            events = self.parser.parse(body, signature)
        except InvalidSignatureError:
            return web.Response(status=400, text="Invalid signature")
        for event in events:
            if not isinstance(event, MessageEvent) or not isinstance(event.message, TextMessageContent):
                continue
            await self.line_bot_api.reply_message(
                ReplyMessageRequest(reply_token=event.reply_token, messages=[TextMessage(text=event.message.text)]))
        return web.Response(text="OK\n")


async def main(port: int) -> None:
    secret = os.environ.get("LINE_CHANNEL_SECRET")  # benchmarks are not the bot: bot/config.py rules it only
    token = os.environ.get("LINE_CHANNEL_ACCESS_TOKEN")
    if not secret or not token:
        sys.exit("Specify LINE_CHANNEL_SECRET and LINE_CHANNEL_ACCESS_TOKEN as environment variables.")
    configuration = Configuration(access_token=token,
                                  host=os.environ.get("LINE_API_BASE_URL") or "https://api.line.me")
    line_bot_api = AsyncMessagingApi(AsyncApiClient(configuration))
    handler = Handler(line_bot_api, WebhookParser(secret))
    app = web.Application()
    app.add_routes([web.post("/callback", handler.echo)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"echo listening on http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()  # serve until interrupted


if __name__ == "__main__":
    logging.basicConfig(format="%(levelname)s:%(message)s", level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sdk_echo")
    parser.add_argument("-p", "--port", type=int, default=8000)
    try:
        asyncio.run(main(parser.parse_args().port))
    except KeyboardInterrupt:
        pass
