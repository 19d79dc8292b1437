/** Who is calling: tenants by API key, the operator by admin token. */
export { bearerToken, hashApiKey, newApiKey, requireTenant } from "./api-key";
export { requireAdmin } from "./admin";
