'use strict';
// Preload (`node --require ./redirect_preload.js ...`): the hosts-file / DNS
// redirection users do, so UNMODIFIED Node WeChat clients that hard-code
// https://api.weixin.qq.com reach kefu instead.  Nothing in the libraries is touched.
//
//   KEFU_HTTPS_PORT       kefu's HTTPS port (required)
//   NODE_EXTRA_CA_CERTS   kefu's cert.pem, so TLS verification stays ON (read by node at start-up)
//
// * dns.lookup('api.weixin.qq.com') answers 127.0.0.1;
// * tls.connect to api.weixin.qq.com:443 goes to port KEFU_HTTPS_PORT instead (SNI and the
//   certificate hostname check still use api.weixin.qq.com);
// * TLS to any other port of api.weixin.qq.com is refused; plain http to it would hit
//   127.0.0.1:80.  Either way nothing can leak to the real WeChat.

const dns = require('dns');
const tls = require('tls');

const WECHAT_HOST = 'api.weixin.qq.com';
const port = Number(process.env.KEFU_HTTPS_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  throw new Error('redirect_preload: set KEFU_HTTPS_PORT to kefu\'s HTTPS port');
}
if (!process.env.NODE_EXTRA_CA_CERTS) {
  throw new Error('redirect_preload: set NODE_EXTRA_CA_CERTS to kefu\'s cert.pem');
}

const isWechat = (host) => typeof host === 'string' && host.toLowerCase().replace(/\.$/, '') === WECHAT_HOST;

const realLookup = dns.lookup;
dns.lookup = function lookup(hostname, options, callback) {
  if (!isWechat(hostname)) {
    return realLookup.apply(this, arguments);
  }
  if (typeof options === 'function') {
    callback = options;
    options = {};
  }
  const all = options !== null && typeof options === 'object' && options.all;
  process.nextTick(() => {
    if (all) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
  });
  return {};
};

const realTlsConnect = tls.connect;
tls.connect = function connect(...args) {
  // tls.connect(options[, cb]) | tls.connect(port[, host][, options][, cb])
  let options;
  if (args[0] !== null && typeof args[0] === 'object') {
    options = args[0];
  } else {
    options = {};
    if (args[0] !== undefined) options.port = args[0];
    if (typeof args[1] === 'string') options.host = args[1];
    for (const a of args.slice(1)) if (a !== null && typeof a === 'object') Object.assign(options, a);
  }
  const host = options.host || options.servername;
  if (isWechat(host)) {
    const cb = args.find((a) => typeof a === 'function');
    if (Number(options.port || 443) !== 443) {
      throw new Error(`redirect_preload: refusing ${host}:${options.port}`);
    }
    const redirected = { ...options, port, servername: options.servername || WECHAT_HOST };
    return cb ? realTlsConnect.call(this, redirected, cb) : realTlsConnect.call(this, redirected);
  }
  return realTlsConnect.apply(this, args);
};

global.__kefuRedirect = { host: WECHAT_HOST, port };
