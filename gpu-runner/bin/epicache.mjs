#!/usr/bin/env node
// The epicache command: TypeScript sources run through tsx's loader, so there is no build step.
import { register } from "tsx/esm/api";

// The AWS SDK's notice that its 2027 releases will need Node 22 says nothing about this run and would
// greet every S3 command; the SDK's own switch turns it off (a user's setting wins).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
register();
const { main } = await import("../src/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
