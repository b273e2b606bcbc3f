/**
 * Where gates and webhooks may connect. A destination passes two checks:
 *   1. its name (or IP literal) and port are listed in the app's `hosts`;
 *   2. every address it resolves to — checked again when the socket connects, so DNS cannot
 *      smuggle one in — is an ordinary address, or one an IP/CIDR entry of `hosts` lists.
 * Special addresses (loopback, link-local, cloud metadata, private/cluster-internal, unspecified,
 * multicast and reserved) are refused unless listed; so are internal-looking names (localhost,
 * *.svc, *.cluster.local, *.internal, single-label names) unless an exact entry names them.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import { BlockList, isIP, isIPv4 } from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';
import { globMatch, isGlob } from './glob.ts';

export type HostEntry =
  | { kind: 'name'; pattern: string; port?: number; text: string }
  | { kind: 'net'; list: BlockList; port?: number; text: string };

const family = (ip: string) => (isIPv4(ip) ? 'ipv4' : 'ipv6');

/** `::ffff:127.0.0.1` and `::ffff:7f00:1` are IPv4 addresses in IPv6 clothing. */
export function normalizeIp(ip: string): string {
  const bare = ip.replace(/^\[|\]$/g, '').toLowerCase();
  if (isIP(bare) !== 6) return bare;
  // the URL parser writes IPv6 in its canonical form: ::ffff:127.0.0.1 becomes [::ffff:7f00:1]
  const canonical = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  const hex = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (hex) {
    const a = parseInt(hex[1]!, 16);
    const b = parseInt(hex[2]!, 16);
    return `${a >> 8}.${a & 255}.${b >> 8}.${b & 255}`;
  }
  return canonical;
}

function subnet(text: string): BlockList {
  const list = new BlockList();
  const [addr, prefix] = text.split('/');
  const ip = normalizeIp(addr!);
  if (!isIP(ip)) throw new Error(`${JSON.stringify(text)}: ${addr} is not an IP address`);
  const bits = prefix === undefined ? (isIPv4(ip) ? 32 : 128) : Number(prefix);
  if (!Number.isInteger(bits) || bits < 0 || bits > (isIPv4(ip) ? 32 : 128)) throw new Error(`${JSON.stringify(text)}: bad prefix length`);
  list.addSubnet(ip, bits, family(ip));
  return list;
}

const parsePort = (text: string, p: string) => {
  const port = Number(p);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${JSON.stringify(text)}: ${p} is not a port`);
  return port;
};

/** `host`, `*.domain`, `host:port`, `1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`, `10.0.0.0/8`. */
export function parseHostEntry(text: string): HostEntry {
  const t = text.trim().toLowerCase();
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (v6) return { kind: 'net', list: subnet(v6[1]!), text, ...(v6[2] ? { port: parsePort(text, v6[2]) } : {}) };
  if (t.includes('/') || isIP(t)) return { kind: 'net', list: subnet(t), text };
  const [host, port, extra] = t.split(':');
  if (extra !== undefined) throw new Error(`${JSON.stringify(text)}: write IPv6 addresses in brackets ([::1]:8080) or as a CIDR`);
  if (isIPv4(host!)) return { kind: 'net', list: subnet(host!), text, ...(port ? { port: parsePort(text, port) } : {}) };
  if (!/^[a-z0-9*]([a-z0-9*.-]*[a-z0-9*])?$/.test(host!)) throw new Error(`${JSON.stringify(text)} is not a host name, address or CIDR`);
  return { kind: 'name', pattern: host!, text, ...(port ? { port: parsePort(text, port) } : {}) };
}

const SPECIAL: [string, string[]][] = [
  ['a cloud metadata address', ['169.254.169.254/32', '169.254.170.2/32', '100.100.100.200/32', 'fd00:ec2::254/128']],
  ['a loopback address', ['127.0.0.0/8', '::1/128']],
  ['an unspecified address', ['0.0.0.0/8', '::/128']],
  ['a link-local address', ['169.254.0.0/16', 'fe80::/10']],
  ['a private (cluster-internal) address', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7']],
  ['a multicast, broadcast or reserved address', ['224.0.0.0/4', '240.0.0.0/4', 'ff00::/8', '192.0.0.0/24', '198.18.0.0/15', '64:ff9b::/96', '100::/64', '2001:db8::/32']],
];
const SPECIAL_LISTS = SPECIAL.map(([what, nets]) => {
  const list = new BlockList();
  for (const n of nets) {
    const [a, p] = n.split('/');
    list.addSubnet(a!, Number(p), family(a!));
  }
  return [what, list] as const;
});

/** What kind of special address this is, or undefined for an ordinary one. */
export function specialAddress(ip: string): string | undefined {
  const n = normalizeIp(ip);
  if (!isIP(n)) return 'not an IP address';
  return SPECIAL_LISTS.find(([, list]) => list.check(n, family(n)))?.[0];
}

/** Names that resolve inside the cluster or the machine. */
export function internalName(host: string): boolean {
  const h = host.replace(/\.$/, '');
  return !h.includes('.') || /(^|\.)(localhost|internal|svc|cluster\.local|local|home\.arpa)$/.test(h) || /^metadata(\.|$)/.test(h) || /^kubernetes\.default/.test(h);
}

export class PolicyDeniedError extends Error {
  readonly code = 'HR_POLICY_DENIED';
  constructor(message: string) {
    super(message);
    this.name = 'PolicyDeniedError';
  }
}

/** The PolicyDeniedError inside an error from undici or a socket, if that is what it is. */
export function policyDenial(err: unknown): PolicyDeniedError | undefined {
  for (let e = err as { cause?: unknown; errors?: unknown[] } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (e instanceof PolicyDeniedError) return e;
    const inner = e.errors?.find((x) => x instanceof PolicyDeniedError);
    if (inner) return inner as PolicyDeniedError;
  }
  return undefined;
}

/** The host entries of one app, with the rule named in refusals. */
export class DestinationGuard {
  private readonly entries: HostEntry[];
  /** e.g. `hosts of app storefront (policy /etc/hybrid-release/policy.yaml, apps[0])` */
  readonly rule: string;

  constructor(hosts: readonly string[], rule: string) {
    this.entries = hosts.map(parseHostEntry);
    this.rule = rule;
  }

  private portOk = (e: HostEntry, port: number) => e.port === undefined || e.port === port;

  private listedAddress(ip: string, port: number): boolean {
    const n = normalizeIp(ip);
    return this.entries.some((e) => e.kind === 'net' && this.portOk(e, port) && e.list.check(n, family(n)));
  }

  /** Why this host and port may not be reached (name-level), or undefined. */
  checkHost(hostname: string, port: number): string | undefined {
    const host = hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
    const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    if (isIP(host)) {
      if (this.listedAddress(host, port)) return undefined;
      const special = specialAddress(host);
      return `${where} is not listed in the ${this.rule}${special ? ` (${host} is ${special})` : ''}`;
    }
    const match = this.entries.filter((e) => e.kind === 'name' && this.portOk(e, port) && globMatch(e.pattern, host));
    if (match.length === 0) return `${where} is not listed in the ${this.rule}`;
    if (internalName(host) && match.every((e) => isGlob((e as { pattern: string }).pattern))) {
      return `${host} is an internal name, which only an exact entry in the ${this.rule} allows (not a pattern)`;
    }
    return undefined;
  }

  /** Why a resolved address may not be connected to, or undefined. */
  checkAddress(ip: string, port: number, name: string): string | undefined {
    const special = specialAddress(ip);
    if (!special || this.listedAddress(ip, port)) return undefined;
    return `${name} resolves to ${normalizeIp(ip)}, ${special}, which the ${this.rule} do not list`;
  }

  /** dns.lookup that refuses special addresses; given to every socket the guarded agent opens. */
  lookup = (hostname: string, options: LookupOneOptions | LookupAllOptions | number, callback: (...args: any[]) => void): void => {
    const opts = typeof options === 'number' ? { family: options } : options;
    dnsLookup(hostname, { ...opts, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err);
      const port = (opts as { port?: number }).port ?? 0;
      for (const a of addresses) {
        const why = this.checkAddressAnyPort(a.address, port, hostname);
        if (why) return callback(new PolicyDeniedError(why));
      }
      if ((opts as LookupAllOptions).all) callback(null, addresses);
      else callback(null, addresses[0]?.address, addresses[0]?.family);
    });
  };

  /** At lookup time the port is not known: an address listed for some port passes here, and the connector checks the port. */
  private checkAddressAnyPort(ip: string, port: number, name: string): string | undefined {
    if (port) return this.checkAddress(ip, port, name);
    const special = specialAddress(ip);
    if (!special) return undefined;
    const n = normalizeIp(ip);
    if (this.entries.some((e) => e.kind === 'net' && e.list.check(n, family(n)))) return undefined;
    return `${name} resolves to ${n}, ${special}, which the ${this.rule} do not list`;
  }

  /**
   * An undici dispatcher whose every connection — the first request, each redirect hop, each
   * retry — passes both checks. A refusal fails the request with a PolicyDeniedError.
   */
  dispatcher(tls: { ca?: string; rejectUnauthorized?: boolean } = {}): Dispatcher {
    const base = buildConnector({ ...tls, lookup: this.lookup } as buildConnector.BuildOptions);
    const connect: buildConnector.connector = (opts, callback) => {
      const port = Number(opts.port) || (opts.protocol === 'https:' ? 443 : 80);
      const host = opts.hostname.replace(/^\[|\]$/g, '');
      const why = this.checkHost(host, port) ?? (isIP(host) ? this.checkAddress(host, port, host) : undefined);
      if (why) {
        callback(new PolicyDeniedError(`connection to ${opts.protocol}//${opts.host} refused: ${why}`), null);
        return;
      }
      base(opts, (err, socket) => {
        if (err || !socket) return callback(err ?? new Error('no socket'), null);
        // the lookup saw no port: check the address actually connected to, with its port
        const remote = socket.remoteAddress;
        const late = remote && !isIP(host) ? this.checkAddress(remote, port, host) : undefined;
        if (late) {
          socket.destroy();
          return callback(new PolicyDeniedError(`connection to ${opts.protocol}//${opts.host} refused: ${late}`), null);
        }
        callback(null, socket);
      });
    };
    return new Agent({ connect });
  }
}
