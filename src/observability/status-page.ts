// The live status page: one self-contained HTML document (inline CSS and JS, no CDN) that subscribes to
// the live feed and draws the pool, four charts and the event feed. Served by GET /status on the LB
// port to browsers (Accept: text/html) and by GET / on the controller port.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { LIVE_EVENTS, LIVE_FEED_PATH } from './protocol.js';

/** True when the client prefers a page (a browser) to JSON (curl, API clients). */
export function wantsHtml(req: IncomingMessage): boolean {
  // ?format=json lets a browser (the page's own link) see the JSON.
  if (/[?&]format=json(&|$)/.test(req.url ?? '')) return false;
  return /\btext\/html\b/i.test(req.headers.accept ?? '');
}

/** Answers with the page; `where` names the port in the title ("load balancer", "controller"). */
export function sendStatusPage(res: ServerResponse, where: string): true {
  // A fresh nonce per answer: the page's inline script and style run, nothing injected would.
  const nonce = randomBytes(16).toString('base64');
  const html = renderStatusPage({ where, nonce });
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(html),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-security-policy': [
      "default-src 'none'",
      `script-src 'self' 'nonce-${nonce}'`,
      `style-src 'nonce-${nonce}'`,
      "connect-src 'self'",
      "img-src 'self' data:",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
  });
  res.end(html);
  return true;
}

/** GET /status on the LB port: the page for browsers, JSON for everyone else. */
export function lbStatusPage(req: IncomingMessage, res: ServerResponse): boolean {
  return wantsHtml(req) && sendStatusPage(res, 'load balancer');
}

/** GET / on the controller port: always the page. */
export function controllerStatusPage(req: IncomingMessage, res: ServerResponse): boolean {
  return (req.method === 'GET' || req.method === 'HEAD') && sendStatusPage(res, 'controller');
}

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderStatusPage(opts: { where: string; nonce: string }): string {
  const where = escapeHtml(opts.where);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Yggdrasil · live status</title>
<link rel="icon" href="data:,">
<style nonce="${opts.nonce}">
:root { --bg:#0f1419; --panel:#171d24; --line:#2a333d; --fg:#e6e9ec; --dim:#8b96a1; --ok:#3fb950;
  --warn:#d29922; --bad:#f85149; --c1:#58a6ff; --c2:#f0883e; --c3:#bc8cff; --c4:#3fb950; --c5:#8b96a1; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--fg); }
header { display:flex; align-items:center; gap:12px; padding:12px 20px; border-bottom:1px solid var(--line); }
header form { display:flex; gap:6px; align-items:center; font-size:12px; } header form[hidden] { display:none; } header input { font:inherit; }
h1 { font-size:18px; margin:0; } h2 { font-size:14px; margin:0 0 8px; color:var(--dim); font-weight:600; }
.pill { padding:2px 10px; border-radius:999px; font-size:12px; background:var(--line); color:var(--dim); }
.pill.live { background:rgba(63,185,80,.15); color:var(--ok); } .pill.down { background:rgba(248,81,73,.15); color:var(--bad); }
header .meta { margin-left:auto; color:var(--dim); font-size:12px; } header a { color:var(--c1); }
main { padding:16px 20px; display:grid; gap:16px; }
.tiles { display:grid; grid-template-columns:repeat(auto-fit, minmax(150px, 1fr)); gap:12px; }
.tile, section.card { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px; }
.tile .label { color:var(--dim); font-size:12px; } .tile .value { font-size:22px; font-weight:600; margin-top:2px; }
.tile .sub { color:var(--dim); font-size:12px; } .value.bad { color:var(--bad); } .value.warn { color:var(--warn); }
.charts { display:grid; grid-template-columns:repeat(auto-fit, minmax(280px, 1fr)); gap:12px; }
figure { margin:0; } figcaption { display:flex; justify-content:space-between; color:var(--dim); font-size:12px; }
figcaption b { color:var(--fg); font-weight:600; }
svg.chart { width:100%; height:110px; display:block; margin-top:6px; background:linear-gradient(var(--line),var(--line)) 0 50%/100% 1px no-repeat; }
.axis { color:var(--dim); font-size:11px; display:flex; justify-content:space-between; }
path.line { fill:none; stroke-width:2; vector-effect:non-scaling-stroke; stroke-linejoin:round; }
path.l1 { stroke:var(--c1); } path.l2 { stroke:var(--c2); } path.l3 { stroke:var(--c3); } path.l4 { stroke:var(--c4); }
path.l5 { stroke:var(--c5); stroke-dasharray:4 3; } path.slo { stroke:var(--bad); stroke-width:1; stroke-dasharray:2 3; }
.cols { display:grid; grid-template-columns:minmax(0, 3fr) minmax(0, 2fr); gap:16px; }
@media (max-width: 900px) { .cols { grid-template-columns:1fr; } }
table { width:100%; border-collapse:collapse; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
th { color:var(--dim); font-weight:600; font-size:12px; } td.num, th.num { text-align:right; }
.s-ready { color:var(--ok); } .s-starting { color:var(--c1); } .s-draining { color:var(--warn); }
.s-failed { color:var(--bad); } .s-stopped { color:var(--dim); }
.s-paused { color:var(--dim); font-style:italic; } .s-resuming { color:var(--c1); font-style:italic; }
.b-closed { color:var(--ok); } .b-half-open { color:var(--warn); } .b-open { color:var(--bad); font-weight:600; }
.b-none { color:var(--dim); } .empty { color:var(--dim); padding:8px; }
tr.why td { color:var(--bad); font-size:12px; padding-top:0; white-space:pre-wrap; }
ol.events { list-style:none; margin:0; padding:0; max-height:420px; overflow:auto; font-size:13px; }
ol.events li { display:grid; grid-template-columns:auto auto 1fr; gap:8px; padding:4px 0; border-bottom:1px solid var(--line); }
ol.events time { color:var(--dim); font-variant-numeric:tabular-nums; }
.kind { font-size:11px; padding:1px 6px; border-radius:4px; background:var(--line); align-self:start; }
.t-scaled .kind { background:rgba(88,166,255,.2); color:var(--c1); }
.t-instance_ready .kind { color:var(--ok); } .t-instance_failed .kind, .t-driver_error .kind { color:var(--bad); }
.t-breaker .kind { color:var(--warn); }
ol.events.only-scaling li:not(.t-scaled) { display:none; }
label.toggle { color:var(--dim); font-size:12px; float:right; }
</style>
</head>
<body>
<header>
  <h1>Yggdrasil</h1>
  <span id="conn" class="pill">connecting…</span>
  <span class="meta">${where} · <span id="driver">–</span> driver · updated <span id="updated">–</span> ·
    <a href="/status?format=json">JSON</a> · <a href="/metrics">metrics</a> ·
    <a href="#" id="key-link">key</a></span>
  <form id="key-form" hidden autocomplete="off">
    <label>API key (read or admin) <input id="key-input" type="password" size="40" spellcheck="false"></label>
    <button type="submit">Use</button> <span id="key-why" class="meta"></span>
  </form>
</header>
<main>
  <div class="tiles">
    <div class="tile"><div class="label">Requests / s</div><div class="value" id="v-rps">–</div><div class="sub" id="v-window">–</div></div>
    <div class="tile"><div class="label">p95 time to first byte</div><div class="value" id="v-p95">–</div><div class="sub">SLO 200 ms</div></div>
    <div class="tile"><div class="label">Errors (5xx)</div><div class="value" id="v-err">–</div><div class="sub">SLO 1 %</div></div>
    <div class="tile"><div class="label">Queue depth</div><div class="value" id="v-queue">–</div><div class="sub">waiting for a slot</div></div>
    <div class="tile"><div class="label">Instances ready / desired</div><div class="value" id="v-inst">–</div><div class="sub" id="v-limits">–</div></div>
    <div class="tile"><div class="label">Autoscaler</div><div class="value" id="v-mode">–</div><div class="sub">KPA mode</div></div>
  </div>
  <section class="card charts" aria-label="charts, last five minutes">
    <figure><figcaption><span>Requests / s</span><b id="chart-rps-now">–</b></figcaption>
      <svg class="chart" id="chart-rps" viewBox="0 0 600 110" preserveAspectRatio="none" role="img" aria-label="requests per second"></svg>
      <div class="axis"><span class="since">−5 min</span><span>max <span id="chart-rps-max">–</span></span></div></figure>
    <figure><figcaption><span>p95 time to first byte</span><b id="chart-p95-now">–</b></figcaption>
      <svg class="chart" id="chart-p95" viewBox="0 0 600 110" preserveAspectRatio="none" role="img" aria-label="p95 latency"></svg>
      <div class="axis"><span class="since">−5 min</span><span>max <span id="chart-p95-max">–</span></span></div></figure>
    <figure><figcaption><span>Queue depth</span><b id="chart-queue-now">–</b></figcaption>
      <svg class="chart" id="chart-queue" viewBox="0 0 600 110" preserveAspectRatio="none" role="img" aria-label="queue depth"></svg>
      <div class="axis"><span class="since">−5 min</span><span>max <span id="chart-queue-max">–</span></span></div></figure>
    <figure><figcaption><span>Instances (ready, desired dashed)</span><b id="chart-inst-now">–</b></figcaption>
      <svg class="chart" id="chart-inst" viewBox="0 0 600 110" preserveAspectRatio="none" role="img" aria-label="instance count"></svg>
      <div class="axis"><span class="since">−5 min</span><span>max <span id="chart-inst-max">–</span></span></div></figure>
  </section>
  <div class="cols">
    <section class="card"><h2>Instances</h2>
      <table id="pool"><thead><tr><th>Instance</th><th>State</th><th class="num">In-flight</th><th class="num">Sessions</th>
        <th class="num">CPU</th><th class="num">Memory</th><th>Breaker</th><th class="num">Restarts</th></tr></thead>
        <tbody id="pool-body"></tbody></table>
      <div class="empty" id="pool-empty">Loading…</div>
    </section>
    <section class="card"><h2>Events <label class="toggle"><input type="checkbox" id="only-scaling"> scaling decisions only</label></h2>
      <ol class="events" id="events"></ol>
    </section>
  </div>
</main>
<script src="${LIVE_FEED_PATH}/socket.io.js"></script>
<script nonce="${opts.nonce}">
(function () {
  'use strict';
  var SPAN_MS = 5 * 60 * 1000, W = 600, H = 110, MAX_EVENTS = 200, NS = 'http://www.w3.org/2000/svg';
  var points = [];
  var $ = function (id) { return document.getElementById(id); };
  var dash = '–';
  function num(x, d) { return x == null ? dash : Number(x).toFixed(d); }
  function ms(x) { return x == null ? dash : (x < 10 ? x.toFixed(1) : String(Math.round(x))) + ' ms'; }
  function pct(x) { return x == null ? dash : (x * 100).toFixed(x < 0.1 ? 2 : 1) + ' %'; }
  function cpu(c) { return c == null ? dash : Math.round(c * 100) + ' %'; }
  function bytes(b) {
    if (b == null) return dash;
    var u = ['B', 'KiB', 'MiB', 'GiB'], i = 0;
    while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
    return (i ? b.toFixed(1) : String(b)) + ' ' + u[i];
  }
  function clock(at) { return new Date(at).toLocaleTimeString([], { hour12: false }); }
  function nice(x) {
    if (!(x > 0)) return 1;
    var p = Math.pow(10, Math.floor(Math.log10(x))), m = x / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
  }
  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
  }
  function renderPool(list) {
    var rows = document.createDocumentFragment();
    list.forEach(function (i) {
      var tr = document.createElement('tr');
      tr.dataset.id = i.id;
      tr.dataset.state = i.state;
      cell(tr, i.id);
      cell(tr, i.state + (i.crashLoop ? ' (crash loop)' : ''), 's-' + i.state);
      cell(tr, String(i.inflight), 'num');
      // A dedicated session's instance names its session (a warm one: none yet).
      if (i.session !== undefined) cell(tr, i.session === null ? 'warm' : String(i.session).slice(0, 12), 'num');
      else cell(tr, String(i.sessions), 'num');
      cell(tr, cpu(i.cpu), 'num');
      cell(tr, bytes(i.memoryBytes), 'num');
      cell(tr, i.breaker || dash, 'b-' + (i.breaker || 'none'));
      cell(tr, String(i.restarts), 'num');
      rows.appendChild(tr);
      // Why an instance that is down is down: its last failure and what it last printed.
      if (i.lastFailure && (i.state !== 'ready' || i.crashLoop)) {
        var why = document.createElement('tr');
        why.className = 'why';
        var td = document.createElement('td');
        td.colSpan = 8;
        var out = i.lastFailure.output || [];
        td.textContent = i.lastFailure.reason + (out.length ? ' — ' + out[out.length - 1] : '');
        why.appendChild(td);
        rows.appendChild(why);
      }
    });
    $('pool-body').replaceChildren(rows);
    $('pool-empty').textContent = 'No instances (scaled to zero or starting).';
    $('pool-empty').hidden = list.length > 0;
  }
  function setValue(id, text, level) {
    var el = $(id);
    el.textContent = text;
    el.className = 'value' + (level ? ' ' + level : '');
  }
  function renderStats(s) {
    setValue('v-rps', num(s.requestsPerSecond, 1));
    setValue('v-p95', ms(s.p95LatencyMs), s.p95LatencyMs > 200 ? 'bad' : '');
    setValue('v-err', pct(s.errorRatio), s.errorRatio > 0.01 ? 'bad' : '');
    setValue('v-queue', String(s.queueDepth), s.queueDepth > 0 ? 'warn' : '');
    setValue('v-inst', s.readyInstances + ' / ' + s.desiredInstances, s.readyInstances < s.minInstances ? 'bad' : '');
    $('v-limits').textContent = 'min ' + s.minInstances + ' · max ' + s.maxInstances;
    setValue('v-mode', s.panic ? 'panic' : 'stable', s.panic ? 'warn' : '');
    $('updated').textContent = clock(s.at);
    renderPool(s.instances);
  }
  var CHARTS = [
    { id: 'chart-rps', keys: ['requestsPerSecond'], cls: ['l1'], fmt: function (v) { return num(v, 1) + '/s'; } },
    { id: 'chart-p95', keys: ['p95LatencyMs'], cls: ['l2'], fmt: ms, slo: 200 },
    { id: 'chart-queue', keys: ['queueDepth'], cls: ['l3'], fmt: function (v) { return num(v, 0); } },
    { id: 'chart-inst', keys: ['readyInstances', 'desiredInstances'], cls: ['l4', 'l5'], fmt: function (v) { return num(v, 0); } }
  ];
  function line(svg, d, cls) {
    var path = document.createElementNS(NS, 'path');
    path.setAttribute('d', d || 'M0 ' + H);
    path.setAttribute('class', 'line ' + cls);
    svg.appendChild(path);
  }
  function drawCharts() {
    if (points.length === 0) return;
    // The last five minutes once there are; until then the data there is, at least one minute.
    var last = points[points.length - 1];
    var span = Math.min(SPAN_MS, Math.max(60 * 1000, last.at - points[0].at));
    var start = last.at - span;
    var since = '−' + (span >= 120 * 1000 ? Math.round(span / 60000) + ' min' : Math.round(span / 1000) + ' s');
    document.querySelectorAll('.since').forEach(function (el) { el.textContent = since; });
    CHARTS.forEach(function (c) {
      var svg = $(c.id), max = 0;
      c.keys.forEach(function (k) {
        points.forEach(function (p) { if (p[k] != null && p[k] > max) max = p[k]; });
      });
      var top = nice(max);
      var y = function (v) { return (H - 2 - (v / top) * (H - 6)).toFixed(1); };
      svg.replaceChildren();
      if (c.slo && c.slo <= top) line(svg, 'M0 ' + y(c.slo) + 'L' + W + ' ' + y(c.slo), 'slo');
      c.keys.forEach(function (k, j) {
        var d = '', pen = false;
        points.forEach(function (p) {
          if (p.at < start || p[k] == null) { pen = false; return; }
          d += (pen ? 'L' : 'M') + (((p.at - start) / span) * W).toFixed(1) + ' ' + y(p[k]);
          pen = true;
        });
        line(svg, d, c.cls[j]);
      });
      $(c.id + '-max').textContent = c.fmt(top);
      $(c.id + '-now').textContent = c.keys.map(function (k) { return c.fmt(last[k]); }).join(' / ');
    });
  }
  function addEvent(e) {
    var li = document.createElement('li');
    li.className = 't-' + e.type;
    var t = document.createElement('time');
    t.dateTime = new Date(e.at).toISOString();
    t.textContent = clock(e.at);
    var k = document.createElement('span');
    k.className = 'kind';
    k.textContent = e.type;
    var m = document.createElement('span');
    m.textContent = e.message;
    li.append(t, k, m);
    var list = $('events');
    list.insertBefore(li, list.firstChild);
    while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
  }
  function pointOf(s) {
    return { at: s.at, requestsPerSecond: s.requestsPerSecond, p95LatencyMs: s.p95LatencyMs, errorRatio: s.errorRatio,
      queueDepth: s.queueDepth, readyInstances: s.readyInstances, desiredInstances: s.desiredInstances };
  }
  $('only-scaling').addEventListener('change', function (ev) {
    $('events').classList.toggle('only-scaling', ev.target.checked);
  });
  var conn = $('conn');
  // The key lives in this tab only (sessionStorage) and goes in Socket.IO's auth, never in a URL or cookie.
  var KEY = 'yggdrasil-key';
  var socket = io({ path: '${LIVE_FEED_PATH}', transports: ['websocket', 'polling'], tryAllTransports: true,
    auth: function (cb) { cb({ token: sessionStorage.getItem(KEY) || '' }); } });
  function askKey(why) {
    $('key-form').hidden = false;
    $('key-why').textContent = why || '';
    $('key-input').focus();
  }
  $('key-link').addEventListener('click', function (ev) { ev.preventDefault(); askKey(''); });
  $('key-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    sessionStorage.setItem(KEY, $('key-input').value.trim());
    $('key-input').value = '';
    $('key-form').hidden = true;
    socket.disconnect().connect();
  });
  socket.on('connect', function () { conn.textContent = 'live'; conn.className = 'pill live'; });
  socket.on('disconnect', function () { conn.textContent = 'reconnecting…'; conn.className = 'pill down'; });
  socket.on('connect_error', function (err) {
    if (/YGG_ERR_UNAUTHORIZED|YGG_ERR_FORBIDDEN/.test(err && err.message)) {
      conn.textContent = 'key needed'; conn.className = 'pill down';
      askKey(sessionStorage.getItem(KEY) ? 'that key was refused' : 'this page needs a key');
      return;
    }
    conn.textContent = 'offline'; conn.className = 'pill down';
  });
  socket.on('${LIVE_EVENTS.hello}', function (h) {
    $('driver').textContent = h.driver;
    $('v-window').textContent = 'last ' + Math.round(h.windowMs / 1000) + ' s';
    points = h.history.slice();
    $('events').replaceChildren();
    h.events.forEach(addEvent);
    renderStats(h.stats);
    drawCharts();
    document.body.dataset.ready = '1';
  });
  socket.on('${LIVE_EVENTS.stats}', function (s) {
    points.push(pointOf(s));
    while (points.length > 0 && points[0].at < s.at - SPAN_MS) points.shift();
    renderStats(s);
    drawCharts();
  });
  socket.on('${LIVE_EVENTS.event}', addEvent);
})();
</script>
</body>
</html>
`;
}
