// The console's keychain choice: only a real OS keychain may remember secrets; Linux's
// basic_text fallback (a constant key) and an unavailable safeStorage mean memory only.
import { describe, expect, it } from 'vitest';
import { keychainCipher, type SafeStorageLike } from '../../src-main/keychain';

function safeStorage(available: boolean, backend: string): SafeStorageLike & { sealed: string[] } {
  const sealed: string[] = [];
  return {
    sealed,
    isEncryptionAvailable: () => available,
    getSelectedStorageBackend: () => backend,
    encryptString: (plain) => (sealed.push(plain), Buffer.from([...Buffer.from(plain)].reverse())),
    decryptString: (bytes) => Buffer.from([...bytes].reverse()).toString(),
  };
}

describe('keychainCipher', () => {
  it('uses libsecret or kwallet on Linux, naming the backend', () => {
    const storage = safeStorage(true, 'gnome_libsecret');
    const cipher = keychainCipher(storage, 'linux');
    expect(cipher?.backend).toBe('gnome_libsecret');
    expect(cipher!.decrypt(cipher!.encrypt('sea salt'))).toBe('sea salt');
    expect(storage.sealed).toEqual(['sea salt']);
  });

  it('refuses the basic_text fallback and an unavailable safeStorage', () => {
    expect(keychainCipher(safeStorage(true, 'basic_text'), 'linux')).toBeNull();
    expect(keychainCipher(safeStorage(false, 'gnome_libsecret'), 'linux')).toBeNull();
  });

  it('names the platform keychain elsewhere', () => {
    expect(keychainCipher(safeStorage(true, 'unknown'), 'darwin')?.backend).toBe('macOS Keychain');
    expect(keychainCipher(safeStorage(true, 'unknown'), 'win32')?.backend).toBe('Windows DPAPI');
  });
});
