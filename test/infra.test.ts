/**
 * infra/ checked without Docker or a cluster (neither exists where the tests run).
 *
 * - Both runner images (infra/runner/Dockerfile.cpu, .gpu) pass dockerfile-utils' linter with every
 *   rule at error level, and say what the runner needs: a non-root user, port 8788, a health check
 *   on /healthz, the `epicache` bin started with `serve`, the models pulled at build time, and for
 *   the GPU image a CUDA 12 + cuDNN base and onnxruntime-node's CUDA 12 provider.
 * - Every manifest in infra/k8s/ (and the example Secret) is read as YAML 1.1, as kubectl reads it,
 *   and checked twice against the Kubernetes API of kubernetes-models: its validator, compiled from
 *   the API's OpenAPI schema (types, required fields, enums, formats), and the TypeScript compiler
 *   with the package's generated interfaces, whose excess-property check rejects an unknown or
 *   misspelt field at any depth, like `kubectl apply --validate=strict` (the schema allows them).
 * - The pieces agree: the pod runs as the images' user, the probes, Service and HPA point at the
 *   runner, and every Secret or ConfigMap key the pod reads exists.
 *
 * Nothing here touches the network.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  DockerfileParser,
  type Dockerfile,
  type ImageTemplate,
  type Instruction,
} from "dockerfile-ast";
import {
  validate as lintDockerfile,
  ValidationSeverity,
  type ValidatorSettings,
} from "dockerfile-utils";
import { Deployment, type IDeployment } from "kubernetes-models/apps/v1/Deployment";
import {
  HorizontalPodAutoscaler,
  type IHorizontalPodAutoscaler,
} from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import {
  PodDisruptionBudget,
  type IPodDisruptionBudget,
} from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap, type IConfigMap } from "kubernetes-models/v1/ConfigMap";
import type { IContainer } from "kubernetes-models/v1/Container";
import { Secret, type ISecret } from "kubernetes-models/v1/Secret";
import { Service, type IService } from "kubernetes-models/v1/Service";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const K8S_DIR = join(ROOT, "infra", "k8s");
const EXAMPLE_SECRET = join(ROOT, "infra", "runner-secret.example.yaml");
const RUNNER_PORT = 8788;

// ---- Dockerfiles --------------------------------------------------------------------------------

/** Every rule of dockerfile-utils' validator, as an error (its defaults leave some as warnings). */
const STRICT_LINT: Required<ValidatorSettings> = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

/** The linter's findings as `line N: message` (1-based lines). */
function lint(text: string): string[] {
  return lintDockerfile(text, STRICT_LINT).map(
    (d) => `line ${d.range.start.line + 1}: ${d.message}`,
  );
}

interface Image {
  text: string;
  dockerfile: Dockerfile;
  /** The last stage: what the image runs. */
  final: ImageTemplate;
}

function readImage(name: string): Image {
  const text = readFileSync(join(ROOT, "infra", "runner", name), "utf8");
  const dockerfile = DockerfileParser.parse(text);
  const froms = dockerfile.getFROMs();
  const last = froms[froms.length - 1];
  const final = last && dockerfile.getContainingImage(last.getRange().start);
  if (!final) throw new Error(`${name} has no FROM`);
  return { text, dockerfile, final };
}

const keyword = (stage: ImageTemplate, word: string): Instruction[] =>
  stage.getInstructions().filter((i) => i.getKeyword() === word);
const args = (i: Instruction): string[] => i.getArguments().map((a) => a.getValue());
/** The instruction's arguments with build ARGs substituted (`FROM ${CUDA_IMAGE}` → its default). */
const expandedArgs = (i: Instruction): string[] =>
  i.getExpandedArguments().map((a) => a.getValue());

function finalEnv(image: Image): Map<string, string | null> {
  return new Map(
    image.final
      .getENVs()
      .flatMap((e) => e.getProperties().map((p) => [p.getName(), p.getValue()] as const)),
  );
}

/** The RUN commands of the whole file (every stage), in order. */
const runs = (image: Image): string[] =>
  keyword(image.dockerfile, "RUN").map((r) => r.getArgumentsContent() ?? "");

/** The (0-based) line an instruction starts on. */
const lineOf = (i: Instruction): number => i.getRange().start.line;

const IMAGES = [
  { file: "Dockerfile.cpu", provider: "cpu" },
  { file: "Dockerfile.gpu", provider: "cuda" },
] as const;

describe.each(IMAGES)("infra/runner/$file", ({ file, provider }) => {
  const image = readImage(file);

  it("passes the Dockerfile linter with every rule at error level", () => {
    expect(lint(image.text)).toEqual([]);
  });

  it("runs the runner as a non-root user, on 8788, with a health check on /healthz", () => {
    const users = keyword(image.final, "USER");
    expect(users.length, "a USER in the final stage").toBeGreaterThan(0);
    const user = args(users[users.length - 1] as Instruction)[0] ?? "";
    const [name] = user.split(":");
    expect(["", "root", "0"]).not.toContain(name);
    // Numeric, so that Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    expect(user).toMatch(/^\d+(:\d+)?$/);

    expect(keyword(image.final, "EXPOSE").flatMap(args)).toContain(String(RUNNER_PORT));

    const checks = image.final.getHEALTHCHECKs();
    expect(checks).toHaveLength(1);
    const check = checks[0]?.getArgumentsContent() ?? "";
    expect(check).toMatch(/^CMD /);
    expect(check).toContain("/healthz");
    expect(check).toContain(String(RUNNER_PORT));

    const env = finalEnv(image);
    expect(env.get("EPICACHE_RUNNER_HOST")).toBe("0.0.0.0");
    expect(env.get("EPICACHE_RUNNER_PORT")).toBe(String(RUNNER_PORT));
    expect(env.get("EPICACHE_EXECUTION_PROVIDER")).toBe(provider);

    // `npx epicache serve` without npm in between (npm would not pass SIGTERM on): the same bin.
    const cmds = image.final.getCMDs();
    expect(cmds).toHaveLength(1);
    const cmd = cmds[0]?.getJSONStrings().map((s) => s.getJSONValue()) ?? [];
    const bin = (
      JSON.parse(readFileSync(join(ROOT, "gpu-runner", "package.json"), "utf8")) as {
        bin: Record<string, string>;
      }
    ).bin.epicache;
    expect(cmd).toEqual(["node", join("gpu-runner", bin ?? "(no epicache bin)"), "serve"]);
  });

  it("installs with npm ci, links the epicache bin, pulls the models at build time, copies files that exist", () => {
    const commands = runs(image);
    const npmCi = commands.findIndex((c) => /\bnpm ci\b/.test(c));
    const pull = commands.findIndex((c) => c.includes("epicache models pull"));
    expect(npmCi, "npm ci").toBeGreaterThanOrEqual(0);
    expect(pull, "models pull after npm ci").toBeGreaterThan(npmCi);

    const copies = image.dockerfile.getCOPYs();
    const local = copies.filter((c) => !c.getFlags().some((f) => f.getName() === "from"));
    for (const copy of local) {
      const sources = args(copy).slice(0, -1);
      for (const source of sources)
        expect(existsSync(join(ROOT, source)), `COPY ${source}: exists in the repository`).toBe(
          true,
        );
    }
    // The bin script must be there when `npm ci` runs, or node_modules/.bin/epicache is not linked.
    const npmCiLine = lineOf(keyword(image.dockerfile, "RUN")[npmCi] as Instruction);
    const binCopy = local.find((c) => args(c)[0]?.startsWith("gpu-runner/bin"));
    expect(binCopy && lineOf(binCopy), "COPY gpu-runner/bin/ before npm ci").toBeLessThan(
      npmCiLine,
    );
    // `npm ci` needs every workspace's package.json to match the lockfile; the final stage keeps
    // them too, so that node_modules/@epicache/* link to folders that exist.
    const workspaces = (
      JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { workspaces: string[] }
    ).workspaces;
    const finalCopies = image.final.getCOPYs().map((c) => args(c)[0] ?? "");
    for (const workspace of workspaces) {
      const manifest = local.find((c) => args(c)[0] === `${workspace}/package.json`);
      expect(
        manifest && lineOf(manifest),
        `COPY ${workspace}/package.json before npm ci`,
      ).toBeLessThan(npmCiLine);
      expect(
        finalCopies.some(
          (source) =>
            source === `/app/${workspace}/package.json` || source === `/app/${workspace}/`,
        ),
        `the final stage copies ${workspace}/package.json`,
      ).toBe(true);
    }
  });

  it("the linter does catch a broken Dockerfile", () => {
    const broken = image.text
      .replace(`EXPOSE ${RUNNER_PORT}`, `EXPOSE ${RUNNER_PORT}/tcpp`)
      .replace("--interval=30s", "--interval=30");
    expect(broken).not.toBe(image.text);
    expect(lint(broken).length).toBeGreaterThanOrEqual(2);
  });
});

describe("the GPU image", () => {
  const image = readImage("Dockerfile.gpu");

  it("runs on NVIDIA's CUDA 12 + cuDNN runtime image", () => {
    const froms = image.dockerfile.getFROMs();
    const base = expandedArgs(froms[froms.length - 1] as Instruction)[0];
    expect(base).toMatch(/^nvidia\/cuda:12\.\d+(\.\d+)?-cudnn\d*-runtime-ubuntu\d+\.\d+$/);
  });

  it("installs onnxruntime-node's CUDA 12 provider and checks that it is there", () => {
    const install = runs(image).find((c) => c.includes("onnxruntime-node/script/install.js"));
    expect(install).toBeDefined();
    expect(install).toContain("ONNXRUNTIME_NODE_INSTALL=cuda12");
    expect(install).toContain(
      "test -f node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so",
    );
  });

  it("relies on what the installed onnxruntime-node's install script does", () => {
    // The image runs the script by hand; if an onnxruntime-node upgrade moves or renames it, or
    // drops the switch or the linux/x64 CUDA 12 manifest, this fails before an image build does.
    const scripts = join(ROOT, "node_modules", "onnxruntime-node", "script");
    expect(existsSync(join(scripts, "install.js"))).toBe(true);
    expect(readFileSync(join(scripts, "install-utils.js"), "utf8")).toContain(
      "process.env.ONNXRUNTIME_NODE_INSTALL",
    );
    const metadata = readFileSync(join(scripts, "install-metadata.js"), "utf8");
    expect(metadata).toContain("'linux/x64:cuda12'");
    expect(metadata).toContain("libonnxruntime_providers_cuda.so");
  });
});

describe("the CPU image", () => {
  const image = readImage("Dockerfile.cpu");

  it("runs on node:20-bookworm-slim and fetches no CUDA libraries", () => {
    for (const from of image.dockerfile.getFROMs())
      expect(expandedArgs(from)[0]).toBe("node:20-bookworm-slim");
    expect(runs(image).filter((c) => /cuda|onnxruntime-node\/script/i.test(c))).toEqual([]);
    expect(readFileSync(join(ROOT, ".npmrc"), "utf8")).toMatch(/^onnxruntime-node-install=skip$/m);
  });
});

describe(".dockerignore", () => {
  it("keeps local installs, models and caches out of the build context", () => {
    const lines = readFileSync(join(ROOT, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim());
    for (const entry of ["**/node_modules", ".epicache", ".git", ".dev.vars"])
      expect(lines).toContain(entry);
  });
});

// ---- Kubernetes manifests -----------------------------------------------------------------------

interface Manifest {
  /** `file#index`, for messages. */
  where: string;
  object: Record<string, unknown>;
}

/** Every document of a YAML file, read as YAML 1.1 like kubectl (where `on`/`yes` are booleans). */
function readManifests(path: string): Manifest[] {
  const docs = parseAllDocuments(readFileSync(path, "utf8"), { version: "1.1" });
  if (!Array.isArray(docs)) return [];
  return docs.map((doc, index) => {
    const where = `${path.slice(ROOT.length + 1)}#${index}`;
    const problems = [...doc.errors, ...doc.warnings].map((e) => e.message);
    if (problems.length > 0) throw new Error(`${where}: ${problems.join("; ")}`);
    const object: unknown = doc.toJS();
    if (object === null || typeof object !== "object" || Array.isArray(object))
      throw new Error(`${where}: not an object`);
    return { where, object: object as Record<string, unknown> };
  });
}

/**
 * The kinds these manifests may hold: kubernetes-models' runtime validator for each, and the module
 * and interface that the TypeScript check assigns the object to.
 */
const KINDS: Record<string, { validate: (o: unknown) => void; module: string; iface: string }> = {
  "v1/ConfigMap": {
    validate: (o) => new ConfigMap(o as IConfigMap).validate(),
    module: "kubernetes-models/v1/ConfigMap",
    iface: "IConfigMap",
  },
  "v1/Secret": {
    validate: (o) => new Secret(o as ISecret).validate(),
    module: "kubernetes-models/v1/Secret",
    iface: "ISecret",
  },
  "v1/Service": {
    validate: (o) => new Service(o as IService).validate(),
    module: "kubernetes-models/v1/Service",
    iface: "IService",
  },
  "apps/v1/Deployment": {
    validate: (o) => new Deployment(o as IDeployment).validate(),
    module: "kubernetes-models/apps/v1/Deployment",
    iface: "IDeployment",
  },
  "autoscaling/v2/HorizontalPodAutoscaler": {
    validate: (o) => new HorizontalPodAutoscaler(o as IHorizontalPodAutoscaler).validate(),
    module: "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler",
    iface: "IHorizontalPodAutoscaler",
  },
  "policy/v1/PodDisruptionBudget": {
    validate: (o) => new PodDisruptionBudget(o as IPodDisruptionBudget).validate(),
    module: "kubernetes-models/policy/v1/PodDisruptionBudget",
    iface: "IPodDisruptionBudget",
  },
};

const kindOf = (o: Record<string, unknown>): string => `${String(o.apiVersion)}/${String(o.kind)}`;

function kindFor(m: Manifest): (typeof KINDS)[string] {
  const kind = KINDS[kindOf(m.object)];
  if (!kind) throw new Error(`${m.where}: no model for ${kindOf(m.object)}; add it to KINDS`);
  return kind;
}

/** The runtime validator's verdict: null when valid, else its message. */
function schemaErrors(m: Manifest): string | null {
  try {
    kindFor(m).validate(m.object);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

const TS_OPTIONS: ts.CompilerOptions = {
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: [],
  lib: ["lib.es2022.d.ts"],
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
};
/** Parsed lib and kubernetes-models declarations, kept across checks (they do not change). */
const sourceCache = new Map<string, ts.SourceFile>();

/**
 * Each manifest as an object literal typed with its kind's interface, compiled in memory: the
 * diagnostics per manifest (excess properties, wrong types, missing required fields).
 */
function typeErrors(manifests: Manifest[]): string[][] {
  const virtual = new Map(
    manifests.map((m, i) => {
      const { module, iface } = kindFor(m);
      // Beside this file, so that module resolution finds the repository's node_modules.
      const name = join(ROOT, "test", `__infra-manifest-${i}.ts`);
      const source = `import type { ${iface} as Expected } from "${module}";\nexport const manifest: Expected = ${JSON.stringify(m.object, null, 2)};\n`;
      return [name, source] as const;
    }),
  );
  const host = ts.createCompilerHost(TS_OPTIONS, true);
  const { fileExists, readFile, getSourceFile } = host;
  host.fileExists = (f) => virtual.has(f) || fileExists.call(host, f);
  host.readFile = (f) => virtual.get(f) ?? readFile.call(host, f);
  host.getSourceFile = (f, target, onError) => {
    const text = virtual.get(f);
    if (text !== undefined) return ts.createSourceFile(f, text, target, true);
    let cached = sourceCache.get(f);
    if (!cached) {
      cached = getSourceFile.call(host, f, target, onError);
      if (cached) sourceCache.set(f, cached);
    }
    return cached;
  };
  const program = ts.createProgram([...virtual.keys()], TS_OPTIONS, host);
  return [...virtual.keys()].map((name) => {
    const file = program.getSourceFile(name);
    if (!file) throw new Error(`${name} was not compiled`);
    return ts
      .getPreEmitDiagnostics(program, file)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
  });
}

const manifestFiles = readdirSync(K8S_DIR)
  .filter((f) => /\.ya?ml$/.test(f))
  .sort()
  .map((f) => join(K8S_DIR, f));
const manifests = [...manifestFiles, EXAMPLE_SECRET].flatMap(readManifests);

/** The one object of `kind` in infra/k8s, typed as its interface (which the checks above hold it to). */
function only<T>(kind: string): T {
  const found = manifests.filter(
    (m) => kindOf(m.object) === kind && !m.where.startsWith("infra/runner-secret"),
  );
  expect(
    found.map((m) => m.where),
    `one ${kind} in infra/k8s`,
  ).toHaveLength(1);
  return (found[0] as Manifest).object as unknown as T;
}

/** A container port by name or number, as a probe or a Service's targetPort names it. */
function portNumber(container: IContainer, port: string | number | undefined): number | undefined {
  if (typeof port === "number") return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

describe("infra/k8s", () => {
  it("holds the runner's Deployment, Service, HPA, PDB and ConfigMap, each a kind with a model", () => {
    expect(manifestFiles.length).toBeGreaterThan(0);
    expect(manifests.map((m) => kindOf(m.object)).sort()).toEqual([
      "apps/v1/Deployment",
      "autoscaling/v2/HorizontalPodAutoscaler",
      "policy/v1/PodDisruptionBudget",
      "v1/ConfigMap",
      "v1/Secret",
      "v1/Service",
    ]);
    for (const m of manifests) expect(() => kindFor(m)).not.toThrow();
  });

  it("every object passes the Kubernetes API schema (kubernetes-models' validator)", () => {
    expect(manifests.map((m) => [m.where, schemaErrors(m)])).toEqual(
      manifests.map((m) => [m.where, null]),
    );
  });

  it("every object type-checks against the API's types, so no field is unknown or misspelt", () => {
    const errors = typeErrors(manifests);
    expect(manifests.map((m, i) => [m.where, errors[i]])).toEqual(
      manifests.map((m) => [m.where, []]),
    );
  });

  it("a misspelt field or a wrong type does fail", () => {
    const deployment = manifests.find((m) => kindOf(m.object) === "apps/v1/Deployment") as Manifest;
    const misspelt = structuredClone(deployment.object) as unknown as IDeployment;
    const container = misspelt.spec?.template.spec?.containers[0] as IContainer &
      Record<string, unknown>;
    container.imagePullPolice = container.imagePullPolicy;
    delete container.imagePullPolicy;
    const wrongType = structuredClone(deployment.object) as unknown as IDeployment;
    const port = wrongType.spec?.template.spec?.containers[0]?.ports?.[0] as unknown as Record<
      string,
      unknown
    >;
    port.containerPort = String(port.containerPort);

    const [misspeltErrors, wrongTypeErrors] = typeErrors([
      { where: "misspelt", object: misspelt as unknown as Record<string, unknown> },
      { where: "wrong type", object: wrongType as unknown as Record<string, unknown> },
    ]);
    expect(misspeltErrors?.join("\n")).toMatch(
      /imagePullPolice\W* does not exist in type 'IContainer'/,
    );
    expect(wrongTypeErrors?.join("\n")).toMatch(/Type 'string' is not assignable to type 'number'/);
    // The schema (like the API server) lets unknown fields through, but not a wrong type.
    expect(
      schemaErrors({
        where: "wrong type",
        object: wrongType as unknown as Record<string, unknown>,
      }),
    ).toMatch(/containerPort must be integer/);
  });

  it("the Deployment runs the images' user with one GPU and probes /healthz on 8788", () => {
    const deployment = only<IDeployment>("apps/v1/Deployment");
    const pod = deployment.spec?.template.spec;
    const container = pod?.containers.find((c) => c.name === "runner") as IContainer;
    expect(container, "a container named runner").toBeDefined();

    expect(deployment.spec?.replicas, "replicas left to the HPA").toBeUndefined();
    expect(pod?.securityContext?.runAsNonRoot).toBe(true);
    const imageUser = args(keyword(readImage("Dockerfile.gpu").final, "USER")[0] as Instruction)[0];
    expect(`${pod?.securityContext?.runAsUser}:${pod?.securityContext?.runAsGroup}`).toBe(
      imageUser,
    );
    expect(container.securityContext?.allowPrivilegeEscalation).toBe(false);
    expect(container.securityContext?.capabilities?.drop).toEqual(["ALL"]);

    expect(String(container.resources?.limits?.["nvidia.com/gpu"])).toBe("1");
    expect(container.ports?.map((p) => p.containerPort)).toContain(RUNNER_PORT);
    for (const probe of [
      container.startupProbe,
      container.readinessProbe,
      container.livenessProbe,
    ]) {
      expect(probe?.httpGet?.path).toBe("/healthz");
      expect(portNumber(container, probe?.httpGet?.port)).toBe(RUNNER_PORT);
    }

    const env = new Map(container.env?.map((e) => [e.name, e]));
    expect(env.get("EPICACHE_RUNNER_HOST")?.value).toBe("0.0.0.0");
    expect(env.get("EPICACHE_EXECUTION_PROVIDER")?.value).toBe("cuda");
    const selector = deployment.spec?.selector.matchLabels ?? {};
    expect(Object.keys(selector).length).toBeGreaterThan(0);
    expect(deployment.spec?.template.metadata?.labels).toMatchObject(selector);
  });

  it("the pod reads its secrets from the Secret epicache-runner and its settings from the ConfigMap", () => {
    const deployment = only<IDeployment>("apps/v1/Deployment");
    const container = deployment.spec?.template.spec?.containers[0] as IContainer;
    const fromSecret = new Map(
      container.env
        ?.filter((e) => e.valueFrom?.secretKeyRef)
        .map((e) => [e.name, e.valueFrom?.secretKeyRef]),
    );
    expect([...fromSecret.keys()].sort()).toEqual([
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "EPICACHE_RUNNER_SECRET",
    ]);
    for (const ref of fromSecret.values()) expect(ref?.name).toBe("epicache-runner");
    expect(
      fromSecret.get("EPICACHE_RUNNER_SECRET")?.optional ?? false,
      "the HMAC secret is required",
    ).toBe(false);

    // The example Secret has every key the pod reads, under the same name.
    const example = manifests.find((m) => m.where.startsWith("infra/runner-secret"))
      ?.object as unknown as ISecret;
    expect(example.metadata?.name).toBe("epicache-runner");
    for (const ref of fromSecret.values())
      expect(Object.keys(example.stringData ?? {})).toContain(ref?.key);

    const configMap = only<IConfigMap>("v1/ConfigMap");
    expect(container.envFrom?.map((e) => e.configMapRef?.name)).toEqual([configMap.metadata?.name]);
    expect(configMap.data?.EPICACHE_STORE).toMatch(/^s3:\/\//);
  });

  it("the Service sends port 8788 to the runner pods", () => {
    const deployment = only<IDeployment>("apps/v1/Deployment");
    const service = only<IService>("v1/Service");
    const container = deployment.spec?.template.spec?.containers[0] as IContainer;
    expect(service.spec?.type).toBe("ClusterIP");
    expect(deployment.spec?.template.metadata?.labels).toMatchObject(
      service.spec?.selector ?? { missing: "selector" },
    );
    const port = service.spec?.ports?.find((p) => p.port === RUNNER_PORT);
    expect(port).toBeDefined();
    expect(portNumber(container, port?.targetPort)).toBe(RUNNER_PORT);
  });

  it("the HPA scales the Deployment on epicache_runner_queue_depth per pod", () => {
    const deployment = only<IDeployment>("apps/v1/Deployment");
    const hpa = only<IHorizontalPodAutoscaler>("autoscaling/v2/HorizontalPodAutoscaler");
    expect(hpa.spec?.scaleTargetRef).toEqual({
      apiVersion: "apps/v1",
      kind: "Deployment",
      name: deployment.metadata?.name,
    });
    expect(hpa.spec?.metrics).toHaveLength(1);
    const metric = hpa.spec?.metrics?.[0];
    expect(metric?.type).toBe("Pods");
    expect(metric?.pods?.metric.name).toBe("epicache_runner_queue_depth");
    expect(metric?.pods?.target.type).toBe("AverageValue");
    expect(Number(metric?.pods?.target.averageValue)).toBeGreaterThan(0);
    expect(hpa.spec?.minReplicas ?? 1).toBeLessThanOrEqual(hpa.spec?.maxReplicas ?? 0);
  });

  it("the PodDisruptionBudget covers the runner pods", () => {
    const deployment = only<IDeployment>("apps/v1/Deployment");
    const pdb = only<IPodDisruptionBudget>("policy/v1/PodDisruptionBudget");
    expect(deployment.spec?.template.metadata?.labels).toMatchObject(
      pdb.spec?.selector?.matchLabels ?? { missing: "selector" },
    );
  });
});
