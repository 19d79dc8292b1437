/** Starting the runner: models, store, the app on @hono/node-server. */
import type { AddressInfo } from "node:net";
import { serve, type ServerType } from "@hono/node-server";
import { openEmbedder } from "../embedder";
import { EpisodeStore } from "../episodes";
import { openChatModel, type Numerics } from "../runtime";
import { requireModel } from "../model-registry";
import { openStore } from "../store";
import { runnerApp } from "./app";
import type { RunnerConfig } from "./config";
import { Runner } from "./runner";

export interface RunningRunner {
  runner: Runner;
  url: string;
  close(): Promise<void>;
}

/**
 * Starts a runner on `config.host`:`config.port`. `log` takes progress lines and failed rebuilds,
 * and failed requests (else those go to stderr).
 */
export async function startRunner(
  config: RunnerConfig,
  log?: (m: string) => void,
): Promise<RunningRunner> {
  const model = await openChatModel(config.chatModel ?? requireModel("chat"), {
    numerics: config.numerics as Numerics,
    runtime: { executionProvider: config.executionProvider, threads: 0 },
    log,
  });
  const embedder = await openEmbedder();
  const runner = new Runner(
    config,
    model,
    embedder,
    new EpisodeStore(openStore(config.store)),
    log,
  );
  const app = runnerApp(runner, log === undefined ? {} : { log });
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () =>
      resolve(s),
    );
    s.once("error", reject);
  });
  // A model call runs on this thread (onnxruntime-node's run is synchronous) and can hold the event
  // loop for seconds during a build. Node's 5 s keep-alive timeout then fires as soon as the loop is
  // free, closing idle sockets a client is just reusing (ECONNRESET). Idle sockets are kept longer
  // than clients keep theirs (undici: 4 s; load balancers: 60 s), so the client always closes first.
  const http = server as import("node:http").Server;
  http.keepAliveTimeout = 65_000;
  http.headersTimeout = 66_000;
  const { port } = server.address() as AddressInfo;
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  return {
    runner,
    url: `http://${host}:${port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await runner.drain();
      await model.decoder.release();
      await embedder.release();
    },
  };
}
