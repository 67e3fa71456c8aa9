/**
 * Queue declarations for the local Service Bus emulator.
 *
 * `bicep/queues.json` is the single source of truth for the deployed namespace; the emulator
 * reads the same file so local queues behave like the deployed ones (sessions, duplicate
 * detection, lock duration, max delivery count).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface QueueDefinition {
  name: string;
  requiresSession: boolean;
  requiresDuplicateDetection: boolean;
  duplicateDetectionWindowMs: number;
  lockDurationMs: number;
  maxDeliveryCount: number;
}

const QUEUES_FILE = join("bicep", "queues.json");

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Designators in the order ISO 8601 allows them, with their length in milliseconds. */
const DATE_UNITS: [string, number][] = [
  ["Y", 365 * DAY],
  ["M", 30 * DAY],
  ["W", 7 * DAY],
  ["D", DAY],
];
const TIME_UNITS: [string, number][] = [
  ["H", HOUR],
  ["M", MINUTE],
  ["S", SECOND],
];

function unitsPattern(units: [string, number][]): string {
  return units.map(([designator]) => `(?:(\\d+(?:\\.\\d+)?)${designator})?`).join("");
}

const DURATION = new RegExp(`^P${unitsPattern(DATE_UNITS)}(?:T${unitsPattern(TIME_UNITS)})?$`);

/**
 * Parses an ISO 8601 duration (`PT1M`, `PT10M`, `P14D`, `P1DT2H30.5S`) into milliseconds.
 * Months count as 30 days and years as 365 days: the Service Bus settings this file holds
 * (lock duration, duplicate-detection window, TTL) are never calendar-relative.
 */
export function parseIsoDuration(text: string): number {
  const trimmed = text.trim();
  const match = DURATION.exec(trimmed);
  if (!match || trimmed === "P" || trimmed.endsWith("T")) {
    throw new Error(`Invalid ISO 8601 duration: "${text}"`);
  }
  const lengths = [...DATE_UNITS, ...TIME_UNITS].map(([, ms]) => ms);
  let total = 0;
  lengths.forEach((ms, i) => {
    const value = match[i + 1];
    if (value !== undefined) total += Number(value) * ms;
  });
  return Math.round(total);
}

/** Walks up from this module's folder to the folder that holds `bicep/queues.json`. */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, QUEUES_FILE))) return dir;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(`Cannot find ${QUEUES_FILE} above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

interface FieldTypes {
  string: string;
  boolean: boolean;
  number: number;
}

/** Reads one typed field of a declaration, naming the queue and the field when it is wrong. */
function reader(entry: Record<string, unknown>, where: string) {
  return <K extends keyof FieldTypes>(key: string, kind: K): FieldTypes[K] => {
    const value = entry[key];
    if (typeof value !== kind) throw new Error(`${where}: "${key}" must be a ${kind}`);
    return value as FieldTypes[K];
  };
}

/** Turns one entry of `queues.json` into a {@link QueueDefinition}. */
export function toQueueDefinition(raw: unknown, where = "queue"): QueueDefinition {
  if (!isRecord(raw)) throw new Error(`${where}: expected an object`);
  const name = reader(raw, where)("name", "string");
  const at = `${where} "${name}"`;
  const field = reader(raw, at);
  const maxDeliveryCount = field("maxDeliveryCount", "number");
  if (!Number.isInteger(maxDeliveryCount) || maxDeliveryCount < 1) {
    throw new Error(`${at}: "maxDeliveryCount" must be a positive integer`);
  }
  return {
    name,
    requiresSession: field("requiresSession", "boolean"),
    requiresDuplicateDetection: field("requiresDuplicateDetection", "boolean"),
    duplicateDetectionWindowMs: parseIsoDuration(
      field("duplicateDetectionHistoryTimeWindow", "string"),
    ),
    lockDurationMs: parseIsoDuration(field("lockDuration", "string")),
    maxDeliveryCount,
  };
}

/** Reads the queue declarations; by default `bicep/queues.json` at the repository root. */
export function loadQueueDefinitions(file?: string): QueueDefinition[] {
  const path = file === undefined ? join(findRepoRoot(), QUEUES_FILE) : resolve(file);
  const parsed: unknown = JSON.parse(readFileSync(path, "utf8"));
  if (!isRecord(parsed) || !Array.isArray(parsed.queues)) {
    throw new Error(`${path}: expected { "queues": [...] }`);
  }
  const queues = parsed.queues.map((q, i) => toQueueDefinition(q, `${path} queues[${i}]`));
  const seen = new Set<string>();
  for (const q of queues) {
    const key = q.name.toLowerCase();
    if (seen.has(key)) throw new Error(`${path}: queue "${q.name}" is declared twice`);
    seen.add(key);
  }
  return queues;
}
