/** What the edge's tests share: the worker called with a test env, tenants, and JSON requests. */
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import worker from "../index";

export const ADMIN_TOKEN = "test-admin-token";
export const RUNNER_SECRET = "test-runner-secret";
export const RUNNERS = ["http://runner-a.test", "http://runner-b.test", "http://runner-c.test"];

/** The test env: the bindings of wrangler.toml with fake runner URLs, and any overrides. */
export function testEnv(overrides: Partial<Env> = {}): Env {
  return {
    ...env,
    RUNNER_URLS: RUNNERS.join(","),
    EDGE_PUBLIC_URL: "http://edge.test",
    RUNNER_TIMEOUT_MS: "2000",
    ...overrides,
  } as Env;
}

/** Sends a request to the worker's fetch handler and waits for its background work. */
export async function call(
  method: string,
  path: string,
  options: {
    body?: unknown;
    rawBody?: string;
    headers?: Record<string, string>;
    key?: string;
    env?: Env;
  } = {},
): Promise<Response> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.key !== undefined) headers.authorization = `Bearer ${options.key}`;
  let body: string | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers["content-type"] ??= "application/json";
  } else if (body !== undefined) headers["content-type"] ??= "application/json";
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`http://edge.test${path}`, { method, headers, body }),
    options.env ?? testEnv(),
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}

/** A new tenant through the admin route. */
export async function newTenant(
  name = "test",
  limits?: Record<string, number>,
  testEnvironment?: Env,
): Promise<{ tenantId: string; apiKey: string; webhookSecret: string }> {
  const res = await call("POST", "/v1/tenants", {
    body: limits ? { name, limits } : { name },
    key: ADMIN_TOKEN,
    env: testEnvironment,
  });
  if (res.status !== 201) throw new Error(`creating a tenant: ${res.status} ${await res.text()}`);
  return res.json();
}

/** The `{error: {code}}` of a response. */
export async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { error?: { code?: string } };
  return body.error?.code ?? `no error code (status ${res.status})`;
}
