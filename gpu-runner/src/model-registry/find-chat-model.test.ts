import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { modelFingerprint, sha256File, sha256Files } from "../runtime/load";
import { NEEDS_PULL, pulledModel, tinyGguf, writeTinyHfCheckpoint } from "../testing";
import { chatModelRef, findChatModel, pinnedFingerprint } from "./find-chat-model";
import { findModel, modelPath } from "./index";

const dir = mkdtempSync(join(tmpdir(), "epicache-find-model-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh, empty model cache. */
function cache(): string {
  const root = join(dir, `cache-${n++}`);
  mkdirSync(root);
  return root;
}

/** A tiny GGUF file at `path`, and its fingerprint. */
function tiny(path: string, seed: number, numLayers = 2): { path: string; fingerprint: string } {
  writeFileSync(path, tinyGguf({ architecture: "llama", numLayers, seed }).bytes);
  return { path, fingerprint: sha256File(path).slice(0, 16) };
}

function thrown(f: () => unknown): { code?: string; message: string } {
  try {
    f();
  } catch (e) {
    return e as { code?: string; message: string };
  }
  throw new Error("expected an error, got none");
}

const chat = findModel("chat");
if (!chat) throw new Error("the registry has no chat model");
const chatFingerprint = pinnedFingerprint(chat) as string;

describe("modelFingerprint", () => {
  it("is what openChatModel records: the SHA-256 of a GGUF file, of config.json and the safetensors of a checkpoint", () => {
    const file = tiny(join(dir, "fp.gguf"), 1);
    expect(modelFingerprint(file.path)).toBe(file.fingerprint);
    const ckpt = writeTinyHfCheckpoint(join(dir, "fp-hf"), { architecture: "llama", seed: 2 });
    const shards = readdirSync(ckpt.dir)
      .filter((f) => f.endsWith(".safetensors"))
      .sort()
      .map((f) => join(ckpt.dir, f));
    expect(modelFingerprint(ckpt.dir)).toBe(
      sha256Files([join(ckpt.dir, "config.json"), ...shards]).slice(0, 16),
    );
  });

  it("follows the file when it is replaced", () => {
    const path = join(dir, "replaced.gguf");
    const first = tiny(path, 3);
    expect(modelFingerprint(path)).toBe(first.fingerprint);
    const second = tiny(path, 4, 3);
    expect(second.fingerprint).not.toBe(first.fingerprint);
    expect(modelFingerprint(path)).toBe(second.fingerprint);
  });

  it("refuses what is not a model", () => {
    expect(thrown(() => modelFingerprint(join(dir, "missing.gguf"))).code).toBe("model_not_found");
    writeFileSync(join(dir, "notes.txt"), "hi");
    expect(thrown(() => modelFingerprint(join(dir, "notes.txt"))).code).toBe("model_unsupported");
  });
});

describe("chatModelRef", () => {
  it("names a registered model by its registry id, wherever its file is, and any other by its file or directory name", () => {
    expect(chatModelRef({ path: "/elsewhere/renamed.gguf", fingerprint: chatFingerprint })).toEqual(
      { id: chat.id, fingerprint: chatFingerprint },
    );
    expect(
      chatModelRef({ path: "/models/my-model.Q8_0.gguf", fingerprint: "0123456789abcdef" }),
    ).toEqual({ id: "my-model.Q8_0.gguf", fingerprint: "0123456789abcdef" });
    expect(
      chatModelRef({ path: "/models/qwen2.5-0.5b/", fingerprint: "0123456789abcdef" }).id,
    ).toBe("qwen2.5-0.5b");
  });

  it("takes a registered model's fingerprint from its pinned SHA-256", () => {
    expect(chatFingerprint).toMatch(/^[0-9a-f]{16}$/);
    expect(pinnedFingerprint(findModel("embedder") ?? chat)).toBeUndefined();
  });
});

describe("findChatModel", () => {
  it("uses an explicit model whose fingerprint matches, and refuses one whose fingerprint differs", () => {
    const a = tiny(join(dir, "explicit-a.gguf"), 5);
    const b = tiny(join(dir, "explicit-b.gguf"), 6);
    const root = cache();
    expect(
      findChatModel({ id: "explicit-a.gguf", fingerprint: a.fingerprint }, { model: a.path, root }),
    ).toBe(a.path);
    const e = thrown(() =>
      findChatModel({ id: "explicit-a.gguf", fingerprint: a.fingerprint }, { model: b.path, root }),
    );
    expect(e.code).toBe("model_mismatch");
    expect(e.message).toContain(b.fingerprint);
    expect(e.message).toContain(`explicit-a.gguf (fingerprint ${a.fingerprint})`);
    // An explicit path is checked, not searched for: a missing one is not found even where the cache holds the model.
    writeFileSync(
      join(root, "explicit-a.gguf"),
      tinyGguf({ architecture: "llama", numLayers: 2, seed: 5 }).bytes,
    );
    expect(
      thrown(() =>
        findChatModel(
          { id: "explicit-a.gguf", fingerprint: a.fingerprint },
          { model: join(dir, "gone.gguf"), root },
        ),
      ).code,
    ).toBe("model_not_found");
    expect(findChatModel({ id: "explicit-a.gguf", fingerprint: a.fingerprint }, { root })).toBe(
      join(root, "explicit-a.gguf"),
    );
  });

  it("finds an unregistered model placed in the cache under its id, checking its fingerprint", () => {
    const root = cache();
    const ref = { id: "mine.gguf", fingerprint: tiny(join(dir, "mine.gguf"), 7).fingerprint };
    const missing = thrown(() => findChatModel(ref, { root }));
    expect(missing.code).toBe("model_not_found");
    expect(missing.message).toContain(`mine.gguf (fingerprint ${ref.fingerprint})`);
    expect(missing.message).toContain(join(root, "mine.gguf"));
    expect(missing.message).toContain("--model");

    tiny(join(root, "mine.gguf"), 8);
    const other = thrown(() => findChatModel(ref, { root }));
    expect(other.code).toBe("model_not_found");
    expect(other.message).toContain(`not ${ref.fingerprint}`);

    symlinkSync(join(dir, "mine.gguf"), join(root, "mine-link.gguf"));
    expect(findChatModel({ ...ref, id: "mine-link.gguf" }, { root })).toBe(
      join(root, "mine-link.gguf"),
    );
  });

  it("looks up only plain names from a manifest", () => {
    const root = cache();
    const outside = tiny(join(dir, "outside.gguf"), 9);
    for (const id of ["../outside.gguf", `${dir}/outside.gguf`, "..", "."]) {
      expect(
        thrown(() => findChatModel({ id, fingerprint: outside.fingerprint }, { root })).code,
        id,
      ).toBe("model_not_found");
    }
  });

  it("finds a registered model by its pinned fingerprint, whatever id it is given, and says how to pull it when absent", () => {
    const root = cache();
    const e = thrown(() =>
      findChatModel({ id: "renamed", fingerprint: chatFingerprint }, { root }),
    );
    expect(e.code).toBe("model_not_found");
    expect(e.message).toContain(`npx epicache models pull ${chat.id}`);
    expect(e.message).toContain("--model PATH");
    // A file there that is not the pinned one (a half-copied file, say) is not the model.
    mkdirSync(join(root, chat.id));
    writeFileSync(modelPath(chat, root), "not the model");
    const bad = thrown(() =>
      findChatModel({ id: chat.id, fingerprint: chatFingerprint }, { root }),
    );
    expect(bad.code).toBe("model_not_found");
    expect(bad.message).toContain(`npx epicache models pull ${chat.id}`);
  });

  const pulled = pulledModel("chat");
  it.skipIf(!pulled)(
    `finds the pulled SmolLM2 in another cache through a link, its fingerprint the pinned one ${NEEDS_PULL}`,
    () => {
      const path = pulled as string;
      expect(modelFingerprint(path)).toBe(chatFingerprint);
      const root = cache();
      mkdirSync(join(root, chat.id));
      symlinkSync(path, modelPath(chat, root));
      expect(findChatModel({ id: chat.id, fingerprint: chatFingerprint }, { root })).toBe(
        modelPath(chat, root),
      );
      expect(
        findChatModel(
          { id: chat.id, fingerprint: chatFingerprint },
          { root: cache(), model: path },
        ),
      ).toBe(path);
    },
  );
});
