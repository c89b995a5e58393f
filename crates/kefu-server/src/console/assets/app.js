// kefu console: plain modules, no build step. Every page is the same shell; this
// script renders the page its path names. The admin surface is called with the
// session cookie and, for changes, the session's CSRF token.

const CSRF = document.querySelector('meta[name="kefu-csrf"]').content;
const BASE = '/kefu/console/';
const main = document.getElementById('main');

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'testid') node.dataset.testid = value;
    else if (key === 'text') node.textContent = value;
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  return el('div', { class: 'field' }, el('label', { for: id }, label), input,
    hint ? el('small', {}, hint) : null);
}

// Unix seconds in the server clock's terms (UTC, as WeChat's call log shows).
function time(secs) {
  if (secs === undefined || secs === null) return '';
  return new Date(secs * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (method !== 'GET') init.headers['X-CSRF-Token'] = CSRF;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    location.href = `${BASE}signin`;
    throw new Error('signed out');
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error(data && data.message ? data.message : `HTTP ${response.status}`);
  return data;
}

function notice(text, kind = 'error') {
  return el('p', { class: kind, role: kind === 'error' ? 'alert' : 'status', testid: kind }, text);
}

function copyButton(text, testid) {
  return el('button', {
    type: 'button', testid,
    onclick: async (event) => {
      try { await navigator.clipboard.writeText(text); event.target.textContent = 'Copied'; }
      catch { event.target.textContent = 'Select and copy'; }
    },
  }, 'Copy');
}

const params = new URLSearchParams(location.search);
let errcodes = null;
async function meaning(code) {
  if (!errcodes) errcodes = await api('GET', '/kefu/v1/errcodes');
  const row = errcodes.find((r) => r.errcode === code);
  return row ? row.meaning : 'not in kefu\'s errcode table';
}

let catalog = null;
async function getCatalog() {
  if (!catalog) catalog = await api('GET', '/kefu/v1/catalog');
  return catalog;
}

// A console token per app, kept for this tab only (it is an app's access_token, not
// the admin token).
async function consoleToken(appid, fresh = false) {
  const key = `kefu-token-${appid}`;
  const kept = sessionStorage.getItem(key);
  if (kept && !fresh) return kept;
  const minted = await api('POST', `/kefu/v1/apps/${appid}/tokens`);
  sessionStorage.setItem(key, minted.access_token);
  return minted.access_token;
}

// A WeChat call by catalog name, with the app's token.
async function wechat(name, token, fields = {}, file) {
  const entry = (await getCatalog()).find((e) => e.name === name);
  const query = new URLSearchParams();
  if (entry.credential) query.set(entry.credential, token);
  const init = { method: entry.methods[entry.methods.length - 1] };
  if (entry.carrier === 'query') {
    for (const [k, v] of Object.entries(fields)) query.set(k, v);
    if (file) {
      init.method = 'POST';
      const form = new FormData();
      form.append(entry.file_field, file, file.name || 'head.jpg');
      init.body = form;
    }
  } else {
    init.headers = { 'Content-Type': 'application/json' };
    init.body = JSON.stringify(fields);
  }
  const response = await fetch(`${entry.path}?${query}`, init);
  const answer = await response.json();
  if (answer.errcode) {
    const rid = (answer.errmsg.match(/rid: (\S+)/) || [])[1];
    let reason = '';
    if (rid) {
      const found = await api('GET', `/kefu/v1/requests?rid=${encodeURIComponent(rid)}`);
      if (found.length) reason = found[0].reason;
    }
    throw new Error(`${answer.errcode} ${answer.errmsg}${reason ? ` — ${reason}` : ''}`);
  }
  return answer;
}

async function appPicker(selected, onchange) {
  const apps = await api('GET', '/kefu/v1/apps');
  const select = el('select', { testid: 'app-picker', onchange: (e) => onchange(e.target.value) },
    el('option', { value: '' }, '— pick an app —'),
    apps.map((a) => el('option', { value: a.appid, selected: a.appid === selected },
      `${a.appid} (${a.wechat_id})`)));
  return field('App', select);
}

// ---------- the header's clock ----------

async function showClock() {
  const view = await api('GET', '/kefu/v1/clock');
  const offset = view.offset_secs ? ` (+${duration(view.offset_secs)})` : '';
  document.querySelector('[data-testid="server-clock"]').textContent = `${time(view.now)}${offset}`;
  return view;
}

function duration(secs) {
  const parts = [];
  for (const [unit, size] of [['d', 86400], ['h', 3600], ['min', 60], ['s', 1]]) {
    if (secs >= size) { parts.push(`${Math.floor(secs / size)} ${unit}`); secs %= size; }
  }
  return parts.join(' ') || '0 s';
}

// ---------- apps ----------

async function appsPage() {
  const list = el('div', { testid: 'apps-list' });
  const created = el('div', { 'aria-live': 'polite' });
  const alias = el('input', { name: 'wechat_id', required: true, pattern: '[A-Za-z0-9_-]{1,30}', testid: 'new-app-wechat-id' });
  const form = el('form', {
    class: 'inline', testid: 'new-app-form',
    onsubmit: async (event) => {
      event.preventDefault();
      created.replaceChildren();
      try {
        const made = await api('POST', '/kefu/v1/apps', { wechat_id: alias.value.trim() });
        created.replaceChildren(secretBox(made, 'The app is made. Its AppSecret is shown only this once:'));
        alias.value = '';
        await render();
      } catch (error) { created.replaceChildren(notice(error.message)); }
    },
  }, field('WeChat ID of the new app', alias, '1-30 letters, digits, _ or -; accounts are name@ID'),
  el('button', { type: 'submit', testid: 'new-app-submit' }, 'Create app'));

  async function render() {
    const apps = await api('GET', '/kefu/v1/apps');
    if (!apps.length) { list.replaceChildren(el('p', {}, 'No app yet: create one below.')); return; }
    list.replaceChildren(el('table', {},
      el('thead', {}, el('tr', {}, ['appid', 'WeChat ID', 'type', 'accounts', 'created', ''].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, apps.map((a) => el('tr', { testid: `app-row-${a.appid}` },
        el('td', { 'data-label': 'appid' }, el('code', {}, a.appid)),
        el('td', { 'data-label': 'WeChat ID' }, a.wechat_id),
        el('td', { 'data-label': 'type' }, `${a.account_type}${a.verified ? ', verified' : ''}`),
        el('td', { 'data-label': 'accounts' }, String(a.kf_count)),
        el('td', { 'data-label': 'created' }, time(a.created_at)),
        el('td', { class: 'actions' },
          el('a', { href: `${BASE}accounts?app=${a.appid}`, testid: `accounts-${a.appid}` }, 'Accounts'),
          el('a', { href: `${BASE}fans?app=${a.appid}`, testid: `fans-${a.appid}` }, 'Fans'),
          el('a', { href: `${BASE}tokens?app=${a.appid}`, testid: `tokens-${a.appid}` }, 'Tokens'),
          el('a', { href: `${BASE}app?app=${a.appid}`, testid: `settings-${a.appid}` }, 'Settings'),
          el('a', { href: `${BASE}debugger?app=${a.appid}` }, 'Debugger'),
          el('button', {
            type: 'button', testid: `rotate-${a.appid}`,
            onclick: async () => {
              if (!confirm(`Replace the AppSecret of ${a.appid}? Clients using the old one stop working.`)) return;
              try { created.replaceChildren(secretBox(await api('POST', `/kefu/v1/apps/${a.appid}/secret`), 'The new AppSecret, shown only this once:')); }
              catch (error) { created.replaceChildren(notice(error.message)); }
            },
          }, 'Rotate secret'),
          el('button', {
            type: 'button', class: 'danger', testid: `delete-${a.appid}`,
            onclick: async () => {
              if (!confirm(`Delete ${a.appid} with its accounts and tokens?`)) return;
              try { await api('DELETE', `/kefu/v1/apps/${a.appid}`); await render(); }
              catch (error) { created.replaceChildren(notice(error.message)); }
            },
          }, 'Delete')))))));
  }
  await render();
  main.replaceChildren(el('h1', {}, 'Apps'), created, list, el('h2', {}, 'New app'), form);
}

function secretBox(made, title) {
  return el('div', { class: 'secret card', testid: 'secret-once' },
    el('p', {}, title),
    el('dl', {}, el('dt', {}, 'appid'), el('dd', {}, el('code', { testid: 'created-appid' }, made.appid)),
      el('dt', {}, 'AppSecret'), el('dd', {}, el('code', { testid: 'created-secret' }, made.secret), ' ', copyButton(made.secret, 'copy-secret'))),
    el('p', { class: 'hint' }, 'Keep it now: kefu keeps only its hash.'));
}

// ---------- debugger ----------

async function debuggerPage() {
  const entries = await getCatalog();
  let appid = params.get('app') || '';
  let entry = entries.find((e) => e.name === params.get('api')) || entries.find((e) => e.name === 'kf_list');
  let token = appid ? sessionStorage.getItem(`kefu-token-${appid}`) || '' : '';

  const tokenShown = el('code', { testid: 'token-shown' }, token ? short(token) : 'none yet');
  const tokenButton = el('button', {
    type: 'button', testid: 'get-token',
    onclick: async () => {
      if (!appid) { output.replaceChildren(notice('Pick an app first.')); return; }
      try { token = await consoleToken(appid, true); tokenShown.textContent = short(token); }
      catch (error) { output.replaceChildren(notice(error.message)); }
    },
  }, 'Get token');
  const picker = await appPicker(appid, (v) => { appid = v; token = sessionStorage.getItem(`kefu-token-${v}`) || ''; tokenShown.textContent = token ? short(token) : 'none yet'; link(); });

  const groups = {};
  for (const e of entries) (groups[e.group_title] ||= []).push(e);
  const endpoint = el('select', { testid: 'endpoint-picker', onchange: (e) => { entry = entries.find((x) => x.name === e.target.value); fill(); link(); } },
    Object.entries(groups).map(([title, list]) => el('optgroup', { label: title },
      list.map((e) => el('option', { value: e.name, selected: e === entry }, `${e.name} — ${e.summary}`)))));

  const formFields = el('div', { class: 'fields', testid: 'endpoint-form' });
  const raw = el('textarea', { rows: 8, spellcheck: 'false', testid: 'raw-body', oninput: () => { sync(); check(); } });
  const query = el('input', { testid: 'raw-query', oninput: () => { sync(); check(); } });
  const file = el('input', { type: 'file', accept: 'image/*', testid: 'debugger-file' });
  const queryField = field('Query string (sent as it is; the token is added)', query);
  const rawField = field('Raw JSON body (sent as it is, even when malformed)', raw);
  // The form's inputs follow the raw editor when it holds JSON (or the query string).
  function sync() {
    const values = entry.carrier === 'query' ? Object.fromEntries(new URLSearchParams(query.value)) : safeParse(raw.value);
    if (!values || typeof values !== 'object') return;
    for (const input of formFields.querySelectorAll('input[name]')) {
      const value = valueAt(values, input.name);
      if (value !== undefined && typeof value !== 'object' && document.activeElement !== input) input.value = String(value);
    }
  }
  const fileField = field('File', file);
  const verdict = el('p', { class: 'verdict', 'aria-live': 'polite', testid: 'check-verdict' });
  const output = el('div', { testid: 'debugger-output', 'aria-live': 'polite' });
  const deep = el('a', { testid: 'deep-link' }, 'Link to this call');
  const summary = el('p', { class: 'hint' });

  function link() {
    const url = new URL(`${BASE}debugger`, location.origin);
    if (appid) url.searchParams.set('app', appid);
    url.searchParams.set('api', entry.name);
    deep.href = url.pathname + url.search;
    history.replaceState(null, '', deep.href);
  }

  // The form from the request schema and its example: one input per scalar field, also
  // inside objects (`text.content`), kept in step with the raw editor, which is what is
  // sent.
  function fill() {
    summary.textContent = `${entry.methods.join('/')} ${entry.path} — ${entry.summary}`;
    const schema = entry.request_schema || {};
    const props = schema.properties || {};
    const example = entry.example || {};
    const names = Object.entries(props).filter(([, s]) => scalar(s)).map(([name]) => name);
    if (entry.carrier !== 'query') {
      for (const [path] of leaves(example)) if (!names.includes(path)) names.push(path);
    }
    formFields.replaceChildren(...names.map((name) => {
      const s = schemaAt(schema, name) || {};
      const sample = valueAt(example, name);
      const input = el('input', { name, testid: `field-${name}`, value: sample ?? '' });
      input.addEventListener('input', () => {
        const kind = [].concat(s.type || []).concat(typeof sample === 'number' ? ['integer'] : []);
        if (entry.carrier === 'query') {
          const q = new URLSearchParams(query.value); q.set(name, input.value); query.value = q.toString();
        } else {
          const body = safeParse(raw.value) || {};
          let value = input.value;
          if (kind.includes('integer') && /^-?\d+$/.test(value)) value = Number(value);
          else if ((kind.includes('boolean') || typeof sample === 'boolean') && /^(true|false)$/.test(value)) value = value === 'true';
          setAt(body, name, value);
          raw.value = JSON.stringify(body, null, 2);
        }
        check();
      });
      return field(name, input, s.description);
    }));
    if (entry.carrier === 'query') {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(example)) if (typeof v !== 'object') q.set(k, v);
      query.value = q.toString();
      raw.value = '';
    } else {
      raw.value = JSON.stringify(example, null, 2);
      query.value = '';
    }
    fileField.hidden = !entry.file_field;
    queryField.hidden = entry.carrier !== 'query';
    rawField.hidden = entry.carrier !== 'json';
    check();
  }

  let checking = 0;
  async function check() {
    const mine = ++checking;
    const pairs = [...new URLSearchParams(query.value)];
    try {
      const answer = await api('POST', `/kefu/v1/catalog/${entry.name}/check`, { query: pairs, body: raw.value });
      if (mine !== checking) return;
      verdict.className = answer.ok ? 'verdict ok' : 'verdict error';
      verdict.textContent = answer.ok ? 'The contract finds nothing wrong with this request.'
        : `The contract says: ${answer.errcode} — ${answer.reason}. You can still send it.`;
    } catch (error) { verdict.textContent = error.message; }
  }

  function request() {
    const q = new URLSearchParams(query.value);
    if (entry.credential && token) q.set(entry.credential, token);
    const method = entry.file_field || entry.carrier === 'json' ? 'POST' : entry.methods[0];
    return { method, url: `${entry.path}?${q}`, body: entry.carrier === 'json' ? raw.value : null };
  }

  async function send(event) {
    event.preventDefault();
    const r = request();
    const init = { method: r.method };
    if (r.body !== null) { init.body = r.body; init.headers = { 'Content-Type': 'application/json' }; }
    if (entry.file_field && file.files[0]) {
      const form = new FormData(); form.append(entry.file_field, file.files[0]); init.body = form;
    }
    const started = performance.now();
    const response = await fetch(r.url, init);
    const text = await response.text();
    const took = Math.round(performance.now() - started);
    let answer = null; try { answer = JSON.parse(text); } catch { /* not JSON */ }
    const parts = [
      el('p', { class: 'status', testid: 'response-status' }, `HTTP ${response.status} ${response.statusText} · ${took} ms`),
      el('details', {}, el('summary', {}, 'Response headers'),
        el('pre', { testid: 'response-headers' }, [...response.headers].map(([k, v]) => `${k}: ${v}`).join('\n'))),
      el('pre', { class: 'body', testid: 'response-body' }, answer ? JSON.stringify(answer, null, 2) : text),
    ];
    if (answer && typeof answer.errcode === 'number') {
      const code = answer.errcode;
      parts.splice(1, 0, el('p', { class: code ? 'errcode error' : 'errcode ok', testid: 'response-errcode' },
        el('strong', {}, String(code)), ' — ', await meaning(code)));
      const rid = (String(answer.errmsg || '').match(/rid: (\S+)/) || [])[1];
      if (rid) {
        const found = await api('GET', `/kefu/v1/requests?rid=${encodeURIComponent(rid)}`);
        if (found.length && found[0].reason) {
          parts.splice(2, 0, el('p', { class: 'reason', testid: 'response-reason' }, 'Why: ', found[0].reason));
        }
        parts.push(el('p', {}, el('a', { href: `${BASE}call?rid=${rid}`, testid: 'open-call' }, `Open call ${rid}`)));
      }
    }
    output.replaceChildren(...parts);
  }

  const curl = el('button', {
    type: 'button', testid: 'copy-curl',
    onclick: async (event) => {
      const r = request();
      let line = `curl -X ${r.method} '${location.origin}${r.url}'`;
      if (r.body !== null) line += ` -H 'Content-Type: application/json' --data-raw '${r.body.replace(/'/g, "'\\''")}'`;
      if (entry.file_field) line += ` -F '${entry.file_field}=@head.jpg'`;
      try { await navigator.clipboard.writeText(line); event.target.textContent = 'Copied'; }
      catch { output.replaceChildren(el('pre', { testid: 'curl' }, line)); }
    },
  }, 'Copy as curl');

  const form = el('form', { onsubmit: send, class: 'debugger' },
    el('div', { class: 'row' }, picker, el('div', { class: 'field' }, el('span', { class: 'label' }, 'Token'), el('div', {}, tokenShown, ' ', tokenButton))),
    field('Endpoint', endpoint), summary, formFields,
    queryField, rawField, fileField, verdict,
    el('div', { class: 'row' }, el('button', { type: 'submit', class: 'primary', testid: 'send' }, 'Send'), curl, deep));
  main.replaceChildren(el('h1', {}, 'Debugger'), el('div', { class: 'split' },
    el('section', { 'aria-label': 'Request' }, form),
    el('section', { 'aria-label': 'Answer' }, el('h2', {}, 'Answer'), output)));
  output.replaceChildren(el('p', { class: 'hint' }, 'Send a request to see the status, the headers, the body, what the errcode means and why the server answered so.'));
  fill();
  // "Send again": the recorded call's body and query (secrets masked, the token left out).
  const from = params.get('from');
  if (from) {
    const found = await api('GET', `/kefu/v1/requests?rid=${encodeURIComponent(from)}`);
    if (found.length) {
      const call = found[0];
      const q = new URLSearchParams(call.request_url.split('?')[1] || '');
      if (entry.credential) q.delete(entry.credential);
      if (entry.carrier === 'query') query.value = q.toString();
      else if (call.request_body) raw.value = call.request_body;
      sync();
      check();
    }
  }
  link();
}

// The scalar fields of a JSON value, by dotted path (`text.content`); arrays are left to
// the raw editor.
function leaves(value, prefix = '') {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return prefix ? [[prefix, value]] : [];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix ? `${prefix}.${k}` : k));
}
function valueAt(value, path) {
  return path.split('.').reduce((v, k) => (v && typeof v === 'object' ? v[k] : undefined), value);
}
function setAt(body, path, value) {
  const keys = path.split('.');
  let at = body;
  for (const k of keys.slice(0, -1)) {
    if (!at[k] || typeof at[k] !== 'object' || Array.isArray(at[k])) at[k] = {};
    at = at[k];
  }
  at[keys[keys.length - 1]] = value;
}
// The schema of a dotted path, looking into the variants of a message's `msgtype`.
function schemaAt(schema, path) {
  let at = schema;
  for (const k of path.split('.')) {
    const options = [at, ...(at.oneOf || []), ...(at.anyOf || [])];
    at = options.map((o) => o && o.properties && o.properties[k]).find(Boolean);
    if (!at) return null;
  }
  return at;
}

function scalar(schema) {
  const kinds = [].concat(schema.type || []);
  return kinds.some((k) => ['string', 'integer', 'number', 'boolean'].includes(k));
}
function safeParse(text) { try { return JSON.parse(text); } catch { return null; } }
function short(token) { return token.length > 12 ? `${token.slice(0, 6)}…${token.slice(-4)}` : token; }

// ---------- request log ----------

function pathOf(url) { return url.split('?')[0]; }

function logRow(e) {
  return el('tr', { testid: `log-${e.rid}`, class: e.errcode ? 'failed' : '' },
    el('td', { 'data-label': 'time' }, time(e.invoke_time)),
    el('td', { 'data-label': 'app' }, e.appid || '—'),
    el('td', { 'data-label': 'method' }, e.method),
    el('td', { 'data-label': 'path', title: pathOf(e.request_url) }, pathOf(e.request_url)),
    el('td', { 'data-label': 'errcode', testid: 'log-errcode' }, String(e.errcode)),
    el('td', { 'data-label': 'ms' }, String(e.cost_in_ms)),
    el('td', { 'data-label': 'rid' }, el('a', { href: `${BASE}call?rid=${e.rid}` }, e.rid)));
}

async function requestsPage() {
  const appid = el('input', { name: 'appid', testid: 'filter-app', value: params.get('appid') || '' });
  const path = el('input', { name: 'path', testid: 'filter-path', value: params.get('path') || '' });
  const errcode = el('input', { name: 'errcode', inputmode: 'numeric', testid: 'filter-errcode', value: params.get('errcode') || '' });
  const body = el('tbody', { testid: 'log-rows' });
  const status = el('p', { class: 'hint', testid: 'stream-status', 'aria-live': 'polite' });
  const ridBox = el('input', { name: 'rid', testid: 'rid-box', placeholder: 'a rid, or a whole errmsg: … rid: 6b0f…' });
  const ridOut = el('div', { 'aria-live': 'polite' });

  const matches = (e) => (!appid.value || e.appid === appid.value.trim())
    && (!path.value || pathOf(e.request_url) === path.value.trim())
    && (!errcode.value || String(e.errcode) === errcode.value.trim());

  async function load() {
    const q = new URLSearchParams();
    if (appid.value.trim()) q.set('appid', appid.value.trim());
    if (path.value.trim()) q.set('path', path.value.trim());
    if (errcode.value.trim()) q.set('errcode', errcode.value.trim());
    const rows = await api('GET', `/kefu/v1/requests?${q}`);
    body.replaceChildren(...rows.map(logRow));
  }
  const filters = el('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); load(); } },
    field('App', appid), field('Path', path), field('Errcode', errcode),
    el('button', { type: 'submit', testid: 'filter-apply' }, 'Filter'));
  const ridForm = el('form', {
    class: 'row', testid: 'rid-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const found = await api('GET', `/kefu/v1/requests?rid=${encodeURIComponent(ridBox.value)}`);
      if (found.length) location.href = `${BASE}call?rid=${found[0].rid}`;
      else ridOut.replaceChildren(notice('No call with that rid in the request log (it keeps 7 days).'));
    },
  }, field('Find a call by rid', ridBox), el('button', { type: 'submit', testid: 'rid-open' }, 'Open'));

  main.replaceChildren(el('h1', {}, 'Requests'), ridForm, ridOut, filters, status,
    el('table', { class: 'log' }, el('colgroup', {}, ['time', 'app', 'method', 'path', 'errcode', 'ms', 'rid'].map((c) => el('col', { class: `c-${c}` }))), el('thead', {}, el('tr', {},
      ['time', 'app', 'method', 'path', 'errcode', 'ms', 'rid'].map((h) => el('th', { scope: 'col' }, h)))), body));
  await load();

  const source = new EventSource('/kefu/v1/requests/stream');
  source.addEventListener('open', () => { status.textContent = 'Live: new calls appear as they are made.'; status.dataset.live = 'yes'; });
  source.addEventListener('error', () => { status.textContent = 'The live stream is interrupted; retrying…'; status.dataset.live = 'no'; });
  source.addEventListener('dropped', (event) => { status.textContent = `Missed ${JSON.parse(event.data).dropped} calls while the page was busy.`; });
  source.addEventListener('call', (event) => {
    const entry = JSON.parse(event.data);
    if (!matches(entry)) return;
    body.prepend(logRow(entry));
    while (body.children.length > 500) body.lastChild.remove();
  });
}

async function callPage() {
  const rid = params.get('rid') || '';
  const found = await api('GET', `/kefu/v1/requests?rid=${encodeURIComponent(rid)}`);
  if (!found.length) { main.replaceChildren(el('h1', {}, 'Call'), notice(`No call ${rid} in the request log.`)); return; }
  const e = found[0];
  const path = pathOf(e.request_url);
  const entry = (await getCatalog()).find((x) => x.path === path || x.aliases.includes(path));
  const again = entry ? el('a', { class: 'button', href: `${BASE}debugger?app=${e.appid || ''}&api=${entry.name}&from=${e.rid}`, testid: 'send-again' }, 'Send again in the debugger') : null;
  main.replaceChildren(el('h1', {}, 'Call ', el('code', { testid: 'call-rid' }, e.rid)),
    el('p', { class: e.errcode ? 'errcode error' : 'errcode ok', testid: 'call-errcode' }, el('strong', {}, String(e.errcode)), ' — ', await meaning(e.errcode)),
    e.reason ? el('p', { class: 'reason', testid: 'call-reason' }, 'Why: ', e.reason) : null,
    el('dl', { class: 'facts' },
      el('dt', {}, 'time'), el('dd', {}, time(e.invoke_time)),
      el('dt', {}, 'app'), el('dd', {}, e.appid || '—'),
      el('dt', {}, 'request'), el('dd', {}, el('code', {}, `${e.method} ${e.request_url}`)),
      el('dt', {}, 'client'), el('dd', {}, e.client_ip),
      el('dt', {}, 'took'), el('dd', {}, `${e.cost_in_ms} ms`)),
    el('h2', {}, 'Request body'), el('pre', { testid: 'call-request' }, e.request_body || '(none)'),
    el('h2', {}, 'Answer'), el('pre', { testid: 'call-response' }, e.response_body),
    again);
}

// ---------- accounts ----------

async function accountsPage() {
  let appid = params.get('app') || '';
  const out = el('div', { 'aria-live': 'polite', testid: 'accounts-message' });
  const list = el('div', { testid: 'accounts-list' });
  const picker = await appPicker(appid, (v) => { location.href = `${BASE}accounts?app=${v}`; });
  main.replaceChildren(el('h1', {}, 'Accounts'), picker, out, list);
  if (!appid) { list.replaceChildren(el('p', {}, 'Pick an app.')); return; }

  const app = await api('GET', `/kefu/v1/apps/${appid}`);
  const run = async (what) => {
    out.replaceChildren();
    try { await what(); await render(); }
    catch (error) {
      if (/^4(0001|2001|0014) /.test(error.message)) {
        await consoleToken(appid, true);
        try { await what(); await render(); return; } catch (again) { out.replaceChildren(notice(again.message)); return; }
      }
      out.replaceChildren(notice(error.message));
    }
  };
  const wx = async (name, fields, file) => wechat(name, await consoleToken(appid), fields, file);

  async function render() {
    const kfs = await api('GET', `/kefu/v1/apps/${appid}/kf`);
    const rows = kfs.map((view) => {
      const k = view.kf || view;
      const avatar = k.kf_headimgurl
        ? el('img', { src: k.kf_headimgurl, alt: `avatar of ${k.kf_account}`, class: 'avatar', width: 48, height: 48, testid: `avatar-${k.kf_account}` })
        : el('span', { class: 'avatar none', 'aria-hidden': 'true' }, (k.kf_nick || k.kf_account).slice(0, 1).toUpperCase());
      const picker = el('input', { type: 'file', accept: 'image/jpeg,image/png', testid: `avatar-file-${k.kf_account}`, onchange: (e) => e.target.files[0] && run(() => wx('kf_uploadheadimg', { kf_account: k.kf_account }, e.target.files[0])) });
      const drop = el('label', { class: 'drop', testid: `avatar-drop-${k.kf_account}` }, avatar, picker);
      drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
      drop.addEventListener('dragleave', () => drop.classList.remove('over'));
      drop.addEventListener('drop', (e) => { e.preventDefault(); drop.classList.remove('over'); const f = e.dataTransfer.files[0]; if (f) run(() => wx('kf_uploadheadimg', { kf_account: k.kf_account }, f)); });
      const nick = el('input', { value: k.kf_nick, 'aria-label': `nickname of ${k.kf_account}`, testid: `nick-${k.kf_account}` });
      const invitee = el('input', { placeholder: 'WeChat ID to invite', 'aria-label': `WeChat ID to invite to ${k.kf_account}`, testid: `invite-wx-${k.kf_account}` });
      const invitation = k.kf_wx ? `bound to ${k.kf_wx}` : k.invite_wx ? `${k.invite_status} (${k.invite_wx}, until ${time(k.invite_expire_time)})` : 'not bound';
      const cases = el('input', { type: 'number', min: 0, value: view.accepted_case || 0, 'aria-label': `accepted cases of ${k.kf_account}`, class: 'small' });
      return el('tr', { testid: `kf-row-${k.kf_account}` },
        el('td', { 'data-label': 'avatar' }, drop),
        el('td', { 'data-label': 'account' }, el('code', {}, k.kf_account), el('br'), el('small', {}, `kf_id ${k.kf_id}`), el('br'), el('small', {}, view.kf_openid || '')),
        el('td', { 'data-label': 'nickname' }, el('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); run(() => wx('kf_update', { kf_account: k.kf_account, nickname: nick.value })); } },
          nick, el('button', { type: 'submit', testid: `rename-${k.kf_account}` }, 'Rename')), el('span', { testid: `nick-shown-${k.kf_account}`, class: 'hint' }, k.kf_nick)),
        el('td', { 'data-label': 'WeChat user', testid: `invitation-${k.kf_account}` }, invitation,
          k.invite_status === 'waiting' ? el('div', { class: 'row' },
            ['accept', 'reject', 'expire'].map((action) => el('button', { type: 'button', testid: `${action}-${k.kf_account}`, onclick: () => run(() => api('POST', `/kefu/v1/apps/${appid}/kf/${encodeURIComponent(k.kf_account)}/invitation`, { action })) }, action))) : null,
          k.kf_wx ? null : el('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); run(() => wx('kf_invite', { kf_account: k.kf_account, invite_wx: invitee.value.trim() })); } },
            invitee, el('button', { type: 'submit', testid: `invite-${k.kf_account}` }, 'Invite'))),
        el('td', { 'data-label': 'online', testid: `online-${k.kf_account}` }, view.online_status ? `online, ${view.accepted_case} cases` : 'offline',
          el('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); run(() => api('POST', `/kefu/v1/apps/${appid}/kf/${encodeURIComponent(k.kf_account)}/online`, { status: 1, accepted_case: Number(cases.value) })); } },
            cases, el('button', { type: 'submit' }, 'Set online'))),
        el('td', { class: 'actions' }, el('button', {
          type: 'button', class: 'danger', testid: `delete-${k.kf_account}`,
          onclick: () => confirm(`Delete ${k.kf_account}?`) && run(() => wx('kf_del', { kf_account: k.kf_account })),
        }, 'Delete')));
    });
    list.replaceChildren(rows.length ? el('table', { class: 'accounts' }, el('thead', {}, el('tr', {},
      ['avatar', 'account', 'nickname', 'WeChat user', 'online', ''].map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows))
      : el('p', {}, 'No account yet.'));
  }

  const name = el('input', { required: true, testid: 'new-kf-name', pattern: '[A-Za-z0-9_]{1,10}' });
  const nickname = el('input', { required: true, testid: 'new-kf-nickname' });
  const add = el('form', {
    class: 'inline', testid: 'new-kf-form',
    onsubmit: (e) => { e.preventDefault(); run(async () => { await wx('kf_add', { kf_account: `${name.value.trim()}@${app.wechat_id}`, nickname: nickname.value }); name.value = ''; nickname.value = ''; }); },
  }, field(`Account (before @${app.wechat_id})`, name), field('Nickname', nickname), el('button', { type: 'submit', testid: 'new-kf-submit' }, 'Add account'));
  main.append(el('h2', {}, 'New account'), add,
    el('p', { class: 'hint' }, 'Each change is a call to kefu\'s WeChat API with the app\'s console token: it shows in the request log like any client\'s call.'));
  await render();
}

// ---------- clock ----------

function lapsedView(lapsed) {
  if (!lapsed) return null;
  const tokens = lapsed.tokens.map((t) => el('li', {}, `${time(t.at)}: a ${t.kind} token of ${t.appid} ${t.what === 'expired' ? 'expired (42001 from then)' : 'ended its grace (40001 from then)'} — ${t.hash.slice(0, 12)}…`));
  const invitations = lapsed.invitations.map((i) => el('li', {}, `${time(i.at)}: the invitation of ${i.invite_wx} to ${i.kf_account} (${i.appid}) ran out`));
  const quotas = lapsed.quotas.map((q) => el('li', {}, `${q.appid}: the daily count of ${q.path} started afresh (${q.used} used that day)`));
  if (!tokens.length && !invitations.length && !quotas.length) return el('p', { testid: 'lapsed' }, 'Nothing lapsed.');
  return el('div', { testid: 'lapsed', class: 'card' }, el('h3', {}, 'What lapsed'),
    tokens.length ? [el('h4', {}, 'Tokens'), el('ul', {}, tokens)] : null,
    invitations.length ? [el('h4', {}, 'Invitations'), el('ul', {}, invitations)] : null,
    quotas.length ? [el('h4', {}, 'Quotas'), el('ul', {}, quotas)] : null,
    lapsed.truncated ? el('p', { class: 'hint' }, 'Only the first 200 of each are listed.') : null);
}


async function clockPage() {
  const out = el('div', { 'aria-live': 'polite', testid: 'clock-out' });
  const now = el('p', { testid: 'clock-now' });
  const show = async () => { const v = await showClock(); now.textContent = `Now: ${time(v.now)} · offset ${duration(v.offset_secs)}`; };
  const steps = [['+5 min', 300], ['+1 h', 3600], ['+1 day', 86400], ['+7 days', 604800]];
  main.replaceChildren(el('h1', {}, 'Test clock'), now,
    el('p', { class: 'hint' }, 'The clock only moves forward; every instance on the same store follows it. Tokens, invitations and quotas lapse on its time.'),
    el('div', { class: 'row' }, steps.map(([label, secs]) => el('button', {
      type: 'button', testid: `advance-${secs}`,
      onclick: async () => {
        try { const moved = await api('POST', '/kefu/v1/clock', { advance_secs: secs }); await show(); out.replaceChildren(notice(`Moved ${label}.`, 'ok'), lapsedView(moved.lapsed)); }
        catch (error) { out.replaceChildren(notice(error.message)); }
      },
    }, label))), out, ...(await faultsSection()));
  await show();
}

// ---------- fans ----------

const OPERCODES = { 1000: 'queued', 1001: 'taken by an account', 1002: 'session begun', 1004: 'session ended', 2002: 'sent to the fan', 2003: 'from the fan' };

function sessionText(session) {
  if (!session || session.state === 'none') return 'nobody serves the fan: its messages go to the developer\'s server';
  if (session.state === 'waiting') return `waiting in the queue since ${time(session.since)}`;
  return `served by ${session.kf_account} since ${time(session.since)}, until ${time(session.idle_until)} unless a message is exchanged`;
}

async function fansPage() {
  const appid = params.get('app') || '';
  const out = el('div', { 'aria-live': 'polite' });
  const list = el('div', { testid: 'fans-list' });
  const picker = await appPicker(appid, (v) => { location.href = `${BASE}fans?app=${v}`; });
  main.replaceChildren(el('h1', {}, 'Fans'), picker, out, list);
  if (!appid) { list.replaceChildren(el('p', {}, 'Pick an app.')); return; }
  async function render() {
    const fans = await api('GET', `/kefu/v1/apps/${appid}/fans`);
    list.replaceChildren(fans.length ? el('table', {},
      el('thead', {}, el('tr', {}, ['fan', 'following', 'session', 'can be sent to'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, fans.map((f) => el('tr', { testid: `fan-row-${f.openid}` },
        el('td', { 'data-label': 'fan' }, el('a', { href: `${BASE}fan?app=${appid}&openid=${encodeURIComponent(f.openid)}`, testid: `fan-${f.nickname || f.openid}` }, f.nickname || f.openid), el('br'), el('small', { class: 'mono' }, f.openid)),
        el('td', { 'data-label': 'following' }, f.following ? 'yes' : 'no'),
        el('td', { 'data-label': 'session' }, f.session.state),
        el('td', { 'data-label': 'can be sent to' }, f.can_send ? 'yes' : 'no'))))) : el('p', {}, 'No fan yet: make one below, then make it act.'));
  }
  const nickname = el('input', { testid: 'new-fan-nickname', maxlength: 64 });
  const openid = el('input', { testid: 'new-fan-openid', placeholder: 'made in WeChat\'s shape when empty' });
  main.append(el('h2', {}, 'New fan'), el('form', {
    class: 'inline', testid: 'new-fan-form',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const body = { nickname: nickname.value };
        if (openid.value.trim()) body.openid = openid.value.trim();
        await api('POST', `/kefu/v1/apps/${appid}/fans`, body);
        nickname.value = ''; openid.value = ''; out.replaceChildren(); await render();
      } catch (error) { out.replaceChildren(notice(error.message)); }
    },
  }, field('Nickname', nickname), field('openid', openid), el('button', { type: 'submit', testid: 'new-fan-submit' }, 'Make fan')));
  await render();
}

async function fanPage() {
  const appid = params.get('app') || '';
  const openid = params.get('openid') || '';
  const out = el('div', { 'aria-live': 'polite', testid: 'fan-message' });
  const state = el('div', { testid: 'fan-state' });
  const timeline = el('div', { testid: 'fan-timeline' });
  const path = `/kefu/v1/apps/${appid}/fans/${encodeURIComponent(openid)}`;
  const title = el('h1', {}, 'Fan');
  async function render() {
    const f = await api('GET', path);
    title.textContent = `Fan ${f.nickname || f.openid}`;
    state.replaceChildren(el('dl', { class: 'facts' },
      el('dt', {}, 'openid'), el('dd', {}, el('code', {}, f.openid)),
      el('dt', {}, 'following'), el('dd', {}, f.following ? 'yes' : 'no'),
      el('dt', {}, 'session'), el('dd', { testid: 'fan-session' }, sessionText(f.session)),
      el('dt', {}, 'can be sent to'), el('dd', { testid: 'fan-can-send' }, f.can_send ? 'yes' : 'no: no open window with messages left'),
      el('dt', {}, 'windows'), el('dd', { testid: 'fan-windows' }, f.windows.length ? el('ul', {}, f.windows.map((w) => el('li', {},
        `${w.kind}: open until ${time(w.expires_at)}, ${w.used} sent, ${w.left === undefined ? 'no limit' : `${w.left} left`}`))) : 'none open')));
    timeline.replaceChildren(f.timeline.length ? el('table', {},
      el('thead', {}, el('tr', {}, ['time', 'what', 'text', 'account'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, f.timeline.map((t) => el('tr', { testid: `timeline-${t.msgid}` },
        el('td', { 'data-label': 'time' }, time(t.time)),
        el('td', { 'data-label': 'what' }, `${OPERCODES[t.opercode] || t.opercode} (${t.opercode})`),
        el('td', { 'data-label': 'text' }, t.text),
        el('td', { 'data-label': 'account' }, t.worker || '—'))))) : el('p', {}, 'Nothing yet.'));
  }
  const kind = el('select', { testid: 'act-type' }, ['text', 'image', 'voice', 'video', 'click', 'follow', 'unfollow', 'scan', 'pay'].map((k) => el('option', { value: k }, k)));
  const content = el('input', { testid: 'act-content', placeholder: 'the text, or the key of a click or scan' });
  const act = el('form', {
    class: 'inline', testid: 'act-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { type: kind.value };
      if (kind.value === 'text') body.content = content.value;
      if (kind.value === 'click' || kind.value === 'scan') body.key = content.value;
      try {
        const acted = await api('POST', `${path}/actions`, body);
        out.replaceChildren(notice(acted.pushed ? 'Done; pushed to the app\'s callback.' : 'Done.', 'ok'));
        content.value = ''; await render();
      } catch (error) { out.replaceChildren(notice(error.message)); }
    },
  }, field('The fan does', kind), field('Text or key', content), el('button', { type: 'submit', testid: 'act-submit' }, 'Act'));
  const reply = el('input', { testid: 'reply-text' });
  const replyForm = el('form', {
    class: 'inline', testid: 'reply-form',
    onsubmit: async (e) => {
      e.preventDefault();
      try {
        const token = await consoleToken(appid);
        await wechat('message_send', token, { touser: openid, msgtype: 'text', text: { content: reply.value } });
        reply.value = ''; out.replaceChildren(notice('Sent.', 'ok')); await render();
      } catch (error) { out.replaceChildren(notice(error.message)); await render(); }
    },
  }, field('Reply as the app (message/custom/send)', reply), el('button', { type: 'submit', testid: 'reply-submit' }, 'Send'));
  const queue = el('button', {
    type: 'button', testid: 'fan-queue',
    onclick: async () => { try { await api('POST', `${path}/queue`, {}); await render(); } catch (error) { out.replaceChildren(notice(error.message)); } },
  }, 'Put in the waiting queue');
  main.replaceChildren(title, el('p', {}, el('a', { href: `${BASE}fans?app=${appid}` }, '← fans of the app')), out, state,
    el('h2', {}, 'Make the fan act'), act, replyForm, el('div', { class: 'row' }, queue),
    el('h2', {}, 'Timeline'), timeline);
  await render();
}

// ---------- errcode summary ----------

async function summaryPage() {
  const appid = params.get('app') || '';
  const hours = Number(params.get('hours') || 24);
  const picker = await appPicker(appid, (v) => { location.href = `${BASE}summary?app=${v}&hours=${hours}`; });
  const q = new URLSearchParams({ hours: String(hours) });
  if (appid) q.set('appid', appid);
  const summary = await api('GET', `/kefu/v1/requests/summary?${q}`);
  const rows = summary.counts || [];
  const byPath = {};
  for (const r of rows) (byPath[r.path] ||= []).push(r);
  const { total, failed } = summary;
  const csv = ['appid,path,errcode,count', ...rows.map((r) => `${r.appid || ''},${r.path},${r.errcode},${r.count}`)].join('\n');
  const download = el('a', { class: 'button', download: `kefu-errcodes-${appid || 'all'}-${hours}h.csv`, href: `data:text/csv;charset=utf-8,${encodeURIComponent(csv)}`, testid: 'summary-csv' }, 'Download CSV');
  main.replaceChildren(el('h1', {}, 'Errcode summary'), el('div', { class: 'row' }, picker,
    el('div', { class: 'row' }, ['24', '168'].map((h) => el('a', { class: 'button', href: `${BASE}summary?app=${appid}&hours=${h}`, 'aria-current': String(hours) === h ? 'true' : null }, h === '24' ? 'Last day' : 'Last week'))), download),
    el('p', { testid: 'summary-ratio' }, `${total} calls over the last ${hours === 168 ? 'week' : 'day'} of the test clock; ${failed} failed (error ratio ${total ? ((100 * failed) / total).toFixed(1) : '0.0'}%).`),
    rows.length ? el('table', { testid: 'summary-table' },
      el('thead', {}, el('tr', {}, ['API', 'errcode', 'calls', 'share of the API\'s calls'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, Object.entries(byPath).flatMap(([path, list]) => {
        const n = list.reduce((m, r) => m + r.count, 0);
        return list.map((r) => el('tr', {},
          el('td', { 'data-label': 'API' }, path),
          el('td', { 'data-label': 'errcode', class: r.errcode ? 'error' : '' }, String(r.errcode)),
          el('td', { 'data-label': 'calls' }, String(r.count)),
          el('td', { 'data-label': 'share' }, `${((100 * r.count) / n).toFixed(1)}%`)));
      }))) : el('p', {}, 'No call in that time.'));
}

// ---------- faults (on the clock page) ----------

async function faultsSection() {
  const out = el('div', { 'aria-live': 'polite' });
  const list = el('div', { testid: 'faults-list' });
  async function render() {
    const rules = await api('GET', '/kefu/v1/faults');
    list.replaceChildren(rules.length ? el('table', {},
      el('thead', {}, el('tr', {}, ['id', 'path', 'app', 'errcode', 'times / probability', 'latency', 'applied', ''].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, rules.map((r) => el('tr', { testid: `fault-${r.id}` },
        el('td', { 'data-label': 'id' }, String(r.id)), el('td', { 'data-label': 'path' }, r.path), el('td', { 'data-label': 'app' }, r.appid || 'any'),
        el('td', { 'data-label': 'errcode' }, String(r.errcode)),
        el('td', { 'data-label': 'times' }, r.probability != null ? `probability ${r.probability}` : r.times != null ? `${r.remaining ?? r.times} of ${r.times} left` : 'every call'),
        el('td', { 'data-label': 'latency' }, `${r.latency_ms} ms`), el('td', { 'data-label': 'applied' }, r.applied ? 'yes' : 'no'),
        el('td', {}, el('button', { type: 'button', class: 'danger', onclick: async () => { await api('DELETE', `/kefu/v1/faults/${r.id}`); await render(); } }, 'Remove')))))) : el('p', {}, 'No fault rule.'));
  }
  const entries = await getCatalog();
  const path = el('select', { testid: 'fault-path' }, entries.map((e) => el('option', { value: e.path }, `${e.path} (${e.name})`)));
  const appid = el('input', { testid: 'fault-app', placeholder: 'any app' });
  const errcode = el('input', { testid: 'fault-errcode', value: '-1', inputmode: 'numeric' });
  const times = el('input', { testid: 'fault-times', value: '1', inputmode: 'numeric', class: 'small' });
  const probability = el('input', { testid: 'fault-probability', placeholder: '0-1', class: 'small' });
  const latency = el('input', { testid: 'fault-latency', value: '0', inputmode: 'numeric', class: 'small' });
  const applied = el('input', { type: 'checkbox', testid: 'fault-applied' });
  const form = el('form', {
    class: 'inline', testid: 'fault-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const body = { path: path.value, errcode: Number(errcode.value), latency_ms: Number(latency.value || 0), applied: applied.checked };
      if (appid.value.trim()) body.appid = appid.value.trim();
      if (probability.value.trim()) body.probability = Number(probability.value); else body.times = Number(times.value || 1);
      try { await api('POST', '/kefu/v1/faults', body); out.replaceChildren(); await render(); }
      catch (error) { out.replaceChildren(notice(error.message)); }
    },
  }, field('Path', path), field('App', appid), field('errcode', errcode), field('times', times), field('or probability', probability),
  field('latency ms', latency), field('applied (the call is performed anyway)', applied), el('button', { type: 'submit', testid: 'fault-submit' }, 'Add rule'));
  await render();
  return [el('h2', {}, 'Fault rules'), el('p', { class: 'hint' }, 'Rules live in this instance\'s memory.'), out, list, form];
}

// ---------- app settings ----------

async function appPage() {
  const appid = params.get('app') || '';
  const out = el('div', { 'aria-live': 'polite', testid: 'settings-message' });
  const app = await api('GET', `/kefu/v1/apps/${appid}`);
  const type = el('select', { testid: 'setting-type' }, ['service', 'subscription', 'miniprogram', 'sandbox'].map((t) => el('option', { value: t, selected: t === app.account_type }, t)));
  const verified = el('input', { type: 'checkbox', checked: app.verified, testid: 'setting-verified' });
  const newKf = el('input', { type: 'checkbox', checked: app.new_kf_enabled, testid: 'setting-new-kf' });
  const rules = app.settings || Object.fromEntries(['ip_whitelist', 'quotas', 'banned_apis', 'windows', 'callback']
    .filter((k) => app[k] !== undefined).map((k) => [k, app[k]]));
  const settings = el('textarea', { rows: 12, spellcheck: 'false', testid: 'setting-json' }, JSON.stringify(rules, null, 2));
  const form = el('form', {
    testid: 'settings-form',
    onsubmit: async (e) => {
      e.preventDefault();
      const parsed = safeParse(settings.value);
      if (!parsed) { out.replaceChildren(notice('The platform rules are not JSON.')); return; }
      try {
        await api('PATCH', `/kefu/v1/apps/${appid}`, { account_type: type.value, verified: verified.checked, new_kf_enabled: newKf.checked, ...parsed });
        out.replaceChildren(notice('Saved.', 'ok'));
      } catch (error) { out.replaceChildren(notice(error.message)); }
    },
  }, field('Account type', type), field('Verified', verified), field('New customer service feature', newKf),
  field('Platform rules (IP whitelist, quotas, banned APIs) as JSON', settings), el('button', { type: 'submit', class: 'primary', testid: 'settings-save' }, 'Save'));
  main.replaceChildren(el('h1', {}, `App ${appid} (${app.wechat_id})`),
    el('p', {}, el('a', { href: `${BASE}accounts?app=${appid}` }, 'Accounts'), ' · ', el('a', { href: `${BASE}fans?app=${appid}` }, 'Fans'), ' · ',
      el('a', { href: `${BASE}summary?app=${appid}` }, 'Errcode summary'), ' · ', el('a', { href: `${BASE}tokens?app=${appid}` }, 'Tokens'), ' · ', el('a', { href: `${BASE}debugger?app=${appid}` }, 'Debugger')),
    out, form);
}

// ---------- third-party platforms ----------

async function platformsPage() {
  const out = el('div', { 'aria-live': 'polite', testid: 'platforms-message' });
  const list = el('div', { testid: 'platforms-list' });
  const apps = await api('GET', '/kefu/v1/apps');
  async function render() {
    const platforms = await api('GET', '/kefu/v1/components');
    list.replaceChildren(platforms.length ? el('table', {},
      el('thead', {}, el('tr', {}, ['component_appid', 'authorized apps', ''].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, platforms.map((p) => {
        const app = el('select', { 'aria-label': `app to authorize ${p.component_appid}` }, apps.map((a) => el('option', { value: a.appid }, `${a.appid} (${a.wechat_id})`)));
        const scopes = el('input', { value: '1,6', 'aria-label': 'permission sets', class: 'small' });
        return el('tr', { testid: `platform-${p.component_appid}` },
          el('td', { 'data-label': 'component_appid' }, el('code', {}, p.component_appid)),
          el('td', { 'data-label': 'authorized' }, (p.authorizations || []).map((a) => el('div', {}, `${a.appid}: sets ${(a.funcscopes || []).join(', ')}`))),
          el('td', { class: 'actions' },
            el('button', { type: 'button', onclick: async () => { try { const t = await api('POST', `/kefu/v1/components/${p.component_appid}/ticket`); out.replaceChildren(el('div', { class: 'secret card' }, el('p', {}, 'Ticket issued:'), el('pre', {}, JSON.stringify(t, null, 2)))); } catch (error) { out.replaceChildren(notice(error.message)); } } }, 'Issue ticket'),
            el('form', { class: 'inline', onsubmit: async (e) => { e.preventDefault(); try { const made = await api('POST', `/kefu/v1/components/${p.component_appid}/authorizations`, { appid: app.value, funcscopes: scopes.value.split(',').map((x) => Number(x.trim())).filter((x) => x) }); out.replaceChildren(el('div', { class: 'secret card' }, el('p', {}, 'Authorized; the first refresh token, shown once:'), el('pre', {}, JSON.stringify(made, null, 2)))); await render(); } catch (error) { out.replaceChildren(notice(error.message)); } } },
              app, scopes, el('button', { type: 'submit' }, 'Authorize'))));
      }))) : el('p', {}, 'No platform yet.'));
  }
  const create = el('button', {
    type: 'button', testid: 'new-platform',
    onclick: async () => {
      try {
        const made = await api('POST', '/kefu/v1/components', {});
        out.replaceChildren(el('div', { class: 'secret card', testid: 'secret-once' }, el('p', {}, 'The platform is made; its secret is shown only this once:'),
          el('dl', {}, el('dt', {}, 'component_appid'), el('dd', {}, el('code', {}, made.component_appid)), el('dt', {}, 'secret'), el('dd', {}, el('code', {}, made.component_appsecret || made.secret || ''), ' ', copyButton(made.component_appsecret || made.secret || '', 'copy-platform-secret')))));
        await render();
      } catch (error) { out.replaceChildren(notice(error.message)); }
    },
  }, 'New platform');
  main.replaceChildren(el('h1', {}, 'Third-party platforms'), out, list, el('div', { class: 'row' }, create));
  await render();
}

// ---------- tokens ----------

const STATES = { live: 'live', in_grace: 'in its grace (a newer one came)', superseded: 'superseded: 40001', expired: 'expired: 42001' };

async function tokensPage() {
  const appid = params.get('app') || '';
  const out = el('div', { 'aria-live': 'polite', testid: 'tokens-message' });
  const list = el('div', { testid: 'tokens-list' });
  const picker = await appPicker(appid, (v) => { location.href = `${BASE}tokens?app=${v}`; });
  main.replaceChildren(el('h1', {}, 'Tokens'), picker, out, list);
  if (!appid) { list.replaceChildren(el('p', {}, 'Pick an app.')); return; }
  const act = (action, hash) => async () => {
    if (!confirm(`${action === 'expire' ? 'Expire' : 'Invalidate'} this token now?`)) return;
    try { await api('POST', `/kefu/v1/apps/${appid}/tokens`, { action, hash }); await render(); }
    catch (error) { out.replaceChildren(notice(error.message)); }
  };
  async function render() {
    const tokens = await api('GET', `/kefu/v1/apps/${appid}/tokens`);
    list.replaceChildren(tokens.length ? el('table', {},
      el('thead', {}, el('tr', {}, ['kind', 'issued', 'superseded from', 'expires', 'state', 'hash', ''].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, tokens.map((t) => el('tr', { testid: `token-${t.hash.slice(0, 12)}`, 'data-kind': t.kind },
        el('td', { 'data-label': 'kind' }, t.component_appid ? `${t.kind} (${t.component_appid})` : t.kind),
        el('td', { 'data-label': 'issued' }, time(t.issued_at)),
        el('td', { 'data-label': 'superseded from' }, t.superseded_at ? time(t.superseded_at) : '—'),
        el('td', { 'data-label': 'expires' }, time(t.expires_at)),
        el('td', { 'data-label': 'state', testid: 'token-state' }, STATES[t.state] || t.state),
        el('td', { 'data-label': 'hash' }, el('code', { title: t.hash }, `${t.hash.slice(0, 12)}…`)),
        el('td', { class: 'actions' }, t.state === 'expired' ? null : [
          el('button', { type: 'button', testid: `invalidate-${t.hash.slice(0, 12)}`, onclick: act('invalidate', t.hash) }, 'Invalidate'),
          el('button', { type: 'button', class: 'danger', testid: `expire-${t.hash.slice(0, 12)}`, onclick: act('expire', t.hash) }, 'Expire')]))))) : el('p', {}, 'No token yet.'));
  }
  main.append(el('div', { class: 'row' }, el('button', {
    type: 'button', testid: 'mint-console-token',
    onclick: async () => { try { await consoleToken(appid, true); await render(); } catch (error) { out.replaceChildren(notice(error.message)); } },
  }, 'Mint a console token')), el('p', { class: 'hint' }, 'Times are the server clock\'s. A token is never shown again after it is handed out: the hash names it.'));
  await render();
}

// ---------- routing ----------

const pages = { tokens: tokensPage, '': appsPage, app: appPage, debugger: debuggerPage, requests: requestsPage, call: callPage, accounts: accountsPage, fans: fansPage, fan: fanPage, summary: summaryPage, clock: clockPage, platforms: platformsPage };

async function start() {
  const name = location.pathname.slice(BASE.length).replace(/\/$/, '');
  const page = pages[name];
  const active = { call: 'requests', accounts: 'apps', fans: 'apps', fan: 'apps', tokens: 'apps', app: 'apps', '': 'apps' }[name] ?? name;
  for (const link of document.querySelectorAll('nav a')) {
    if (link.dataset.page === active) link.setAttribute('aria-current', 'page');
  }
  showClock().catch(() => {});
  if (!page) { main.replaceChildren(el('h1', {}, 'No such page'), el('a', { href: BASE }, 'Apps')); return; }
  try { await page(); main.dataset.ready = 'yes'; }
  catch (error) { main.replaceChildren(notice(error.message)); }
}

start();
