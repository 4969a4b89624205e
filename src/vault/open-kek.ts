import { kekDirectory, LocalKeyFileProvider, type KeyEncryptionKeyProvider } from './key-encryption-key.ts';
import type { Pkcs11KekSettings } from './pkcs11-kek.ts';
import { VaultError } from './vault-error.ts';

/** Where the key-encryption keys live: files under Coffer's home (the default), or an HSM through PKCS#11. */
export type KekSettings = { kind: 'local' } | ({ kind: 'pkcs11' } & Pkcs11KekSettings);

/**
 * Opens the configured KEK store. A store holding no KEK makes `kek_1` only while the vault holds no data key
 * (`vaultHasDataKeys`): data keys that exist were wrapped under another store's KEKs (an HSM left out of this
 * configuration, key files lost), and a new KEK of the same name would fail every saved card later, one payment at a
 * time. That is refused at once, naming what to do.
 */
export async function openKeyEncryptionKey(settings: KekSettings, homeDir: string, vaultHasDataKeys: () => Promise<boolean>): Promise<KeyEncryptionKeyProvider> {
  const mayCreateFirst = async (where: string) => {
    if (!(await vaultHasDataKeys())) return;
    throw new VaultError('kek_missing', `${where} holds no key-encryption key, but the vault holds data keys wrapped under one: `
      + (settings.kind === 'local'
        ? 'if the KEK is in an HSM, set COFFER_KEK_PKCS11_MODULE, COFFER_KEK_PKCS11_TOKEN and COFFER_KEK_PKCS11_PIN_FILE; if the key files were lost, restore the whole keys/ directory from this installation\'s backup (keys/kek with instance.key and audit-signing.key).'
        : 'if the KEK is a key file, unset COFFER_KEK_PKCS11_MODULE, COFFER_KEK_PKCS11_TOKEN and COFFER_KEK_PKCS11_PIN_FILE; otherwise check the token label.')
      + ' No KEK was created.');
  };
  if (settings.kind === 'local') return LocalKeyFileProvider.open(kekDirectory(homeDir), mayCreateFirst);
  // Loaded only when configured: the foreign-function layer is not needed for the key file.
  const { Pkcs11KeyProvider } = await import('./pkcs11-kek.ts');
  return Pkcs11KeyProvider.open(settings, mayCreateFirst);
}
