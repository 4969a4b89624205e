import type { Services } from '../flows/context.ts';
import { handleCardNotification } from '../flows/handle-card-notification.ts';
import { limits } from '../limits.ts';

/**
 * In test mode the acquirer sandbox notifies Coffer as the real acquirer would (signed, retried until
 * accepted); the notification goes through the same verification as one arriving over the network.
 */
export async function deliverSandboxNotifications(services: Services): Promise<number> {
  const sandboxes = services.connectors.sandboxes;
  let delivered = await sandboxes.card.deliverDueNotifications(
    (body, signature) => handleCardNotification(services, false, body, signature),
    limits.jobBatchSize,
  );
  // Alipay's and WeChat Pay's sandboxes send theirs over HTTP to Coffer's public listener, as the providers do.
  for (const sandbox of Object.values(sandboxes.wallets)) delivered += await sandbox.deliverDueNotifications(limits.jobBatchSize);
  return delivered;
}
