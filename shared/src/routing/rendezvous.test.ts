import { describe, expect, it } from "vitest";
import { rendezvousKey, rendezvousOrder } from "./rendezvous";

const nodes = ["http://r0:8788", "http://r1:8788", "http://r2:8788", "http://r3:8788"];
const keys = Array.from({ length: 2000 }, (_, i) => rendezvousKey("tenant", `conv-${i}`, i % 4));

describe("rendezvous hashing", () => {
  it("orders every node once, the same way every time and whatever the input order", () => {
    const order = rendezvousOrder("t/c/0", nodes);
    expect([...order].sort()).toEqual([...nodes].sort());
    expect(rendezvousOrder("t/c/0", [...nodes].reverse())).toEqual(order);
    expect(rendezvousOrder("t/c/0", [...nodes, nodes[0]])).toEqual(order);
    expect(rendezvousOrder("t/c/0", [])).toEqual([]);
  });

  it("spreads keys about evenly", () => {
    const counts = new Map<string, number>();
    for (const key of keys)
      counts.set(
        rendezvousOrder(key, nodes)[0],
        (counts.get(rendezvousOrder(key, nodes)[0]) ?? 0) + 1,
      );
    for (const node of nodes) expect(counts.get(node)).toBeGreaterThan(400);
  });

  it("moves only the removed node's keys, each to its next choice", () => {
    const removed = nodes[2];
    const rest = nodes.filter((n) => n !== removed);
    for (const key of keys) {
      const before = rendezvousOrder(key, nodes);
      const after = rendezvousOrder(key, rest);
      expect(after).toEqual(before.filter((n) => n !== removed));
    }
  });

  it("joins key parts with /", () => {
    expect(rendezvousKey("t1", "conv-26", 3)).toBe("t1/conv-26/3");
  });
});
