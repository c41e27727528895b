/**
 * The status page served at GET /status: one HTML document with its style and script inline
 * (no CDN, no build step, nothing fetched but its own event stream). The script opens
 * `status/events` (relative, so a path prefix in front of the gateway keeps working), renders each
 * snapshot with plain DOM calls — every value through `textContent`, never as markup — and shows a
 * "gateway unreachable" banner when the stream errs or falls silent, until snapshots come again.
 * Hooks for a test or a person's devtools: `body[data-connection]` is `connecting`, `live` or
 * `unreachable`; each stream's card is `[data-stream="v2/iex"]` with `data-state` its link state.
 */

const STYLE = `
:root { color-scheme: light dark; --ok: #1a7f37; --warn: #b35900; --bad: #c62828; --muted: #6b7280; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
header { display: flex; flex-wrap: wrap; gap: 12px 24px; align-items: baseline; padding: 12px 20px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0; font-size: 18px; }
header .meta { color: var(--muted); }
#banner { display: none; margin: 12px 20px 0; padding: 10px 14px; border-radius: 6px; background: var(--bad); color: #fff; font-weight: 600; }
body[data-connection="unreachable"] #banner { display: block; }
body[data-connection="unreachable"] main { opacity: 0.55; }
main { padding: 12px 20px 24px; }
h2 { font-size: 15px; margin: 18px 0 8px; }
#streams { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 12px; }
.stream { border: 1px solid var(--line); border-left-width: 6px; border-radius: 6px; padding: 10px 12px; }
.stream[data-state="live"] { border-left-color: var(--ok); }
.stream[data-state="connecting"], .stream[data-state="authenticating"], .stream[data-state="backoff"] { border-left-color: var(--warn); }
.stream[data-state="breaker-open"], .stream[data-state="failed"], .stream[data-state="stopped"], .stream[data-state="stopping"] { border-left-color: var(--bad); }
.stream h3 { margin: 0 0 6px; font-size: 15px; display: flex; justify-content: space-between; gap: 8px; }
.stream h3 .kind { color: var(--muted); font-weight: 400; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px; font-weight: 600; color: #fff; background: var(--muted); }
.stream[data-state="live"] .badge { background: var(--ok); }
.stream[data-state="connecting"] .badge, .stream[data-state="authenticating"] .badge, .stream[data-state="backoff"] .badge { background: var(--warn); }
.stream[data-state="breaker-open"] .badge, .stream[data-state="failed"] .badge, .stream[data-state="stopped"] .badge { background: var(--bad); }
dl { display: grid; grid-template-columns: auto 1fr; gap: 2px 12px; margin: 6px 0; }
dt { color: var(--muted); white-space: nowrap; }
dd { margin: 0; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
svg.chart { width: 100%; height: 64px; display: block; border: 1px solid var(--line); border-radius: 4px; }
.legend { display: flex; gap: 14px; font-size: 12px; color: var(--muted); }
.legend .m::before, .legend .d::before { content: ""; display: inline-block; width: 10px; height: 3px; margin-right: 4px; vertical-align: middle; }
.legend .m::before { background: #1f6feb; }
.legend .d::before { background: #8250df; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: 3px 14px 3px 0; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 500; }
.muted { color: var(--muted); }
`;

// Plain ES5-style script: no template literals inside, so this file's own template stays literal.
const SCRIPT = `
(function () {
  'use strict';
  var body = document.body;
  var banner = document.getElementById('banner');
  var streamsBox = document.getElementById('streams');
  var cards = {};
  var series = {};
  var windowPoints = 300;
  var source = null;
  var staleTimer = null;
  var retryTimer = null;
  var lastSnapshotAt = null;

  function text(node, value) { node.textContent = value === null || value === undefined || value === '' ? '\\u2014' : String(value); }
  function make(tag, className, parent) { var n = document.createElement(tag); if (className) n.className = className; if (parent) parent.appendChild(n); return n; }
  function rate(value) { return value >= 100 ? Math.round(value).toLocaleString() : value.toFixed(1); }
  function bytes(n) { if (n === null || n === undefined) return null; var units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']; var i = 0; while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; } return (i === 0 ? n : n.toFixed(1)) + ' ' + units[i]; }
  function ago(iso, now) { if (!iso) return null; var s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000)); var t = s < 90 ? s + ' s' : s < 5400 ? Math.round(s / 60) + ' min' : Math.round(s / 3600) + ' h'; return t + ' ago (' + new Date(iso).toLocaleTimeString() + ')'; }

  function setConnection(state, message) {
    body.setAttribute('data-connection', state);
    if (state === 'unreachable') {
      banner.textContent = 'Gateway unreachable: ' + message + (lastSnapshotAt ? '. What is shown is from ' + lastSnapshotAt.toLocaleTimeString() + '.' : '.') + ' Retrying\\u2026';
    }
    document.getElementById('connection').textContent = state === 'live' ? 'live' : state;
  }

  function row(dl, label) { text(make('dt', '', dl), label); var dd = make('dd', '', dl); return dd; }

  function card(path) {
    if (cards[path]) return cards[path];
    var root = make('section', 'stream', streamsBox);
    root.setAttribute('data-stream', path);
    var h = make('h3', '', root);
    var name = make('span', '', h);
    name.textContent = path + ' ';
    var kind = make('span', 'kind', name);
    var badge = make('span', 'badge', h);
    var dl = make('dl', '', root);
    var c = { root: root, kind: kind, badge: badge };
    c.since = row(dl, 'since'); c.reason = row(dl, 'reason'); c.breaker = row(dl, 'breaker');
    c.owner = row(dl, 'lease owner'); c.ownerRow = c.owner.previousSibling;
    c.rates = row(dl, 'rates /s');
    c.clients = row(dl, 'clients'); c.lagging = row(dl, 'lagging clients'); c.closes = row(dl, '407 slow closes');
    c.subs = row(dl, 'subscriptions'); c.last = row(dl, 'last message'); c.tape = row(dl, 'tape');
    var ns = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('class', 'chart'); svg.setAttribute('viewBox', '0 0 300 60'); svg.setAttribute('preserveAspectRatio', 'none');
    svg.setAttribute('role', 'img'); svg.setAttribute('aria-label', 'vendor messages and deliveries per second, last minutes');
    c.lineM = document.createElementNS(ns, 'polyline'); c.lineM.setAttribute('fill', 'none'); c.lineM.setAttribute('stroke', '#1f6feb'); c.lineM.setAttribute('stroke-width', '1.5'); c.lineM.setAttribute('vector-effect', 'non-scaling-stroke');
    c.lineD = document.createElementNS(ns, 'polyline'); c.lineD.setAttribute('fill', 'none'); c.lineD.setAttribute('stroke', '#8250df'); c.lineD.setAttribute('stroke-width', '1.5'); c.lineD.setAttribute('vector-effect', 'non-scaling-stroke');
    svg.appendChild(c.lineD); svg.appendChild(c.lineM); root.appendChild(svg);
    var legend = make('div', 'legend', root);
    c.legendM = make('span', 'm', legend); c.legendD = make('span', 'd', legend); c.legendMax = make('span', '', legend);
    cards[path] = c;
    return c;
  }

  function points(values, max) {
    var n = values.length; if (n === 0) return '';
    var out = [];
    // The points there are span the width: the legend says how many seconds that is.
    for (var i = 0; i < n; i++) { var x = n === 1 ? 300 : (300 * i) / (n - 1); out.push(x.toFixed(1) + ',' + (58 - (56 * values[i]) / max).toFixed(1)); }
    return out.join(' ');
  }

  function chart(c, s) {
    var max = 1; var i;
    for (i = 0; i < s.messages.length; i++) max = Math.max(max, s.messages[i], s.deliveries[i]);
    c.lineM.setAttribute('points', points(s.messages, max));
    c.lineD.setAttribute('points', points(s.deliveries, max));
    c.legendM.textContent = 'vendor msgs/s'; c.legendD.textContent = 'deliveries/s';
    c.legendMax.textContent = 'scale 0\\u2013' + rate(max) + '/s, last ' + Math.round((s.messages.length * s.intervalMs) / 1000) + ' s';
  }

  function render(snap) {
    var now = Date.parse(snap.at);
    text(document.getElementById('version'), 'v' + snap.version);
    text(document.getElementById('uptime'), 'up ' + snap.uptimeSeconds + ' s');
    text(document.getElementById('totals'), snap.clients.authenticated + ' clients \\u00b7 ' + snap.clients.viewers + ' status viewers (of MAX_CLIENTS ' + snap.clients.maxClients + ', at most ' + snap.clients.maxViewers + ' viewers)');
    var cluster = snap.cluster;
    snap.streams.forEach(function (st) {
      var c = card(st.stream);
      c.root.setAttribute('data-state', st.state);
      text(c.kind, st.kind); text(c.badge, st.state);
      text(c.since, ago(st.since, now)); text(c.reason, st.reason); text(c.breaker, st.breaker);
      var owner = cluster.cluster === null ? null : cluster.streams[st.stream];
      c.owner.style.display = c.ownerRow.style.display = owner ? '' : 'none';
      if (owner) text(c.owner, (owner.owner || 'none') + (owner.role === 'owner' ? ' (this node)' : ''));
      text(c.rates, rate(st.rates.messages) + ' from the vendor \\u00b7 ' + rate(st.rates.deliveries) + ' delivered');
      text(c.clients, st.clients.authenticated + ' authenticated \\u00b7 ' + st.clients.connected + ' connected');
      text(c.lagging, st.lagging); text(c.closes, st.slowClientCloses);
      text(c.subs, st.subscriptions.desired + ' wanted \\u00b7 ' + (st.subscriptions.atVendor === null ? 'held by the owner' : st.subscriptions.atVendor + ' at the vendor'));
      text(c.last, ago(st.lastMessageAt, now)); text(c.tape, st.tape);
      var s = series[st.stream];
      if (st.history) { s = series[st.stream] = { messages: st.history.messages.slice(), deliveries: st.history.deliveries.slice(), at: st.rates.at, intervalMs: snap.intervalMs }; }
      else if (s && st.rates.at && st.rates.at !== s.at) { s.messages.push(st.rates.messages); s.deliveries.push(st.rates.deliveries); s.at = st.rates.at; }
      if (s) { while (s.messages.length > windowPoints) { s.messages.shift(); s.deliveries.shift(); } chart(c, s); }
    });
    var clusterBox = document.getElementById('cluster');
    clusterBox.style.display = cluster.cluster === null ? 'none' : '';
    if (cluster.cluster !== null) {
      text(document.getElementById('cluster-name'), cluster.cluster + ' \\u00b7 this node ' + cluster.node + ' \\u00b7 NATS ' + cluster.nats);
      var tbody = document.getElementById('nodes');
      while (tbody.firstChild) tbody.removeChild(tbody.firstChild);
      cluster.nodes.forEach(function (n) {
        var tr = make('tr', '', tbody);
        text(make('td', '', tr), n.id + (n.id === cluster.node ? ' (this node)' : ''));
        text(make('td', '', tr), n.clients);
        text(make('td', '', tr), n.streams.join(', '));
        text(make('td', '', tr), ago(n.lastSeen, now));
      });
    }
    var tape = snap.tape;
    var tapeBox = document.getElementById('tape');
    tapeBox.setAttribute('data-tape', tape.state);
    text(document.getElementById('tape-state'), tape.state + (tape.reason ? ': ' + tape.reason : ''));
    text(document.getElementById('tape-bytes'), tape.bytesWritten === null ? null : bytes(tape.bytesWritten) + ' written since start');
  }

  function armStale(ms) {
    if (staleTimer) clearTimeout(staleTimer);
    staleTimer = setTimeout(function () { setConnection('unreachable', 'no update for ' + Math.round(ms / 1000) + ' s'); }, ms);
  }

  function connect() {
    retryTimer = null;
    source = new EventSource('status/events');
    source.addEventListener('snapshot', function (event) {
      var snap = JSON.parse(event.data);
      lastSnapshotAt = new Date();
      render(snap);
      setConnection('live');
      armStale(Math.max(4000, snap.intervalMs * 4));
    });
    source.onerror = function () {
      setConnection('unreachable', source.readyState === EventSource.CLOSED ? 'the gateway refused the live updates' : 'the connection to the gateway is lost');
      // CONNECTING: the browser retries by itself; CLOSED (an error status such as 503): start over later.
      if (source.readyState === EventSource.CLOSED && retryTimer === null) { source.close(); retryTimer = setTimeout(connect, 3000); }
    };
  }

  setConnection('connecting');
  connect();
})();
`;

/** The page: a fixed document (nothing in it depends on the request). */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tickmux status</title>
<style>${STYLE}</style>
</head>
<body data-connection="connecting">
<header>
  <h1>tickmux status</h1>
  <span class="meta" id="version"></span>
  <span class="meta" id="uptime"></span>
  <span class="meta">updates: <strong id="connection">connecting</strong></span>
  <span class="meta" id="totals"></span>
</header>
<div id="banner" role="alert">Gateway unreachable</div>
<main>
  <h2>Streams</h2>
  <div id="streams"></div>
  <section id="cluster" style="display:none">
    <h2>Cluster</h2>
    <p class="muted" id="cluster-name"></p>
    <table><thead><tr><th>node</th><th>clients</th><th>streams</th><th>last seen</th></tr></thead><tbody id="nodes"></tbody></table>
  </section>
  <section id="tape">
    <h2>Tape</h2>
    <dl><dt>state</dt><dd id="tape-state"></dd><dt>bytes</dt><dd id="tape-bytes"></dd></dl>
  </section>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;
