import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatVolRef, isOnHost, parseVolRef, splitHostSpec, volrefOnHost } from '../../src-engine/agent';
import { TidemarkError } from '../../src-engine/errors';

describe('VOLREF', () => {
  it.each([
    ['/srv/a.img', { kind: 'local', path: '/srv/a.img' }],
    ['rel/a.img', { kind: 'local', path: 'rel/a.img' }],
    ['./odd:name.img', { kind: 'local', path: './odd:name.img' }],
    ['host:/srv/a.img', { kind: 'ssh', user: null, host: 'host', port: null, path: '/srv/a.img' }],
    ['root@db-1.example.com:/dev/sdb', { kind: 'ssh', user: 'root', host: 'db-1.example.com', port: null, path: '/dev/sdb' }],
    ['ssh://eng@10.0.0.7:2222/var/lib/v.img', { kind: 'ssh', user: 'eng', host: '10.0.0.7', port: 2222, path: '/var/lib/v.img' }],
    ['ssh://[::1]:22/v.img', { kind: 'ssh', user: null, host: '::1', port: 22, path: '/v.img' }],
    ['ssh://site-b/mnt/seed%20disk/v.img', { kind: 'ssh', user: null, host: 'site-b', port: null, path: '/mnt/seed disk/v.img' }],
  ])('parses %s', (text, expected) => {
    expect(parseVolRef(text)).toEqual(expected);
  });

  it.each([
    ['', /empty VOLREF/],
    ['host:relative/path', /must be absolute/],
    ['ssh://host', /invalid VOLREF/],
    ['ssh://host:99999/v', /bad port/],
    ['bad host!:/v', /bad host/],
    ['ssh://us er@host/v', /invalid VOLREF|bad user/],
    ['-oProxyCommand=evil:/v', /bad host/],
  ])('refuses %s as a usage error with the accepted forms', (text, reason) => {
    let caught: unknown;
    try {
      parseVolRef(text);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(TidemarkError);
    expect((caught as TidemarkError).code).toBe('USAGE');
    expect((caught as TidemarkError).message).toMatch(reason);
    expect((caught as TidemarkError).hint).toMatch(/ssh:\/\//);
  });

  it('format then parse is the identity for remote VOLREFs', () => {
    const host = fc.constantFrom('a', 'db-1.example.com', '10.1.2.3', '::1');
    fc.assert(
      fc.property(
        fc.option(fc.constantFrom('root', 'eng', 'a.b')),
        host,
        fc.option(fc.integer({ min: 1, max: 65535 })),
        fc.constantFrom('/v.img', '/dev/sdb', '/a/b c', '/50%.img', '/a%20b'),
        (user, h, port, path) => {
          const ref = { kind: 'ssh' as const, user, host: h, port, path };
          expect(parseVolRef(formatVolRef(ref).replace(' ', '%20'))).toEqual(ref);
        },
      ),
    );
  });

  it('refuses a bad %-escape in an ssh:// path as a usage error, not a crash', () => {
    expect(() => parseVolRef('ssh://host/50%.img')).toThrow(/bad %-escape/);
  });
});

describe('VOLREFs of volumes on Hosts-screen hosts', () => {
  it('splits host specs as the Hosts screen and ProxyJump take them', () => {
    expect(splitHostSpec('box')).toEqual({ alias: 'box', user: null, port: null });
    expect(splitHostSpec(' admin@10.0.0.9:2222 ')).toEqual({ alias: '10.0.0.9', user: 'admin', port: 2222 });
    expect(splitHostSpec('ssh://eng@[::1]:22/')).toEqual({ alias: '::1', user: 'eng', port: 22 });
    expect(splitHostSpec('box:/srv')).toBeUndefined();
    expect(splitHostSpec('two words')).toBeUndefined();
  });

  it.each([
    ['box', '/srv/a.img', 'box:/srv/a.img'],
    ['eng@box', '/srv/a.img', 'eng@box:/srv/a.img'],
    ['ssh://box', '/srv/a.img', 'box:/srv/a.img'],
    ['box:2222', '/srv/a.img', 'ssh://box:2222/srv/a.img'],
    ['admin@10.0.0.9:2222', '/srv/50%.img', 'ssh://admin@10.0.0.9:2222/srv/50%25.img'],
    ['[::1]', '/v.img', 'ssh://[::1]/v.img'],
  ])('on host %s, %s is %s, and it parses back to that host and path', (host, path, volref) => {
    expect(volrefOnHost(host, path)).toBe(volref);
    const ref = parseVolRef(volref);
    expect(ref).toMatchObject({ kind: 'ssh', path });
    expect(isOnHost(ref, host, true)).toBe(true);
  });

  it('matches a VOLREF to a host by name, user and port: a host named without a user or port takes any', () => {
    const ref = parseVolRef('ssh://eng@box:2222/v.img');
    expect(isOnHost(ref, 'box')).toBe(true);
    expect(isOnHost(ref, 'box', true)).toBe(false); // the port comes from ~/.ssh/config: not an exact match
    expect(isOnHost(ref, 'eng@box:2222', true)).toBe(true);
    expect(isOnHost(ref, 'box:2200')).toBe(false);
    expect(isOnHost(ref, 'root@box')).toBe(false);
    expect(isOnHost(ref, 'other')).toBe(false);
    expect(isOnHost(parseVolRef('box:/v.img'), 'box:2222')).toBe(false);
    expect(isOnHost(parseVolRef('/local.img'), 'box')).toBe(false);
  });
});
