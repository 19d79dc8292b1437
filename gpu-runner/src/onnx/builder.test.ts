import { describe, expect, it } from "vitest";
import { DType, GraphBuilder } from "./builder";

describe("GraphBuilder", () => {
  it("stores a weight once, however many scopes ask for it, and refuses one asked for with another shape", () => {
    const g = new GraphBuilder("w.bin");
    const x = g.input("x", DType.float, [2]);
    let reads = 0;
    const data = () => {
      reads++;
      return new Float32Array([1, 2]);
    };
    const main = g.weight("w", [2], data);
    const branch = () =>
      g.subgraph((sb) => {
        expect(sb.weight("w", [2], data)).toBe(main);
        sb.outputValue(sb.node("Mul", [x, main]), DType.float, [2]);
      });
    g.node("If", [g.input("c", DType.bool, [1])], {
      then_branch: { graph: branch() },
      else_branch: { graph: branch() },
    });
    const { external } = g.build({ opset: 17, producer: "test" });
    expect(external.filter((c) => c.name === "w")).toHaveLength(1);
    external.forEach((c) => c.bytes());
    expect(reads).toBe(1);
    expect(() => g.weight("w", [3], data)).toThrow(/another type or shape/);
  });

  it("names a subgraph's outputs by their values, and a value returned twice once more through an Identity", () => {
    const g = new GraphBuilder("w.bin");
    const x = g.input("x", DType.float, [2]);
    const sg = g.subgraph((sb) => {
      const y = sb.node("Neg", [x]);
      sb.outputValue(y, DType.float, [2]);
      sb.outputValue(y, DType.float, [2]);
    });
    const names = sg.output?.map((o) => o.name) ?? [];
    expect(new Set(names).size).toBe(2);
    expect(names[0]).toBe(sg.node?.[0].output?.[0]);
    expect(sg.node?.map((n) => n.opType)).toEqual(["Neg", "Identity"]);
  });
});
