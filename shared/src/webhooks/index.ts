/** Standard Webhooks signatures: how tenants sign the webhooks they send the edge. */
export * from "./standard-webhooks";
