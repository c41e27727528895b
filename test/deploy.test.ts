/**
 * The operators' files under deploy/ against the real thing: every metric and label the Grafana
 * dashboard and the Prometheus alert rules name exists in the /metrics of a real gateway — a
 * cluster node recording to JetStream (TAPE=1) or a standalone one recording to files (TAPE_DIR),
 * which between them export every family — and `promtool check rules` passes when installed.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';
import { startGateway } from './helpers/gateway.js';
import { NATS_SKIP, startNats } from './helpers/nats.js';
import { ROOT } from './helpers/processes.js';
import { startSimulator } from './helpers/simulator.js';
import { eventually } from './helpers/wait.js';

const ALERTS = `${ROOT}deploy/prometheus/alerts.yml`;
const DASHBOARD = `${ROOT}deploy/grafana/tickmux.json`;
/** Labels Prometheus adds to every scraped series (target labels), and histograms' bucket bound. */
const SCRAPE_LABELS = new Set(['job', 'instance']);

interface Rule {
  alert: string;
  expr: string;
  annotations: { summary: string; description: string };
}

const rules = (parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  panels: { title: string; targets: { expr: string }[] }[];
  templating: { list: { name: string; query: string }[] };
};
const queries: { where: string; expr: string }[] = [
  ...rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })),
  ...dashboard.panels.flatMap((p) => p.targets.map((target) => ({ where: `panel "${p.title}"`, expr: target.expr }))),
  ...dashboard.templating.list.filter((v) => v.query.includes('tickmux_')).map((v) => ({ where: `variable $${v.name}`, expr: v.query })),
];

/** Families and the label names their samples carry, from the exposition text. */
function families(text: string): Map<string, { type: string; labels: Set<string> }> {
  const out = new Map<string, { type: string; labels: Set<string> }>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) out.set(type[1]!, { type: type[2]!, labels: new Set() });
  }
  for (const line of text.split('\n')) {
    const sample = /^([a-z_:][a-z0-9_:]*)(?:\{([^}]*)\})? /.exec(line);
    if (!sample) continue;
    const family = out.get(sample[1]!) ?? out.get(sample[1]!.replace(/_(bucket|sum|count)$/, ''));
    for (const pair of (sample[2] ?? '').split(',')) if (pair.includes('=')) family?.labels.add(pair.slice(0, pair.indexOf('=')));
  }
  return out;
}

t.test('every metric and label the dashboard and the alerts name is in a real gateway’s /metrics', { skip: NATS_SKIP }, async (t) => {
  const nats = await startNats(t);
  const sim = await startSimulator(t);
  const node = await startGateway(t, {
    UPSTREAM_URL: sim.baseUrl,
    STREAMS: 'v2/iex,v1beta3/crypto/us',
    APCA_API_KEY_ID: 'AKDEPLOY',
    APCA_API_SECRET_KEY: 'deploy-secret',
    NATS_URL: nats.url,
    CLUSTER_NAME: 'deploy',
    NODE_ID: 'node-a',
    TAPE: '1',
  });
  const standalone = await startGateway(t, { TAPE_DIR: t.testdir() });
  await eventually(() => node.gateway.stream('v2/iex')?.link.state === 'live', 'the stock link live on its only node');
  await eventually(() => standalone.gateway.stream('v2/iex')?.link.state === 'live', 'the standalone gateway live');
  const res = await node.app.inject({ method: 'GET', url: '/metrics' });
  const other = await standalone.app.inject({ method: 'GET', url: '/metrics' });
  t.same([res.statusCode, other.statusCode], [200, 200]);
  const known = families(res.body);
  for (const [name, family] of families(other.body)) {
    const seen = known.get(name);
    if (seen === undefined) known.set(name, family);
    else for (const label of family.labels) seen.labels.add(label);
  }
  t.ok(queries.length >= 20, `${queries.length} queries: ${rules.length} alerts, ${dashboard.panels.length} panels and the variables`);
  for (const { where, expr } of queries) {
    const names = [...expr.matchAll(/\btickmux_[a-z0-9_]+/g)].map((m) => m[0]);
    t.ok(names.length > 0, `${where} reads tickmux metrics`);
    const labelsHere = new Set<string>();
    for (const name of names) {
      const bucket = name.endsWith('_bucket') ? name.slice(0, -'_bucket'.length) : undefined;
      const family = known.get(name) ?? (bucket === undefined ? undefined : known.get(bucket));
      t.ok(family !== undefined && (bucket === undefined || family.type === 'histogram'), `${where}: ${name} is exported`);
      for (const label of family?.labels ?? []) labelsHere.add(label);
      if (bucket !== undefined) labelsHere.add('le');
    }
    // Labels in selectors (`{stream=~"$stream"}`) and in aggregations (`by (stream, channel)`).
    const named = [
      ...[...expr.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1]!.matchAll(/([a-z_]+)\s*(?:=~|!~|!=|=)/g)].map((l) => l[1]!)),
      ...[...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((l) => l.trim())),
      ...[...expr.matchAll(/label_values\([^,]+,\s*([a-z_]+)\)/g)].map((m) => m[1]!),
    ];
    for (const label of named) t.ok(SCRAPE_LABELS.has(label) || labelsHere.has(label), `${where}: label ${label} is on ${names.join(', ')}`);
  }
  // The label values the alerts and the dashboard match on exist too.
  t.match(res.body, /tickmux_upstream_state\{stream="v2\/iex",state="live"\} 1/, 'state="live" is a value of tickmux_upstream_state');
  t.match(res.body, /tickmux_cluster_lease_changes_total\{change="acquired"\} [1-9]/, 'change="acquired" counts the lease this node took');
});

t.test('the alerts cover what the issue lists, each with a summary and a first thing to check', async (t) => {
  const exprs = rules.map((r) => r.expr).join('\n');
  for (const metric of ['tickmux_upstream_state', 'tickmux_upstream_breaker_state', 'tickmux_slow_client_closes_total', 'tickmux_cluster_lease_changes_total', 'tickmux_cluster_lost_total', 'tickmux_tape_degraded']) {
    t.ok(exprs.includes(metric), `an alert on ${metric}`);
  }
  for (const rule of rules) t.ok(rule.annotations.summary.length > 0 && /Check /.test(rule.annotations.description), `${rule.alert}: says what to check`);
  t.match(readFileSync(`${ROOT}README.md`, 'utf8'), new RegExp(rules.map((r) => r.alert).join('[\\s\\S]*')), 'README names every alert, in order');
});

const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p));
t.test('promtool check rules passes', { skip: PROMTOOL === undefined ? 'promtool is not installed (apt-get install prometheus)' : false }, async (t) => {
  const out = execFileSync(PROMTOOL!, ['check', 'rules', ALERTS], { encoding: 'utf8' });
  t.match(out, new RegExp(`SUCCESS: ${rules.length} rules found`));
});
