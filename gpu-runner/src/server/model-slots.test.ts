import { describe, expect, it } from "vitest";
import { ModelSlots } from "./model-slots";

const tick = () => new Promise((r) => setTimeout(r, 1));

describe("ModelSlots", () => {
  it(
    "runs one call at a time, serving questions before embeddings before rebuilds",
    { timeout: 5000 },
    async () => {
      const slots = new ModelSlots(1);
      const order: string[] = [];
      let release: () => void = () => undefined;
      const first = slots.run("rebuild", () =>
        new Promise<void>((r) => (release = r)).then(() => void order.push("rebuild-1")),
      );
      const calls = [
        slots.run("rebuild", async () => void order.push("rebuild-2")),
        slots.run("embed", async () => void order.push("embed")),
        slots.run("generate", async () => void order.push("generate-1")),
        slots.run("generate", async () => void order.push("generate-2")),
      ];
      await tick(); // the first call has its slot and is running
      expect(slots.waiting).toBe(4);
      release();
      await Promise.all([first, ...calls]);
      expect(order).toEqual(["rebuild-1", "generate-1", "generate-2", "embed", "rebuild-2"]);
      expect(slots.inUse).toBe(0);
    },
  );

  it("a rebuild that pauses between model calls lets a waiting question through, and only then", async () => {
    const slots = new ModelSlots(1);
    const order: string[] = [];
    let question: Promise<void> | undefined;
    await slots.run("rebuild", async () => {
      for (let step = 0; step < 4; step++) {
        await slots.pause("rebuild");
        order.push(`step-${step}`);
        if (step === 1) question = slots.run("generate", async () => void order.push("question"));
        await tick();
      }
    });
    await question;
    expect(order).toEqual(["step-0", "step-1", "question", "step-2", "step-3"]);
  });

  it("with two slots, two calls run at once", async () => {
    const slots = new ModelSlots(2);
    let running = 0,
      most = 0;
    const call = () =>
      slots.run("generate", async () => {
        most = Math.max(most, ++running);
        await tick();
        running--;
      });
    await Promise.all([call(), call(), call(), call()]);
    expect(most).toBe(2);
  });
});
