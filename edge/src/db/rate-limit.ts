/** Requests per tenant per minute, counted in D1 (one row per tenant and minute). */

/**
 * Counts one request of `tenantId` in the minute of `nowSeconds` and returns the minute's count so
 * far (this one included). Old minutes are deleted now and then.
 */
export async function countRequest(
  db: D1Database,
  tenantId: string,
  nowSeconds: number,
): Promise<number> {
  const minute = Math.floor(nowSeconds / 60);
  const row = await db
    .prepare(
      "INSERT INTO rate_windows (tenant_id, minute, count) VALUES (?, ?, 1) ON CONFLICT (tenant_id, minute) DO UPDATE SET count = count + 1 RETURNING count",
    )
    .bind(tenantId, minute)
    .first<{ count: number }>();
  // The first request of a minute clears the tenant's earlier minutes.
  if (row?.count === 1)
    await db
      .prepare("DELETE FROM rate_windows WHERE tenant_id = ? AND minute < ?")
      .bind(tenantId, minute)
      .run();
  return row?.count ?? 1;
}
