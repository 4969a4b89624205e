/** A setting that is missing, malformed or unsafe: Coffer refuses to start and says which and why. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}
