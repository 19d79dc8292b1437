/**
 * The console's page script (console/static/index.html): credentials kept in sessionStorage, a
 * conversation file appended in batches, a rebuild signed in the browser (Web Crypto, through the
 * client's triggerRebuild) and watched to the end, the active version's episodes and the version
 * history, and questions answered as they stream. Everything goes through @epicache/client against
 * the edge that serves this page.
 */
import {
  EpicacheApiError,
  EpicacheClient,
  EpicacheRebuildError,
  type Conversation,
  type Message,
  type QueryRouting,
  type RebuildState,
  type VersionDetail,
} from "@epicache/client";
import {
  batchesOf,
  conversationIdOf,
  formatBytes,
  formatSeconds,
  isConversationId,
  parseConversation,
  type ParsedConversation,
} from "./conversation-file";

// ---- the page ----

function el<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) throw new Error(`the page has no #${id}`);
  return found as T;
}

const ui = {
  error: el("error"),
  keyForm: el<HTMLFormElement>("key-form"),
  apiKey: el<HTMLInputElement>("api-key"),
  tenantId: el<HTMLInputElement>("tenant-id"),
  webhookSecret: el<HTMLInputElement>("webhook-secret"),
  forget: el<HTMLButtonElement>("forget"),
  keyStatus: el("key-status"),
  tenantForm: el<HTMLFormElement>("tenant-form"),
  adminToken: el<HTMLInputElement>("admin-token"),
  tenantName: el<HTMLInputElement>("tenant-name"),
  tenantCreated: el("tenant-created"),
  conversationForm: el<HTMLFormElement>("conversation-form"),
  conversationId: el<HTMLInputElement>("conversation-id"),
  file: el<HTMLInputElement>("file"),
  paste: el<HTMLTextAreaElement>("paste"),
  sample: el<HTMLSelectElement>("sample"),
  sampleLabel: el("sample-label"),
  append: el<HTMLButtonElement>("append"),
  refresh: el<HTMLButtonElement>("refresh"),
  parseStatus: el("parse-status"),
  appendProgress: el<HTMLProgressElement>("append-progress"),
  appendStatus: el("append-status"),
  conversationStatus: el("conversation-status"),
  rebuild: el<HTMLButtonElement>("rebuild"),
  rebuildState: el("rebuild-state"),
  rebuildVersion: el("rebuild-version"),
  rebuildStatusText: el("rebuild-status-text"),
  rebuildStage: el("rebuild-stage"),
  rebuildEta: el("rebuild-eta"),
  rebuildProgress: el<HTMLProgressElement>("rebuild-progress"),
  rebuildPercent: el("rebuild-percent"),
  rebuildStatus: el("rebuild-status"),
  activeVersion: el("active-version"),
  episodes: el<HTMLTableElement>("episodes"),
  episodesCaption: el("episodes-caption"),
  versions: el<HTMLTableElement>("versions"),
  askForm: el<HTMLFormElement>("ask-form"),
  question: el<HTMLInputElement>("question"),
  maxTokens: el<HTMLInputElement>("max-tokens"),
  ask: el<HTMLButtonElement>("ask"),
  answerMeta: el("answer-meta"),
  answerRouting: el("answer-routing"),
  answer: el("answer"),
  answerStats: el("answer-stats"),
};

// ---- credentials, kept for this tab only ----

const KEYS = {
  apiKey: "epicache.apiKey",
  tenantId: "epicache.tenantId",
  webhookSecret: "epicache.webhookSecret",
  conversationId: "epicache.conversationId",
} as const;

function load(key: string): string {
  try {
    return sessionStorage.getItem(key) ?? "";
  } catch {
    return "";
  }
}

function save(key: string, value: string): void {
  try {
    if (value === "") sessionStorage.removeItem(key);
    else sessionStorage.setItem(key, value);
  } catch {
    // storage refused (private mode, quota): the fields still hold the values for this page
  }
}

const masked = (secret: string) =>
  secret.length <= 10 ? "…" : `${secret.slice(0, 3)}…${secret.slice(-4)}`;

function showKeyStatus(): void {
  const key = ui.apiKey.value.trim();
  const hook = ui.tenantId.value.trim() !== "" && ui.webhookSecret.value.trim() !== "";
  ui.keyStatus.textContent =
    key === ""
      ? "No API key yet: enter one, or create a tenant below."
      : `Using API key ${masked(key)} for this tab${hook ? `, and tenant ${ui.tenantId.value.trim()}'s webhook secret for rebuilds` : "; rebuilds need the tenant id and webhook secret too"}.`;
}

function saveCredentials(): void {
  save(KEYS.apiKey, ui.apiKey.value.trim());
  save(KEYS.tenantId, ui.tenantId.value.trim());
  save(KEYS.webhookSecret, ui.webhookSecret.value.trim());
  showKeyStatus();
}

/** A client with the API key in the field (an error when there is none). */
function client(): EpicacheClient {
  const apiKey = ui.apiKey.value.trim();
  if (apiKey === "") throw new Error("Enter an API key first (section 1), or create a tenant.");
  return new EpicacheClient({ baseUrl: location.origin, apiKey });
}

function conversationId(): string {
  const id = ui.conversationId.value.trim();
  if (!isConversationId(id))
    throw new Error(
      `"${id}" is not a conversation id: use 1 to 64 letters, digits, '_', '-' or '.', starting with a letter or digit.`,
    );
  return id;
}

// ---- errors ----

function describe(e: unknown): string {
  if (e instanceof EpicacheApiError)
    return `${e.message} (${e.code}, HTTP ${e.status}${e.requestId ? `, request ${e.requestId}` : ""})`;
  if (e instanceof Error) return e.message;
  return String(e);
}

function showError(e: unknown): void {
  ui.error.textContent = describe(e);
  ui.error.hidden = false;
}

function clearError(): void {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

/** Runs an action of the page: clears the error, disables `button` meanwhile, shows what it threw. */
async function act(button: HTMLButtonElement | null, action: () => Promise<void>): Promise<void> {
  clearError();
  if (button !== null) button.disabled = true;
  try {
    await action();
  } catch (e) {
    showError(e);
  } finally {
    if (button !== null) button.disabled = false;
  }
}

const number = (n: number) => n.toLocaleString("en");

// ---- creating a tenant ----

async function createTenant(): Promise<void> {
  const admin = new EpicacheClient({
    baseUrl: location.origin,
    adminToken: ui.adminToken.value.trim(),
  });
  const { tenantId, apiKey, webhookSecret } = await admin.createTenant(ui.tenantName.value.trim());
  ui.apiKey.value = apiKey;
  ui.tenantId.value = tenantId;
  ui.webhookSecret.value = webhookSecret;
  saveCredentials();
  el("created-tenant-id").textContent = tenantId;
  el("created-api-key").textContent = apiKey;
  el("created-webhook-secret").textContent = webhookSecret;
  ui.tenantCreated.hidden = false;
  ui.tenantCreated.focus();
}

// ---- a conversation file ----

let parsed: ParsedConversation | undefined;
let source: { text: string; name?: string } | undefined;
/** The conversation id the page filled in from the file (replaced when another file or sample suggests another). */
let suggestedIdShown: string | undefined;

function parseSource(sampleId?: string): void {
  parsed = undefined;
  ui.append.disabled = true;
  if (source === undefined || source.text.trim() === "") {
    ui.parseStatus.textContent = "";
    return;
  }
  try {
    parsed = parseConversation(source.text, { sampleId });
  } catch (e) {
    ui.parseStatus.textContent = `Cannot read it: ${describe(e)}`;
    return;
  }
  const { format, messages, sessions, speakers, samples, suggestedId } = parsed;
  ui.sample.hidden = ui.sampleLabel.hidden = samples.length < 2;
  if (samples.length >= 2 && sampleId === undefined) {
    ui.sample.replaceChildren(...samples.map((s) => new Option(s, s)));
  }
  const fromName =
    source.name === undefined
      ? undefined
      : conversationIdOf(source.name.replace(/\.(jsonl|ndjson|json|txt)$/i, ""));
  const suggestion = suggestedId ?? fromName;
  const current = ui.conversationId.value.trim();
  if (suggestion !== undefined && (current === "" || current === suggestedIdShown)) {
    ui.conversationId.value = suggestion;
    suggestedIdShown = suggestion;
    save(KEYS.conversationId, suggestion);
  }
  const label = { locomo: "LoCoMo", realtalk: "REALTALK", jsonl: "JSONL" }[format];
  ui.parseStatus.textContent = `${number(messages.length)} messages in ${sessions} session${sessions === 1 ? "" : "s"} from ${speakers.join(", ")} (${label}${samples.length >= 2 ? `, sample ${ui.sample.value}` : ""}), ready to append.`;
  ui.append.disabled = messages.length === 0;
}

/** Appends `batch`; a 413 for a batch of several messages (the edge's limits are lower than assumed) is retried in halves. */
async function appendBatch(
  c: EpicacheClient,
  id: string,
  batch: Message[],
  totals: { appended: number; duplicates: number; requests: number; messageCount: number },
  onSent: (n: number) => void,
): Promise<void> {
  try {
    const res = await c.appendMessages(id, batch);
    totals.appended += res.appended;
    totals.duplicates += res.duplicates;
    totals.messageCount = res.messageCount;
    totals.requests += 1;
    onSent(batch.length);
  } catch (e) {
    if (!(e instanceof EpicacheApiError && e.code === "payload_too_large" && batch.length > 1))
      throw e;
    const half = Math.ceil(batch.length / 2);
    await appendBatch(c, id, batch.slice(0, half), totals, onSent);
    await appendBatch(c, id, batch.slice(half), totals, onSent);
  }
}

async function appendConversation(): Promise<void> {
  if (parsed === undefined) throw new Error("Choose or paste a conversation file first.");
  const c = client();
  const id = conversationId();
  save(KEYS.conversationId, id);
  const messages = parsed.messages;
  const batches = batchesOf(messages);
  const totals = { appended: 0, duplicates: 0, requests: 0, messageCount: 0 };
  let sent = 0;
  ui.appendProgress.hidden = false;
  ui.appendProgress.max = messages.length;
  ui.appendProgress.value = 0;
  ui.appendStatus.textContent = `Appending ${number(messages.length)} messages to ${id}…`;
  for (const batch of batches) {
    await appendBatch(c, id, batch, totals, (n) => {
      sent += n;
      ui.appendProgress.value = sent;
    });
  }
  ui.appendStatus.textContent = `Appended ${number(totals.appended)} new messages to ${id} (${number(totals.duplicates)} already there) in ${totals.requests} request${totals.requests === 1 ? "" : "s"}; it holds ${number(totals.messageCount)}.`;
  await refreshConversation();
}

// ---- the conversation, its rebuild, its versions ----

let watching: AbortController | undefined;
/** The episode of the last answer, and its version. */
let chosen: { episode: number; version: string } | undefined;
/** The version whose episodes the table shows. */
let shown: string | undefined;

async function refreshConversation(): Promise<void> {
  const c = client();
  const id = conversationId();
  let conversation: Conversation;
  try {
    conversation = await c.getConversation(id);
  } catch (e) {
    if (e instanceof EpicacheApiError && e.code === "not_found") {
      ui.conversationStatus.textContent = `No conversation ${id} yet: append messages to start it.`;
      return;
    }
    throw e;
  }
  showConversation(conversation);
  if (conversation.rebuild !== null) showRebuild(conversation.rebuild);
  if (conversation.activeVersion !== null)
    await showVersion(conversation.activeVersion, conversation.activeVersion);
  await showHistory();
  const inFlight =
    conversation.rebuild !== null &&
    (conversation.rebuild.status === "queued" || conversation.rebuild.status === "submitted");
  if ((inFlight || conversation.followUp) && watching === undefined)
    void act(null, () => watchRebuild(undefined));
}

function showConversation(c: Conversation): void {
  const active = c.active;
  ui.conversationStatus.textContent = `${c.id}: ${number(c.messageCount)} messages (${formatBytes(c.transcriptBytes)}); ${c.activeVersion === null ? "no active version yet" : `active version ${c.activeVersion}${active?.messageCount != null ? ` built from ${number(active.messageCount)} of them` : ""}`}.`;
}

const STATUS_WORDS: Record<RebuildState["status"], string> = {
  queued: "queued",
  submitted: "running",
  succeeded: "succeeded",
  failed: "failed",
};

/** The last status and stage announced (the live region speaks only when one changes). */
let announced = "";

function showRebuild(r: RebuildState): void {
  ui.rebuildState.hidden = false;
  ui.rebuildVersion.textContent = r.version;
  ui.rebuildStatusText.textContent = STATUS_WORDS[r.status];
  ui.rebuildStage.textContent = r.stage ?? "—";
  ui.rebuildEta.textContent =
    r.status === "succeeded" ? "done" : r.etaSeconds === null ? "—" : formatSeconds(r.etaSeconds);
  const percent = r.status === "succeeded" ? 100 : Math.max(0, Math.min(100, r.progress ?? 0));
  ui.rebuildProgress.value = percent;
  ui.rebuildPercent.textContent = `${Math.round(percent)} %`;
  ui.rebuildState.dataset.status = r.status;
  const words =
    r.status === "failed"
      ? `Rebuild ${r.version} failed: ${r.error?.message ?? "no reason given"} (${r.error?.code ?? "internal"}).`
      : r.status === "succeeded"
        ? `Rebuild ${r.version} succeeded (${r.kind ?? "full"}).`
        : `Rebuild ${r.version} ${STATUS_WORDS[r.status]}${r.stage ? `: ${r.stage}` : ""}.`;
  if (words !== announced) {
    announced = words;
    ui.rebuildStatus.textContent = words;
  }
}

/** Polls the conversation until the rebuild (`version`, or whatever is in flight) settles, showing its progress. */
async function watchRebuild(version: string | undefined): Promise<void> {
  watching?.abort();
  const controller = new AbortController();
  watching = controller;
  const id = conversationId();
  try {
    const done = await client().waitForRebuild(id, {
      version,
      intervalMs: 1000,
      timeoutMs: 6 * 60 * 60_000,
      signal: controller.signal,
      onProgress: (r, c) => {
        showRebuild(r);
        showConversation(c);
      },
    });
    if (done.rebuild !== null) showRebuild(done.rebuild);
    showConversation(done);
    if (done.activeVersion !== null) await showVersion(done.activeVersion, done.activeVersion);
    await showHistory();
  } catch (e) {
    if (controller.signal.aborted) return;
    if (e instanceof EpicacheRebuildError && e.conversation.rebuild !== null)
      showRebuild(e.conversation.rebuild);
    await showHistory().catch(() => undefined);
    throw e;
  } finally {
    if (watching === controller) watching = undefined;
  }
}

async function triggerRebuild(): Promise<void> {
  const tenantId = ui.tenantId.value.trim();
  const secret = ui.webhookSecret.value.trim();
  if (tenantId === "" || secret === "")
    throw new Error(
      "A rebuild is a signed webhook: enter the tenant id and its webhook secret (section 1).",
    );
  const id = conversationId();
  const hook = await client().triggerRebuild(tenantId, secret, id);
  if (hook.httpStatus === 200 && !hook.duplicate) {
    ui.rebuildStatus.textContent =
      announced = `Nothing new to build: ${hook.version} holds every message.`;
    return;
  }
  ui.rebuildStatus.textContent = announced = hook.followUp
    ? `Rebuild ${hook.version} is already running; one more, with the newest messages, follows it.`
    : `Rebuild ${hook.version} ${hook.status}.`;
  await watchRebuild(hook.followUp ? undefined : hook.version);
}

/** Shows the episodes of `version` (the active one is `active`). */
async function showVersion(version: string, active: string | null): Promise<void> {
  const detail = await client().getVersion(conversationId(), version);
  shown = version;
  renderEpisodes(detail, version === active);
}

function cell(text: string, className?: string): HTMLTableCellElement {
  const td = document.createElement("td");
  td.textContent = text;
  if (className !== undefined) td.className = className;
  return td;
}

const SVG = "http://www.w3.org/2000/svg";

/** A cell with a bar per layer (height ∝ its entries), its total beneath; a dash when the version does not say. */
function layerChart(layerEntries: number[] | null, entries: number | null): HTMLTableCellElement {
  const td = document.createElement("td");
  if (layerEntries === null || layerEntries.length === 0) {
    td.textContent = entries === null ? "—" : `${number(entries)} entries`;
    return td;
  }
  const max = Math.max(1, ...layerEntries);
  const bar = 4,
    height = 32;
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "layers");
  svg.setAttribute("width", String(layerEntries.length * bar));
  svg.setAttribute("height", String(height));
  svg.setAttribute("role", "img");
  const low = Math.min(...layerEntries);
  svg.setAttribute(
    "aria-label",
    `${layerEntries.length} layers, ${number(low)} to ${number(max)} entries each`,
  );
  layerEntries.forEach((n, l) => {
    const h = Math.max(1, Math.round((n / max) * height));
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", String(l * bar));
    rect.setAttribute("y", String(height - h));
    rect.setAttribute("width", String(bar - 1));
    rect.setAttribute("height", String(h));
    const title = document.createElementNS(SVG, "title");
    title.textContent = `layer ${l}: ${number(n)} entries`;
    rect.append(title);
    svg.append(rect);
  });
  const total = document.createElement("span");
  total.className = "hint";
  total.textContent = `${number(entries ?? layerEntries.reduce((a, b) => a + b, 0))} entries`;
  td.append(svg, total);
  return td;
}

/** A cell with the representative text folded away (its first words as the summary). */
function representativeCell(text: string | null): HTMLTableCellElement {
  const td = document.createElement("td");
  if (text === null || text === "") {
    td.textContent = "—";
    return td;
  }
  const details = document.createElement("details");
  const summary = document.createElement("summary");
  const words = text.split(/\s+/).slice(0, 8).join(" ");
  summary.textContent = `${words}…`;
  const p = document.createElement("p");
  p.textContent = text;
  details.append(summary, p);
  td.append(details);
  return td;
}

function renderEpisodes(v: VersionDetail, active: boolean): void {
  const body = ui.episodes.tBodies[0];
  const rows = (v.episodes ?? []).map((e) => {
    const tr = document.createElement("tr");
    tr.dataset.episode = String(e.id);
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = `Episode ${e.id}`;
    tr.append(
      th,
      cell(e.windows === null ? "—" : number(e.windows), "num"),
      cell(e.topTerms === null ? "—" : e.topTerms.join(", ") || "—"),
      cell(e.cacheBytes === null ? "—" : formatBytes(e.cacheBytes), "num"),
      layerChart(e.layerEntries, e.entries),
      representativeCell(e.representative),
    );
    return tr;
  });
  body.replaceChildren(...rows);
  ui.episodes.hidden = rows.length === 0;
  ui.episodesCaption.textContent = `Episodes of ${v.version}${active ? " (active)" : ""}`;
  const what = [
    v.kind === null
      ? null
      : `${v.kind === "incremental" ? `an update of ${v.baseVersion ?? "its base"}` : "a full build"}`,
    v.messageCount === null ? null : `${number(v.messageCount)} messages`,
    v.contextTokens === null ? null : `${number(v.contextTokens)} context tokens`,
    v.routing === null ? null : `questions routed by ${v.routing}`,
  ].filter((x) => x !== null);
  ui.activeVersion.textContent = `${active ? "Active version" : "Version"} ${v.version}: ${v.episodes === null ? `${v.status}, no episodes yet` : `${v.episodes.length} episodes`}${what.length > 0 ? `; ${what.join(", ")}` : ""}.`;
  markChosen();
}

/** Marks the row of the last answer's episode (when the table shows its version). */
function markChosen(): void {
  for (const tr of Array.from(ui.episodes.tBodies[0].rows)) {
    const isChosen =
      chosen !== undefined &&
      chosen.version === shown &&
      tr.dataset.episode === String(chosen.episode);
    tr.classList.toggle("chosen", isChosen);
    tr.querySelector(".badge")?.remove();
    if (isChosen) {
      tr.setAttribute("aria-current", "true");
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "last answer";
      tr.cells[0].append(badge);
    } else tr.removeAttribute("aria-current");
  }
}

async function showHistory(): Promise<void> {
  const { versions, more } = await client().listVersions(conversationId());
  const rows = versions.map((v) => {
    const tr = document.createElement("tr");
    const code = document.createElement("code");
    code.textContent = v.version;
    const first = document.createElement("td");
    first.append(code);
    const actions = document.createElement("td");
    if (v.status === "succeeded") {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "Episodes";
      b.setAttribute("aria-label", `Show the episodes of ${v.version}`);
      b.addEventListener(
        "click",
        () => void act(b, () => showVersion(v.version, v.active ? v.version : null)),
      );
      actions.append(b);
    }
    const note =
      v.error !== null
        ? `${v.error.code}: ${v.error.message}`
        : v.status === "succeeded" || v.status === "failed"
          ? (v.reason ?? "")
          : `${v.stage ?? ""} ${v.progress === null ? "" : `${Math.round(v.progress)} %`}`.trim();
    tr.append(
      first,
      cell(`${v.status}${v.active ? " (active)" : ""}`),
      cell(v.kind ?? "—"),
      cell(v.messageCount === null ? "—" : number(v.messageCount), "num"),
      cell(v.episodeCount === null ? "—" : String(v.episodeCount), "num"),
      cell(new Date(v.createdAt).toLocaleString("en")),
      cell(note),
      actions,
    );
    return tr;
  });
  if (more) {
    const tr = document.createElement("tr");
    const td = cell("Older versions are not listed.");
    td.colSpan = 8;
    tr.append(td);
    rows.push(tr);
  }
  ui.versions.tBodies[0].replaceChildren(...rows);
}

// ---- asking ----

/** What each rule's score is, in words. */
const SCORED_BY: Record<QueryRouting["rule"], string> = {
  lexical: "the BM25 score of its best-matching window",
  window: "the cosine of its window nearest the question",
  vote: "its votes among the windows nearest the question",
  centroid: "the cosine of the question with its centroid",
};

/** "Routed by lexical (…): episode 0 3.21 (chosen), episode 1 0.87, …". */
function describeRouting(routing: QueryRouting, chosenEpisode: number): string {
  const scores = routing.scores.map(
    ({ episode, score }) =>
      `episode ${episode} ${score === null ? "—" : score.toFixed(routing.rule === "vote" ? 0 : 3)}${episode === chosenEpisode ? " (chosen)" : ""}`,
  );
  return `Routed by ${routing.rule} (per episode, ${SCORED_BY[routing.rule]}): ${scores.join(", ")}.`;
}

async function ask(): Promise<void> {
  const question = ui.question.value.trim();
  if (question === "") throw new Error("Type a question first.");
  const maxTokens = Number(ui.maxTokens.value) || undefined;
  const id = conversationId();
  ui.answer.textContent = "";
  ui.answerStats.textContent = "";
  ui.answerRouting.textContent = "";
  ui.answerMeta.textContent = "Routing the question to an episode…";
  ui.answer.setAttribute("aria-busy", "true");
  ui.answer.dataset.state = "streaming";
  let tokens = 0;
  try {
    for await (const event of client().askStream(id, { question, maxTokens })) {
      if (event.event === "meta") {
        chosen = { episode: event.data.episode, version: event.data.version };
        ui.answerRouting.textContent = describeRouting(event.data.routing, event.data.episode);
        ui.answerMeta.textContent = `Answering from episode ${event.data.episode} of version ${event.data.version}…`;
        if (shown !== event.data.version)
          void showVersion(event.data.version, null).catch(showError);
        else markChosen();
      } else if (event.event === "token") {
        tokens += 1;
        ui.answer.textContent += event.data.text;
        ui.answer.dataset.tokens = String(tokens);
      } else {
        const d = event.data;
        ui.answer.textContent = d.answer;
        ui.answerMeta.textContent = `Answered from episode ${d.episode} of version ${d.version}.`;
        ui.answerStats.textContent = `${d.tokens} tokens in ${tokens} streamed pieces; the runner loaded the episode's cache in ${Math.round(d.timings.loadMs)} ms and generated in ${Math.round(d.timings.generateMs)} ms.`;
      }
    }
    ui.answer.dataset.state = "done";
  } catch (e) {
    ui.answer.dataset.state = "failed";
    ui.answerMeta.textContent = "No answer.";
    throw e;
  } finally {
    ui.answer.setAttribute("aria-busy", "false");
  }
}

// ---- wiring ----

ui.apiKey.value = load(KEYS.apiKey);
ui.tenantId.value = load(KEYS.tenantId);
ui.webhookSecret.value = load(KEYS.webhookSecret);
ui.conversationId.value = load(KEYS.conversationId);
showKeyStatus();

ui.keyForm.addEventListener("submit", (e) => {
  e.preventDefault();
  clearError();
  saveCredentials();
  if (ui.apiKey.value.trim() !== "" && ui.conversationId.value.trim() !== "")
    void act(ui.refresh, refreshConversation);
});
ui.forget.addEventListener("click", () => {
  for (const input of [ui.apiKey, ui.tenantId, ui.webhookSecret]) input.value = "";
  saveCredentials();
  ui.tenantCreated.hidden = true;
  ui.keyStatus.textContent = "Forgotten: this tab no longer holds an API key or webhook secret.";
});
ui.tenantForm.addEventListener("submit", (e) => {
  e.preventDefault();
  void act(ui.tenantForm.querySelector("button"), createTenant);
});
ui.conversationId.addEventListener("change", () =>
  save(KEYS.conversationId, ui.conversationId.value.trim()),
);
ui.file.addEventListener("change", () => {
  const file = ui.file.files?.[0];
  if (file === undefined) return;
  void act(null, async () => {
    source = { text: await file.text(), name: file.name };
    ui.paste.value = "";
    parseSource();
  });
});
let pasteTimer: ReturnType<typeof setTimeout> | undefined;
ui.paste.addEventListener("input", () => {
  clearTimeout(pasteTimer);
  pasteTimer = setTimeout(() => {
    source = { text: ui.paste.value };
    ui.file.value = "";
    parseSource();
  }, 250);
});
ui.sample.addEventListener("change", () => parseSource(ui.sample.value));
ui.conversationForm.addEventListener("submit", (e) => {
  e.preventDefault();
  void act(ui.append, appendConversation);
});
ui.refresh.addEventListener("click", () => void act(ui.refresh, refreshConversation));
ui.rebuild.addEventListener("click", () => void act(ui.rebuild, triggerRebuild));
ui.askForm.addEventListener("submit", (e) => {
  e.preventDefault();
  void act(ui.ask, ask);
});

if (ui.apiKey.value.trim() !== "" && isConversationId(ui.conversationId.value.trim()))
  void act(null, refreshConversation);
