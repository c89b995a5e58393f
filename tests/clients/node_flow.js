#!/usr/bin/env node
'use strict';
// Drive kefu with UNMODIFIED Node WeChat clients: co-wechat-api (async) and
// wechat-api (node-webot, callbacks).  Both hard-code https://api.weixin.qq.com; the
// redirection lives in redirect_preload.js (dns.lookup + port mapping) and kefu's
// certificate is trusted through NODE_EXTRA_CA_CERTS, so TLS verification stays on.
//
//   node tests/clients/node_flow.js --port PORT --cert CERT.pem --appid APPID --secret SECRET
//        [--wechat-id test] [--lib co-wechat-api|wechat-api|all]
// or KEFU_HTTPS_PORT, KEFU_CERT, KEFU_APPID, KEFU_SECRET, KEFU_WECHAT_ID, KEFU_NODE_LIB.
// When started without the preload, it re-executes itself as
//   NODE_EXTRA_CA_CERTS=CERT KEFU_HTTPS_PORT=PORT node --require redirect_preload.js node_flow.js ...
// Install the libraries first: npm ci --prefix tests/clients
//
// Prints one line per step; exits non-zero on the first mismatch.

const path = require('path');
const { spawnSync } = require('child_process');

function parseArgs(argv) {
  const env = process.env;
  const a = {
    port: env.KEFU_HTTPS_PORT,
    cert: env.KEFU_CERT,
    appid: env.KEFU_APPID,
    secret: env.KEFU_SECRET,
    wechatId: env.KEFU_WECHAT_ID || 'test',
    lib: env.KEFU_NODE_LIB || 'all',
    adminUrl: env.KEFU_ADMIN_URL,
    adminToken: env.KEFU_ADMIN_TOKEN,
  };
  const names = {
    '--port': 'port', '--cert': 'cert', '--appid': 'appid', '--secret': 'secret', '--wechat-id': 'wechatId', '--lib': 'lib',
    '--admin-url': 'adminUrl', '--admin-token': 'adminToken',
  };
  for (let i = 0; i < argv.length; i++) {
    const eq = argv[i].indexOf('=');
    const flag = eq > 0 ? argv[i].slice(0, eq) : argv[i];
    if (!(flag in names)) {
      console.error(`node_flow.js: unknown argument ${argv[i]}`);
      process.exit(2);
    }
    a[names[flag]] = eq > 0 ? argv[i].slice(eq + 1) : argv[++i];
  }
  const missing = ['port', 'cert', 'appid', 'secret'].filter((k) => !a[k]);
  if (missing.length) {
    console.error(`node_flow.js: missing ${missing.map((m) => '--' + m).join(', ')}`);
    process.exit(2);
  }
  return a;
}

const args = parseArgs(process.argv.slice(2));

if (!global.__kefuRedirect) {
  // Not preloaded: NODE_EXTRA_CA_CERTS is only read at start-up, so start again properly.
  const r = spawnSync(process.execPath,
    ['--require', path.join(__dirname, 'redirect_preload.js'), __filename, ...process.argv.slice(2)],
    {
      stdio: 'inherit',
      env: { ...process.env, NODE_EXTRA_CA_CERTS: path.resolve(args.cert), KEFU_HTTPS_PORT: String(args.port) },
    });
  if (r.error) throw r.error;
  process.exit(r.status === null ? 1 : r.status);
}
if (Number(args.port) !== global.__kefuRedirect.port) {
  console.error('node_flow.js: --port differs from KEFU_HTTPS_PORT seen by the preload');
  process.exit(2);
}

function step(name, ok, detail) {
  console.log(`${name.padEnd(60)} ${ok ? 'ok' : 'FAIL'}${detail ? '  ' + detail : ''}`);
  if (!ok) {
    console.log(`\nnode flow FAILED at: ${name}`);
    process.exit(1);
  }
}

const show = (v) => JSON.stringify(v);
const errText = (e) => `${e && e.name}: ${e && e.message}${e && e.code !== undefined ? ` (code ${e.code})` : ''}`;

async function expectOk(name, call) {
  let res;
  try {
    res = await call();
  } catch (e) {
    step(name, false, `raised ${errText(e)}`);
  }
  step(name, res && res.errcode === 0 && res.errmsg === 'ok', `-> ${show(res)}`);
  return res;
}

async function expectErrcode(name, code, call) {
  let res;
  try {
    res = await call();
  } catch (e) {
    step(name, e.name === 'WeChatAPIError' && e.code === code && / rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$/.test(e.message),
      `-> errcode=${e.code} errmsg=${show(e.message)}`);
    return;
  }
  step(name, false, `expected errcode ${code}, got ${show(res)}`);
}

// One adapter per library, all exposing promises with the library's own semantics.
// kefu's admin API (plain HTTP on loopback), for what only a fan or a worker does.
async function admin(method, path, body) {
  const http = require('http');
  const url = new URL(args.adminUrl.replace(/\/$/, '') + path);
  const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method,
      headers: {
        Authorization: `Bearer ${args.adminToken}`,
        'Content-Type': 'application/json',
        ...(data ? { 'Content-Length': data.length } : {}),
      },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode >= 300) reject(new Error(`${method} ${path}: HTTP ${res.statusCode} ${text}`));
        else resolve(text ? JSON.parse(text) : null);
      });
    });
    req.on('error', reject);
    req.end(data);
  });
}

function coWechatApi(appid, secret) {
  const API = require('co-wechat-api');
  const api = new API(appid, secret);
  return {
    version: require('co-wechat-api/package.json').version,
    token: () => api.getAccessToken(),
    add: (acct, nick) => api.addKfAccount(acct, nick),
    update: (acct, nick) => api.updateKfAccount(acct, nick),
    del: (acct) => api.deleteKfAccount(acct),
    list: () => api.getCustomServiceList(),
    online: () => api.getOnlineCustomServiceList(),
    invite: (acct, wx) => api.inviteworker(acct, wx),
    sendText: (openid, text) => api.sendText(openid, text),
    createSession: (acct, openid) => api.createKfSession(acct, openid),
    // The legacy getrecord, paged by page number (co-wechat-api has no getmsglist).
    records: (start, end, openid) => api.getRecords({
      starttime: start, endtime: end, openid, pagesize: 50, pageindex: 1,
    }),
  };
}

function wechatApi(appid, secret) {
  const API = require('wechat-api');
  const api = new API(appid, secret);
  const call = (method, ...xs) => new Promise((resolve, reject) => {
    api[method](...xs, (err, data) => (err ? reject(err) : resolve(data)));
  });
  return {
    version: require('wechat-api/package.json').version,
    token: () => call('getAccessToken'),
    add: (acct, nick) => call('addKfAccount', acct, nick, 'pass'),
    update: (acct, nick) => call('updateKfAccount', acct, nick, 'pass'),
    del: (acct) => call('deleteKfAccount', acct),
    list: () => call('getCustomServiceList'),
    online: () => call('getOnlineCustomServiceList'),
    // wechat-api has no inviteworker: the invitation goes through co-wechat-api.
    invite: (acct, wx) => new (require('co-wechat-api'))(appid, secret).inviteworker(acct, wx),
    sendText: (openid, text, acct) => (acct ? call('sendTextFromCs', openid, acct, text) : call('sendText', openid, text)),
    createSession: (acct, openid) => call('createKfSession', acct, openid),
    closeSession: (acct, openid) => call('closeKfSession', acct, openid),
    session: (openid) => call('getKfSession', openid),
    sessions: (acct) => call('getKfSessionList', acct),
    waiting: () => call('getKfSessionWaitCase'),
    // getmsglist, paged by msgid.
    records: (start, end) => call('getRecords', { starttime: start, endtime: end, msgid: 1, number: 10000 }),
  };
}

const LIBS = { 'co-wechat-api': coWechatApi, 'wechat-api': wechatApi };

async function flow(libName) {
  const c = LIBS[libName](args.appid, args.secret);
  const acct = `test1@${args.wechatId}`;
  console.log(`\n${libName} ${c.version} -> https://${global.__kefuRedirect.host} (127.0.0.1:${args.port}), CA ${process.env.NODE_EXTRA_CA_CERTS}`);

  let tok;
  try {
    tok = await c.token();
  } catch (e) {
    step(`[${libName}] token`, false, `raised ${errText(e)}`);
  }
  const now = Date.now();
  step(`[${libName}] token (GET /cgi-bin/token)`,
    tok && typeof tok.accessToken === 'string' && tok.accessToken.length >= 32
      && Number.isFinite(tok.expireTime) && tok.expireTime > now,
    `token length ${tok && tok.accessToken && tok.accessToken.length}, valid for ${tok && Math.round((tok.expireTime - now) / 1000)}s`);

  await expectOk(`[${libName}] add ${acct} nickname 客服1`, () => c.add(acct, '客服1'));
  await expectErrcode(`[${libName}] add ${acct} again -> 65406`, 65406, () => c.add(acct, '客服1'));
  await expectOk(`[${libName}] update ${acct} nickname 客服2`, () => c.update(acct, '客服2'));
  await expectErrcode(`[${libName}] update ${acct} 17-char nickname -> 65403`, 65403, () => c.update(acct, '客'.repeat(17)));
  await expectErrcode(`[${libName}] update nosuch@${args.wechatId} -> 65401`, 65401, () => c.update(`nosuch@${args.wechatId}`, '客服3'));
  await expectErrcode(`[${libName}] add x@foreign -> 65404`, 65404, () => c.add('x@foreign', '客服4'));

  let list;
  try {
    list = await c.list();
  } catch (e) {
    step(`[${libName}] list`, false, `raised ${errText(e)}`);
  }
  const kf = list && Array.isArray(list.kf_list) ? list.kf_list : null;
  const mine = kf ? kf.filter((k) => k.kf_account === acct) : [];
  step(`[${libName}] list shows ${acct} nick 客服2, numeric kf_id`,
    kf && kf.length === 1 && mine.length === 1 && mine[0].kf_nick === '客服2' && typeof mine[0].kf_id === 'number'
      && Number.isInteger(mine[0].kf_id),
    `-> ${show(list)}`);

  await expectOk(`[${libName}] delete ${acct}`, () => c.del(acct));
  try {
    list = await c.list();
  } catch (e) {
    step(`[${libName}] list after delete`, false, `raised ${errText(e)}`);
  }
  step(`[${libName}] list after delete is empty`,
    list && Array.isArray(list.kf_list) && list.kf_list.length === 0 && !('errcode' in list), `-> ${show(list)}`);
  await expectErrcode(`[${libName}] delete ${acct} again -> 65401`, 65401, () => c.del(acct));
}

async function valueOf(name, call) {
  try {
    return await call();
  } catch (e) {
    step(name, false, `raised ${errText(e)}`);
  }
  return undefined;
}

// A fan writes in; the library replies, opens a session (and, where it can, reads and
// closes it) and reads the history. The fan and the worker are simulated through kefu's
// admin API; every WeChat call goes through the library's own methods.
async function conversation(libName) {
  const c = LIBS[libName](args.appid, args.secret);
  const tag = libName === 'co-wechat-api' ? 'co' : 'wa';
  const acct = `cs_${tag}@${args.wechatId}`;
  const p = `[${libName}]`;
  await expectOk(`${p} add ${acct}`, () => c.add(acct, '客服6'));
  await expectOk(`${p} invite a worker to ${acct}`, () => c.invite(acct, `worker_${tag}`));
  await admin('POST', `/kefu/v1/apps/${args.appid}/kf/${acct}/invitation`, { action: 'accept' });
  await admin('POST', `/kefu/v1/apps/${args.appid}/kf/${acct}/online`, { status: 1 });
  const fan = (await admin('POST', `/kefu/v1/apps/${args.appid}/fans`, { nickname: tag })).openid;

  await expectErrcode(`${p} sendText before the fan wrote -> 45015`, 45015, () => c.sendText(fan, '你好'));
  await admin('POST', `/kefu/v1/apps/${args.appid}/fans/${fan}/actions`, { type: 'text', content: '有人吗' });
  for (let n = 1; n <= 5; n++) {
    await expectOk(`${p} sendText reply ${n} of 5`, () => c.sendText(fan, `回复${n}`, acct));
  }
  await expectErrcode(`${p} the sixth reply -> 45047`, 45047, () => c.sendText(fan, '回复6'));
  await expectOk(`${p} createKfSession(${acct}, fan)`, () => c.createSession(acct, fan));
  const online = await valueOf(`${p} online list`, () => c.online());
  const mine = ((online && online.kf_online_list) || []).filter((k) => k.kf_account === acct);
  step(`${p} online list: ${acct} accepted_case 1`, mine.length === 1 && mine[0].accepted_case === 1, `-> ${show(online)}`);
  if (c.session) {
    const session = await valueOf(`${p} getKfSession`, () => c.session(fan));
    step(`${p} getKfSession names ${acct}`, session && session.kf_account === acct, `-> ${show(session)}`);
    const list = await valueOf(`${p} getKfSessionList`, () => c.sessions(acct));
    step(`${p} getKfSessionList lists the fan`,
      list && Array.isArray(list.sessionlist) && list.sessionlist.length === 1 && list.sessionlist[0].openid === fan, `-> ${show(list)}`);
    const wait = await valueOf(`${p} getKfSessionWaitCase`, () => c.waiting());
    step(`${p} getKfSessionWaitCase: nobody waits`, wait && wait.count === 0, `-> ${show(wait)}`);
    await expectOk(`${p} closeKfSession`, () => c.closeSession(acct, fan));
    await expectErrcode(`${p} closeKfSession again -> 65413`, 65413, () => c.closeSession(acct, fan));
  }
  const now = (await admin('GET', '/kefu/v1/clock')).now;
  const records = await valueOf(`${p} getRecords`, () => c.records(now - 3600, now + 60, fan));
  const all = (records && records.recordlist) || [];
  // getrecord filters by openid; getmsglist holds every fan's records.
  const list = c.session ? all.filter((r) => r.openid === fan) : all;
  const said = list.filter((r) => r.opercode === 2002 || r.opercode === 2003).map((r) => `${r.opercode}:${r.text}`);
  const expected = ['2003:有人吗', ...[1, 2, 3, 4, 5].map((n) => `2002:回复${n}`)];
  step(`${p} getRecords holds the fan's message and the five replies`,
    show(said) === show(expected) && list.every((r) => r.openid === fan), `-> ${show(records)}`);
  await expectOk(`${p} delete ${acct}`, () => c.del(acct));
}

(async () => {
  if (!args.adminUrl || !args.adminToken) {
    console.error('node_flow.js: the conversation steps need --admin-url and --admin-token');
    process.exit(2);
  }
  const libs = args.lib === 'all' ? Object.keys(LIBS) : args.lib.split(',');
  for (const lib of libs) {
    if (!LIBS[lib]) {
      console.error(`node_flow.js: unknown --lib ${lib} (known: ${Object.keys(LIBS).join(', ')}, all)`);
      process.exit(2);
    }
  }
  for (const lib of libs) {
    await flow(lib);
    await conversation(lib);
  }
  console.log(`\nnode flow (${libs.join(', ')}): all steps passed`);
  process.exit(0); // keep-alive agents would otherwise hold the process open
})().catch((e) => {
  console.log(`\nnode flow FAILED: ${e && e.stack}`);
  process.exit(1);
});
