/**
 * EpicacheClient: the edge's API on `fetch`, for Node 20, browsers and Workers (no Node modules).
 * Each method is one route (README "The edge and the whole stack"), typed by the edge's OpenAPI
 * document; an error answer is thrown as an {@link EpicacheApiError}.
 */
import { signWebhook } from "@epicache/shared/webhooks";
import { EpicacheApiError, EpicacheRebuildError, statusOfCode } from "./errors";
import { serverSentEvents } from "./sse";
import type {
  AnswerEvent,
  AppendMessagesResponse,
  AskRequest,
  Conversation,
  CreateTenantResponse,
  ErrorBody,
  Message,
  QueryResponse,
  RebuildState,
  RebuildWebhookResponse,
  TenantLimits,
  VersionDetail,
  VersionList,
} from "./types";

export interface EpicacheClientOptions {
  /** The edge's URL, e.g. `http://127.0.0.1:8787` (a path prefix is kept). */
  baseUrl: string;
  /** A tenant's API key (`ek_…`): for the conversation routes. */
  apiKey?: string;
  /** The admin token: for {@link EpicacheClient.createTenant}. */
  adminToken?: string;
  /** The `fetch` to use (the global one by default). */
  fetch?: (input: string, init: RequestInit) => Promise<Response>;
}

/** Options of every call. */
export interface CallOptions {
  /** Aborts the request (and a stream being read, and a wait). */
  signal?: AbortSignal;
}

export interface WaitForRebuildOptions extends CallOptions {
  /**
   * Wait until this version is active (or a later one: version ids sort by time), and fail if it
   * fails. Without it, wait until no rebuild is queued or running and none waits to follow, and
   * fail if the newest failed.
   */
  version?: string;
  /** Called after each poll while a rebuild is known: its status, stage, progress (percent) and ETA. */
  onProgress?: (rebuild: RebuildState, conversation: Conversation) => void;
  /** How long to wait in all (default 15 minutes), then an {@link EpicacheRebuildError} `timeout`. */
  timeoutMs?: number;
  /** Between polls (default 1000 ms). */
  intervalMs?: number;
}

export interface TriggerRebuildOptions extends CallOptions {
  /** The `webhook-id`: a retry of the same delivery reuses it (the edge then enqueues nothing new). A new `msg_<uuid>` by default. */
  webhookId?: string;
  /** Unix seconds (default now); the edge refuses one more than 5 minutes from its clock. */
  timestamp?: number;
}

/** The webhook's answer, with its HTTP status: 202 when a rebuild was enqueued or a follow-up asked for, 200 when nothing was (`duplicate`, or nothing to build). */
export type TriggerRebuildResult = RebuildWebhookResponse & { httpStatus: 200 | 202 };

type Auth = "apiKey" | "adminToken" | "none";

interface Call {
  method: "GET" | "POST";
  path: string;
  auth: Auth;
  body?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

const id = (value: string) => encodeURIComponent(value);

/**
 * A client of the edge.
 *
 * @example
 * ```ts
 * const admin = new EpicacheClient({ baseUrl: "http://127.0.0.1:8787", adminToken });
 * const { tenantId, apiKey, webhookSecret } = await admin.createTenant("acme");
 * const client = new EpicacheClient({ baseUrl: "http://127.0.0.1:8787", apiKey });
 * await client.appendMessages("conv-26", [{ id: "m1", speaker: "Ann", text: "I start pottery on Monday." }]);
 * const { version } = await client.triggerRebuild(tenantId, webhookSecret, "conv-26");
 * await client.waitForRebuild("conv-26", { version, onProgress: (r) => console.log(r.stage, r.progress) });
 * const { answer } = await client.ask("conv-26", { question: "When does Ann start pottery?" });
 * ```
 */
export class EpicacheClient {
  readonly baseUrl: string;
  readonly #apiKey: string | undefined;
  readonly #adminToken: string | undefined;
  readonly #fetch: (input: string, init: RequestInit) => Promise<Response>;

  constructor(options: EpicacheClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.#apiKey = options.apiKey;
    this.#adminToken = options.adminToken;
    this.#fetch = options.fetch ?? ((input, init) => fetch(input, init));
  }

  /** `POST /v1/tenants` (admin token): a tenant, its API key and webhook secret (shown once). */
  async createTenant(
    name: string,
    limits?: TenantLimits,
    options: CallOptions = {},
  ): Promise<CreateTenantResponse> {
    const res = await this.#call({
      method: "POST",
      path: "/v1/tenants",
      auth: "adminToken",
      body: JSON.stringify({ name, ...(limits === undefined ? {} : { limits }) }),
      signal: options.signal,
    });
    return this.#json<CreateTenantResponse>(res, [201]);
  }

  /**
   * `POST /v1/conversations/{id}/messages`: appends in order, creating the conversation on its
   * first messages; messages whose ids it already holds are skipped (a retry appends nothing twice).
   */
  async appendMessages(
    conversationId: string,
    messages: Message[],
    options: CallOptions = {},
  ): Promise<AppendMessagesResponse> {
    const res = await this.#call({
      method: "POST",
      path: `/v1/conversations/${id(conversationId)}/messages`,
      auth: "apiKey",
      body: JSON.stringify({ messages }),
      signal: options.signal,
    });
    return this.#json<AppendMessagesResponse>(res, [200]);
  }

  /** `GET /v1/conversations/{id}`: the message count, the active version, the newest rebuild's progress. */
  async getConversation(conversationId: string, options: CallOptions = {}): Promise<Conversation> {
    const res = await this.#call({
      method: "GET",
      path: `/v1/conversations/${id(conversationId)}`,
      auth: "apiKey",
      signal: options.signal,
    });
    return this.#json<Conversation>(res, [200]);
  }

  /** `GET /v1/conversations/{id}/versions`: its rebuilds, newest first (at most 100; `more` when there are older ones). */
  async listVersions(conversationId: string, options: CallOptions = {}): Promise<VersionList> {
    const res = await this.#call({
      method: "GET",
      path: `/v1/conversations/${id(conversationId)}/versions`,
      auth: "apiKey",
      signal: options.signal,
    });
    return this.#json<VersionList>(res, [200]);
  }

  /**
   * `GET /v1/conversations/{id}/versions/{version}`: one version, with its episodes once it
   * succeeded (windows, top terms and cache bytes of each, where the edge keeps them).
   *
   * @example
   * ```ts
   * const { activeVersion } = await client.getConversation("conv-26");
   * if (activeVersion) for (const e of (await client.getVersion("conv-26", activeVersion)).episodes ?? []) console.log(e.id, e.windows, e.topTerms);
   * ```
   */
  async getVersion(
    conversationId: string,
    version: string,
    options: CallOptions = {},
  ): Promise<VersionDetail> {
    const res = await this.#call({
      method: "GET",
      path: `/v1/conversations/${id(conversationId)}/versions/${id(version)}`,
      auth: "apiKey",
      signal: options.signal,
    });
    return this.#json<VersionDetail>(res, [200]);
  }

  /** `POST /v1/conversations/{id}/query`: the answer, with the episode and version it came from. */
  async ask(
    conversationId: string,
    request: AskRequest,
    options: CallOptions = {},
  ): Promise<QueryResponse> {
    const res = await this.#call({
      method: "POST",
      path: `/v1/conversations/${id(conversationId)}/query`,
      auth: "apiKey",
      body: JSON.stringify({ ...request, stream: false }),
      signal: options.signal,
    });
    return this.#json<QueryResponse>(res, [200]);
  }

  /**
   * The answer as it is generated (`stream: true`): `meta` (episode, version), `token`s, then
   * `done` (the whole answer), after which the iteration ends. An `error` event, an error answer
   * (thrown at the first `next()`) and a stream that ends early are thrown as
   * {@link EpicacheApiError}s; leaving the loop early closes the stream.
   *
   * @example
   * ```ts
   * for await (const e of client.askStream("conv-26", { question: "What did Caroline research?" })) {
   *   if (e.event === "token") process.stdout.write(e.data.text);
   * }
   * ```
   */
  async *askStream(
    conversationId: string,
    request: AskRequest,
    options: CallOptions = {},
  ): AsyncGenerator<AnswerEvent, void, undefined> {
    const res = await this.#call({
      method: "POST",
      path: `/v1/conversations/${id(conversationId)}/query`,
      auth: "apiKey",
      body: JSON.stringify({ ...request, stream: true }),
      headers: { accept: "text/event-stream" },
      signal: options.signal,
    });
    if (res.status !== 200) throw await errorOf(res);
    const requestId = res.headers.get("x-request-id") ?? "";
    const unexpected = (message: string) =>
      new EpicacheApiError({ status: res.status, code: "unexpected_response", message, requestId });
    const type = res.headers.get("content-type") ?? "";
    if (!type.startsWith("text/event-stream") || res.body === null) {
      await res.body?.cancel().catch(() => undefined);
      throw unexpected(`a ${type || "bodiless"} answer instead of server-sent events`);
    }
    for await (const { event, data } of serverSentEvents(res.body)) {
      if (event !== "meta" && event !== "token" && event !== "done" && event !== "error") continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(data);
      } catch {
        throw unexpected(`the ${event} event's data is not JSON: ${data.slice(0, 200)}`);
      }
      if (event === "error") {
        const body = errorBodyOf(parsed);
        if (body === undefined)
          throw unexpected(`an error event without an error body: ${data.slice(0, 200)}`);
        throw new EpicacheApiError({
          status: statusOfCode(body.error.code),
          code: body.error.code,
          message: body.error.message,
          requestId: body.error.requestId || requestId,
        });
      }
      yield { event, data: parsed } as AnswerEvent;
      if (event === "done") return;
    }
    throw unexpected("the answer stream ended without a done or error event");
  }

  /**
   * Polls `GET /v1/conversations/{id}` until a rebuild is done (see {@link WaitForRebuildOptions.version}),
   * returning the conversation then; throws an {@link EpicacheRebuildError} when it failed or the
   * wait timed out.
   *
   * @example
   * ```ts
   * const c = await client.waitForRebuild("conv-26", { version, onProgress: (r) => console.log(`${r.stage} ${r.progress ?? 0}% ETA ${r.etaSeconds ?? "?"} s`) });
   * console.log(c.active?.kind, c.active?.messageCount);
   * ```
   */
  async waitForRebuild(
    conversationId: string,
    options: WaitForRebuildOptions = {},
  ): Promise<Conversation> {
    const { version, onProgress, timeoutMs = 15 * 60_000, intervalMs = 1000, signal } = options;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const conversation = await this.getConversation(conversationId, { signal });
      const { rebuild, activeVersion, followUp } = conversation;
      if (rebuild !== null) onProgress?.(rebuild, conversation);
      const failed = (why: string) =>
        new EpicacheRebuildError(
          "failed",
          conversation,
          rebuild,
          `${why}: ${rebuild?.error?.code ?? "internal"}: ${rebuild?.error?.message ?? "no error recorded"}`,
        );
      if (version !== undefined) {
        if (activeVersion !== null && activeVersion >= version) return conversation;
        // Active versions never move back, so a settled failure at or after `version` means it will not be active.
        if (
          rebuild !== null &&
          rebuild.status === "failed" &&
          rebuild.version >= version &&
          !followUp
        ) {
          throw failed(
            rebuild.version === version
              ? `the rebuild ${version} failed`
              : `the rebuild ${version} did not succeed, and ${rebuild.version} after it failed`,
          );
        }
      } else {
        const settled =
          rebuild === null ||
          ((rebuild.status === "succeeded" || rebuild.status === "failed") && !followUp);
        if (settled && rebuild?.status === "failed")
          throw failed(`the rebuild ${rebuild.version} failed`);
        if (settled) return conversation;
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        const what = version ?? rebuild?.version ?? "a rebuild";
        throw new EpicacheRebuildError(
          "timeout",
          conversation,
          rebuild,
          `${what} of ${conversationId} did not finish in ${timeoutMs} ms (last: ${rebuild === null ? "no rebuild" : `${rebuild.version} ${rebuild.status}, ${rebuild.stage ?? "-"} ${rebuild.progress ?? 0}%`})`,
        );
      }
      await sleep(Math.min(intervalMs, left), signal);
    }
  }

  /**
   * `POST /v1/webhooks/{tenantId}/rebuild`, signed as a Standard Webhook with the tenant's
   * `whsec_` secret: asks for a rebuild of the conversation (enqueued, or folded into the
   * follow-up of the one in flight). Needs no API key.
   *
   * @example
   * ```ts
   * const { version, followUp, httpStatus } = await client.triggerRebuild(tenantId, webhookSecret, "conv-26");
   * ```
   */
  async triggerRebuild(
    tenantId: string,
    webhookSecret: string,
    conversationId: string,
    options: TriggerRebuildOptions = {},
  ): Promise<TriggerRebuildResult> {
    const body = JSON.stringify({ conversationId });
    const headers = await signWebhook(webhookSecret, {
      id: options.webhookId ?? `msg_${crypto.randomUUID()}`,
      timestamp: options.timestamp ?? Math.floor(Date.now() / 1000),
      body,
    });
    const res = await this.#call({
      method: "POST",
      path: `/v1/webhooks/${id(tenantId)}/rebuild`,
      auth: "none",
      body,
      headers,
      signal: options.signal,
    });
    const answer = await this.#json<RebuildWebhookResponse>(res, [200, 202]);
    return { ...answer, httpStatus: res.status as 200 | 202 };
  }

  async #call(call: Call): Promise<Response> {
    const headers: Record<string, string> = { ...call.headers };
    if (call.auth !== "none") {
      const credential = call.auth === "apiKey" ? this.#apiKey : this.#adminToken;
      if (credential === undefined)
        throw new TypeError(
          `EpicacheClient: ${call.method} ${call.path} needs the ${call.auth} option`,
        );
      headers.authorization = `Bearer ${credential}`;
    }
    if (call.body !== undefined) headers["content-type"] = "application/json";
    const doFetch = this.#fetch;
    return doFetch(this.baseUrl + call.path, {
      method: call.method,
      headers,
      body: call.body,
      signal: call.signal,
    });
  }

  /** The JSON body of an answer with one of `statuses`; the API's error otherwise. */
  async #json<T>(res: Response, statuses: number[]): Promise<T> {
    if (!statuses.includes(res.status)) throw await errorOf(res);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new EpicacheApiError({
        status: res.status,
        code: "unexpected_response",
        message: `HTTP ${res.status} with a body that is not JSON: ${text.slice(0, 200)}`,
        requestId: res.headers.get("x-request-id") ?? "",
      });
    }
  }
}

function errorBodyOf(value: unknown): ErrorBody | undefined {
  const error = (value as { error?: unknown } | null)?.error as Record<string, unknown> | undefined;
  if (
    typeof error !== "object" ||
    error === null ||
    typeof error.code !== "string" ||
    typeof error.message !== "string"
  )
    return undefined;
  return {
    error: {
      code: error.code,
      message: error.message,
      requestId: typeof error.requestId === "string" ? error.requestId : "",
    },
  };
}

/** The {@link EpicacheApiError} of an answer that is not the route's success. */
async function errorOf(res: Response): Promise<EpicacheApiError> {
  const text = await res.text().catch(() => "");
  const header = res.headers.get("x-request-id") ?? "";
  const retryAfter = Number(res.headers.get("retry-after") ?? NaN);
  const retryAfterSeconds = Number.isFinite(retryAfter) ? retryAfter : undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const body = errorBodyOf(parsed);
  if (body !== undefined) {
    return new EpicacheApiError({
      status: res.status,
      code: body.error.code,
      message: body.error.message,
      requestId: body.error.requestId || header,
      retryAfterSeconds,
    });
  }
  const shown = text.trim() === "" ? "an empty body" : text.slice(0, 200);
  return new EpicacheApiError({
    status: res.status,
    code: "unexpected_response",
    message: `HTTP ${res.status} ${res.statusText}`.trim() + `: ${shown}`,
    requestId: header,
    retryAfterSeconds,
  });
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
