#!/usr/bin/env python3
"""Drive kefu with the UNMODIFIED wechatpy library.

wechatpy hard-codes ``https://api.weixin.qq.com/`` for the token and kfaccount
calls, so the only way to point it at kefu is the way users do it: redirect
the host name (hosts file / DNS) and trust kefu's certificate.  This driver
does exactly that from the outside of the library:

* ``socket.getaddrinfo`` is wrapped so that ``api.weixin.qq.com:443`` resolves
  to ``127.0.0.1:<kefu https port>`` (TLS SNI and hostname checks still see
  ``api.weixin.qq.com``);
* ``REQUESTS_CA_BUNDLE`` points at kefu's certificate, so verification stays ON;
* proxies are bypassed for api.weixin.qq.com, so nothing can reach the real one.

Usage:
    wechatpy_flow.py --port PORT --cert CERT.pem --appid APPID --secret SECRET [--wechat-id test]
or the environment variables KEFU_HTTPS_PORT, KEFU_CERT, KEFU_APPID, KEFU_SECRET,
KEFU_WECHAT_ID.

Prints one line per step and exits non-zero on the first mismatch.
"""

import argparse
import inspect
import os
import socket
import sys
import warnings

WECHAT_HOST = "api.weixin.qq.com"


def parse_args():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=env("KEFU_HTTPS_PORT"),
                   help="kefu's HTTPS port")
    p.add_argument("--cert", default=env("KEFU_CERT"),
                   help="kefu's certificate (PEM)")
    p.add_argument("--appid", default=env("KEFU_APPID"))
    p.add_argument("--secret", default=env("KEFU_SECRET"))
    p.add_argument("--wechat-id", default=env("KEFU_WECHAT_ID", "test"),
                   help="the app's WeChat ID, i.e. the kf account suffix")
    p.add_argument("--admin-url", default=env("KEFU_ADMIN_URL"),
                   help="kefu's plain-HTTP base URL, for the fault-injection step")
    p.add_argument("--admin-token", default=env("KEFU_ADMIN_TOKEN"))
    a = p.parse_args()
    missing = [n for n in ("port", "cert", "appid", "secret") if not getattr(a, n)]
    if missing:
        p.error("missing: " + ", ".join("--" + m for m in missing))
    return a


def redirect(port, cert):
    """hosts-file stand-in: api.weixin.qq.com:443 -> 127.0.0.1:port."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, service, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode("ascii")
        if host == WECHAT_HOST:
            if str(service) not in ("443", "https"):
                raise socket.gaierror(
                    socket.EAI_NONAME, "refusing %s:%s (only 443 is redirected)" % (host, service))
            return real_getaddrinfo("127.0.0.1", port, *args, **kwargs)
        return real_getaddrinfo(host, service, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    os.environ["REQUESTS_CA_BUNDLE"] = os.path.abspath(cert)
    for var in ("NO_PROXY", "no_proxy"):
        os.environ[var] = ",".join(filter(None, [os.environ.get(var), WECHAT_HOST, "127.0.0.1"]))


FAILURES = []


def admin(method, a, path, body=None):
    """Calls kefu's admin API (plain HTTP, loopback) and answers its JSON."""
    import json
    import urllib.request
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(a.admin_url.rstrip("/") + path, data=data, method=method,
                                 headers={"Authorization": "Bearer " + a.admin_token,
                                          "Content-Type": "application/json"})
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    with direct.open(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def step(name, ok, detail=""):
    print("%-58s %s%s" % (name, "ok" if ok else "FAIL", ("  " + detail) if detail else ""),
          flush=True)
    if not ok:
        FAILURES.append(name)
        print("\nwechatpy flow FAILED at: %s" % name, flush=True)
        sys.exit(1)


def expect_ok(name, call):
    from wechatpy.exceptions import WeChatClientException
    try:
        res = call()
    except WeChatClientException as e:
        step(name, False, "got errcode=%r errmsg=%r" % (e.errcode, e.errmsg))
        return None
    except Exception as e:  # a library choking on the response, TLS, ...
        step(name, False, "raised %s: %s" % (type(e).__name__, e))
        return None
    ok = isinstance(res, dict) and res.get("errcode") == 0 and res.get("errmsg") == "ok"
    step(name, ok, "-> %r" % (res,))
    return res


def expect_errcode(name, code, call):
    from wechatpy.exceptions import WeChatClientException
    try:
        res = call()
    except WeChatClientException as e:
        ok = e.errcode == code and " rid: " in str(e.errmsg)
        step(name, ok, "-> errcode=%r errmsg=%r" % (e.errcode, e.errmsg))
        return
    except Exception as e:
        step(name, False, "raised %s: %s" % (type(e).__name__, e))
        return
    step(name, False, "expected errcode %d, got %r" % (code, res))


def value_of(name, call):
    """Answers what a call answered; a raised error fails the step."""
    try:
        return call()
    except Exception as e:
        step(name, False, "raised %s: %s" % (type(e).__name__, e))


def conversation(a, client, add):
    """A fan writes in; the library replies, opens and closes a session, reads the history.

    The fan and the worker's side are simulated through kefu's admin API; every WeChat
    call goes through wechatpy's own methods (``client.post`` for the invitation, which
    wechatpy 1.x does not wrap)."""
    cs, message = client.customservice, client.message
    acct = "cs1@" + a.wechat_id
    expect_ok("add %s" % acct, lambda: add(acct, "客服5"))
    expect_ok("invite a worker to %s" % acct, lambda: client.post(
        "https://api.weixin.qq.com/customservice/kfaccount/inviteworker",
        data={"kf_account": acct, "invite_wx": "worker_cs1"}))
    admin("POST", a, "/kefu/v1/apps/%s/kf/%s/invitation" % (a.appid, acct), {"action": "accept"})
    admin("POST", a, "/kefu/v1/apps/%s/kf/%s/online" % (a.appid, acct), {"status": 1})
    fan = admin("POST", a, "/kefu/v1/apps/%s/fans" % a.appid, {"nickname": "粉丝"})["openid"]
    step("a simulated fan has a 28-character openid", len(fan) == 28, fan)

    expect_errcode("send_text before the fan wrote -> 45015", 45015,
                   lambda: message.send_text(fan, "你好"))
    admin("POST", a, "/kefu/v1/apps/%s/fans/%s/actions" % (a.appid, fan),
          {"type": "text", "content": "在吗"})
    for n in range(1, 6):
        expect_ok("send_text reply %d of 5 as %s" % (n, acct),
                  lambda n=n: message.send_text(fan, "回复%d" % n, account=acct))
    expect_errcode("the sixth reply -> 45047", 45047, lambda: message.send_text(fan, "回复6"))

    expect_ok("create_session(%s, %s)" % (fan[:8], acct), lambda: cs.create_session(fan, acct))
    expect_ok("create_session again with the same account changes nothing",
              lambda: cs.create_session(fan, acct))
    session = value_of("get_session", lambda: cs.get_session(fan))
    step("get_session names %s" % acct, session.get("kf_account") == acct
         and isinstance(session.get("createtime"), int), "-> %r" % (session,))
    sessions = value_of("get_session_list", lambda: cs.get_session_list(acct))
    step("get_session_list lists the fan", [x.get("openid") for x in sessions] == [fan],
         "-> %r" % (sessions,))
    online = value_of("get_online_accounts", cs.get_online_accounts)
    mine = [k for k in online if k.get("kf_account") == acct]
    step("get_online_accounts: %s accepted_case 1" % acct,
         len(mine) == 1 and mine[0].get("accepted_case") == 1, "-> %r" % (online,))
    wait = value_of("get_wait_case", cs.get_wait_case)
    step("get_wait_case: nobody waits", wait.get("count") == 0 and wait.get("waitcaselist") == [],
         "-> %r" % (wait,))
    expect_ok("close_session", lambda: cs.close_session(fan, acct))
    expect_errcode("close_session again -> 65413", 65413, lambda: cs.close_session(fan, acct))
    session = value_of("get_session after close", lambda: cs.get_session(fan))
    step("get_session after close names nobody", session.get("kf_account") == "",
         "-> %r" % (session,))

    now = admin("GET", a, "/kefu/v1/clock")["now"]
    records = value_of("get_records", lambda: cs.get_records(now - 3600, now + 60, 1, 3))
    page = records.get("recordlist", [])
    step("get_records pages by msgid: 3 records, then the next msgid",
         len(page) == 3 and records.get("number") == 3 and isinstance(records.get("msgid"), int),
         "-> %r" % (records,))
    rest = value_of("get_records from the next msgid",
                    lambda: cs.get_records(now - 3600, now + 60, records["msgid"], 10000))
    history = page + rest.get("recordlist", [])
    step("the history holds the fan's message (2003), five replies (2002), the session "
         "(1002, 1004)",
         [(r.get("opercode"), r.get("text")) for r in history if r.get("opercode") in (2002, 2003)]
         == [(2003, "在吗")] + [(2002, "回复%d" % n) for n in range(1, 6)]
         and [r.get("opercode") for r in history][-2:] == [1002, 1004]
         and all(r.get("openid") == fan for r in history),
         "-> %r" % (history,))
    expect_errcode("get_records over 25 hours -> 65417", 65417,
                   lambda: cs.get_records(now - 25 * 3600, now, 1, 10))
    expect_ok("delete %s" % acct, lambda: cs.delete_account(acct))


def main():
    a = parse_args()
    redirect(a.port, a.cert)
    warnings.simplefilter("ignore", DeprecationWarning)  # wechatpy's own `_post` notices

    import wechatpy
    from wechatpy import WeChatClient

    print("wechatpy %s -> https://%s (127.0.0.1:%d), CA %s"
          % (wechatpy.__version__, WECHAT_HOST, a.port, a.cert), flush=True)

    client = WeChatClient(a.appid, a.secret)
    cs = client.customservice
    acct = "test1@" + a.wechat_id
    # wechatpy 1.x requires a password (it sends its MD5); later versions may not.
    takes_password = "password" in inspect.signature(cs.add_account).parameters

    def add(account, nick):
        return cs.add_account(account, nick, "pass") if takes_password else cs.add_account(account, nick)

    def update(account, nick):
        return cs.update_account(account, nick, "pass") if takes_password else cs.update_account(account, nick)

    try:
        tok = client.fetch_access_token()
    except Exception as e:
        step("token", False, "raised %s: %s" % (type(e).__name__, e))
    step("token (GET /cgi-bin/token)",
         isinstance(tok.get("access_token"), str) and len(tok["access_token"]) >= 32
         and isinstance(tok.get("expires_in"), int) and tok["expires_in"] > 0,
         "expires_in=%r, token length %d" % (tok.get("expires_in"), len(tok.get("access_token") or "")))

    expect_ok("add %s nickname 客服1" % acct, lambda: add(acct, "客服1"))
    expect_errcode("add %s again -> 65406" % acct, 65406, lambda: add(acct, "客服1"))
    expect_ok("update %s nickname 客服2" % acct, lambda: update(acct, "客服2"))
    long_nick = "客" * 17
    expect_errcode("update %s 17-char nickname -> 65403" % acct, 65403,
                   lambda: update(acct, long_nick))
    expect_errcode("update nosuch@%s -> 65401" % a.wechat_id, 65401,
                   lambda: update("nosuch@" + a.wechat_id, "客服3"))
    expect_errcode("add x@foreign -> 65404", 65404, lambda: add("x@foreign", "客服4"))

    if a.admin_url and a.admin_token:
        # kefu answers the next update with 40001; wechatpy must fetch a new token and retry.
        admin("POST", a, "/kefu/v1/faults",
              {"appid": a.appid, "path": "/customservice/kfaccount/update", "errcode": 40001, "times": 1})
        expect_ok("update after an injected 40001 (the client refetches and retries)",
                  lambda: update(acct, "客服2"))
        step("the injected fault fired", admin("GET", a, "/kefu/v1/faults") == [])

    try:
        kf_list = cs.get_accounts()
    except Exception as e:
        step("list", False, "raised %s: %s" % (type(e).__name__, e))
    mine = [k for k in kf_list if isinstance(k, dict) and k.get("kf_account") == acct]
    step("list shows %s nick 客服2, numeric kf_id" % acct,
         len(kf_list) == 1 and len(mine) == 1 and mine[0].get("kf_nick") == "客服2"
         and type(mine[0].get("kf_id")) is int,
         "-> %r" % (kf_list,))

    expect_ok("delete %s" % acct, lambda: cs.delete_account(acct))
    try:
        kf_list = cs.get_accounts()
    except Exception as e:
        step("list after delete", False, "raised %s: %s" % (type(e).__name__, e))
    step("list after delete is empty", kf_list == [], "-> %r" % (kf_list,))
    expect_errcode("delete %s again -> 65401" % acct, 65401, lambda: cs.delete_account(acct))

    if a.admin_url and a.admin_token:
        conversation(a, client, add)
    else:
        step("the conversation steps need --admin-url and --admin-token", False)

    print("\nwechatpy flow: all steps passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
