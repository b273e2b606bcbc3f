import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, stackDir } from '../lib/paths.ts';
import { freePort } from '../lib/ports.ts';
import { isAlive, startDetached } from '../lib/proc.ts';
import { fetchQuick, waitFor } from '../lib/wait.ts';
import type { Service } from './service.ts';

const dir = join(stackDir, 'prometheus');

export const exporter: Service = {
  name: 'demo-exporter',
  group: 'prometheus',
  async start(previous) {
    const port = await freePort(previous?.http);
    mkdirSync(dir, { recursive: true });
    const binary = process.execPath;
    const { pid } = startDetached(binary, [join(repoRoot, 'scripts', 'demo-exporter.ts'), '--port', String(port)], {
      logFile: join(dir, 'exporter.log'),
    });
    return {
      pid,
      binary,
      ports: { http: port },
      startedAt: new Date().toISOString(),
      env: { DEMO_EXPORTER_URL: `http://127.0.0.1:${port}` },
    };
  },
  async ready(rec, timeoutMs) {
    await waitFor(`demo exporter at ${rec.env.DEMO_EXPORTER_URL}`, async () => (await fetchQuick(`${rec.env.DEMO_EXPORTER_URL}/metrics`)).ok, {
      timeoutMs,
      alive: () => isAlive(rec.pid),
    });
  },
};

const configFile = join(dir, 'prometheus.yml');

function renderConfig(exporterPort: number): string {
  // 1s scrapes so a raised error rate shows in rate(...[5s]) within a few seconds
  return [
    'global:',
    '  scrape_interval: 1s',
    '  evaluation_interval: 1s',
    'scrape_configs:',
    '  - job_name: demo',
    '    static_configs:',
    `      - targets: ['127.0.0.1:${exporterPort}']`,
    // a fixed instance label: series keep their identity when the exporter's port changes
    // (otherwise the old port's series linger for the 5 min lookback and queries see both)
    '        labels: {instance: demo-exporter}',
    '',
  ].join('\n');
}

export const prometheus: Service = {
  name: 'prometheus',
  group: 'prometheus',
  stale(rec, state) {
    // its config points at the exporter's port; a moved exporter means a new config
    return rec.ports.target !== state['demo-exporter']?.ports.http;
  },
  async start(previous, state) {
    const binary = '/usr/bin/prometheus';
    if (!existsSync(binary)) throw new Error('prometheus is not installed: run scripts/provision.sh (apt-get install prometheus)');
    const target = state['demo-exporter'];
    if (!target) throw new Error('the demo exporter must start before prometheus');
    const port = await freePort(previous?.http);
    mkdirSync(join(dir, 'data'), { recursive: true });
    const config = configFile;
    writeFileSync(config, renderConfig(target.ports.http!));
    const args = [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1d',
      '--web.enable-lifecycle',
    ];
    const { pid } = startDetached(binary, args, { logFile: join(dir, 'prometheus.log'), cwd: dir });
    return {
      pid,
      binary,
      ports: { http: port, target: target.ports.http! },
      startedAt: new Date().toISOString(),
      env: { PROMETHEUS_URL: `http://127.0.0.1:${port}` },
    };
  },
  async afterReady(rec) {
    // an instance started by an older version of this script gets the current config by reload
    // (lifecycle API), which also ends the series of dropped targets at once
    const wanted = renderConfig(rec.ports.target!);
    if (existsSync(configFile) && readFileSync(configFile, 'utf8') === wanted) return;
    writeFileSync(configFile, wanted);
    const res = await fetchQuick(`${rec.env.PROMETHEUS_URL}/-/reload`, { method: 'POST' });
    if (!res.ok) throw new Error(`prometheus reload: HTTP ${res.status} ${await res.text()}`);
  },
  async ready(rec, timeoutMs) {
    const url = rec.env.PROMETHEUS_URL!;
    await waitFor(`prometheus at ${url}`, async () => (await fetchQuick(`${url}/-/ready`)).ok, {
      timeoutMs,
      alive: () => isAlive(rec.pid),
    });
    // really answering means the exporter's series is queryable, not just that the port is open
    await waitFor(
      `prometheus scraping the demo exporter`,
      async () => {
        // a sample from before a restart is still within the lookback window: require a new one
        const q = encodeURIComponent('timestamp(up{job="demo"} == 1)');
        const res = await fetchQuick(`${url}/api/v1/query?query=${q}`);
        const body = (await res.json()) as { data?: { result?: { value: [number, string] }[] } };
        const sampledAt = Number(body.data?.result?.[0]?.value[1] ?? 0) * 1000;
        return sampledAt >= Date.parse(rec.startedAt);
      },
      { timeoutMs, intervalMs: 500, alive: () => isAlive(rec.pid) },
    );
  },
};
