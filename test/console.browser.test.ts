/**
 * The console in a real browser: Debian's Chromium (headless, driven by playwright-core, which
 * downloads no browser) against the whole stack as `npm start` runs it (the real runner and model).
 * As a person would: create a tenant with the admin token, load test/fixtures/conversation-excerpt.jsonl
 * through the file input, append it, rebuild, wait for the page's progress display to say the
 * rebuild succeeded, see the episodes, ask a question and watch the answer stream in.
 *
 * Without Chromium (`apt-get install -y chromium`; EPICACHE_CHROMIUM names another binary) the suite
 * skips, saying so, unless EPICACHE_REQUIRE_BROWSER=1 (CI), where that is an error. Screenshots of
 * each step go to a temporary folder, or to EPICACHE_SCREENSHOTS_DIR (`docs/console` refreshes the
 * README's). A second suite, without the model (the edge and a runner that answers at once), reads
 * LoCoMo JSON in the page, a broken file, and forgets the credentials.
 */
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../gpu-runner/src/paths";
import { startEdgeDev, type RunningEdge } from "../tools/stack";
import { freePort, NEEDS_PULL, pulledModel } from "../gpu-runner/src/testing";
import { startInstantRunner, type InstantRunner } from "../tools/instant-runner";
import { startStackProcess, type StackProcess } from "./stack-process";

const CHROMIUM = process.env.EPICACHE_CHROMIUM || "/usr/bin/chromium";
const NEEDS_CHROMIUM = `(skips without Chromium at ${CHROMIUM}: \`apt-get install -y chromium\`)`;

/** Whether Chromium is there; under EPICACHE_REQUIRE_BROWSER=1 its absence is an error. */
function chromiumThere(): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.EPICACHE_REQUIRE_BROWSER === "1") {
    throw new Error(
      `Chromium is required (EPICACHE_REQUIRE_BROWSER=1) but ${CHROMIUM} does not exist: run \`apt-get install -y chromium\` (or set EPICACHE_CHROMIUM)`,
    );
  }
  return false;
}

const browserThere = chromiumThere();
if (!browserThere)
  console.warn(
    `test/console.browser.test.ts: skipped, no Chromium at ${CHROMIUM} (apt-get install -y chromium, or EPICACHE_CHROMIUM=/path)`,
  );
const ready = pulledModel("chat") !== undefined && pulledModel("embedder") !== undefined;
const ADMIN = `adm_console_${randomUUID().replace(/-/g, "")}`;
const FIXTURE = join(REPO_ROOT, "test", "fixtures", "conversation-excerpt.jsonl");
/** Its messages' texts: what an episode's representative text is made of. */
const fixtureTexts = readFileSync(FIXTURE, "utf8")
  .trim()
  .split("\n")
  .map((line) => (JSON.parse(line) as { text: string }).text);
const QUESTION = "What class did Maya sign up for?";
const SHOTS = process.env.EPICACHE_SCREENSHOTS_DIR
  ? resolve(REPO_ROOT, process.env.EPICACHE_SCREENSHOTS_DIR)
  : mkdtempSync(join(tmpdir(), "epicache-console-shots-"));

describe.skipIf(!ready || !browserThere)(
  `the console in Chromium against npm start's stack ${NEEDS_PULL} ${NEEDS_CHROMIUM}`,
  () => {
    let stack: StackProcess | undefined;
    let browser: Browser | undefined;
    let page: Page | undefined;
    const pageLog: string[] = [];

    beforeAll(async () => {
      stack = await startStackProcess("console", ADMIN);
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
      page = await browser.newPage({
        viewport: { width: 1000, height: 800 },
        deviceScaleFactor: 1,
      });
      page.on("console", (m) => pageLog.push(`console.${m.type()}: ${m.text()}`));
      page.on("pageerror", (e) => pageLog.push(`page error: ${e.message}`));
      mkdirSync(SHOTS, { recursive: true });
      console.log(`screenshots: ${SHOTS}`);
    }, 360_000);

    afterAll(async () => {
      await browser?.close();
      await stack?.stop();
    }, 60_000);

    /** A screenshot of the page's sections `from` to `to` (counted from 1), with a margin, as <name>.png. */
    const shot = async (name: string, from: number, to = from) => {
      const p = page!;
      const boxes = await Promise.all(
        [from, to].map((n) =>
          p
            .locator("main > section")
            .nth(n - 1)
            .evaluate((e) => {
              const r = e.getBoundingClientRect();
              return {
                top: r.top + scrollY,
                bottom: r.bottom + scrollY,
                left: r.left + scrollX,
                right: r.right + scrollX,
              };
            }),
        ),
      );
      const margin = 12;
      const x = Math.max(0, boxes[0].left - margin);
      const y = Math.max(0, boxes[0].top - margin);
      await p.screenshot({
        path: join(SHOTS, `${name}.png`),
        fullPage: true,
        clip: { x, y, width: boxes[0].right + margin - x, height: boxes[1].bottom + margin - y },
      });
    };

    it("creates a tenant, appends a JSONL file, rebuilds it watching the progress, lists the episodes, and streams an answer", async () => {
      const p = page!;
      try {
        await p.goto(`${stack!.edge}/`);
        await expect(p.title()).resolves.toBe("Epicache console");
        await p.getByRole("heading", { name: "Epicache console" }).waitFor();

        // 1. A tenant, with the admin token: its API key and webhook secret are shown once and kept.
        await p.getByText("Create a tenant (admin token)").click();
        await p.getByLabel("Admin token").fill(ADMIN);
        await p.getByLabel("Tenant name").fill("browser test");
        await p.getByRole("button", { name: "Create tenant" }).click();
        await p.getByRole("heading", { name: "Tenant created" }).waitFor();
        const apiKey = await p.locator("#created-api-key").textContent();
        expect(apiKey).toMatch(/^ek_/);
        expect(await p.locator("#created-webhook-secret").textContent()).toMatch(/^whsec_/);
        expect(await p.getByLabel("API key").inputValue()).toBe(apiKey);
        expect(await p.evaluate(() => sessionStorage.getItem("epicache.apiKey"))).toBe(apiKey);
        await expect(
          p.locator("#tenant-created").evaluate((e) => e === document.activeElement),
        ).resolves.toBe(true);
        await shot("01-tenant", 1);

        // 2. The conversation file, through the file input; then appended.
        await p.getByLabel("Conversation id").fill("maya-tom");
        await p.getByLabel(/^Conversation file/).setInputFiles(FIXTURE);
        await p
          .getByText("30 messages in 3 sessions from Maya, Tom (JSONL), ready to append.")
          .waitFor();
        await shot("02-file", 2);
        await p.getByRole("button", { name: "Append messages" }).click();
        await p
          .getByText(
            "Appended 30 new messages to maya-tom (0 already there) in 1 request; it holds 30.",
          )
          .waitFor();
        await p.getByText(/^maya-tom: 30 messages .*no active version yet/).waitFor();
        await shot("03-appended", 2);

        // 3. The rebuild, signed in the page; the page polls and shows status, stage, progress, ETA.
        await p.evaluate(() => {
          const seen: string[] = [];
          (window as unknown as { rebuildSeen: string[] }).rebuildSeen = seen;
          const state = document.getElementById("rebuild-state")!;
          new MutationObserver(() => {
            const now = `${state.dataset.status ?? ""} ${document.getElementById("rebuild-stage")?.textContent ?? ""} ${document.getElementById("rebuild-percent")?.textContent ?? ""}`;
            if (seen[seen.length - 1] !== now) seen.push(now);
          }).observe(state, {
            subtree: true,
            childList: true,
            characterData: true,
            attributes: true,
          });
        });
        await p.getByRole("button", { name: "Rebuild episodes" }).click();
        await p.locator("#rebuild-state[data-status=submitted]").waitFor({ timeout: 120_000 });
        await shot("04-rebuilding", 3);
        await p
          .locator("#rebuild-state[data-status=succeeded], #rebuild-state[data-status=failed]")
          .waitFor({ timeout: 900_000 });
        const seen = await p.evaluate(
          () => (window as unknown as { rebuildSeen: string[] }).rebuildSeen,
        );
        console.log(`rebuild as the page showed it: ${seen.join(" | ")}`);
        expect(
          await p.locator("#rebuild-state").getAttribute("data-status"),
          (await p.locator("#rebuild-status").textContent()) ?? "",
        ).toBe("succeeded");
        expect(await p.locator("#rebuild-percent").textContent()).toBe("100 %");
        expect(
          await p.locator("#rebuild-progress").evaluate((e) => (e as HTMLProgressElement).value),
        ).toBe(100);
        expect(seen.some((s) => s.startsWith("submitted "))).toBe(true);
        await p.getByText(/^Rebuild v\S+ succeeded \(full\)\.$/).waitFor();
        await shot("05-rebuilt", 3);

        // 4. The active version's episodes, and the version history.
        await p
          .getByText(/^Active version v\S+: \d+ episodes; a full build, 30 messages/)
          .waitFor();
        const rows = p.locator("#episodes tbody tr");
        const episodes = await rows.count();
        expect(episodes).toBeGreaterThan(0);
        // The runner's default routing is lexical: every episode has windows and top terms.
        for (let i = 0; i < episodes; i++) {
          const cells = await rows.nth(i).locator("td").allTextContents();
          expect(Number(cells[0]), `episode row ${i}: ${cells.join(" | ")}`).toBeGreaterThan(0);
          expect(cells[2]).toMatch(/[KM]iB$/);
          // Its cache's entries per layer as a bar chart (SmolLM2 has 30 layers), and its
          // representative text folded away: the file's own words, shown when unfolded.
          const chart = rows.nth(i).getByRole("img");
          expect(await chart.locator("rect").count()).toBe(30);
          await expect(chart.getAttribute("aria-label")).resolves.toMatch(
            /^30 layers, [\d,]+ to [\d,]+ entries each$/,
          );
          expect(cells[3]).toMatch(/[\d,]+ entries$/);
          const representative = rows.nth(i).locator("td details");
          await representative.locator("summary").click();
          const text = await representative.locator("p").innerText();
          expect(
            fixtureTexts.some((t) => text.includes(t)),
            `episode ${i}'s representative text: ${text.slice(0, 200)}`,
          ).toBe(true);
        }
        await p.getByText("Version history").click();
        await expect(p.locator("#versions tbody tr").first().textContent()).resolves.toMatch(
          /succeeded \(active\)\s*full\s*30/,
        );
        await shot("06-episodes", 4);

        // 5. A question: the answer streams into the live region, from the episode the page marks.
        await p.evaluate(() => {
          const log: { state: string; length: number }[] = [];
          (window as unknown as { answerLog: typeof log }).answerLog = log;
          const answer = document.getElementById("answer")!;
          new MutationObserver(() =>
            log.push({
              state: answer.dataset.state ?? "",
              length: answer.textContent?.length ?? 0,
            }),
          ).observe(answer, {
            subtree: true,
            childList: true,
            characterData: true,
            attributes: true,
          });
        });
        await p.getByLabel("Question").fill(QUESTION);
        await p.getByLabel("Max tokens").fill("24");
        await p.getByRole("button", { name: "Ask" }).click();
        await p
          .locator("#answer[data-state=done], #answer[data-state=failed]")
          .waitFor({ timeout: 300_000 });
        expect(
          await p.locator("#answer").getAttribute("data-state"),
          (await p.locator("#error").textContent()) ?? "",
        ).toBe("done");
        const answer = (await p.locator("#answer").textContent()) ?? "";
        expect(answer.trim().length).toBeGreaterThan(0);
        expect(await p.locator("#answer").getAttribute("aria-live")).toBe("polite");
        const log = await p.evaluate(
          () => (window as unknown as { answerLog: { state: string; length: number }[] }).answerLog,
        );
        // Text was on the page before the answer was done: it streamed.
        expect(
          log.some((l) => l.state === "streaming" && l.length > 0),
          JSON.stringify(log),
        ).toBe(true);
        const meta = (await p.locator("#answer-meta").textContent()) ?? "";
        const chosen = /^Answered from episode (\d+) of version (v\S+)\.$/.exec(meta);
        expect(chosen, meta).not.toBeNull();
        await expect(
          p.locator(`#episodes tbody tr[data-episode="${chosen![1]}"]`).getAttribute("class"),
        ).resolves.toContain("chosen");
        expect(await p.locator("#episodes tbody tr.chosen").count()).toBe(1);
        // How it was routed: every episode's score under the rule, the chosen one marked.
        const routing = (await p.locator("#answer-routing").textContent()) ?? "";
        expect(routing).toMatch(/^Routed by (lexical|window) \(per episode, [^)]+\): episode \d+ /);
        expect(routing.match(/episode \d+ (-?[\d.]+|—)/g)).toHaveLength(await rows.count());
        expect(routing).toContain(`episode ${chosen![1]} `);
        expect(routing.match(/\(chosen\)/g)).toHaveLength(1);
        expect(
          new RegExp(`episode ${chosen![1]} -?[\\d.]+ \\(chosen\\)`).test(routing),
          routing,
        ).toBe(true);
        console.log(
          `${QUESTION} → episode ${chosen![1]}: ${answer} (${log.filter((l) => l.state === "streaming").length} updates while streaming)`,
        );
        await shot("07-answer", 4, 5);
        expect(await p.locator("#error").isHidden()).toBe(true);
        expect(
          pageLog.filter((l) => l.startsWith("page error")),
          pageLog.join("\n"),
        ).toEqual([]);
      } catch (e) {
        await p
          .screenshot({ path: join(SHOTS, "failure.png"), fullPage: true })
          .catch(() => undefined);
        const text = await p
          .locator("body")
          .innerText()
          .catch(() => "");
        throw new Error(
          `${(e as Error).message}\n--- the page ---\n${text}\n--- its console ---\n${pageLog.join("\n")}\n--- the stack ---\n${stack?.output().slice(-5000) ?? ""}`,
          { cause: e },
        );
      }
    }, 1_800_000);
  },
);

describe.skipIf(!browserThere)(
  `the console in Chromium with a runner that answers at once ${NEEDS_CHROMIUM}`,
  () => {
    const secret = `instant-${randomUUID()}`;
    let runner: InstantRunner | undefined;
    let edge: RunningEdge | undefined;
    let browser: Browser | undefined;
    const dir = mkdtempSync(join(tmpdir(), "epicache-console-instant-"));

    beforeAll(async () => {
      runner = await startInstantRunner(secret);
      edge = await startEdgeDev({
        runnerUrl: runner.url,
        secret,
        adminToken: ADMIN,
        port: await freePort(),
        stateDir: dir,
      });
      browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
    }, 180_000);

    afterAll(async () => {
      await browser?.close();
      await edge?.close();
      await runner?.close();
      rmSync(dir, { recursive: true, force: true });
    }, 60_000);

    const locomoSample = (id: string, turns: number) => ({
      sample_id: id,
      conversation: {
        speaker_a: "Ann",
        speaker_b: "Bo",
        session_1_date_time: "1:56 pm on 8 May, 2023",
        session_1: Array.from({ length: turns }, (_, i) => ({
          speaker: i % 2 ? "Bo" : "Ann",
          dia_id: `D1:${i + 1}`,
          text: `${id} turn ${i + 1}`,
          ...(i === 0 ? { blip_caption: "a photo of a cat" } : {}),
        })),
      },
      qa: [],
    });

    it("reads a LoCoMo file in the page, one sample at a time, appends it and builds it; shows a broken file's error; forgets the credentials", async () => {
      const p = await browser!.newPage();
      try {
        await p.goto(`${edge!.url}/`);
        await p.getByText("Create a tenant (admin token)").click();
        await p.getByLabel("Admin token").fill(ADMIN);
        await p.getByRole("button", { name: "Create tenant" }).click();
        await p.getByRole("heading", { name: "Tenant created" }).waitFor();

        // A LoCoMo file of two samples, pasted: the first is read, and names the conversation.
        await p
          .getByLabel("…or paste it")
          .fill(JSON.stringify([locomoSample("conv-26", 5), locomoSample("conv-30", 3)]));
        await p
          .getByText(
            "5 messages in 1 session from Ann, Bo (LoCoMo, sample conv-26), ready to append.",
          )
          .waitFor();
        expect(await p.getByLabel("Conversation id").inputValue()).toBe("conv-26");
        // Another sample: its messages, and its id in place of the one the page filled in.
        await p.getByLabel("LoCoMo sample").selectOption("conv-30");
        await p
          .getByText(
            "3 messages in 1 session from Ann, Bo (LoCoMo, sample conv-30), ready to append.",
          )
          .waitFor();
        expect(await p.getByLabel("Conversation id").inputValue()).toBe("conv-30");
        await p.getByRole("button", { name: "Append messages" }).click();
        await p
          .getByText(
            "Appended 3 new messages to conv-30 (0 already there) in 1 request; it holds 3.",
          )
          .waitFor();
        // Appending again adds nothing.
        await p.getByRole("button", { name: "Append messages" }).click();
        await p
          .getByText(
            "Appended 0 new messages to conv-30 (3 already there) in 1 request; it holds 3.",
          )
          .waitFor();
        await p.getByRole("button", { name: "Rebuild episodes" }).click();
        await p.locator("#rebuild-state[data-status=succeeded]").waitFor({ timeout: 60_000 });
        await p.getByText(/^Active version v\S+: 4 episodes; a full build, 3 messages/).waitFor();
        // Nothing new: the webhook builds nothing, and the page says so.
        await p.getByRole("button", { name: "Rebuild episodes" }).click();
        await p.getByText(/^Nothing new to build: v\S+ holds every message\.$/).waitFor();

        // A broken JSONL file: the loader's error, and nothing to append.
        await p
          .getByLabel("…or paste it")
          .fill('{"speaker":"Ann","text":"Hi"}\n{"speaker":"Bo","text":3}');
        await p.getByText(/^Cannot read it: line 2 of the JSONL: text must be a string/).waitFor();
        expect(await p.getByRole("button", { name: "Append messages" }).isDisabled()).toBe(true);

        // An error answer shows in the alert region.
        await p.getByLabel("Conversation id").fill("no-such-conversation");
        await p.getByLabel("Question").fill("Anyone there?");
        await p.getByRole("button", { name: "Ask" }).click();
        await expect(p.getByRole("alert").textContent()).resolves.toMatch(
          /no conversation no-such-conversation \(not_found, HTTP 404, request \S+\)/,
        );

        // Forget: the fields and the tab's storage are emptied.
        await p.getByRole("button", { name: "Forget" }).click();
        expect(await p.getByLabel("API key").inputValue()).toBe("");
        expect(
          await p.evaluate(() => [
            sessionStorage.getItem("epicache.apiKey"),
            sessionStorage.getItem("epicache.webhookSecret"),
          ]),
        ).toEqual([null, null]);
      } catch (e) {
        const text = await p
          .locator("body")
          .innerText()
          .catch(() => "");
        throw new Error(`${(e as Error).message}\n--- the page ---\n${text}`, { cause: e });
      } finally {
        await p.close();
      }
    }, 300_000);
  },
);
