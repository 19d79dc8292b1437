/**
 * The S3 test server: `install` puts moto's server (hash-pinned, test/s3-server/requirements.txt)
 * into .epicache/tools/s3-server; `start` runs it on loopback until interrupted, with a bucket, for
 * trying the S3 store by hand:
 *
 *   npx tsx tools/s3-test-server.ts start [--port 9000] [--bucket epicache]
 *   AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
 *     EPICACHE_S3_FORCE_PATH_STYLE=1 npx epicache build --conversation FILE --out s3://epicache/dev
 */
import { parseArgs } from "node:util";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { installS3Server, startS3Server } from "../gpu-runner/src/testing/s3-server";

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: "string", default: "9000" },
    bucket: { type: "string", default: "epicache" },
  },
});
const command = positionals[0];
if (command === "install") {
  installS3Server();
} else if (command === "start") {
  installS3Server();
  const server = await startS3Server({ port: Number(values.port) });
  if (server === undefined) throw new Error("the S3 test server is not installed");
  await new S3Client({
    ...server.client,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  }).send(new CreateBucketCommand({ Bucket: values.bucket }));
  process.stdout.write(
    `S3 test server on ${server.endpoint} with bucket ${values.bucket} (any credentials; Ctrl-C stops it and its contents go)\n`,
  );
  const stop = () => void server.stop().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
} else {
  process.stderr.write(
    "usage: tsx tools/s3-test-server.ts install | start [--port 9000] [--bucket epicache]\n",
  );
  process.exit(2);
}
