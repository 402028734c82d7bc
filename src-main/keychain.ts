// The OS keychain for secrets a person asks Tidemark to remember, through Electron's
// safeStorage (macOS Keychain, Windows DPAPI, libsecret or kwallet on Linux). Linux's
// 'basic_text' fallback encrypts with a constant key — plain text in disguise — so it counts
// as no keychain: the console then keeps secrets in memory only and says so.

import type { SecretCipher } from '../src-engine';

/** The part of Electron's safeStorage Tidemark uses (after app ready). */
export interface SafeStorageLike {
  isEncryptionAvailable(): boolean;
  getSelectedStorageBackend?(): string;
  encryptString(plain: string): Buffer;
  decryptString(sealed: Buffer): string;
}

export function keychainCipher(safeStorage: SafeStorageLike, platform: NodeJS.Platform = process.platform): SecretCipher | null {
  if (!safeStorage.isEncryptionAvailable()) return null;
  const backend = platform === 'linux' ? (safeStorage.getSelectedStorageBackend?.() ?? 'unknown') : platform === 'darwin' ? 'macOS Keychain' : 'Windows DPAPI';
  if (backend === 'basic_text' || backend === 'unknown') return null;
  return {
    backend,
    encrypt: (plain) => safeStorage.encryptString(plain),
    decrypt: (sealed) => safeStorage.decryptString(sealed),
  };
}
