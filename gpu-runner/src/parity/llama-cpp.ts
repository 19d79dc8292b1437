/**
 * llama.cpp (through node-llama-cpp, a devDependency) as a reference runtime: greedy tokens and
 * next-token distributions from the same GGUF and the same prompt token ids, and the CPU path its
 * kernels take on this machine.
 *
 * Which path matters: llama.cpp picks its matrix kernels by what the CPU offers, and they sum in
 * different orders. The `ggml` numerics reproduce one of them bit for bit (AMX, see
 * `runtime/ggml-ops.ts`); on the others llama.cpp's results differ from it, and from the exact result,
 * by amounts that `npm run parity` measures.
 */
import { availableParallelism } from "node:os";
import { cpuPathOf, type CpuPath } from "../runtime/cpu-path";

export interface LlamaCppOptions {
  /** llama.cpp's flash-attention kernels (f16 accumulation in a different order) or its plain path. */
  flashAttention: boolean;
  /** CPU threads; default every core (node-llama-cpp's own default oversubscribes a 2-core machine). */
  threads?: number;
  contextSize?: number;
}

type NodeLlamaCpp = typeof import("node-llama-cpp");
type Llama = Awaited<ReturnType<NodeLlamaCpp["getLlama"]>>;
type LlamaModel = Awaited<ReturnType<Llama["loadModel"]>>;
type LlamaContext = Awaited<ReturnType<LlamaModel["createContext"]>>;
type LlamaSequence = ReturnType<LlamaContext["getSequence"]>;

/** One llama.cpp model and context, CPU only, with a single sequence. */
export class LlamaCpp {
  private constructor(
    private readonly llama: Llama,
    private readonly model: LlamaModel,
    private readonly context: LlamaContext,
    private readonly sequence: LlamaSequence,
    readonly threads: number,
    readonly flashAttention: boolean,
  ) {}

  static async open(path: string, opts: LlamaCppOptions): Promise<LlamaCpp> {
    const threads = opts.threads ?? availableParallelism();
    const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
    const llama = await getLlama({
      gpu: false,
      build: "never",
      skipDownload: true,
      logLevel: LlamaLogLevel.error,
      maxThreads: threads,
    });
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    const context = await model.createContext({
      contextSize: opts.contextSize ?? 1024,
      batchSize: 512,
      sequences: 1,
      threads,
      flashAttention: opts.flashAttention,
    });
    return new LlamaCpp(llama, model, context, context.getSequence(), threads, opts.flashAttention);
  }

  /** llama.cpp's own description of the CPU features it uses. */
  get systemInfo(): string {
    return this.llama.systemInfo;
  }

  get cpuPath(): CpuPath {
    return cpuPathOf(this.llama.systemInfo);
  }

  tokenize(text: string, special: boolean): number[] {
    return Array.from(this.model.tokenize(text, special), Number);
  }

  /** `count` greedy tokens after `ids` (temperature 0, no penalties, end-of-generation tokens included). */
  async greedy(ids: readonly number[], count: number): Promise<number[]> {
    await this.sequence.clearHistory();
    const out: number[] = [];
    for await (const t of this.sequence.evaluate(ids as never, {
      temperature: 0,
      yieldEogToken: true,
    })) {
      out.push(Number(t));
      if (out.length >= count) break;
    }
    return out;
  }

  /** The next-token distribution after `ids` (llama.cpp's f32 softmax of its logits), as [V] probabilities. */
  async nextToken(ids: readonly number[], vocabSize: number): Promise<Float64Array> {
    await this.sequence.clearHistory();
    const p = new Float64Array(vocabSize);
    for await (const out of this.sequence.evaluateWithMetadata(
      ids as never,
      { probabilities: true },
      { temperature: 0 },
    )) {
      for (const [id, prob] of out.probabilities) p[Number(id)] = prob;
      break;
    }
    return p;
  }

  async dispose(): Promise<void> {
    await this.context.dispose();
    await this.model.dispose();
    await this.llama.dispose();
  }
}
