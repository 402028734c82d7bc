// VOLREF: where a volume is. `/abs/path` or `relative/path` (this machine),
// `[user@]host:/abs/path`, or `ssh://[user@]host[:port]/abs/path` (a host reached over SSH).

import { usageError } from '../errors';

export type VolRef =
  | { readonly kind: 'local'; readonly path: string }
  | { readonly kind: 'ssh'; readonly user: string | null; readonly host: string; readonly port: number | null; readonly path: string };

const hostPattern =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$|^\[[0-9A-Fa-f:.]+\]$|^\d{1,3}(?:\.\d{1,3}){3}$/;
const userPattern = /^[A-Za-z0-9._][A-Za-z0-9._-]{0,31}$/;
const hint = 'write /abs/path, [user@]host:/abs/path or ssh://[user@]host[:port]/abs/path';

function checkRemote(text: string, user: string | null, host: string, port: number | null, path: string): VolRef {
  if (user !== null && !userPattern.test(user)) throw usageError(`invalid VOLREF "${text}": bad user name "${user}"`, hint);
  if (!hostPattern.test(host)) throw usageError(`invalid VOLREF "${text}": bad host "${host}"`, hint);
  if (port !== null && (!Number.isInteger(port) || port < 1 || port > 65535)) throw usageError(`invalid VOLREF "${text}": bad port`, hint);
  if (!path.startsWith('/')) throw usageError(`invalid VOLREF "${text}": a remote path must be absolute`, hint);
  if (path.includes('\0')) throw usageError(`invalid VOLREF "${text}": the path contains a NUL byte`, hint);
  return { kind: 'ssh', user, host: host.replace(/^\[|\]$/g, ''), port, path };
}

export function parseVolRef(text: string): VolRef {
  if (text.length === 0) throw usageError('empty VOLREF', hint);
  if (text.startsWith('ssh://')) {
    const match = /^ssh:\/\/(?:([^@/]+)@)?(\[[^\]]+\]|[^:/]+)(?::(\d+))?(\/.*)$/.exec(text);
    if (!match) throw usageError(`invalid VOLREF "${text}"`, hint);
    let path: string;
    try {
      path = decodeURIComponent(match[4]!);
    } catch {
      throw usageError(`invalid VOLREF "${text}": a bad %-escape in the path`, 'write a literal % in an ssh:// path as %25');
    }
    return checkRemote(text, match[1] ?? null, match[2]!, match[3] ? Number(match[3]) : null, path);
  }
  // scp-like host:path, but only when the part before ':' has no '/' (so ./a:b stays local).
  const colon = text.indexOf(':');
  if (colon > 0 && !text.slice(0, colon).includes('/')) {
    const authority = text.slice(0, colon);
    const at = authority.lastIndexOf('@');
    return checkRemote(text, at === -1 ? null : authority.slice(0, at), at === -1 ? authority : authority.slice(at + 1), null, text.slice(colon + 1));
  }
  if (text.includes('\0')) throw usageError(`invalid VOLREF: the path contains a NUL byte`, hint);
  return { kind: 'local', path: text };
}

export function formatVolRef(ref: VolRef): string {
  if (ref.kind === 'local') return ref.path;
  const host = ref.host.includes(':') ? `[${ref.host}]` : ref.host;
  // The ssh:// path is %-decoded when parsed: a literal % is written %25.
  return `ssh://${ref.user ? `${ref.user}@` : ''}${host}${ref.port ? `:${ref.port}` : ''}${ref.path.replace(/%/g, '%25')}`;
}

/** A host as typed on the Hosts screen or for ProxyJump: `[user@]host[:port]` or `ssh://[user@]host[:port]`. */
export interface HostSpec {
  /** The host name (an ~/.ssh/config alias or an address), IPv6 without brackets. */
  readonly alias: string;
  readonly user: string | null;
  readonly port: number | null;
}

/** Parses a host spec; undefined when `value` is not one. */
export function splitHostSpec(value: string): HostSpec | undefined {
  const match = /^(?:ssh:\/\/)?(?:([^@/\s]+)@)?(\[[^\]\s]+\]|[^:/@\s]+)(?::(\d+))?\/?$/.exec(value.trim());
  if (!match) return undefined;
  return { alias: match[2]!.replace(/^\[(.*)\]$/, '$1'), user: match[1] ?? null, port: match[3] ? Number(match[3]) : null };
}

/**
 * The VOLREF of `path` on the host named `hostName` on the Hosts screen: `host:/path`, or
 * `ssh://…` when the name carries a port or an IPv6 address (`host:2222:/path` would not parse).
 */
export function volrefOnHost(hostName: string, path: string): string {
  const spec = splitHostSpec(hostName);
  if (spec === undefined) return `${hostName}:${path}`; // parseVolRef says what is wrong with it
  if (spec.port === null && !spec.alias.includes(':')) return `${spec.user ? `${spec.user}@` : ''}${spec.alias}:${path}`;
  return formatVolRef({ kind: 'ssh', user: spec.user, host: spec.alias, port: spec.port, path });
}

/**
 * Does `ref` name a volume on the host named `hostName` on the Hosts screen? A host named
 * without a user takes any user, and one without a port any port (its port comes from
 * ~/.ssh/config); with `exactPort`, the ports must be equal.
 */
export function isOnHost(ref: VolRef, hostName: string, exactPort = false): boolean {
  const spec = splitHostSpec(hostName);
  if (ref.kind !== 'ssh' || spec === undefined) return false;
  const portMatches = spec.port === ref.port || (!exactPort && spec.port === null);
  return spec.alias === ref.host && portMatches && (spec.user === null || spec.user === ref.user);
}
