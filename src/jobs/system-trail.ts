import type { Services } from '../flows/context.ts';
import { systemTrail, type Trail } from '../flows/trail.ts';
import { defaultApiVersion, parseApiVersion } from '../objects/api-version.ts';

/** The trail of a background job acting for a merchant: events in the merchant's default API version. */
export async function jobTrail(services: Services, job: string, merchantId: string): Promise<Trail> {
  const merchant = await services.db
    .selectFrom('merchants')
    .select('default_api_version')
    .where('id', '=', merchantId)
    .executeTakeFirstOrThrow();
  return systemTrail(job, parseApiVersion(merchant.default_api_version) ?? defaultApiVersion);
}
