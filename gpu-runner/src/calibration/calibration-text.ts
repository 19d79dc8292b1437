/**
 * The default calibration text: a long two-person chat over several dated sessions, generated from
 * a seed so that calibration needs no data file. Sensitivity measures how much each layer's keys
 * move when the cache is squeezed; that depends on the model far more than on what the text says,
 * as long as it reads like the conversations the caches will hold.
 */
import { seededRandom } from "../runtime/sampling";

const PEOPLE = ["Maya", "Jonas"];
const PLACES = [
  "the lake",
  "the farmers' market",
  "Lisbon",
  "the climbing gym",
  "my aunt's house",
  "the library",
  "the new bakery",
  "the coast",
  "the museum",
  "the office",
];
const THINGS = [
  "a pottery class",
  "a half marathon",
  "a job interview",
  "a trip to Japan",
  "a book club",
  "a vegetable garden",
  "a camping weekend",
  "a piano recital",
  "a volunteering shift",
  "a birthday dinner",
];
const FEELINGS = [
  "excited",
  "nervous",
  "exhausted",
  "proud",
  "relieved",
  "a bit lonely",
  "grateful",
  "curious",
  "stressed",
  "happy",
];
const PEOPLE_THEY_KNOW = [
  "my sister",
  "my neighbour Tom",
  "our friend Priya",
  "my mum",
  "a colleague",
  "my cousin Leo",
  "the kids",
  "my partner",
];
const TEMPLATES = [
  (r: Pick) => `I went to ${r(PLACES)} with ${r(PEOPLE_THEY_KNOW)} yesterday and it was lovely.`,
  (r: Pick) => `I'm signing up for ${r(THINGS)} next month, I feel ${r(FEELINGS)} about it.`,
  (r: Pick) => `How did ${r(THINGS)} go? You said you were ${r(FEELINGS)} last time.`,
  (r: Pick) =>
    `${cap(r(PEOPLE_THEY_KNOW))} told me about ${r(THINGS)} at ${r(PLACES)}, it sounded amazing.`,
  (r: Pick) => `Honestly I've been ${r(FEELINGS)} this week, work has been a lot.`,
  (r: Pick) => `That's great! Did you take any photos at ${r(PLACES)}?`,
  (r: Pick) => `We should plan ${r(THINGS)} together, maybe after the holidays.`,
  (r: Pick) => `I finally finished ${r(THINGS)}; ${r(PEOPLE_THEY_KNOW)} came to cheer me on.`,
  (r: Pick) => `Remember when we got lost near ${r(PLACES)}? I still laugh about it.`,
  (r: Pick) => `I'm thinking of moving closer to ${r(PLACES)}, what do you think?`,
];
type Pick = <T>(list: readonly T[]) => T;
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

function cap(s: string): string {
  return s[0].toUpperCase() + s.slice(1);
}

/** About `words` words of chat, rendered as the context is (see shared/ renderContext). */
export function calibrationText(words = 2400, seed = 7): string {
  const rand = seededRandom(seed);
  const pick: Pick = (list) => list[Math.floor(rand() * list.length)];
  const lines = [`Below is a conversation between ${PEOPLE[0]} and ${PEOPLE[1]}.`];
  let count = 0;
  for (let session = 0; count < words; session++) {
    lines.push(`DATE: ${1 + Math.floor(rand() * 28)} ${MONTHS[(3 + session) % 12]}, 2024`);
    const turns = 8 + Math.floor(rand() * 8);
    for (let t = 0; t < turns && count < words; t++) {
      const text = `${pick(TEMPLATES)(pick)} ${pick(TEMPLATES)(pick)}`;
      count += text.split(/\s+/).length + 2;
      lines.push(`${PEOPLE[t % 2]} said, "${text}"`);
    }
  }
  return lines.join("\n");
}
