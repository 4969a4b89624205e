import { kekDirectory, LocalKeyFileProvider, type KeyEncryptionKeyProvider } from './key-encryption-key.ts';
import type { Pkcs11KekSettings } from './pkcs11-kek.ts';

/** Where the key-encryption keys live: files under Coffer's home (the default), or an HSM through PKCS#11. */
export type KekSettings = { kind: 'local' } | ({ kind: 'pkcs11' } & Pkcs11KekSettings);

export async function openKeyEncryptionKey(settings: KekSettings, homeDir: string): Promise<KeyEncryptionKeyProvider> {
  if (settings.kind === 'local') return LocalKeyFileProvider.open(kekDirectory(homeDir));
  // Loaded only when configured: the foreign-function layer is not needed for the key file.
  const { Pkcs11KeyProvider } = await import('./pkcs11-kek.ts');
  return Pkcs11KeyProvider.open(settings);
}
