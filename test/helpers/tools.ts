// System tools the tests use as real peers. A missing tool fails loudly with the package to
// install (never a silent skip): run scripts/install-system-deps.sh.
import { spawnSync } from 'node:child_process';

const packageOf: Record<string, string> = {
  xxhsum: 'xxhash',
  sha256sum: 'coreutils',
  md5sum: 'coreutils',
  losetup: 'mount',
  'mkfs.xfs': 'xfsprogs',
  'qemu-img': 'qemu-utils',
  nbdinfo: 'libnbd-bin',
  nbdcopy: 'libnbd-bin',
  'qemu-io': 'qemu-utils',
  nbdkit: 'nbdkit',
  chromium: 'chromium',
  sshd: 'openssh-server',
  'ssh-keygen': 'openssh-client',
  ssh: 'openssh-client',
  'ssh-agent': 'openssh-client',
  openssl: 'openssl',
  unshare: 'util-linux',
  pgrep: 'procps',
  ip: 'iproute2',
  tc: 'iproute2',
  nft: 'nftables',
};

export function requireTool(name: string): string {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = found.stdout.trim();
  if (found.status !== 0 || !path) {
    throw new Error(`test needs "${name}" (Debian package ${packageOf[name] ?? name}): run scripts/install-system-deps.sh`);
  }
  return path;
}

/** Runs a tool with `input` on stdin; returns stdout, failing the test on a non-zero exit. */
export function runTool(name: string, args: string[], input?: Uint8Array): string {
  const result = spawnSync(requireTool(name), args, { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) throw new Error(`${name} ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
  return result.stdout;
}
