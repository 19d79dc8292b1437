/**
 * Embedding a question with the model its version was built with: Workers AI's
 * `@cf/baai/bge-small-en-v1.5` when the version's embedder is bge-small-en-v1.5 and the AI binding
 * exists, else a runner's `POST /v1/embed` (the runners embed with the model they build with; local
 * development has no AI binding).
 */
import {
  EmbedResponse,
  EpicacheError,
  PUBLIC_MESSAGES,
  rendezvousKey,
  rendezvousOrder,
} from "@epicache/shared";
import type { EdgeConfig } from "../env";
import { callFirstAnswering, invalidAnswer, parseJson, runnerError } from "../runner/runner-client";
import type { RoutingManifest } from "./manifest-cache";

/** The Workers AI model that is the same as an embedder id ending in bge-small-en-v1.5. */
export const WORKERS_AI_EMBEDDER = "@cf/baai/bge-small-en-v1.5";

/** True when Workers AI embeds with the same model as `modelId`. */
export function workersAiServes(modelId: string): boolean {
  return /(^|\/)bge-small-en-v1\.5$/i.test(modelId);
}

/** The subset of the AI binding used here. */
interface EmbeddingAi {
  run(model: typeof WORKERS_AI_EMBEDDER, inputs: { text: string[] }): Promise<unknown>;
}

/**
 * The question's embedding, of the manifest's dimension. Workers AI failing (or answering something
 * else) is `embedder_unavailable`; a runner's failures are as runner-client.ts makes them. Either
 * way the detail is the error's cause, for the log (`requestId` goes with the runner calls).
 */
export async function embedQuestion(
  ai: EmbeddingAi | undefined,
  config: EdgeConfig,
  manifest: RoutingManifest,
  question: string,
  tenantId: string,
  conversationId: string,
  requestId?: string,
): Promise<number[]> {
  let vector: number[] | undefined;
  if (ai !== undefined && workersAiServes(manifest.embedder.modelId)) {
    let out: { data?: number[][] };
    try {
      out = (await ai.run(WORKERS_AI_EMBEDDER, { text: [question] })) as { data?: number[][] };
    } catch (e) {
      throw new EpicacheError("embedder_unavailable", PUBLIC_MESSAGES.embedder_unavailable, {
        cause: e,
      });
    }
    vector = out?.data?.[0];
    if (vector === undefined || vector.length !== manifest.embedder.dimension) {
      throw new EpicacheError("embedder_unavailable", PUBLIC_MESSAGES.embedder_unavailable, {
        cause: {
          why: `Workers AI answered an embedding of ${vector?.length ?? "no"} dimensions; version ${manifest.version}'s centroids have ${manifest.embedder.dimension}`,
        },
      });
    }
    return vector;
  }
  const { runner, response } = await callFirstAnswering(
    config,
    rendezvousOrder(rendezvousKey(tenantId, conversationId), config.runnerUrls),
    { method: "POST", path: "/v1/embed", body: { texts: [question] }, requestId },
  );
  if (!response.ok) throw await runnerError(response, runner, "POST /v1/embed");
  const text = await response.text().catch(() => "");
  const parsed = EmbedResponse.safeParse(parseJson(text));
  if (!parsed.success) throw invalidAnswer(runner, "POST /v1/embed", "not an embedding", text);
  if (parsed.data.model !== manifest.embedder.modelId) {
    throw invalidAnswer(
      runner,
      "POST /v1/embed",
      `it embeds with ${parsed.data.model}, but version ${manifest.version} was built with ${manifest.embedder.modelId}`,
    );
  }
  vector = parsed.data.vectors[0];
  if (vector === undefined || vector.length !== manifest.embedder.dimension) {
    throw invalidAnswer(
      runner,
      "POST /v1/embed",
      `the question's embedding has ${vector?.length ?? "no"} dimensions; version ${manifest.version}'s centroids have ${manifest.embedder.dimension}`,
    );
  }
  return vector;
}
