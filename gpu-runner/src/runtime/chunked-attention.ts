/**
 * Attention over a large cache in chunks of C past entries (exact numerics), with the scores of a
 * scoring span computed the same way: the graph never holds more than [kvHeads, G, T, C] of
 * attention at once, so its transient memory follows the chunk size, not the cache's length. An
 * online softmax carries the running maximum m, the running sum l and the weighted values per query
 * from chunk to chunk (Loop); the new tokens' own causal block is added at the end. Scoring needs
 * each span query's softmax normaliser over the scored keys before any probability, so a second
 * Loop over the same chunks reduces each key's logits over the span's queries, less their log
 * normalisers, and exponentiates only that maximum (a key's score is its largest probability).
 *
 * Only entries up to the longest head are visited: the work and the result follow what the cache
 * holds, not its capacity, and the cache's buffers go in whole.
 */
import { DType, type GraphBuilder } from "../onnx/builder";

export interface ChunkedAttentionInputs {
  /** Queries, pre-scaled by 1/√D: [KV, G, T, D]. */
  qs: string;
  /** The new tokens' keys and values: [KV, T, D]. */
  k: string;
  v: string;
  /** The cache: [KV, P, D] each, entries at or beyond `len[h]` padding. */
  pastK: string;
  pastV: string;
  /** Valid entries per KV head: [KV] int64. */
  len: string;
  /** Causal mask of the new tokens: [T, T] bool (key ≤ query). */
  causal: string;
  /** Sizes: scalars int64 (T, the span S, T − S, the chunk C) and [1] int64 (T). */
  T: string;
  Tn: string;
  T1: string;
  chunk: string;
  /** Whether a scoring span is marked: scalar bool. */
  scoring: string;
  /** Which of the P + T keys may be scored: [KV, P + T] bool. */
  keyValid: string;
}

/** Returns [ctx [KV, G, T, D], scores [KV, P + T]] built on `g`. */
export function chunkedAttention(
  g: GraphBuilder,
  x: ChunkedAttentionInputs,
  KV: number,
  G: number,
  D: number,
  tag: string,
): [string, string] {
  const BIG_NEG = -1e30; // a finite "minus infinity": exp(BIG_NEG − BIG_NEG) must be 1, not NaN
  const zero = g.float(0);
  const negInf = g.float(-Infinity);
  const Cu = g.node("Unsqueeze", [x.chunk, g.ints([0])]); // [1]
  const maxLen = g.node("ReduceMax", [x.len], { keepdims: 0 }); // scalar
  const maxLenU = g.node("Unsqueeze", [maxLen, g.ints([0])]); // [1]
  const chunks = g.node("Div", [
    g.node("Add", [maxLen, g.node("Sub", [x.chunk, g.int(1)])]),
    x.chunk,
  ]); // ⌈maxLen / C⌉
  const shapeKGT = (last: string) => g.node("Concat", [g.ints([KV, G]), x.T1, last], { axis: 0 });
  const filled = (shape: string, value: number) =>
    g.node("ConstantOfShape", [shape], { value: { tensor: new Float32Array([value]), dims: [1] } });

  /**
   * One chunk of the cache: its keys and values [KV, C', D] (values only when asked) and the bias of
   * its entries [KV, C'] (0, or −∞ beyond a head's length).
   */
  const chunkAt = (sb: GraphBuilder, it: string, padTo: boolean, withValues: boolean) => {
    const start = sb.node("Mul", [it, x.chunk]); // scalar
    const startU = sb.node("Unsqueeze", [start, sb.ints([0])]);
    // A chunk ends at the longest head at the latest, never in the buffer's spare capacity: the same
    // entries give the same reductions (and so the same bits) whatever the buffer's capacity.
    const endU = sb.node("Min", [sb.node("Add", [startU, Cu]), maxLenU]);
    let kc = sb.node("Slice", [x.pastK, startU, endU, sb.ints([1])]); // [KV, C', D]
    let vc = withValues ? sb.node("Slice", [x.pastV, startU, endU, sb.ints([1])]) : null;
    if (padTo) {
      // A fixed width C, so that per-chunk outputs stack: the padding lies beyond every length.
      const short = sb.node("Sub", [
        Cu,
        sb.node("Slice", [sb.node("Shape", [kc]), sb.ints([1]), sb.ints([2])]),
      ]); // [1]
      const pads = sb.node("Concat", [sb.ints([0, 0, 0, 0]), short, sb.ints([0])], { axis: 0 });
      kc = sb.node("Pad", [kc, pads]);
      if (vc) vc = sb.node("Pad", [vc, pads]);
    }
    const width = sb.node("Gather", [sb.node("Shape", [kc]), sb.int(1)], { axis: 0 }); // scalar C'
    const j = sb.node("Add", [sb.node("Range", [sb.int(0), width, sb.int(1)]), start]); // [C']
    const valid = sb.node("Less", [
      sb.node("Unsqueeze", [j, sb.ints([0])]),
      sb.node("Unsqueeze", [x.len, sb.ints([1])]),
    ]); // [KV, C']
    return { kc, vc, bias: sb.node("Where", [valid, zero, negInf]) };
  };

  // ── the cache, chunk by chunk: running max, sum and weighted values per query ──
  const body = g.subgraph((sb) => {
    const it = sb.input(`it_${tag}`, DType.int64, []);
    const cond = sb.input(`cond_${tag}`, DType.bool, []);
    const m = sb.input(`m_${tag}`, DType.float, [KV, G, "T", 1]);
    const l = sb.input(`l_${tag}`, DType.float, [KV, G, "T", 1]);
    const acc = sb.input(`acc_${tag}`, DType.float, [KV, G, "T", D]);
    const chunk = chunkAt(sb, it, false, true);
    const kT = sb.node("Unsqueeze", [
      sb.node("Transpose", [chunk.kc], { perm: [0, 2, 1] }),
      sb.ints([1]),
    ]); // [KV, 1, D, C']
    const vc = sb.node("Unsqueeze", [chunk.vc as string, sb.ints([1])]); // [KV, 1, C', D]
    const bias = sb.node("Unsqueeze", [chunk.bias, sb.ints([1, 2])]); // [KV, 1, 1, C']
    const s = sb.node("Add", [sb.node("MatMul", [x.qs, kT]), bias]); // [KV, G, T, C']
    const m2 = sb.node("Max", [m, sb.node("ReduceMax", [s], { axes: [-1], keepdims: 1 })]);
    const e = sb.node("Exp", [sb.node("Sub", [s, m2])]);
    const corr = sb.node("Exp", [sb.node("Sub", [m, m2])]);
    sb.output(sb.node("Identity", [cond]), `cond_out_${tag}`, DType.bool, []);
    sb.output(m2, `m_out_${tag}`, DType.float, [KV, G, "T", 1]);
    sb.output(
      sb.node("Add", [
        sb.node("Mul", [l, corr]),
        sb.node("ReduceSum", [e, sb.ints([-1])], { keepdims: 1 }),
      ]),
      `l_out_${tag}`,
      DType.float,
      [KV, G, "T", 1],
    );
    sb.output(
      sb.node("Add", [sb.node("Mul", [acc, corr]), sb.node("MatMul", [e, vc])]),
      `acc_out_${tag}`,
      DType.float,
      [KV, G, "T", D],
    );
  });
  const one = g.ints([1]);
  const [mP, lP, accP] = g.nodeN(
    "Loop",
    [
      chunks,
      "",
      filled(shapeKGT(one), BIG_NEG),
      filled(shapeKGT(one), 0),
      filled(shapeKGT(g.ints([D])), 0),
    ],
    3,
    { body: { graph: body } },
  );

  // ── the new tokens, causally among themselves ──
  const kTnew = g.node("Unsqueeze", [g.node("Transpose", [x.k], { perm: [0, 2, 1] }), g.ints([1])]); // [KV, 1, D, T]
  const sNew = g.node("Add", [
    g.node("MatMul", [x.qs, kTnew]),
    g.node("Where", [x.causal, zero, negInf]),
  ]); // [KV, G, T, T]
  const mNew = g.node("ReduceMax", [sNew], { axes: [-1], keepdims: 1 }); // finite: a token sees itself
  const eNew = g.node("Exp", [g.node("Sub", [sNew, mNew])]);
  const lNew = g.node("ReduceSum", [eNew, g.ints([-1])], { keepdims: 1 });
  const accNew = g.node("MatMul", [eNew, g.node("Unsqueeze", [x.v, g.ints([1])])]); // [KV, G, T, D]
  const M = g.node("Max", [mP, mNew]);
  const a = g.node("Exp", [g.node("Sub", [mP, M])]);
  const b = g.node("Exp", [g.node("Sub", [mNew, M])]);
  const ctx = g.node("Div", [
    g.node("Add", [g.node("Mul", [accP, a]), g.node("Mul", [accNew, b])]),
    g.node("Add", [g.node("Mul", [lP, a]), g.node("Mul", [lNew, b])]),
  ]); // [KV, G, T, D]

  // ── scores of the span's queries: normaliser over the cache and the first T − S new tokens ──
  // A key's score is its largest probability over the span's queries and heads, the max over rows r
  // of exp(s_r − c_r), where c_r = m_r + log l_r is row r's log normaliser. exp is monotonic, so the
  // max is taken over s − c and only the max is exponentiated: per key and row one product, one
  // subtraction and one comparison, no exponential or division over the span's whole [S, P + T].
  const then = g.subgraph((sb) => {
    const TnU = sb.node("Unsqueeze", [x.Tn, sb.ints([0])]);
    const rows = (v: string) => sb.node("Slice", [v, TnU, x.T1, sb.ints([2])]); // the span's rows
    const qsS = rows(x.qs); // [KV, G, S, D]
    // The span's queries score the new tokens before it: its first T' = max(T − S, 1) columns (at
    // least one, masked when there are none, so that no reduction is empty).
    const width = sb.node("Max", [TnU, sb.ints([1])]); // [1] T'
    const colOk = sb.node("Less", [
      sb.node("Range", [sb.int(0), sb.node("Squeeze", [width, sb.ints([0])]), sb.int(1)]),
      x.Tn,
    ]); // [T']
    const sNs = sb.node("Add", [
      sb.node("Slice", [rows(sNew), sb.ints([0]), width, sb.ints([3])]),
      sb.node("Where", [colOk, zero, negInf]),
    ]); // [KV, G, S, T']
    const mNs = sb.node("Max", [
      sb.node("ReduceMax", [sNs], { axes: [-1], keepdims: 1 }),
      sb.float(BIG_NEG),
    ]);
    const lNs = sb.node(
      "ReduceSum",
      [sb.node("Exp", [sb.node("Sub", [sNs, mNs])]), sb.ints([-1])],
      { keepdims: 1 },
    );
    const [mPS, lPS] = [rows(mP), rows(lP)];
    const Ms = sb.node("Max", [mPS, mNs]); // [KV, G, S, 1]
    const Ls = sb.node("Add", [
      sb.node("Mul", [lPS, sb.node("Exp", [sb.node("Sub", [mPS, Ms])])]),
      sb.node("Mul", [lNs, sb.node("Exp", [sb.node("Sub", [mNs, Ms])])]),
    ]);
    const logNorm = sb.node("Add", [Ms, sb.node("Log", [Ls])]); // [KV, G, S, 1]
    const newScores = sb.node("Pad", [
      sb.node("Exp", [
        sb.node("ReduceMax", [sb.node("Sub", [sNs, logNorm])], { axes: [1, 2], keepdims: 0 }),
      ]), // [KV, T']
      sb.node("Concat", [sb.ints([0, 0, 0]), sb.node("Sub", [x.T1, width])], { axis: 0 }),
    ]); // [KV, T]
    // The cache, chunk by chunk, against all the span's rows at once: keys × rows, so that the max
    // over rows runs along memory.
    const qT = sb.node("Transpose", [sb.node("Reshape", [qsS, sb.ints([KV, -1, D])])], {
      perm: [0, 2, 1],
    }); // [KV, D, G·S]
    const normRow = sb.node("Reshape", [logNorm, sb.ints([KV, 1, -1])]); // [KV, 1, G·S]
    const scoreBody = sb.subgraph((bb) => {
      const it = bb.input(`sit_${tag}`, DType.int64, []);
      const cond = bb.input(`scond_${tag}`, DType.bool, []);
      const { kc, bias } = chunkAt(bb, it, true, false);
      const best = bb.node(
        "ReduceMax",
        [bb.node("Sub", [bb.node("MatMul", [kc, qT]), normRow])], // [KV, C, G·S]
        { axes: [-1], keepdims: 0 },
      ); // [KV, C]
      bb.output(bb.node("Identity", [cond]), `scond_out_${tag}`, DType.bool, []);
      bb.output(bb.node("Exp", [bb.node("Add", [best, bias])]), `sc_${tag}`, DType.float, [
        KV,
        "C",
      ]);
    });
    const visits = sb.node("Max", [chunks, sb.int(1)]); // one chunk at least: a Loop's stacked output needs an iteration
    const stacked = sb.node("Loop", [visits, ""], { body: { graph: scoreBody } }); // [N, KV, C]
    const flat = sb.node("Reshape", [
      sb.node("Transpose", [stacked], { perm: [1, 0, 2] }),
      sb.ints([KV, -1]),
    ]); // [KV, N·C]
    const P = sb.node("Slice", [sb.node("Shape", [x.pastK]), sb.ints([1]), sb.ints([2])]); // [1]
    const short = sb.node("Max", [
      sb.node("Sub", [P, sb.node("Slice", [sb.node("Shape", [flat]), sb.ints([1]), sb.ints([2])])]),
      sb.ints([0]),
    ]);
    const padded = sb.node("Pad", [
      flat,
      sb.node("Concat", [sb.ints([0, 0, 0]), short], { axis: 0 }),
    ]);
    const pastScores = sb.node("Slice", [padded, sb.ints([0]), P, sb.ints([1])]); // [KV, P]
    const all = sb.node("Concat", [pastScores, newScores], { axis: 1 }); // [KV, P + T]
    // Unscored keys (padding, the span's own) get 0; so does everything when no key may be scored.
    sb.output(sb.node("Where", [x.keyValid, all, zero]), `chunk_scores_${tag}`, DType.float, [
      KV,
      "PT",
    ]);
  });
  const none = g.subgraph((sb) => {
    sb.output(
      sb.node("ConstantOfShape", [sb.node("Shape", [x.keyValid])], {
        value: { tensor: new Float32Array([0]), dims: [1] },
      }),
      `chunk_no_scores_${tag}`,
      DType.float,
      [KV, "PT"],
    );
  });
  const scores = g.node("If", [x.scoring], {
    then_branch: { graph: then },
    else_branch: { graph: none },
  });
  return [ctx, scores];
}
