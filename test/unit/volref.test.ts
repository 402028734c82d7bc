import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { formatVolRef, parseVolRef } from '../../src-engine/agent';
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
        fc.constantFrom('/v.img', '/dev/sdb', '/a/b c'),
        (user, h, port, path) => {
          const ref = { kind: 'ssh' as const, user, host: h, port, path };
          expect(parseVolRef(formatVolRef(ref).replace(' ', '%20'))).toEqual(ref);
        },
      ),
    );
  });
});
