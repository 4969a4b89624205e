import type { Kysely } from 'kysely';
import type { Logger } from '../platform/logger.ts';
import type { Database } from '../store/database.ts';
import type { CommitDurability } from '../store/commit-durability.ts';
import type { Clock } from '../platform/clock.ts';
import type { Secret } from '../platform/secret.ts';
import { CardConnector } from './card/client.ts';
import { CardAcquirerSandbox } from './card/sandbox/acquirer.ts';
import { flowNotSupported, type Connector, type ConnectorRegistry } from './connector.ts';

/**
 * Test mode talks to the sandboxes; live mode to the providers the operator configured. Live card acquiring is
 * not configured in this version, so live-mode attempts are refused with `flow_not_supported`.
 */
export interface RegistryOptions {
  durability: CommitDurability;
  clock: Clock;
  /** Shared by the sandboxes, which sign their notifications, and the test-mode connectors, which verify them. */
  sandboxNotificationSecret: Secret<string>;
  timeoutMs?: number | undefined;
}

export function createConnectorRegistry(db: Kysely<Database>, logger: Logger, options: RegistryOptions): ConnectorRegistry {
  const sandbox = new CardAcquirerSandbox(db, {
    durability: options.durability,
    clock: options.clock,
    notificationSecret: options.sandboxNotificationSecret,
  });
  const testCard = new CardConnector(sandbox, logger.child({ connector: 'card', livemode: false }), {
    notificationSecret: options.sandboxNotificationSecret,
    clock: options.clock,
    timeoutMs: options.timeoutMs,
  });
  return {
    sandboxes: { card: sandbox },
    card(livemode: boolean): Connector {
      if (livemode) throw flowNotSupported('live card', 'payments until an acquirer is configured');
      return testCard;
    },
  };
}
