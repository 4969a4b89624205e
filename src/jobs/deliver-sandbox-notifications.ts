import type { Services } from '../flows/context.ts';
import { handleCardNotification } from '../flows/handle-card-notification.ts';
import { limits } from '../limits.ts';

/**
 * In test mode the acquirer sandbox notifies Coffer as the real acquirer would (signed, retried until
 * accepted); the notification goes through the same verification as one arriving over the network.
 */
export async function deliverSandboxNotifications(services: Services): Promise<number> {
  return services.connectors.sandboxes.card.deliverDueNotifications(
    (body, signature) => handleCardNotification(services, false, body, signature),
    limits.jobBatchSize,
  );
}
