import pino, { type Logger } from 'pino';

export type { Logger };

/**
 * Paths that must never reach a log line in clear: card data, secrets, credentials. Request bodies are not logged
 * at all; these paths catch objects logged on purpose that might carry them.
 */
export const redactedPaths = [
  'card.number',
  'card.cvc',
  '*.card.number',
  '*.card.cvc',
  'number',
  'cvc',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: redactedPaths, censor: '[redacted]' },
      base: { service: 'coffer' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination,
  );
}
