/**
 * The automatic attributes a simulated node saves: a realistic minimum of what ohai reports.
 *
 * Shapes and values follow Debian 12's `ohai` package (16.13.0), run once on a Debian 12 KVM
 * guest: the attributes chef-client keeps with `minimal_ohai` (fqdn, machinename, hostname,
 * platform, platform_version, ohai_time, os, os_version, init_package) plus the few that
 * searches and dashboards usually read (platform_family, lsb, kernel, ipaddress, macaddress,
 * network's default route, memory and cpu totals, uptime, virtualization, chef_packages). The
 * bulky plugins (packages, sysconf, filesystem, block_device, languages: ~100 KB together) are
 * left out, as `minimal_ohai` or an allowlist would leave them out on a real fleet.
 *
 * Per node the values are derived from its name, so a node reports the same addresses every run
 * and different nodes differ. Addresses come from the documentation ranges (RFC 5737, RFC 3849):
 * nothing ever connects to them.
 */
import { createHash } from 'node:crypto';
import { CHEF_VERSION } from '../../activities/chef/client.ts';

/** the ohai the shapes were taken from; the chef-client version is the one the requests announce (X-Chef-Version) */
export const OHAI_VERSION = '16.13.0';

export interface OhaiInput {
  name: string;
  /** the node's own clock, epoch ms: ohai_time and uptime come from it */
  nowMs: number;
  /** when the simulated VM booted (node clock, epoch ms) */
  bootMs: number;
}

function bytesOf(name: string): Buffer {
  return createHash('sha256').update(name).digest();
}

function uptimeText(seconds: number): string {
  const d = Math.floor(seconds / 86_400);
  const h = Math.floor((seconds % 86_400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  const part = (n: number, unit: string) => `${n} ${unit}${n === 1 ? '' : 's'}`;
  // ohai's format: "13 minutes 25 seconds", "2 days 01 hours 03 minutes 12 seconds"
  if (d > 0) return `${part(d, 'day')} ${String(h).padStart(2, '0')} hours ${String(m).padStart(2, '0')} minutes ${String(s).padStart(2, '0')} seconds`;
  if (h > 0) return `${part(h, 'hour')} ${String(m).padStart(2, '0')} minutes ${String(s).padStart(2, '0')} seconds`;
  return `${part(m, 'minute')} ${part(s, 'second')}`;
}

/** automatic attributes for one run, without `cookbooks` (the run adds those from the solved set) */
export function ohaiAttributes(o: OhaiInput): Record<string, unknown> {
  const b = bytesOf(o.name);
  const host = o.name.split('.')[0]!;
  const fqdn = o.name.includes('.') ? o.name : `${o.name}.fleet.example`;
  const ip = `198.51.100.${1 + (b[0]! % 254)}`;
  const gateway = '198.51.100.254';
  const mac = ['02', ...[...b.subarray(1, 6)].map((x) => x.toString(16).padStart(2, '0'))].join(':').toUpperCase();
  const ip6 = `2001:db8::${b.readUInt16BE(6).toString(16)}:${b.readUInt16BE(8).toString(16)}`;
  const uptime = Math.max(0, Math.floor((o.nowMs - o.bootMs) / 1000));
  const cores = 2 << (b[10]! % 3); // 2, 4 or 8
  const memKb = cores * 4 * 1024 * 1024 - 337_920; // what the kernel leaves of 4 GiB per core
  return {
    ohai_time: o.nowMs / 1000,
    hostname: host,
    machinename: host,
    fqdn,
    domain: fqdn.includes('.') ? fqdn.slice(fqdn.indexOf('.') + 1) : null,
    os: 'linux',
    os_version: '6.1.0-32-amd64',
    kernel: { name: 'Linux', release: '6.1.0-32-amd64', version: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.129-1 (2025-03-06)', machine: 'x86_64', processor: 'unknown', os: 'GNU/Linux' },
    platform: 'debian',
    platform_version: '12',
    platform_family: 'debian',
    lsb: { id: 'Debian', description: 'Debian GNU/Linux 12 (bookworm)', release: '12', codename: 'bookworm' },
    init_package: 'systemd',
    root_group: 'root',
    time: { timezone: 'UTC' },
    ipaddress: ip,
    macaddress: mac,
    ip6address: ip6,
    network: {
      default_interface: 'eth0',
      default_gateway: gateway,
      interfaces: {
        eth0: {
          type: 'eth',
          number: '0',
          mtu: '1500',
          flags: ['BROADCAST', 'MULTICAST', 'UP', 'LOWER_UP'],
          encapsulation: 'Ethernet',
          addresses: {
            [mac]: { family: 'lladdr' },
            [ip]: { family: 'inet', prefixlen: '24', netmask: '255.255.255.0', broadcast: '198.51.100.255', scope: 'Global' },
            [ip6]: { family: 'inet6', prefixlen: '64', scope: 'Global', tags: [] },
          },
          state: 'up',
        },
      },
    },
    memory: { total: `${memKb}kB` },
    cpu: { total: cores, real: 1, cores },
    uptime_seconds: uptime,
    uptime: uptimeText(uptime),
    virtualization: { systems: { kvm: 'guest' }, system: 'kvm', role: 'guest' },
    chef_packages: {
      chef: { version: CHEF_VERSION, chef_root: `/opt/chef/embedded/lib/ruby/gems/3.1.0/gems/chef-${CHEF_VERSION}/lib` },
      ohai: { version: OHAI_VERSION, ohai_root: '/usr/share/rubygems-integration/all/gems/ohai-16.13.0/lib/ohai' },
    },
  };
}
