/** A message of the rebuild queue. */
import { z } from "zod";

/** A queued rebuild: the version row it fills is already recorded as `queued`. */
export const RebuildJob = z.object({
  tenantId: z.string(),
  conversationId: z.string(),
  version: z.string(),
});
export type RebuildJob = z.infer<typeof RebuildJob>;
