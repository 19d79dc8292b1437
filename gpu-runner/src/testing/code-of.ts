/** "ok" when `p` resolves, else the `code` of what it rejects with (or its text): for asserting error codes. */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}
