/**
 * The S3 test server: `install` puts moto's server (hash-pinned, test/s3-server/requirements.txt)
 * into .epicache/tools/s3-server; `start` runs it on a loopback port until interrupted, for trying
 * the S3 store by hand (`AWS_ENDPOINT_URL=… EPICACHE_S3_FORCE_PATH_STYLE=1 npx epicache build --out s3://…`).
 */
import { installS3Server, startS3Server } from "../src/testing/s3-server";

const command = process.argv[2];
if (command === "install") {
  installS3Server();
} else if (command === "start") {
  installS3Server();
  const server = await startS3Server();
  if (server === undefined) throw new Error("the S3 test server is not installed");
  process.stdout.write(`S3 test server on ${server.endpoint} (any credentials; create buckets with the SDK or \`aws s3 mb\`)\n`);
  const stop = () => void server.stop().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
} else {
  process.stderr.write("usage: tsx gpu-runner/scripts/s3-test-server.ts install|start\n");
  process.exit(2);
}
