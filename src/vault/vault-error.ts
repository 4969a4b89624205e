/**
 * The vault's operating errors: a key file that is unsafe or missing, a ciphertext that is malformed or not
 * authentic. Each has a stable code. They are not `CofferError`s because they never answer an API request as
 * such: whoever wires the vault in maps any of them to `api_error` (500) and raises an alert, since each means
 * misconfiguration, data corruption or tampering.
 *
 * Messages name files, key ids and row ids, never key material or a card number: an error may be logged.
 */
export type VaultErrorCode =
  /** A key file or its directory can be read or written by group or others, or is not a regular file. */
  | 'kek_file_insecure'
  /** A key file does not hold exactly 32 bytes in base64. */
  | 'kek_file_invalid'
  /** A wrapped data key names a key-encryption key that does not exist (never created, or retired). */
  | 'kek_missing'
  /** A wrapped data key did not authenticate: wrong KEK, wrong data key id, or altered bytes. */
  | 'data_key_unwrap_failed'
  /** A ciphertext names a data key that has no row. */
  | 'data_key_missing'
  /** A ciphertext is too short, or its header is not well formed. */
  | 'ciphertext_malformed'
  /** A ciphertext starts with a format version this code does not read. */
  | 'ciphertext_version_unsupported'
  /** A ciphertext did not authenticate: another row, another data key, or altered bytes. */
  | 'ciphertext_authentication_failed';

export class VaultError extends Error {
  override readonly name = 'VaultError';
  readonly code: VaultErrorCode;

  constructor(code: VaultErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
