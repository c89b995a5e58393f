#!/usr/bin/env python3
"""A developer's server for kefu's pushes, written with the UNMODIFIED wechatpy library:
wechatpy checks every push's signature, decrypts it in safe and compatible mode, parses
the message, and builds (and encrypts) the reply. It is kefu's independent judge.

Usage:
    callback_server.py --token TOKEN [--aes-key KEY --appid APPID] [--mode plain|compatible|safe]

Listens on 127.0.0.1 (a free port, printed first as `listening PORT`), then prints one
JSON line per push: what wechatpy made of it. It answers by what the fan said:

    "transfer"          -> transfer_customer_service
    "transfer:ACCOUNT"  -> transfer_customer_service to ACCOUNT (<TransInfo><KfAccount>)
    "echo ..."          -> a passive text reply "you said: ..."
    "slow"              -> waits 7 seconds, then "success"
    "fail"              -> HTTP 500
    anything else       -> "success"

A push whose signature (or decryption) fails is answered 403 and printed with
"error".
"""

import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--token", required=True)
    p.add_argument("--aes-key")
    p.add_argument("--appid")
    p.add_argument("--mode", default="plain", choices=["plain", "compatible", "safe"])
    return p.parse_args()


ARGS = parse_args()


def emit(record):
    print(json.dumps(record, ensure_ascii=False), flush=True)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b""):
        self.send_response(status)
        self.send_header("Content-Type", "text/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        from wechatpy import parse_message
        from wechatpy.crypto import WeChatCrypto
        from wechatpy.exceptions import InvalidSignatureException, InvalidAppIdException
        from wechatpy.replies import TextReply, TransferCustomerServiceReply
        from wechatpy.utils import check_signature

        query = {k: v[0] for k, v in parse_qs(urlparse(self.path).query).items()}
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8")
        crypto = None
        try:
            check_signature(ARGS.token, query["signature"], query["timestamp"], query["nonce"])
            if query.get("encrypt_type") == "aes":
                crypto = WeChatCrypto(ARGS.token, ARGS.aes_key, ARGS.appid)
                xml = crypto.decrypt_message(
                    body, query["msg_signature"], query["timestamp"], query["nonce"])
            else:
                xml = body
        except (InvalidSignatureException, InvalidAppIdException, KeyError, ValueError) as e:
            emit({"error": "%s: %s" % (type(e).__name__, e), "query": query})
            self.answer(403)
            return
        msg = parse_message(xml)
        record = {
            "type": msg.type,
            "source": msg.source,
            "target": msg.target,
            "time": int(msg.create_time.timestamp()) if hasattr(msg.create_time, "timestamp") else None,
            "encrypted": crypto is not None,
            "openid_query": query.get("openid"),
        }
        for field in ("content", "event", "key", "scene_id", "media_id", "format", "ticket",
                      "account"):
            value = getattr(msg, field, None)
            if value is not None:
                record[field] = value
        emit(record)

        content = record.get("content") or ""
        if content == "fail":
            self.answer(500)
            return
        if content == "slow":
            time.sleep(7)
            self.answer(200, b"success")
            return
        if content.startswith("transfer"):
            reply = TransferCustomerServiceReply(message=msg).render()
            if ":" in content:
                account = content.split(":", 1)[1]
                reply = reply.replace(
                    "</xml>",
                    "<TransInfo><KfAccount><![CDATA[%s]]></KfAccount></TransInfo></xml>" % account)
        elif content.startswith("echo"):
            reply = TextReply(message=msg, content="you said: " + content[5:]).render()
        else:
            self.answer(200, b"success")
            return
        if crypto is not None:
            reply = crypto.encrypt_message(reply, query["nonce"], query["timestamp"])
        self.answer(200, reply.encode("utf-8"))


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print("listening %d" % server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
