/**
 * A small builder for ONNX graphs: named values, nodes, constants and initializers, encoded with the
 * ONNX protobuf schema (onnx-proto). Large initializers go to an external data file, as ONNX's
 * external-data convention describes, so graphs of any size stay under protobuf's 2 GiB limit.
 */
import onnxProto from "onnx-proto";

const { onnx } = onnxProto;
export type ModelProto = InstanceType<typeof onnx.ModelProto>;

export const DType = {
  float: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  double: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
} as const;
export type DTypeId = (typeof DType)[keyof typeof DType];

const ELEMENT_BYTES: Record<DTypeId, number> = {
  [DType.float]: 4,
  [DType.float16]: 2,
  [DType.double]: 8,
  [DType.int64]: 8,
  [DType.int32]: 4,
  [DType.bool]: 1,
  [DType.uint8]: 1,
};

/** A dimension: a fixed size or a symbolic name. */
export type Dim = number | string;

export type GraphProto = InstanceType<typeof onnx.GraphProto>;

/** An attribute: an integer, a list of integers, a string, `{ float }`, a small tensor or a subgraph. */
type AttrValue =
  | number
  | number[]
  | string
  | { float: number }
  | { tensor: Float32Array | BigInt64Array; dims: number[] }
  | { graph: GraphProto };

/** Initializer bytes destined for the external data file, produced when the file is written. */
export interface ExternalChunk {
  name: string;
  byteLength: number;
  bytes: () => Uint8Array;
}

const EXTERNAL_ALIGN = 64;

export class GraphBuilder {
  private readonly nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  private readonly inputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly outputs: InstanceType<typeof onnx.ValueInfoProto>[] = [];
  private readonly initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private readonly chunks: ExternalChunk[] = [];
  private externalBytes = 0;
  private counter = 0;
  private readonly constCache = new Map<string, string>();

  /** Initializers in the external data file by name: a weight asked for twice is stored once. */
  private readonly weights = new Map<string, { dims: number[]; type: DTypeId }>();

  /**
   * `prefix` keeps a subgraph's names apart from its parent's (ONNX names are unique across scopes);
   * a subgraph's weights go to `root`, the main graph, whose initializers every scope may read.
   */
  constructor(
    private readonly externalFile: string,
    private readonly prefix = "",
    private readonly root: GraphBuilder | null = null,
  ) {}

  private fresh(hint: string): string {
    return `${this.prefix}${hint}_${this.counter++}`;
  }

  private subgraphs = 0;

  /**
   * A subgraph (the body of Scan, Loop or If), built by `body` on a fresh builder. Its values are
   * local; the weights it asks for are the main graph's initializers (read from the outer scope),
   * shared with every other scope that asks for them by name.
   */
  subgraph(body: (sub: GraphBuilder) => void): GraphProto {
    const sub = new GraphBuilder(
      this.externalFile,
      `${this.prefix}sg${this.subgraphs++}_`,
      this.root ?? this,
    );
    body(sub);
    return onnx.GraphProto.create({
      name: `${this.prefix}sg${this.subgraphs}`,
      node: sub.nodes,
      input: sub.inputs,
      output: sub.outputs,
      initializer: sub.initializers,
    });
  }

  input(name: string, type: DTypeId, shape: Dim[]): string {
    this.inputs.push(valueInfo(name, type, shape));
    return name;
  }

  output(value: string, name: string, type: DTypeId, shape: Dim[]): void {
    if (value !== name) this.node("Identity", [value], {}, name);
    this.outputs.push(valueInfo(name, type, shape));
  }

  /**
   * `value`, computed in this graph, as an output under its own name: a subgraph's outputs are
   * matched by position (an If's to its node's outputs), so they need no renaming Identity.
   */
  outputValue(value: string, type: DTypeId, shape: Dim[]): void {
    // An output's name is unique: a value returned twice goes out a second time through an Identity.
    const name = this.outputs.some((o) => o.name === value)
      ? this.node("Identity", [value])
      : value;
    this.outputs.push(valueInfo(name, type, shape));
  }

  /** Adds a node and returns the name of its (first) output. */
  node(
    op: string,
    inputs: string[],
    attrs: Record<string, AttrValue> = {},
    outName?: string,
    domain = "",
  ): string {
    return this.nodeN(op, inputs, 1, attrs, outName ? [outName] : undefined, domain)[0];
  }

  /**
   * Adds a node with `nOut` outputs, named by `outNames` where given (null: a fresh name; "": an
   * optional output left out).
   */
  nodeN(
    op: string,
    inputs: string[],
    nOut: number,
    attrs: Record<string, AttrValue> = {},
    outNames?: Array<string | null>,
    domain = "",
  ): string[] {
    const outs = Array.from(
      { length: nOut },
      (_, i) => outNames?.[i] ?? this.fresh(op.toLowerCase()),
    );
    this.nodes.push(
      onnx.NodeProto.create({
        opType: op,
        domain,
        input: inputs,
        output: outs,
        name: this.fresh(`n_${op}`),
        attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
      }),
    );
    return outs;
  }

  /** An int64 constant (cached by value). */
  ints(values: number[], dims: number[] = [values.length]): string {
    const key = `i64:${dims.join("x")}:${values.join(",")}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh("c_i64");
    this.initializers.push(
      onnx.TensorProto.create({ name, dataType: DType.int64, dims, int64Data: values }),
    );
    this.constCache.set(key, name);
    return name;
  }

  /** A scalar int64 constant. */
  int(value: number): string {
    return this.ints([value], []);
  }

  /** A float constant held inline (small tensors). */
  floats(values: ArrayLike<number>, dims: number[] = [values.length]): string {
    const arr = Float32Array.from(values as ArrayLike<number>);
    const key = `f32:${dims.join("x")}:${Array.from(arr).join(",")}`;
    if (arr.length <= 16) {
      const hit = this.constCache.get(key);
      if (hit) return hit;
    }
    const name = this.fresh("c_f32");
    this.initializers.push(
      onnx.TensorProto.create({ name, dataType: DType.float, dims, rawData: bytesOf(arr) }),
    );
    if (arr.length <= 16) this.constCache.set(key, name);
    return name;
  }

  float(value: number): string {
    return this.floats([value], []);
  }

  /** A scalar f64 constant (cached by value). */
  double(value: number): string {
    const key = `f64:${value}`;
    const hit = this.constCache.get(key);
    if (hit) return hit;
    const name = this.fresh("c_f64");
    this.initializers.push(
      onnx.TensorProto.create({ name, dataType: DType.double, dims: [], doubleData: [value] }),
    );
    this.constCache.set(key, name);
    return name;
  }

  /**
   * A float weight stored in the external data file. `data` is called once, when the file is written,
   * so only one large tensor is in memory at a time.
   */
  weight(name: string, dims: number[], data: () => Float32Array): string {
    return this.typedWeight(name, dims, DType.float, () => bytesOf(data()));
  }

  /** A weight of another element type (uint8 packed codes, say), stored in the external data file. */
  typedWeight(name: string, dims: number[], type: DTypeId, data: () => Uint8Array): string {
    if (this.root) return this.root.typedWeight(name, dims, type, data);
    const known = this.weights.get(name);
    if (known) {
      if (known.type !== type || known.dims.join("x") !== dims.join("x"))
        throw new Error(`weight ${name}: asked for as ${dims.join("x")} of another type or shape`);
      return name;
    }
    this.weights.set(name, { dims, type });
    const byteLength = dims.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[type];
    const pad = (EXTERNAL_ALIGN - (this.externalBytes % EXTERNAL_ALIGN)) % EXTERNAL_ALIGN;
    if (pad) {
      this.chunks.push({ name: `${name}#pad`, byteLength: pad, bytes: () => new Uint8Array(pad) });
      this.externalBytes += pad;
    }
    this.initializers.push(
      onnx.TensorProto.create({
        name,
        dataType: type,
        dims,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: "location", value: this.externalFile },
          { key: "offset", value: String(this.externalBytes) },
          { key: "length", value: String(byteLength) },
        ],
      }),
    );
    this.chunks.push({
      name,
      byteLength,
      bytes: () => {
        const a = data();
        if (a.byteLength !== byteLength)
          throw new Error(`weight ${name}: ${a.byteLength} bytes, ${byteLength} declared`);
        return a;
      },
    });
    this.externalBytes += byteLength;
    return name;
  }

  /** The encoded model and the external data chunks, in file order. */
  build(opts: { opset: number; producer: string; msOpset?: number }): {
    model: Uint8Array;
    external: ExternalChunk[];
  } {
    const opsetImport = [{ domain: "", version: opts.opset }];
    if (opts.msOpset) opsetImport.push({ domain: "com.microsoft", version: opts.msOpset });
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: opts.producer,
      opsetImport,
      graph: onnx.GraphProto.create({
        name: "main",
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      }),
    });
    return { model: onnx.ModelProto.encode(model).finish(), external: this.chunks };
  }
}

function bytesOf(a: Float32Array | BigInt64Array | Int32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function valueInfo(name: string, type: DTypeId, shape: Dim[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: type,
        shape: {
          dim: shape.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })),
        },
      },
    },
  });
}

function attribute(name: string, v: AttrValue) {
  const A = onnx.AttributeProto.AttributeType;
  if (typeof v === "string")
    return onnx.AttributeProto.create({ name, type: A.STRING, s: new TextEncoder().encode(v) });
  if (typeof v === "number") return onnx.AttributeProto.create({ name, type: A.INT, i: v });
  if (Array.isArray(v)) return onnx.AttributeProto.create({ name, type: A.INTS, ints: v });
  if ("float" in v) return onnx.AttributeProto.create({ name, type: A.FLOAT, f: v.float });
  if ("graph" in v) return onnx.AttributeProto.create({ name, type: A.GRAPH, g: v.graph });
  const dataType = v.tensor instanceof Float32Array ? DType.float : DType.int64;
  return onnx.AttributeProto.create({
    name,
    type: A.TENSOR,
    t: onnx.TensorProto.create({
      dataType,
      dims: v.dims,
      rawData: new Uint8Array(v.tensor.buffer, v.tensor.byteOffset, v.tensor.byteLength),
    }),
  });
}
